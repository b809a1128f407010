// SPDX-License-Identifier: GPL-2.0
/* tracer's probes: allocator entries stash their arguments per thread, the
 * return probes record the block with its call site and stack, free removes
 * it. Only the outermost allocator call of a thread is recorded (like
 * tracemalloc's reentrancy flag), so realloc(NULL, n) -> malloc or a Python
 * allocator -> libc malloc counts once.
 *
 * The file reads top down, each part using only what stands above it:
 *   1. settings: the rodata user space sets before load, and the globals it
 *      reads or writes while tracing;
 *   2. every map, after the BPF-only types of their values;
 *   3. count() and mix64(), which every part uses;
 *   4. the parts with a file of their own (python.bpf.h: the Python frame
 *      walker), which declare no map or setting and need only 1 to 3;
 *   5. which processes are traced, the allocation table, the probes'
 *      bodies;
 *   6. the SEC programs, thin wrappers over 5.
 * So this top is all that user space sees through the skeleton (its maps,
 * rodata and bss, each named here), and a .bpf.h is included at the one
 * place where what it needs is declared. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "tracer.h"

char LICENSE[] SEC("license") = "GPL";

/* 1. Settings. */

/* Read-only once loaded; user/session.c sets them from the options. */
const volatile bool probe_only = false;	   /* the floor: probes that do nothing */
const volatile bool filter_pids = false;   /* --follow: trace tgids in traced_pids */
const volatile bool capture_stack = false; /* nframe > 1 */
/* --native: Python tracebacks keep their C frames too. Without it a thread
 * running Python gets Python frames only, so its native stack is not
 * walked: CPython has no frame pointers, so those walks yield distinct
 * garbage stacks that would fill the stack map and cost ~0.5 us each. */
const volatile bool native_with_python = false;
const volatile __u32 alloc_buckets = 1;	   /* allocs' max_entries (session_alloc_buckets) */
const volatile __u64 max_traces = 1 << 20; /* --max-allocs */
const volatile __u32 nframe = 1;	   /* -n: Python frames kept per traceback */
/* native frames walked: nframe, and more to stand in for allocator
 * plumbing that user/resolve.c leaves out (resolve_walk_depth) */
const volatile __u32 native_nframe = 1;
/* launch mode: every traced process is ptrace'd by the tracer, which stops
 * it where its dynamic linker has just mapped objects (loader_changed) */
const volatile bool loader_stop = false;
/* --keep-exited: a --follow child that exits keeps its blocks live */
const volatile bool keep_exited = false;
/* --budget: probe hits are counted per process (proc_hits) */
const volatile bool count_hits = false;

/* -a: every process but the tracer is traced, or with filters (--comm,
 * --cgroup) those that match at their exec; a child of a traced process
 * is traced. Excluded pids (excluded_pids) never are. */
const volatile bool trace_all = false;
/* several processes each on its own (-a, several -p): user space hears of
 * their execs and loads through proc_notices */
const volatile bool multi = false;
const volatile __u32 tracer_tgid = 0;
const volatile __u32 nfilter_comms = 0;
const volatile char filter_comms[TRACER_MAX_FILTERS][TRACER_COMM_LEN] = {};
/* a cgroup matches when it is one of these or below one: its ancestor at
 * the filter's level (depth below the root) has the filter's id */
const volatile __u32 nfilter_cgroups = 0;
const volatile __u64 filter_cgroup_ids[TRACER_MAX_FILTERS] = {};
const volatile __u32 filter_cgroup_levels[TRACER_MAX_FILTERS] = {};

/* Globals. */
__u64 live_traces = 0;	 /* traces stored; user space takes off those it sweeps */
/* user space set a probe that marks pymalloc's blocks (pool_marks): frees
 * take their marks away */
__u32 pool_marking = 0;
__u64 overflow_used = 0; /* of which in allocs_overflow; session.c reads it */
/* The one traced process without --follow (its uprobes are attached to it
 * alone; this also keeps out a child that inherited the breakpoints);
 * session.c sets it before attaching. */
__u32 target_tgid = 0;
/* Its index in allocation keys: a new one at each exec (traced_exec), so
 * that the blocks of the image it replaced are told from its own. */
__u32 target_index = 0;
/* --follow: the next index never given out (index_process, and user
 * space's collect_index_process); those of processes gone come back through
 * free_indexes. */
__u32 next_proc_index = 0;
/* The indexes given out are below this (session.c: TRACER_MAX_PROCS, or
 * fewer with $TRACER_PROC_INDEXES, for tests of their reuse) */
const volatile __u32 proc_index_limit = TRACER_MAX_PROCS;
/* Each index's generation: odd from the moment it is given out until the
 * process holds it in traced_pids, even after. User space frees an index
 * (its blocks, its sites) and queues it again only once it has seen it held
 * by none at two sweeps in a row with one even generation, which no index
 * in flight or given out since has (collect_sweep_gone). */
__u32 index_gen[TRACER_MAX_PROCS] = {};
/* Indexes user space asked for and found none (proc_index_give): counted
 * with TRACER_CNT_PROCS_FULL. */
__u64 procs_full_in_user_space = 0;
/* One traced process (the common case) keeps its figures in a global: no
 * lookup on the probe path; session.c reads it. --follow keeps them in
 * procs. */
struct tracer_proc_stats target_stats = {};
/* reset_peak(): user space adds one; each process's figures catch up at
 * their next event (add_current), user space reads stale ones as reset */
__u64 peak_generation = 0;
/* Native stacks stored in native_stacks: user/stacks.c drains early when
 * this runs ahead of what it has taken. */
__u64 native_stacks_added = 0;
/* Walks that found no table for their process, or an address in none of
 * its mappings: user/unwind/maps.c reads the mappings again when it moves. */
__u64 unwind_wanted = 0;
/* user/python/frames.c sets it once a traced process is known to run
 * CPython (its config is then in py_configs). */
bool python_enabled = false;
/* Times a traced process's objects changed (its dynamic linker's dlopen,
 * an exec): user space probes what they define when it moves. */
__u64 loader_changes = 0;
/* Execs of traced processes (traced_exec), and --follow children that
 * left at their exit (traced_exit). */
__u64 execs = 0;
__u64 exits = 0;
/* -a: entries made in proc_notices */
__u64 notices = 0;
/* set while the tracer lets a launched command go: no stop is sent then */
bool stops_off = false;
/* --budget (user/budget.c): set between allocation windows, when only
 * the probes that free are attached; a realloc then forgets the block it
 * replaces and records none. */
bool between_windows = false;
/* --budget: times the live set of a window was dropped (every probe
 * windowed): collect_sweep_gone frees the slots of the old indexes */
__u64 window_drops = 0;

/* 2. Maps, and the types of their values that only BPF knows. */

/* Live allocations (tracer.h: two-choice buckets of slots). Mapped by user
 * space too, which frees the slots of processes gone (collect_sweep_gone). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1); /* buckets: session.c sizes it (alloc_buckets) */
	__type(key, __u32);
	__type(value, struct tracer_bucket);
} allocs SEC(".maps");

/* Blocks whose two buckets were both full: rare below ~3/4 of the
 * buckets' capacity; allocated as used. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1); /* session.c sizes it from --max-allocs */
	__type(key, __u64);
	__type(value, struct tracer_alloc_info);
} allocs_overflow SEC(".maps");

/* Native stacks, when nframe > 1, under the key a trace keeps (its site,
 * TRACER_SITE_STACK set), awaiting user space: user/stacks.c moves each
 * into its own store at every drain (~0.25 s, and sooner when
 * native_stacks_added runs ahead) and deletes it here. So what bounds it is
 * the number of new distinct stacks between two drains; a stack beyond it
 * counts TRACER_CNT_STACK_LOST and its trace keeps frame 0 only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1); /* session.c sizes it: --max-stacks */
	__type(key, __u64);
	/* session.c sets it: the header and nframe pcs */
	__uint(value_size, sizeof(struct tracer_native_stack));
} native_stacks SEC(".maps");

/* BPF only: the native stack being walked. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tracer_native_stack);
} native_scratch SEC(".maps");

/* BPF only: per CPU, the rule found for recent return addresses, so that
 * the stacks allocations repeat skip both binary searches. Direct-mapped;
 * an entry holds for the process's table of that generation only. */
#define UNWIND_CACHE_SIZE 4096 /* a power of two */

struct unwind_cache_entry {
	__u64 pc;
	__u32 tgid;
	__u32 generation;
	__u32 rule;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, UNWIND_CACHE_SIZE);
	__type(key, __u32);
	__type(value, struct unwind_cache_entry);
} unwind_cache SEC(".maps");

/* Unwind tables (tracer.h), written by user/unwind/maps.c through mmap:
 * every file's rows one after the other, and per file its page index. Sized
 * at load from the files the target maps, with room for more. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1); /* session.c sizes it */
	__type(key, __u32);
	__type(value, struct unwind_row);
} unwind_rows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1); /* session.c sizes it */
	__type(key, __u32);
	__type(value, __u64); /* a row index (u64: array elements are 8-aligned) */
} unwind_pages SEC(".maps");

/* Every tabled file by identity (user/unwind/maps.c), for addresses a
 * process's table does not cover yet. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384); /* fixed; user space counts files beyond it */
	__type(key, struct tracer_unwind_file_key);
	__type(value, struct tracer_unwind_file);
} unwind_files SEC(".maps");

/* tgid -> its executable mappings and their tables (user/unwind/maps.c);
 * a fork copies the parent's (follow_fork), an exec drops it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096); /* fixed, as procs */
	__type(key, __u32);
	__type(value, struct tracer_unwind_proc);
} unwind_procs SEC(".maps");

/* Per site over the run, its live blocks and those at the peak (tracer.h:
 * struct tracer_site_stats); user/collect.c reads it whole at each
 * snapshot. Sites are never deleted: the figures are since tracing began. */
#define TRACER_MAX_SITES (1 << 16)

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TRACER_MAX_SITES); /* fixed; beyond it TRACER_CNT_SITES_FULL */
	__type(key, struct tracer_sites_key);
	__type(value, struct tracer_site_stats);
} sites SEC(".maps");

/* --follow: tgid -> its figures (target_stats without --follow). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* fixed; beyond it, TRACER_CNT_PROCS_FULL */
	__type(key, __u32);
	__type(value, struct tracer_proc_stats);
} procs SEC(".maps");

/* --follow: tgid -> the process's index in allocation keys; session.c adds
 * the first processes, follow_fork their children. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* fixed; beyond it, TRACER_CNT_PROCS_FULL */
	__type(key, __u32);
	__type(value, __u32);
} traced_pids SEC(".maps");

/* Indexes swept by user space, to be given out again; only user space
 * pushes (BPF pops). */
struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, TRACER_MAX_PROCS);
	__type(value, __u32);
} free_indexes SEC(".maps");

/* -a: the processes user space should look at (enum tracer_notice) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* beyond it TRACER_CNT_NOTICES_LOST: all are rescanned */
	__type(key, __u32);
	__type(value, __u32);
} proc_notices SEC(".maps");

/* --follow, -a: processes that left at their exit, as they were then
 * (tracer.h); user/collect.c deletes each once it has its row. LRU: the
 * note of a process user space saw alive (and so never reads) goes first. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct tracer_exit_note);
} exit_notes SEC(".maps");

/* several -p: the processes given, which keep their blocks at their exit
 * as one -p does (a report of what it held, leaks) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} kept_pids SEC(".maps");

/* -a: --exclude-pid's processes */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} excluded_pids SEC(".maps");

/* --budget: probe hits per traced process (its index in allocation keys,
 * modulo TRACER_HIT_SLOTS; 0 without --follow), per CPU: no atomics on
 * the probe path. user/budget.c sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TRACER_HIT_SLOTS);
	__type(key, __u32);
	__type(value, struct tracer_hits);
} proc_hits SEC(".maps");

/* What was lost or is worth knowing (tracer.h); session.c sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tracer_counters);
} counters SEC(".maps");

/* BPF only: a zeroed sites value, to create entries from. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tracer_site_stats);
} site_zero SEC(".maps");

/* BPF only: the block this CPU last saw freed. Python's free of a block
 * from the raw domain runs the raw free and libc's free beneath it (and
 * tracemalloc's free hook the real free beneath it), whose probes then see
 * a block already forgotten, or one untraced already counted: that is not
 * another untraced block. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} last_freed SEC(".maps");

/* The allocator call in flight on a thread (BPF only). */
struct pending {
	__u64 outer_sp; /* stack pointer at the outermost entry */
	__u64 size;
	__u64 oldptr; /* realloc: the block being replaced */
	__u64 memptr; /* posix_memalign: where the block is written */
	/* py_site_enter: the stack pointer at a tail jump of CPython's inlined
	 * raw allocator to libc's; the entry that follows at that stack
	 * pointer is in the Python domain. 0: none */
	__u64 site_sp;
	/* py_raw_tail_*'s mark also gives the size CPython's raw function was
	 * asked for (it asks libc for 1 byte where that is 0) */
	__u64 site_size;
	__u32 site_sized;
	/* the key of the thread's last allocation: freed before its next
	 * one, it was a temporary allocation (tracer.h) */
	__u64 last_key;
	__u64 old_size; /* mremap: the length of the pages at oldptr */
	__u64 flags;	/* mremap: its MREMAP_* flags */
	/* py_malloc_inner's stash: the return address its call site's probe
	 * (py_call_return) is at; 0 for a stash whose return probe is a
	 * uretprobe */
	__u64 call_ret;
	/* the size of the thread's last allocation (at last_key) until CPython
	 * initialises an object (py_new_reference): one in that block has its
	 * traceback already. 0: none (also whenever last_key is cleared) */
	__u64 fresh_size;
	__u32 depth;  /* nesting of allocator calls; 0 = idle */
	__u32 domain;
	__u32 kind;
	/* the call is pymalloc's (TRACER_COOKIE_POOLED), of 1-512 bytes, and
	 * no other allocator's call beneath it so far: its block lies in a
	 * pool of 2^pooled bytes (0: not pymalloc's) */
	__u32 pooled;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct pending); /* one per thread, made by its first entry probe */
} pendings SEC(".maps");

/* Return addresses at which CPython's inlined raw allocator (PyMem_RawMalloc
 * & co, inlined by LTO) calls libc's malloc, calloc or realloc: such a block
 * is in the Python domain, as tracemalloc traces it.
 * user/python/alloc.c adds them (user/python/sites.c finds them); alloc_exit
 * looks the return address of an outermost libc call up. The tail jumps
 * among those calls have no return address in CPython: py_site_enter is
 * probed on them. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1 << 12); /* fixed; beyond it alloc.c warns */
	__type(key, struct tracer_site_key);
	__type(value, __u32); /* the domain */
} py_alloc_sites SEC(".maps");

/* Return addresses of the direct calls of a CPython allocator whose own
 * entry has no instruction a return probe could sit on without being
 * single-stepped (3.11's _PyObject_Malloc: `lea; sub $0x18,%rsp`): its
 * return is caught at each call site instead (py_call_return), and its
 * entry probe (py_malloc_inner) stashes a call only from one of these.
 * user/python/alloc.c adds them. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1 << 10); /* fixed; beyond it alloc.c warns */
	__type(key, struct tracer_site_key);
	__type(value, __u32); /* unused */
} py_call_returns SEC(".maps");

/* Trace key -> the mark of a block pymalloc made where its frees may run
 * unprobed (TRACER_COOKIE_POOLED); user space checks them against pymalloc's
 * pools at each report (forget_pool_free). A free a probe sees takes its
 * mark away; user space those of processes gone. Full: counted
 * (TRACER_CNT_POOL_MARKS_FULL). session.c sizes it as the allocs table. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1 << 20);
	__type(key, __u64);
	__type(value, struct tracer_pool_mark);
} pool_marks SEC(".maps");

/* tgid -> how to walk its CPython frames: user/python/frames.c adds it (the
 * walker fills in tss_key once the interpreter has created it). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024); /* fixed */
	__type(key, __u32);	   /* tgid */
	__type(value, struct tracer_py_config);
} py_configs SEC(".maps");

/* Python stacks, under the key a trace keeps (tracer_alloc_info.py_stack),
 * awaiting resolution: python_frames_poll (user/python/frames.c, every
 * ~0.25 s and before each snapshot) resolves each into its cache and
 * deletes it here. So what bounds it is the number of new distinct stacks
 * between two polls, not --max-stacks (which sizes stacks): the size is
 * fixed, the poll reads up to as many keys, and a stack beyond it counts
 * TRACER_CNT_PY_STACKS_FULL and its trace keeps native frames only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1 << 14); /* fixed; frames.c's poll buffer matches */
	__type(key, __u64);
	__type(value, struct tracer_py_stack);
} py_stacks SEC(".maps");

/* Launch mode: the code objects that stacks awaiting resolution in
 * py_stacks refer to. When one is about to be freed (py_code_dealloc) the
 * process stops until user space has resolved them: the code of a `-c`
 * string or of a module's body lives only while it runs. user/python/
 * frames.c deletes an entry once it has resolved its stack. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 14);
	__type(key, __u64);
	__type(value, __u8);
} py_pending_code SEC(".maps");

/* BPF only: the Python stack being walked (too large for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tracer_py_stack);
} py_scratch SEC(".maps");

/* The walker reads a frame, or a code object's fields, PY_READ bytes at a
 * time. Frames of 3.11+ sit next to each other in the thread's data stack,
 * the newest highest: one read of the PY_WINDOW bytes ending with a frame
 * usually holds its callers too, where a read per frame would cost ~100 ns
 * each. Both are powers of two: python.bpf.h masks offsets with them. */
#define PY_READ 128
#define PY_WINDOW 2048
_Static_assert(!(PY_READ & (PY_READ - 1)) && !(PY_WINDOW & (PY_WINDOW - 1)),
	       "python.bpf.h masks offsets with PY_READ - 1 and PY_WINDOW - 1");

/* BPF only: a map value, since fields sit at offsets known only at run time
 * (the stack forbids variable-offset reads). */
struct py_frame_buf {
	__u8 win[PY_WINDOW + PY_READ]; /* frames: a window, or one frame */
	__u8 code[PY_READ];	       /* a code object from co_filename to _co_firsttraceable */
	/* the walk's state that takes few values (py_walk): here, in a map,
	 * not on the stack, where the verifier would tell every combination
	 * of them apart at each step of bpf_loop's callback */
	__u64 win_base;	 /* address of win[0]; 0: nothing read */
	__u32 win_len;	 /* bytes read there */
	__u8 started;	 /* a complete frame was seen: the frames above it are too */
	__u8 ident_read; /* code holds this frame's code identity */
	__u8 unreadable;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct py_frame_buf);
} py_frame_bufs SEC(".maps");

/* Threads stopped at their dynamic linker's _dl_debug_state
 * (loader_changed), so that user space knows the stop for its own. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u32);
} loader_stops SEC(".maps");

/* 3. What every part uses. */

static __always_inline void count(enum tracer_counter c, __u64 n)
{
	__u32 zero = 0;
	struct tracer_counters *cs = bpf_map_lookup_elem(&counters, &zero);

	if (cs && c < TRACER_CNT_MAX)
		cs->c[c] += n;
}

/* The one mixer of this program: murmur3's 64-bit finalizer, a bijection
 * whose every output bit depends on every input bit. The allocation
 * table's bucket indexes take its two halves; the Python walker chains it
 * (mix64(h ^ v)) into a stack's key. Nothing in user space recomputes
 * either: it reads the buckets whole and uses the keys as they are. */
static __always_inline __u64 mix64(__u64 h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

/* 4. Parts in files of their own. */

#include "python.bpf.h" /* py_capture() */
#include "unwind.bpf.h" /* native_capture() */

/* 5. Which processes are traced, the allocation table, the probes' bodies. */

/* -a: tells user space to look at tgid (enum tracer_notice). */
static __always_inline void notice(__u32 tgid, __u32 what)
{
	__u32 *v;

	if (!trace_all && !multi)
		return;
	__sync_fetch_and_add(&notices, 1);
	v = bpf_map_lookup_elem(&proc_notices, &tgid);
	if (v) {
		__sync_fetch_and_or(v, what);
		return;
	}
	if (bpf_map_update_elem(&proc_notices, &tgid, &what, BPF_NOEXIST) &&
	    !bpf_map_lookup_elem(&proc_notices, &tgid))
		count(TRACER_CNT_NOTICES_LOST, 1);
}

static __always_inline bool filtered(void)
{
	return nfilter_comms || nfilter_cgroups;
}

/* -a: whether the calling process (just exec'd) matches --comm and
 * --cgroup, and is neither excluded nor the tracer. */
static __always_inline bool wanted_now(__u32 tgid)
{
	char comm[TRACER_COMM_LEN];
	bool ok = !nfilter_comms;

	if (tgid == tracer_tgid || bpf_map_lookup_elem(&excluded_pids, &tgid))
		return false;
	if (nfilter_comms) {
		bpf_get_current_comm(comm, sizeof(comm));
		for (int i = 0; i < TRACER_MAX_FILTERS && !ok; i++) {
			bool same = true;

			if (i >= nfilter_comms)
				break;
			for (int j = 0; j < TRACER_COMM_LEN; j++) {
				if (comm[j] != filter_comms[i][j]) {
					same = false;
					break;
				}
				if (!comm[j])
					break;
			}
			ok = same;
		}
	}
	if (!ok || !nfilter_cgroups)
		return ok;
	for (int i = 0; i < TRACER_MAX_FILTERS; i++) {
		if (i >= nfilter_cgroups)
			break;
		if (bpf_get_current_ancestor_cgroup_id(filter_cgroup_levels[i]) ==
		    filter_cgroup_ids[i])
			return true;
	}
	return false;
}

/* Gives tgid a new index in allocation keys (traced from now on, or a new
 * image): false when none is left or the table is full (counted). */
static __always_inline bool index_process(__u32 tgid, __u64 flags)
{
	__u32 idx, *gen;
	int err;

	if (bpf_map_pop_elem(&free_indexes, &idx))
		idx = __sync_fetch_and_add(&next_proc_index, 1);
	if (idx >= proc_index_limit) { /* at most TRACER_MAX_PROCS */
		count(TRACER_CNT_PROCS_FULL, 1);
		return false;
	}
	gen = &index_gen[idx & (TRACER_MAX_PROCS - 1)]; /* a power of two */
	__sync_fetch_and_add(gen, 1); /* odd: in flight */
	err = bpf_map_update_elem(&traced_pids, &tgid, &idx, flags);
	/* even: held, or (not inserted) left for the sweep to take back */
	__sync_fetch_and_add(gen, 1);
	if (err) {
		count(TRACER_CNT_PROCS_FULL, 1);
		return false;
	}
	return true;
}

/* Whether tgid is traced; *proc receives its index for allocation keys. */
static __always_inline bool traced_proc(__u32 tgid, __u32 *proc)
{
	__u32 *idx;

	if (!filter_pids) {
		*proc = target_index;
		return tgid == target_tgid;
	}
	idx = bpf_map_lookup_elem(&traced_pids, &tgid);
	if (!idx)
		return false;
	*proc = *idx;
	return true;
}

static __always_inline bool traced(__u32 tgid)
{
	__u32 proc;

	return traced_proc(tgid, &proc);
}

/* The calling process, when its events are recorded (not the floor, a
 * traced process): its tgid and its index in allocation keys. */
static __always_inline bool recording(__u32 *tgid, __u32 *proc)
{
	if (probe_only)
		return false;
	*tgid = bpf_get_current_pid_tgid() >> 32;
	return traced_proc(*tgid, proc);
}

/* --budget: one probe hit of process proc, of the allocating kind (the
 * probes attached within windows only) or of the freeing kind. */
static __always_inline void hit(__u32 proc, bool allocating)
{
	__u32 slot = filter_pids ? proc % TRACER_HIT_SLOTS : 0;
	struct tracer_hits *h;

	if (!count_hits)
		return;
	h = bpf_map_lookup_elem(&proc_hits, &slot);
	if (!h)
		return;
	if (allocating)
		h->allocating++;
	else
		h->freeing++;
}

/* tgid's figures: target_stats, or with --follow its entry in procs (made
 * when create is set); NULL when procs is full. */
static __always_inline struct tracer_proc_stats *proc_stats(__u32 tgid, bool create)
{
	struct tracer_proc_stats zero = {}, *st;

	if (!filter_pids)
		return &target_stats;
	st = bpf_map_lookup_elem(&procs, &tgid);
	if (st || !create)
		return st;
	bpf_map_update_elem(&procs, &tgid, &zero, BPF_NOEXIST); /* may race: fine */
	st = bpf_map_lookup_elem(&procs, &tgid);
	if (!st)
		count(TRACER_CNT_PROCS_FULL, 1);
	return st;
}

/* The calling thread's slot of pendings, made at its first call; NULL
 * (counted) when none can be. */
static __always_inline struct pending *thread_pending(void)
{
	struct pending *p = bpf_task_storage_get(&pendings, bpf_get_current_task_btf(), 0,
						 BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (!p)
		count(TRACER_CNT_THREAD_LOST, 1);
	return p;
}

/* The log2 of the pool a pymalloc call's block of size bytes will lie in,
 * from its probe's cookie; 0 when not pymalloc's or not small. */
static __always_inline __u32 pool_bits(__u64 cookie, __u64 size)
{
	if (!(cookie & TRACER_COOKIE_POOLED) || size == 0 || size > PYMALLOC_SMALL)
		return 0;
	return (cookie & TRACER_COOKIE_SMALL_POOLS) ? 12 : 14;
}

/* Entry of an allocator: the outermost call of the thread stashes its
 * arguments; nested calls only deepen (a tail call, realloc -> jmp malloc,
 * enters at the same stack pointer). A stash whose outer frame lies below
 * the current stack pointer belongs to a call that never returned through
 * our probe (longjmp): start afresh. A call caught at its entry but not at
 * its return would look like an outer frame for every later call from the
 * same depth: the return probes go in before the entry probes (probes.c). */
static __always_inline int alloc_enter(struct pt_regs *ctx, __u32 domain, __u32 kind, __u64 size,
				       __u64 oldptr, __u64 memptr)
{
	struct pending *p;
	__u64 sp = PT_REGS_SP(ctx);
	bool libc = domain == TRACER_DOMAIN_LIBC;
	__u32 proc;

	if (probe_only)
		return 0;
	if (!traced_proc(bpf_get_current_pid_tgid() >> 32, &proc))
		return 0;
	hit(proc, kind != TRACER_KIND_REALLOC && kind != TRACER_KIND_MREMAP);
	p = thread_pending();
	if (!p)
		return 0;
	if (p->site_sp) { /* py_site_enter's mark is for the call it jumps to */
		if (p->site_sp == sp && domain == TRACER_DOMAIN_LIBC) {
			domain = TRACER_DOMAIN_PYTHON;
			if (p->site_sized)
				size = p->site_size;
		}
		p->site_sp = 0;
		p->site_sized = 0;
	}
	if (p->depth && sp <= p->outer_sp) {
		p->depth++;
		/* pymalloc gave the call to another allocator */
		if (p->pooled && !(bpf_get_attach_cookie(ctx) & TRACER_COOKIE_POOLED))
			p->pooled = 0;
		return 0;
	}
	p->outer_sp = sp;
	p->size = size;
	p->oldptr = oldptr;
	p->memptr = memptr;
	p->domain = domain;
	p->kind = kind;
	p->call_ret = 0;
	p->depth = 1;
	p->pooled = libc ? 0 : pool_bits(bpf_get_attach_cookie(ctx), size);
	return 0;
}

/* Entry of an allocator probed past its frame's making, without a return
 * probe of its own (py_call_returns): the call is stashed when it comes
 * from a call site whose return probe reads its result; within another
 * traced call it is that call's (its return records); from anywhere else
 * it is counted, not traced. */
static __always_inline int inner_enter(struct pt_regs *ctx, __u32 kind, __u64 size)
{
	__u64 cookie = bpf_get_attach_cookie(ctx), ret = 0;
	__u64 sp = PT_REGS_SP(ctx) + ((cookie >> TRACER_COOKIE_SP_SHIFT) & TRACER_COOKIE_SP_MASK);
	struct tracer_site_key k = {};
	struct pending *p;
	__u32 proc;

	if (probe_only)
		return 0;
	k.tgid = bpf_get_current_pid_tgid() >> 32;
	if (!traced_proc(k.tgid, &proc))
		return 0;
	hit(proc, kind != TRACER_KIND_REALLOC);
	p = thread_pending();
	if (!p)
		return 0;
	p->site_sp = 0;
	if (p->depth && sp <= p->outer_sp)
		return 0;
	if (bpf_probe_read_user(&ret, sizeof(ret), (void *)sp))
		ret = 0;
	k.addr = ret;
	if (!ret || !bpf_map_lookup_elem(&py_call_returns, &k)) {
		count(TRACER_CNT_PY_RETURN_UNCAUGHT, 1);
		return 0;
	}
	p->outer_sp = sp;
	p->size = size;
	p->oldptr = 0;
	p->memptr = 0;
	p->domain = TRACER_DOMAIN_PYTHON;
	p->kind = kind;
	p->call_ret = ret;
	p->depth = 1;
	p->pooled = pool_bits(cookie, size);
	return 0;
}

/* Adds delta to a current figure and raises its peak to it; returns
 * whether it did raise it. */
static __always_inline bool mem_add(__s64 *current, __s64 *peakp, __s64 delta)
{
	__s64 cur, peak;
	int i;

	cur = __sync_add_and_fetch(current, delta);
	if (delta <= 0)
		return false;
	peak = *peakp;
	for (i = 0; i < 8 && cur > peak; i++) {
		__s64 old = __sync_val_compare_and_swap(peakp, peak, cur);

		if (old == peak)
			return true;
		peak = old;
	}
	return false;
}

/* The figures of domain's class (tracer.h: python or native). */
static __always_inline struct tracer_mem *class_mem(struct tracer_proc_stats *st, __u32 domain)
{
	return TRACER_CLASS_OF(domain) ? &st->classes[TRACER_CLASS_NATIVE]
				       : &st->classes[TRACER_CLASS_PYTHON];
}

/* Traced memory changes by delta in domain: every domain's figure and its
 * class's. */
/* A reset_peak() since the process's last event: its peaks become its
 * current figures, and its live set now is the peak's (a new epoch). Done
 * before anything of the event changes. */
static __always_inline void peak_catch_up(struct tracer_proc_stats *st)
{
	__u64 gen = peak_generation;

	if (st->peak_generation == gen)
		return;
	st->peak_generation = gen;
	st->peak = st->current;
	for (int k = 0; k < TRACER_NCLASSES; k++)
		st->classes[k].peak = st->classes[k].current;
	__sync_fetch_and_add(&st->peak_epoch, 1);
}

static __always_inline void add_current(struct tracer_proc_stats *st, __u32 domain, __s64 delta)
{
	struct tracer_mem *m = class_mem(st, domain);

	peak_catch_up(st);
	/* a new peak: every site's live figures now are the peak's */
	if (mem_add(&st->current, &st->peak, delta))
		__sync_fetch_and_add(&st->peak_epoch, 1);
	mem_add(&m->current, &m->peak, delta);
}

/* The sites map's entry of a block (made when create is set); NULL when
 * the map is full. */
static __always_inline struct tracer_site_stats *site_of(__u64 key,
							  const struct tracer_alloc_info *info,
							  bool create)
{
	struct tracer_sites_key k = {.site = info->site,
				     .py_stack = info->py_stack,
				     .domain = info->domain,
				     .proc = TRACER_KEY_PROC(key)};
	struct tracer_site_stats *s = bpf_map_lookup_elem(&sites, &k);
	__u32 zero = 0;

	if (s || !create)
		return s;
	/* a zeroed value from a map: the stack has no room for one */
	s = bpf_map_lookup_elem(&site_zero, &zero);
	if (s)
		bpf_map_update_elem(&sites, &k, s, BPF_NOEXIST); /* may race: fine */
	s = bpf_map_lookup_elem(&sites, &k);
	if (!s)
		count(TRACER_CNT_SITES_FULL, 1);
	return s;
}

/* A site's live figures change by (count, bytes): first, if the process
 * has had a new peak since the site last changed, what it holds now is
 * what it held at that peak (tracer.h). */
static __always_inline void site_change(struct tracer_site_stats *s, struct tracer_proc_stats *st,
					__s64 count, __s64 bytes)
{
	__u64 epoch = st->peak_epoch;

	if (s->epoch < epoch) {
		s->peak_count = s->live_count;
		s->peak_bytes = s->live_bytes;
		s->epoch = epoch;
	}
	__sync_fetch_and_add(&s->live_count, count);
	__sync_fetch_and_add(&s->live_bytes, bytes);
}

/* The two buckets of a key: both halves of its mix64, reduced to [0, n)
 * by multiply-shift. */
static __always_inline void bucket_indexes(__u64 key, __u32 n, __u32 *a, __u32 *b)
{
	__u64 h = mix64(key);

	*a = (__u32)(((h >> 32) * (__u64)n) >> 32);
	*b = (__u32)(((h & 0xffffffffull) * (__u64)n) >> 32);
	if (*b == *a)
		*b = *a + 1 < n ? *a + 1 : 0;
}

/* The two buckets of a key. */
static __always_inline void buckets_of(__u64 key, struct tracer_bucket **b)
{
	__u32 i[2];

	bucket_indexes(key, alloc_buckets, &i[0], &i[1]);
	b[0] = bpf_map_lookup_elem(&allocs, &i[0]);
	b[1] = bpf_map_lookup_elem(&allocs, &i[1]);
}

/* The slot holding key in its buckets, or NULL; *free_slots counts the
 * free slots of each bucket. */
static __always_inline struct tracer_slot *slot_scan(__u64 key, struct tracer_bucket **b,
						     int *free_slots)
{
	struct tracer_slot *found = NULL;

#pragma unroll
	for (int k = 0; k < 2; k++) {
		free_slots[k] = 0;
		if (!b[k])
			continue;
#pragma unroll
		for (int j = 0; j < TRACER_BUCKET_SLOTS; j++) {
			__u64 v = *(volatile __u64 *)&b[k]->s[j].key;

			if (v == key)
				found = &b[k]->s[j];
			else if (!v)
				free_slots[k]++;
		}
	}
	return found;
}

/* A free slot of bucket b, claimed (its key is key|BUSY), or NULL. */
static __always_inline struct tracer_slot *slot_claim(struct tracer_bucket *b, __u64 key)
{
	if (!b)
		return NULL;
#pragma unroll
	for (int j = 0; j < TRACER_BUCKET_SLOTS; j++)
		if (*(volatile __u64 *)&b->s[j].key == 0 &&
		    __sync_val_compare_and_swap(&b->s[j].key, 0, key | TRACER_SLOT_BUSY) == 0)
			return &b->s[j];
	return NULL;
}

/* What a free of key finds: the block's info, in a slot or the overflow
 * map; NULL when the block is not traced. */
static __always_inline struct tracer_alloc_info *trace_find(__u64 key, struct tracer_slot **slot)
{
	struct tracer_bucket *b[2];
	int free_slots[2];

	buckets_of(key, b);
	*slot = slot_scan(key, b, free_slots);
	if (*slot)
		return &(*slot)->info;
	return overflow_used ? bpf_map_lookup_elem(&allocs_overflow, &key) : NULL;
}

/* The figures of a block whose trace (at, under key) was just given up:
 * its bytes leave the class they were counted in, and its site. */
static __always_inline void trace_gone(__u64 key, struct tracer_proc_stats *st,
				       const struct tracer_alloc_info *at, bool temporary)
{
	struct tracer_site_stats *site;

	__sync_fetch_and_add(&live_traces, -1);
	if (!st)
		return;
	peak_catch_up(st);
	site = site_of(key, at, false);
	if (site) {
		if (temporary) {
			__sync_fetch_and_add(&site->temp_count, 1);
			__sync_fetch_and_add(&site->temp_bytes, at->size);
		}
		site_change(site, st, -1, -(__s64)at->size);
	}
	add_current(st, at->domain, -(__s64)at->size);
	__sync_fetch_and_add(&st->frees, 1);
}

/* Forgets the block at key; returns whether it was traced, with its domain
 * in *was (realloc: libc's realloc of a Python block yields a Python block).
 * temporary: the thread frees the block it allocated last. */
static __always_inline bool forget_domain(__u64 key, struct tracer_proc_stats *st, __u32 *was,
					  bool temporary)
{
	struct tracer_alloc_info *info, at;
	struct tracer_slot *slot;
	__u32 zero = 0;
	__u64 *last;

	last = bpf_map_lookup_elem(&last_freed, &zero);
	info = trace_find(key, &slot);
	if (!info) {
		if (!last || *last != key)
			count(TRACER_CNT_UNKNOWN_FREES, 1);
		if (last)
			*last = key; /* the nested frees beneath it: the same untraced block */
		return false;
	}
	if (last)
		*last = key;
	at = *info; /* read before the slot is given up */
	if (slot) {
		if (__sync_val_compare_and_swap(&slot->key, key, 0) != key)
			return false; /* another thread freed it first */
	} else {
		if (bpf_map_delete_elem(&allocs_overflow, &key))
			return false;
		__sync_fetch_and_add(&overflow_used, -1);
	}
	if (pool_marking)
		bpf_map_delete_elem(&pool_marks, &key);
	trace_gone(key, st, &at, temporary);
	*was = at.domain;
	return true;
}

static __always_inline void forget(__u64 key, struct tracer_proc_stats *st, bool temporary)
{
	__u32 was;

	forget_domain(key, st, &was, temporary);
}

/* Stores a block's info under key: in its buckets' emptier one (two-choice
 * hashing keeps them even), else the overflow map. A block already traced
 * at that address (its free was not seen, or PyTraceMalloc_Track of a block
 * libc gave us) is replaced: returns 1, *old its info; else 0 (or -1 when
 * full), *old size 0 and the new domain. */
static __always_inline int trace_store(__u64 key, const struct tracer_alloc_info *info,
				       struct tracer_alloc_info *old)
{
	struct tracer_alloc_info *prev;
	struct tracer_bucket *b[2];
	struct tracer_slot *slot;
	int free_slots[2], first;

	old->size = 0;
	old->domain = info->domain;
	buckets_of(key, b);
	slot = slot_scan(key, b, free_slots);
	if (slot && __sync_val_compare_and_swap(&slot->key, key, key | TRACER_SLOT_BUSY) == key) {
		*old = slot->info;
		slot->info = *info;
		__sync_val_compare_and_swap(&slot->key, key | TRACER_SLOT_BUSY, key);
		return 1;
	}
	if (overflow_used && (prev = bpf_map_lookup_elem(&allocs_overflow, &key))) {
		*old = *prev;
		bpf_map_update_elem(&allocs_overflow, &key, info, BPF_EXIST);
		return 1;
	}
	if (__sync_fetch_and_add(&live_traces, 1) >= max_traces) {
		__sync_fetch_and_add(&live_traces, -1);
		return -1;
	}
	first = free_slots[1] > free_slots[0];
	slot = slot_claim(b[first], key);
	if (!slot)
		slot = slot_claim(b[!first], key);
	if (!slot) {
		if (bpf_map_update_elem(&allocs_overflow, &key, info, BPF_NOEXIST)) {
			__sync_fetch_and_add(&live_traces, -1);
			return -1;
		}
		__sync_fetch_and_add(&overflow_used, 1);
		return 0;
	}
	slot->info = *info;
	/* publish: the info is written before the key is valid */
	__sync_val_compare_and_swap(&slot->key, key | TRACER_SLOT_BUSY, key);
	return 0;
}

/* Records a live block: its call site (frame 0: ip, with the caller's
 * stack pointer sp there), its Python stack, its native stack when that is
 * what its traceback will show; then its process's figures, looked up
 * only here: a pointer the caller held across the walks would double what
 * the verifier explores of them (NULL or not, with --follow) past its
 * limit. The caller has made the process's entry (proc_stats). */
static __always_inline void record(struct pt_regs *ctx, __u32 tgid, __u64 key, __u64 size,
				   __u32 domain, __u64 ip, __u64 sp, bool tracking, __u32 pooled)
{
	struct tracer_alloc_info info = {.size = size, .domain = domain, .site = ip}, old;
	struct tracer_site_stats *site;
	struct tracer_proc_stats *st;
	__u64 stack, ns;
	int stored;

	info.py_stack = py_capture(tgid, TRACER_CNT_PY_UNREADABLE);
	if (capture_stack && (!info.py_stack || native_with_python)) {
		stack = native_capture(ctx, tgid, ip, sp);
		if (stack)
			info.site = stack;
	}
	ns = bpf_ktime_get_ns();
	info.time = TRACER_TIME(ns);
	/* the mark first: forget_pool_free, seeing the mark of before, can
	 * only find the trace of before */
	if (pooled) {
		struct tracer_pool_mark mark = {
		    .size = size, .ns = ns, .tgid = tgid, .pool_bits = pooled};

		if (bpf_map_update_elem(&pool_marks, &key, &mark, BPF_ANY))
			count(TRACER_CNT_POOL_MARKS_FULL, 1);
	}
	stored = trace_store(key, &info, &old);
	if (stored < 0) {
		count(TRACER_CNT_ALLOCS_FULL, 1);
		count(TRACER_CNT_ALLOCS_FULL_BYTES, size);
		return;
	}
	if (stored && !pooled && pool_marking)
		bpf_map_delete_elem(&pool_marks, &key); /* the mark of the block replaced */
	st = proc_stats(tgid, false);
	if (!st)
		return;
	peak_catch_up(st);
	if (stored) { /* the block replaced leaves its site */
		/* an allocator gave out an address still traced: its free was
		 * not seen (PyTraceMalloc_Track of a block libc gave us is the
		 * same block, moved to the extension's domain) */
		if (!tracking)
			count(TRACER_CNT_FREES_UNSEEN, 1);
		site = site_of(key, &old, false);
		if (site)
			site_change(site, st, -1, -(__s64)old.size);
	}
	site = site_of(key, &info, true);
	if (site) {
		__sync_fetch_and_add(&site->alloc_count, 1);
		__sync_fetch_and_add(&site->alloc_bytes, size);
		site_change(site, st, 1, (__s64)size);
	}
	if (TRACER_CLASS_OF(old.domain) == TRACER_CLASS_OF(domain)) {
		add_current(st, domain, (__s64)size - (__s64)old.size);
	} else {
		/* the block replaced was counted in the other class (a libc block
		 * PyTraceMalloc_Track moves to its domain): it leaves that one */
		add_current(st, old.domain, -(__s64)old.size);
		add_current(st, domain, (__s64)size);
	}
	__sync_fetch_and_add(&st->allocs, 1);
}

/* Whether the process's interpreter has begun finalising: its live set is
 * kept as it was then (the event is counted, not applied). */
static __always_inline bool finalizing(const struct tracer_proc_stats *st)
{
	if (!st || !st->finalized)
		return false;
	count(TRACER_CNT_AFTER_FINALIZE, 1);
	return true;
}

/* The domain of a block from an outermost call of libc's allocator (not
 * one of CPython's functions, whose probes give the Python domain): the
 * Python domain when CPython's inlined raw allocator made the call (its
 * return address is one of py_alloc_sites; a tail jump's mark turned the
 * domain at the entry already); else a realloc keeps the domain of the
 * block it replaces (CPython's realloc of a Python block, inlined somewhere
 * no site was found for, stays in the Python domain; C code's realloc of
 * its own block stays libc's); else libc's. A realloc of a block from
 * before attach by some other caller is counted: its domain is unknown. */
static __always_inline __u32 libc_call_domain(__u32 tgid, __u64 ret, const struct pending *p,
					      bool old_traced, __u32 old_domain)
{
	if (python_enabled) {
		struct tracer_site_key k = {.addr = ret, .tgid = tgid};
		__u32 *d = bpf_map_lookup_elem(&py_alloc_sites, &k);

		if (d)
			return *d;
	}
	if (p->kind != TRACER_KIND_REALLOC || !p->oldptr)
		return TRACER_DOMAIN_LIBC;
	if (old_traced)
		return old_domain;
	if (python_enabled && bpf_map_lookup_elem(&py_configs, &tgid))
		count(TRACER_CNT_REALLOC_DOMAIN_UNKNOWN, 1);
	return TRACER_DOMAIN_LIBC;
}

/* xallocx's return: the block at ptr, resized in place when its real size
 * (ret) reaches the size asked for, is that size now; else it is as it
 * was. Its traceback stays its allocation's. */
static __always_inline void resized(__u32 tgid, __u32 proc, __u64 ptr, __u64 size, __u64 ret)
{
	struct tracer_alloc_info *info;
	struct tracer_site_stats *site;
	struct tracer_proc_stats *st;
	struct tracer_slot *slot;
	__s64 delta;

	if (!ptr || ret < size)
		return;
	info = trace_find(TRACER_KEY(proc, ptr), &slot);
	if (!info)
		return; /* a block from before the attach: still not traced */
	delta = (__s64)size - (__s64)info->size;
	info->size = size;
	st = proc_stats(tgid, true);
	if (!st || finalizing(st))
		return;
	peak_catch_up(st);
	site = site_of(TRACER_KEY(proc, ptr), info, false);
	if (site)
		site_change(site, st, 0, delta);
	add_current(st, info->domain, delta);
}

/* The mmap domain's blocks: pages the program mapped itself, [start, start
 * + size), size as asked for (the kernel maps whole pages). A munmap or an
 * mremap names a range that may begin inside a block and span several:
 * the block holding an address is the one that starts there, else it is
 * found from the kernel's mapping there, whose start is a block's start or,
 * where the kernel merged blocks next to each other, that of the first of
 * them: walked from there. */
#define TRACER_PAGE 4096ull
#define PAGE_UP(n) (((n) + TRACER_PAGE - 1) & ~(TRACER_PAGE - 1))
#define MMAP_WALK 64   /* blocks walked in one merged mapping */
#define MMAP_PIECES 16 /* blocks one munmap or mremap changes */
#define MREMAP_FIXED 2
#define MREMAP_DONTUNMAP 4
#define EBUSY 16

/* The mmap domain's block of process proc at addr, or NULL. */
static __always_inline struct tracer_alloc_info *mapped_block(__u32 proc, __u64 addr)
{
	struct tracer_slot *slot;
	struct tracer_alloc_info *info = trace_find(TRACER_KEY(proc, addr), &slot);

	return info && info->domain == TRACER_DOMAIN_MMAP ? info : NULL;
}

static long vma_start_of(struct task_struct *task, struct vm_area_struct *vma, void *data)
{
	*(__u64 *)data = vma->vm_start;
	return 0;
}

struct block_walk {
	__u64 addr; /* to find */
	__u64 pos;  /* the block walked */
	__u64 found;
	__u32 proc;
};

static long block_walk_step(__u32 i, void *data)
{
	struct block_walk *w = data;
	struct tracer_alloc_info *info = mapped_block(w->proc, w->pos);

	if (!info)
		return 1;
	if (w->pos + PAGE_UP(info->size) > w->addr) {
		w->found = w->pos;
		return 1;
	}
	w->pos += PAGE_UP(info->size);
	return 0;
}

/* The start of process proc's block that holds addr, 0: none (counted
 * when the kernel's mappings could not be read). Before the call that
 * changes them: the kernel's mapping at addr is still there. */
__noinline __u64 block_holding(__u32 proc, __u64 addr)
{
	struct block_walk w = {.addr = addr, .proc = proc};
	__u64 start = 0;
	long err;

	if (mapped_block(proc, addr))
		return addr;
	err = bpf_find_vma(bpf_get_current_task_btf(), addr, vma_start_of, &start, 0);
	if (err) {
		struct tracer_proc_stats *st;

		/* a process that never mapped a block of its own (a thread's
		 * stack, an arena unmapped by libc) lost nothing */
		if (err == -EBUSY && (st = proc_stats(bpf_get_current_pid_tgid() >> 32, false)) &&
		    st->mapped)
			count(TRACER_CNT_MMAP_UNFOLLOWED, 1);
		return 0;
	}
	w.pos = start;
	bpf_loop(MMAP_WALK, block_walk_step, &w, 0);
	return w.found;
}

/* Takes the trace at key out of the table, its figures left to the
 * caller; whether it was there. */
static __always_inline bool trace_drop(__u64 key)
{
	struct tracer_slot *slot;

	if (!trace_find(key, &slot))
		return false;
	if (slot) {
		if (__sync_val_compare_and_swap(&slot->key, key, 0) != key)
			return false; /* another thread took it first */
	} else {
		if (bpf_map_delete_elem(&allocs_overflow, &key))
			return false;
		__sync_fetch_and_add(&overflow_used, -1);
	}
	__sync_fetch_and_add(&live_traces, -1);
	return true;
}

/* Stores piece (a block's traceback, time and domain, with its size) at
 * key, for process tgid; 0 when the table is full (counted). The kernel
 * gave these pages: a block traced there already was unmapped unseen, and
 * goes. added: the piece is memory new to the mmap domain, and a block
 * new to its site (not one cut from a block counted there). A global
 * function: verified once, not along each path of block_cut's and
 * mmap_remap's, with a frame of its own. */
__noinline int piece_store(__u64 key, const struct tracer_alloc_info *piece, __u32 tgid,
			   int added)
{
	struct tracer_alloc_info old;
	struct tracer_site_stats *site;
	struct tracer_proc_stats *st;
	int stored;

	if (!piece)
		return 0;
	stored = trace_store(key, piece, &old);
	if (stored < 0) {
		count(TRACER_CNT_ALLOCS_FULL, 1);
		count(TRACER_CNT_ALLOCS_FULL_BYTES, piece->size);
		return 0;
	}
	st = proc_stats(tgid, false);
	if (stored && st) {
		site = site_of(key, &old, false);
		if (site)
			site_change(site, st, -1, -(__s64)old.size);
		add_current(st, old.domain, -(__s64)old.size);
	}
	if (added && st) {
		peak_catch_up(st);
		site = site_of(key, piece, false);
		if (site)
			site_change(site, st, 1, (__s64)piece->size);
		add_current(st, TRACER_DOMAIN_MMAP, (__s64)piece->size);
	}
	return 1;
}

/* A whole block of process tgid unmapped: a global function, with its own
 * frame (the verifier bounds the stack of the whole chain of calls). */
__noinline int forget_block(__u64 key, __u32 tgid)
{
	forget(key, proc_stats(tgid, false), false);
	return 0;
}

/* The pages [lo, hi) of process proc leave its blocks: from the block at
 * first (0: the one holding lo), through the blocks next to it. */
struct range_cut {
	__u64 lo, hi;
	__u64 pos;   /* where the next block starts */
	__u64 first; /* the block holding lo, 0: looked up */
	struct tracer_alloc_info was; /* the first block cut, as it was */
	__u32 tgid, proc;
	bool moving;
	bool found; /* was is set */
};

/* Cuts r's pages out of process proc's block at start: its head or its
 * tail goes, or the whole block; a hole in its middle splits it in two
 * blocks (counted), both with its traceback. r->moving: the pages cut are
 * not freed but moved (mremap): the block leaves its site's live count
 * only when all of it moves. The first block cut is kept in r->was, as it
 * was. Returns the end of its pages, where a next block may start; 0 when
 * it is gone. r is the caller's (bpf_loop's context), not a copy: the
 * verifier bounds the stack of the whole chain of calls and callbacks. */
__noinline __u64 block_cut(struct range_cut *r, __u64 start)
{
	struct tracer_alloc_info *info, piece;
	struct tracer_site_stats *site = NULL;
	struct tracer_proc_stats *st;
	__u64 key, end, cut, lo, hi;
	__u32 tgid, proc;
	__s64 blocks = 0;
	bool moving;

	if (!r)
		return 0;
	lo = r->lo, hi = r->hi, tgid = r->tgid, proc = r->proc;
	moving = r->moving;
	key = TRACER_KEY(proc, start);
	info = mapped_block(proc, start);
	if (!info)
		return 0;
	piece = *info;
	if (!r->found) {
		r->was = piece;
		r->found = true;
	}
	end = start + piece.size;
	if (lo < start)
		lo = start;
	if (hi > end)
		hi = end;
	if (lo >= hi)
		return start + PAGE_UP(piece.size);
	if (lo == start && hi == end && !moving) {
		forget_block(key, tgid);
		return start + PAGE_UP(piece.size);
	}
	st = proc_stats(tgid, false);
	if (st) {
		peak_catch_up(st);
		site = site_of(key, &piece, false);
	}
	if (lo == start && hi == end) { /* all of it moves */
		if (!trace_drop(key))
			return 0;
		cut = piece.size;
		blocks = -1;
	} else if (lo == start) { /* its head: the rest is a block at hi */
		if (!trace_drop(key))
			return 0;
		cut = hi - start;
		piece.size = end - hi;
		if (!piece_store(TRACER_KEY(proc, hi), &piece, tgid, 0)) {
			cut = end - start;
			blocks = -1;
		}
	} else if (hi == end) { /* its tail */
		cut = end - lo;
		info->size = lo - start;
	} else { /* a hole: the head stays, the tail is a block of its own */
		cut = end - lo;
		info->size = lo - start;
		piece.size = end - hi;
		count(TRACER_CNT_MMAP_SPLITS, 1);
		if (piece_store(TRACER_KEY(proc, hi), &piece, tgid, 0)) {
			cut = hi - lo;
			blocks = 1;
		}
	}
	if (st) {
		if (site)
			site_change(site, st, blocks, -(__s64)cut);
		add_current(st, TRACER_DOMAIN_MMAP, -(__s64)cut);
		if (blocks < 0 && !moving)
			__sync_fetch_and_add(&st->frees, 1);
	}
	return PAGE_UP(end);
}

static long range_cut_step(__u32 i, void *data)
{
	struct range_cut *r = data;
	__u64 start, next;

	if (r->pos >= r->hi)
		return 1;
	start = i == 0 && r->first ? r->first : block_holding(r->proc, r->pos);
	if (!start)
		return 1;
	next = block_cut(r, start);
	if (!next || next <= r->pos)
		return 1;
	r->pos = next;
	return 0;
}

/* Inline, so that r (on the caller's stack, as bpf_loop's context must be)
 * is not copied: block_cut and block_holding, global functions, are
 * verified once, on their own, not along every path of the programs that
 * call them (with them inline, mremap's return was more than the verifier
 * explores). */
static __always_inline bool range_cut(struct range_cut *r)
{
	r->pos = r->lo;
	bpf_loop(MMAP_PIECES, range_cut_step, r, 0);
	return r->found;
}

/* mremap's return, for the call a (mremap_enter's: oldptr, old_size, size,
 * flags; memptr the start of the block holding oldptr, 0: none): the pages
 * [oldptr, oldptr + old_size) moved to ret, resized to size (in place when
 * ret is oldptr); the block they were in keeps the rest. The moved pages
 * keep their block's traceback. With MREMAP_FIXED, what was mapped at ret
 * is gone; with MREMAP_DONTUNMAP the old pages stay mapped, and the new
 * ones are a block of their own with the same traceback (its site's live
 * count goes up by one, as at a split). */
__noinline int mmap_remap(const struct pending *a, __u64 ret, __u32 tgid, __u32 proc)
{
	/* one range at a time, the destination's first: the verifier bounds
	 * the stack of a call chain with bpf_loop's callbacks in it */
	struct range_cut r = {};
	struct tracer_alloc_info *info;

	if (!a || ret == (__u64)-1)
		return 0; /* MAP_FAILED: nothing moved */
	if (finalizing(proc_stats(tgid, true)))
		return 0;
	r.tgid = tgid;
	r.proc = proc;
	/* what was mapped at the new address is gone, whatever moved there */
	if ((a->flags & MREMAP_FIXED) && ret != a->oldptr) {
		r.lo = ret;
		r.hi = ret + PAGE_UP(a->size);
		range_cut(&r);
	}
	if (!a->memptr)
		return 0; /* not a block: a file's mapping, or one from before attach */
	if (a->flags & MREMAP_DONTUNMAP) {
		/* the old pages stay: the new ones are a block of their own */
		info = mapped_block(proc, a->memptr);
		if (!info)
			return 0;
		r.was = *info;
	} else {
		r.lo = a->oldptr;
		r.hi = a->oldptr + PAGE_UP(a->old_size);
		r.first = a->memptr;
		r.moving = true;
		r.found = false;
		range_cut(&r);
		if (!r.found)
			return 0;
	}
	r.was.size = a->size;
	piece_store(TRACER_KEY(proc, ret), &r.was, tgid, 1);
	return 0;
}

/* Return of an allocator: the outermost call records its block. At a
 * uretprobe (call_ret 0) the IP is the caller's return address; at a call
 * site's probe (py_call_return) it is call_ret, and the call is the one
 * py_malloc_inner stashed for that site at this stack depth, or none. */
static __always_inline int alloc_exit(struct pt_regs *ctx, __u64 ret, __u64 call_ret)
{
	struct tracer_proc_stats *st;
	struct pending *p;
	__u64 addr = ret;
	__u32 tgid, proc, domain, old_domain = 0;
	bool old_traced = false;

	if (!recording(&tgid, &proc))
		return 0;
	p = bpf_task_storage_get(&pendings, bpf_get_current_task_btf(), 0, 0);
	if (call_ret) {
		/* not stashed (nested in a traced call, or counted), or another
		 * call's stash: nothing to do */
		if (!p || !p->depth || p->call_ret != call_ret ||
		    p->outer_sp + 8 != PT_REGS_SP(ctx))
			return 0;
		p->call_ret = 0;
	} else if (!p || !p->depth) {
		count(TRACER_CNT_RETURN_UNMATCHED, 1);
		return 0;
	}
	hit(proc, p->kind != TRACER_KIND_REALLOC);
	if (--p->depth)
		return 0;

	if (p->kind == TRACER_KIND_IGNORE)
		return 0;
	if (p->kind == TRACER_KIND_RESIZE) {
		resized(tgid, proc, p->oldptr, p->size, ret);
		return 0;
	}
	if (p->kind == TRACER_KIND_MEMALIGN) {
		addr = 0;
		if (ret == 0 && bpf_probe_read_user(&addr, sizeof(addr), (void *)p->memptr))
			addr = 0;
	}
	if (p->kind == TRACER_KIND_MMAP && ret == (__u64)-1)
		addr = 0; /* MAP_FAILED */
	st = proc_stats(tgid, true);
	if (finalizing(st))
		return 0;
	if (p->kind == TRACER_KIND_REALLOC && p->oldptr && (addr || p->size == 0))
		/* moved, grown in place or freed by size 0 */
		old_traced = forget_domain(TRACER_KEY(proc, p->oldptr), st, &old_domain,
					   p->last_key == TRACER_KEY(proc, p->oldptr));
	if (!addr) {
		if (p->size || p->kind != TRACER_KIND_REALLOC)
			count(TRACER_CNT_FAILED_ALLOCS, 1);
		return 0;
	}
	if (between_windows)
		return 0; /* --budget: a realloc between windows only frees */
	if (p->kind == TRACER_KIND_MMAP && st)
		st->mapped = 1; /* a block of its own: munmaps it loses count */

	/* At a return probe the IP is the caller's return address: frame 0. */
	if (p->domain == TRACER_DOMAIN_LIBC)
		p->domain = libc_call_domain(tgid, call_ret ? call_ret : PT_REGS_IP(ctx), p,
					     old_traced, old_domain);
	/* read back from the map: to the verifier an unknown value, as before
	 * libc_call_domain, so that its paths join before record() instead of
	 * each walking record()'s (and the Python walker's) own */
	domain = *(volatile __u32 *)&p->domain;
	p->last_key = TRACER_KEY(proc, addr);
	p->fresh_size = p->size;
	record(ctx, tgid, TRACER_KEY(proc, addr), p->size, domain,
	       call_ret ? call_ret : PT_REGS_IP(ctx), PT_REGS_SP(ctx), false, p->pooled);
	return 0;
}

static __always_inline int free_enter(__u64 ptr)
{
	struct tracer_proc_stats *st;
	struct pending *p;
	__u32 tgid, proc;
	bool temporary = false;
	__u64 key;

	if (!ptr || !recording(&tgid, &proc))
		return 0;
	hit(proc, false);
	st = proc_stats(tgid, false);
	if (finalizing(st))
		return 0;
	key = TRACER_KEY(proc, ptr);
	p = bpf_task_storage_get(&pendings, bpf_get_current_task_btf(), 0, 0);
	if (p && p->last_key == key) {
		temporary = true;
		p->last_key = 0;
		/* a block freed before it held an object (a buffer): what
		 * comes to its memory later is not fresh */
		p->fresh_size = 0;
	}
	forget(key, st, temporary);
	return 0;
}

/* 6. The programs. */

/* libc's allocator family. Arguments are read from the registers, which the
 * probe placement guarantees are untouched at the probed instruction. */
SEC("uprobe")
int BPF_KPROBE(malloc_enter, __u64 size)
{
	return alloc_enter(ctx, TRACER_DOMAIN_LIBC, TRACER_KIND_MALLOC, size, 0, 0);
}

SEC("uprobe")
int BPF_KPROBE(calloc_enter, __u64 nmemb, __u64 size)
{
	return alloc_enter(ctx, TRACER_DOMAIN_LIBC, TRACER_KIND_MALLOC, nmemb * size, 0, 0);
}

/* jemalloc's xallocx(ptr, size, extra, flags): a resize in place */
SEC("uprobe")
int BPF_KPROBE(xallocx_enter, __u64 ptr, __u64 size)
{
	return alloc_enter(ctx, TRACER_DOMAIN_LIBC, TRACER_KIND_RESIZE, size, ptr, 0);
}

SEC("uprobe")
int BPF_KPROBE(realloc_enter, __u64 ptr, __u64 size)
{
	return alloc_enter(ctx, TRACER_DOMAIN_LIBC, TRACER_KIND_REALLOC, size, ptr, 0);
}

SEC("uprobe")
int BPF_KPROBE(reallocarray_enter, __u64 ptr, __u64 nmemb, __u64 size)
{
	return alloc_enter(ctx, TRACER_DOMAIN_LIBC, TRACER_KIND_REALLOC, nmemb * size, ptr, 0);
}

SEC("uprobe")
int BPF_KPROBE(memalign_enter, __u64 alignment, __u64 size)
{
	return alloc_enter(ctx, TRACER_DOMAIN_LIBC, TRACER_KIND_MALLOC, size, 0, 0);
}

SEC("uprobe")
int BPF_KPROBE(posix_memalign_enter, __u64 memptr, __u64 alignment, __u64 size)
{
	return alloc_enter(ctx, TRACER_DOMAIN_LIBC, TRACER_KIND_MEMALIGN, size, 0, memptr);
}

/* Argument register n (0: rdi ... 5: r9) as it was at the function's
 * entry: where placement found it past the prologue (the probe's cookie,
 * tracer.h's TRACER_ARGS_MOVED), else in its own register. */
static __always_inline __u64 entry_arg(struct pt_regs *ctx, __u32 n)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 r = (cookie & TRACER_ARGS_MOVED) ? (__u32)(cookie >> (3 * n)) & 7 : n;
	/* each read at a constant offset (the verifier refuses a computed one
	 * into ctx), kept apart from the choice below */
	__u64 di = ctx->di, si = ctx->si, dx = ctx->dx, cx = ctx->cx, r8 = ctx->r8,
	      r9 = ctx->r9;

	barrier_var(di);
	barrier_var(si);
	barrier_var(dx);
	barrier_var(cx);
	barrier_var(r8);
	barrier_var(r9);
	switch (r) {
	case 0:
		return di;
	case 1:
		return si;
	case 2:
		return dx;
	case 3:
		return cx;
	case 4:
		return r8;
	default:
		return r9;
	}
}

/* CPython's allocator domains, at the functions that really run
 * (_PyObject_Malloc(ctx, size) ...): their blocks are in domain 0, like
 * tracemalloc's, and the raw -> libc calls beneath them count once. Their
 * arguments are read where placement found them (entry_arg). */
SEC("uprobe")
int py_malloc_enter(struct pt_regs *ctx)
{
	return alloc_enter(ctx, TRACER_DOMAIN_PYTHON, TRACER_KIND_MALLOC, entry_arg(ctx, 1), 0,
			   0);
}

SEC("uprobe")
int py_calloc_enter(struct pt_regs *ctx)
{
	return alloc_enter(ctx, TRACER_DOMAIN_PYTHON, TRACER_KIND_MALLOC,
			   entry_arg(ctx, 1) * entry_arg(ctx, 2), 0, 0);
}

SEC("uprobe")
int py_realloc_enter(struct pt_regs *ctx)
{
	return alloc_enter(ctx, TRACER_DOMAIN_PYTHON, TRACER_KIND_REALLOC, entry_arg(ctx, 2),
			   entry_arg(ctx, 1), 0);
}

/* _PyObject_Malloc past its frame's making (inner_enter) */
SEC("uprobe")
int py_malloc_inner(struct pt_regs *ctx)
{
	return inner_enter(ctx, TRACER_KIND_MALLOC, entry_arg(ctx, 1));
}

SEC("uprobe")
int py_free_enter(struct pt_regs *ctx)
{
	return free_enter(entry_arg(ctx, 1));
}

/* A tail jump of CPython's inlined raw allocator to libc's malloc, calloc
 * or realloc (user/python/sites.h): libc's entry, next, at this stack
 * pointer, is in the Python domain. */
SEC("uprobe")
int BPF_KPROBE(py_site_enter)
{
	struct pending *p;
	__u32 proc;

	if (probe_only || !traced_proc(bpf_get_current_pid_tgid() >> 32, &proc))
		return 0;
	hit(proc, true);
	p = thread_pending();
	if (!p)
		return 0;
	p->site_sp = PT_REGS_SP(ctx);
	p->site_sized = 0;
	return 0;
}

/* munmap(addr, length): the pages go from the mmap domain's blocks they
 * were in (block_cut). Anything else (a file's mapping, an allocator's own
 * chunks) is not ours. At the entry: the kernel's mappings are as they were. */
SEC("uprobe")
int BPF_KPROBE(munmap_enter, __u64 addr, __u64 length)
{
	struct range_cut r = {.lo = addr, .hi = addr + PAGE_UP(length)};

	if (!addr || !length || (addr & (TRACER_PAGE - 1)) || !recording(&r.tgid, &r.proc))
		return 0;
	if (finalizing(proc_stats(r.tgid, false)))
		return 0;
	range_cut(&r);
	return 0;
}

/* The calling thread's outermost call in flight, when it is the one that
 * entered at sp (not one nested in an allocator's, nor none). */
static __always_inline struct pending *outermost_at(__u64 sp)
{
	struct pending *p = bpf_task_storage_get(&pendings, bpf_get_current_task_btf(), 0, 0);

	return p && p->depth == 1 && p->outer_sp == sp ? p : NULL;
}

/* Whether the probed function (mmap's, mremap's) was called from libc's
 * own code (probes.c's TEXT_COOKIE: where libc's text is around the probe,
 * on the function's first instruction, so [sp] is the return address): a
 * thread's stack, its allocator's arenas, glibc's realloc of a block it
 * mapped, not the program's memory. */
static __always_inline bool libc_own_call(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx), ip = bpf_get_func_ip(ctx), ret = 0;

	return cookie && !bpf_probe_read_user(&ret, sizeof(ret), (void *)PT_REGS_SP(ctx)) &&
	       ret >= ip - (cookie >> 32) && ret < ip + (__u32)cookie;
}

/* CPython's raw malloc, calloc or realloc where it is only a tail jump to
 * libc's (user/python/sites.h's python_raw_tail: no call, no frame, every
 * way out a jmp to that function): libc's entry, next, at this stack
 * pointer, is its call, in the Python domain, of the size asked for here.
 * One entry probe, no return probe: libc's catches the return. */
static __always_inline int raw_tail_enter(struct pt_regs *ctx, __u64 size)
{
	struct pending *p;
	__u32 proc;

	if (probe_only || !traced_proc(bpf_get_current_pid_tgid() >> 32, &proc))
		return 0;
	p = thread_pending();
	if (!p)
		return 0;
	p->site_sp = PT_REGS_SP(ctx);
	p->site_size = size;
	p->site_sized = 1;
	return 0;
}

SEC("uprobe")
int py_raw_tail_malloc(struct pt_regs *ctx)
{
	return raw_tail_enter(ctx, entry_arg(ctx, 1));
}

SEC("uprobe")
int py_raw_tail_calloc(struct pt_regs *ctx)
{
	return raw_tail_enter(ctx, entry_arg(ctx, 1) * entry_arg(ctx, 2));
}

SEC("uprobe")
int py_raw_tail_realloc(struct pt_regs *ctx)
{
	return raw_tail_enter(ctx, entry_arg(ctx, 2));
}

/* A register of the interrupted code by its number (user/python/newref.h's
 * order, then rsp), each read at a constant offset into ctx. */
static __always_inline __u64 newref_reg(struct pt_regs *ctx, __u32 r)
{
	__u64 v[16] = {ctx->ax, ctx->bx, ctx->cx,  ctx->dx,  ctx->si,  ctx->di,  ctx->bp,  ctx->r8,
		       ctx->r9, ctx->r10, ctx->r11, ctx->r12, ctx->r13, ctx->r14, ctx->r15, ctx->sp};

	return r < 16 ? v[r] : 0;
}
#define NEWREF_COOKIE_INDIRECT 0x100 /* user/python/newref.h */

/* PyTypeObject.tp_flags (3.8-3.14) and the bits that say what lies below
 * an object in its block */
#define PY_TYPE_FLAGS 168
#define PY_TPFLAGS_HAVE_GC (1ull << 14)
#define PY_TPFLAGS_PREHEADER ((1ull << 3) | (1ull << 4)) /* 3.12+ MANAGED_WEAKREF | _DICT */
#define PY_GC_HEAD 16

/* CPython initialises the object op (_Py_NewReference, or a copy of it
 * inlined: user/python/newref.h), at the check of tracemalloc's hook; the
 * cookie says where op is (register, low byte; displacement, high 32
 * bits; with NEWREF_COOKIE_INDIRECT, the 8 bytes at that address).
 * tracemalloc gives the object's block, when traced, the traceback of now
 * (bpo-35053): an object taken from a free list moves to the line
 * that takes it. So does its trace here, between the sites' live figures.
 * A block just allocated by this thread has the traceback of now already:
 * the walk is skipped. */
SEC("uprobe")
int py_new_reference(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx), op, type, flags, block, key, stack;
	struct tracer_alloc_info *info, at;
	struct tracer_site_stats *site;
	struct tracer_proc_stats *st;
	struct tracer_py_config *cfg;
	struct tracer_slot *slot;
	struct pending *p;
	__u32 tgid, proc;

	if (!recording(&tgid, &proc) || between_windows)
		return 0;
	hit(proc, true);
	op = newref_reg(ctx, cookie & 0xff) + (__u64)(__s64)(__s32)(cookie >> 32);
	/* op in a stack slot (LTO keeps it there across calls) */
	if ((cookie & NEWREF_COOKIE_INDIRECT) && bpf_probe_read_user(&op, sizeof(op), (void *)op))
		return 0;
	key = 0;
	p = bpf_task_storage_get(&pendings, bpf_get_current_task_btf(), 0, 0);
	/* an object in the block the thread just allocated (after its GC
	 * header and pre-header): before any read. Whatever this object is,
	 * the block stays fresh no longer: one is made right after its
	 * allocation, and a block that had none was a buffer */
	if (p) {
		__u64 fresh = op - TRACER_KEY_ADDR(p->last_key) < p->fresh_size;

		p->fresh_size = 0;
		if (fresh)
			return 0;
	}
	if (bpf_probe_read_user(&type, sizeof(type), (void *)(op + 8)) ||
	    bpf_probe_read_user(&flags, sizeof(flags), (void *)(type + PY_TYPE_FLAGS)))
		return 0;
	cfg = bpf_map_lookup_elem(&py_configs, &tgid);
	if (!cfg)
		return 0;
	block = op;
	if (flags & PY_TPFLAGS_HAVE_GC)
		block -= PY_GC_HEAD;
	if (cfg->obj_preheader && (flags & PY_TPFLAGS_PREHEADER))
		block -= cfg->obj_preheader;
	key = TRACER_KEY(proc, block);
	info = trace_find(key, &slot);
	if (!info || TRACER_CLASS_OF(info->domain) != TRACER_CLASS_PYTHON)
		return 0;
	stack = py_capture(tgid, TRACER_CNT_FREE_LIST_UNREADABLE);
	/* looked up again: a pointer held across the walk doubles what the
	 * verifier explores of it */
	info = trace_find(key, &slot);
	if (!info || info->py_stack == stack || !stack)
		return 0; /* unchanged, or frames unreadable (counted): left where it was */
	st = proc_stats(tgid, false);
	if (!st || finalizing(st))
		return 0;
	at = *info;
	info->py_stack = stack;
	peak_catch_up(st);
	site = site_of(key, &at, false);
	if (site)
		site_change(site, st, -1, -(__s64)at.size);
	at.py_stack = stack;
	site = site_of(key, &at, true);
	if (site)
		site_change(site, st, 1, (__s64)at.size);
	return 0;
}

/* mmap(addr, length, prot, flags, fd, offset) called by the program (not
 * by its allocator: a call inside a probed allocator only deepens the
 * stash): anonymous memory is a block of the mmap domain, of the length
 * asked for; a file's mapping is not memory the program allocates. With
 * MAP_FIXED, whatever was mapped there goes first, as by munmap: cut now,
 * while the kernel's mappings are as they were. */
#define TRACER_MAP_FIXED 0x10
#define TRACER_MAP_ANONYMOUS 0x20
SEC("uprobe")
int BPF_KPROBE(mmap_enter, __u64 addr, __u64 length, __u64 prot, __u64 flags)
{
	bool own = libc_own_call(ctx);
	__u32 kind = (flags & TRACER_MAP_ANONYMOUS) && !own ? TRACER_KIND_MMAP : TRACER_KIND_IGNORE;
	struct range_cut r = {.lo = addr, .hi = addr + PAGE_UP(length)};

	alloc_enter(ctx, TRACER_DOMAIN_MMAP, kind, length, 0, 0);
	if (!(flags & TRACER_MAP_FIXED) || own || !addr || !length || (addr & (TRACER_PAGE - 1)) ||
	    !outermost_at(PT_REGS_SP(ctx)) || !recording(&r.tgid, &r.proc) ||
	    finalizing(proc_stats(r.tgid, false)))
		return 0;
	range_cut(&r);
	return 0;
}

/* mremap(old, old_size, new_size, flags, new): libc's own calls are told
 * apart as mmap's. The block holding old is found now, while the kernel's
 * mapping there is as it was; its return moves it (mmap_remap). */
SEC("uprobe")
int BPF_KPROBE(mremap_enter, __u64 old, __u64 old_size, __u64 new_size, __u64 flags)
{
	__u32 kind = libc_own_call(ctx) ? TRACER_KIND_IGNORE : TRACER_KIND_MREMAP, proc;
	struct pending *p;

	alloc_enter(ctx, TRACER_DOMAIN_MMAP, kind, new_size, old, 0);
	if (kind != TRACER_KIND_MREMAP || !traced_proc(bpf_get_current_pid_tgid() >> 32, &proc))
		return 0;
	p = outermost_at(PT_REGS_SP(ctx));
	if (!p || p->kind != TRACER_KIND_MREMAP)
		return 0;
	p->old_size = old_size;
	p->flags = flags;
	p->memptr = old && !(old & (TRACER_PAGE - 1)) ? block_holding(proc, old) : 0;
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(alloc_return, __u64 ret)
{
	return alloc_exit(ctx, ret, 0);
}

/* A direct call's return of an allocator probed by py_malloc_inner: at or
 * a few instructions past its return address (the cookie: how many bytes),
 * where rax, rsp and rbp are still as the call left them. */
SEC("uprobe")
int py_call_return(struct pt_regs *ctx)
{
	__u64 call_ret = bpf_get_func_ip(ctx) - bpf_get_attach_cookie(ctx);

	return alloc_exit(ctx, PT_REGS_RC(ctx), call_ret ? call_ret : 1);
}

/* mremap's return, a program of its own: alloc_return's paths and these
 * together are more than the verifier explores. */
SEC("uretprobe")
int BPF_KRETPROBE(mremap_return, __u64 ret)
{
	struct pending *p;
	__u32 tgid, proc;

	if (!recording(&tgid, &proc))
		return 0;
	p = bpf_task_storage_get(&pendings, bpf_get_current_task_btf(), 0, 0);
	if (!p || !p->depth) {
		count(TRACER_CNT_RETURN_UNMATCHED, 1);
		return 0;
	}
	hit(proc, false);
	if (--p->depth || p->kind != TRACER_KIND_MREMAP)
		return 0;
	mmap_remap(p, ret, tgid, proc);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(free_enter_prog, __u64 ptr)
{
	return free_enter(ptr);
}

/* PyTraceMalloc_Track(domain, ptr, size) and PyTraceMalloc_Untrack(domain,
 * ptr): an extension's own blocks (numpy's data buffers) in its own domain,
 * as tracemalloc records them. A tracked block that libc's malloc already
 * gave us is the same memory: the trace moves to the extension's domain,
 * with the traceback of the Track call, and counts once. The entry probe
 * stays on the first instruction, so [sp] is the return address. */
SEC("uprobe")
int BPF_KPROBE(py_track_enter, __u32 domain, __u64 ptr, __u64 size)
{
	struct tracer_proc_stats *st;
	__u64 ret = 0, key;
	__u32 tgid, proc;

	if (!ptr || !recording(&tgid, &proc))
		return 0;
	hit(proc, true);
	st = proc_stats(tgid, true);
	if (finalizing(st))
		return 0;
	key = TRACER_KEY(proc, ptr);
	bpf_probe_read_user(&ret, sizeof(ret), (void *)PT_REGS_SP(ctx));
	/* the caller's state once returned: sp past the return address */
	record(ctx, tgid, key, size, domain, ret, PT_REGS_SP(ctx) + 8, true, 0);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(py_untrack_enter, __u32 domain, __u64 ptr)
{
	struct tracer_proc_stats *st;
	struct tracer_alloc_info *info;
	struct tracer_slot *slot;
	__u32 tgid, proc;
	__u64 key;

	if (!ptr || !recording(&tgid, &proc))
		return 0;
	hit(proc, false);
	key = TRACER_KEY(proc, ptr);
	/* tracemalloc forgets (domain, ptr) only: a block freed already, or
	 * traced in another domain, stays as it is */
	info = trace_find(key, &slot);
	st = proc_stats(tgid, false);
	if (info && info->domain == domain && !finalizing(st))
		forget(key, st, false);
	return 0;
}

/* A launched process is ptrace'd: the calling thread stops (a SIGSTOP to
 * it, marked in loader_stops so that session.c swallows it) until user
 * space has looked at the process now: probed the objects just loaded,
 * recognised CPython, resolved Python stacks while their code lives. Only a
 * ptrace'd thread: another's SIGSTOP would stop its whole process for real. */
static __always_inline void stop_for_tracer(__u32 why)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	if (!loader_stop || stops_off)
		return;
	if (!(bpf_get_current_task_btf()->ptrace & 1 /* PT_PTRACED */) ||
	    bpf_map_update_elem(&loader_stops, &tid, &why, BPF_ANY) ||
	    bpf_send_signal_thread(19 /* SIGSTOP */)) {
		bpf_map_delete_elem(&loader_stops, &tid);
		count(TRACER_CNT_LOADER_STOP_LOST, 1);
	}
}

/* Py_FinalizeEx: the interpreter starts tearing down; its live set as it
 * is now is what the final report shows. */
SEC("uprobe")
int BPF_KPROBE(py_finalize_enter)
{
	struct tracer_proc_stats *st;
	__u32 tgid, proc;

	if (!recording(&tgid, &proc))
		return 0;
	st = proc_stats(tgid, true);
	if (st)
		st->finalized = 1;
	/* the live set's Python stacks resolved while their code objects live */
	stop_for_tracer(TRACER_STOP_PYTHON);
	return 0;
}

/* _dl_debug_state(), which the dynamic linker (glibc's and musl's) calls
 * for debuggers each time the list of loaded objects changes, before any
 * code of what it loaded runs: a launched process stops there to have a
 * preloaded allocator, a chroot's libc, a dlopen'd library probed first.
 * An attached process only says so (loader_changes); its new objects are
 * probed soon after. */
SEC("uprobe")
int BPF_KPROBE(loader_changed)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (!traced(tgid))
		return 0;
	__sync_fetch_and_add(&loader_changes, 1);
	notice(tgid, TRACER_NOTICE_LOADED);
	stop_for_tracer(TRACER_STOP_LOADER);
	return 0;
}

/* PyCode_Type's tp_dealloc (the address its type object holds, found by
 * user/session.c): a code object that a stack awaiting resolution refers
 * to is about to go, so the process stops until that stack is resolved. */
SEC("uprobe")
int BPF_KPROBE(py_code_dealloc, __u64 code)
{
	if (traced(bpf_get_current_pid_tgid() >> 32) &&
	    bpf_map_delete_elem(&py_pending_code, &code) == 0)
		stop_for_tracer(TRACER_STOP_PYTHON);
	return 0;
}

/* _PyRuntime_Initialize(), once a shared libpython is relocated and before
 * any Python code runs: a launched CPython stops to be recognised, so that
 * its first frames are Python's. */
SEC("uprobe")
int BPF_KPROBE(python_starting)
{
	if (traced(bpf_get_current_pid_tgid() >> 32))
		stop_for_tracer(TRACER_STOP_PYTHON);
	return 0;
}

/* Run by user space (BPF_PROG_TEST_RUN) for a marked block: the mark as
 * it read it (its time), and whether it found the block free in its pool.
 * A mark made again since (a new block at the address) is left alone; one
 * whose trace is gone, or of another block, or of a process index no
 * longer the process's (an exec) goes; and a block found free is
 * forgotten as its free would have been, unless its process is finalising
 * (its live set stays as it was then). The trace is claimed (its key made
 * busy) before its size and time are compared, so that a probe storing a
 * new block at the key in between is not forgotten. A raw_tp program: run
 * with arguments on any kernel, not sleepable. */
SEC("raw_tp")
int forget_pool_free(__u64 *arg)
{
	__u64 key = arg[TRACER_POOL_ARG_KEY], ns = arg[TRACER_POOL_ARG_NS];
	__u32 tgid = (__u32)arg[TRACER_POOL_ARG_TGID], proc;
	struct tracer_proc_stats *st;
	struct tracer_pool_mark *mark;
	struct tracer_alloc_info at;
	struct tracer_slot *slot;
	__u64 size;

	mark = bpf_map_lookup_elem(&pool_marks, &key);
	if (!mark || mark->ns != ns)
		return TRACER_POOL_KEPT;
	size = mark->size;
	if (!traced_proc(tgid, &proc) || proc != TRACER_KEY_PROC(key) ||
	    !trace_find(key, &slot) || !slot) /* (a trace in the overflow map is left alone) */
		goto stale;
	if (!arg[TRACER_POOL_ARG_FREE]) {
		if (slot->info.time != TRACER_TIME(ns) || slot->info.size != size)
			goto stale;
		return TRACER_POOL_KEPT;
	}
	st = proc_stats(tgid, false);
	if (st && st->finalized)
		return TRACER_POOL_KEPT;
	if (__sync_val_compare_and_swap(&slot->key, key, key | TRACER_SLOT_BUSY) != key)
		return TRACER_POOL_KEPT; /* freed or replaced right now */
	at = slot->info;
	if (at.time != TRACER_TIME(ns) || at.size != size) {
		__sync_val_compare_and_swap(&slot->key, key | TRACER_SLOT_BUSY, key);
		goto stale;
	}
	__sync_val_compare_and_swap(&slot->key, key | TRACER_SLOT_BUSY, 0);
	bpf_map_delete_elem(&pool_marks, &key);
	trace_gone(key, st, &at, false);
	count(TRACER_CNT_POOL_FREES_FOUND, 1);
	return TRACER_POOL_FORGOTTEN;
stale:
	bpf_map_delete_elem(&pool_marks, &key);
	return TRACER_POOL_STALE;
}

/* --follow: children of traced processes are traced too. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(follow_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u32 ctgid = BPF_CORE_READ(child, tgid);

	if (!filter_pids || ptgid == ctgid)
		return 0;
	if (!bpf_map_lookup_elem(&traced_pids, &ptgid)) {
		/* -a without filters: every user process, the first ones found
		 * by user space, then each child of another (a usermode helper
		 * at its exec) but the tracer's and kernel threads */
		if (!trace_all || filtered() || ptgid == tracer_tgid ||
		    (BPF_CORE_READ(child, flags) & 0x00200000 /* PF_KTHREAD */) ||
		    bpf_map_lookup_elem(&excluded_pids, &ctgid))
			return 0;
	}
	if (!index_process(ctgid, BPF_ANY))
		return 0;
	notice(ctgid, TRACER_NOTICE_NEW);
	/* a forked CPython is the same interpreter, its threads' states at the
	 * same addresses: its parent's walker configuration */
	if (python_enabled) {
		struct tracer_py_config *pc = bpf_map_lookup_elem(&py_configs, &ptgid);

		if (pc)
			bpf_map_update_elem(&py_configs, &ctgid, pc, BPF_ANY);
	}
	/* the child maps what its parent mapped: the same unwind table */
	if (capture_stack) {
		struct tracer_unwind_proc *up = bpf_map_lookup_elem(&unwind_procs, &ptgid);

		if (up)
			bpf_map_update_elem(&unwind_procs, &ctgid, up, BPF_ANY);
	}
	return 0;
}

/* A traced process's exec: the image it replaced took its blocks along,
 * which nothing can free now. They stay in the table under the process's
 * old index (user space reports none of them) and the process goes on
 * under a new one with nothing live; its peak and events stay its own. */
static __always_inline void image_replaced(__u32 tgid)
{
	struct tracer_proc_stats *st;

	if (!filter_pids)
		target_index = TRACER_NEXT_TARGET_INDEX(target_index);
	else
		index_process(tgid, BPF_EXIST);
	__sync_fetch_and_add(&loader_changes, 1);
	__sync_fetch_and_add(&execs, 1);
	/* exec has ended every other thread of the process: nothing races */
	st = proc_stats(tgid, false);
	if (!st)
		return;
	st->current = 0;
	for (int k = 0; k < TRACER_NCLASSES; k++)
		st->classes[k].current = 0;
}

/* What the exiting process p (the current task) was: its comm, pid in its
 * namespace, start, cgroup and command line (its memory is still its own here). */
static __always_inline void exit_note(struct task_struct *p, __u32 tgid)
{
	struct tracer_exit_note note = {};
	struct pid *pid = BPF_CORE_READ(p, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	__u64 start, end, len;
	struct upid up = {};

	bpf_get_current_comm(note.comm, sizeof(note.comm));
	note.start_ns = BPF_CORE_READ(p, start_boottime);
	note.cgroup_id = bpf_get_current_cgroup_id();
	if (level < 32 && !bpf_core_read(&up, sizeof(up), &pid->numbers[level]))
		note.ns_pid = (__u32)up.nr;
	if (mm) {
		start = BPF_CORE_READ(mm, arg_start);
		end = BPF_CORE_READ(mm, arg_end);
		len = end > start ? end - start : 0;
		if (len > TRACER_EXIT_ARGS)
			len = TRACER_EXIT_ARGS;
		if (len && !bpf_probe_read_user(note.args, len, (void *)start))
			note.args_len = (__u32)len;
	}
	bpf_map_update_elem(&exit_notes, &tgid, &note, BPF_ANY);
}

/* --follow: a traced process other than the command leaves at its exit,
 * with the blocks it still held (they stay in the table under an index no
 * process has: user space reports none of them, and reads its figures
 * before it forgets them). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(traced_exit, struct task_struct *p)
{
	__u32 tgid = BPF_CORE_READ(p, tgid);

	if (!filter_pids || keep_exited || BPF_CORE_READ(p, pid) != tgid ||
	    tgid == target_tgid || bpf_map_lookup_elem(&kept_pids, &tgid))
		return 0;
	if (bpf_map_delete_elem(&traced_pids, &tgid) == 0) {
		__sync_fetch_and_add(&exits, 1);
		bpf_map_delete_elem(&py_configs, &tgid); /* its walker goes with it */
		exit_note(p, tgid);
	}
	return 0;
}

/* An exec replaces every mapping: the process's unwind table goes, and
 * user space reads the new ones (unwind_wanted). */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(traced_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = BPF_CORE_READ(p, tgid);

	if (capture_stack && bpf_map_delete_elem(&unwind_procs, &tgid) == 0)
		__sync_fetch_and_add(&unwind_wanted, 1);
	if (traced(tgid)) {
		if (trace_all && filtered() && !wanted_now(tgid)) {
			/* it no longer matches --comm: it leaves, as at an exit */
			if (bpf_map_delete_elem(&traced_pids, &tgid) == 0)
				__sync_fetch_and_add(&exits, 1);
			return 0;
		}
		image_replaced(tgid);
		if (trace_all || multi) {
			/* an interpreter it ran went with the old image:
			 * none is walked until user space finds one anew */
			bpf_map_delete_elem(&py_configs, &tgid);
			notice(tgid, TRACER_NOTICE_LOADED | TRACER_NOTICE_EXEC);
		}
	} else if (trace_all && wanted_now(tgid) && index_process(tgid, BPF_NOEXIST)) {
		/* a new program that -a traces: its first allocations may come
		 * before user space has probed what it maps */
		__sync_fetch_and_add(&loader_changes, 1);
		bpf_map_delete_elem(&py_configs, &tgid);
		notice(tgid, TRACER_NOTICE_NEW | TRACER_NOTICE_LOADED | TRACER_NOTICE_EXEC);
	}
	return 0;
}
