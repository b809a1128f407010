/* report_snapshot/report_compare: text header lines and the JSON document
 * for a small hand-built snapshot, checked byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

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
	s->traced_current = 12897484; /* 12.3 MiB */
	s->traced_peak = 15728640;    /* 15.0 MiB */
	s->tracer_memory = 1258291;   /* 1228.8 KiB: shown as "1229 KiB" */
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

	assert_string_equal(run(s, &o),
			    "tracer: pid 4242 (./my\"prog arg), nframe 5\n"
			    "traced memory: current 12.3 MiB (12897484 B), peak 15.0 MiB (15728640 B)\n"
			    "tracer memory: 1229 KiB (1258291 B)\n"
			    "events: 123 allocations, 100 frees, 2 live traces\n"
			    "lost: allocs table full 0, stack truncated 3\n"
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
		"\"host\":\"h\"},\"nframe\":5,\"traced_memory\":{\"current\":12897484,"
		"\"peak\":15728640},\"tracer_memory\":1258291,\"events\":{\"allocations\":123,"
		"\"frees\":100},\"traces\":2,\"taken_at\":0,\"duration_ns\":0,"
		"\"counters\":{\"allocs table full\":0,\"stack truncated\":3},"
		"\"key\":\"traceback\",\"cumulative\":false,\"statistics\":[{\"frames\":["
		"{\"filename\":\"/no/such/b.c\",\"lineno\":2,\"function\":\"leaf\"},"
		"{\"filename\":\"/no/such/a.c\",\"lineno\":9,\"function\":null}],"
		"\"size\":113,\"count\":2,\"average\":56.5}]}\n");
	snapshot_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
