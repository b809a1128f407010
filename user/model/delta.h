/* Snapshots combined: the traces of one added to another (the "before" of a
 * delta profile), and the short name of a snapshot's target. */
#ifndef TRACER_DELTA_H
#define TRACER_DELTA_H

#include "model/snapshot.h"

/* Adds every trace of src to dst, its traceback, frames, mappings,
 * process and strings interned into dst's tables (equal ones shared; a
 * process is dst's of the same pid and start time, or added). A snapshot
 * of one process imported into one of several becomes a process row of
 * its target; one of several into one of one process that has traces is
 * -EINVAL. Returns 0 or a negative errno (dst then holds part of them). */
int snapshot_import_traces(struct snapshot *dst, const struct snapshot *src);

/* The target's name as the kernel's comm gives it: the base name of the
 * command line's first word, at most 15 bytes; "" when unknown. buf holds
 * SNAPSHOT_COMM_LEN bytes. */
#define SNAPSHOT_COMM_LEN 16
const char *snapshot_comm(const struct snapshot *s, char *buf);

#endif
