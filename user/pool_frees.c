#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdbool.h>
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

/* How many marks the map holds (after a read that failed): at most max,
 * since a walk whose key BPF deletes meanwhile starts again at the first. */
static size_t count_marks(int fd, size_t max)
{
	uint64_t key, next;
	size_t n = 0;

	for (int err = bpf_map_get_next_key(fd, NULL, &next); !err && n < max;
	     err = bpf_map_get_next_key(fd, &key, &next)) {
		key = next;
		n++;
	}
	return n;
}

/* Every mark now (a map that changes while read may give some twice or
 * miss some: those wait for the next report); *incomplete when a read or
 * an allocation failed before the end. */
static struct marked *read_marks(int fd, size_t *n, bool *incomplete)
{
	static uint64_t keys[BATCH];
	static struct tracer_pool_mark values[BATCH];
	struct marked *all = NULL;
	size_t cap = 0;
	__u32 batch, count;
	bool first = true;
	int err;

	*n = 0;
	*incomplete = false;
	do {
		count = BATCH;
		err = bpf_map_lookup_batch(fd, first ? NULL : &batch, &batch, keys, values, &count,
					   NULL);
		first = false;
		if (err && errno != ENOENT) {
			*incomplete = true;
			break;
		}
		if (*n + count > cap) {
			size_t want = (*n + count) * 2;
			struct marked *m = realloc(all, want * sizeof(*m));

			if (!m) {
				*incomplete = true;
				break;
			}
			all = m;
			cap = want;
		}
		for (__u32 i = 0; i < count; i++)
			all[(*n)++] = (struct marked){.key = keys[i], .mark = values[i]};
	} while (!err);
	return all;
}

/* forget_pool_free on one mark: enum tracer_pool_verdict, or -1. */
static int run_verdict(int prog, const struct marked *m, bool found_free)
{
	__u64 args[TRACER_POOL_NARGS] = {
	    [TRACER_POOL_ARG_KEY] = m->key,
	    [TRACER_POOL_ARG_NS] = m->mark.ns,
	    [TRACER_POOL_ARG_TGID] = m->mark.tgid,
	    [TRACER_POOL_ARG_FREE] = found_free,
	};
	LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = args, .ctx_size_in = sizeof(args));

	if (bpf_prog_test_run_opts(prog, &opts))
		return -1;
	return (int)opts.retval;
}

/* The marks of one process, looked for in its pools: each block found
 * free is forgotten, each whose pool could not be made out asked about
 * (its mark may be stale). The marks of a process gone go; those it could
 * not check are added to *failed and stay. */
static size_t apply_process(int fd, int prog, struct marked *m, size_t n, uint64_t *failed)
{
	pid_t pid = (pid_t)m[0].mark.tgid;
	struct pymalloc_block *blocks = NULL;
	struct target_mem mem;
	size_t forgotten = 0;
	long nfree;

	if (!target_alive(pid)) {
		for (size_t i = 0; i < n; i++)
			bpf_map_delete_elem(fd, &m[i].key);
		return 0;
	}
	if (target_mem_open(pid, &mem)) {
		if (target_alive(pid))
			*failed += n;
		return 0;
	}
	blocks = calloc(n, sizeof(*blocks));
	if (!blocks) {
		target_mem_close(&mem);
		*failed += n;
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		blocks[i] = (struct pymalloc_block){.addr = TRACER_KEY_ADDR(m[i].key),
						    .size = m[i].mark.size,
						    .pool_bits = m[i].mark.pool_bits,
						    .tag = (uint32_t)i};
	nfree = pymalloc_find_free(&mem, blocks, n);
	/* exiting meanwhile: its memory says nothing any more */
	if (nfree >= 0 && target_alive(pid)) {
		for (size_t i = 0; i < n; i++) {
			int verdict;

			if (!blocks[i].free && !blocks[i].unknown)
				continue;
			verdict = run_verdict(prog, &m[blocks[i].tag], blocks[i].free);
			if (verdict == TRACER_POOL_FORGOTTEN)
				forgotten++;
			/* not run, or its pool not made out (still traced) */
			else if (verdict < 0 || (blocks[i].unknown && verdict == TRACER_POOL_KEPT))
				(*failed)++;
		}
	} else if (nfree != -ESRCH && target_alive(pid)) {
		*failed += n;
	}
	target_mem_close(&mem);
	free(blocks);
	return forgotten;
}

size_t pool_frees_apply(struct tracer_bpf *skel, uint64_t *failed)
{
	int fd = bpf_map__fd(skel->maps.pool_marks);
	int prog = bpf_program__fd(skel->progs.forget_pool_free);
	struct marked *m;
	size_t n, forgotten = 0;
	bool incomplete;
	uint64_t key;

	if (fd < 0 || prog < 0 || bpf_map_get_next_key(fd, NULL, &key))
		return 0; /* nothing marked */
	m = read_marks(fd, &n, &incomplete);
	if (incomplete) { /* those not read wait for the next report */
		size_t left = count_marks(fd, bpf_map__max_entries(skel->maps.pool_marks));

		*failed += left > n ? left - n : 0;
	}
	if (!m)
		return 0;
	qsort(m, n, sizeof(*m), by_tgid);
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && m[j].mark.tgid == m[i].mark.tgid; j++)
			;
		forgotten += apply_process(fd, prog, m + i, j - i, failed);
	}
	free(m);
	return forgotten;
}
