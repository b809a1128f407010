/* tracemalloc's grouping, sorting and text formats against hand-computed
 * expectations (../shared/TRACEMALLOC.md sections 4 and 5). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <errno.h>
#include <unistd.h>

#include "report/format.h"
#include "model/filter.h"
#include "model/snapshot.h"
#include "model/stats.h"

/* Adds count traces of size bytes with frames "file:line" most recent first. */
static void add(struct snapshot *s, uint64_t size, int count, int n, ...)
{
	uint32_t ids[16];
	va_list ap;
	int i;

	va_start(ap, n);
	for (i = 0; i < n; i++) {
		const char *file = va_arg(ap, const char *);
		int line = va_arg(ap, int);
		int64_t id = snapshot_intern_frame(s, file, (uint32_t)line, NULL);

		assert_true(id >= 0);
		ids[i] = (uint32_t)id;
	}
	va_end(ap);
	int64_t tb = snapshot_intern_traceback(s, ids, (uint32_t)n, (uint32_t)n);
	assert_true(tb >= 0);
	for (i = 0; i < count; i++)
		assert_int_equal(snapshot_add_trace(s, 0x1000 + (uint64_t)i, size, 0, (uint32_t)tb), 0);
}

static char *fmt(double size, bool sign)
{
	static char buf[64];

	return (char *)format_size(buf, sizeof(buf), size, sign);
}

static void test_format_size(void **state)
{
	assert_string_equal(fmt(0, false), "0 B");
	assert_string_equal(fmt(10239, false), "10239 B");
	assert_string_equal(fmt(10240, false), "10.0 KiB");
	assert_string_equal(fmt(102348, false), "99.9 KiB");
	assert_string_equal(fmt(102399, false), "100.0 KiB");
	assert_string_equal(fmt(102400, false), "100 KiB");
	assert_string_equal(fmt(1048575, false), "1024 KiB");
	assert_string_equal(fmt(10485759, false), "10240 KiB");
	assert_string_equal(fmt(10485760, false), "10.0 MiB");
	assert_string_equal(fmt(1125899906842624.0, false), "1024 TiB");
	assert_string_equal(fmt(1152921504606846976.0, false), "1048576 TiB");
	assert_string_equal(fmt(56.5, false), "56 B");
	assert_string_equal(fmt(57.5, false), "58 B");
	assert_string_equal(fmt(2.5, false), "2 B");
	assert_string_equal(fmt(0, true), "+0 B");
	assert_string_equal(fmt(-300, false), "-300 B");
	assert_string_equal(fmt(-300, true), "-300 B");
	assert_string_equal(fmt(70041.6, true), "+68.4 KiB");
}

static char *stat_str(const struct stats_entry *e, bool diff)
{
	static char buf[512];
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	format_statistic(f, e, diff);
	fclose(f);
	return buf;
}

static void test_lineno_grouping_and_text(void **state)
{
	struct snapshot *s = snapshot_new();
	struct stats_list l;

	add(s, 4096, 1000, 2, "w.c", 42, "w.c", 80);
	add(s, 100, 3, 2, "w.c", 42, "w.c", 90); /* same line, other caller */
	add(s, 3001, 1, 1, "x.c", 7);
	assert_int_equal(stats_compute(s, STATS_KEY_LINENO, false, &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.entries[0].key[0].filename, "w.c");
	assert_int_equal(l.entries[0].key[0].lineno, 42);
	assert_int_equal(l.entries[0].size, 4096 * 1000 + 300);
	assert_int_equal(l.entries[0].count, 1003);
	assert_string_equal(stat_str(&l.entries[0], false),
			    "w.c:42: size=4000 KiB, count=1003, average=4084 B");
	assert_string_equal(stat_str(&l.entries[1], false),
			    "x.c:7: size=3001 B, count=1, average=3001 B");
	stats_list_free(&l);

	assert_int_equal(stats_compute(s, STATS_KEY_FILENAME, false, &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.entries[0].key[0].lineno, 0);
	assert_string_equal(stat_str(&l.entries[0], false),
			    "w.c:0: size=4000 KiB, count=1003, average=4084 B");
	stats_list_free(&l);

	assert_int_equal(stats_compute(s, STATS_KEY_TRACEBACK, false, &l), 0);
	assert_int_equal(l.n, 3);
	/* str(Traceback) is the OLDEST frame */
	assert_string_equal(stat_str(&l.entries[0], false),
			    "w.c:80: size=4000 KiB, count=1000, average=4096 B");
	stats_list_free(&l);
	assert_int_equal(stats_compute(s, STATS_KEY_TRACEBACK, true, &l), -EINVAL);
	snapshot_free(s);
}

static void test_cumulative_counts_every_frame(void **state)
{
	struct snapshot *s = snapshot_new();
	struct stats_list l;

	/* a recursive line appears twice in one traceback: counted twice */
	add(s, 10, 2, 3, "r.py", 5, "r.py", 5, "main.py", 1);
	add(s, 7, 1, 1, "main.py", 2);
	assert_int_equal(stats_compute(s, STATS_KEY_LINENO, true, &l), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.entries[0].key[0].filename, "r.py");
	assert_int_equal(l.entries[0].size, 40);
	assert_int_equal(l.entries[0].count, 4);
	assert_string_equal(l.entries[1].key[0].filename, "main.py");
	assert_int_equal(l.entries[1].key[0].lineno, 1);
	assert_int_equal(l.entries[1].size, 20);
	assert_int_equal(l.entries[2].size, 7);
	stats_list_free(&l);

	assert_int_equal(stats_compute(s, STATS_KEY_FILENAME, true, &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.entries[0].key[0].filename, "r.py");
	assert_int_equal(l.entries[0].size, 40);
	assert_string_equal(l.entries[1].key[0].filename, "main.py");
	assert_int_equal(l.entries[1].size, 27);
	assert_int_equal(l.entries[1].count, 3);
	stats_list_free(&l);
	snapshot_free(s);
}

static void test_tie_break_order(void **state)
{
	struct snapshot *s = snapshot_new();
	struct stats_list l;

	add(s, 8, 1, 1, "a.py", 1);
	add(s, 8, 1, 1, "b.py", 1);
	add(s, 8, 1, 1, "a.py", 2);
	assert_int_equal(stats_compute(s, STATS_KEY_LINENO, false, &l), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.entries[0].key[0].filename, "b.py");
	assert_string_equal(l.entries[1].key[0].filename, "a.py");
	assert_int_equal(l.entries[1].key[0].lineno, 2);
	assert_int_equal(l.entries[2].key[0].lineno, 1);
	stats_list_free(&l);
	snapshot_free(s);

	/* a traceback that is a prefix (oldest first) sorts before a longer one,
	 * so with reverse order the longer one comes first */
	s = snapshot_new();
	add(s, 8, 1, 1, "m.py", 1);
	add(s, 8, 1, 2, "f.py", 3, "m.py", 1);
	assert_int_equal(stats_compute(s, STATS_KEY_TRACEBACK, false, &l), 0);
	assert_int_equal(l.entries[0].nkey, 2);
	assert_int_equal(l.entries[1].nkey, 1);
	stats_list_free(&l);
	snapshot_free(s);
}

static void test_compare(void **state)
{
	struct snapshot *old = snapshot_new(), *new = snapshot_new();
	struct stats_list l;

	add(old, 100, 3, 1, "same.py", 1);
	add(new, 100, 3, 1, "same.py", 1);
	add(old, 300, 1, 1, "gone.py", 4);
	add(old, 10, 1, 1, "x.py", 5);
	add(new, 70041, 1, 1, "x.py", 5);
	add(new, 50, 2, 1, "new.py", 9);
	assert_int_equal(stats_compare(new, old, STATS_KEY_LINENO, false, &l), 0);
	assert_int_equal(l.n, 4);
	assert_string_equal(stat_str(&l.entries[0], true),
			    "x.py:5: size=68.4 KiB (+68.4 KiB), count=1 (+0), average=68.4 KiB");
	assert_string_equal(stat_str(&l.entries[1], true),
			    "gone.py:4: size=0 B (-300 B), count=0 (-1)");
	assert_string_equal(stat_str(&l.entries[2], true),
			    "new.py:9: size=100 B (+100 B), count=2 (+2), average=50 B");
	/* zero differences are kept */
	assert_string_equal(stat_str(&l.entries[3], true),
			    "same.py:1: size=300 B (+0 B), count=3 (+0), average=100 B");
	stats_list_free(&l);
	snapshot_free(old);
	snapshot_free(new);
}

static void test_traceback_format_limits(void **state)
{
	struct stats_frame fr[3] = {{"c.py", 3, NULL}, {"b.py", 2, NULL}, {"a.py", 1, NULL}};
	char buf[1024];
	FILE *f;

	f = fmemopen(buf, sizeof(buf), "w");
	format_traceback(f, fr, 3, 3, false);
	fclose(f);
	assert_string_equal(buf, "  File \"a.py\", line 1\n  File \"b.py\", line 2\n"
				 "  File \"c.py\", line 3\n");
	f = fmemopen(buf, sizeof(buf), "w");
	format_traceback(f, fr, 3, 1, false); /* the most recent frame */
	fclose(f);
	assert_string_equal(buf, "  File \"c.py\", line 3\n");
	f = fmemopen(buf, sizeof(buf), "w");
	format_traceback(f, fr, 3, -1, false); /* drops the most recent */
	fclose(f);
	assert_string_equal(buf, "  File \"a.py\", line 1\n  File \"b.py\", line 2\n");
	buf[0] = 'x';
	f = fmemopen(buf, sizeof(buf), "w");
	format_traceback(f, fr, 3, 0, false);
	fputc('\0', f);
	fclose(f);
	assert_string_equal(buf, "");
	f = fmemopen(buf, sizeof(buf), "w");
	format_traceback(f, fr, 3, 2, true);
	fclose(f);
	assert_string_equal(buf, "  File \"c.py\", line 3\n  File \"b.py\", line 2\n");
}

static void test_traceback_source_line(void **state)
{
	char path[] = "/tmp/tracer-src-XXXXXX";
	int fd = mkstemp(path);
	char buf[1024];
	struct stats_frame fr = {path, 2, NULL};
	FILE *f;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "a = 1\n    b = [0] * 10  \nc\n", 27), 27);
	close(fd);
	f = fmemopen(buf, sizeof(buf), "w");
	format_traceback(f, &fr, 1, 1, false);
	fclose(f);
	unlink(path);
	char want[256];
	snprintf(want, sizeof(want), "  File \"%s\", line 2\n    b = [0] * 10\n", path);
	assert_string_equal(buf, want);
}

static void test_json_string(void **state)
{
	char buf[128];
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	format_json_string(f, "a\"b\\c\nd\x01");
	fclose(f);
	assert_string_equal(buf, "\"a\\\"b\\\\c\\nd\\u0001\"");
}

/* JSON stays valid UTF-8 whatever bytes a name holds. */
static void test_json_string_utf8(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"caf\xc3\xa9.py", "\"caf\xc3\xa9.py\""},		/* valid 2 bytes */
		{"\xe2\x82\xac\xf0\x9f\x90\x8d", "\"\xe2\x82\xac\xf0\x9f\x90\x8d\""}, /* 3 and 4 */
		{"\xf5\xa1\xb3\x88", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* beyond U+10FFFF */
		{"a\xc3", "\"a\\ufffd\""},				/* cut short */
		{"\xc0\xaf", "\"\\ufffd\\ufffd\""},			/* overlong */
		{"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},	/* a surrogate */
		{"latin1 \xe9t\xe9", "\"latin1 \\ufffdt\\ufffd\""},
		{"\x7f", "\"\\u007f\""},
	};
	char buf[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		FILE *f = fmemopen(buf, sizeof(buf), "w");

		format_json_string(f, cases[i].in);
		fclose(f);
		assert_string_equal(buf, cases[i].out);
	}
}

/* The sources from the sites: the peak's live set, allocations and
 * temporaries over the run, grouped as the live traces are (a site without
 * live traces listed too), allocations sorted by count; every source's
 * figures beside; --older-than keeps the old traces and every site; the
 * pprof encoder's totals per traceback. */
static void test_sources_from_sites(void **state)
{
	struct snapshot *s = snapshot_new(), *old;
	uint64_t *objects, *bytes;
	struct stats_list l;

	add(s, 4096, 10, 2, "w.c", 42, "w.c", 80); /* tb 0 */
	add(s, 100, 3, 2, "w.c", 42, "w.c", 90);   /* tb 1: the same line */
	add(s, 64, 0, 1, "t.c", 5);		   /* tb 2: no live traces */
	for (uint64_t i = 0; i < s->ntraces; i++)
		s->traces[i].age_ns = i < 10 ? 60000000000ull : 1000000ull;
	s->ages_known = true;
	struct snapshot_site sites[] = {
	    {.traceback = 1, .domain = 0, .alloc_count = 3, .alloc_bytes = 300, .peak_count = 3,
	     .peak_bytes = 300},
	    {.traceback = 0, .domain = 0, .alloc_count = 20, .alloc_bytes = 81920,
	     .temp_count = 1, .temp_bytes = 4096, .peak_count = 20, .peak_bytes = 81920},
	    {.traceback = 2, .domain = 0, .alloc_count = 1000, .alloc_bytes = 64000,
	     .temp_count = 1000, .temp_bytes = 64000},
	    {.traceback = 2, .domain = SNAPSHOT_DOMAIN_LIBC, .alloc_count = 1, .alloc_bytes = 64},
	};
	assert_int_equal(snapshot_add_sites(s, sites, 4), 0);

	assert_int_equal(stats_compute_source(s, STATS_SOURCE_PEAK, STATS_KEY_LINENO, false, &l),
			 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.entries[0].size, 81920 + 300);
	assert_int_equal(l.entries[0].count, 23);
	assert_int_equal(l.entries[0].all.size, 41260);
	assert_int_equal(l.entries[0].all.count, 13);
	assert_int_equal(l.entries[0].all.max_age_ns, 60000000000ull);
	stats_list_free(&l);

	assert_int_equal(
	    stats_compute_source(s, STATS_SOURCE_ALLOCATIONS, STATS_KEY_LINENO, false, &l), 0);
	assert_int_equal(l.n, 2);
	/* by count: t.c's 1001 small blocks before w.c's 23 big ones */
	assert_string_equal(stat_str(&l.entries[0], false),
			    "t.c:5: size=62.6 KiB, count=1001, average=64 B");
	assert_int_equal(l.entries[0].all.temp_count, 1000);
	assert_int_equal(l.entries[0].all.count, 0);
	assert_int_equal(l.entries[1].size, 82220);
	assert_int_equal(l.entries[1].all.temp_size, 4096);
	stats_list_free(&l);

	assert_int_equal(
	    stats_compute_source(s, STATS_SOURCE_TEMPORARY, STATS_KEY_TRACEBACK, false, &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.entries[0].count, 1000);
	assert_int_equal(l.entries[1].count, 1);
	stats_list_free(&l);
	assert_int_equal(
	    stats_compute_source(s, STATS_SOURCE_ALLOCATIONS, STATS_KEY_FILENAME, true, &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.entries[0].count, 1001);
	/* cumulative: w.c counts once per frame, as tracemalloc's */
	assert_int_equal(l.entries[1].count, 46);
	stats_list_free(&l);

	/* blocks a minute old: the ten of tb 0; the sites all stay */
	assert_int_equal(filter_older_than(s, 30000000000ull, &old), 0);
	assert_int_equal(old->ntraces, 10);
	assert_true(old->ages_known);
	assert_int_equal(old->traces[0].age_ns, 60000000000ull);
	assert_int_equal(old->nsites, 4);
	assert_int_equal(stats_compute_source(old, STATS_SOURCE_ALLOCATIONS, STATS_KEY_LINENO,
					      false, &l),
			 0);
	assert_int_equal(l.entries[0].count, 1001);
	stats_list_free(&l);
	snapshot_free(old);

	assert_int_equal(snapshot_alloc_totals(s, &objects, &bytes), 0);
	assert_int_equal(objects[0], 20);
	assert_int_equal(bytes[0], 81920);
	assert_int_equal(objects[1], 3);
	assert_int_equal(objects[2], 1001);
	assert_int_equal(bytes[2], 64064);
	free(objects);
	free(bytes);

	/* a snapshot without ages refuses --older-than */
	s->ages_known = false;
	assert_int_equal(filter_older_than(s, 1, &old), -EINVAL);
	snapshot_free(s);
}

static void test_interning_and_domains(void **state)
{
	struct snapshot *s = snapshot_new();
	uint32_t d;
	char buf[16];

	assert_int_equal(snapshot_intern_string(s, "x"), snapshot_intern_string(s, "x"));
	assert_int_equal(snapshot_intern_frame(s, "f", 1, "fn"), snapshot_intern_frame(s, "f", 1, "fn"));
	assert_true(snapshot_intern_frame(s, "f", 1, NULL) != snapshot_intern_frame(s, "f", 2, NULL));
	assert_int_equal(snapshot_parse_domain("python", &d), 0);
	assert_int_equal(d, 0);
	assert_int_equal(snapshot_parse_domain("libc", &d), 0);
	assert_string_equal(snapshot_domain_name(d, buf), "libc");
	assert_int_equal(snapshot_parse_domain("389047", &d), 0);
	assert_string_equal(snapshot_domain_name(d, buf), "389047");
	assert_int_equal(snapshot_parse_domain("-1", &d), -EINVAL);
	assert_int_equal(snapshot_parse_domain("abc", &d), -EINVAL);
	snapshot_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_size),
		cmocka_unit_test(test_lineno_grouping_and_text),
		cmocka_unit_test(test_cumulative_counts_every_frame),
		cmocka_unit_test(test_tie_break_order),
		cmocka_unit_test(test_compare),
		cmocka_unit_test(test_traceback_format_limits),
		cmocka_unit_test(test_traceback_source_line),
		cmocka_unit_test(test_json_string),
		cmocka_unit_test(test_json_string_utf8),
		cmocka_unit_test(test_interning_and_domains),
		cmocka_unit_test(test_sources_from_sites),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
