/* The HTML report: one self-contained page (no network reference at all)
 * with an interactive flame graph of each view, a sortable table of the
 * top statistics, the header figures and, for a series (-i), memory over
 * time. The page's script and style are the project's own files
 * (user/report/html/), embedded into the binary at build time; the data is
 * one JSON document inside the page, laid out as html.c describes.
 * Knows nothing of BPF. */
#ifndef TRACER_HTML_H
#define TRACER_HTML_H

#include <stdint.h>
#include <stdio.h>

#include "model/snapshot.h"
#include "model/stats.h"
#include "report/report.h"

/* One view of the page: a flame graph and a table of a set of traces,
 * weighed by their size and counted. "live" is the snapshot's live set;
 * other views ("peak", "allocations" ...) may be added with their own
 * snapshot, and the page offers a selector when there is more than one. */
struct html_view {
	const char *name;  /* identifier: "live", "peak" ... */
	const char *title; /* for people: "Live memory" */
	const struct snapshot *snap;
	const struct snapshot *old_snap; /* compare: the older snapshot, else NULL */
	/* which figures weigh it: the live traces, or the snapshot's sites at
	 * the peak or over the run (stats.h); old_snap only with the live set */
	enum stats_source source;
};

/* One point of memory over time: a report of a series. */
struct html_series_point {
	double seconds; /* since tracing started */
	uint64_t traced_current;
	uint64_t traced_peak;
};

#define HTML_MAX_VIEWS 8
/* statistics in the table when -t is not given */
#define HTML_DEFAULT_TOP 100

struct html_page {
	const struct snapshot *header;	   /* the figures at the top (the new one of a compare) */
	const struct snapshot *old_header; /* compare: the old snapshot's, else NULL */
	struct html_view views[HTML_MAX_VIEWS];
	unsigned nviews;
	const struct html_series_point *series; /* NULL or nseries points, oldest first */
	size_t nseries;
	const struct report_options *report; /* the table: key, cumulative, top */
};

/* The page for one snapshot (its "live" view, and when it has sites its
 * "peak" and "allocations" views) or, with old_snap, the compare of
 * old_snap to snap; series may be NULL. */
void html_page_init(struct html_page *p, const struct snapshot *snap,
		    const struct snapshot *old_snap, const struct report_options *o);

/* Writes the page. Returns 0 or a negative errno. */
int html_write(FILE *out, const struct html_page *p);

/* A JSON string literal that is safe inside an HTML <script> element:
 * '<', '>' and '&' as \u escapes (no "</script>" nor "<!--" can form), every
 * control character escaped, U+2028 and U+2029 escaped, and every byte that
 * does not start a valid UTF-8 sequence as U+FFFD. NULL is written null. */
void html_json_string(FILE *out, const char *s);

#endif
