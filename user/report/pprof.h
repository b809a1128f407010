/* A snapshot as a pprof profile (gzipped perftools.profiles.Profile), which
 * go tool pprof, Pyroscope and Parca read as Go's heap profile: sample
 * types inuse_objects/count and inuse_space/bytes (the default), period type
 * space/bytes, one sample per (traceback, domain, process) labelled with
 * its process's pid and comm (a snapshot of one process: the target's) and
 * the domain, one location per frame with its
 * function, file and line. Go's alloc_objects and alloc_space come first
 * once the model counts allocations per site since tracing began; until
 * then they are left out rather than made up. */
#ifndef TRACER_PPROF_H
#define TRACER_PPROF_H

#include <stdbool.h>
#include <stdio.h>

#include "model/snapshot.h"

/* Returns 0 or a negative errno. */
int pprof_write(const struct snapshot *s, FILE *out);

/* A delta profile (Go's ?seconds=N): s holds the later live set's traces,
 * then from subtract_from on the earlier one's (model/delta.h), which
 * count negatively; a sample whose values all come to 0 is left out, and
 * the others can be negative (blocks freed in the window). */
struct pprof_options {
	bool delta;
	uint64_t subtract_from;
};

int pprof_write_with(const struct snapshot *s, const struct pprof_options *o, FILE *out);

#endif
