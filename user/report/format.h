/* tracemalloc's text formats: _format_size, Frame, Statistic,
 * StatisticDiff and Traceback.format (../shared/TRACEMALLOC.md section 5). */
#ifndef TRACER_FORMAT_H
#define TRACER_FORMAT_H

#include <stdbool.h>
#include <stdio.h>

#include "model/stats.h"

/* _format_size(size, sign) into buf (32 bytes are always enough). */
const char *format_size(char *buf, size_t len, double size, bool sign);
/* str(Statistic) or, with diff, str(StatisticDiff), without newline. */
void format_statistic(FILE *out, const struct stats_entry *e, bool diff);
/* Traceback.format(limit, most_recent_first) of a key, one line each. */
void format_traceback(FILE *out, const struct stats_frame *frames, uint32_t n, int limit,
		      bool most_recent_first);
/* A JSON string literal with its quotes. */
void format_json_string(FILE *out, const char *s);

#endif
