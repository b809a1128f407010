/* The snapshot file: tracemalloc's dump()/load(), as a documented binary
 * format that is safe to open whatever its origin (docs/SNAPSHOT_FORMAT.md).
 *
 * Layout, all integers little-endian:
 *
 *   header (48 bytes)
 *     0  magic      8 bytes "\x89TRSNAP\n"
 *     8  version    u32 (SNAPFILE_VERSION)
 *    12  nsections  u32 (at most SNAPFILE_MAX_SECTIONS)
 *    16  file_size  u64, the whole file
 *    24  crc32      u32 of the whole file with this field read as zero
 *    28  reserved   u32 zero
 *    32  reserved   16 bytes zero
 *   section table: nsections entries of 24 bytes
 *     id u32, reserved u32, offset u64, length u64
 *   sections, each at an 8-aligned offset, inside the file, not overlapping:
 *     META        fixed record (struct in snapfile.c), string indices inside
 *     STRINGS     count u32, then count times (length u32, bytes), no NUL
 *     FRAMES      count times (filename u32, lineno u32, function u32)
 *     FRAME_IDS   count times u32 (frame indices)
 *     TRACEBACKS  count times (first u32, nframe u32, total_nframe u32)
 *     TRACES      count times (address u64, size u64, domain u32, traceback u32)
 *     COUNTERS    count times (name u32, reserved u32, value u64)
 *     DOMAIN_MEMORY  optional (id 8): traced memory by class of domain,
 *                 count times (class u32, reserved u32, current u64,
 *                 peak u64); class 0 python (every domain below
 *                 0xfffffff0: tracemalloc's get_traced_memory()), 1 native
 *                 (tracer's own domains, libc); a class given twice is
 *                 refused, an unknown class skipped
 *     MAPPINGS    optional (id 9): the executable mappings, the traced
 *                 executable's first: count times (start u64, limit u64,
 *                 file offset u64, path u32, build-id u32: a string index,
 *                 lowercase hex, or 0xffffffff for none); start < limit
 *     FRAME_ADDRESSES  optional (id 10), written with MAPPINGS: where each
 *                 frame of FRAMES is, in the same order and number: (mapping
 *                 u32, reserved u32, address u64, function offset u64);
 *                 mapping 0xffffffff (a Python frame) has address and offset
 *                 0, any other is an index into MAPPINGS whose range holds
 *                 the address
 *     TRACE_AGES  optional (id 11): each trace's age, in the order and number
 *                 of TRACES: count times u64, nanoseconds from its allocation
 *                 to the snapshot
 *     SITES       optional (id 12): per traceback and domain over the run,
 *                 count times (traceback u32, domain u32, allocations u64,
 *                 allocated bytes u64, temporary allocations u64, their
 *                 bytes u64, blocks live at the peak u64, their bytes u64);
 *                 temporaries never exceed allocations, a (traceback,
 *                 domain) given twice adds up (per process, with
 *                 SITE_PROCESSES)
 *   written only in a snapshot of several processes, whose file is version 2
 *   (a snapshot of one process is written as version 1, which every reader
 *   reads; version 1 files never hold these):
 *     PROCESSES   (id 13): count times 104 bytes (pid i32, ns_pid i32,
 *                 command u32, comm u32, cgroup u32, runtime u32: string
 *                 indices or 0xffffffff for none; flags u32, 1 started after
 *                 tracing began, 2 attached late, 4 exited, any other bit
 *                 refused; reserved u32 zero; start_time u64; traced current
 *                 u64, peak u64; python current u64, peak u64; native
 *                 current u64, peak u64; allocations u64, frees u64); each
 *                 figure of bytes at most 2^48, and so are their sums over
 *                 the processes; the events' sums fit in 64 bits
 *     TRACE_PROCESSES (id 14): count times u32, the process (index into
 *                 PROCESSES) of each trace, in the order and number of
 *                 TRACES; required with PROCESSES when there are traces
 *     SITE_PROCESSES (id 15): count times u32, the process of each site, in
 *                 the order and number of SITES; required with PROCESSES
 *                 when there are sites
 *   optional in either version:
 *     BUDGET      (id 16), written when traced within --budget: 48 bytes
 *                 (budget f64, coverage f64, overhead f64, hit cost in
 *                 seconds f64: IEEE 754 binary64 bits as u64; windows u64;
 *                 flags u32, 1 the frees windowed too, any other bit
 *                 refused; reserved u32 zero); budget in (0, 1], coverage
 *                 in [0, 1], overhead and hit cost not negative, each
 *                 finite; a file without it was traced without a budget
 *                 (or is older), its figures cover all the time
 *
 * Every index is checked against its table, every length against its
 * section, before anything is used. Unknown section ids are skipped (a
 * compatible addition): a reader older than DOMAIN_MEMORY skips it, and a
 * file without it loads with the figures by domain unknown
 * (snapshot.domain_memory_known false); one older than MAPPINGS and
 * FRAME_ADDRESSES skips them, and a file without them loads with no
 * mappings and every frame without one; one older than TRACE_AGES and
 * SITES skips them, and a file without them loads with no ages
 * (snapshot.ages_known false) and no sites (sites_known false); one older
 * than BUDGET skips it, and says nothing of the coverage. Versions
 * 1 and 2 are read; a higher version is refused (so a reader older than
 * PROCESSES refuses a file of several processes rather than merge them). */
#ifndef TRACER_SNAPFILE_H
#define TRACER_SNAPFILE_H

#include <stddef.h>

#include "model/snapshot.h"

/* the newest version written and read; SNAPFILE_VERSION_ONE_PROCESS is
 * what a snapshot of one process is written as */
#define SNAPFILE_VERSION 2u
#define SNAPFILE_VERSION_ONE_PROCESS 1u
#define SNAPFILE_MAX_SECTIONS 64u
/* No live block is larger than a process's address space (2^47 bytes), and
 * no snapshot holds more than 2^48 bytes (256 TiB) of them: a file that says
 * otherwise is refused. */
#define SNAPFILE_MAX_TRACE_SIZE (1ull << 47)
#define SNAPFILE_MAX_TOTAL_SIZE (1ull << 48)

/* Writes s to path as util/outfile.h writes files (never through a link
 * or over a non-regular file, named only once complete, mode 0600, the sudo
 * user's). Returns 0 or a negative errno with why filled. */
int snapfile_write(const struct snapshot *s, const char *path, char *why, size_t why_len);

/* Encodes s into a malloc'ed buffer (what snapfile_write writes). */
int snapfile_encode(const struct snapshot *s, void **buf, size_t *len);

/* Decodes a buffer; on error returns a negative errno (-EINVAL for a bad
 * file, -ENOMEM) and puts one line saying what is wrong into err. */
int snapfile_decode(const void *buf, size_t len, struct snapshot **out, char *err, size_t errlen);

/* Reads and decodes path; errors as snapfile_decode, plus the file's own. */
int snapfile_load(const char *path, struct snapshot **out, char *err, size_t errlen);

/* Expands %n (sequence number), %t (UTC time as 20261124T221500Z) and %% in
 * a file name pattern. Returns 0 or -EINVAL (unknown %x, too long). */
int snapfile_expand_name(const char *pattern, unsigned seq, long long when, char *out,
			 size_t outlen);

#endif
