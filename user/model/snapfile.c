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
#include "util/outfile.h"

static const unsigned char magic[8] = {0x89, 'T', 'R', 'S', 'N', 'A', 'P', '\n'};

#define HEADER_SIZE 48u
#define CRC_OFFSET 24u
#define ENTRY_SIZE 24u
#define META_SIZE 80u
#define DOMAIN_MEMORY_RECORD 24u

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
	SEC_KNOWN_MAX = SEC_DOMAIN_MEMORY,
};

static const char *const section_names[] = {
    [SEC_META] = "meta",
    [SEC_STRINGS] = "strings",
    [SEC_FRAMES] = "frames",
    [SEC_FRAME_IDS] = "frame ids",
    [SEC_TRACEBACKS] = "tracebacks",
    [SEC_TRACES] = "traces",
    [SEC_COUNTERS] = "counters",
    [SEC_DOMAIN_MEMORY] = "domain memory",
};

/* ---- little-endian access ---- */

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* ---- encoding ---- */

int snapfile_encode(const struct snapshot *s, void **out, size_t *outlen)
{
	size_t len[SEC_KNOWN_MAX + 1] = {0}, off[SEC_KNOWN_MAX + 1] = {0}, total, pos;
	/* the optional section only when there is something to say */
	const unsigned nsec = s->domain_memory_known ? SEC_DOMAIN_MEMORY : SEC_REQUIRED_MAX;
	unsigned char *buf, *p;
	uint32_t i;
	uint64_t t;
	int id;

	len[SEC_META] = META_SIZE;
	len[SEC_STRINGS] = 4;
	for (i = 0; i < s->nstrings; i++)
		len[SEC_STRINGS] += 4 + strlen(s->strings[i]);
	len[SEC_FRAMES] = (size_t)s->nframes * 12;
	len[SEC_FRAME_IDS] = (size_t)s->nframe_ids * 4;
	len[SEC_TRACEBACKS] = (size_t)s->ntracebacks * 12;
	len[SEC_TRACES] = (size_t)s->ntraces * 24;
	len[SEC_COUNTERS] = (size_t)s->ncounters * 16;
	len[SEC_DOMAIN_MEMORY] = (size_t)SNAPSHOT_NCLASSES * DOMAIN_MEMORY_RECORD;

	pos = HEADER_SIZE + nsec * ENTRY_SIZE;
	for (id = 1; id <= (int)nsec; id++) {
		off[id] = align8(pos);
		pos = off[id] + len[id];
	}
	total = pos;
	buf = calloc(1, total);
	if (!buf)
		return -ENOMEM;

	memcpy(buf, magic, sizeof(magic));
	put32(buf + 8, SNAPFILE_VERSION);
	put32(buf + 12, nsec);
	put64(buf + 16, total);
	for (id = 1; id <= (int)nsec; id++) {
		p = buf + HEADER_SIZE + (id - 1) * ENTRY_SIZE;
		put32(p, (uint32_t)id);
		put64(p + 8, off[id]);
		put64(p + 16, len[id]);
	}

	p = buf + off[SEC_META];
	put32(p, s->traceback_limit);
	put32(p + 4, (uint32_t)s->target.pid);
	put64(p + 8, s->traced_current);
	put64(p + 16, s->traced_peak);
	put64(p + 24, s->tracer_memory);
	put64(p + 32, s->taken_at);
	put64(p + 40, s->duration_ns);
	put64(p + 48, s->alloc_events);
	put64(p + 56, s->free_events);
	put64(p + 64, s->target.start_time);
	put32(p + 72, s->target.command);
	put32(p + 76, s->target.host);

	p = buf + off[SEC_STRINGS];
	put32(p, s->nstrings);
	p += 4;
	for (i = 0; i < s->nstrings; i++) {
		size_t n = strlen(s->strings[i]);

		put32(p, (uint32_t)n);
		memcpy(p + 4, s->strings[i], n);
		p += 4 + n;
	}
	for (i = 0, p = buf + off[SEC_FRAMES]; i < s->nframes; i++, p += 12) {
		put32(p, s->frames[i].filename);
		put32(p + 4, s->frames[i].lineno);
		put32(p + 8, s->frames[i].function);
	}
	for (i = 0, p = buf + off[SEC_FRAME_IDS]; i < s->nframe_ids; i++, p += 4)
		put32(p, s->frame_ids[i]);
	for (i = 0, p = buf + off[SEC_TRACEBACKS]; i < s->ntracebacks; i++, p += 12) {
		put32(p, s->tracebacks[i].first);
		put32(p + 4, s->tracebacks[i].nframe);
		put32(p + 8, s->tracebacks[i].total_nframe);
	}
	for (t = 0, p = buf + off[SEC_TRACES]; t < s->ntraces; t++, p += 24) {
		put64(p, s->traces[t].address);
		put64(p + 8, s->traces[t].size);
		put32(p + 16, s->traces[t].domain);
		put32(p + 20, s->traces[t].traceback);
	}
	for (i = 0, p = buf + off[SEC_COUNTERS]; i < s->ncounters; i++, p += 16) {
		put32(p, s->counters[i].name);
		put64(p + 8, s->counters[i].value);
	}
	if (nsec >= SEC_DOMAIN_MEMORY)
		for (i = 0, p = buf + off[SEC_DOMAIN_MEMORY]; i < SNAPSHOT_NCLASSES;
		     i++, p += DOMAIN_MEMORY_RECORD) {
			put32(p, i);
			put64(p + 8, s->domain_memory[i].current);
			put64(p + 16, s->domain_memory[i].peak);
		}

	put32(buf + CRC_OFFSET, (uint32_t)crc32_z(crc32(0, NULL, 0), buf, total));
	*out = buf;
	*outlen = total;
	return 0;
}

int snapfile_write(const struct snapshot *s, const char *path, char *why, size_t why_len)
{
	size_t len;
	void *buf;
	int err;

	err = snapfile_encode(s, &buf, &len);
	if (err) {
		snprintf(why, why_len, "%s: %s", path, strerror(-err));
		return err;
	}
	err = outfile_write(path, buf, len, why, why_len);
	free(buf);
	return err;
}

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
			return fail(err, errlen, "corrupt: two %s sections", section_names[id]);
		sec[id] = (struct section){buf + off, slen, true};
	}
	for (i = 1; i <= SEC_REQUIRED_MAX; i++)
		if (!sec[i].present)
			return fail(err, errlen, "corrupt: no %s section", section_names[i]);
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
			    section_names[id], sec[id].len, size);
	*count = sec[id].len / size;
	if (*count > UINT32_MAX && id != SEC_TRACES)
		return fail(err, errlen, "corrupt: too many %s", section_names[id]);
	return 0;
}

struct decoder {
	const struct section *sec; /* indexed by section id */
	struct snapshot *s;
	uint32_t *string_map, *frame_map, *tb_map;
	uint64_t nstrings, nframes, nframe_ids, ntracebacks;
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

static int decode_frames(struct decoder *d)
{
	const unsigned char *p = d->sec[SEC_FRAMES].p;
	uint64_t i;
	int err;

	if ((err = check_records(d->sec, SEC_FRAMES, 12, &d->nframes, d->err, d->errlen)))
		return err;
	d->frame_map = malloc(d->nframes * sizeof(uint32_t) + 1);
	if (!d->frame_map)
		return -ENOMEM;
	for (i = 0; i < d->nframes; i++, p += 12) {
		const char *filename, *function = NULL;
		uint32_t fn = get32(p + 8);
		int64_t idx;

		if ((err = string_at(d, get32(p), "a frame's file name", &filename)))
			return err;
		if (fn != SNAPSHOT_NO_STRING &&
		    (err = string_at(d, fn, "a frame's function", &function)))
			return err;
		idx = snapshot_intern_frame(d->s, filename, get32(p + 4), function);
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

static int decode_traces(struct decoder *d)
{
	const unsigned char *p = d->sec[SEC_TRACES].p;
	struct snapshot *s = d->s;
	uint64_t i, n = 0, size, total = 0;
	int err;

	if ((err = check_records(d->sec, SEC_TRACES, 24, &n, d->err, d->errlen)))
		return err;
	if (n) {
		s->traces = malloc(n * sizeof(*s->traces));
		if (!s->traces)
			return -ENOMEM;
		s->cap_traces = n;
	}
	for (i = 0; i < n; i++, p += 24) {
		uint32_t tb = get32(p + 20);

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
						       .traceback = d->tb_map[tb]};
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

int snapfile_decode(const void *data, size_t len, struct snapshot **out, char *err, size_t errlen)
{
	struct section sec[SEC_KNOWN_MAX + 1] = {0};
	const unsigned char *buf = data;
	struct decoder d = {.sec = sec, .err = err, .errlen = errlen};
	uint32_t version, crc;
	uint64_t size;
	int rc;

	*out = NULL;
	if (len < sizeof(magic) || memcmp(buf, magic, sizeof(magic)))
		return fail(err, errlen, "not a tracer snapshot (no snapshot magic number)");
	if (len < HEADER_SIZE)
		return fail(err, errlen, "truncated: %zu bytes, shorter than the header", len);
	version = get32(buf + 8);
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
	if (!(rc = decode_strings(&d)) && !(rc = decode_meta(&d)) && !(rc = decode_frames(&d)) &&
	    !(rc = decode_tracebacks(&d)) && !(rc = decode_traces(&d)) &&
	    !(rc = decode_counters(&d)))
		rc = decode_domain_memory(&d);
	free(d.string_map);
	free(d.frame_map);
	free(d.tb_map);
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

int snapfile_expand_name(const char *pattern, unsigned seq, long long when, char *out,
			 size_t outlen)
{
	size_t n = 0;
	char piece[64];

	out[0] = 0;
	for (const char *p = pattern; *p; p++) {
		const char *add = piece;

		if (*p != '%') {
			piece[0] = *p;
			piece[1] = 0;
		} else if (p[1] == 'n') {
			snprintf(piece, sizeof(piece), "%u", seq);
			p++;
		} else if (p[1] == 't') {
			time_t t = (time_t)when;
			struct tm tm;

			if (!gmtime_r(&t, &tm) ||
			    !strftime(piece, sizeof(piece), "%Y%m%dT%H%M%SZ", &tm))
				return -EINVAL;
			p++;
		} else if (p[1] == '%') {
			add = "%";
			p++;
		} else {
			return -EINVAL;
		}
		if (n + strlen(add) >= outlen)
			return -ENAMETOOLONG;
		strcpy(out + n, add);
		n += strlen(add);
	}
	if (!n)
		return -EINVAL;
	return 0;
}
