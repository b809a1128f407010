/* One traceback from what the probes captured for a trace: the call site
 * (frame 0, the return address at the allocator's return), the native stack
 * walk, and the Python stack of the allocating thread. The merge rules:
 *
 * - A thread running Python code gets its Python frames, most recent first,
 *   as tracemalloc shows them; total_nframe counts every frame walked. With
 *   native set, the C frames from the allocator up to the interpreter's
 *   dispatch loop come first (as far as the native walk shows them), and
 *   count in total_nframe.
 * - A Python stack none of whose frames resolved (their code objects freed
 *   before they were read) counts them as unresolved and is treated as no
 *   Python stack.
 * - A Python-domain allocation by a thread with no Python frame, in a
 *   process running a recognised CPython, is tracemalloc's empty traceback:
 *   one frame <unknown>:0, total_nframe 1 (not with native).
 * - Otherwise native frames, cut at the first address outside known code
 *   (counted as truncated); a walk that ended before nframe for another
 *   reason than reaching the stack's bottom is counted by that reason
 *   (enum tracer_stack_end). No frame at all gives <unknown>:0.
 * - Native frames at the top of a traceback in allocator plumbing (Rust's
 *   alloc shims and RawVec growth, libstdc++'s allocators and containers,
 *   zmalloc, g_malloc, xmalloc ...) are left out, unless keep_plumbing; the
 *   walk goes RESOLVE_PLUMBING_EXTRA frames deeper to make up for them.
 * - At most nframe frames are kept. */
#ifndef TRACER_RESOLVE_H
#define TRACER_RESOLVE_H

#include <stdbool.h>
#include <stdint.h>

#include "model/snapshot.h"
#include "python/frames.h"
#include "symbolize.h"
#include "tracer.h"
#include "unwind/table.h"

struct resolve_options {
	uint32_t nframe;
	bool native;	    /* --native: C frames before Python frames */
	bool keep_plumbing; /* --keep-allocator-frames: no frame left out */
};

/* Native frames walked beyond nframe, to stand in for leading frames in
 * allocator plumbing that are left out (resolve_is_plumbing). */
#define RESOLVE_PLUMBING_EXTRA 8

/* How deep the native walk goes for o: nframe, plus the extra frames
 * unless plumbing is kept (or nframe is 1: no walk at all). */
uint32_t resolve_walk_depth(const struct resolve_options *o);

/* Whether a function is allocator plumbing (resolve.c lists them). */
bool resolve_is_plumbing(const char *function);

struct resolve_trace {
	uint64_t ip;			      /* frame 0: the call site's return address */
	const uint64_t *stack;		      /* native walk: frames stack[1..nstack), or NULL */
	uint32_t nstack;
	uint32_t stack_end;		      /* why the walk ended (enum tracer_stack_end) */
	uint32_t domain;		      /* SNAPSHOT_DOMAIN_* or an extension's */
	const struct python_frames_stack *py; /* the thread's Python stack, or NULL */
	bool python_process;		      /* the process runs a recognised CPython */
};

/* What resolving lost, added up over the traces of one snapshot. */
struct resolve_counts {
	uint64_t truncated;	/* cut at an address outside any code */
	uint64_t py_unresolved; /* Python frames whose code object was unreadable */
	/* native walks that ended short, by reason (NFRAME and BOTTOM: complete) */
	uint64_t stack_end[TRACER_END_COUNT];
	uint64_t cannot[UNWIND_WHY_COUNT]; /* of TRACER_END_CANNOT, by the row's reason */
};

/* Interns the traceback of t into snap; returns its index or a negative
 * errno. sym may be NULL (a process whose mappings were never read). */
int64_t resolve_traceback(struct snapshot *snap, struct symbolizer *sym,
			  const struct resolve_options *o, const struct resolve_trace *t,
			  struct resolve_counts *counts);

/* Every executable mapping sym has seen into snap's mappings, the
 * executable's first (pprof's main binary); native frames add theirs as
 * they are interned. 0 or a negative errno; sym may be NULL. */
int resolve_mappings(struct snapshot *snap, struct symbolizer *sym);

#endif
