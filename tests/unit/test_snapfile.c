/* The snapshot file: round trips that keep every statistic, and files that
 * are truncated, damaged, foreign or from a newer tracer, each rejected with
 * one line and no crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "model/snapfile.h"
#include "model/snapshot.h"
#include "model/stats.h"

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
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Recomputes the checksum so that a test reaches the checks behind it. */
static void reseal(unsigned char *buf, size_t len)
{
	uint32_t crc;

	put32(buf + 24, 0);
	crc = (uint32_t)crc32_z(crc32(0, NULL, 0), buf, len);
	put32(buf + 24, crc);
}

static uint32_t frame(struct snapshot *s, const char *file, uint32_t line, const char *fn)
{
	int64_t id = snapshot_intern_frame(s, file, line, fn);

	assert_true(id >= 0);
	return (uint32_t)id;
}

/* A snapshot with Python and native frames, several domains, a recursive
 * traceback, a frameless trace, counters and traced memory by domain. */
static struct snapshot *sample(void)
{
	struct snapshot *s = snapshot_new();
	uint32_t a = frame(s, "/srv/app/cache.py", 118, "put");
	uint32_t b = frame(s, "/srv/app/main.py", 7, "<module>");
	uint32_t c = frame(s, "/usr/lib/libfoo.so+0x1a2b", 0, NULL);
	uint32_t d = frame(s, "native.c", 42, "make_thing");
	uint32_t t1[] = {a, b}, t2[] = {a, a, b}, t3[] = {c, d}, t4[] = {d};
	int64_t tb1 = snapshot_intern_traceback(s, t1, 2, 2);
	int64_t tb2 = snapshot_intern_traceback(s, t2, 3, 9);
	int64_t tb3 = snapshot_intern_traceback(s, t3, 2, 2);
	int64_t tb4 = snapshot_intern_traceback(s, t4, 1, 1);
	int64_t tb5 = snapshot_intern_traceback(s, NULL, 0, 0);
	uint64_t i;

	assert_true(tb1 >= 0 && tb2 >= 0 && tb3 >= 0 && tb4 >= 0 && tb5 >= 0);
	s->traceback_limit = 3;
	s->traced_current = 123456;
	s->traced_peak = 234567;
	s->domain_memory_known = true;
	s->domain_memory[SNAPSHOT_CLASS_PYTHON] = (struct snapshot_domain_memory){100000, 200000};
	s->domain_memory[SNAPSHOT_CLASS_NATIVE] = (struct snapshot_domain_memory){23456, 34567};
	s->tracer_memory = 4242;
	s->taken_at = 1795558595;
	s->duration_ns = 1000000007;
	s->alloc_events = 99;
	s->free_events = 77;
	s->target.pid = 4242;
	s->target.start_time = 1795550000;
	s->target.command = (uint32_t)snapshot_intern_string(s, "python3 app.py --port 80");
	s->target.host = (uint32_t)snapshot_intern_string(s, "web-7");
	for (i = 0; i < 1000; i++)
		assert_int_equal(snapshot_add_trace(s, 0x10000 + i * 64, 48, SNAPSHOT_DOMAIN_PYTHON,
						    (uint32_t)tb1),
				 0);
	for (i = 0; i < 10; i++)
		assert_int_equal(snapshot_add_trace(s, 0x900000 + i * 4096, 4096,
						    SNAPSHOT_DOMAIN_PYTHON, (uint32_t)tb2),
				 0);
	assert_int_equal(
	    snapshot_add_trace(s, 0x7f0000000000, 1 << 20, SNAPSHOT_DOMAIN_LIBC, (uint32_t)tb3), 0);
	assert_int_equal(snapshot_add_trace(s, 0x7f0000200000, 300, 7, (uint32_t)tb4), 0);
	assert_int_equal(
	    snapshot_add_trace(s, 0x7f0000300000, 5, SNAPSHOT_DOMAIN_LIBC, (uint32_t)tb5), 0);
	assert_int_equal(snapshot_set_counter(s, "allocs table full", 3), 0);
	assert_int_equal(snapshot_set_counter(s, "python frames unreadable", 0), 0);
	return s;
}

static void assert_same_stats(const struct snapshot *x, const struct snapshot *y,
			      enum stats_key key, bool cumulative)
{
	struct stats_list a, b;
	size_t i;

	assert_int_equal(stats_compute(x, key, cumulative, &a), 0);
	assert_int_equal(stats_compute(y, key, cumulative, &b), 0);
	assert_int_equal(a.n, b.n);
	for (i = 0; i < a.n; i++) {
		assert_int_equal(a.entries[i].size, b.entries[i].size);
		assert_int_equal(a.entries[i].count, b.entries[i].count);
		assert_int_equal(a.entries[i].nkey, b.entries[i].nkey);
		for (uint32_t k = 0; k < a.entries[i].nkey; k++) {
			const struct stats_frame *f = &a.entries[i].key[k],
						 *g = &b.entries[i].key[k];

			assert_string_equal(f->filename, g->filename);
			assert_int_equal(f->lineno, g->lineno);
			assert_true(!f->function == !g->function);
			if (f->function)
				assert_string_equal(f->function, g->function);
		}
	}
	stats_list_free(&a);
	stats_list_free(&b);
}

static struct snapshot *decode_ok(const void *buf, size_t len)
{
	struct snapshot *s;
	char err[256] = "";
	int rc = snapfile_decode(buf, len, &s, err, sizeof(err));

	if (rc)
		fail_msg("decode failed: %s", err);
	return s;
}

static void test_round_trip(void **state)
{
	struct snapshot *s = sample(), *t;
	void *buf;
	size_t len;
	uint64_t i;

	assert_int_equal(snapfile_encode(s, &buf, &len), 0);
	t = decode_ok(buf, len);
	assert_int_equal(t->traceback_limit, 3);
	assert_int_equal(t->traced_current, 123456);
	assert_int_equal(t->traced_peak, 234567);
	assert_true(t->domain_memory_known);
	assert_int_equal(t->domain_memory[SNAPSHOT_CLASS_PYTHON].current, 100000);
	assert_int_equal(t->domain_memory[SNAPSHOT_CLASS_PYTHON].peak, 200000);
	assert_int_equal(t->domain_memory[SNAPSHOT_CLASS_NATIVE].current, 23456);
	assert_int_equal(t->domain_memory[SNAPSHOT_CLASS_NATIVE].peak, 34567);
	assert_int_equal(t->tracer_memory, 4242);
	assert_int_equal(t->taken_at, 1795558595);
	assert_int_equal(t->duration_ns, 1000000007);
	assert_int_equal(t->alloc_events, 99);
	assert_int_equal(t->free_events, 77);
	assert_int_equal(t->target.pid, 4242);
	assert_int_equal(t->target.start_time, 1795550000);
	assert_string_equal(snapshot_string(t, t->target.command), "python3 app.py --port 80");
	assert_string_equal(snapshot_string(t, t->target.host), "web-7");
	assert_int_equal(t->ntraces, s->ntraces);
	for (i = 0; i < s->ntraces; i++) {
		assert_int_equal(t->traces[i].address, s->traces[i].address);
		assert_int_equal(t->traces[i].size, s->traces[i].size);
		assert_int_equal(t->traces[i].domain, s->traces[i].domain);
		assert_int_equal(t->tracebacks[t->traces[i].traceback].total_nframe,
				 s->tracebacks[s->traces[i].traceback].total_nframe);
	}
	assert_int_equal(t->ncounters, 2);
	assert_string_equal(snapshot_string(t, t->counters[0].name), "allocs table full");
	assert_int_equal(t->counters[0].value, 3);
	assert_same_stats(s, t, STATS_KEY_LINENO, false);
	assert_same_stats(s, t, STATS_KEY_LINENO, true);
	assert_same_stats(s, t, STATS_KEY_FILENAME, false);
	assert_same_stats(s, t, STATS_KEY_FILENAME, true);
	assert_same_stats(s, t, STATS_KEY_TRACEBACK, false);

	/* encoding the decoded snapshot gives the same bytes */
	void *again;
	size_t len2;
	assert_int_equal(snapfile_encode(t, &again, &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, again, len);
	free(again);
	free(buf);
	snapshot_free(s);
	snapshot_free(t);
}

static void test_empty_snapshot(void **state)
{
	struct snapshot *s = snapshot_new(), *t;
	void *buf;
	size_t len;

	s->target.command = (uint32_t)snapshot_intern_string(s, "");
	s->target.host = s->target.command;
	assert_int_equal(snapfile_encode(s, &buf, &len), 0);
	t = decode_ok(buf, len);
	assert_int_equal(t->ntraces, 0);
	assert_int_equal(t->traceback_limit, 1);
	free(buf);
	snapshot_free(s);
	snapshot_free(t);
}

static void test_write_is_atomic_and_private(void **state)
{
	char dir[] = "/tmp/test_snapfile.XXXXXX", path[256], err[256], why[512];
	struct snapshot *s = sample(), *t;
	struct stat st;
	struct dirent *e;
	DIR *d;
	int n = 0;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a.snap", dir);
	assert_int_equal(snapfile_write(s, path, why, sizeof(why)), 0);
	assert_int_equal(snapfile_write(s, path, why, sizeof(why)), 0); /* replaces */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	d = opendir(dir);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	assert_int_equal(n, 1); /* no temporary left behind */
	assert_int_equal(snapfile_load(path, &t, err, sizeof(err)), 0);
	assert_same_stats(s, t, STATS_KEY_TRACEBACK, false);
	snapshot_free(t);

	snprintf(path, sizeof(path), "%s/missing/a.snap", dir);
	assert_int_equal(snapfile_write(s, path, why, sizeof(why)), -ENOENT);
	assert_int_equal(snapfile_load(path, &t, err, sizeof(err)), -ENOENT);
	assert_null(t);
	assert_int_equal(snapfile_load(dir, &t, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "not a regular file");
	snprintf(path, sizeof(path), "%s/a.snap", dir);
	unlink(path);
	rmdir(dir);
	snapshot_free(s);
}

static void expect_reject(const void *buf, size_t len, const char *msg_start)
{
	struct snapshot *s = (void *)1;
	char err[256] = "";
	int rc = snapfile_decode(buf, len, &s, err, sizeof(err));

	if (rc != -EINVAL)
		fail_msg("expected rejection '%s', got %d (%s)", msg_start, rc, err);
	assert_null(s);
	assert_non_null(strstr(err, msg_start));
	assert_null(strchr(err, '\n'));
}

/* Section table entry i: (id, offset, length). */
static unsigned char *entry(unsigned char *buf, int i)
{
	return buf + 48 + i * 24;
}

static void test_truncated_everywhere(void **state)
{
	struct snapshot *s = sample();
	unsigned char *buf;
	size_t len, cut;

	assert_int_equal(snapfile_encode(s, (void **)&buf, &len), 0);
	/* every length short of the whole, which includes every section boundary */
	for (cut = 0; cut < len; cut++)
		expect_reject(buf, cut, cut < 8 ? "not a tracer snapshot" : "truncated");
	/* and when the header is rewritten to match the cut, the sections catch it */
	for (uint32_t i = 0; i < get32(buf + 12); i++) {
		cut = get64(entry(buf, i) + 8) + get64(entry(buf, i) + 16) - 1;
		if (cut < 80)
			continue;
		unsigned char *copy = malloc(cut);
		memcpy(copy, buf, cut);
		put64(copy + 16, cut);
		reseal(copy, cut);
		expect_reject(copy, cut, "corrupt");
		free(copy);
	}
	free(buf);
	snapshot_free(s);
}

static void test_flipped_bytes(void **state)
{
	struct snapshot *s = sample(), *t;
	unsigned char *buf;
	size_t len, i;
	int accepted = 0;

	assert_int_equal(snapfile_encode(s, (void **)&buf, &len), 0);
	for (i = 0; i < len; i++) {
		char err[256];

		buf[i] ^= 0x5a;
		/* the checksum sees every single damaged byte */
		if (i >= 8)
			expect_reject(buf, len, i < 24 || i >= 28 ? "" : "checksum");
		/* with the checksum made right, validation must still hold */
		reseal(buf, len);
		if (snapfile_decode(buf, len, &t, err, sizeof(err)) == 0) {
			accepted++; /* a changed value that is still valid: a size, a line */
			snapshot_free(t);
		} else {
			assert_true(err[0]);
		}
		buf[i] ^= 0x5a;
		reseal(buf, len);
	}
	assert_true(accepted > 0);
	free(buf);
	snapshot_free(s);
}

static void test_foreign_and_newer(void **state)
{
	struct snapshot *s = sample();
	unsigned char *buf;
	size_t len;

	assert_int_equal(snapfile_encode(s, (void **)&buf, &len), 0);
	expect_reject("hello, world", 12, "not a tracer snapshot");
	expect_reject("\x80\x05\x95", 3, "not a tracer snapshot"); /* a pickle */
	buf[1] = 'X';
	expect_reject(buf, len, "not a tracer snapshot");
	buf[1] = 'T';
	put32(buf + 8, 3);
	reseal(buf, len);
	expect_reject(buf, len, "version 3 is newer than this tracer's (2)");
	/* version 2 without processes: what a tracer of several writes, read */
	put32(buf + 8, 2);
	reseal(buf, len);
	snapshot_free(decode_ok(buf, len));
	put32(buf + 8, 0);
	reseal(buf, len);
	expect_reject(buf, len, "version 0");
	put32(buf + 8, 1);
	reseal(buf, len);
	snapshot_free(decode_ok(buf, len));
	free(buf);
	snapshot_free(s);
}

static unsigned char *section(unsigned char *buf, int id)
{
	for (uint32_t i = 0; i < get32(buf + 12); i++)
		if (buf[48 + i * 24] == id)
			return buf + get64(entry(buf, i) + 8);
	return NULL;
}

static void test_bad_structure(void **state)
{
	struct snapshot *s = sample();
	unsigned char *buf, *p;
	size_t len;

	assert_int_equal(snapfile_encode(s, (void **)&buf, &len), 0);
	assert_int_equal(get32(buf + 12), 8); /* with the domain memory section */
#define MUTATE(stmt, undo, msg)                                                                    \
	do {                                                                                       \
		stmt;                                                                              \
		reseal(buf, len);                                                                  \
		expect_reject(buf, len, msg);                                                      \
		undo;                                                                              \
		reseal(buf, len);                                                                  \
	} while (0)
	MUTATE(put32(buf + 12, 65), put32(buf + 12, 8), "65 sections");
	MUTATE(put32(buf + 12, 0xffffffff), put32(buf + 12, 8), "sections");
	MUTATE(put32(buf + 12, 6), put32(buf + 12, 8), "no counters section");
	/* a section whose offset + length wraps around */
	uint64_t off5 = get64(entry(buf, 5) + 8), len5 = get64(entry(buf, 5) + 16);
	MUTATE(put64(entry(buf, 5) + 16, UINT64_MAX - 8), put64(entry(buf, 5) + 16, len5),
	       "outside the file");
	MUTATE(put64(entry(buf, 5) + 8, off5 + 3), put64(entry(buf, 5) + 8, off5),
	       "outside the file");
	MUTATE(put64(entry(buf, 5) + 8, 16), put64(entry(buf, 5) + 8, off5), "outside the file");
	/* two sections over the same bytes */
	uint64_t off6 = get64(entry(buf, 6) + 8);
	MUTATE(put64(entry(buf, 6) + 8, get64(entry(buf, 5) + 8)), put64(entry(buf, 6) + 8, off6),
	       "overlap");
	MUTATE(put32(entry(buf, 6), 6), put32(entry(buf, 6), 7), "two traces sections");
	/* huge counts */
	p = section(buf, 2);
	MUTATE(put32(p, 0xffffffff), put32(p, s->nstrings), "strings cannot fit");
	MUTATE(put32(p + 4, 0x7fffffff), put32(p + 4, (uint32_t)strlen(s->strings[0])),
	       "runs past its section");
	MUTATE(p[5 + 4] = 0, p[5 + 4] = s->strings[0][1], "holds a NUL");
	/* indices past their tables */
	p = section(buf, 3);
	MUTATE(put32(p, 1000), put32(p, s->frames[0].filename), "refers to string 1000");
	MUTATE(put32(p + 8, 999), put32(p + 8, s->frames[0].function), "refers to string 999");
	p = section(buf, 4);
	MUTATE(put32(p, 77), put32(p, s->frame_ids[0]), "refers to frame 77");
	p = section(buf, 5);
	MUTATE(put32(p + 4, 200), put32(p + 4, s->tracebacks[0].nframe), "does not fit");
	MUTATE(put32(p, 0xfffffffe), put32(p, s->tracebacks[0].first), "does not fit");
	MUTATE(put32(p + 8, 1), put32(p + 8, s->tracebacks[0].total_nframe), "does not fit");
	MUTATE(put32(p + 8, 70000), put32(p + 8, s->tracebacks[0].total_nframe), "does not fit");
	p = section(buf, 6);
	MUTATE(put32(p + 20, 5), put32(p + 20, s->traces[0].traceback), "refers to traceback 5");
	/* sizes that would make the sums wrap (a crafted file with a valid checksum) */
	MUTATE(put64(p + 8, 1ull << 63), put64(p + 8, s->traces[0].size),
	       "larger than an address space");
	for (uint64_t t = 0; t < s->ntraces; t++)
		put64(p + 24 * t + 8, SNAPFILE_MAX_TRACE_SIZE);
	reseal(buf, len);
	assert_true(s->ntraces > SNAPFILE_MAX_TOTAL_SIZE / SNAPFILE_MAX_TRACE_SIZE);
	expect_reject(buf, len, "the traces hold more than");
	for (uint64_t t = 0; t < s->ntraces; t++)
		put64(p + 24 * t + 8, s->traces[t].size);
	reseal(buf, len);
	p = section(buf, 1);
	MUTATE(put32(p, 0), put32(p, 3), "traceback limit 0");
	MUTATE(put32(p, 2), put32(p, 3), "does not fit the limit 2");
	MUTATE(put32(p + 72, 500), put32(p + 72, s->target.command), "the target's command");
	p = section(buf, 7);
	MUTATE(put32(p, 501), put32(p, s->counters[0].name), "a counter refers to string 501");
	/* traced memory by domain: one record per class */
	p = section(buf, 8);
	MUTATE(put32(p + 24, 0), put32(p + 24, 1), "two domain memory records for python");
	MUTATE(put64(entry(buf, 7) + 16, 30), put64(entry(buf, 7) + 16, 48), "whole number");
	MUTATE(put32(entry(buf, 7), 7), put32(entry(buf, 7), 8), "two counters sections");
	/* a record section that is not a whole number of records */
	MUTATE(put64(entry(buf, 5) + 16, get64(entry(buf, 5) + 16) - 1),
	       put64(entry(buf, 5) + 16, get64(entry(buf, 5) + 16) + 1), "whole number");
	snapshot_free(decode_ok(buf, len));
	free(buf);
	snapshot_free(s);
}

/* A later writer may add a section of a kind this reader does not know. */
static void test_unknown_section_is_skipped(void **state)
{
	struct snapshot *s = sample(), *t;
	unsigned char *buf, *big;
	size_t len, table_end, blen;
	uint32_t i, nsec;

	assert_int_equal(snapfile_encode(s, (void **)&buf, &len), 0);
	nsec = get32(buf + 12);
	table_end = 48 + nsec * 24;
	blen = len + 24 + 16;
	big = calloc(1, blen);
	memcpy(big, buf, table_end);
	memcpy(big + table_end + 24, buf + table_end, len - table_end);
	for (i = 0; i < nsec; i++)
		put64(entry(big, i) + 8, get64(entry(big, i) + 8) + 24);
	put32(entry(big, nsec), 99);
	put64(entry(big, nsec) + 8, len + 24);
	put64(entry(big, nsec) + 16, 16);
	memcpy(big + len + 24, "future contents", 16);
	put32(big + 12, nsec + 1);
	put64(big + 16, blen);
	reseal(big, blen);
	t = decode_ok(big, blen);
	assert_same_stats(s, t, STATS_KEY_TRACEBACK, false);
	assert_true(t->domain_memory_known);
	snapshot_free(t);

	/* the domain memory section is optional: without it (a file from an
	 * older tracer, or a reader skipping it) the figures are unknown */
	put32(entry(big, 7), 97);
	reseal(big, blen);
	t = decode_ok(big, blen);
	assert_false(t->domain_memory_known);
	assert_int_equal(t->domain_memory[SNAPSHOT_CLASS_PYTHON].peak, 0);
	assert_int_equal(t->traced_current, 123456);
	assert_same_stats(s, t, STATS_KEY_TRACEBACK, false);
	snapshot_free(t);

	/* but a required section that goes missing is an error */
	put32(entry(big, 6), 98);
	reseal(big, blen);
	expect_reject(big, blen, "no counters section");
	free(big);
	free(buf);
	snapshot_free(s);
}

/* Traced memory by domain: a snapshot that does not know it is written as
 * an older tracer wrote it (7 sections, no domain memory section) and
 * loads so; a class this reader does not know is skipped. */
static void test_domain_memory_section(void **state)
{
	struct snapshot *s = sample(), *t;
	unsigned char *buf, *p;
	size_t len;

	s->domain_memory_known = false;
	assert_int_equal(snapfile_encode(s, (void **)&buf, &len), 0);
	assert_int_equal(get32(buf + 12), 7);
	assert_null(section(buf, 8));
	t = decode_ok(buf, len);
	assert_false(t->domain_memory_known);
	assert_int_equal(t->traced_peak, 234567);
	snapshot_free(t);
	free(buf);

	/* the section: (class, 0, current, peak) for python then native */
	s->domain_memory_known = true;
	assert_int_equal(snapfile_encode(s, (void **)&buf, &len), 0);
	p = section(buf, 8);
	assert_non_null(p);
	assert_int_equal(get64(entry(buf, 7) + 16), 48);
	assert_int_equal(get32(p), 0);
	assert_int_equal(get64(p + 8), 100000);
	assert_int_equal(get64(p + 16), 200000);
	assert_int_equal(get32(p + 24), 1);
	assert_int_equal(get64(p + 32), 23456);
	assert_int_equal(get64(p + 40), 34567);
	/* a class added by a later writer is skipped */
	put32(p + 24, 5);
	reseal(buf, len);
	t = decode_ok(buf, len);
	assert_true(t->domain_memory_known);
	assert_int_equal(t->domain_memory[SNAPSHOT_CLASS_PYTHON].current, 100000);
	assert_int_equal(t->domain_memory[SNAPSHOT_CLASS_NATIVE].current, 0);
	snapshot_free(t);
	free(buf);
	snapshot_free(s);
}

/* sample() with native frames that say where they are: two mappings (one
 * without a build-id), frames in them with and without source lines, a
 * traceback of them and a trace. */
static struct snapshot *native_sample(void)
{
	struct snapshot *s = sample();
	int64_t exe = snapshot_intern_mapping(s, "/usr/bin/redis-server", "4e1f00aa",
					      0x555500001000, 0x555500090000, 0x1000);
	int64_t lib = snapshot_intern_mapping(s, "/usr/lib/libc.so.6", NULL, 0x7f0000028000,
					      0x7f00001bd000, 0x28000);
	int64_t f1, f2, f3, tb;
	uint32_t ids[3];

	assert_true(exe == 0 && lib == 1);
	f1 = snapshot_intern_native_frame(s, "/usr/bin/redis-server+0x7bc18", 0, "zmalloc_usable",
					  (uint32_t)exe, 0x55550007bc18, 0x19);
	f2 = snapshot_intern_native_frame(s, "/usr/bin/redis-server+0x7bd00", 0, NULL,
					  (uint32_t)exe, 0x55550007bd00, 0);
	/* the same file and line as sample()'s make_thing, another address */
	f3 = snapshot_intern_native_frame(s, "native.c", 42, "make_thing", (uint32_t)lib,
					  0x7f0000030000, 0x40);
	assert_true(f1 >= 0 && f2 >= 0 && f3 >= 0);
	ids[0] = (uint32_t)f1, ids[1] = (uint32_t)f2, ids[2] = (uint32_t)f3;
	tb = snapshot_intern_traceback(s, ids, 3, 3);
	assert_true(tb >= 0);
	assert_int_equal(
	    snapshot_add_trace(s, 0x7f0000400000, 64, SNAPSHOT_DOMAIN_LIBC, (uint32_t)tb), 0);
	return s;
}

/* Mappings and frame addresses (sections 9 and 10): kept by a round trip;
 * a file without them (an older tracer's) loads with no mapping on any
 * frame; a hostile one is refused. */
static void test_mappings_sections(void **state)
{
	struct snapshot *s = native_sample(), *t;
	unsigned char *buf, *p, *again;
	size_t len, len2;
	uint32_t i;

	/* no mappings: written as before, without sections 9 and 10 */
	t = sample();
	assert_int_equal(snapfile_encode(t, (void **)&buf, &len), 0);
	assert_int_equal(get32(buf + 12), 8);
	assert_null(section(buf, 9));
	free(buf);
	snapshot_free(t);

	assert_int_equal(snapfile_encode(s, (void **)&buf, &len), 0);
	assert_int_equal(get32(buf + 12), 10);
	p = section(buf, 9);
	assert_non_null(p);
	assert_int_equal(get64(entry(buf, 8) + 16), 2 * 32);
	assert_int_equal(get64(p), 0x555500001000);
	assert_int_equal(get64(p + 8), 0x555500090000);
	assert_int_equal(get64(p + 16), 0x1000);
	assert_string_equal(s->strings[get32(p + 24)], "/usr/bin/redis-server");
	assert_string_equal(s->strings[get32(p + 28)], "4e1f00aa");
	assert_int_equal(get32(p + 32 + 28), SNAPSHOT_NO_STRING);
	assert_int_equal(get64(entry(buf, 9) + 16), (uint64_t)s->nframes * 24);

	t = decode_ok(buf, len);
	assert_int_equal(t->nmappings, 2);
	for (i = 0; i < 2; i++) {
		assert_int_equal(t->mappings[i].start, s->mappings[i].start);
		assert_int_equal(t->mappings[i].limit, s->mappings[i].limit);
		assert_int_equal(t->mappings[i].file_offset, s->mappings[i].file_offset);
		assert_string_equal(snapshot_string(t, t->mappings[i].path),
				    snapshot_string(s, s->mappings[i].path));
	}
	assert_string_equal(snapshot_string(t, t->mappings[0].build_id), "4e1f00aa");
	assert_int_equal(t->mappings[1].build_id, SNAPSHOT_NO_STRING);
	assert_int_equal(t->nframes, s->nframes);
	for (i = 0; i < s->nframes; i++) {
		assert_int_equal(t->frames[i].mapping, s->frames[i].mapping);
		assert_int_equal(t->frames[i].address, s->frames[i].address);
		assert_int_equal(t->frames[i].function_offset, s->frames[i].function_offset);
	}
	assert_same_stats(s, t, STATS_KEY_TRACEBACK, false);
	assert_same_stats(s, t, STATS_KEY_FILENAME, true);
	assert_int_equal(snapfile_encode(t, (void **)&again, &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, again, len);
	free(again);
	snapshot_free(t);

	/* a reader that does not know them (or a file without them): the
	 * frames lose where they are and nothing else; the two make_thing
	 * frames become one */
	put32(entry(buf, 8), 97);
	put32(entry(buf, 9), 98);
	reseal(buf, len);
	t = decode_ok(buf, len);
	assert_int_equal(t->nmappings, 0);
	assert_int_equal(t->nframes, s->nframes - 1);
	for (i = 0; i < t->nframes; i++) {
		assert_int_equal(t->frames[i].mapping, SNAPSHOT_NO_MAPPING);
		assert_int_equal(t->frames[i].address, 0);
	}
	assert_same_stats(s, t, STATS_KEY_LINENO, false);
	snapshot_free(t);
	/* frame addresses without mappings: only frames without a mapping */
	put32(entry(buf, 9), 10);
	reseal(buf, len);
	expect_reject(buf, len, "refers to mapping 0 of 0");
	put32(entry(buf, 8), 9);
	reseal(buf, len);
	snapshot_free(decode_ok(buf, len));

	/* hostile mappings and addresses */
	p = section(buf, 9);
	MUTATE(put64(p + 8, 0x555500001000), put64(p + 8, 0x555500090000),
	       "mapping 0 ends (0x555500001000) before it starts");
	MUTATE(put32(p + 24, 4000), put32(p + 24, s->mappings[0].path),
	       "a mapping's path refers to string 4000");
	MUTATE(put32(p + 28, 4001), put32(p + 28, s->mappings[0].build_id),
	       "a mapping's build-id refers to string 4001");
	MUTATE(put64(entry(buf, 8) + 16, 40), put64(entry(buf, 8) + 16, 64), "whole number");
	MUTATE(put32(entry(buf, 8), 10), put32(entry(buf, 8), 9), "two frame addresses sections");
	p = section(buf, 10);
	for (i = 0; i < s->nframes && s->frames[i].mapping == SNAPSHOT_NO_MAPPING; i++)
		;
	assert_true(i < s->nframes);
	p += 24 * i; /* the first frame with a mapping */
	MUTATE(put32(p, 2), put32(p, 0), "refers to mapping 2 of 2");
	MUTATE(put64(p + 8, 0x555500090000), put64(p + 8, s->frames[i].address),
	       "lies outside its mapping (0x555500001000-0x555500090000)");
	MUTATE(put64(p + 8, 0x555500000fff), put64(p + 8, s->frames[i].address),
	       "lies outside its mapping");
	MUTATE(put32(p, SNAPSHOT_NO_MAPPING), put32(p, 0), "has an address but no mapping");
	MUTATE(put64(entry(buf, 9) + 16, get64(entry(buf, 9) + 16) - 24),
	       put64(entry(buf, 9) + 16, get64(entry(buf, 9) + 16) + 24), "frame addresses for");
	snapshot_free(decode_ok(buf, len));
	free(buf);
	snapshot_free(s);
}

/* sample() with each trace's age and sites over the run: tb1 (the 1000
 * Python traces) and tb3 in two domains; a site without live traces (tb5). */
static struct snapshot *sites_sample(void)
{
	struct snapshot *s = sample();
	struct snapshot_site sites[] = {
	    {.traceback = 0, .domain = SNAPSHOT_DOMAIN_PYTHON, .alloc_count = 5000,
	     .alloc_bytes = 240000, .temp_count = 3000, .temp_bytes = 144000,
	     .peak_count = 2000, .peak_bytes = 96000},
	    {.traceback = 2, .domain = SNAPSHOT_DOMAIN_LIBC, .alloc_count = 2,
	     .alloc_bytes = 2 << 20, .peak_count = 2, .peak_bytes = 2 << 20},
	    {.traceback = 2, .domain = 7, .alloc_count = 1, .alloc_bytes = 10},
	    {.traceback = 4, .domain = SNAPSHOT_DOMAIN_LIBC, .alloc_count = 9, .alloc_bytes = 90,
	     .temp_count = 9, .temp_bytes = 90},
	};

	for (uint64_t i = 0; i < s->ntraces; i++)
		s->traces[i].age_ns = (i + 1) * 1000000000ull;
	s->ages_known = true;
	assert_int_equal(snapshot_add_sites(s, sites, 4), 0);
	return s;
}

static void assert_same_source(const struct snapshot *x, const struct snapshot *y,
			       enum stats_source source)
{
	struct stats_list a, b;

	assert_int_equal(stats_compute_source(x, source, STATS_KEY_TRACEBACK, false, &a), 0);
	assert_int_equal(stats_compute_source(y, source, STATS_KEY_TRACEBACK, false, &b), 0);
	assert_int_equal(a.n, b.n);
	for (size_t i = 0; i < a.n; i++) {
		assert_int_equal(a.entries[i].size, b.entries[i].size);
		assert_int_equal(a.entries[i].count, b.entries[i].count);
		assert_memory_equal(&a.entries[i].all, &b.entries[i].all, sizeof(a.entries[i].all));
	}
	stats_list_free(&a);
	stats_list_free(&b);
}

/* Trace ages (id 11) and sites (id 12): written when known, read back
 * exactly; a snapshot without them is written as an older tracer wrote it
 * and loads without them, as does a file whose reader skips them. */
static void test_sites_and_ages_sections(void **state)
{
	struct snapshot *s = sites_sample(), *t;
	unsigned char *buf, *p;
	size_t len;
	uint32_t nsec;

	assert_int_equal(snapfile_encode(s, (void **)&buf, &len), 0);
	nsec = get32(buf + 12);
	assert_int_equal(nsec, 10);
	p = section(buf, 11);
	assert_non_null(p);
	assert_int_equal(get64(p), 1000000000ull);
	assert_int_equal(get64(p + 8 * 1012), 1013000000000ull);
	p = section(buf, 12);
	assert_non_null(p);
	assert_int_equal(get32(p), 0);
	assert_int_equal(get64(p + 8), 5000);
	assert_int_equal(get64(p + 48), 96000);
	t = decode_ok(buf, len);
	assert_true(t->ages_known);
	assert_true(t->sites_known);
	assert_int_equal(t->ntraces, s->ntraces);
	for (uint64_t i = 0; i < t->ntraces; i++)
		assert_int_equal(t->traces[i].age_ns, s->traces[i].age_ns);
	assert_int_equal(t->nsites, 4);
	assert_memory_equal(t->sites, s->sites, 4 * sizeof(*s->sites));
	assert_same_source(s, t, STATS_SOURCE_LIVE);
	assert_same_source(s, t, STATS_SOURCE_PEAK);
	assert_same_source(s, t, STATS_SOURCE_ALLOCATIONS);
	assert_same_source(s, t, STATS_SOURCE_TEMPORARY);
	snapshot_free(t);

	/* a reader that does not know them skips them: read as unknown ids */
	buf[48 + (nsec - 2) * 24] = 95;
	buf[48 + (nsec - 1) * 24] = 96;
	reseal(buf, len);
	t = decode_ok(buf, len);
	assert_false(t->ages_known);
	assert_false(t->sites_known);
	assert_int_equal(t->nsites, 0);
	assert_int_equal(t->traces[0].age_ns, 0);
	assert_same_stats(s, t, STATS_KEY_TRACEBACK, false);
	snapshot_free(t);
	free(buf);

	/* what they must hold */
	assert_int_equal(snapfile_encode(s, (void **)&buf, &len), 0);
	put64(entry(buf, nsec - 2) + 16, 8 * 1012);
	reseal(buf, len);
	expect_reject(buf, len, "1012 trace ages for 1013 traces");
	free(buf);
	assert_int_equal(snapfile_encode(s, (void **)&buf, &len), 0);
	p = section(buf, 12);
	put32(p, 5);
	reseal(buf, len);
	expect_reject(buf, len, "site 0 refers to traceback 5 of 5");
	put32(p, 0);
	put64(p + 24, 5001);
	reseal(buf, len);
	expect_reject(buf, len, "more temporary allocations than allocations");
	put64(p + 24, 3000);
	put64(p + 48, 1ull << 49);
	reseal(buf, len);
	expect_reject(buf, len, "the peak more bytes than a snapshot holds");
	/* a site given twice adds up */
	memcpy(p + 56, p, 56);
	put64(p + 48, 96000);
	put64(p + 56 + 48, 96000);
	reseal(buf, len);
	t = decode_ok(buf, len);
	assert_int_equal(t->nsites, 3);
	assert_int_equal(t->sites[0].alloc_count, 10000);
	assert_int_equal(t->sites[0].peak_bytes, 192000);
	snapshot_free(t);
	free(buf);

	/* unknown: written as before, 8 sections (with domain memory) */
	s->ages_known = s->sites_known = false;
	assert_int_equal(snapfile_encode(s, (void **)&buf, &len), 0);
	assert_int_equal(get32(buf + 12), 8);
	assert_null(section(buf, 11));
	assert_null(section(buf, 12));
	t = decode_ok(buf, len);
	assert_false(t->ages_known);
	assert_false(t->sites_known);
	snapshot_free(t);
	free(buf);
	snapshot_free(s);
}

/* --budget's coverage (section 16): kept exactly by a round trip, absent
 * without a budget, skipped by a reader that does not know it (the figures
 * then cover all the time), refused out of range. */
static void test_budget_section(void **state)
{
	struct snapshot *s = sample(), *t;
	unsigned char *buf, *p;
	size_t len;
	uint32_t nsec;
	uint64_t nan_bits = 0x7ff8000000000000ull;

	assert_int_equal(snapfile_encode(s, (void **)&buf, &len), 0);
	assert_null(section(buf, 16));
	nsec = get32(buf + 12);
	free(buf);

	s->budget = (struct snapshot_budget){.on = true,
					     .ratio = 0.01,
					     .coverage = 0.0553,
					     .overhead = 0.0093,
					     .hit_cost_s = 4.2e-7,
					     .frees_windowed = true,
					     .windows = 37};
	assert_int_equal(snapfile_encode(s, (void **)&buf, &len), 0);
	assert_int_equal(get32(buf + 12), nsec + 1);
	assert_int_equal(get32(buf + 8), 1); /* one process: still version 1 */
	p = section(buf, 16);
	assert_non_null(p);
	t = decode_ok(buf, len);
	assert_true(t->budget.on);
	assert_true(t->budget.ratio == 0.01 && t->budget.coverage == 0.0553);
	assert_true(t->budget.overhead == 0.0093 && t->budget.hit_cost_s == 4.2e-7);
	assert_true(t->budget.frees_windowed);
	assert_int_equal(t->budget.windows, 37);
	assert_same_stats(s, t, STATS_KEY_TRACEBACK, false);
	snapshot_free(t);

	/* out of range: a coverage above 1, a NaN budget, an unknown flag */
	put64(p + 8, 0x3ff8000000000000ull); /* 1.5 */
	reseal(buf, len);
	expect_reject(buf, len, "budget record out of range");
	put64(p + 8, 0x3fa0000000000000ull); /* 0.03125 */
	put64(p, nan_bits);
	reseal(buf, len);
	expect_reject(buf, len, "budget record out of range");
	put64(p, 0x3f847ae147ae147bull); /* 0.01 */
	put32(p + 40, 2);
	reseal(buf, len);
	expect_reject(buf, len, "budget record out of range");
	put32(p + 40, 0);
	reseal(buf, len);
	t = decode_ok(buf, len);
	assert_true(t->budget.coverage == 0.03125 && !t->budget.frees_windowed);
	snapshot_free(t);

	/* a reader older than the section skips it: no budget */
	for (uint32_t i = 0; i < get32(buf + 12); i++)
		if (get32(entry(buf, (int)i)) == 16)
			put32(entry(buf, (int)i), 96);
	reseal(buf, len);
	t = decode_ok(buf, len);
	assert_false(t->budget.on);
	snapshot_free(t);
	free(buf);
	snapshot_free(s);
}

static void test_expand_name(void **state)
{
	char out[64];

	assert_int_equal(snapfile_expand_name("snap-%n.snap", 3, 0, out, sizeof(out)), 0);
	assert_string_equal(out, "snap-3.snap");
	assert_int_equal(snapfile_expand_name("s-%t-%n%%.snap", 12, 1795558500, out, sizeof(out)),
			 0);
	assert_string_equal(out, "s-20261124T221500Z-12%.snap");
	assert_int_equal(snapfile_expand_name("plain", 1, 0, out, sizeof(out)), 0);
	assert_string_equal(out, "plain");
	assert_int_equal(snapfile_expand_name("a%x", 1, 0, out, sizeof(out)), -EINVAL);
	assert_int_equal(snapfile_expand_name("a%", 1, 0, out, sizeof(out)), -EINVAL);
	assert_int_equal(snapfile_expand_name("", 1, 0, out, sizeof(out)), -EINVAL);
	assert_int_equal(snapfile_expand_name("%n%n%n%n%n%n%n%n", 1000000000, 0, out, 64),
			 -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_empty_snapshot),
	    cmocka_unit_test(test_write_is_atomic_and_private),
	    cmocka_unit_test(test_truncated_everywhere),
	    cmocka_unit_test(test_flipped_bytes),
	    cmocka_unit_test(test_foreign_and_newer),
	    cmocka_unit_test(test_bad_structure),
	    cmocka_unit_test(test_unknown_section_is_skipped),
	    cmocka_unit_test(test_domain_memory_section),
	    cmocka_unit_test(test_mappings_sections),
	    cmocka_unit_test(test_sites_and_ages_sections),
	    cmocka_unit_test(test_budget_section),
	    cmocka_unit_test(test_expand_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
