/* A snapshot as a pprof profile (gzipped perftools.profiles.Profile), which
 * go tool pprof, Pyroscope and Parca read: sample types inuse_objects/count
 * and inuse_space/bytes, one sample per (traceback, domain), one location
 * per frame with its function, file and line. */
#ifndef TRACER_PPROF_H
#define TRACER_PPROF_H

#include <stdio.h>

#include "model/snapshot.h"

/* Returns 0 or a negative errno. */
int pprof_write(const struct snapshot *s, FILE *out);

#endif
