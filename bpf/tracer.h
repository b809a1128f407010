/* Shared between the BPF programs and user space: map keys, values and the
 * counters of things lost. Plain fixed-width types only. */
#ifndef TRACER_BPF_SHARED_H
#define TRACER_BPF_SHARED_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* The kernel's user stack walk stops at perf_event_max_stack (127). */
#define TRACER_MAX_NFRAME 127

/* Domains as in user/snapshot.h */
#define TRACER_DOMAIN_PYTHON 0u
#define TRACER_DOMAIN_LIBC 0xfffffff0u

/* What an entry probe stashed; selects how the return value is read. */
enum tracer_alloc_kind {
	TRACER_KIND_MALLOC = 0,	  /* returns the block */
	TRACER_KIND_REALLOC = 1,  /* frees oldptr when it returns a block */
	TRACER_KIND_MEMALIGN = 2, /* posix_memalign: block written to *memptr */
};

struct tracer_alloc_key {
	__u32 tgid;
	__u32 pad;
	__u64 addr;
};

/* One live allocation. ip is frame 0 (the call site's return address);
 * stack_id indexes the stack map for deeper frames (-1: none). */
struct tracer_alloc_info {
	__u64 size;
	__u64 ip;
	__s32 stack_id;
	__u32 domain;
};

/* Per traced process, updated where the events happen. */
struct tracer_proc_stats {
	__s64 current; /* bytes live */
	__s64 peak;    /* highest current since start or reset */
	__u64 allocs;  /* allocation events traced */
	__u64 frees;   /* frees of traced blocks */
};

/* Everything that can be lost or is worth knowing; reported by name. */
enum tracer_counter {
	TRACER_CNT_ALLOCS_FULL,	    /* allocs table full: allocation not traced */
	TRACER_CNT_ALLOCS_FULL_BYTES,
	TRACER_CNT_STACK_LOST,	    /* stack map full or hash collision: frame 0 only */
	TRACER_CNT_THREAD_LOST,	    /* no per-thread slot for an entry probe */
	TRACER_CNT_RETURN_UNMATCHED, /* return probe without its entry (attached mid-call) */
	TRACER_CNT_PROCS_FULL,	    /* per-process stats table full */
	TRACER_CNT_FAILED_ALLOCS,   /* allocator returned NULL: not a trace */
	TRACER_CNT_UNKNOWN_FREES,   /* free of a block allocated before attach */
	TRACER_CNT_MAX,
};

struct tracer_counters {
	__u64 c[TRACER_CNT_MAX];
};

#endif
