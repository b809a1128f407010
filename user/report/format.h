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
/* Whether a frame is the outermost of a whole native stack: _start, or a
 * thread's clone/clone3. */
bool format_is_stack_start(const struct stats_frame *f);
/* Whether a frame is where a program or a thread starts (_start,
 * __libc_start_call_main, clone3 ...): the oldest frames of every complete
 * native stack. */
bool format_is_startup_frame(const struct stats_frame *f);
/* Whether a frame is runtime rather than the program's own code: startup
 * (_start, __libc_start_call_main, a thread's start), the C and C++
 * runtimes, the dynamic linker, an allocator's library, libstdc++'s
 * inlined headers, the interpreter's C code. */
bool format_is_runtime_frame(const struct stats_frame *f);
/* The frame that titles a statistic: its oldest (tracemalloc's rule), or,
 * when that is runtime, the most recent that is not (the oldest when all
 * are). Index into e->key; 0 for an empty key. */
uint32_t format_title_frame(const struct stats_entry *e);
/* str(Statistic) or, with diff, str(StatisticDiff), without newline. */
void format_statistic(FILE *out, const struct stats_entry *e, bool diff);
/* The same, its sizes in bold when color (a growth red, a shrink green). */
void format_statistic_styled(FILE *out, const struct stats_entry *e, bool diff, bool color);
/* Traceback.format(limit, most_recent_first) of a key, one line each. */
void format_traceback(FILE *out, const struct stats_frame *frames, uint32_t n, int limit,
		      bool most_recent_first);
/* Text from the target (file, function and command names, source lines)
 * as a terminal may show it: valid UTF-8 passes, and each byte of a control
 * character (C0, DEL, C1, a bidirectional override or isolate) or of an
 * invalid sequence prints as \xNN. */
void format_text(FILE *out, const char *s);
/* A JSON string literal with its quotes: control characters (as
 * format_text's, and U+2028/U+2029) as \uXXXX, invalid UTF-8 as U+FFFD. */
void format_json_string(FILE *out, const char *s);
/* The same; in_script also writes <, > and & as \uXXXX, so that the string
 * can stand in a page's <script> (no "</script>" can end it). */
void format_json_escaped(FILE *out, const char *s, bool in_script);

#endif
