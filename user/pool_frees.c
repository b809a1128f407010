#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>

#include "tracer.h"
#include "pool_frees.h"
#include "python/pools.h"
#include "target.h"

#define BATCH 4096

struct marked {
	uint64_t key;
	struct tracer_pool_mark mark;
};

static int by_tgid(const void *a, const void *b)
{
	const struct marked *x = a, *y = b;

	return x->mark.tgid < y->mark.tgid ? -1 : x->mark.tgid > y->mark.tgid;
}

/* Every mark now (a map that changes while read may give some twice or
 * miss some: those wait for the next report). */
static struct marked *read_marks(int fd, size_t *n)
{
	uint64_t keys[BATCH];
	struct tracer_pool_mark values[BATCH];
	struct marked *all = NULL;
	size_t cap = 0;
	__u32 batch, count;
	bool first = true;
	int err;

	*n = 0;
	do {
		count = BATCH;
		err = bpf_map_lookup_batch(fd, first ? NULL : &batch, &batch, keys, values, &count,
					   NULL);
		first = false;
		if (err && errno != ENOENT)
			break;
		if (*n + count > cap) {
			size_t want = (*n + count) * 2;
			struct marked *m = realloc(all, want * sizeof(*m));

			if (!m)
				break;
			all = m;
			cap = want;
		}
		for (__u32 i = 0; i < count; i++)
			all[(*n)++] = (struct marked){.key = keys[i], .mark = values[i]};
	} while (!err);
	return all;
}

/* The blocks of one process found free: each forgotten by the BPF
 * program, which checks that the mark and the trace are still the ones
 * read. */
static size_t apply_process(int prog, struct marked *m, size_t n)
{
	struct pymalloc_block *blocks = calloc(n, sizeof(*blocks));
	struct target_mem mem;
	size_t forgotten = 0;

	if (!blocks)
		return 0;
	if (target_mem_open((pid_t)m[0].mark.tgid, &mem)) {
		free(blocks);
		return 0; /* gone: its traces go with it */
	}
	for (size_t i = 0; i < n; i++)
		blocks[i] = (struct pymalloc_block){.addr = TRACER_KEY_ADDR(m[i].key),
						    .size = m[i].mark.size};
	if (pymalloc_find_free(&mem, blocks, n)) {
		/* blocks are sorted by address now: find each one's mark */
		for (size_t i = 0; i < n; i++) {
			struct tracer_pool_free arg;
			LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &arg,
				    .ctx_size_in = sizeof(arg));
			const struct pymalloc_block *b = NULL;
			size_t lo = 0, hi = n;
			uint64_t addr = TRACER_KEY_ADDR(m[i].key);

			while (lo < hi) {
				size_t mid = lo + (hi - lo) / 2;

				if (blocks[mid].addr < addr)
					lo = mid + 1;
				else
					hi = mid;
			}
			if (lo < n && blocks[lo].addr == addr)
				b = &blocks[lo];
			if (!b || !b->free)
				continue;
			arg = (struct tracer_pool_free){
			    .key = m[i].key, .ns = m[i].mark.ns, .tgid = m[i].mark.tgid};
			if (!bpf_prog_test_run_opts(prog, &opts) && arg.forgotten)
				forgotten++;
		}
	}
	target_mem_close(&mem);
	free(blocks);
	return forgotten;
}

size_t pool_frees_apply(struct tracer_bpf *skel)
{
	int fd = bpf_map__fd(skel->maps.pool_marks);
	int prog = bpf_program__fd(skel->progs.forget_pool_free);
	struct marked *m;
	size_t n, forgotten = 0;
	uint64_t key;

	if (fd < 0 || prog < 0 || bpf_map_get_next_key(fd, NULL, &key))
		return 0; /* nothing marked */
	m = read_marks(fd, &n);
	if (!m)
		return 0;
	qsort(m, n, sizeof(*m), by_tgid);
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && m[j].mark.tgid == m[i].mark.tgid; j++)
			;
		forgotten += apply_process(prog, m + i, j - i);
	}
	free(m);
	return forgotten;
}
