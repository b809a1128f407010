/* tracer stats FILE and tracer compare OLD NEW: saved snapshots, filtered,
 * to reports (text, JSON, pprof, collapsed, an address's traceback). Each
 * returns the process exit status, having printed one line for an error. */
#ifndef TRACER_OFFLINE_H
#define TRACER_OFFLINE_H

#include <stdbool.h>
#include <stdint.h>

#include "model/filter.h"
#include "report/report.h"

struct offline_request {
	const char *const *files; /* the snapshot files named */
	int nfiles;
	const char *output; /* -o FILE (compare: html only), or NULL for standard output */
	const struct report_options *report;
	const struct filter_set *filters;
	bool has_address; /* stats --address */
	uint64_t address;
};

int offline_stats(const struct offline_request *r);
int offline_compare(const struct offline_request *r);

#endif
