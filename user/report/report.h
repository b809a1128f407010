/* Reports of a snapshot for people (tracemalloc's text formats) and for
 * scripts (JSON). Knows nothing of BPF. */
#ifndef TRACER_REPORT_H
#define TRACER_REPORT_H

#include <stdbool.h>
#include <stdio.h>
#include "model/snapshot.h"
#include "model/stats.h"

enum report_format {
	REPORT_TEXT,
	REPORT_JSON,
	REPORT_PPROF,	  /* tracer stats only: pprof.h */
	REPORT_COLLAPSED, /* tracer stats only: collapsed.h */
	REPORT_HTML,	  /* one self-contained page: html.h */
};

struct report_options {
	enum report_format format;
	enum stats_key key;
	bool cumulative;
	int top;	     /* how many statistics; <= 0 means all */
	int traceback_limit; /* Traceback.format(limit) for 'traceback'; 0 = all */
	bool color;	     /* text: headers and sizes in colour (--color) */
	bool collapsed_lines; /* collapsed: frames with their lines, not by function */
	/* what the statistics count: the live traces (default), the live set
	 * at the peak (--peak), allocations or temporaries over the run
	 * (--sort allocations, --sort temporary) */
	enum stats_source source;
	/* --older-than: only blocks allocated at least this long before the
	 * snapshot (0: every one) */
	uint64_t older_than_ns;
	/* a snapshot of several processes: how many the text report details
	 * (<= 0: REPORT_TOP_PROCESSES); every one when every_process (--pid or
	 * --comm chose them) */
	int top_processes;
	bool every_process;
};

#define REPORT_TOP_PROCESSES 10

/* Header (target, nframe, traced memory current/peak, tracer memory, events,
 * every counter) then the top statistics. A snapshot of several processes:
 * the header counts them, then come the top processes by traced memory,
 * then each one's top statistics (with -k process, the statistics by
 * process only); its JSON adds a "processes" array of each one's document. Returns 0 or a negative errno:
 * -ENODATA when the source needs sites or --older-than ages that the
 * snapshot has not (report_missing says which). */
int report_snapshot(FILE *out, const struct snapshot *s, const struct report_options *o);
/* compare_to report: header of both snapshots, then StatisticDiff lines. */
int report_compare(FILE *out, const struct snapshot *old_snap, const struct snapshot *new_snap,
		   const struct report_options *o);
/* get_object_traceback(): the block holding addr and its traceback, or a
 * line saying none does (then 1, else 0). */
int report_address(FILE *out, const struct snapshot *s, uint64_t addr);
/* What the options need that s lacks, as a line for stderr; NULL when
 * nothing. */
const char *report_missing(const struct snapshot *s, const struct report_options *o);

#endif
