/* tracer serve's pure parts: the Prometheus exposition of a hand-made
 * snapshot (exact text, label values escaped, counters by kind), reason
 * identifiers, the target's comm, and traces imported from one snapshot
 * into another (a delta profile's earlier half). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "model/delta.h"
#include "model/snapshot.h"
#include "report/metrics.h"

static struct snapshot *sample(const char *command)
{
	struct snapshot *s = snapshot_new();
	int64_t m = snapshot_intern_mapping(s, "/bin/app", "abcd", 0x1000, 0x2000, 0);
	uint32_t ids[2] = {
	    (uint32_t)snapshot_intern_native_frame(s, "app.c", 3, "leaf", (uint32_t)m, 0x1010, 4),
	    (uint32_t)snapshot_intern_frame(s, "app.py", 10, "<module>")};
	uint32_t tb = (uint32_t)snapshot_intern_traceback(s, ids, 2, 2);

	s->target.pid = 42;
	s->target.command = (uint32_t)snapshot_intern_string(s, command);
	s->traced_current = 1100;
	s->traced_peak = 5000;
	s->alloc_events = 10;
	s->free_events = 8;
	s->tracer_memory = 4096;
	s->duration_ns = 2500000000ull;
	s->domain_memory_known = true;
	s->domain_memory[SNAPSHOT_CLASS_NATIVE].current = 1100;
	snapshot_add_trace(s, 0x10, 100, SNAPSHOT_DOMAIN_LIBC, tb);
	snapshot_add_trace(s, 0x20, 1000, SNAPSHOT_DOMAIN_LIBC, tb);
	snapshot_set_counter(s, "allocs table full", 3);
	snapshot_set_counter(s, "allocs table full (bytes)", 300);
	snapshot_set_counter(s, "frees of untraced blocks", 5);
	snapshot_set_counter(s, "failed allocations (NULL)", 1);
	snapshot_set_counter(s, "native stack cut: rbp lost", 2);
	snapshot_set_counter(s, "a counter tracer adds later", 7);
	return s;
}

static void test_exposition(void **state)
{
	struct snapshot *s = sample("/usr/bin/we\"ird\\na\nme --flag");
	struct metrics_info info = {.version = "1.2", .snapshot_seconds = 0.5,
				    .snapshot_age_seconds = 0.25};
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);
	const char *L = "{pid=\"42\",comm=\"we\\\"ird\\\\na\\nme\"}";
	char line[512];

	assert_int_equal(metrics_write(s, &info, f), 0);
	fclose(f);
#define HAS(...)                                                                                 \
	do {                                                                                     \
		snprintf(line, sizeof(line), __VA_ARGS__);                                      \
		assert_non_null(strstr(text, line));                                             \
	} while (0)
	HAS("# HELP tracer_traced_bytes ");
	HAS("\n# TYPE tracer_traced_bytes gauge\ntracer_traced_bytes%s 1100\n", L);
	HAS("\ntracer_traced_peak_bytes%s 5000\n", L);
	HAS("\ntracer_live_blocks%s 2\n", L);
	HAS("\n# TYPE tracer_allocations_total counter\ntracer_allocations_total%s 10\n", L);
	HAS("\ntracer_frees_total%s 8\n", L);
	HAS("\ntracer_untraced_frees_total%s 5\n", L);
	HAS("\ntracer_failed_allocations_total%s 1\n", L);
	HAS("\ntracer_lost_events_total{pid=\"42\",comm=\"we\\\"ird\\\\na\\nme\","
	    "reason=\"allocs_table_full\"} 3\n");
	/* a counter not known to metrics.c is counted as lost: nothing hidden */
	HAS("reason=\"a_counter_tracer_adds_later\"} 7\n");
	HAS("\ntracer_lost_bytes_total{pid=\"42\",comm=\"we\\\"ird\\\\na\\nme\","
	    "reason=\"allocs_table_full\"} 300\n");
	HAS("\ntracer_degraded_events_total{pid=\"42\",comm=\"we\\\"ird\\\\na\\nme\","
	    "reason=\"native_stack_cut_rbp_lost\"} 2\n");
	/* traced, untraced frees, failed and lost */
	HAS("\ntracer_probe_hits_total%s %d\n", L, 10 + 8 + 5 + 1 + 3 + 7);
	HAS("\ntracer_traced_class_bytes{pid=\"42\",comm=\"we\\\"ird\\\\na\\nme\",class=\"native\"} "
	    "1100\n");
	HAS("\ntracer_tracing_seconds%s 2.500\n", L);
	HAS("\ntracer_memory_bytes 4096\n");
	HAS("\ntracer_snapshot_build_seconds 0.500000\n");
	HAS("\ntracer_build_info{version=\"1.2\"} 1\n");
	assert_null(strstr(text, "(bytes)"));
	/* every family once */
	{
		const char *p = strstr(text, "# TYPE tracer_lost_events_total");

		assert_non_null(p);
		assert_null(strstr(p + 1, "# TYPE tracer_lost_events_total"));
	}
	free(text);
	snapshot_free(s);
}

/* --budget: the coverage and what it means, with the cgroup label */
static void test_budget_and_cgroup(void **state)
{
	struct snapshot *s = sample("app");
	const char *L = "{pid=\"42\",comm=\"app\",cgroup=\"/system.slice/a\\\"b.service\"}";
	char *text = NULL, line[512];
	size_t n = 0;
	FILE *f;

	/* without a budget: everything covered */
	f = open_memstream(&text, &n);
	assert_int_equal(metrics_write(s, NULL, f), 0);
	fclose(f);
	assert_non_null(strstr(text, "\ntracer_coverage_ratio{pid=\"42\",comm=\"app\"} 1.000000\n"));
	assert_null(strstr(text, "tracer_budget_ratio"));
	free(text);
	snprintf(s->target.cgroup, sizeof(s->target.cgroup), "/system.slice/a\"b.service");
	s->budget = (struct snapshot_budget){.on = true, .ratio = 0.05, .coverage = 0.25,
					     .overhead = 0.0425, .windows = 7};
	text = NULL;
	f = open_memstream(&text, &n);
	assert_int_equal(metrics_write(s, NULL, f), 0);
	fclose(f);
	snprintf(line, sizeof(line), "\ntracer_traced_bytes%s 1100\n", L);
	assert_non_null(strstr(text, line));
	snprintf(line, sizeof(line), "\ntracer_coverage_ratio%s 0.250000\n", L);
	assert_non_null(strstr(text, line));
	assert_non_null(strstr(text, "\ntracer_budget_ratio 0.05\n"));
	assert_non_null(strstr(text, "\ntracer_overhead_ratio 0.042500\n"));
	assert_non_null(strstr(text, "\ntracer_budget_frees_windowed 0\n"));
	assert_non_null(strstr(text, "\ntracer_budget_windows_total 7\n"));
	free(text);
	snapshot_budget_line(s, line, sizeof(line));
	assert_string_equal(line, "budget 5%: allocations traced in windows, 25.0% of the time (7 "
				  "windows), estimated overhead 4.25%; alloc figures count the "
				  "windows' allocations (unscaled: divide by the coverage 0.2500 to "
				  "estimate all); the live set is the blocks allocated within "
				  "windows and not freed since");
	s->budget.on = false;
	snapshot_budget_line(s, line, sizeof(line));
	assert_string_equal(line, "");
	snapshot_free(s);
}

static void test_identifier_and_comm(void **state)
{
	char id[32], comm[SNAPSHOT_COMM_LEN];
	struct snapshot *s = sample("/usr/lib/a-very-long-program-name x");

	metrics_identifier("native stack cut: CFI not followed (x)", id, sizeof(id));
	assert_string_equal(id, "native_stack_cut_cfi_not_follo");
	metrics_identifier("  Allocs --- Full  ", id, sizeof(id));
	assert_string_equal(id, "allocs_full");
	metrics_identifier("()", id, sizeof(id));
	assert_string_equal(id, "unnamed");
	assert_string_equal(snapshot_comm(s, comm), "a-very-long-pro");
	snapshot_free(s);
	s = snapshot_new();
	s->target.command = SNAPSHOT_NO_STRING;
	assert_string_equal(snapshot_comm(s, comm), "");
	snapshot_free(s);
}

static void test_import(void **state)
{
	struct snapshot *a = sample("app"), *b = sample("app"), *d = snapshot_new();

	b->traces[1].size = 2000;
	assert_int_equal(snapshot_import_traces(d, a), 0);
	assert_int_equal(snapshot_import_traces(d, b), 0);
	assert_int_equal(d->ntraces, 4);
	/* the same traceback, frames and mapping: interned once */
	assert_int_equal(d->ntracebacks, 1);
	assert_int_equal(d->nframes, 2);
	assert_int_equal(d->nmappings, 1);
	assert_int_equal(d->traces[3].size, 2000);
	assert_int_equal(d->traces[3].traceback, 0);
	{
		const struct snapshot_frame *f = snapshot_frame_at(d, &d->tracebacks[0], 0);

		assert_string_equal(snapshot_string(d, f->function), "leaf");
		assert_int_equal(f->address, 0x1010);
		assert_int_equal(f->function_offset, 4);
		assert_string_equal(snapshot_string(d, d->mappings[f->mapping].build_id), "abcd");
		f = snapshot_frame_at(d, &d->tracebacks[0], 1);
		assert_int_equal(f->mapping, SNAPSHOT_NO_MAPPING);
		assert_int_equal(f->lineno, 10);
	}
	snapshot_free(a);
	snapshot_free(b);
	snapshot_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exposition),
	    cmocka_unit_test(test_budget_and_cgroup),
	    cmocka_unit_test(test_identifier_and_comm),
	    cmocka_unit_test(test_import),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
