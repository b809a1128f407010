/* tracemalloc's text formats: _format_size, Frame, Statistic,
 * StatisticDiff and Traceback.format (../shared/TRACEMALLOC.md section 5). */
#ifndef TRACER_FORMAT_H
#define TRACER_FORMAT_H

#include <stdbool.h>
#include <stdio.h>

#include "model/stats.h"

/* _format_size(size, sign) into buf (32 bytes are always enough). */
const char *format_size(char *buf, size_t len, double size, bool sign);
/* A frame as Frame.__str__ prints it, "file:line"; a native frame without
 * a source line (stats_frame.binary) reads "binary: function+0xOFFSET" (the
 * return address's offset in the function), or "binary+0xOFFSET" (in the
 * file) when no symbol names it. */
void format_frame(FILE *out, const struct stats_frame *f);
/* A frame as Traceback.format() prints it, without indent or newline:
 * 'File "file", line N'; a native frame without a source line reads
 * 'File "binary", in function+0xOFFSET' (then it returns true: the
 * function is printed) or 'File "binary+0xOFFSET"'. */
bool format_frame_file(FILE *out, const struct stats_frame *f);
/* str(Statistic) or, with diff, str(StatisticDiff), without newline. */
void format_statistic(FILE *out, const struct stats_entry *e, bool diff);
/* Traceback.format(limit, most_recent_first) of a key, one line each. */
void format_traceback(FILE *out, const struct stats_frame *frames, uint32_t n, int limit,
		      bool most_recent_first);
/* A JSON string literal with its quotes. */
void format_json_string(FILE *out, const char *s);

#endif
