/* Frees no probe saw, found in pymalloc's pools: the blocks BPF marked as
 * made by pymalloc where its frees run inlined and unprobed (tracer.h's
 * TRACER_COOKIE_POOLED) are looked for in their pools (python/pools.h);
 * each one free there is forgotten as its free would have been
 * (forget_pool_free), and counted (TRACER_CNT_POOL_FREES_FOUND). */
#ifndef TRACER_POOL_FREES_H
#define TRACER_POOL_FREES_H

#include <stddef.h>
#include <stdint.h>

#include "tracer.h"
#include "tracer.skel.h"

/* Applies the frees found now; cheap when nothing is marked. Returns how
 * many blocks it forgot; adds to *failed the marked blocks it could not
 * check (TRACER_CNT_POOL_CHECKS_FAILED: their pool unreadable or not made
 * out, the check not run): their marks stay for the next report. */
size_t pool_frees_apply(struct tracer_bpf *skel, uint64_t *failed);

#endif
