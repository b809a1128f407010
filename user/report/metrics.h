/* A snapshot as Prometheus metrics (text exposition format 0.0.4), for
 * tracer serve's /metrics: per traced process (labels pid, comm) traced
 * bytes now and at peak, live blocks, allocation and free events, lost
 * events by reason; the tracer's own memory and probe hits. */
#ifndef TRACER_METRICS_H
#define TRACER_METRICS_H

#include <stdio.h>

#include "model/snapshot.h"

/* What the serving side knows beside the snapshot. */
struct metrics_info {
	const char *version;	   /* tracer_build_info's label */
	double snapshot_seconds;   /* how long the snapshot took to build */
	double snapshot_age_seconds; /* how old it is when served */
};

/* Returns 0 or a negative errno. */
int metrics_write(const struct snapshot *s, const struct metrics_info *info, FILE *out);

/* A counter's name as a label value: lowercase letters, digits and single
 * underscores ("allocs table full" -> "allocs_table_full"); out holds len. */
void metrics_identifier(const char *name, char *out, size_t len);

#endif
