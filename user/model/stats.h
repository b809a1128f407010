/* tracemalloc's Snapshot.statistics() and compare_to(): grouping by
 * filename, lineno, traceback or (tracer's own) process, plain or cumulative, sorted exactly as
 * tracemalloc sorts (../shared/TRACEMALLOC.md section 4). */
#ifndef TRACER_STATS_H
#define TRACER_STATS_H

#include "model/snapshot.h"

enum stats_key {
	STATS_KEY_FILENAME,
	STATS_KEY_LINENO,
	STATS_KEY_TRACEBACK,
	STATS_KEY_PROCESS, /* a Statistic per traced process */
};

/* One frame of a group key. Strings point into the snapshot(s) the list was
 * computed from, which must outlive the list. lineno is 0 for 'filename'. */
struct stats_frame {
	const char *filename;
	uint32_t lineno;
	const char *function; /* for display only; NULL when unknown */
	/* For display only, and set only where the key decides them: a native
	 * frame without a source line (its filename "binary+0xOFFSET", lineno
	 * 0) in a known mapping has binary, the mapped file, and
	 * function_offset, the return address's offset in function (0
	 * unknown); NULL and 0 for every other frame and for 'filename' keys,
	 * where such a frame's file is its binary. */
	const char *binary;
	uint64_t function_offset;
	/* For display only: the file a native frame's mapping maps (whether
	 * or not the frame has a source line), NULL when unknown (a Python
	 * frame, a frame of an older snapshot file). */
	const char *module;
};

/* What the statistics count: tracemalloc's, the live traces; or, from the
 * snapshot's sites (snapshot.h), the live set at the peak, every allocation
 * since tracing began, or its temporary allocations. Live and peak sort by
 * size, allocations and temporaries by count. */
enum stats_source {
	STATS_SOURCE_LIVE,
	STATS_SOURCE_PEAK,
	STATS_SOURCE_ALLOCATIONS,
	STATS_SOURCE_TEMPORARY,
};

/* A group's figures from every source, whichever the statistics count. */
struct stats_figures {
	uint64_t size, count;		  /* live */
	uint64_t peak_size, peak_count;	  /* at the peak */
	uint64_t alloc_size, alloc_count; /* allocated over the run */
	uint64_t temp_size, temp_count;	  /* of which temporary */
	uint64_t max_age_ns;		  /* of its oldest live block */
};

/* The process a 'process' key names (a snapshot of one process: its
 * target). Strings point into the snapshot, NULL when unknown. Processes
 * of two snapshots are the same when pid and start_time are. */
struct stats_process {
	int32_t pid, ns_pid;
	const char *comm, *command, *cgroup, *runtime;
	uint32_t flags; /* SNAPSHOT_PROCESS_* */
	uint64_t start_time;
};

/* A Statistic (or StatisticDiff when from stats_compare). key holds nkey
 * frames, most recent first; 'lineno' and 'filename' keys have one; a
 * 'process' key has none, and process says which (NULL for other keys). size
 * and count are the source's (live: tracemalloc's); all holds every
 * source's (of the new snapshot when compared). */
struct stats_entry {
	struct stats_frame *key;
	uint32_t nkey;
	uint64_t size;
	uint64_t count;
	int64_t size_diff;  /* compare only */
	int64_t count_diff; /* compare only */
	struct stats_figures all;
	const struct stats_process *process;
};

struct stats_list {
	struct stats_entry *entries;
	size_t n;
	void *storage; /* private */
};

/* Returns 0 or a negative errno; -EINVAL for cumulative with 'traceback'
 * or 'process'. */
int stats_compute(const struct snapshot *s, enum stats_key key, bool cumulative,
		  struct stats_list *out);
/* The same counting source's figures: a group is listed when its count
 * there is not 0. */
int stats_compute_source(const struct snapshot *s, enum stats_source source, enum stats_key key,
			 bool cumulative, struct stats_list *out);
/* compare_to(old): entries of new against old, zero diffs kept. */
/* The same, of one process's traces and sites only (an index into
 * s->processes; STATS_EVERY_PROCESS for all). */
#define STATS_EVERY_PROCESS UINT32_MAX
int stats_compute_process(const struct snapshot *s, uint32_t process, enum stats_source source,
			  enum stats_key key, bool cumulative, struct stats_list *out);
int stats_compare(const struct snapshot *new_snap, const struct snapshot *old_snap,
		  enum stats_key key, bool cumulative, struct stats_list *out);
int stats_compare_source(const struct snapshot *new_snap, const struct snapshot *old_snap,
			 enum stats_source source, enum stats_key key, bool cumulative,
			 struct stats_list *out);
void stats_list_free(struct stats_list *l);

/* A snapshot frame as a 'lineno' or 'traceback' key holds it. */
struct stats_frame stats_frame_of(const struct snapshot *s, const struct snapshot_frame *f);

/* "pid 4242 (redis-server)", the title of a process statistic, into buf
 * (the comm as is: the caller escapes it for its output). */
const char *stats_process_title(const struct stats_process *p, char *buf, size_t len);

/* "filename", "lineno", "traceback", "process" -> key; 0 or -EINVAL. */
int stats_parse_key(const char *name, enum stats_key *key);
const char *stats_key_name(enum stats_key key);
/* "size" (live), "peak", "allocations", "temporary" <-> source. */
int stats_parse_source(const char *name, enum stats_source *source);
const char *stats_source_name(enum stats_source source);

#endif
