/* Loading a snapshot file: every length, count and index is checked
 * before anything is used (snapfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "model/snapfile.h"
#include "model/snapfile_format.h"

/* ---- decoding: nothing is used before it is checked ---- */

struct section {
	const unsigned char *p;
	uint64_t len;
	bool present;
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int check_sections(const unsigned char *buf, size_t len, struct section *sec, char *err,
			  size_t errlen)
{
	uint64_t lo[SNAPFILE_MAX_SECTIONS], hi[SNAPFILE_MAX_SECTIONS];
	uint32_t n = get32(buf + 12), i, j;
	uint64_t table_end = HEADER_SIZE + (uint64_t)n * ENTRY_SIZE;

	if (n > SNAPFILE_MAX_SECTIONS)
		return fail(err, errlen, "corrupt: %u sections (at most %u)", n,
			    SNAPFILE_MAX_SECTIONS);
	if (table_end > len)
		return fail(err, errlen, "truncated: the section table ends past the file");
	for (i = 0; i < n; i++) {
		const unsigned char *e = buf + HEADER_SIZE + i * ENTRY_SIZE;
		uint32_t id = get32(e);
		uint64_t off = get64(e + 8), slen = get64(e + 16);

		if (off % 8 || off < table_end || off > len || slen > len - off)
			return fail(err, errlen,
				    "corrupt: section %u (id %u) lies outside the file "
				    "(offset %" PRIu64 ", length %" PRIu64 ", file %zu bytes)",
				    i, id, off, slen, len);
		lo[i] = off;
		hi[i] = off + slen;
		for (j = 0; j < i; j++)
			if (lo[i] < hi[j] && lo[j] < hi[i])
				return fail(err, errlen, "corrupt: sections %u and %u overlap", j,
					    i);
		if (id == 0 || id > SEC_KNOWN_MAX)
			continue; /* a later compatible addition */
		if (sec[id].present)
			return fail(err, errlen, "corrupt: two %s sections",
				    snapfile_section_names[id]);
		sec[id] = (struct section){buf + off, slen, true};
	}
	for (i = 1; i <= SEC_REQUIRED_MAX; i++)
		if (!sec[i].present)
			return fail(err, errlen, "corrupt: no %s section",
				    snapfile_section_names[i]);
	return 0;
}

static int check_records(const struct section *sec, int id, size_t size, uint64_t *count, char *err,
			 size_t errlen)
{
	/* sec is the whole table, indexed by id */
	if (sec[id].len % size)
		return fail(err, errlen,
			    "corrupt: %s section of %" PRIu64 " bytes is not a "
			    "whole number of %zu-byte records",
			    snapfile_section_names[id], sec[id].len, size);
	*count = sec[id].len / size;
	if (*count > UINT32_MAX && id != SEC_TRACES)
		return fail(err, errlen, "corrupt: too many %s", snapfile_section_names[id]);
	return 0;
}

struct decoder {
	const struct section *sec; /* indexed by section id */
	struct snapshot *s;
	uint32_t *string_map, *frame_map, *tb_map, *mapping_map;
	uint64_t nstrings, nframes, nframe_ids, ntracebacks, nmappings;
	uint32_t version;
	char *err;
	size_t errlen;
};

static int decode_strings(struct decoder *d)
{
	const struct section *sec = &d->sec[SEC_STRINGS];
	const unsigned char *p = sec->p, *end = sec->p + sec->len;
	uint64_t i, n = 0;
	char *str;

	if (sec->len < 4)
		return fail(d->err, d->errlen, "corrupt: strings section too short");
	n = get32(p);
	p += 4;
	if (n > (sec->len - 4) / 4)
		return fail(d->err, d->errlen,
			    "corrupt: %" PRIu64 " strings cannot fit in %" PRIu64 " bytes", n,
			    sec->len);
	d->string_map = malloc(n * sizeof(uint32_t) + 1);
	if (!d->string_map)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		uint32_t slen;
		int64_t idx;

		if ((size_t)(end - p) < 4)
			return fail(d->err, d->errlen, "corrupt: string %" PRIu64 " is cut off", i);
		slen = get32(p);
		p += 4;
		if (slen > (size_t)(end - p))
			return fail(d->err, d->errlen,
				    "corrupt: string %" PRIu64 " of %u bytes runs past its section",
				    i, slen);
		if (memchr(p, 0, slen))
			return fail(d->err, d->errlen, "corrupt: string %" PRIu64 " holds a NUL",
				    i);
		str = strndup((const char *)p, slen);
		if (!str)
			return -ENOMEM;
		idx = snapshot_intern_string(d->s, str);
		free(str);
		if (idx < 0)
			return (int)idx;
		d->string_map[i] = (uint32_t)idx;
		p += slen;
	}
	if (p != end)
		return fail(d->err, d->errlen, "corrupt: %zu stray bytes after the strings",
			    (size_t)(end - p));
	d->nstrings = n;
	return 0;
}

static int string_at(struct decoder *d, uint32_t idx, const char *what, const char **out)
{
	if (idx >= d->nstrings)
		return fail(d->err, d->errlen, "corrupt: %s refers to string %u of %" PRIu64, what,
			    idx, d->nstrings);
	*out = snapshot_string(d->s, d->string_map[idx]);
	return 0;
}

/* The executable mappings, when the file has them: (start u64, limit u64,
 * file offset u64, path u32, build-id u32), start below limit, the strings
 * checked. Before the frames, which refer to them. */
static int decode_mappings(struct decoder *d)
{
	const unsigned char *p = d->sec[SEC_MAPPINGS].p;
	uint64_t i;
	int err;

	if (!d->sec[SEC_MAPPINGS].present)
		return 0; /* an older file: no frame has a mapping */
	if ((err = check_records(d->sec, SEC_MAPPINGS, MAPPING_RECORD, &d->nmappings, d->err,
				 d->errlen)))
		return err;
	d->mapping_map = malloc(d->nmappings * sizeof(uint32_t) + 1);
	if (!d->mapping_map)
		return -ENOMEM;
	for (i = 0; i < d->nmappings; i++, p += MAPPING_RECORD) {
		uint64_t start = get64(p), limit = get64(p + 8);
		uint32_t bid = get32(p + 28);
		const char *path, *build_id = NULL;
		int64_t idx;

		if (start >= limit)
			return fail(d->err, d->errlen,
				    "corrupt: mapping %" PRIu64 " ends (0x%" PRIx64
				    ") before it starts (0x%" PRIx64 ")",
				    i, limit, start);
		if ((err = string_at(d, get32(p + 24), "a mapping's path", &path)) ||
		    (bid != SNAPSHOT_NO_STRING &&
		     (err = string_at(d, bid, "a mapping's build-id", &build_id))))
			return err;
		idx = snapshot_intern_mapping(d->s, path, build_id, start, limit, get64(p + 16));
		if (idx < 0)
			return (int)idx;
		d->mapping_map[i] = (uint32_t)idx;
	}
	return 0;
}

/* Where frame i is, from the frame addresses section (mapping u32, zero
 * u32, address u64, function offset u64), when the file has it: a mapping
 * that holds the address, or none and no address. */
static int frame_address(struct decoder *d, uint64_t i, uint32_t *mapping, uint64_t *address,
			 uint64_t *function_offset)
{
	const unsigned char *p;
	uint32_t m;

	*mapping = SNAPSHOT_NO_MAPPING;
	*address = *function_offset = 0;
	if (!d->sec[SEC_FRAME_ADDRESSES].present)
		return 0;
	p = d->sec[SEC_FRAME_ADDRESSES].p + i * FRAME_ADDRESS_RECORD;
	m = get32(p);
	*address = get64(p + 8);
	*function_offset = get64(p + 16);
	if (m == SNAPSHOT_NO_MAPPING) {
		if (*address || *function_offset)
			return fail(d->err, d->errlen,
				    "corrupt: frame %" PRIu64 " has an address but no mapping", i);
		return 0;
	}
	if (m >= d->nmappings)
		return fail(d->err, d->errlen,
			    "corrupt: frame %" PRIu64 " refers to mapping %u of %" PRIu64, i, m,
			    d->nmappings);
	*mapping = d->mapping_map[m];
	if (*address < d->s->mappings[*mapping].start || *address >= d->s->mappings[*mapping].limit)
		return fail(d->err, d->errlen,
			    "corrupt: frame %" PRIu64 " at 0x%" PRIx64
			    " lies outside its mapping (0x%" PRIx64 "-0x%" PRIx64 ")",
			    i, *address, d->s->mappings[*mapping].start,
			    d->s->mappings[*mapping].limit);
	return 0;
}

static int decode_frames(struct decoder *d)
{
	const unsigned char *p = d->sec[SEC_FRAMES].p;
	uint64_t i, naddr;
	int err;

	if ((err = check_records(d->sec, SEC_FRAMES, 12, &d->nframes, d->err, d->errlen)))
		return err;
	if (d->sec[SEC_FRAME_ADDRESSES].present) {
		if ((err = check_records(d->sec, SEC_FRAME_ADDRESSES, FRAME_ADDRESS_RECORD, &naddr,
					 d->err, d->errlen)))
			return err;
		if (naddr != d->nframes)
			return fail(d->err, d->errlen,
				    "corrupt: %" PRIu64 " frame addresses for %" PRIu64 " frames",
				    naddr, d->nframes);
	}
	d->frame_map = malloc(d->nframes * sizeof(uint32_t) + 1);
	if (!d->frame_map)
		return -ENOMEM;
	for (i = 0; i < d->nframes; i++, p += 12) {
		const char *filename, *function = NULL;
		uint32_t fn = get32(p + 8), mapping;
		uint64_t address, function_offset;
		int64_t idx;

		if ((err = string_at(d, get32(p), "a frame's file name", &filename)))
			return err;
		if (fn != SNAPSHOT_NO_STRING &&
		    (err = string_at(d, fn, "a frame's function", &function)))
			return err;
		if ((err = frame_address(d, i, &mapping, &address, &function_offset)))
			return err;
		idx = snapshot_intern_native_frame(d->s, filename, get32(p + 4), function, mapping,
						   address, function_offset);
		if (idx < 0)
			return (int)idx;
		d->frame_map[i] = (uint32_t)idx;
	}
	return 0;
}

static int decode_tracebacks(struct decoder *d)
{
	const struct section *ids = &d->sec[SEC_FRAME_IDS];
	uint32_t limit = d->s->traceback_limit, *frames;
	const unsigned char *p = d->sec[SEC_TRACEBACKS].p;
	uint64_t i;
	int err;

	if ((err = check_records(d->sec, SEC_FRAME_IDS, 4, &d->nframe_ids, d->err, d->errlen)) ||
	    (err = check_records(d->sec, SEC_TRACEBACKS, 12, &d->ntracebacks, d->err, d->errlen)))
		return err;
	d->tb_map = malloc(d->ntracebacks * sizeof(uint32_t) + 1);
	frames = malloc((size_t)limit * sizeof(uint32_t) + 1);
	if (!d->tb_map || !frames) {
		free(frames);
		return -ENOMEM;
	}
	for (i = 0; i < d->ntracebacks; i++, p += 12) {
		uint32_t first = get32(p), n = get32(p + 4), total = get32(p + 8), k;
		int64_t idx;

		if (n > limit || n > total || total > SNAPSHOT_MAX_TOTAL_NFRAME ||
		    (uint64_t)first + n > d->nframe_ids) {
			free(frames);
			return fail(d->err, d->errlen,
				    "corrupt: traceback %" PRIu64
				    " (first %u, nframe %u, total %u) "
				    "does not fit the limit %u or the %" PRIu64 " frame ids",
				    i, first, n, total, limit, d->nframe_ids);
		}
		for (k = 0; k < n; k++) {
			uint32_t f = get32(ids->p + ((uint64_t)first + k) * 4);

			if (f >= d->nframes) {
				free(frames);
				return fail(d->err, d->errlen,
					    "corrupt: traceback %" PRIu64
					    " refers to frame %u of %" PRIu64,
					    i, f, d->nframes);
			}
			frames[k] = d->frame_map[f];
		}
		idx = snapshot_intern_traceback(d->s, frames, n, total);
		if (idx < 0) {
			free(frames);
			return (int)idx;
		}
		d->tb_map[i] = (uint32_t)idx;
	}
	free(frames);
	return 0;
}

/* A string index of a process's field: none, or a string of the file. */
static int process_string(struct decoder *d, uint64_t i, uint32_t idx, const char *what,
			  uint32_t *out)
{
	if (idx == SNAPSHOT_NO_STRING) {
		*out = SNAPSHOT_NO_STRING;
		return 0;
	}
	if (idx >= d->nstrings)
		return fail(d->err, d->errlen,
			    "corrupt: process %" PRIu64 "'s %s refers to string %u of %" PRIu64, i,
			    what, idx, d->nstrings);
	*out = d->string_map[idx];
	return 0;
}

/* Adds v to *sum; false when the sum passes limit. */
static bool add_bounded(uint64_t *sum, uint64_t v, uint64_t limit)
{
	return !__builtin_add_overflow(*sum, v, sum) && *sum <= limit;
}

/* The processes of a snapshot of several, when the file has them (version
 * 2): their strings checked, no flag this reader does not know, their
 * figures and sums bounded as the traces' are. */
static int decode_processes(struct decoder *d)
{
	const unsigned char *p = d->sec[SEC_PROCESSES].p;
	uint64_t i, n = 0, sums[8] = {0};
	int err;

	if (!d->sec[SEC_PROCESSES].present) {
		if (d->sec[SEC_TRACE_PROCESSES].present || d->sec[SEC_SITE_PROCESSES].present)
			return fail(d->err, d->errlen,
				    "corrupt: processes of traces or sites, but no processes");
		return 0;
	}
	if (d->version < 2)
		return fail(d->err, d->errlen,
			    "corrupt: a version %u file holds processes (version 2 does)",
			    d->version);
	if ((err = check_records(d->sec, SEC_PROCESSES, PROCESS_RECORD, &n, d->err, d->errlen)))
		return err;
	for (i = 0; i < n; i++, p += PROCESS_RECORD) {
		struct snapshot_process pr = {.pid = (int32_t)get32(p),
					      .ns_pid = (int32_t)get32(p + 4),
					      .flags = get32(p + 24),
					      .start_time = get64(p + 32),
					      .traced_current = get64(p + 40),
					      .traced_peak = get64(p + 48),
					      .alloc_events = get64(p + 88),
					      .free_events = get64(p + 96)};
		const uint64_t bytes[6] = {pr.traced_current, pr.traced_peak, get64(p + 56),
					   get64(p + 64), get64(p + 72), get64(p + 80)};
		int64_t idx;

		if ((err = process_string(d, i, get32(p + 8), "command", &pr.command)) ||
		    (err = process_string(d, i, get32(p + 12), "comm", &pr.comm)) ||
		    (err = process_string(d, i, get32(p + 16), "cgroup", &pr.cgroup)) ||
		    (err = process_string(d, i, get32(p + 20), "runtime", &pr.runtime)))
			return err;
		if (pr.flags & ~(uint32_t)SNAPSHOT_PROCESS_FLAGS)
			return fail(d->err, d->errlen,
				    "corrupt: process %" PRIu64 " has unknown flags 0x%x", i,
				    pr.flags & ~(uint32_t)SNAPSHOT_PROCESS_FLAGS);
		for (int k = 0; k < 6; k++)
			if (bytes[k] > SNAPFILE_MAX_TOTAL_SIZE ||
			    !add_bounded(&sums[k], bytes[k], SNAPFILE_MAX_TOTAL_SIZE))
				return fail(d->err, d->errlen,
					    "corrupt: process %" PRIu64
					    " takes the processes' traced memory past %" PRIu64
					    " bytes",
					    i, SNAPFILE_MAX_TOTAL_SIZE);
		if (!add_bounded(&sums[6], pr.alloc_events, UINT64_MAX) ||
		    !add_bounded(&sums[7], pr.free_events, UINT64_MAX))
			return fail(d->err, d->errlen,
				    "corrupt: process %" PRIu64 " takes the events past 2^64", i);
		pr.domain_memory[SNAPSHOT_CLASS_PYTHON] =
		    (struct snapshot_domain_memory){bytes[2], bytes[3]};
		pr.domain_memory[SNAPSHOT_CLASS_NATIVE] =
		    (struct snapshot_domain_memory){bytes[4], bytes[5]};
		idx = snapshot_add_process(d->s, &pr);
		if (idx < 0)
			return (int)idx;
	}
	return 0;
}

/* The process of record i of a TRACE_PROCESSES or SITE_PROCESSES section,
 * which the caller checked holds count records. */
static int process_of(struct decoder *d, int id, uint64_t i, uint32_t *out)
{
	if (!d->sec[id].present) {
		*out = 0;
		return 0;
	}
	*out = get32(d->sec[id].p + i * PROCESS_INDEX_RECORD);
	if (*out >= d->s->nprocesses)
		return fail(d->err, d->errlen,
			    "corrupt: %s %" PRIu64 " refers to process %u of %u",
			    id == SEC_TRACE_PROCESSES ? "trace" : "site", i, *out,
			    d->s->nprocesses);
	return 0;
}

/* That a TRACE_PROCESSES or SITE_PROCESSES section has count records, and
 * is there when the processes are and count is not 0. */
static int check_processes_of(struct decoder *d, int id, uint64_t count, const char *what)
{
	uint64_t n = 0;
	int err;

	if (!d->sec[id].present) {
		if (d->s->nprocesses && count)
			return fail(d->err, d->errlen, "corrupt: processes, but no %s section",
				    snapfile_section_names[id]);
		return 0;
	}
	if ((err = check_records(d->sec, id, PROCESS_INDEX_RECORD, &n, d->err, d->errlen)))
		return err;
	if (n != count)
		return fail(d->err, d->errlen, "corrupt: %" PRIu64 " %s for %" PRIu64 " %s", n,
			    snapfile_section_names[id], count, what);
	return 0;
}

static int decode_traces(struct decoder *d)
{
	const unsigned char *p = d->sec[SEC_TRACES].p;
	struct snapshot *s = d->s;
	uint64_t i, n = 0, size, total = 0;
	int err;

	if ((err = check_records(d->sec, SEC_TRACES, 24, &n, d->err, d->errlen)) ||
	    (err = check_processes_of(d, SEC_TRACE_PROCESSES, n, "traces")))
		return err;
	if (n) {
		s->traces = malloc(n * sizeof(*s->traces));
		if (!s->traces)
			return -ENOMEM;
		s->cap_traces = n;
	}
	for (i = 0; i < n; i++, p += 24) {
		uint32_t tb = get32(p + 20), process;

		if ((err = process_of(d, SEC_TRACE_PROCESSES, i, &process)))
			return err;
		if (tb >= d->ntracebacks)
			return fail(d->err, d->errlen,
				    "corrupt: trace %" PRIu64 " refers to traceback %u of %" PRIu64,
				    i, tb, d->ntracebacks);
		size = get64(p + 8);
		/* sums over the traces (and cumulative ones, times at most 65535
		 * frames) then stay far below 2^64 */
		if (size > SNAPFILE_MAX_TRACE_SIZE)
			return fail(d->err, d->errlen,
				    "corrupt: trace %" PRIu64 " of %" PRIu64
				    " bytes is larger than an address space",
				    i, size);
		total += size;
		if (total > SNAPFILE_MAX_TOTAL_SIZE)
			return fail(d->err, d->errlen,
				    "corrupt: the traces hold more than %" PRIu64 " bytes",
				    SNAPFILE_MAX_TOTAL_SIZE);
		s->traces[i] = (struct snapshot_trace){.address = get64(p),
						       .size = size,
						       .domain = get32(p + 16),
						       .traceback = d->tb_map[tb],
						       .process = process};
	}
	s->ntraces = n;
	return 0;
}

static int decode_meta(struct decoder *d)
{
	const struct section *sec = &d->sec[SEC_META];
	const unsigned char *p = sec->p;
	struct snapshot *s = d->s;
	const char *command, *host;
	int err;

	if (sec->len < META_SIZE)
		return fail(d->err, d->errlen, "corrupt: meta section of %" PRIu64 " bytes",
			    sec->len);
	s->traceback_limit = get32(p);
	if (s->traceback_limit < 1 || s->traceback_limit > SNAPSHOT_MAX_TOTAL_NFRAME)
		return fail(d->err, d->errlen, "corrupt: traceback limit %u", s->traceback_limit);
	s->target.pid = (int32_t)get32(p + 4);
	s->traced_current = get64(p + 8);
	s->traced_peak = get64(p + 16);
	s->tracer_memory = get64(p + 24);
	s->taken_at = get64(p + 32);
	s->duration_ns = get64(p + 40);
	s->alloc_events = get64(p + 48);
	s->free_events = get64(p + 56);
	s->target.start_time = get64(p + 64);
	if ((err = string_at(d, get32(p + 72), "the target's command", &command)) ||
	    (err = string_at(d, get32(p + 76), "the host name", &host)))
		return err;
	s->target.command = d->string_map[get32(p + 72)];
	s->target.host = d->string_map[get32(p + 76)];
	return 0;
}

static int decode_counters(struct decoder *d)
{
	const unsigned char *p = d->sec[SEC_COUNTERS].p;
	uint64_t i, n = 0;
	const char *name;
	int err;

	if ((err = check_records(d->sec, SEC_COUNTERS, 16, &n, d->err, d->errlen)))
		return err;
	for (i = 0; i < n; i++, p += 16) {
		if ((err = string_at(d, get32(p), "a counter", &name)) ||
		    (err = snapshot_set_counter(d->s, name, get64(p + 8))))
			return err;
	}
	return 0;
}

/* Traced memory by class of domain, when the file has it: one record per
 * class (class u32, zero u32, current u64, peak u64); a class this reader
 * does not know is skipped, a class given twice refused. */
static int decode_domain_memory(struct decoder *d)
{
	const unsigned char *p = d->sec[SEC_DOMAIN_MEMORY].p;
	bool seen[SNAPSHOT_NCLASSES] = {false};
	uint64_t i, n = 0;
	int err;

	if (!d->sec[SEC_DOMAIN_MEMORY].present)
		return 0; /* an older file: the figures stay unknown */
	if ((err = check_records(d->sec, SEC_DOMAIN_MEMORY, DOMAIN_MEMORY_RECORD, &n, d->err,
				 d->errlen)))
		return err;
	for (i = 0; i < n; i++, p += DOMAIN_MEMORY_RECORD) {
		uint32_t c = get32(p);

		if (c >= SNAPSHOT_NCLASSES)
			continue; /* a class added later */
		if (seen[c])
			return fail(d->err, d->errlen, "corrupt: two domain memory records for %s",
				    snapshot_class_name((enum snapshot_domain_class)c));
		seen[c] = true;
		d->s->domain_memory[c].current = get64(p + 8);
		d->s->domain_memory[c].peak = get64(p + 16);
	}
	d->s->domain_memory_known = true;
	return 0;
}

/* --budget's coverage, when the file has it (a file without it was not
 * traced within a budget, or was written before the section existed). */
static int decode_budget(struct decoder *d)
{
	const unsigned char *p = d->sec[SEC_BUDGET].p;
	struct snapshot_budget b = {.on = true};
	uint32_t flags;

	if (!d->sec[SEC_BUDGET].present)
		return 0;
	if (d->sec[SEC_BUDGET].len < BUDGET_SIZE)
		return fail(d->err, d->errlen, "corrupt: budget section of %" PRIu64 " bytes",
			    d->sec[SEC_BUDGET].len);
	b.ratio = bits_double(get64(p));
	b.coverage = bits_double(get64(p + 8));
	b.overhead = bits_double(get64(p + 16));
	b.hit_cost_s = bits_double(get64(p + 24));
	b.windows = get64(p + 32);
	flags = get32(p + 40);
	/* each a share or a cost: finite, in range (the negated tests are
	 * true of a NaN too) */
	if (!(b.ratio > 0 && b.ratio <= 1) || !(b.coverage >= 0 && b.coverage <= 1) ||
	    !(b.overhead >= 0 && b.overhead <= 1e6) || !(b.hit_cost_s >= 0 && b.hit_cost_s <= 1) ||
	    (flags & ~BUDGET_FREES_WINDOWED) || get32(p + 44))
		return fail(d->err, d->errlen,
			    "corrupt: budget record out of range (budget %g, coverage %g, overhead "
			    "%g, hit cost %g s, flags %#x)",
			    b.ratio, b.coverage, b.overhead, b.hit_cost_s, flags);
	b.frees_windowed = flags & BUDGET_FREES_WINDOWED;
	d->s->budget = b;
	return 0;
}

/* Each trace's age, when the file has them: as many as traces. */
static int decode_trace_ages(struct decoder *d)
{
	const unsigned char *p = d->sec[SEC_TRACE_AGES].p;
	uint64_t i, n = 0;
	int err;

	if (!d->sec[SEC_TRACE_AGES].present)
		return 0; /* an older file: ages unknown */
	if ((err = check_records(d->sec, SEC_TRACE_AGES, TRACE_AGE_RECORD, &n, d->err, d->errlen)))
		return err;
	if (n != d->s->ntraces)
		return fail(d->err, d->errlen,
			    "corrupt: %" PRIu64 " trace ages for %" PRIu64 " traces", n,
			    d->s->ntraces);
	for (i = 0; i < n; i++, p += TRACE_AGE_RECORD)
		d->s->traces[i].age_ns = get64(p);
	d->s->ages_known = true;
	return 0;
}

/* The sites over the run, when the file has them. */
static int decode_sites(struct decoder *d)
{
	const unsigned char *p = d->sec[SEC_SITES].p;
	struct snapshot_site *sites;
	uint64_t i, n = 0, peak_total = 0;
	int err;

	if (!d->sec[SEC_SITES].present) {
		if (d->sec[SEC_SITE_PROCESSES].present)
			return fail(d->err, d->errlen, "corrupt: site processes, but no sites");
		return 0; /* an older file: no sites */
	}
	if ((err = check_records(d->sec, SEC_SITES, SITE_RECORD, &n, d->err, d->errlen)) ||
	    (err = check_processes_of(d, SEC_SITE_PROCESSES, n, "sites")))
		return err;
	sites = calloc(n ? n : 1, sizeof(*sites));
	if (!sites)
		return -ENOMEM;
	for (i = 0; i < n; i++, p += SITE_RECORD) {
		struct snapshot_site *site = &sites[i];
		uint32_t tb = get32(p), process;

		if ((err = process_of(d, SEC_SITE_PROCESSES, i, &process))) {
			free(sites);
			return err;
		}
		if (tb >= d->ntracebacks) {
			free(sites);
			return fail(d->err, d->errlen,
				    "corrupt: site %" PRIu64 " refers to traceback %u of %" PRIu64,
				    i, tb, d->ntracebacks);
		}
		/* field by field: the record's padding stays zero, as it is in a
		 * site built by hand */
		site->traceback = d->tb_map[tb];
		site->domain = get32(p + 4);
		site->process = process;
		site->alloc_count = get64(p + 8);
		site->alloc_bytes = get64(p + 16);
		site->temp_count = get64(p + 24);
		site->temp_bytes = get64(p + 32);
		site->peak_count = get64(p + 40);
		site->peak_bytes = get64(p + 48);
		/* the peak's sum over the sites stays as bounded as the traces' */
		peak_total += site->peak_bytes;
		if (site->temp_count > site->alloc_count || site->temp_bytes > site->alloc_bytes ||
		    site->peak_bytes > SNAPFILE_MAX_TOTAL_SIZE ||
		    peak_total > SNAPFILE_MAX_TOTAL_SIZE) {
			free(sites);
			return fail(d->err, d->errlen,
				    "corrupt: site %" PRIu64
				    " has more temporary allocations than allocations, or "
				    "the peak more bytes than a snapshot holds",
				    i);
		}
	}
	err = snapshot_add_sites(d->s, sites, n);
	free(sites);
	return err;
}

int snapfile_decode(const void *data, size_t len, struct snapshot **out, char *err, size_t errlen)
{
	struct section sec[SEC_KNOWN_MAX + 1] = {0};
	const unsigned char *buf = data;
	struct decoder d = {.sec = sec, .err = err, .errlen = errlen};
	uint32_t version, crc;
	uint64_t size;
	int rc;

	*out = NULL;
	if (len < sizeof(snapfile_magic) || memcmp(buf, snapfile_magic, sizeof(snapfile_magic)))
		return fail(err, errlen, "not a tracer snapshot (no snapshot magic number)");
	if (len < HEADER_SIZE)
		return fail(err, errlen, "truncated: %zu bytes, shorter than the header", len);
	version = d.version = get32(buf + 8);
	if (version > SNAPFILE_VERSION)
		return fail(err, errlen,
			    "snapshot format version %u is newer than this tracer's (%u): "
			    "use a newer tracer",
			    version, SNAPFILE_VERSION);
	if (version == 0)
		return fail(err, errlen, "corrupt: format version 0");
	size = get64(buf + 16);
	if (size != len)
		return fail(err, errlen, "%s: the header says %" PRIu64 " bytes, the file has %zu",
			    size > len ? "truncated" : "corrupt", size, len);
	crc = (uint32_t)crc32(0, NULL, 0);
	crc = (uint32_t)crc32(crc, buf, CRC_OFFSET);
	crc = (uint32_t)crc32(crc, (const unsigned char[4]){0}, 4);
	crc = (uint32_t)crc32_z(crc, buf + CRC_OFFSET + 4, len - CRC_OFFSET - 4);
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
	if (crc != get32(buf + CRC_OFFSET))
		return fail(err, errlen, "corrupt: checksum mismatch (the file was damaged)");
#endif
	if ((rc = check_sections(buf, len, sec, err, errlen)))
		return rc;

	d.s = snapshot_new();
	if (!d.s)
		return -ENOMEM;
	/* order matters: strings before what names them, the limit before tracebacks */
	if (!(rc = decode_strings(&d)) && !(rc = decode_meta(&d)) && !(rc = decode_processes(&d)) &&
	    !(rc = decode_mappings(&d)) &&
	    !(rc = decode_frames(&d)) && !(rc = decode_tracebacks(&d)) &&
	    !(rc = decode_traces(&d)) && !(rc = decode_counters(&d)) &&
	    !(rc = decode_domain_memory(&d)) && !(rc = decode_trace_ages(&d)) &&
	    !(rc = decode_sites(&d)))
		rc = decode_budget(&d);
	free(d.string_map);
	free(d.frame_map);
	free(d.tb_map);
	free(d.mapping_map);
	if (rc) {
		if (rc == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		snapshot_free(d.s);
		return rc;
	}
	*out = d.s;
	return 0;
}

int snapfile_load(const char *path, struct snapshot **out, char *err, size_t errlen)
{
	unsigned char *buf = NULL;
	struct stat st;
	size_t got = 0;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s", strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, errlen, "not a regular file");
		return -EINVAL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		snprintf(err, errlen, "out of memory reading %lld bytes", (long long)st.st_size);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r < 0 ? -errno : -EIO;
			snprintf(err, errlen, "read error: %s",
				 r < 0 ? strerror(errno) : "file shrank");
			free(buf);
			close(fd);
			return rc;
		}
		got += (size_t)r;
	}
	close(fd);
	rc = snapfile_decode(buf, got, out, err, errlen);
	free(buf);
	return rc;
}
