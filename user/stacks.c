#include <bpf/bpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stacks.h"

#define DRAIN_BATCH 1024

int stack_store_init(struct stack_store *s, int fd, uint32_t nframe)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->nframe = nframe < TRACER_MAX_NFRAME ? nframe : TRACER_MAX_NFRAME;
	s->batch = DRAIN_BATCH;
	/* the map's value: the header and nframe pcs (session.c sizes it so) */
	s->val_size = offsetof(struct tracer_native_stack, pcs) + s->nframe * sizeof(__u64);
	s->keys = calloc(s->batch, sizeof(*s->keys));
	s->vals = calloc(s->batch, s->val_size);
	if (!s->keys || !s->vals || u64_map_init(&s->stacks, sizeof(struct stack_entry *))) {
		stack_store_free(s);
		return -ENOMEM;
	}
	return 0;
}

void stack_store_free(struct stack_store *s)
{
	for (size_t i = 0; i < s->stacks.cap; i++)
		if (s->stacks.keys && s->stacks.keys[i])
			free(*(struct stack_entry **)u64_map_value_at(&s->stacks, i));
	u64_map_free(&s->stacks);
	free(s->keys);
	free(s->vals);
	memset(s, 0, sizeof(*s));
}

static int keep(struct stack_store *s, __u64 key, const struct tracer_native_stack *raw)
{
	uint32_t n = raw->nframe < s->nframe ? raw->nframe : s->nframe;
	struct stack_entry **slot, *e;
	bool added;

	slot = u64_map_put(&s->stacks, key, &added);
	if (!slot)
		return -ENOMEM;
	if (!added) { /* drained before, stored again after: the same frames */
		(*slot)->used = s->generation;
		return 0;
	}
	e = malloc(sizeof(*e) + n * sizeof(e->pcs[0]));
	if (!e) {
		u64_map_remove(&s->stacks, key);
		return -ENOMEM;
	}
	e->used = s->generation;
	e->end = raw->end;
	e->n = n;
	memcpy(e->pcs, raw->pcs, n * sizeof(e->pcs[0]));
	*slot = e;
	s->drained++;
	return 0;
}

int stack_store_drain(struct stack_store *s)
{
	__u64 in_batch, out_batch;
	bool first = true;
	int err = 0;

	if (s->fd < 0)
		return 0;
	for (;;) {
		LIBBPF_OPTS(bpf_map_batch_opts, opts);
		__u32 count = s->batch;
		int r = bpf_map_lookup_and_delete_batch(s->fd, first ? NULL : &in_batch, &out_batch,
							 s->keys, s->vals, &count, &opts);

		if (r && errno != ENOENT)
			return -errno;
		first = false;
		in_batch = out_batch;
		for (__u32 i = 0; i < count && !err; i++)
			err = keep(s, s->keys[i],
				   (const void *)((const char *)s->vals + i * s->val_size));
		if (err || r)
			return err;
	}
}

const struct stack_entry *stack_store_get(struct stack_store *s, uint64_t key)
{
	struct stack_entry **slot = u64_map_get(&s->stacks, key);

	if (!slot) {
		stack_store_drain(s); /* stored since the last drain */
		slot = u64_map_get(&s->stacks, key);
	}
	if (!slot)
		return NULL;
	(*slot)->used = s->generation;
	return *slot;
}

void stack_store_sweep(struct stack_store *s)
{
	uint64_t *dead = NULL;
	size_t n = 0, cap = 0;

	/* stacks drained during this snapshot, or used by it, carry this
	 * generation; one drained earlier that no trace used now belongs to
	 * freed blocks only (a block being recorded stores its stack first,
	 * microseconds before its trace: never a whole snapshot apart) */
	for (size_t i = 0; i < s->stacks.cap; i++) {
		struct stack_entry *e;

		if (!s->stacks.keys[i])
			continue;
		e = *(struct stack_entry **)u64_map_value_at(&s->stacks, i);
		if (e->used == s->generation)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			uint64_t *p = realloc(dead, ncap * sizeof(*dead));

			if (!p)
				break; /* kept for now: swept next time */
			dead = p;
			cap = ncap;
		}
		dead[n++] = s->stacks.keys[i];
		free(e);
	}
	for (size_t i = 0; i < n; i++)
		u64_map_remove(&s->stacks, dead[i]);
	s->swept += n;
	free(dead);
	s->generation++;
}
