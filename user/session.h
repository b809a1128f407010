/* One tracing session: load the BPF object, place the probes in the target,
 * wait (duration, interval, signals, target exit), then drain the maps into
 * snapshots and hand them to reports and files. */
#ifndef TRACER_SESSION_H
#define TRACER_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "model/filter.h"
#include "python/free_lists.h"
#include "report/report.h"

#define SESSION_DEFAULT_MAX_ALLOCS (1u << 20)
#define SESSION_DEFAULT_MAX_STACKS (1u << 14)

/* The allocation table for max_allocs live blocks: its buckets (5/4 of the
 * slots needed: two-choice buckets of 4 fill to ~95 % before a key finds
 * both full) and the kernel memory they take from the start. */
uint32_t session_alloc_buckets(uint32_t max_allocs);
uint64_t session_alloc_table_bytes(uint32_t max_allocs);

/* Besides reports, a consumer of snapshots that the loop feeds between its
 * polls (tracer serve): when wants() says so, the loop builds a snapshot
 * and gives it (ownership passes; NULL when it could not), with how long
 * that took. With a consumer the session prints no report of its own. */
struct snapshot;
struct session_consumer {
	bool (*wants)(void *arg);
	void (*give)(void *arg, struct snapshot *snap, double build_seconds);
	bool (*done)(void *arg); /* optional: the session ends when it says so */
	void (*hangup)(void *arg); /* optional: SIGHUP, which then does not end it */
	void *arg;
};

#define SESSION_MAX_LIST 64 /* -p, --comm, --cgroup, --exclude-pid values each */

struct session_options {
	pid_t pid;	     /* -p, or 0 (given several times: the first) */
	pid_t pids[SESSION_MAX_LIST]; /* every -p */
	size_t npids;
	bool all;	     /* -a: every process */
	const char *comms[SESSION_MAX_LIST]; /* -a --comm: only these */
	size_t ncomms;
	const char *cgroups[SESSION_MAX_LIST]; /* -a --cgroup: only those in these */
	size_t ncgroups;
	pid_t exclude_pids[SESSION_MAX_LIST]; /* -a --exclude-pid */
	size_t nexclude;
	char **argv;	     /* -- CMD ..., or NULL */
	bool follow;	     /* --follow: children too */
	bool keep_exited;    /* --keep-exited: a child's blocks outlive it */
	uint32_t nframe;     /* -n */
	double duration;     /* -d seconds, 0 = until Ctrl-C or target exit */
	double interval;     /* -i seconds, 0 = report at the end only */
	uint32_t max_allocs; /* --max-allocs */
	uint32_t max_stacks; /* --max-stacks */
	uint32_t proc_indexes; /* process indexes given out ($TRACER_PROC_INDEXES, tests) */
	bool probe_only;     /* --probe-only: the floor, nothing recorded */
	bool python_malloc;  /* --python-malloc: launch with PYTHONMALLOC=malloc */
	bool hook_pymalloc;  /* --hook-pymalloc: point pymalloc's tables at raw */
	/* objects from free lists move (by default; --python-free-lists asks,
	 * --no-python-free-lists does not) */
	enum python_free_lists python_free_lists;
	bool native;	     /* --native: C frames then Python frames, merged */
	bool keep_allocator_frames; /* --keep-allocator-frames: no plumbing left out */
	double budget;	     /* --budget: the cost allowed / own CPU time; 0: unbounded */
	bool verbose;
	const char *output; /* -o FILE pattern, or NULL */
	struct report_options report;
	const struct filter_set *filters; /* applied to reports, not to -o files */
	const struct session_consumer *consumer; /* or NULL */
};

/* Runs the session; returns the process exit status (0, 1 runtime error,
 * 2 bad input), having printed one line for any error. */
int session_run(const struct session_options *o);

#endif
