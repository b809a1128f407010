/* Process indexes given out and taken back (proc_index.h). */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proc_index.h"

enum {
	INDEX_UNSEEN, /* held, or not looked at yet */
	INDEX_CANDIDATE, /* held by none at the last sweep */
	INDEX_QUEUED,	 /* in free_indexes (unless its generation moved on) */
};

static uint32_t generation(struct tracer_bpf *skel, uint32_t idx)
{
	return __atomic_load_n(&skel->bss->index_gen[idx], __ATOMIC_ACQUIRE);
}

int proc_index_give(struct tracer_bpf *skel, pid_t pid, uint64_t flags)
{
	__u32 key = (__u32)pid, idx;
	int err = 0;

	if (bpf_map_lookup_and_delete_elem(bpf_map__fd(skel->maps.free_indexes), NULL, &idx)) {
		idx = skel->rodata->proc_index_limit;
		if (__atomic_load_n(&skel->bss->next_proc_index, __ATOMIC_RELAXED) <
		    skel->rodata->proc_index_limit)
			idx = __atomic_fetch_add(&skel->bss->next_proc_index, 1, __ATOMIC_RELAXED);
	}
	if (idx >= skel->rodata->proc_index_limit) { /* at most TRACER_MAX_PROCS */
		__atomic_fetch_add(&skel->bss->procs_full_in_user_space, 1, __ATOMIC_RELAXED);
		return -ENOSPC;
	}
	/* as BPF's index_process: odd while in flight */
	__atomic_fetch_add(&skel->bss->index_gen[idx], 1, __ATOMIC_SEQ_CST);
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.traced_pids), &key, &idx, flags))
		err = -errno;
	__atomic_fetch_add(&skel->bss->index_gen[idx], 1, __ATOMIC_SEQ_CST);
	return err;
}

static bool alloc_state(struct proc_indexes *pi)
{
	if (pi->state)
		return true;
	pi->state = calloc(TRACER_MAX_PROCS, sizeof(*pi->state));
	pi->mark = calloc(TRACER_MAX_PROCS, sizeof(*pi->mark));
	pi->before = calloc(TRACER_MAX_PROCS, sizeof(*pi->before));
	if (pi->state && pi->mark && pi->before)
		return true;
	proc_index_free(pi);
	return false;
}

/* Without --follow: the half of the indexes behind the process's own. */
static void behind_target(struct tracer_bpf *skel, uint8_t *gone)
{
	uint32_t now = __atomic_load_n(&skel->bss->target_index, __ATOMIC_RELAXED);

	for (uint32_t d = 1; d <= TRACER_MAX_PROCS / 2; d++) {
		uint32_t idx = (now + TRACER_MAX_PROCS - d) % TRACER_MAX_PROCS;

		gone[idx / 8] |= (uint8_t)(1u << (idx % 8));
	}
}

uint8_t *proc_index_gone(struct proc_indexes *pi, struct tracer_bpf *skel, bool follow)
{
	int fd = bpf_map__fd(skel->maps.traced_pids);
	uint8_t *gone = calloc(TRACER_MAX_PROCS / 8, 1), *held;
	__u32 key, next, idx, *prev = NULL;
	uint32_t given, limit;

	if (!gone)
		return NULL;
	if (!follow) {
		behind_target(skel, gone);
		return gone;
	}
	held = calloc(TRACER_MAX_PROCS / 8, 1);
	if (!held || !alloc_state(pi)) {
		free(held);
		free(gone);
		return NULL;
	}
	/* the indexes given out before the last sweep: a newer one may not
	 * have its odd generation yet */
	given = __atomic_load_n(&skel->bss->next_proc_index, __ATOMIC_RELAXED);
	if (given > skel->rodata->proc_index_limit)
		given = skel->rodata->proc_index_limit;
	limit = pi->settled;
	pi->settled = given;
	pi->pending = limit != given;
	for (uint32_t i = 0; i < limit; i++)
		pi->before[i] = generation(skel, i);
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (!bpf_map_lookup_elem(fd, &key, &idx) && idx < TRACER_MAX_PROCS)
			held[idx / 8] |= (uint8_t)(1u << (idx % 8));
	}
	for (uint32_t i = 0; i < limit; i++) {
		uint32_t g = generation(skel, i);

		if (proc_index_is_gone(held, i) || g != pi->before[i] || (g & 1)) {
			pi->state[i] = INDEX_UNSEEN;
		} else if (pi->mark[i] == g && pi->state[i] == INDEX_QUEUED) {
			continue; /* still waiting in the queue */
		} else if (pi->mark[i] == g && pi->state[i] == INDEX_CANDIDATE) {
			gone[i / 8] |= (uint8_t)(1u << (i % 8));
		} else {
			pi->state[i] = INDEX_CANDIDATE;
			pi->mark[i] = g;
			pi->pending = true;
		}
	}
	free(held);
	return gone;
}

void proc_index_recycle(struct proc_indexes *pi, struct tracer_bpf *skel, const uint8_t *gone)
{
	int fd = bpf_map__fd(skel->maps.free_indexes);

	if (!pi->state)
		return; /* without --follow nothing is queued */
	for (__u32 i = 0; i < pi->settled; i++) {
		if (!proc_index_is_gone(gone, i))
			continue;
		if (bpf_map_update_elem(fd, NULL, &i, BPF_ANY)) {
			pi->state[i] = INDEX_UNSEEN; /* a candidate again next time */
			pi->pending = true;
			continue;
		}
		pi->state[i] = INDEX_QUEUED;
		pi->recycled++;
	}
}

void proc_index_free(struct proc_indexes *pi)
{
	free(pi->state);
	free(pi->mark);
	free(pi->before);
	memset(pi, 0, sizeof(*pi));
}
