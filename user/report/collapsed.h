/* A snapshot as collapsed stacks ("frame;frame;frame bytes", root first),
 * the input of flamegraph.pl, speedscope and inferno. */
#ifndef TRACER_COLLAPSED_H
#define TRACER_COLLAPSED_H

#include <stdio.h>

#include "model/snapshot.h"

/* One line per distinct stack, sorted, its live bytes summed. Returns 0 or
 * a negative errno. */
int collapsed_write(const struct snapshot *s, FILE *out);

#endif
