/* The snapshot file's layout as both directions need it (snapfile.c
 * writes, snapfile_load.c reads and checks): magic, sizes, section ids,
 * little-endian access. Private to user/model; the format itself is
 * specified in snapfile.h and docs/SNAPSHOT_FORMAT.md. */
#ifndef TRACER_SNAPFILE_FORMAT_H
#define TRACER_SNAPFILE_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static const unsigned char snapfile_magic[8] = {0x89, 'T', 'R', 'S', 'N', 'A', 'P', '\n'};

#define HEADER_SIZE 48u
#define CRC_OFFSET 24u
#define ENTRY_SIZE 24u
#define META_SIZE 80u
#define DOMAIN_MEMORY_RECORD 24u
#define MAPPING_RECORD 32u
#define FRAME_ADDRESS_RECORD 24u
#define TRACE_AGE_RECORD 8u
#define SITE_RECORD 56u
#define PROCESS_RECORD 104u
#define PROCESS_INDEX_RECORD 4u
#define BUDGET_SIZE 48u
#define BUDGET_FREES_WINDOWED 1u /* the budget's flags */

enum section_id {
	SEC_META = 1,
	SEC_STRINGS,
	SEC_FRAMES,
	SEC_FRAME_IDS,
	SEC_TRACEBACKS,
	SEC_TRACES,
	SEC_COUNTERS,
	SEC_REQUIRED_MAX = SEC_COUNTERS, /* every file has 1 .. this */
	/* optional: a file written before it existed lacks it */
	SEC_DOMAIN_MEMORY,
	SEC_MAPPINGS,
	SEC_FRAME_ADDRESSES,
	SEC_TRACE_AGES,
	SEC_SITES,
	/* a snapshot of several processes (format version 2) */
	SEC_PROCESSES,
	SEC_TRACE_PROCESSES,
	SEC_SITE_PROCESSES,
	/* optional again, in either version */
	SEC_BUDGET,
	SEC_KNOWN_MAX = SEC_BUDGET,
};

static const char *const snapfile_section_names[] = {
    [SEC_META] = "meta",
    [SEC_STRINGS] = "strings",
    [SEC_FRAMES] = "frames",
    [SEC_FRAME_IDS] = "frame ids",
    [SEC_TRACEBACKS] = "tracebacks",
    [SEC_TRACES] = "traces",
    [SEC_COUNTERS] = "counters",
    [SEC_DOMAIN_MEMORY] = "domain memory",
    [SEC_MAPPINGS] = "mappings",
    [SEC_FRAME_ADDRESSES] = "frame addresses",
    [SEC_TRACE_AGES] = "trace ages",
    [SEC_SITES] = "sites",
    [SEC_PROCESSES] = "processes",
    [SEC_TRACE_PROCESSES] = "trace processes",
    [SEC_SITE_PROCESSES] = "site processes",
    [SEC_BUDGET] = "budget",
};

/* ---- little-endian access ---- */

static inline void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* A double as its IEEE 754 binary64 bits, and back. */
static inline uint64_t double_bits(double v)
{
	uint64_t b;

	memcpy(&b, &v, sizeof(b));
	return b;
}

static inline double bits_double(uint64_t b)
{
	double v;

	memcpy(&v, &b, sizeof(v));
	return v;
}

static inline size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

#endif
