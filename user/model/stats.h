/* tracemalloc's Snapshot.statistics() and compare_to(): grouping by
 * filename, lineno or traceback, plain or cumulative, sorted exactly as
 * tracemalloc sorts (../shared/TRACEMALLOC.md section 4). */
#ifndef TRACER_STATS_H
#define TRACER_STATS_H

#include "model/snapshot.h"

enum stats_key {
	STATS_KEY_FILENAME,
	STATS_KEY_LINENO,
	STATS_KEY_TRACEBACK,
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

/* A Statistic (or StatisticDiff when from stats_compare). key holds nkey
 * frames, most recent first; 'lineno' and 'filename' keys have one. */
struct stats_entry {
	struct stats_frame *key;
	uint32_t nkey;
	uint64_t size;
	uint64_t count;
	int64_t size_diff;  /* compare only */
	int64_t count_diff; /* compare only */
};

struct stats_list {
	struct stats_entry *entries;
	size_t n;
	void *storage; /* private */
};

/* Returns 0 or a negative errno; -EINVAL for cumulative with 'traceback'. */
int stats_compute(const struct snapshot *s, enum stats_key key, bool cumulative,
		  struct stats_list *out);
/* compare_to(old): entries of new against old, zero diffs kept. */
int stats_compare(const struct snapshot *new_snap, const struct snapshot *old_snap,
		  enum stats_key key, bool cumulative, struct stats_list *out);
void stats_list_free(struct stats_list *l);

/* A snapshot frame as a 'lineno' or 'traceback' key holds it. */
struct stats_frame stats_frame_of(const struct snapshot *s, const struct snapshot_frame *f);

/* "filename", "lineno", "traceback" -> key; returns 0 or -EINVAL. */
int stats_parse_key(const char *name, enum stats_key *key);
const char *stats_key_name(enum stats_key key);

#endif
