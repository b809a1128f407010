/* The files the tracer writes (snapshots, stats -o reports, pprof), written
 * as root into places other users may control. The rules:
 *
 * - The last component of the name is never followed: a symbolic link there
 *   is refused, and so is anything but a regular file (a device, a FIFO, a
 *   directory): an existing FILE is replaced only if it is a regular file.
 * - In a world-writable sticky directory (/tmp), a file that another user
 *   owns is refused, as the kernel's protected_regular does for O_CREAT.
 * - The content gets its name only once complete: an unnamed O_TMPFILE
 *   linked in when written, where the filesystem has it; elsewhere a hidden
 *   ".NAME.XXXXXX" beside it, removed on every failure.
 * - Mode 0600; under sudo, owned by the invoking user (SUDO_UID, SUDO_GID),
 *   so that `sudo tracer ... -o f` leaves a file its user can read.
 *
 * Errors are a negative errno with a reason for people in why. */
#ifndef TRACER_OUTFILE_H
#define TRACER_OUTFILE_H

#include <stddef.h>
#include <stdio.h>

/* Whether path could be written now (its directory exists and what is at
 * path may be replaced). 0, or -errno with why filled. */
int outfile_check(const char *path, char *why, size_t why_len);

struct outfile;

/* An unnamed file to be written for path (checked as outfile_check does). */
int outfile_create(const char *path, struct outfile **out, char *why, size_t why_len);
/* A stream on it; owned by the outfile (closed by commit and discard). */
FILE *outfile_stream(struct outfile *o);
/* Flushes, syncs and gives the file its name (checking the name again);
 * frees o whatever the outcome. */
int outfile_commit(struct outfile *o, char *why, size_t why_len);
/* Drops the file unnamed; frees o. */
void outfile_discard(struct outfile *o);

/* A log (tracer serve --log): path opened for appending, under the same
 * rules (never through a link, a regular file only, another's file in a
 * sticky directory refused; created 0600). A line-buffered stream. */
int outfile_append(const char *path, FILE **out, char *why, size_t why_len);

/* All of it for a buffer. */
int outfile_write(const char *path, const void *buf, size_t len, char *why, size_t why_len);

#endif
