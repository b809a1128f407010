/* From the BPF maps to a snapshot: every live slot of the allocation table
 * becomes a trace with its traceback (resolve.h), beside traced memory,
 * every counter of something lost, and the tracer's own memory. Owns the
 * symbolizer of each traced process, so that frames still resolve after a
 * process exits. */
#ifndef TRACER_COLLECT_H
#define TRACER_COLLECT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"
#include "model/snapshot.h"
#include "python/frames.h"
#include "resolve.h"
#include "stacks.h"
#include "symbolize.h"
#include "tracer.h"
#include "proc_index.h"
#include "tracer.skel.h"
#include "unwind/maps.h"

/* The counter of collector.stops_kept. */
#define COLLECT_STOPS_KEPT "threads let go with a stop of the tracer pending"

struct collector {
	struct tracer_bpf *skel;
	struct resolve_options resolve;
	bool follow;		  /* --follow: keys carry a process index */
	bool keep_exited;	  /* --keep-exited: children that exit stay */
	struct tracer_proc_stats gone; /* --follow: the figures of children that left */
	/* collect_sweep_gone: the allocation table mapped, and when it last ran */
	struct tracer_bucket *table;
	size_t table_bytes;
	uint64_t swept_at_events; /* execs + exits then */
	struct proc_indexes indexes; /* their reuse (--follow) */
	struct cgroup_names cgroups; /* of exit notes */
	/* multi with per-process probes: processes that exited before theirs
	 * were attached (multi.c counts them) */
	uint64_t gone_before_probed;
	uint64_t pool_checks_failed; /* pool_frees_apply's, at the last snapshot */
	uint64_t swept_blocks;	   /* in all */
	pid_t pid;		  /* the target (the launched command with --follow) */
	struct python_frames *py; /* the target's Python frames; may be NULL */
	struct symbolizer *sym;	  /* the target's */
	struct stack_store stacks; /* native stacks, when nframe > 1 */
	bool have_stacks;
	uint64_t stacks_seen;	 /* native_stacks_added at the last drain */
	uint64_t stacks_missing; /* in the last snapshot */
	uint64_t replaced_blocks; /* in the last snapshot: left by images exec'd over */
	/* launched threads let go with a stop of the tracer still pending
	 * (session.c's release_stops): their process may stop for real */
	uint64_t stops_kept;
	size_t sweep_at;	 /* stacks in the store that call for a sweep */
	struct unwind_maps *unwind; /* the session's, for what it could not table; may be NULL */
	struct collect_proc {
		pid_t pid;
		struct symbolizer *sym;
		/* multi: what the report says of it (snapshot_process) */
		struct python_frames *py; /* its CPython's (owned; a forked child
					   * shares its parent's), or NULL */
		uint32_t flags;		  /* SNAPSHOT_PROCESS_* */
		pid_t ns_pid;
		uint64_t start_time;
		char comm[16];
		char *command, *cgroup;
		bool python_probed; /* multi.c's: its CPython's allocators probed */
		bool set_up;	    /* multi.c's: traced (probed, CPython looked for) */
	} * procs; /* --follow: the other traced processes; multi: every one */
	size_t nprocs;
	/* multi (-a, several -p): each process its own in the snapshot */
	bool multi;
	/* multi or --follow: the snapshot has a row per process */
	bool rows;
	struct collect_proc target; /* --follow: the target's row (its sym and py are c's) */
	/* multi: processes that exited, with their last figures (the oldest
	 * beyond COLLECT_MAX_EXITED are only in gone) */
	struct collect_exited {
		struct collect_proc p;
		struct tracer_proc_stats st;
	} * exited;
	size_t nexited, cap_exited;
	/* the header */
	char command[4096];
	uint64_t start_time; /* the target's, seconds since the epoch */
	uint64_t started_ns; /* CLOCK_MONOTONIC when tracing started */
};

/* Starts collecting for the target pid (its command, start time and
 * mappings are read now). Returns 0 or -ENOMEM. */
int collect_open(struct collector *c, struct tracer_bpf *skel, pid_t pid,
		 const struct resolve_options *resolve, bool follow, struct python_frames *py);
void collect_close(struct collector *c);

#define COLLECT_MAX_EXITED 1024

/* The symbolizer of a traced process (made when first asked), or NULL. */
struct symbolizer *collect_symbolizer(struct collector *c, pid_t pid);
/* A traced process's entry (made when first asked, its comm, command,
 * cgroup and start read then), or NULL when out of memory. */
struct collect_proc *collect_process(struct collector *c, pid_t pid);
/* The entry of pid if it has one (none is made), else NULL. */
struct collect_proc *collect_find_process(struct collector *c, pid_t pid);
/* multi: py becomes the CPython frames of process pid (the collector
 * owns it from now on; the same py may serve several: a forked child's). */
void collect_set_python(struct collector *c, pid_t pid, struct python_frames *py);
/* Reads the mappings of every traced process that lives. */
void collect_refresh(struct collector *c);

/* Moves the native stacks stored since the last drain out of BPF, when due
 * or when the map fills; cheap when there are none. */
void collect_drain_stacks(struct collector *c, bool due);

/* Frees the allocation table's slots that processes gone left behind
 * (the blocks of images exec'd over, of children that exited): their
 * blocks can never be freed. Cheap unless a process went since the last
 * sweep. */
void collect_sweep_gone(struct collector *c);

/* Every live trace now, with the header and counters; NULL when out of
 * memory. */
struct snapshot *collect_snapshot(struct collector *c);

/* tracemalloc's reset_peak(): every traced process's peak becomes its
 * current traced memory. */
void collect_reset_peak(struct collector *c);

/* Every counter of tracer.h, summed over the CPUs. */
void collect_read_counters(struct collector *c, struct tracer_counters *sum);

/* Gives process pid an index in allocation keys (traced_pids), unless it
 * has one: 0, -ENOSPC when none is left, or -errno. */
int collect_index_process(struct tracer_bpf *skel, pid_t pid);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t collect_now_ns(void);

#endif
