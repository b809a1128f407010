/* A snapshot as collapsed stacks ("frame;frame;frame bytes", root first),
 * the input of flamegraph.pl, speedscope and inferno. */
#ifndef TRACER_COLLAPSED_H
#define TRACER_COLLAPSED_H

#include <stdbool.h>
#include <stdio.h>

#include "model/snapshot.h"

/* The root of a stack that does not reach where its program or thread
 * started (cut at nframe, or where a native walk could not go on). */
#define COLLAPSED_CUT_ROOT "[cut]"

/* One line per distinct stack, sorted, its live bytes summed. Frames are
 * functions (one box per function) unless lines, where they carry their
 * line. Returns 0 or a negative errno. */
int collapsed_write(const struct snapshot *s, FILE *out, bool lines);
/* The same; by_process (-k process) roots each stack at its process,
 * "pid 4242 (redis-server)", so that a flame graph has a tower each. */
int collapsed_write_with(const struct snapshot *s, FILE *out, bool lines, bool by_process);

#endif
