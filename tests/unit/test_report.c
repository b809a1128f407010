/* report_snapshot/report_compare: text header lines and the JSON document
 * for a small hand-built snapshot, checked byte for byte; traced memory for
 * a Python process (both classes of domains), a C one (libc only) and a
 * snapshot file that predates the figures by domain. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "model/snapfile.h"
#include "report/counters.h"
#include "report/report.h"

static struct snapshot *make(void)
{
	struct snapshot *s = snapshot_new();
	uint32_t f[2], tb;

	assert_non_null(s);
	s->target.pid = 4242;
	s->target.command = (uint32_t)snapshot_intern_string(s, "./my\"prog arg");
	s->target.host = (uint32_t)snapshot_intern_string(s, "h");
	s->target.start_time = 7;
	s->traceback_limit = 5;
	/* a Python process: 113 B live in domain 0, the rest in libc */
	s->traced_current = 12897484; /* 12.3 MiB */
	s->traced_peak = 15728640;    /* 15.0 MiB */
	s->domain_memory_known = true;
	s->domain_memory[SNAPSHOT_CLASS_PYTHON] = (struct snapshot_domain_memory){113, 4096};
	s->domain_memory[SNAPSHOT_CLASS_NATIVE] =
	    (struct snapshot_domain_memory){12897484 - 113, 15728640 - 4096};
	s->tracer_memory = 1258291; /* 1228.8 KiB: shown as "1229 KiB" */
	s->alloc_events = 123;
	s->free_events = 100;
	f[0] = (uint32_t)snapshot_intern_frame(s, "/no/such/b.c", 2, "leaf");
	f[1] = (uint32_t)snapshot_intern_frame(s, "/no/such/a.c", 9, NULL);
	tb = (uint32_t)snapshot_intern_traceback(s, f, 2, 2);
	assert_int_equal(snapshot_add_trace(s, 0x1000, 100, 0, tb), 0);
	assert_int_equal(snapshot_add_trace(s, 0x2000, 13, 0, tb), 0);
	assert_int_equal(snapshot_set_counter(s, "allocs table full", 0), 0);
	assert_int_equal(snapshot_set_counter(s, "stack truncated", 3), 0);
	return s;
}

static char buf[8192];

static const char *run(const struct snapshot *s, const struct report_options *o)
{
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	assert_int_equal(report_snapshot(f, s, o), 0);
	fputc('\0', f);
	fclose(f);
	return buf;
}

static void test_text(void **state)
{
	struct snapshot *s = make();
	struct report_options o = {.format = REPORT_TEXT, .key = STATS_KEY_LINENO, .top = 10};

	assert_string_equal(
	    run(s, &o), "tracer: pid 4242 (./my\"prog arg), nframe 5\n"
			"traced memory: current 113 B (113 B), peak 4096 B (4096 B)\n"
			"traced memory by domain: python current 113 B (113 B), peak 4096 B "
			"(4096 B); native (libc) current 12.3 MiB (12897371 B), peak 15.0 MiB "
			"(15724544 B); all domains current 12.3 MiB (12897484 B), peak 15.0 MiB "
			"(15728640 B)\n"
			"tracer memory: 1229 KiB (1258291 B)\n"
			"events: 123 allocations, 100 frees, 2 live traces\n"
			"lost: 3 stack truncated\n"
			"top 1 lineno statistics:\n"
			"/no/such/b.c:2: size=113 B, count=2, average=56 B\n");
	o.cumulative = true;
	o.top = 0;
	assert_non_null(strstr(run(s, &o), "top 2 lineno statistics (cumulative):\n"
					   "/no/such/b.c:2: size=113 B, count=2, average=56 B\n"
					   "/no/such/a.c:9: size=113 B, count=2, average=56 B\n"));
	o.cumulative = false;
	o.key = STATS_KEY_TRACEBACK;
	assert_non_null(strstr(run(s, &o), "top 1 traceback statistics:\n"
					   "/no/such/a.c:9: size=113 B, count=2, average=56 B\n"
					   "  File \"/no/such/a.c\", line 9\n"
					   "  File \"/no/such/b.c\", line 2\n"));
	o.cumulative = true;
	{
		FILE *f = fmemopen(buf, sizeof(buf), "w");

		assert_int_equal(report_snapshot(f, s, &o), -EINVAL);
		fclose(f);
	}
	snapshot_free(s);
}

static void test_json(void **state)
{
	struct snapshot *s = make();
	struct report_options o = {.format = REPORT_JSON, .key = STATS_KEY_TRACEBACK};

	assert_string_equal(
	    run(s, &o),
	    "{\"target\":{\"pid\":4242,\"command\":\"./my\\\"prog arg\",\"start_time\":7,"
	    "\"host\":\"h\"},\"nframe\":5,\"traced_memory\":{\"current\":113,\"peak\":4096,"
	    "\"of\":\"python\",\"python\":{\"current\":113,\"peak\":4096},"
	    "\"native\":{\"current\":12897371,\"peak\":15724544},"
	    "\"all\":{\"current\":12897484,\"peak\":15728640}},\"tracer_memory\":1258291,"
	    "\"events\":{\"allocations\":123,"
	    "\"frees\":100},\"traces\":2,\"taken_at\":0,\"duration_ns\":0,\"budget\":null,"
	    "\"losses\":{\"allocs_table_full\":0,\"stack_truncated\":3},\"notes\":{},"
	    "\"key\":\"traceback\",\"cumulative\":false,\"source\":\"size\","
	    "\"older_than_ns\":0,\"statistics\":[{\"frames\":["
	    "{\"filename\":\"/no/such/b.c\",\"lineno\":2,\"function\":\"leaf\","
	    "\"binary\":null,\"function_offset\":null},"
	    "{\"filename\":\"/no/such/a.c\",\"lineno\":9,\"function\":null,"
	    "\"binary\":null,\"function_offset\":null}],\"title_frame\":1,"
	    "\"size\":113,\"count\":2,\"average\":56.5,\"live\":{\"size\":113,\"count\":2},"
	    "\"peak\":null,\"allocations\":null,\"temporary\":null,\"max_age_ns\":null}]}\n");
	snapshot_free(s);
}

/* Native frames without a source line (a binary without debug
 * information) name their function: "binary: function+0xOFFSET" where
 * tracemalloc's "file:line" goes, in statistics, tracebacks, JSON and
 * get_object_traceback; "binary+0xOFFSET" where no symbol covers the
 * address. They group by address for 'lineno' and by binary for
 * 'filename'; a frame with a source line, a Python frame and a frame of an
 * older file (no mapping) read as before. */
static struct snapshot *make_native(void)
{
	struct snapshot *s = snapshot_new();
	int64_t m = snapshot_intern_mapping(s, "/usr/bin/redis-server", "ab12", 0x555500001000,
					    0x555500100000, 0x1000);
	uint32_t f[4], tb1, tb2;

	s->traceback_limit = 3;
	s->target.command = (uint32_t)snapshot_intern_string(s, "redis-server");
	s->target.host = s->target.command;
	f[0] = (uint32_t)snapshot_intern_native_frame(s, "/usr/bin/redis-server+0x7bc18", 0,
						      "zmalloc_usable", (uint32_t)m, 0x55550007cc18,
						      0x19);
	f[1] = (uint32_t)snapshot_intern_native_frame(s, "/usr/bin/redis-server+0x7c000", 0, NULL,
						      (uint32_t)m, 0x55550007d000, 0);
	f[2] = (uint32_t)snapshot_intern_native_frame(s, "server.c", 7, "main", (uint32_t)m,
						      0x555500002000, 0x30);
	f[3] = (uint32_t)snapshot_intern_frame(s, "/old/file+0x10", 0, "old"); /* an older file */
	tb1 = (uint32_t)snapshot_intern_traceback(s, f, 3, 3);
	tb2 = (uint32_t)snapshot_intern_traceback(s, &f[1], 1, 1);
	assert_int_equal(snapshot_add_trace(s, 0x1000, 100, SNAPSHOT_DOMAIN_LIBC, tb1), 0);
	assert_int_equal(snapshot_add_trace(s, 0x2000, 40, SNAPSHOT_DOMAIN_LIBC, tb2), 0);
	assert_int_equal(snapshot_add_trace(s, 0x3000, 1, SNAPSHOT_DOMAIN_LIBC,
					    (uint32_t)snapshot_intern_traceback(s, &f[3], 1, 1)),
			 0);
	return s;
}

static void test_native_without_lines(void **state)
{
	struct snapshot *s = make_native();
	struct report_options o = {.format = REPORT_TEXT, .key = STATS_KEY_LINENO};

	assert_non_null(strstr(run(s, &o),
			       "top 3 lineno statistics:\n"
			       "/usr/bin/redis-server: zmalloc_usable+0x19: size=100 B, "
			       "count=1, average=100 B\n"
			       "/usr/bin/redis-server+0x7c000: size=40 B, count=1, "
			       "average=40 B\n"
			       "/old/file+0x10:0: size=1 B, count=1, average=1 B\n"));
	o.cumulative = true;
	assert_non_null(strstr(run(s, &o),
			       "/usr/bin/redis-server+0x7c000: size=140 B, count=2, "
			       "average=70 B\n"
			       "server.c:7: size=100 B, count=1, average=100 B\n"
			       "/usr/bin/redis-server: zmalloc_usable+0x19: size=100 B"));
	/* a binary is a file: one statistic, counted once per frame in it */
	o.key = STATS_KEY_FILENAME;
	assert_non_null(strstr(run(s, &o), "top 3 filename statistics (cumulative):\n"
					   "/usr/bin/redis-server:0: size=240 B, count=3, "
					   "average=80 B\n"
					   "server.c:0: size=100 B, count=1, average=100 B\n"
					   "/old/file+0x10:0: size=1 B"));
	o.cumulative = false;
	o.key = STATS_KEY_TRACEBACK;
	assert_non_null(strstr(run(s, &o),
			       "top 3 traceback statistics:\n"
			       "server.c:7: size=100 B, count=1, average=100 B\n"
			       "  File \"server.c\", line 7\n"
			       "  File \"/usr/bin/redis-server+0x7c000\"\n"
			       "  File \"/usr/bin/redis-server\", in zmalloc_usable+0x19\n"
			       "/usr/bin/redis-server+0x7c000: size=40 B"));
	o.format = REPORT_JSON;
	assert_non_null(strstr(
	    run(s, &o), "{\"frames\":[{\"filename\":\"/usr/bin/redis-server+0x7bc18\",\"lineno\":0,"
			"\"function\":\"zmalloc_usable\",\"binary\":\"/usr/bin/redis-server\","
			"\"function_offset\":25},{\"filename\":\"/usr/bin/redis-server+0x7c000\","
			"\"lineno\":0,\"function\":null,\"binary\":\"/usr/bin/redis-server\","
			"\"function_offset\":null},{\"filename\":\"server.c\",\"lineno\":7,"
			"\"function\":\"main\",\"binary\":null,\"function_offset\":null}]"));
	{
		FILE *f = fmemopen(buf, sizeof(buf), "w");

		assert_int_equal(report_address(f, s, 0x1010), 0);
		fputc('\0', f);
		fclose(f);
		assert_string_equal(buf,
				    "0x1010: offset 16 in a block of 100 B (100 B) at 0x1000, "
				    "domain libc, allocated at:\n"
				    "  File \"/usr/bin/redis-server\", in zmalloc_usable+0x19\n"
				    "  File \"/usr/bin/redis-server+0x7c000\"\n"
				    "  File \"server.c\", line 7, in main\n");
	}
	snapshot_free(s);
}

/* The header's traced memory lines: the text from "traced memory:" to
 * "tracer memory:", and the JSON object "traced_memory". */
static const char *text_memory_lines(const struct snapshot *s)
{
	static char lines[1024];
	struct report_options o = {.format = REPORT_TEXT, .key = STATS_KEY_LINENO, .top = 1};
	const char *all = run(s, &o), *from = strstr(all, "traced memory:"),
		   *to = strstr(all, "tracer memory:");

	assert_non_null(from);
	assert_non_null(to);
	assert_true(to > from && (size_t)(to - from) < sizeof(lines));
	memcpy(lines, from, (size_t)(to - from));
	lines[to - from] = 0;
	return lines;
}

static const char *json_memory(const struct snapshot *s)
{
	static char obj[1024];
	struct report_options o = {.format = REPORT_JSON, .key = STATS_KEY_LINENO, .top = 1};
	const char *all = run(s, &o), *from = strstr(all, "\"traced_memory\":"),
		   *to = strstr(all, ",\"tracer_memory\":");

	assert_non_null(from);
	assert_non_null(to);
	assert_true(to > from && (size_t)(to - from) < sizeof(obj));
	memcpy(obj, from, (size_t)(to - from));
	obj[to - from] = 0;
	return obj;
}

/* A C process: no Python-domain block ever, so the first line is every
 * domain's figure (all of it libc's). */
static void test_libc_only(void **state)
{
	struct snapshot *s = make();

	s->domain_memory[SNAPSHOT_CLASS_PYTHON] = (struct snapshot_domain_memory){0, 0};
	s->domain_memory[SNAPSHOT_CLASS_NATIVE] =
	    (struct snapshot_domain_memory){12897484, 15728640};
	assert_string_equal(
	    text_memory_lines(s),
	    "traced memory: current 12.3 MiB (12897484 B), peak 15.0 MiB (15728640 B)\n"
	    "traced memory by domain: python current 0 B (0 B), peak 0 B (0 B); native (libc) "
	    "current 12.3 MiB (12897484 B), peak 15.0 MiB (15728640 B); all domains current "
	    "12.3 MiB (12897484 B), peak 15.0 MiB (15728640 B)\n");
	assert_string_equal(json_memory(s),
			    "\"traced_memory\":{\"current\":12897484,\"peak\":15728640,\"of\":"
			    "\"all\",\"python\":{\"current\":0,\"peak\":0},\"native\":{"
			    "\"current\":12897484,\"peak\":15728640},\"all\":{\"current\":"
			    "12897484,\"peak\":15728640}}");
	/* Python blocks all freed again: still a Python process (its peak), and
	 * the first line is the python class, current 0 */
	s->domain_memory[SNAPSHOT_CLASS_PYTHON] = (struct snapshot_domain_memory){0, 640};
	assert_non_null(
	    strstr(text_memory_lines(s), "traced memory: current 0 B (0 B), peak 640 B (640 B)\n"));
	assert_non_null(strstr(json_memory(s), "\"of\":\"python\""));
	snapshot_free(s);
}

/* A snapshot file written before the figures by domain (no domain memory
 * section) loads with them unknown: the first line is every domain's, the
 * second says the file does not have them; JSON gives null. */
static void test_old_file(void **state)
{
	struct snapshot *s = make(), *t;
	char err[256] = "";
	void *buf;
	size_t len;

	s->domain_memory_known = false; /* what an older tracer wrote: 7 sections */
	assert_int_equal(snapfile_encode(s, &buf, &len), 0);
	assert_int_equal(((unsigned char *)buf)[12], 7);
	assert_int_equal(snapfile_decode(buf, len, &t, err, sizeof(err)), 0);
	assert_false(t->domain_memory_known);
	assert_string_equal(
	    text_memory_lines(t),
	    "traced memory: current 12.3 MiB (12897484 B), peak 15.0 MiB (15728640 B)\n"
	    "traced memory by domain: not in this snapshot file (written by an older tracer); "
	    "the line above counts all domains\n");
	assert_string_equal(json_memory(t),
			    "\"traced_memory\":{\"current\":12897484,\"peak\":15728640,\"of\":"
			    "\"all\",\"python\":null,\"native\":null,\"all\":{\"current\":"
			    "12897484,\"peak\":15728640}}");
	free(buf);
	snapshot_free(t);

	/* and a file that has them gives them back */
	s->domain_memory_known = true;
	assert_int_equal(snapfile_encode(s, &buf, &len), 0);
	assert_int_equal(snapfile_decode(buf, len, &t, err, sizeof(err)), 0);
	assert_true(t->domain_memory_known);
	{
		char *from_file = strdup(text_memory_lines(t));

		assert_string_equal(from_file, text_memory_lines(s));
		assert_non_null(strstr(from_file, "; native (libc) current 12.3 MiB (12897371 B)"));
		free(from_file);
	}
	free(buf);
	snapshot_free(t);
	snapshot_free(s);
}

/* tracer compare: each snapshot's header with its own figures. */
static void test_compare_headers(void **state)
{
	struct snapshot *old_snap = make(), *new_snap = make();
	struct report_options o = {.format = REPORT_TEXT, .key = STATS_KEY_LINENO, .top = 1};
	FILE *f = fmemopen(buf, sizeof(buf), "w");
	const char *p;

	old_snap->domain_memory_known = false;
	assert_int_equal(report_compare(f, old_snap, new_snap, &o), 0);
	fputc('\0', f);
	fclose(f);
	p = strstr(buf, "old snapshot\n");
	assert_non_null(p);
	assert_non_null(strstr(p,
			       "traced memory: current 12.3 MiB (12897484 B), peak 15.0 MiB "
			       "(15728640 B)\ntraced memory by domain: not in this snapshot file"));
	p = strstr(p, "new snapshot\n");
	assert_non_null(p);
	assert_non_null(strstr(p, "traced memory: current 113 B (113 B), peak 4096 B (4096 B)\n"
				  "traced memory by domain: python current 113 B"));
	snapshot_free(old_snap);
	snapshot_free(new_snap);
}

/* The counters: losses apart from notes; the text shows only the nonzero
 * ones, in words, wrapped under their label (a full allocation table's
 * bytes beside its count); JSON has every one by an identifier key. Names
 * of older tracers, the CFI breakdown and names no tracer wrote are shown
 * too (the last two keyed by their words made identifiers). */
static void test_counters(void **state)
{
	struct snapshot *s = make();
	struct report_options o = {.format = REPORT_TEXT, .key = STATS_KEY_LINENO, .top = 1};
	const char *out, *from, *to;

	assert_int_equal(snapshot_set_counter(s, "allocs table full", 12), 0);
	assert_int_equal(snapshot_set_counter(s, "allocs table full (bytes)", 49152), 0);
	assert_int_equal(snapshot_set_counter(s, "frees of untraced blocks", 8), 0);
	assert_int_equal(snapshot_set_counter(s, "native stack cut: no CFI for the address", 3), 0);
	assert_int_equal(
	    snapshot_set_counter(s, "native stack cut: CFI not followed (signal frame)", 2), 0);
	assert_int_equal(snapshot_set_counter(s, "return without entry", 0), 0);
	assert_int_equal(snapshot_set_counter(s, "stack ended early (no frame pointer)", 1), 0);
	assert_int_equal(snapshot_set_counter(s, "events after Python finalization (not applied)", 0),
			 0);
	assert_int_equal(snapshot_set_counter(s, "Odd\x1b[2Jname", 4), 0);
	out = run(s, &o);
	from = strstr(out, "lost: ");
	to = strstr(out, "top 1 lineno");
	assert_non_null(from);
	assert_non_null(to);
	assert_memory_equal(
	    from,
	    "lost: 12 allocations (48.0 KiB) not traced (allocation table full: --max-allocs), "
	    "3 stack truncated,\n"
	    "      3 native stacks cut (no CFI), 2 native stacks cut (CFI not followed: signal "
	    "frame),\n"
	    "      1 native stacks cut (no frame pointer), 4 Odd\\x1b[2Jname\n"
	    "notes: 8 frees of blocks not traced (ignored)\n",
	    (size_t)(to - from));
	for (const char *p = from; p < to; p++)
		if (*p != '\n')
			assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
	o.format = REPORT_JSON;
	assert_non_null(strstr(
	    run(s, &o),
	    ",\"losses\":{\"allocs_table_full\":12,\"stack_truncated\":3,"
	    "\"allocs_table_full_bytes\":49152,\"native_stack_cut_no_cfi\":3,"
	    "\"native_stack_cut_cfi_not_followed_signal_frame\":2,\"return_without_entry\":0,"
	    "\"stack_ended_early\":1,\"odd_2jname\":4},"
	    "\"notes\":{\"frees_of_untraced_blocks\":8,\"events_after_python_finalization\":0},"));
	snapshot_free(s);

	/* nothing lost, nothing noted: neither line */
	s = make();
	assert_int_equal(snapshot_set_counter(s, "stack truncated", 0), 0);
	assert_int_equal(snapshot_set_counter(s, "frees of untraced blocks", 0), 0);
	o.format = REPORT_TEXT;
	out = run(s, &o);
	assert_null(strstr(out, "lost"));
	assert_null(strstr(out, "notes"));
	assert_non_null(strstr(out, "live traces\ntop 1 lineno statistics:\n"));
	snapshot_free(s);
}

/* Every name the collector sets has a key, a kind and words of its own
 * (none falls back to its name made an identifier), and no two share a
 * key. */
static void test_counter_table(void **state)
{
	struct counter_info a, b;
	const char *name;

	for (size_t i = 0; (name = counter_known_name(i)); i++) {
		counter_describe(name, &a);
		for (const char *k = a.key; *k; k++)
			assert_true((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '_');
		assert_string_not_equal(a.text, name);
		for (size_t j = 0; j < i; j++) {
			counter_describe(counter_known_name(j), &b);
			assert_string_not_equal(a.key, b.key);
		}
	}
	counter_describe("frees of untraced blocks", &a);
	assert_int_equal(a.kind, COUNTER_NOTE);
	counter_describe("allocs table full", &a);
	assert_int_equal(a.kind, COUNTER_LOSS);
	counter_describe("", &a);
	assert_string_equal(a.key, "counter");
	assert_int_equal(a.kind, COUNTER_LOSS);
}

/* Names from the target are hostile: control characters (C0, DEL, C1), a
 * bidirectional override and invalid UTF-8 never reach a terminal raw
 * (\xNN per byte), valid UTF-8 does; JSON escapes them as \uXXXX (invalid
 * bytes as U+FFFD). */
static void test_hostile_names(void **state)
{
	struct snapshot *s = snapshot_new();
	struct report_options o = {.format = REPORT_TEXT, .key = STATS_KEY_TRACEBACK};
	const char *file = "/tmp/\x1b[31mred\n\xc3\xa9\xff\xc2\x9b\xe2\x80\xae.c";
	uint32_t f;
	const char *out;

	s->traceback_limit = 1;
	s->target.command = (uint32_t)snapshot_intern_string(s, "cmd\x1b]0;title\x07");
	s->target.host = s->target.command;
	f = (uint32_t)snapshot_intern_frame(s, file, 3, "fn\x7f");
	assert_int_equal(
	    snapshot_add_trace(s, 0x10, 8, 0, (uint32_t)snapshot_intern_traceback(s, &f, 1, 1)),
	    0);
	out = run(s, &o);
	assert_non_null(strstr(out, "tracer: pid 0 (cmd\\x1b]0;title\\x07), nframe 1\n"));
	assert_non_null(strstr(out, "/tmp/\\x1b[31mred\\x0a\xc3\xa9\\xff\\xc2\\x9b\\xe2\\x80\\xae.c:3: "
				    "size=8 B, count=1, average=8 B\n"
				    "  File \"/tmp/\\x1b[31mred\\x0a\xc3\xa9\\xff\\xc2\\x9b\\xe2\\x80"
				    "\\xae.c\", line 3\n"));
	for (const char *p = out; *p; p++)
		if (*p != '\n')
			assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
	assert_null(strstr(out, "\xc2\x9b"));
	assert_null(strstr(out, "\xe2\x80\xae"));
	o.format = REPORT_JSON;
	out = run(s, &o);
	assert_non_null(strstr(out, "\"command\":\"cmd\\u001b]0;title\\u0007\""));
	assert_non_null(strstr(out, "{\"filename\":\"/tmp/\\u001b[31mred\\n\xc3\xa9\\ufffd\\u009b"
				    "\\u202e.c\",\"lineno\":3,\"function\":\"fn\\u007f\""));
	for (const char *p = out; *p; p++)
		if (*p != '\n')
			assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
	snapshot_free(s);
}

/* A source line is the target's text too: escaped, but for its inner
 * tabs (alignment, harmless on a terminal). */
static void test_hostile_source_line(void **state)
{
	struct snapshot *s = snapshot_new();
	struct report_options o = {.format = REPORT_TEXT, .key = STATS_KEY_TRACEBACK};
	char path[] = "/tmp/tracer-test-source-XXXXXX";
	int fd = mkstemp(path);
	uint32_t f;
	const char *text = "\tint x;\t/* c */\x1b[2J\r\n";

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	s->traceback_limit = 1;
	s->target.command = (uint32_t)snapshot_intern_string(s, "cmd");
	s->target.host = s->target.command;
	f = (uint32_t)snapshot_intern_frame(s, path, 1, NULL);
	assert_int_equal(
	    snapshot_add_trace(s, 0x10, 8, 0, (uint32_t)snapshot_intern_traceback(s, &f, 1, 1)),
	    0);
	assert_non_null(strstr(run(s, &o), ", line 1\n    int x;\t/* c */\\x1b[2J\n"));
	unlink(path);
	snapshot_free(s);
}

/* A traceback statistic is titled by its oldest frame (tracemalloc's
 * rule) unless that is runtime (startup, libc, the C++ runtime ...): then
 * by the most recent frame of the program's own code. */
static void test_traceback_title(void **state)
{
	struct snapshot *s = snapshot_new();
	int64_t exe = snapshot_intern_mapping(s, "/usr/bin/app", NULL, 0x400000, 0x500000, 0);
	int64_t libc = snapshot_intern_mapping(s, "/usr/lib/x86_64-linux-gnu/libc.so.6", NULL,
					       0x7f0000000000, 0x7f0000100000, 0);
	struct report_options o = {.format = REPORT_TEXT, .key = STATS_KEY_TRACEBACK};
	uint32_t f[6];
	const char *out;

	s->traceback_limit = 8;
	s->target.command = (uint32_t)snapshot_intern_string(s, "app");
	s->target.host = s->target.command;
	/* most recent first: libc's own allocation, the program's site, its
	 * caller, then startup */
	f[0] = (uint32_t)snapshot_intern_native_frame(s, "libio/filedoalloc.c", 101,
						      "_IO_file_doallocate", (uint32_t)libc,
						      0x7f0000001000, 0x10);
	f[1] = (uint32_t)snapshot_intern_native_frame(s, "/src/app.c", 24, "alloc", (uint32_t)exe,
						      0x401000, 0x8);
	f[2] = (uint32_t)snapshot_intern_native_frame(s, "/src/app.c", 112, "main", (uint32_t)exe,
						      0x401100, 0x8);
	f[3] = (uint32_t)snapshot_intern_native_frame(s, "sysdeps/nptl/libc_start_call_main.h", 58,
						      "__libc_start_call_main", (uint32_t)libc,
						      0x7f0000002000, 0x10);
	f[4] = (uint32_t)snapshot_intern_native_frame(s, "/usr/bin/app+0x1021", 0, "_start",
						      (uint32_t)exe, 0x401021, 0x21);
	assert_int_equal(
	    snapshot_add_trace(s, 0x10, 100, SNAPSHOT_DOMAIN_LIBC,
			       (uint32_t)snapshot_intern_traceback(s, f, 5, 5)),
	    0);
	/* cut at nframe 2: its oldest frame is the program's, as tracemalloc */
	assert_int_equal(
	    snapshot_add_trace(s, 0x20, 50, SNAPSHOT_DOMAIN_LIBC,
			       (uint32_t)snapshot_intern_traceback(s, &f[1], 2, 2)),
	    0);
	/* all runtime: the oldest */
	assert_int_equal(
	    snapshot_add_trace(s, 0x30, 10, SNAPSHOT_DOMAIN_LIBC,
			       (uint32_t)snapshot_intern_traceback(s, (uint32_t[]){f[0], f[3]}, 2, 2)),
	    0);
	/* a frame of an older file (no mapping) in libc's startup file */
	f[5] = (uint32_t)snapshot_intern_frame(s, "./csu/../sysdeps/nptl/libc_start_call_main.h", 58,
					       NULL);
	assert_int_equal(
	    snapshot_add_trace(s, 0x40, 5, SNAPSHOT_DOMAIN_LIBC,
			       (uint32_t)snapshot_intern_traceback(s, (uint32_t[]){f[1], f[5]}, 2, 2)),
	    0);
	out = run(s, &o);
	assert_non_null(strstr(out, "top 4 traceback statistics:\n"
				    "/src/app.c:24: size=100 B, count=1, average=100 B\n"
				    "  File \"/usr/bin/app\", in _start+0x21\n"));
	assert_non_null(strstr(out, "\n/src/app.c:112: size=50 B, count=1, average=50 B\n"));
	assert_non_null(strstr(out, "\nsysdeps/nptl/libc_start_call_main.h:58: size=10 B, count=1"));
	assert_non_null(strstr(out, "\n/src/app.c:24: size=5 B, count=1"));
	o.format = REPORT_JSON;
	out = run(s, &o);
	assert_non_null(strstr(out, "],\"title_frame\":1,\"size\":100,"));
	assert_non_null(strstr(out, "],\"title_frame\":1,\"size\":50,"));
	assert_non_null(strstr(out, "],\"title_frame\":1,\"size\":10,"));
	assert_non_null(strstr(out, "],\"title_frame\":0,\"size\":5,"));
	snapshot_free(s);
}

/* --color: headers, sizes and the lost label in ANSI styles; none without. */
static void test_color(void **state)
{
	struct snapshot *s = make();
	struct report_options o = {.format = REPORT_TEXT, .key = STATS_KEY_LINENO, .top = 1};

	assert_null(strchr(run(s, &o), '\x1b'));
	o.color = true;
	assert_non_null(strstr(run(s, &o), "\x1b[1mtracer: pid 4242 (./my\"prog arg), nframe 5\x1b[0m\n"));
	assert_non_null(strstr(buf, "\x1b[1;31mlost:\x1b[0m 3 stack truncated\n"
				    "\x1b[1mtop 1 lineno statistics:\x1b[0m\n"
				    "/no/such/b.c:2: size=\x1b[1m113 B\x1b[0m, count=2, average=56 B\n"));
	snapshot_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_text),
	    cmocka_unit_test(test_json),
	    cmocka_unit_test(test_libc_only),
	    cmocka_unit_test(test_old_file),
	    cmocka_unit_test(test_compare_headers),
	    cmocka_unit_test(test_native_without_lines),
	    cmocka_unit_test(test_counters),
	    cmocka_unit_test(test_counter_table),
	    cmocka_unit_test(test_hostile_names),
	    cmocka_unit_test(test_hostile_source_line),
	    cmocka_unit_test(test_traceback_title),
	    cmocka_unit_test(test_color),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
