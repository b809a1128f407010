/* Process indexes: the bits above a block's address in allocation keys that
 * say whose block it is (tracer.h's TRACER_KEY). There are TRACER_MAX_PROCS
 * of them; with --follow, several -p and -a each process (and each image
 * after an exec, each budget window that drops its live set) takes one, so
 * those of processes gone are given out again: once user space has freed
 * their blocks and sites, it queues them in BPF's free_indexes, which BPF
 * and proc_index_give pop before taking a new one.
 *
 * An index is freed only when the sweep has seen it held by no process
 * (traced_pids) at two sweeps in a row with the same even generation
 * (tracer.bpf.c's index_gen): one being given out is odd, one given out
 * since the last look has moved on, and one still in the queue keeps the
 * generation it was queued with. Without --follow the one process's index
 * moves on and wraps (TRACER_NEXT_TARGET_INDEX): the half behind it is
 * freed. */
#ifndef TRACER_PROC_INDEX_H
#define TRACER_PROC_INDEX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "tracer.h"
#include "tracer.skel.h"

struct proc_indexes {
	uint8_t *state;	   /* per index: enum in proc_index.c */
	uint32_t *mark;	   /* its generation when it became a candidate, or was queued */
	uint32_t *before;  /* the generations read before the walk of traced_pids */
	uint32_t settled;  /* next_proc_index at the last sweep: those below are held or gone */
	bool pending;	   /* the next sweep has candidates (or new indexes) to look at */
	uint64_t recycled; /* indexes queued again, in all */
};

/* Gives process pid an index (traced_pids, with BPF_NOEXIST or BPF_EXIST):
 * 0, -ENOSPC when none is left, or -errno (-EEXIST: it has one). */
int proc_index_give(struct tracer_bpf *skel, pid_t pid, uint64_t flags);

/* The indexes whose blocks and sites the sweep frees now, one bit an index
 * (TRACER_MAX_PROCS bits); NULL when out of memory. */
uint8_t *proc_index_gone(struct proc_indexes *pi, struct tracer_bpf *skel, bool follow);

static inline bool proc_index_is_gone(const uint8_t *gone, uint32_t idx)
{
	return (gone[idx / 8] >> (idx % 8)) & 1;
}

/* After the sweep freed what the indexes of gone had: they are queued for
 * reuse (with --follow). */
void proc_index_recycle(struct proc_indexes *pi, struct tracer_bpf *skel, const uint8_t *gone);

void proc_index_free(struct proc_indexes *pi);

#endif
