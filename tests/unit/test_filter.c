/* filter_traces with tracemalloc's Filter and DomainFilter semantics on a
 * hand-made snapshot. Trace sizes are distinct powers of two, so the sum of
 * the kept sizes names exactly which traces a filter list keeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <errno.h>

#include "model/filter.h"
#include "model/snapshot.h"
#include "model/stats.h"

#define PY SNAPSHOT_DOMAIN_PYTHON
#define LIBC SNAPSHOT_DOMAIN_LIBC

/* Adds one trace; frames "file", line pairs, most recent first. */
static void add(struct snapshot *s, uint32_t domain, uint64_t size, int n, ...)
{
	uint32_t ids[8];
	va_list ap;

	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		const char *file = va_arg(ap, const char *);
		int line = va_arg(ap, int);

		ids[i] = (uint32_t)snapshot_intern_frame(s, file, (uint32_t)line, NULL);
	}
	va_end(ap);
	int64_t tb = snapshot_intern_traceback(s, ids, (uint32_t)n, (uint32_t)n);
	assert_true(tb >= 0);
	assert_int_equal(snapshot_add_trace(s, 0x1000 * size, size, domain, (uint32_t)tb), 0);
}

/*  T1 python  10  a.py:1
 *  T2 python  20  a.py:2 <- b.py:5
 *  T3 libc    40  b.py:5 <- a.py:1
 *  T4 7       80  c.pyc:3
 *  T5 libc   160  (no frame: <unknown>:0)
 *  T6 python 320  dir/sub/x.py:9 <- <frozen importlib._bootstrap>:100 */
static struct snapshot *sample(void)
{
	struct snapshot *s = snapshot_new();

	s->traceback_limit = 2;
	s->target.command = (uint32_t)snapshot_intern_string(s, "cmd");
	s->target.host = (uint32_t)snapshot_intern_string(s, "host");
	add(s, PY, 10, 1, "a.py", 1);
	add(s, PY, 20, 2, "a.py", 2, "b.py", 5);
	add(s, LIBC, 40, 2, "b.py", 5, "a.py", 1);
	add(s, 7, 80, 1, "c.pyc", 3);
	add(s, LIBC, 160, 0);
	add(s, PY, 320, 2, "dir/sub/x.py", 9, "<frozen importlib._bootstrap>", 100);
	snapshot_set_counter(s, "lost", 4);
	return s;
}

static uint64_t kept(const struct snapshot *s, const struct filter_list *l)
{
	struct snapshot *out;
	uint64_t sum = 0, direct = 0;

	assert_int_equal(filter_snapshot(s, l, &out), 0);
	for (uint64_t i = 0; i < out->ntraces; i++)
		sum += out->traces[i].size;
	for (uint64_t i = 0; i < s->ntraces; i++)
		direct += filter_keeps(s, l, &s->traces[i]) ? s->traces[i].size : 0;
	assert_int_equal(sum, direct);
	assert_int_equal(out->traceback_limit, s->traceback_limit);
	assert_int_equal(out->ncounters, 1);
	snapshot_free(out);
	return sum;
}

/* One filter given as (inclusive, spec, all_frames). */
static uint64_t one(const struct snapshot *s, bool inclusive, const char *spec, bool all)
{
	struct filter_list l = {0};
	uint64_t r;

	assert_int_equal(filter_add(&l, inclusive, spec, all), 0);
	r = kept(s, &l);
	filter_list_free(&l);
	return r;
}

static void test_filename_filters(void **state)
{
	struct snapshot *s = sample();
	struct filter_list none = {0};

	assert_int_equal(kept(s, &none), 630);
	assert_int_equal(one(s, true, "a.py", false), 10 + 20);
	assert_int_equal(one(s, true, "a.py:1", false), 10);
	assert_int_equal(one(s, true, "a.py", true), 10 + 20 + 40);
	assert_int_equal(one(s, true, "a.py:1", true), 10 + 40);
	assert_int_equal(one(s, false, "a.py", false), 40 + 80 + 160 + 320);
	assert_int_equal(one(s, false, "a.py", true), 80 + 160 + 320);
	assert_int_equal(one(s, false, "b.py:5", true), 10 + 80 + 160 + 320);
	/* .pyc reads .py, on either side */
	assert_int_equal(one(s, true, "c.py", false), 80);
	assert_int_equal(one(s, true, "c.pyc", false), 80);
	/* fnmatch: '*' crosses '/', '?' and sets work, case matters */
	assert_int_equal(one(s, true, "*x.py", false), 320);
	assert_int_equal(one(s, true, "dir/*", false), 320);
	assert_int_equal(one(s, true, "?.py", false), 10 + 20 + 40 + 80);
	assert_int_equal(one(s, true, "[ab].py:5", false), 40);
	assert_int_equal(one(s, true, "A.py", false), 0);
	/* all_frames reaches frames below the most recent only */
	assert_int_equal(one(s, true, "<frozen*", false), 0);
	assert_int_equal(one(s, true, "<frozen*", true), 320);
	/* a trace without frames is <unknown>:0, as in tracemalloc */
	assert_int_equal(one(s, true, "<unknown>", false), 160);
	assert_int_equal(one(s, false, "<unknown>", false), 470);
	snapshot_free(s);
}

static void test_domain_filters(void **state)
{
	struct snapshot *s = sample();
	struct filter_list l = {0};

	assert_int_equal(filter_add_domain(&l, true, PY), 0);
	assert_int_equal(kept(s, &l), 10 + 20 + 320);
	filter_list_free(&l);
	assert_int_equal(filter_add_domain(&l, false, LIBC), 0);
	assert_int_equal(kept(s, &l), 10 + 20 + 80 + 320);
	filter_list_free(&l);
	/* two inclusive domain filters: either domain */
	assert_int_equal(filter_add_domain(&l, true, 7), 0);
	assert_int_equal(filter_add_domain(&l, true, LIBC), 0);
	assert_int_equal(kept(s, &l), 40 + 80 + 160);
	filter_list_free(&l);

	/* Filter(True, "b.py", domain=libc): frames match and domain equal */
	assert_int_equal(filter_add(&l, true, "b.py", false), 0);
	assert_int_equal(filter_set_domain(&l, LIBC), 0);
	assert_int_equal(kept(s, &l), 40);
	filter_list_free(&l);
	/* Filter(False, "b.py", all_frames=True, domain=python): removes only
	 * matching traces in that domain */
	assert_int_equal(filter_add(&l, false, "b.py", true), 0);
	assert_int_equal(filter_set_domain(&l, PY), 0);
	assert_int_equal(kept(s, &l), 630 - 20);
	filter_list_free(&l);
	assert_int_equal(filter_set_domain(&l, PY), -EINVAL); /* no filter to restrict */
	assert_int_equal(filter_add_domain(&l, true, PY), 0);
	assert_int_equal(filter_set_domain(&l, PY), -EINVAL); /* not a Filter */
	filter_list_free(&l);
	snapshot_free(s);
}

static void test_combinations(void **state)
{
	struct snapshot *s = sample();
	struct filter_list l = {0}, r = {0};

	/* inclusive filters: any of them */
	assert_int_equal(filter_add(&l, true, "a.py", false), 0);
	assert_int_equal(filter_add(&l, true, "*x.py", false), 0);
	assert_int_equal(kept(s, &l), 10 + 20 + 320);
	filter_list_free(&l);
	/* an exclusive filter vetoes what an inclusive one keeps, in any order */
	assert_int_equal(filter_add(&l, true, "a.py", false), 0);
	assert_int_equal(filter_add(&l, false, "a.py:2", false), 0);
	assert_int_equal(filter_add(&r, false, "a.py:2", false), 0);
	assert_int_equal(filter_add(&r, true, "a.py", false), 0);
	assert_int_equal(kept(s, &l), 10);
	assert_int_equal(kept(s, &r), 10);
	filter_list_free(&l);
	filter_list_free(&r);
	/* several exclusive filters: each must let the trace through */
	assert_int_equal(filter_add(&l, true, "*", false), 0);
	assert_int_equal(filter_add(&l, false, "<*", false), 0);
	assert_int_equal(filter_add(&l, false, "c.py", false), 0);
	assert_int_equal(kept(s, &l), 10 + 20 + 40 + 320);
	filter_list_free(&l);
	/* filename and domain filters mixed */
	assert_int_equal(filter_add(&l, true, "b.py", true), 0);
	assert_int_equal(filter_add_domain(&l, false, LIBC), 0);
	assert_int_equal(kept(s, &l), 20);
	filter_list_free(&l);
	assert_int_equal(filter_add(&l, true, "b.py", true), 0);
	assert_int_equal(filter_add_domain(&l, true, 7), 0);
	assert_int_equal(kept(s, &l), 20 + 40 + 80);
	filter_list_free(&l);
	snapshot_free(s);
}

static void test_specs(void **state)
{
	struct filter_list l = {0};

	assert_int_equal(filter_add(&l, true, "a.py:12", false), 0);
	assert_string_equal(l.f[0].pattern, "a.py");
	assert_int_equal(l.f[0].lineno, 12);
	assert_int_equal(filter_add(&l, true, "C:weird:name.py", true), 0);
	assert_string_equal(l.f[1].pattern, "C:weird:name.py");
	assert_int_equal(l.f[1].lineno, 0);
	assert_true(l.f[1].all_frames);
	assert_int_equal(filter_add(&l, false, "x.py:", false), 0);
	assert_string_equal(l.f[2].pattern, "x.py:");
	assert_false(l.f[2].inclusive);
	assert_int_equal(filter_add(&l, true, "mod.pyc:7", false), 0);
	assert_string_equal(l.f[3].pattern, "mod.py");
	assert_int_equal(l.f[3].lineno, 7);
	assert_int_equal(filter_add(&l, true, "", false), -EINVAL);
	assert_int_equal(filter_add(&l, true, ":5", false), -EINVAL);
	assert_int_equal(filter_add(&l, true, "a.py:0", false), -EINVAL);
	assert_int_equal(filter_add(&l, true, "a.py:12345678901", false), -EINVAL);
	assert_int_equal(l.n, 4);
	filter_list_free(&l);
}

static void test_statistics_of_a_filtered_snapshot(void **state)
{
	struct snapshot *s = sample(), *out;
	struct filter_list l = {0};
	struct stats_list st;

	assert_int_equal(filter_add(&l, true, "a.py", true), 0);
	assert_int_equal(filter_snapshot(s, &l, &out), 0);
	assert_int_equal(stats_compute(out, STATS_KEY_LINENO, false, &st), 0);
	assert_int_equal(st.n, 3);
	assert_string_equal(st.entries[0].key[0].filename, "b.py");
	assert_int_equal(st.entries[0].size, 40);
	assert_string_equal(st.entries[1].key[0].filename, "a.py");
	assert_int_equal(st.entries[1].key[0].lineno, 2);
	assert_int_equal(st.entries[2].size, 10);
	stats_list_free(&st);
	assert_int_equal(stats_compute(out, STATS_KEY_FILENAME, true, &st), 0);
	/* cumulative by file: a.py in T1, T2, T3; b.py in T2, T3 */
	assert_int_equal(st.n, 2);
	assert_string_equal(st.entries[0].key[0].filename, "a.py");
	assert_int_equal(st.entries[0].size, 70);
	assert_int_equal(st.entries[1].size, 60);
	stats_list_free(&st);
	snapshot_free(out);
	filter_list_free(&l);
	snapshot_free(s);
}

/* filter_traces() leaves get_traced_memory() alone: a filtered snapshot
 * (--domain libc, --exclude ...) keeps the header's traced memory, every
 * domain's and each class's, whatever traces it keeps. */
static void test_filters_keep_traced_memory(void **state)
{
	struct snapshot *s = sample(), *out;
	struct filter_set fs = {0};
	uint64_t current, peak;

	s->traced_current = 630;
	s->traced_peak = 1000;
	s->domain_memory_known = true;
	s->domain_memory[SNAPSHOT_CLASS_PYTHON] = (struct snapshot_domain_memory){430, 700};
	s->domain_memory[SNAPSHOT_CLASS_NATIVE] = (struct snapshot_domain_memory){200, 300};
	assert_int_equal(filter_add_domain(&fs.domains, true, LIBC), 0);
	assert_int_equal(filter_add(&fs.rest, false, "b.py", false), 0);
	assert_int_equal(filter_set_apply(s, &fs, &out), 0);
	assert_int_equal(out->ntraces, 1); /* T5 */
	assert_int_equal(out->traced_current, 630);
	assert_int_equal(out->traced_peak, 1000);
	assert_true(out->domain_memory_known);
	assert_memory_equal(out->domain_memory, s->domain_memory, sizeof(s->domain_memory));
	/* the python class, though no Python-domain trace is left */
	assert_true(snapshot_traced_memory(out, &current, &peak));
	assert_int_equal(current, 430);
	assert_int_equal(peak, 700);
	snapshot_free(out);
	filter_set_free(&fs);

	/* unknown stays unknown (a snapshot file from an older tracer) */
	s->domain_memory_known = false;
	assert_int_equal(filter_add_domain(&fs.domains, true, PY), 0);
	assert_int_equal(filter_set_apply(s, &fs, &out), 0);
	assert_false(out->domain_memory_known);
	assert_false(snapshot_traced_memory(out, &current, &peak));
	assert_int_equal(current, 630);
	assert_int_equal(peak, 1000);
	snapshot_free(out);
	filter_set_free(&fs);
	snapshot_free(s);
}

/* A filtered snapshot keeps every mapping, in order (the executable's
 * first), and where each kept native frame is; the frame that only a
 * dropped trace had is gone. */
static void test_filters_keep_mappings(void **state)
{
	struct snapshot *s = snapshot_new(), *out;
	struct filter_list l = {0};
	int64_t m0 = snapshot_intern_mapping(s, "/bin/prog", "abcd", 0x1000, 0x2000, 0);
	int64_t m1 = snapshot_intern_mapping(s, "/lib/libc.so.6", NULL, 0x7000, 0x9000, 0x1000);
	int64_t f0 = snapshot_intern_native_frame(s, "/bin/prog+0x123", 0, "work", (uint32_t)m0,
						  0x1123, 0x24);
	int64_t f1 = snapshot_intern_native_frame(s, "/lib/libc.so.6+0x1200", 0, NULL, (uint32_t)m1,
						  0x7200, 0);
	uint32_t a = (uint32_t)f0, b = (uint32_t)f1;

	assert_true(m0 == 0 && m1 == 1 && f0 >= 0 && f1 >= 0);
	/* a frame must lie in its mapping, and a frame without one has no address */
	assert_int_equal(snapshot_intern_native_frame(s, "x", 0, NULL, (uint32_t)m0, 0x2000, 0),
			 -EINVAL);
	assert_int_equal(snapshot_intern_native_frame(s, "x", 0, NULL, 2, 0x1500, 0), -EINVAL);
	assert_int_equal(snapshot_intern_native_frame(s, "x", 0, NULL, SNAPSHOT_NO_MAPPING, 1, 0),
			 -EINVAL);
	assert_int_equal(snapshot_intern_mapping(s, "/x", NULL, 0x5000, 0x5000, 0), -EINVAL);
	assert_int_equal(snapshot_intern_mapping(s, "/lib/libc.so.6", NULL, 0x7000, 0x9000, 0x1000),
			 1);
	snapshot_add_trace(s, 0x10, 8, LIBC, (uint32_t)snapshot_intern_traceback(s, &a, 1, 1));
	snapshot_add_trace(s, 0x20, 8, LIBC, (uint32_t)snapshot_intern_traceback(s, &b, 1, 1));
	assert_int_equal(filter_add(&l, false, "/lib/*", false), 0);
	assert_int_equal(filter_snapshot(s, &l, &out), 0);
	assert_int_equal(out->ntraces, 1);
	assert_int_equal(out->nmappings, 2);
	assert_memory_equal(&out->mappings[1], &s->mappings[1], sizeof(s->mappings[1]));
	assert_string_equal(snapshot_string(out, out->mappings[0].path), "/bin/prog");
	assert_string_equal(snapshot_string(out, out->mappings[0].build_id), "abcd");
	assert_int_equal(out->nframes, 1);
	assert_int_equal(out->frames[0].mapping, 0);
	assert_int_equal(out->frames[0].address, 0x1123);
	assert_int_equal(out->frames[0].function_offset, 0x24);
	snapshot_free(out);
	filter_list_free(&l);
	snapshot_free(s);
}

/* The classes of domains: tracemalloc's (0 and any PyTraceMalloc_Track
 * domain) and tracer's own from 0xfffffff0. */
static void test_domain_classes(void **state)
{
	assert_int_equal(snapshot_domain_class(PY), SNAPSHOT_CLASS_PYTHON);
	assert_int_equal(snapshot_domain_class(389047), SNAPSHOT_CLASS_PYTHON); /* numpy's */
	assert_int_equal(snapshot_domain_class(0xffffffef), SNAPSHOT_CLASS_PYTHON);
	assert_int_equal(snapshot_domain_class(LIBC), SNAPSHOT_CLASS_NATIVE);
	assert_int_equal(snapshot_domain_class(0xffffffff), SNAPSHOT_CLASS_NATIVE);
	assert_string_equal(snapshot_class_name(SNAPSHOT_CLASS_PYTHON), "python");
	assert_string_equal(snapshot_class_name(SNAPSHOT_CLASS_NATIVE), "native");
	assert_null(snapshot_class_name(SNAPSHOT_NCLASSES));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_filename_filters),
	    cmocka_unit_test(test_domain_filters),
	    cmocka_unit_test(test_combinations),
	    cmocka_unit_test(test_specs),
	    cmocka_unit_test(test_statistics_of_a_filtered_snapshot),
	    cmocka_unit_test(test_filters_keep_traced_memory),
	    cmocka_unit_test(test_filters_keep_mappings),
	    cmocka_unit_test(test_domain_classes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
