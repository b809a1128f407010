/* Shared between the BPF programs and user space: map keys, values and the
 * counters of things lost. Plain fixed-width types only. */
#ifndef TRACER_BPF_SHARED_H
#define TRACER_BPF_SHARED_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* The kernel's user stack walk stops at perf_event_max_stack (127). */
#define TRACER_MAX_NFRAME 127

/* Domains as in user/model/snapshot.h: 0 and every PyTraceMalloc_Track
 * domain are tracemalloc's; tracer's own start at TRACER_DOMAIN_NATIVE. */
#define TRACER_DOMAIN_PYTHON 0u
#define TRACER_DOMAIN_LIBC 0xfffffff0u
#define TRACER_DOMAIN_MMAP 0xfffffff1u /* anonymous memory a program maps itself */

/* A CPython allocator probe's cookie, where user/placement.c moved the
 * probe past a prologue that copies arguments to other registers: with
 * TRACER_ARGS_MOVED set, bits 3i..3i+2 give the register (0-5: rdi, rsi,
 * rdx, rcx, r8, r9) that holds argument register i's entry value. 0: each
 * in its own. */
#define TRACER_ARGS_MOVED (1ull << 31)
/* Set in the cookie of a probe on pymalloc's own functions (_PyObject_Malloc,
 * _PyObject_Calloc, _PyObject_Realloc) where copies of its free are inlined
 * without a probe (LTO builds): a block of 1 to PYMALLOC_SMALL bytes it
 * returns, with no other allocator's call beneath, lies in one of its
 * pools, and gets a mark (pool_marks) by which user space finds it free
 * there. TRACER_COOKIE_SMALL_POOLS: the build's pools are 4 KiB (3.8, 3.9),
 * else 16 KiB. */
#define TRACER_COOKIE_POOLED (1ull << 30)
#define TRACER_COOKIE_SMALL_POOLS (1ull << 29)
#define PYMALLOC_SMALL 512 /* SMALL_REQUEST_THRESHOLD, 3.8-3.14 */
/* pool_marks' value: the block's size and the time of its allocation, ns
 * (its trace's time is TRACER_TIME of it), its process, and log2 of its
 * pool's size. */
struct tracer_pool_mark {
	__u64 size;
	__u64 ns;
	__u32 tgid;
	__u32 pool_bits;
};
/* forget_pool_free's arguments (BPF_PROG_TEST_RUN of a raw_tp program: an
 * array of u64): a marked block as user space read its mark, and whether
 * it found the block free in its pool (else it only asks whether the mark
 * is stale). Its return value: enum tracer_pool_verdict. */
enum tracer_pool_arg {
	TRACER_POOL_ARG_KEY,
	TRACER_POOL_ARG_NS,
	TRACER_POOL_ARG_TGID,
	TRACER_POOL_ARG_FREE,
	TRACER_POOL_NARGS,
};
enum tracer_pool_verdict {
	TRACER_POOL_KEPT = 0,	   /* the mark stays: the block may be live */
	TRACER_POOL_FORGOTTEN = 1, /* free: its trace went, as by its free */
	TRACER_POOL_STALE = 2,	   /* the mark went: its trace is gone or another */
};
/* py_malloc_inner's cookie also holds, from bit 32, the bytes its probe
 * point's prologue moved rsp by (the return address is at sp + that). */
#define TRACER_COOKIE_SP_SHIFT 32
#define TRACER_COOKIE_SP_MASK 0xffffull
#define TRACER_DOMAIN_NATIVE TRACER_DOMAIN_LIBC /* the lowest of tracer's own */

/* Traced memory is kept per class of domain as well as for all domains:
 * "python" is what tracemalloc's get_traced_memory() counts (its domains),
 * "native" is tracer's own (libc). */
enum tracer_domain_class {
	TRACER_CLASS_PYTHON = 0, /* domain < TRACER_DOMAIN_NATIVE */
	TRACER_CLASS_NATIVE = 1, /* domain >= TRACER_DOMAIN_NATIVE */
	TRACER_NCLASSES,
};

#define TRACER_CLASS_OF(domain) ((domain) >= TRACER_DOMAIN_NATIVE)

/* What an entry probe stashed; selects how the return value is read. */
enum tracer_alloc_kind {
	TRACER_KIND_MALLOC = 0,	  /* returns the block */
	TRACER_KIND_REALLOC = 1,  /* frees oldptr when it returns a block */
	TRACER_KIND_MEMALIGN = 2, /* posix_memalign: block written to *memptr */
	TRACER_KIND_MMAP = 3,	  /* mmap: MAP_FAILED (-1) is the failure */
	TRACER_KIND_IGNORE = 4,	  /* a call to match with its return, not a block
				   * (mmap of a file) */
	TRACER_KIND_RESIZE = 5,	  /* xallocx: oldptr resized in place to size when
				   * the returned real size reaches it */
	TRACER_KIND_MREMAP = 6,	  /* mremap: the pages at oldptr move to the address
				   * returned, or MAP_FAILED */
};

/* How to find and walk a CPython process's frames from a probe; filled by
 * user space per interpreter version (user/python_*.c). Offsets in bytes. */
struct tracer_py_config {
	__u64 tss_key_addr;	   /* address of the Py_tss_t {int initialized; key} */
	__s32 tss_key;		   /* the key once seen created (the walker sets it); -1 */
	__u32 pthread_specific;	   /* offsetof(struct pthread, specific_1stblock) */
	__u32 ts_native_tid;	   /* tstate->native_thread_id; 0: not checked */
	__u32 ts_frame;		   /* tstate -> frame, cframe or current_frame */
	__s32 cframe_current;	   /* >= 0: ts_frame is a _PyCFrame, frame at this offset */
	__u32 fr_previous;	   /* frame -> previous (f_back) */
	__u32 fr_code;		   /* frame -> code object (f_code / f_executable) */
	__u32 fr_instr;		   /* frame -> prev_instr/instr_ptr, or int f_lasti */
	__u32 fr_owner;		   /* frame -> owner (char); 0: none */
	__u32 owner_skip_min;	   /* skip frames whose owner >= this (C stack shims); 0: none */
	__u32 owner_generator;	   /* owner of generator frames (never incomplete) */
	__u32 code_adaptive;	   /* code -> co_code_adaptive (3.11+); 0: instr is f_lasti */
	__u32 code_firsttraceable; /* code -> _co_firsttraceable (3.11+); 0: none */
	__u32 code_tag_mask;	   /* low bits to clear in a code reference (3.14: 3) */
	__u32 code_ident;	   /* code -> co_filename; co_name follows: the identity */
	/* 3.12+: an object of a type with Py_TPFLAGS_MANAGED_DICT or _WEAKREF
	 * has a pre-header of two pointers below its GC header (what
	 * tracemalloc's free-list re-attribution subtracts); 0: none (3.8-3.11
	 * subtract the GC header only) */
	__u32 obj_preheader;
	__u32 pad2;
};

/* One Python frame as captured: the code object and the instruction
 * index into it (f_lasti for 3.8-3.10, code units since 3.11). */
struct tracer_py_frame {
	__u64 code;
	__s64 instr;
	__u64 ident; /* co_filename ^ co_name pointers when captured: a freed and
		      * reused code object no longer matches */
};

struct tracer_py_stack {
	__u32 nframe; /* stored, most recent first */
	__u32 total;  /* all complete frames walked, saturated at TRACER_PY_MAX_WALK */
	/* the process that captured it, whose memory holds its code objects
	 * (--follow: a forked child's may be its own); not in its key */
	__u32 tgid;
	__u32 pad;
	struct tracer_py_frame frames[TRACER_MAX_NFRAME];
};

#define TRACER_PY_MAX_WALK 1024

/* The allocs map's key: the block's address, with the traced process's
 * index (--follow) in the bits above the 47 of a user-space address. An
 * 8-byte key keeps a map element (48-byte kernel header, key, 32-byte value,
 * 8-byte allocator link) at 96 bytes, in the kernel's 96-byte size class. */
#define TRACER_KEY_ADDR_BITS 47
/* the key's top bit is TRACER_SLOT_BUSY: indexes stay below it */
#define TRACER_MAX_PROCS (1u << (63 - TRACER_KEY_ADDR_BITS))
/* Without --follow, the one process's index moves on at each exec (and
 * budget window) and wraps: user space frees the half behind it. */
#define TRACER_NEXT_TARGET_INDEX(i) (((i) + 1) % TRACER_MAX_PROCS)
#define TRACER_KEY(proc, addr) ((addr) | ((__u64)(proc) << TRACER_KEY_ADDR_BITS))
#define TRACER_KEY_ADDR(key) ((key) & ((1ull << TRACER_KEY_ADDR_BITS) - 1))
#define TRACER_KEY_PROC(key) ((__u32)((key) >> TRACER_KEY_ADDR_BITS))

/* One live allocation. site is frame 0 (the call site's return address)
 * or, with TRACER_SITE_STACK set, the key in native_stacks of the native
 * stack walked from there (whose first frame is that address): user-space
 * addresses have bits 47-63 clear, so one field holds either. */
#define TRACER_SITE_STACK (1ull << 63)
#define TRACER_SITE_IS_STACK(site) (((site)&TRACER_SITE_STACK) != 0)

/* A block's allocation time is kept in 32 bits, in units of 2^22 ns (4.19
 * ms) of CLOCK_MONOTONIC (bpf_ktime_get_ns): the slot stays 40 bytes, and an
 * age, the difference of two such times modulo 2^32, is right up to 208 days. */
#define TRACER_TIME_SHIFT 22
#define TRACER_TIME(ns) ((__u32)((ns) >> TRACER_TIME_SHIFT))

struct tracer_alloc_info {
	__u64 size;
	__u64 site;
	__u64 py_stack; /* key in py_stacks, 0: the thread ran no Python code */
	__u32 time;	/* TRACER_TIME of its allocation */
	__u32 domain;
};

/* The sites map: per (site, Python stack, domain, process index), what was
 * allocated there since tracing began, the blocks live there now, and those
 * that were live when the process's traced memory was at its peak.
 *
 * A temporary allocation is one freed by its thread before that thread's
 * next allocation (heaptrack's rule, kept per thread).
 *
 * The peak's live set is kept lazily: a process's peak_epoch moves on each
 * time an event raises its peak. Before a site changes, a site whose epoch
 * is older first copies its live figures into its peak figures (they were
 * the peak's) and takes the process's epoch; then it changes. So a site
 * whose epoch is older than its process's holds at the peak what it holds
 * now, else its peak figures. Exact when a process's events do not run at
 * the same time on two CPUs; events in flight on other CPUs while one sets
 * a peak may land on either side of it. */
struct tracer_sites_key {
	__u64 site;	/* as tracer_alloc_info.site */
	__u64 py_stack; /* as tracer_alloc_info.py_stack */
	__u32 domain;
	__u32 proc; /* TRACER_KEY_PROC */
};

struct tracer_site_stats {
	__u64 alloc_count, alloc_bytes; /* allocations since tracing began */
	__u64 temp_count, temp_bytes;	/* of which temporary */
	__s64 live_count, live_bytes;	/* blocks live now */
	__s64 peak_count, peak_bytes;	/* live at the peak of epoch */
	__u64 epoch;
};

/* Native unwinding (bpf/unwind.bpf.h) with the rows user/unwind/table.c
 * builds from each mapped file's CFI; table.h explains the encoding. A
 * row is { start, rule }: start the offset of its first byte from the
 * table's base, rule these fields. */
enum unwind_kind {
	UNWIND_NONE,
	UNWIND_CFA_RSP,
	UNWIND_CFA_RBP,
	UNWIND_PLT,
	UNWIND_STOP,
	UNWIND_CANNOT,
	UNWIND_KIND_COUNT
};

enum unwind_rbp {
	UNWIND_RBP_SAME,
	UNWIND_RBP_AT_CFA,
	UNWIND_RBP_LOST,
};

#define UNWIND_RULE_KIND_BITS 3
#define UNWIND_RULE_RBP_SHIFT 3
#define UNWIND_RULE_RBP_OFF_SHIFT 5
#define UNWIND_RULE_RBP_OFF_BITS 6
#define UNWIND_RULE_CFA_SHIFT 11
#define UNWIND_CFA_OFF_MAX ((1u << 21) - 1)
#define UNWIND_RBP_OFF_MIN (-256)
#define UNWIND_RBP_OFF_MAX 248

struct unwind_row {
	__u32 start; /* offset from the table's base */
	__u32 rule;
};

/* A rule from its fields, and its fields back: the one encoding, for the
 * table builder and the walker alike. */
static inline __u32 unwind_rule(unsigned kind, unsigned rbp, int rbp_off, __u32 cfa_off)
{
	return (__u32)kind | (__u32)rbp << UNWIND_RULE_RBP_SHIFT |
	       ((__u32)(rbp_off / 8) & 0x3f) << UNWIND_RULE_RBP_OFF_SHIFT |
	       cfa_off << UNWIND_RULE_CFA_SHIFT;
}

static inline unsigned unwind_rule_kind(__u32 rule)
{
	return rule & ((1u << UNWIND_RULE_KIND_BITS) - 1);
}

static inline unsigned unwind_rule_rbp(__u32 rule)
{
	return (rule >> UNWIND_RULE_RBP_SHIFT) & 3;
}

/* bytes from the CFA to the caller's saved rbp (RBP_AT_CFA) */
static inline int unwind_rule_rbp_off(__u32 rule)
{
	int v = (int)((rule >> UNWIND_RULE_RBP_OFF_SHIFT) & 0x3f);

	return (v >= 32 ? v - 64 : v) * 8;
}

/* the CFA offset, the PLT threshold or the CANNOT reason */
static inline __u32 unwind_rule_cfa_off(__u32 rule)
{
	return rule >> UNWIND_RULE_CFA_SHIFT;
}

/* The maps: every file's rows, one after the other, in unwind_rows; per
 * file a page index in unwind_pages, entry p holding the row that covers
 * the table offset p << TRACER_UNWIND_PAGE_SHIFT (so a lookup searches
 * only the rows of one page), one more entry after the last page; per
 * process its executable mappings, sorted, in unwind_procs. */
#define TRACER_UNWIND_PAGE_SHIFT 12
#define TRACER_UNWIND_MAX_MAPPINGS 1024 /* per process; a power of two */

struct tracer_unwind_mapping {
	__u64 start, end; /* [start, end) of the process's address space */
	__u64 bias;	  /* table offset = pc - bias */
	__u32 pages;	  /* the file's first entry in unwind_pages */
	__u32 npages;	  /* pages its table covers; 0: no CFI, frame pointers */
};

/* A tabled file, by identity, for an address the process's table does
 * not cover yet (a library mapped since, a launched program before its
 * first install): the walker finds the mapping with bpf_find_vma and
 * computes its bias from the file's PT_LOADs as user space does. */
#define TRACER_UNWIND_FILE_SEGS 4

struct tracer_unwind_file_key {
	__u64 dev; /* the kernel's encoding: major << 20 | minor */
	__u64 ino;
};

struct tracer_unwind_file {
	__u32 pages, npages; /* as in a mapping */
	__u32 nsegs, pad;
	__u64 base; /* the table's */
	struct {
		__u64 offset, vaddr, filesz;
	} segs[TRACER_UNWIND_FILE_SEGS];
};

struct tracer_unwind_proc {
	__u32 n; /* mappings */
	__u32 generation; /* user space's count of installs, for its own use */
	struct tracer_unwind_mapping m[TRACER_UNWIND_MAX_MAPPINGS];
};

/* Why a native walk ended. */
enum tracer_stack_end {
	TRACER_END_NFRAME,     /* nframe frames: complete as asked */
	TRACER_END_BOTTOM,     /* the outermost frame (CFI says so, or return address 0) */
	TRACER_END_NO_MAPPING, /* an address in no mapping the process's table holds */
	TRACER_END_NO_CFI,     /* no CFI covers the address */
	TRACER_END_CANNOT,     /* CFI the walker does not follow (table.h says why) */
	TRACER_END_RBP_LOST,   /* the CFA is rbp-based, and rbp was lost */
	TRACER_END_READ,       /* the stack could not be read there */
	TRACER_END_BAD_CFA,    /* the CFA is not above the stack pointer */
	TRACER_END_COUNT,
};

struct tracer_native_stack {
	__u32 nframe; /* pcs stored, frame 0 first */
	__u32 end;    /* enum tracer_stack_end */
	__u64 pcs[TRACER_MAX_NFRAME];
};

/* py_alloc_sites' key: a return address in a traced process at which
 * CPython's inlined raw allocator called libc's (user/python/sites.h). */
struct tracer_site_key {
	__u64 addr;
	__u32 tgid;
	__u32 pad;
};

/* The allocs table: an array of buckets of TRACER_BUCKET_SLOTS slots; a
 * key lives in one of two buckets chosen by hashing it (two-choice
 * hashing), so a lookup reads at most 2 buckets and a slot is freed by
 * zeroing its key: no chains, no tombstones, no allocation and no lock on
 * the probe path. A slot is 40 bytes, with no per-element header as a BPF
 * hash map has (48 bytes of it, plus allocator rounding: 96 bytes an
 * element). User space sizes it at 5/4 of --max-allocs: 50 bytes per
 * allocation kept, the allocation's time included. */
#define TRACER_BUCKET_SLOTS 4
#define TRACER_SLOT_BUSY (1ull << 63) /* key bit: being written, not yet valid */

struct tracer_slot {
	__u64 key; /* TRACER_KEY(proc, addr); 0: free */
	struct tracer_alloc_info info;
};

struct tracer_bucket {
	struct tracer_slot s[TRACER_BUCKET_SLOTS];
};

/* Bytes live in some domains, and the highest that figure reached since
 * start or reset. */
struct tracer_mem {
	__s64 current;
	__s64 peak;
};

/* Per traced process, updated where the events happen. */
struct tracer_proc_stats {
	__s64 current; /* bytes live, every domain */
	__s64 peak;    /* highest current since start or reset */
	__u64 allocs;  /* allocation events traced */
	__u64 frees;   /* frees of traced blocks */
	/* the same by class of domain (enum tracer_domain_class) */
	struct tracer_mem classes[TRACER_NCLASSES];
	/* the reset_peak() (SIGUSR2) its peaks date from: when the global
	 * peak_generation has moved on, every peak here is its current */
	__u64 peak_generation;
	/* set when the process's interpreter starts finalising (Py_FinalizeEx):
	 * from then on its live set stays as it was, as the program's own last
	 * take_snapshot() would see it, and events are only counted */
	__u64 finalized;
	/* moves on at each new peak and at reset_peak(): the sites map's
	 * figures at the peak are of this epoch (struct tracer_site_stats) */
	__u64 peak_epoch;
	/* set once the process has had a block in the mmap domain: only then
	 * may a munmap the kernel's busy mappings hid from us have cut one
	 * (TRACER_CNT_MMAP_UNFOLLOWED) */
	__u64 mapped;
};

/* -a: what user space should look at in a process (proc_notices' value,
 * or'ed): it is newly traced (fork, exec), or its objects changed. */
enum tracer_notice {
	TRACER_NOTICE_NEW = 1,	  /* traced since user space last looked */
	TRACER_NOTICE_LOADED = 2, /* exec'd or loaded objects (dlopen) */
	TRACER_NOTICE_EXEC = 4,	  /* a new image: an interpreter it ran is gone */
};
#define TRACER_MAX_FILTERS 16 /* --comm and --cgroup values each */
#define TRACER_COMM_LEN 16

/* What a process that left at its exit (traced_exit) was, as the kernel
 * has it then (exit_notes' value): user space may never have seen it
 * alive (it lived less than one of its loop turns), and still gives it a
 * row. */
#define TRACER_EXIT_ARGS 256 /* of its command line, a power of two */
struct tracer_exit_note {
	char comm[TRACER_COMM_LEN];
	__u64 start_ns; /* its start, ns of CLOCK_BOOTTIME */
	__u64 cgroup_id; /* its cgroup v2's (the inode of its directory) */
	__u32 ns_pid;	/* its pid in its own pid namespace */
	__u32 args_len; /* bytes in args */
	char args[TRACER_EXIT_ARGS]; /* its arguments, each ended by a NUL, cut there */
};

/* --budget: probe hits of one traced process (bpf proc_hits): of the
 * probes attached within windows only (allocations) and of the others
 * (frees, and reallocs, which free) */
#define TRACER_HIT_SLOTS 4096
struct tracer_hits {
	__u64 allocating;
	__u64 freeing;
};

/* Why a launched thread stopped for the tracer (loader_stops' value). */
enum tracer_stop {
	TRACER_STOP_LOADER = 1, /* its dynamic linker changed its objects */
	TRACER_STOP_PYTHON,	/* CPython starts, or a watched code object goes */
};

/* Everything that can be lost or is worth knowing; reported by name. */
enum tracer_counter {
	TRACER_CNT_ALLOCS_FULL, /* allocs table full: allocation not traced */
	TRACER_CNT_ALLOCS_FULL_BYTES,
	TRACER_CNT_STACK_LOST,	     /* native stack table full: frame 0 only */
	TRACER_CNT_UNWIND_NO_TABLE,  /* walks before the process's table was installed (slow path) */
	TRACER_CNT_THREAD_LOST,	     /* no per-thread slot for an entry probe */
	TRACER_CNT_RETURN_UNMATCHED, /* return probe without its entry (attached mid-call) */
	TRACER_CNT_PROCS_FULL,	     /* per-process stats table full */
	TRACER_CNT_FAILED_ALLOCS,    /* allocator returned NULL: not a trace */
	TRACER_CNT_UNKNOWN_FREES,    /* free of a block allocated before attach */
	TRACER_CNT_PY_UNREADABLE,    /* a Python frame or thread state could not be read */
	TRACER_CNT_PY_STACKS_FULL,   /* Python stack table full: native frames only */
	TRACER_CNT_AFTER_FINALIZE,   /* events after Py_FinalizeEx began: not applied */
	/* in a CPython process, a libc realloc of a block not traced (from
	 * before attach) by a caller that is not CPython's inlined allocator:
	 * its domain is unknown, it is counted as libc's */
	TRACER_CNT_REALLOC_DOMAIN_UNKNOWN,
	/* the dynamic linker changed a launched process's objects, and it
	 * could not be stopped there: what it loaded is probed late */
	TRACER_CNT_LOADER_STOP_LOST,
	TRACER_CNT_SITES_FULL, /* sites map full: allocation kept out of per-site figures */
	TRACER_CNT_NOTICES_LOST, /* -a: proc_notices full: user space rescans every process */
	/* the mmap domain: a munmap (or mremap) of a hole in a block's middle
	 * splits it in two, both with the block's traceback */
	TRACER_CNT_MMAP_SPLITS,
	/* a munmap or mremap inside a block not followed: the kernel's
	 * mappings could not be looked up then (the address space was busy) */
	TRACER_CNT_MMAP_UNFOLLOWED,
	/* a CPython allocator whose return is caught at its call sites
	 * (py_malloc_inner) was called from elsewhere: not traced */
	TRACER_CNT_PY_RETURN_UNCAUGHT,
	/* -a with filters, several -p: a process BPF began tracing (a fork,
	 * an exec) that exited before user space attached its probes (set by
	 * user space: collector.gone_before_probed) */
	TRACER_CNT_GONE_BEFORE_PROBED,
	/* an object taken from a free list whose thread's frames could not be
	 * read: its block keeps its line (tracemalloc would move it) */
	TRACER_CNT_FREE_LIST_UNREADABLE,
	/* a block still traced at an address an allocator gave out again: its
	 * free reached no probe (on LTO CPython under --hook-pymalloc, a
	 * pymalloc block the inlined realloc of NULL made, freed by the
	 * inlined pymalloc free); it counted as live until then */
	TRACER_CNT_FREES_UNSEEN,
	/* pymalloc blocks its inlined free gave back, found free in its pools
	 * by user space at a report: they counted as live until then */
	TRACER_CNT_POOL_FREES_FOUND,
	/* pool_marks full: a pymalloc block not marked, whose free by the
	 * inlined free would not be found */
	TRACER_CNT_POOL_MARKS_FULL,
	/* marked pymalloc blocks whose pool the last report could not check
	 * (its process's memory unreadable, the pool not made out, no memory
	 * for the check, or the kernel refused forget_pool_free's test run):
	 * they stay in the figures until a later report can (set by user
	 * space at each report, not summed: pool_frees.c) */
	TRACER_CNT_POOL_CHECKS_FAILED,
	TRACER_CNT_MAX,
};

struct tracer_counters {
	__u64 c[TRACER_CNT_MAX];
};

#endif
