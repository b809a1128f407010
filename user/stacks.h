/* Native stacks, drained from BPF (native_stacks) into a store of our own:
 * the map then holds only stacks new since the last drain, and the store
 * only stacks that live traces refer to (a sweep after each snapshot drops
 * the others), so neither fills with the stacks of blocks long freed. */
#ifndef TRACER_STACKS_H
#define TRACER_STACKS_H

#include <stdint.h>

#include "tracer.h"
#include "util/hash.h"

struct stack_store {
	int fd; /* native_stacks */
	uint32_t nframe;
	struct u64_map stacks;	  /* key -> struct stack_entry * */
	uint64_t drained;	  /* stacks taken from the map, ever */
	uint32_t generation;	  /* snapshots taken */
	uint64_t swept;		  /* stacks dropped by sweeps, ever */
	__u64 *keys;		  /* the drain's buffers */
	struct tracer_native_stack *vals;
	uint32_t batch;
	size_t val_size;
};

struct stack_entry {
	uint32_t used; /* the generation it was last drained or used in */
	uint32_t end;  /* enum tracer_stack_end */
	uint32_t n;
	uint64_t pcs[];
};

/* fd is native_stacks, whose values hold nframe pcs. 0 or -ENOMEM. */
int stack_store_init(struct stack_store *s, int fd, uint32_t nframe);
void stack_store_free(struct stack_store *s);

/* Moves every stack in the map into the store. 0, or -errno. */
int stack_store_drain(struct stack_store *s);

/* The stack under a trace's site key, marked used by this snapshot; NULL
 * when it is neither in the store nor (after one more drain) in the map. */
const struct stack_entry *stack_store_get(struct stack_store *s, uint64_t key);

/* After a snapshot read every live trace: drops the stacks none of them
 * used that were drained before it began, and starts a new generation. */
void stack_store_sweep(struct stack_store *s);

#endif
