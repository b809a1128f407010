/* pymalloc's pools, read from outside the process: whether a small block
 * pymalloc gave out is free in its pool now.
 *
 * LTO builds of CPython (Debian's python3.11, python3.14) inline pymalloc's
 * free into its callers, where no probe sees it; the blocks pymalloc made
 * there (the tracer marks them) may have been given back unseen. A pool
 * (16 KiB from 3.10, 4 KiB before, in 3.8-3.14 alike) starts with its
 * header: a count of blocks in use, the head of its free list (each free
 * block's first word points to the next), its size class, and the offset
 * of the first block never handed out since the pool was set up. */
#ifndef TRACER_PYTHON_POOLS_H
#define TRACER_PYTHON_POOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "target.h"

/* A block pymalloc returned for a request of size bytes (1-512), in a pool
 * of 2^pool_bits bytes (12: 3.8, 3.9; 14: 3.10 on). */
struct pymalloc_block {
	uint64_t addr;
	uint64_t size;
	uint32_t pool_bits;
	uint32_t tag;  /* the caller's */
	bool free;     /* out: free in its pool */
	bool unknown;  /* out: its pool could not be made out */
};

/* Sets each block's free: its pool is gone (nothing mapped there: the
 * arena given back), empty, set up since for a size class that cannot
 * hold it, or shows it not handed out since its set-up or on its free
 * list. A pool read whole is believed only if consistent: its free list,
 * walked in full, ends where its header says. Otherwise the block is
 * unknown (not free). Sorts blocks by address; reads each pool holding
 * some once. Returns how many are free; -ESRCH when the process has no
 * memory left (exiting: nothing is free). */
long pymalloc_find_free(struct target_mem *mem, struct pymalloc_block *blocks, size_t n);

#endif
