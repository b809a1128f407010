/* Snapshots of several processes, built by hand: -k process, --pid and
 * --comm, each process's section of the text report and document of the
 * JSON one, pprof's labels, collapsed stacks by process, the snapshot file's
 * processes sections (version 2) and every copy that must keep them. Exact
 * figures throughout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <errno.h>
#include <inttypes.h>
#include <zlib.h>

#include "model/delta.h"
#include "model/filter.h"
#include "model/snapfile.h"
#include "model/snapshot.h"
#include "model/stats.h"
#include "report/collapsed.h"
#include "report/format.h"
#include "report/html.h"
#include "report/pprof.h"
#include "report/report.h"

static uint32_t str(struct snapshot *s, const char *text)
{
	int64_t i = snapshot_intern_string(s, text);

	assert_true(i >= 0);
	return (uint32_t)i;
}

static uint32_t traceback(struct snapshot *s, const char *file, uint32_t line)
{
	int64_t f = snapshot_intern_frame(s, file, line, NULL);
	uint32_t id = (uint32_t)f;
	int64_t tb;

	assert_true(f >= 0);
	tb = snapshot_intern_traceback(s, &id, 1, 1);
	assert_true(tb >= 0);
	return (uint32_t)tb;
}

static void trace(struct snapshot *s, uint32_t process, uint32_t tb, uint64_t size,
		  uint32_t domain, uint64_t age_ns)
{
	struct snapshot_trace t = {.address = 0x10000 + 0x100 * s->ntraces,
				   .size = size,
				   .domain = domain,
				   .traceback = tb,
				   .age_ns = age_ns,
				   .process = process};

	assert_int_equal(snapshot_add_trace_of(s, &t, true), 0);
}

static void site(struct snapshot *s, uint32_t process, uint32_t tb, uint32_t domain,
		 uint64_t allocs, uint64_t alloc_bytes, uint64_t peak, uint64_t peak_bytes)
{
	struct snapshot_site x = {.traceback = tb,
				  .domain = domain,
				  .process = process,
				  .alloc_count = allocs,
				  .alloc_bytes = alloc_bytes,
				  .peak_count = peak,
				  .peak_bytes = peak_bytes};

	assert_int_equal(snapshot_add_site(s, &x), 0);
}

#define LIBC SNAPSHOT_DOMAIN_LIBC
#define PY SNAPSHOT_DOMAIN_PYTHON

/* Three processes:
 *   0 pid 100 redis-server: a.c:10 2 x 100 B, b.c:20 100 B (libc)
 *   1 pid 200 python3 (ns pid 1, started after, attached late):
 *     app.py:5 2 x 500 B (python)
 *   2 pid 300 worker (started after, exited): a.c:10 64 B (libc)
 * and the header's figures their sums. */
static struct snapshot *three(void)
{
	struct snapshot *s = snapshot_new();
	uint32_t a, b, c;
	const struct snapshot_process procs[3] = {
	    {.pid = 100,
	     .command = str(s, "redis-server *:6379"),
	     .comm = str(s, "redis-server"),
	     .cgroup = str(s, "/system.slice/redis.service"),
	     .runtime = SNAPSHOT_NO_STRING,
	     .start_time = 1700000100,
	     .traced_current = 300,
	     .traced_peak = 500,
	     .domain_memory = {{0, 0}, {300, 500}},
	     .alloc_events = 10,
	     .free_events = 7},
	    {.pid = 200,
	     .ns_pid = 1,
	     .command = str(s, "python3 app.py"),
	     .comm = str(s, "python3"),
	     .cgroup = str(s, "/docker/abc"),
	     .runtime = str(s, "CPython 3.11.2"),
	     .flags = SNAPSHOT_PROCESS_STARTED_AFTER | SNAPSHOT_PROCESS_ATTACHED_LATE,
	     .start_time = 1700000200,
	     .traced_current = 1000,
	     .traced_peak = 1200,
	     .domain_memory = {{1000, 1200}, {0, 0}},
	     .alloc_events = 20,
	     .free_events = 15},
	    {.pid = 300,
	     .ns_pid = 300,
	     .command = str(s, "worker"),
	     .comm = str(s, "worker"),
	     .cgroup = SNAPSHOT_NO_STRING,
	     .runtime = SNAPSHOT_NO_STRING,
	     .flags = SNAPSHOT_PROCESS_STARTED_AFTER | SNAPSHOT_PROCESS_EXITED,
	     .start_time = 1700000300,
	     .traced_current = 64,
	     .traced_peak = 128,
	     .domain_memory = {{0, 0}, {64, 128}},
	     .alloc_events = 3,
	     .free_events = 2},
	};

	assert_non_null(s);
	s->traceback_limit = 1;
	s->target.command = str(s, "-a");
	s->target.host = str(s, "host1");
	s->taken_at = 1700001000;
	s->duration_ns = 5000000000ull;
	s->tracer_memory = 4096;
	s->traced_current = 1364;
	s->traced_peak = 1828;
	s->domain_memory_known = true;
	s->domain_memory[SNAPSHOT_CLASS_PYTHON] = (struct snapshot_domain_memory){1000, 1200};
	s->domain_memory[SNAPSHOT_CLASS_NATIVE] = (struct snapshot_domain_memory){364, 628};
	s->alloc_events = 33;
	s->free_events = 24;
	for (int i = 0; i < 3; i++)
		assert_int_equal(snapshot_add_process(s, &procs[i]), i);
	a = traceback(s, "a.c", 10);
	b = traceback(s, "b.c", 20);
	c = traceback(s, "app.py", 5);
	trace(s, 0, a, 100, LIBC, 1000);
	trace(s, 0, a, 100, LIBC, 2000);
	trace(s, 0, b, 100, LIBC, 3000);
	trace(s, 1, c, 500, PY, 4000);
	trace(s, 1, c, 500, PY, 5000);
	trace(s, 2, a, 64, LIBC, 6000);
	site(s, 2, a, LIBC, 3, 192, 2, 128);
	site(s, 0, a, LIBC, 5, 500, 2, 200);
	site(s, 0, b, LIBC, 5, 500, 1, 100);
	site(s, 1, c, PY, 20, 10000, 2, 1000);
	assert_int_equal(snapshot_set_counter(s, "allocs_table_full", 0), 0);
	return s;
}

/* A snapshot of one process (no process rows): pid 42, "/usr/bin/prog -x". */
static struct snapshot *single(void)
{
	struct snapshot *s = snapshot_new();
	uint32_t a;

	assert_non_null(s);
	s->traceback_limit = 1;
	s->target.pid = 42;
	s->target.command = str(s, "/usr/bin/prog -x");
	s->target.host = str(s, "host1");
	s->traced_current = 30;
	s->traced_peak = 40;
	s->alloc_events = 5;
	s->free_events = 2;
	a = traceback(s, "a.c", 10);
	trace(s, 0, a, 10, LIBC, 0);
	trace(s, 0, a, 20, LIBC, 0);
	site(s, 0, a, LIBC, 5, 50, 3, 40);
	return s;
}

static char *text_of(int (*fn)(FILE *, const struct snapshot *, const struct report_options *),
		     const struct snapshot *s, const struct report_options *o)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_int_equal(fn(f, s, o), 0);
	fclose(f);
	return buf;
}

static char *stat_line(const struct stats_entry *e)
{
	static char buf[256];
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	format_statistic(f, e, false);
	fclose(f);
	return buf;
}

/* -- statistics -------------------------------------------------------- */

static void test_key_process(void **state)
{
	struct snapshot *s = three();
	struct stats_list l;
	enum stats_key k;

	assert_int_equal(stats_parse_key("process", &k), 0);
	assert_int_equal(k, STATS_KEY_PROCESS);
	assert_string_equal(stats_key_name(STATS_KEY_PROCESS), "process");
	assert_int_equal(stats_compute(s, STATS_KEY_PROCESS, false, &l), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.entries[0].process->pid, 200);
	assert_int_equal(l.entries[0].nkey, 0);
	assert_string_equal(l.entries[0].process->command, "python3 app.py");
	assert_string_equal(l.entries[0].process->cgroup, "/docker/abc");
	assert_string_equal(stat_line(&l.entries[0]),
			    "pid 200 (python3): size=1000 B, count=2, average=500 B");
	assert_string_equal(stat_line(&l.entries[1]),
			    "pid 100 (redis-server): size=300 B, count=3, average=100 B");
	assert_string_equal(stat_line(&l.entries[2]),
			    "pid 300 (worker): size=64 B, count=1, average=64 B");
	/* every source's figures, from the process's sites */
	assert_int_equal(l.entries[1].all.alloc_count, 10);
	assert_int_equal(l.entries[1].all.alloc_size, 1000);
	assert_int_equal(l.entries[1].all.peak_size, 300);
	assert_int_equal(l.entries[1].all.max_age_ns, 3000);
	stats_list_free(&l);

	/* allocations over the run: the busiest first */
	assert_int_equal(
	    stats_compute_source(s, STATS_SOURCE_ALLOCATIONS, STATS_KEY_PROCESS, false, &l), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.entries[0].process->pid, 200);
	assert_int_equal(l.entries[0].count, 20);
	assert_int_equal(l.entries[1].process->pid, 100);
	assert_int_equal(l.entries[1].count, 10);
	assert_int_equal(l.entries[2].process->pid, 300);
	assert_int_equal(l.entries[2].size, 192);
	stats_list_free(&l);

	/* no cumulative statistics of processes */
	assert_int_equal(stats_compute(s, STATS_KEY_PROCESS, true, &l), -EINVAL);
	snapshot_free(s);
}

static void test_lineno_merges_and_per_process(void **state)
{
	struct snapshot *s = three();
	struct stats_list l;

	/* every process's a.c:10 together: 200 + 64 */
	assert_int_equal(stats_compute(s, STATS_KEY_LINENO, false, &l), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(stat_line(&l.entries[0]), "app.py:5: size=1000 B, count=2, average=500 B");
	assert_string_equal(stat_line(&l.entries[1]), "a.c:10: size=264 B, count=3, average=88 B");
	assert_string_equal(stat_line(&l.entries[2]), "b.c:20: size=100 B, count=1, average=100 B");
	stats_list_free(&l);

	/* one process's own */
	assert_int_equal(
	    stats_compute_process(s, 0, STATS_SOURCE_LIVE, STATS_KEY_LINENO, false, &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(stat_line(&l.entries[0]), "a.c:10: size=200 B, count=2, average=100 B");
	assert_string_equal(stat_line(&l.entries[1]), "b.c:20: size=100 B, count=1, average=100 B");
	stats_list_free(&l);
	assert_int_equal(
	    stats_compute_process(s, 2, STATS_SOURCE_PEAK, STATS_KEY_LINENO, false, &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(stat_line(&l.entries[0]), "a.c:10: size=128 B, count=2, average=64 B");
	stats_list_free(&l);
	snapshot_free(s);
}

static void test_key_process_single_and_compare(void **state)
{
	struct snapshot *one = single(), *s = three(), *old;
	struct process_filter pf = {0};
	struct stats_list l;
	char buf[256];
	FILE *f;

	/* a snapshot of one process: its target, named as the kernel would */
	assert_int_equal(stats_compute(one, STATS_KEY_PROCESS, false, &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(stat_line(&l.entries[0]),
			    "pid 42 (prog): size=30 B, count=2, average=15 B");
	stats_list_free(&l);

	/* compare: the same process in both by pid and start time; one gone */
	assert_int_equal(process_filter_add_pid(&pf, 100), 0);
	assert_int_equal(process_filter_add_pid(&pf, 300), 0);
	assert_int_equal(filter_processes(s, &pf, &old), 0);
	old->traces[0].size = 40; /* pid 100's a.c:10 grew by 60 since */
	assert_int_equal(stats_compare(s, old, STATS_KEY_PROCESS, false, &l), 0);
	assert_int_equal(l.n, 3);
	f = fmemopen(buf, sizeof(buf), "w");
	for (size_t i = 0; i < l.n; i++) {
		format_statistic(f, &l.entries[i], true);
		fputc('\n', f);
	}
	fclose(f);
	assert_string_equal(buf, "pid 200 (python3): size=1000 B (+1000 B), count=2 (+2), "
				 "average=500 B\n"
				 "pid 100 (redis-server): size=300 B (+60 B), count=3 (+0), "
				 "average=100 B\n"
				 "pid 300 (worker): size=64 B (+0 B), count=1 (+0), average=64 B\n");
	stats_list_free(&l);
	process_filter_free(&pf);
	snapshot_free(old);
	snapshot_free(one);
	snapshot_free(s);
}

/* -- filters and copies ------------------------------------------------ */

static void test_filter_pid(void **state)
{
	struct snapshot *s = three(), *t;
	struct process_filter pf = {0};

	assert_int_equal(process_filter_add_pid(&pf, 200), 0);
	assert_int_equal(filter_processes(s, &pf, &t), 0);
	assert_int_equal(t->nprocesses, 1);
	assert_int_equal(t->processes[0].pid, 200);
	assert_int_equal(t->processes[0].ns_pid, 1);
	assert_string_equal(snapshot_string(t, t->processes[0].comm), "python3");
	assert_string_equal(snapshot_string(t, t->processes[0].runtime), "CPython 3.11.2");
	assert_int_equal(t->processes[0].flags,
			 SNAPSHOT_PROCESS_STARTED_AFTER | SNAPSHOT_PROCESS_ATTACHED_LATE);
	assert_int_equal(t->ntraces, 2);
	assert_int_equal(t->traces[0].process, 0);
	assert_int_equal(t->traces[1].size, 500);
	assert_int_equal(t->traces[1].age_ns, 5000);
	assert_int_equal(t->nsites, 1);
	assert_int_equal(t->sites[0].process, 0);
	assert_int_equal(t->sites[0].alloc_count, 20);
	/* the header: the kept process's figures */
	assert_int_equal(t->traced_current, 1000);
	assert_int_equal(t->traced_peak, 1200);
	assert_int_equal(t->alloc_events, 20);
	assert_int_equal(t->free_events, 15);
	assert_int_equal(t->domain_memory[SNAPSHOT_CLASS_PYTHON].current, 1000);
	assert_int_equal(t->domain_memory[SNAPSHOT_CLASS_NATIVE].peak, 0);
	assert_int_equal(t->tracer_memory, 4096);
	assert_int_equal(t->ncounters, 1);
	snapshot_free(t);
	process_filter_free(&pf);
	snapshot_free(s);
}

static void test_filter_comm_and_pid(void **state)
{
	struct snapshot *s = three(), *t;
	struct process_filter pf = {0};
	struct stats_list l;

	/* any of them: pid 100 or comm worker, renumbered in order */
	assert_int_equal(process_filter_add_comm(&pf, "worker"), 0);
	assert_int_equal(process_filter_add_pid(&pf, 100), 0);
	assert_int_equal(process_filter_add_comm(&pf, ""), -EINVAL);
	assert_int_equal(filter_processes(s, &pf, &t), 0);
	assert_int_equal(t->nprocesses, 2);
	assert_int_equal(t->processes[0].pid, 100);
	assert_int_equal(t->processes[1].pid, 300);
	assert_int_equal(t->ntraces, 4);
	assert_int_equal(t->traces[3].process, 1);
	assert_int_equal(t->traces[3].size, 64);
	assert_int_equal(t->nsites, 3);
	assert_int_equal(t->traced_current, 364);
	assert_int_equal(t->traced_peak, 628);
	assert_int_equal(t->alloc_events, 13);
	assert_int_equal(t->domain_memory[SNAPSHOT_CLASS_NATIVE].current, 364);
	assert_int_equal(stats_compute(t, STATS_KEY_PROCESS, false, &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.entries[0].process->pid, 100);
	assert_int_equal(l.entries[1].process->pid, 300);
	stats_list_free(&l);
	snapshot_free(t);
	process_filter_free(&pf);

	/* every process kept: the header as it was */
	assert_int_equal(process_filter_add_comm(&pf, "python3"), 0);
	assert_int_equal(process_filter_add_comm(&pf, "worker"), 0);
	assert_int_equal(process_filter_add_comm(&pf, "redis-server"), 0);
	assert_int_equal(filter_processes(s, &pf, &t), 0);
	assert_int_equal(t->nprocesses, 3);
	assert_int_equal(t->traced_peak, 1828);
	assert_int_equal(t->ntraces, 6);
	snapshot_free(t);
	process_filter_free(&pf);

	/* none: no traces, no sites, figures 0 */
	assert_int_equal(process_filter_add_pid(&pf, 999), 0);
	assert_int_equal(filter_processes(s, &pf, &t), 0);
	assert_int_equal(t->nprocesses, 0);
	assert_int_equal(t->ntraces, 0);
	assert_int_equal(t->nsites, 0);
	assert_int_equal(t->traced_current, 0);
	snapshot_free(t);
	process_filter_free(&pf);
	snapshot_free(s);
}

static void test_filter_single_process(void **state)
{
	struct snapshot *s = single(), *t;
	struct process_filter pf = {0};
	struct snapshot_process long_name = {.pid = 7,
					     .command = SNAPSHOT_NO_STRING,
					     .cgroup = SNAPSHOT_NO_STRING,
					     .runtime = SNAPSHOT_NO_STRING};

	/* the target's pid or its comm ("prog", from the command) */
	assert_int_equal(process_filter_add_comm(&pf, "prog"), 0);
	assert_true(process_filter_matches(s, &pf, 0));
	assert_int_equal(filter_processes(s, &pf, &t), 0);
	assert_int_equal(t->nprocesses, 0);
	assert_int_equal(t->ntraces, 2);
	assert_int_equal(t->traced_current, 30);
	assert_int_equal(t->target.pid, 42);
	snapshot_free(t);
	process_filter_free(&pf);

	assert_int_equal(process_filter_add_pid(&pf, 43), 0);
	assert_false(process_filter_matches(s, &pf, 0));
	assert_int_equal(filter_processes(s, &pf, &t), 0);
	assert_int_equal(t->ntraces, 0);
	assert_int_equal(t->nsites, 0);
	assert_int_equal(t->traced_current, 0);
	assert_int_equal(t->traced_peak, 0);
	assert_int_equal(t->alloc_events, 0);
	assert_int_equal(t->target.pid, 42); /* still says what it was of */
	snapshot_free(t);
	process_filter_free(&pf);

	/* a name longer than the kernel's 15 bytes matches its comm */
	long_name.comm = str(s, "averyveryverylo");
	assert_int_equal(snapshot_add_process(s, &long_name), 0);
	assert_int_equal(process_filter_add_comm(&pf, "averyveryverylongname"), 0);
	assert_true(process_filter_matches(s, &pf, 0));
	process_filter_free(&pf);
	assert_int_equal(process_filter_add_comm(&pf, "averyveryverylo2"), 0);
	assert_true(process_filter_matches(s, &pf, 0));
	process_filter_free(&pf);
	assert_int_equal(process_filter_add_comm(&pf, "averyveryverly"), 0);
	assert_false(process_filter_matches(s, &pf, 0));
	process_filter_free(&pf);
	snapshot_free(s);
}

static void test_copies_keep_processes(void **state)
{
	struct snapshot *s = three(), *t, *d;
	struct filter_set fs = {0};
	struct stats_list l;

	/* filter_traces: the processes and each trace's and site's stay */
	assert_int_equal(filter_add(&fs.rest, true, "a.c", false), 0);
	assert_int_equal(filter_set_apply(s, &fs, &t), 0);
	assert_int_equal(t->nprocesses, 3);
	assert_int_equal(t->ntraces, 3);
	assert_int_equal(t->traces[2].process, 2);
	assert_int_equal(t->nsites, 2);
	assert_int_equal(t->traced_peak, 1828);
	assert_int_equal(stats_compute(t, STATS_KEY_PROCESS, false, &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(stat_line(&l.entries[0]),
			    "pid 100 (redis-server): size=200 B, count=2, average=100 B");
	assert_string_equal(stat_line(&l.entries[1]),
			    "pid 300 (worker): size=64 B, count=1, average=64 B");
	stats_list_free(&l);
	snapshot_free(t);

	/* --pid first, then the rest */
	assert_int_equal(process_filter_add_pid(&fs.processes, 300), 0);
	assert_false(filter_set_empty(&fs));
	assert_int_equal(filter_set_apply(s, &fs, &t), 0);
	assert_int_equal(t->nprocesses, 1);
	assert_int_equal(t->ntraces, 1);
	assert_int_equal(t->traces[0].size, 64);
	assert_int_equal(t->traced_current, 64);
	snapshot_free(t);
	filter_set_free(&fs);

	/* --older-than */
	assert_int_equal(filter_older_than(s, 4500, &t), 0);
	assert_int_equal(t->nprocesses, 3);
	assert_int_equal(t->ntraces, 2);
	assert_int_equal(t->traces[0].process, 1);
	assert_int_equal(t->traces[1].process, 2);
	snapshot_free(t);

	/* the import of a delta profile: processes by pid and start time */
	d = snapshot_new();
	assert_int_equal(snapshot_import_traces(d, s), 0);
	assert_int_equal(snapshot_import_traces(d, s), 0);
	assert_int_equal(d->nprocesses, 3);
	assert_int_equal(d->ntraces, 12);
	assert_int_equal(d->traces[9].process, 1);
	assert_int_equal(d->traces[11].process, 2);
	assert_string_equal(snapshot_string(d, d->processes[2].comm), "worker");
	assert_int_equal(d->processes[1].cgroup, d->processes[1].cgroup);
	assert_string_equal(snapshot_string(d, d->processes[1].cgroup), "/docker/abc");
	assert_int_equal(d->processes[2].cgroup, SNAPSHOT_NO_STRING);
	snapshot_free(d);
	/* of one process into several: a row from its target */
	d = snapshot_new();
	t = single();
	assert_int_equal(snapshot_import_traces(d, s), 0);
	assert_int_equal(snapshot_import_traces(d, t), 0);
	assert_int_equal(d->nprocesses, 4);
	assert_int_equal(d->processes[3].pid, 42);
	assert_string_equal(snapshot_string(d, d->processes[3].comm), "prog");
	assert_int_equal(d->traces[7].process, 3);
	snapshot_free(d);
	/* of several into one of one process: refused */
	assert_int_equal(snapshot_import_traces(t, s), -EINVAL);
	snapshot_free(t);
	snapshot_free(s);
}

/* -- the snapshot file ------------------------------------------------- */

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

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

static void reseal(unsigned char *buf, size_t len)
{
	put32(buf + 24, 0);
	put32(buf + 24, (uint32_t)crc32_z(crc32(0, NULL, 0), buf, len));
}

static uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* The section of id, and its length. */
static unsigned char *section(unsigned char *buf, uint32_t id, uint64_t *len)
{
	for (uint32_t i = 0; i < get32(buf + 12); i++) {
		unsigned char *e = buf + 48 + i * 24;

		if (get32(e) == id) {
			if (len)
				*len = get64(e + 16);
			return buf + get64(e + 8);
		}
	}
	return NULL;
}

static void expect_reject(const unsigned char *buf, size_t len, const char *msg)
{
	struct snapshot *t = NULL;
	char err[256] = "";

	assert_int_equal(snapfile_decode(buf, len, &t, err, sizeof(err)), -EINVAL);
	assert_null(t);
	if (!strstr(err, msg))
		fail_msg("expected '%s', got '%s'", msg, err);
}

static void test_file_round_trip(void **state)
{
	struct snapshot *s = three(), *t, *one = single();
	unsigned char *buf;
	size_t len;
	char err[256];

	/* one process: version 1, as before, for older readers */
	assert_int_equal(snapfile_encode(one, (void **)&buf, &len), 0);
	assert_int_equal(get32(buf + 8), 1);
	assert_null(section(buf, 13, NULL));
	free(buf);

	assert_int_equal(snapfile_encode(s, (void **)&buf, &len), 0);
	assert_int_equal(get32(buf + 8), 2);
	assert_non_null(section(buf, 13, NULL));
	assert_non_null(section(buf, 14, NULL));
	assert_non_null(section(buf, 15, NULL));
	assert_int_equal(snapfile_decode(buf, len, &t, err, sizeof(err)), 0);
	assert_int_equal(t->nprocesses, 3);
	for (uint32_t i = 0; i < 3; i++) {
		const struct snapshot_process *a = &s->processes[i], *b = &t->processes[i];
		const uint32_t sa[] = {a->command, a->comm, a->cgroup, a->runtime};
		const uint32_t sb[] = {b->command, b->comm, b->cgroup, b->runtime};

		assert_int_equal(a->pid, b->pid);
		assert_int_equal(a->ns_pid, b->ns_pid);
		assert_int_equal(a->flags, b->flags);
		assert_int_equal(a->start_time, b->start_time);
		assert_int_equal(a->traced_current, b->traced_current);
		assert_int_equal(a->traced_peak, b->traced_peak);
		assert_memory_equal(a->domain_memory, b->domain_memory, sizeof(a->domain_memory));
		assert_int_equal(a->alloc_events, b->alloc_events);
		assert_int_equal(a->free_events, b->free_events);
		for (int k = 0; k < 4; k++) {
			if (sa[k] == SNAPSHOT_NO_STRING) {
				assert_int_equal(sb[k], SNAPSHOT_NO_STRING);
				continue;
			}
			assert_string_equal(snapshot_string(s, sa[k]), snapshot_string(t, sb[k]));
		}
	}
	assert_int_equal(t->ntraces, 6);
	for (int i = 0; i < 6; i++)
		assert_int_equal(t->traces[i].process, s->traces[i].process);
	assert_int_equal(t->nsites, 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(t->sites[i].process, s->sites[i].process);
		assert_int_equal(t->sites[i].alloc_count, s->sites[i].alloc_count);
	}
	snapshot_free(t);
	free(buf);
	snapshot_free(one);
	snapshot_free(s);
}

static void test_file_rejects(void **state)
{
	struct snapshot *s = three();
	unsigned char *buf, *copy, *p;
	uint64_t plen;
	size_t len;

	assert_int_equal(snapfile_encode(s, (void **)&buf, &len), 0);
	copy = malloc(len);
#define FRESH() (memcpy(copy, buf, len))
	/* a flag this reader does not know */
	FRESH();
	p = section(copy, 13, &plen);
	assert_int_equal(plen, 3 * 104);
	put32(p + 104 + 24, 8 | SNAPSHOT_PROCESS_EXITED);
	reseal(copy, len);
	expect_reject(copy, len, "process 1 has unknown flags 0x8");
	/* a string out of the table; none (0xffffffff) is fine */
	FRESH();
	p = section(copy, 13, NULL);
	put32(p + 12, 100000);
	reseal(copy, len);
	expect_reject(copy, len, "process 0's comm refers to string 100000");
	FRESH();
	p = section(copy, 13, NULL);
	put32(p + 8, UINT32_MAX);
	reseal(copy, len);
	{
		struct snapshot *t;
		char err[256];

		assert_int_equal(snapfile_decode(copy, len, &t, err, sizeof(err)), 0);
		assert_int_equal(t->processes[0].command, SNAPSHOT_NO_STRING);
		snapshot_free(t);
	}
	/* traced memory past 2^48, alone or summed */
	FRESH();
	p = section(copy, 13, NULL);
	put64(p + 48, (1ull << 48) + 1);
	reseal(copy, len);
	expect_reject(copy, len, "process 0 takes the processes' traced memory past");
	FRESH();
	p = section(copy, 13, NULL);
	put64(p + 40, 1ull << 47);
	put64(p + 104 + 40, 1ull << 47);
	put64(p + 208 + 40, 1);
	reseal(copy, len);
	expect_reject(copy, len, "process 2 takes the processes' traced memory past");
	/* events whose sum overflows */
	FRESH();
	p = section(copy, 13, NULL);
	put64(p + 88, UINT64_MAX);
	reseal(copy, len);
	expect_reject(copy, len, "process 1 takes the events past 2^64");
	/* a trace's and a site's process out of range */
	FRESH();
	p = section(copy, 14, &plen);
	assert_int_equal(plen, 6 * 4);
	put32(p + 20, 3);
	reseal(copy, len);
	expect_reject(copy, len, "trace 5 refers to process 3 of 3");
	FRESH();
	p = section(copy, 15, &plen);
	assert_int_equal(plen, 4 * 4);
	put32(p, 7);
	reseal(copy, len);
	expect_reject(copy, len, "site 0 refers to process 7 of 3");
	/* processes in a version 1 file */
	FRESH();
	put32(copy + 8, 1);
	reseal(copy, len);
	expect_reject(copy, len, "a version 1 file holds processes");
	/* the trace processes section missing (its id changed to an unknown one) */
	FRESH();
	for (uint32_t i = 0; i < get32(copy + 12); i++)
		if (get32(copy + 48 + i * 24) == 14)
			put32(copy + 48 + i * 24, 40);
	reseal(copy, len);
	expect_reject(copy, len, "processes, but no trace processes section");
	/* the processes section missing: what names them is refused */
	FRESH();
	for (uint32_t i = 0; i < get32(copy + 12); i++)
		if (get32(copy + 48 + i * 24) == 13)
			put32(copy + 48 + i * 24, 40);
	reseal(copy, len);
	expect_reject(copy, len, "processes of traces or sites, but no processes");
	/* fewer trace processes than traces */
	FRESH();
	for (uint32_t i = 0; i < get32(copy + 12); i++)
		if (get32(copy + 48 + i * 24) == 14)
			put64(copy + 48 + i * 24 + 16, 5 * 4);
	reseal(copy, len);
	expect_reject(copy, len, "5 trace processes for 6 traces");
#undef FRESH
	free(copy);
	free(buf);
	snapshot_free(s);
}

/* -- reports ----------------------------------------------------------- */

static const struct report_options text_opts = {.format = REPORT_TEXT,
						.key = STATS_KEY_LINENO,
						.top = 10};

static void test_text_report(void **state)
{
	struct snapshot *s = three();
	char *out = text_of(report_snapshot, s, &text_opts);

	assert_string_equal(
	    out,
	    "tracer: 3 processes (1 started before the tracer, 2 after it, 1 attached late, 1 "
	    "exited), nframe 1\n"
	    "traced memory: current 1000 B (1000 B), peak 1200 B (1200 B)\n"
	    "traced memory by domain: python current 1000 B (1000 B), peak 1200 B (1200 B); "
	    "native (libc) current 364 B (364 B), peak 628 B (628 B); all domains current "
	    "1364 B (1364 B), peak 1828 B (1828 B)\n"
	    "tracer memory: 4096 B (4096 B)\n"
	    "events: 33 allocations, 24 frees, 6 live traces\n"
	    "top 3 processes by traced memory:\n"
	    "  pid 200 (python3): current 1000 B (1000 B), peak 1200 B (1200 B), 2 blocks, 20 "
	    "allocations\n"
	    "  pid 100 (redis-server): current 300 B (300 B), peak 500 B (500 B), 3 blocks, 10 "
	    "allocations\n"
	    "  pid 300 (worker): current 64 B (64 B), peak 128 B (128 B), 1 blocks, 3 "
	    "allocations, exited\n"
	    "\n"
	    "pid 200 (python3), ns pid 1, command \"python3 app.py\", cgroup /docker/abc, runtime "
	    "CPython 3.11.2, started after the tracer, attached late\n"
	    "top 1 lineno statistics:\n"
	    "app.py:5: size=1000 B, count=2, average=500 B\n"
	    "\n"
	    "pid 100 (redis-server), command \"redis-server *:6379\", cgroup "
	    "/system.slice/redis.service\n"
	    "top 2 lineno statistics:\n"
	    "a.c:10: size=200 B, count=2, average=100 B\n"
	    "b.c:20: size=100 B, count=1, average=100 B\n"
	    "\n"
	    "pid 300 (worker), command \"worker\", started after the tracer, exited\n"
	    "top 1 lineno statistics:\n"
	    "a.c:10: size=64 B, count=1, average=64 B\n");
	free(out);
	snapshot_free(s);
}

static void test_text_report_limits(void **state)
{
	struct snapshot *s = three();
	struct report_options o = text_opts;
	char *out;

	/* two processes detailed; -t 1 statistic each */
	o.top_processes = 2;
	o.top = 1;
	out = text_of(report_snapshot, s, &o);
	assert_non_null(strstr(out, "top 2 processes by traced memory:\n"
				    "  pid 200 (python3): current 1000 B (1000 B), peak 1200 B "
				    "(1200 B), 2 blocks, 20 allocations\n"
				    "  pid 100 (redis-server): current 300 B (300 B), peak 500 B "
				    "(500 B), 3 blocks, 10 allocations\n"
				    "  1 more processes not shown (current 64 B (64 B) in all): "
				    "--pid or --comm selects them\n"));
	assert_non_null(strstr(out, "pid 100 (redis-server), command \"redis-server *:6379\", "
				    "cgroup /system.slice/redis.service\n"
				    "top 1 lineno statistics:\n"
				    "a.c:10: size=200 B, count=2, average=100 B\n"));
	assert_null(strstr(out, "pid 300 (worker), command"));
	free(out);
	/* --pid or --comm given: every process kept */
	o.every_process = true;
	out = text_of(report_snapshot, s, &o);
	assert_non_null(strstr(out, "top 3 processes by traced memory:\n"));
	assert_non_null(strstr(out, "pid 300 (worker), command"));
	assert_null(strstr(out, "more processes not shown"));
	free(out);
	/* -k process: the header and one statistic per process */
	o = text_opts;
	o.key = STATS_KEY_PROCESS;
	out = text_of(report_snapshot, s, &o);
	assert_non_null(strstr(out, "events: 33 allocations, 24 frees, 6 live traces\n"
				    "top 3 process statistics:\n"
				    "pid 200 (python3): size=1000 B, count=2, average=500 B\n"
				    "pid 100 (redis-server): size=300 B, count=3, average=100 B\n"
				    "pid 300 (worker): size=64 B, count=1, average=64 B\n"));
	assert_null(strstr(out, "by traced memory"));
	free(out);
	snapshot_free(s);
}

static void test_json_report(void **state)
{
	struct snapshot *s = three(), *one = single();
	struct report_options o = text_opts;
	char *out;

	o.format = REPORT_JSON;
	out = text_of(report_snapshot, s, &o);
	/* the top-level document as for one process, then each one's */
	assert_non_null(strstr(out, "{\"target\":{\"pid\":0,\"command\":\"-a\","));
	assert_non_null(strstr(
	    out, ",\"processes\":[{\"target\":{\"pid\":200,\"ns_pid\":1,\"command\":\"python3 "
		 "app.py\",\"comm\":\"python3\",\"cgroup\":\"/docker/abc\",\"runtime\":\"CPython "
		 "3.11.2\",\"start_time\":1700000200,\"host\":\"host1\"},\"started_after\":true,"
		 "\"attached_late\":true,\"exited\":false,\"nframe\":1,\"traced_memory\":{"
		 "\"current\":1000,\"peak\":1200,\"of\":\"python\",\"python\":{\"current\":1000,"
		 "\"peak\":1200},\"native\":{\"current\":0,\"peak\":0},\"all\":{\"current\":1000,"
		 "\"peak\":1200}},\"events\":{\"allocations\":20,\"frees\":15},\"traces\":2,"
		 "\"key\":\"lineno\",\"cumulative\":false,\"source\":\"size\",\"older_than_ns\":0,"
		 "\"statistics\":[{\"frames\":[{\"filename\":\"app.py\",\"lineno\":5,"));
	assert_non_null(strstr(
	    out, "{\"target\":{\"pid\":300,\"ns_pid\":300,\"command\":\"worker\",\"comm\":"
		 "\"worker\",\"cgroup\":null,\"runtime\":null,\"start_time\":1700000300,"
		 "\"host\":\"host1\"},\"started_after\":true,\"attached_late\":false,\"exited\":"
		 "true,\"nframe\":1,\"traced_memory\":{\"current\":64,\"peak\":128,\"of\":\"all\""));
	assert_string_equal(out + strlen(out) - 5, "]}]}\n");
	free(out);

	/* -k process: each statistic names its process */
	o.key = STATS_KEY_PROCESS;
	out = text_of(report_snapshot, s, &o);
	assert_non_null(strstr(
	    out, "\"statistics\":[{\"frames\":[],\"process\":{\"pid\":200,\"ns_pid\":1,\"comm\":"
		 "\"python3\",\"command\":\"python3 app.py\",\"title\":\"pid 200 (python3)\"},"
		 "\"size\":1000,\"count\":2,"));
	free(out);

	/* one process: no processes array */
	o.key = STATS_KEY_LINENO;
	out = text_of(report_snapshot, one, &o);
	assert_null(strstr(out, "\"processes\""));
	free(out);
	snapshot_free(one);
	snapshot_free(s);
}

static void test_compare_header(void **state)
{
	struct snapshot *s = three(), *old;
	struct process_filter pf = {0};
	struct report_options o = text_opts;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	assert_int_equal(process_filter_add_comm(&pf, "python3"), 0);
	assert_int_equal(filter_processes(s, &pf, &old), 0);
	o.key = STATS_KEY_PROCESS;
	f = open_memstream(&buf, &len);
	assert_int_equal(report_compare(f, old, s, &o), 0);
	fclose(f);
	assert_non_null(strstr(buf, "old snapshot\ntracer: 1 process (0 started before the tracer, "
				    "1 after it, 1 attached late, 0 exited), nframe 1\n"));
	assert_non_null(strstr(buf, "top 3 process differences:\n"
				    "pid 100 (redis-server): size=300 B (+300 B), count=3 (+3), "
				    "average=100 B\n"));
	free(buf);
	process_filter_free(&pf);
	snapshot_free(old);
	snapshot_free(s);
}

static void test_address_in_each_process(void **state)
{
	struct snapshot *s = three(), *one = single();
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	/* the same address live in two processes: both blocks */
	s->traces[5].address = s->traces[0].address;
	f = open_memstream(&buf, &len);
	assert_int_equal(report_address(f, s, s->traces[0].address + 8), 0);
	fclose(f);
	assert_string_equal(buf, "0x10008: offset 8 in a block of 100 B (100 B) at 0x10000, "
				 "domain libc, pid 100 (redis-server), allocated at:\n"
				 "  File \"a.c\", line 10\n"
				 "0x10008: offset 8 in a block of 64 B (64 B) at 0x10000, domain "
				 "libc, pid 300 (worker), allocated at:\n"
				 "  File \"a.c\", line 10\n");
	free(buf);
	/* one process: as before, no process named */
	f = open_memstream(&buf, &len);
	assert_int_equal(report_address(f, one, 0x10000), 0);
	fclose(f);
	assert_string_equal(buf, "0x10000: offset 0 in a block of 10 B (10 B) at 0x10000, "
				 "domain libc, allocated at:\n"
				 "  File \"a.c\", line 10\n");
	free(buf);
	snapshot_free(one);
	snapshot_free(s);
}

static void test_collapsed_by_process(void **state)
{
	struct snapshot *s = three(), *one = single();
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_int_equal(collapsed_write_with(s, f, true, true), 0);
	fclose(f);
	assert_string_equal(buf, "pid 100 (redis-server);a.c:10 200\n"
				 "pid 100 (redis-server);b.c:20 100\n"
				 "pid 200 (python3);app.py:5 1000\n"
				 "pid 300 (worker);a.c:10 64\n");
	free(buf);
	f = open_memstream(&buf, &len);
	assert_int_equal(collapsed_write(s, f, true), 0);
	fclose(f);
	assert_string_equal(buf, "a.c:10 264\napp.py:5 1000\nb.c:20 100\n");
	free(buf);
	f = open_memstream(&buf, &len);
	assert_int_equal(collapsed_write_with(one, f, true, true), 0);
	fclose(f);
	assert_string_equal(buf, "pid 42 (prog);a.c:10 30\n");
	free(buf);
	snapshot_free(one);
	snapshot_free(s);
}

static void test_html_table_by_process(void **state)
{
	struct snapshot *s = three();
	struct report_options o = {.format = REPORT_HTML, .key = STATS_KEY_PROCESS, .top = 100};
	struct html_page page;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	html_page_init(&page, s, NULL, &o);
	assert_int_equal(html_write(f, &page), 0);
	fclose(f);
	assert_non_null(strstr(buf, "\"table\":[[\"pid 200 (python3)\",null,1000,2],"
				    "[\"pid 100 (redis-server)\",null,300,3],"
				    "[\"pid 300 (worker)\",null,64,1]]"));
	free(buf);
	snapshot_free(s);
}

/* -- pprof: each sample's pid and comm --------------------------------- */

static uint64_t varint(const unsigned char **p, const unsigned char *end)
{
	uint64_t v = 0;
	int shift = 0;

	while (*p < end) {
		unsigned char c = *(*p)++;

		v |= (uint64_t)(c & 0x7f) << shift;
		shift += 7;
		if (!(c & 0x80))
			break;
	}
	return v;
}

struct pb_field {
	unsigned num, wire;
	uint64_t v;
	const unsigned char *p;
	size_t len;
};

static bool pb_next(const unsigned char **p, const unsigned char *end, struct pb_field *f)
{
	uint64_t tag;

	if (*p >= end)
		return false;
	tag = varint(p, end);
	f->num = (unsigned)(tag >> 3);
	f->wire = (unsigned)(tag & 7);
	if (f->wire == 0) {
		f->v = varint(p, end);
	} else {
		assert_int_equal(f->wire, 2);
		f->len = (size_t)varint(p, end);
		f->p = *p;
		*p += f->len;
	}
	return true;
}

static void test_pprof_labels(void **state)
{
	struct snapshot *s = three();
	char *gz = NULL, *strings[64], labels[512] = "";
	size_t gzlen = 0, nstrings = 0;
	FILE *f = open_memstream(&gz, &gzlen);
	static unsigned char raw[1 << 16];
	z_stream z = {0};
	const unsigned char *p, *end;
	struct pb_field fl;
	/* per sample: its label pairs as key indices and values */
	uint64_t pairs[16][4][2], bytes[16];
	int nsamples = 0, npairs[16] = {0};

	assert_int_equal(pprof_write(s, f), 0);
	fclose(f);
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = (unsigned char *)gz;
	z.avail_in = (uInt)gzlen;
	z.next_out = raw;
	z.avail_out = sizeof(raw);
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	end = raw + z.total_out;
	inflateEnd(&z);
	for (p = raw; pb_next(&p, end, &fl);) {
		if (fl.num == 6) {
			assert_true(nstrings < 64);
			strings[nstrings++] = strndup((const char *)fl.p, fl.len);
		} else if (fl.num == 2) {
			const unsigned char *q = fl.p, *qe = fl.p + fl.len;
			struct pb_field sf;

			assert_true(nsamples < 16);
			while (pb_next(&q, qe, &sf)) {
				if (sf.num == 2) { /* values: alloc x2, inuse x2 */
					const unsigned char *v = sf.p;

					for (int k = 0; k < 4; k++)
						bytes[nsamples] = varint(&v, sf.p + sf.len);
				} else if (sf.num == 3) {
					const unsigned char *l = sf.p;
					struct pb_field lf;
					int n = npairs[nsamples]++;

					assert_true(n < 4); /* domain, pid, comm, cgroup */

					pairs[nsamples][n][0] = pairs[nsamples][n][1] = 0;
					while (pb_next(&l, sf.p + sf.len, &lf))
						pairs[nsamples][n][lf.num - 1] = lf.v;
				}
			}
			nsamples++;
		}
	}
	/* (a.c:10, pid 100), (a.c:10, pid 300), b.c:20, app.py:5 */
	assert_int_equal(nsamples, 4);
	for (int i = 0; i < nsamples; i++) {
		char one[128];

		snprintf(one, sizeof(one), "%" PRIu64 ":", bytes[i]);
		strcat(labels, one);
		for (int k = 0; k < npairs[i]; k++) {
			snprintf(one, sizeof(one), " %s=%s", strings[pairs[i][k][0]],
				 strings[pairs[i][k][1]]);
			strcat(labels, one);
		}
		strcat(labels, "\n");
	}
	/* each process's cgroup too, where it has one */
	assert_string_equal(labels, "200: domain=libc pid=100 comm=redis-server "
				    "cgroup=/system.slice/redis.service\n"
				    "64: domain=libc pid=300 comm=worker\n"
				    "100: domain=libc pid=100 comm=redis-server "
				    "cgroup=/system.slice/redis.service\n"
				    "1000: domain=python pid=200 comm=python3 cgroup=/docker/abc\n");
	for (size_t i = 0; i < nstrings; i++)
		free(strings[i]);
	free(gz);
	snapshot_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_process),
	    cmocka_unit_test(test_lineno_merges_and_per_process),
	    cmocka_unit_test(test_key_process_single_and_compare),
	    cmocka_unit_test(test_filter_pid),
	    cmocka_unit_test(test_filter_comm_and_pid),
	    cmocka_unit_test(test_filter_single_process),
	    cmocka_unit_test(test_copies_keep_processes),
	    cmocka_unit_test(test_file_round_trip),
	    cmocka_unit_test(test_file_rejects),
	    cmocka_unit_test(test_text_report),
	    cmocka_unit_test(test_text_report_limits),
	    cmocka_unit_test(test_json_report),
	    cmocka_unit_test(test_compare_header),
	    cmocka_unit_test(test_address_in_each_process),
	    cmocka_unit_test(test_collapsed_by_process),
	    cmocka_unit_test(test_html_table_by_process),
	    cmocka_unit_test(test_pprof_labels),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
