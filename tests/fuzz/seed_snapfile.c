/* Writes the fuzzer's starting corpus: small valid snapshot files. */
#include <stdio.h>

#include "model/snapfile.h"

static int add_traces(struct snapshot *s, int n)
{
	int64_t f1 = snapshot_intern_frame(s, "app.py", 10, "main");
	int64_t f2 = snapshot_intern_frame(s, "/lib/libc.so.6+0x1234", 0, NULL);
	uint32_t ids[2] = {(uint32_t)f1, (uint32_t)f2};
	int64_t tb = snapshot_intern_traceback(s, ids, 2, 5);

	if (f1 < 0 || f2 < 0 || tb < 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (snapshot_add_trace(s, 0x1000 + 64 * (uint64_t)i, 48, (uint32_t)i % 2,
				       (uint32_t)tb))
			return -1;
	return snapshot_set_counter(s, "lost", 1);
}

/* Native frames that say where they are: the mappings and frame
 * addresses sections. */
static int add_native(struct snapshot *s)
{
	int64_t m1 =
	    snapshot_intern_mapping(s, "/usr/bin/prog", "0123abcd", 0x401000, 0x402000, 0x1000);
	int64_t m2 = snapshot_intern_mapping(s, "/lib/libc.so.6", NULL, 0x7f0000001000,
					     0x7f0000100000, 0x1000);
	int64_t f1, f2, tb;
	uint32_t ids[2];

	if (m1 < 0 || m2 < 0)
		return -1;
	f1 = snapshot_intern_native_frame(s, "/usr/bin/prog+0x1234", 0, "work", (uint32_t)m1,
					  0x401234, 0x35);
	f2 = snapshot_intern_native_frame(s, "prog.c", 7, "main", (uint32_t)m2, 0x7f0000002000,
					  0x10);
	ids[0] = (uint32_t)f1, ids[1] = (uint32_t)f2;
	if (f1 < 0 || f2 < 0)
		return -1;
	tb = snapshot_intern_traceback(s, ids, 2, 2);
	return tb < 0 ? -1 : snapshot_add_trace(s, 0x9000, 16, 0xfffffff0u, (uint32_t)tb);
}

/* Every trace's age and a site per traceback: the trace ages and sites
 * sections. */
static int add_sites(struct snapshot *s)
{
	for (uint64_t i = 0; i < s->ntraces; i++)
		s->traces[i].age_ns = 1000000 * (i + 1);
	s->ages_known = true;
	for (uint32_t t = 0; t < s->ntracebacks; t++) {
		struct snapshot_site site = {.traceback = t, .domain = t, .alloc_count = 10 + t,
					     .alloc_bytes = 480, .temp_count = 3, .temp_bytes = 144,
					     .peak_count = 2, .peak_bytes = 96};

		if (snapshot_add_site(s, &site))
			return -1;
	}
	return 0;
}

/* Two processes, the traces and sites shared between them: the
 * processes, trace processes and site processes sections (version 2). */
static int add_processes(struct snapshot *s)
{
	for (int i = 0; i < 2; i++) {
		struct snapshot_process p = {
		    .pid = 100 + i,
		    .ns_pid = i ? 1 : 0,
		    .command = (uint32_t)snapshot_intern_string(s, i ? "worker --n 1" : "cmd"),
		    .comm = (uint32_t)snapshot_intern_string(s, i ? "worker" : "cmd"),
		    .cgroup = i ? (uint32_t)snapshot_intern_string(s, "/system.slice/w.service")
				: SNAPSHOT_NO_STRING,
		    .runtime = SNAPSHOT_NO_STRING,
		    .flags = i ? SNAPSHOT_PROCESS_STARTED_AFTER | SNAPSHOT_PROCESS_EXITED : 0,
		    .start_time = 1700000000 + (uint64_t)i,
		    .traced_current = 48,
		    .traced_peak = 96,
		    .domain_memory = {{48, 96}, {0, 0}},
		    .alloc_events = 3,
		    .free_events = 2};

		if (snapshot_add_process(s, &p) < 0)
			return -1;
	}
	for (uint64_t i = 0; i < s->ntraces; i++)
		s->traces[i].process = (uint32_t)(i % 2);
	for (uint32_t i = 0; i < s->nsites; i++) {
		struct snapshot_site site = s->sites[i];

		site.process = 1; /* the same (traceback, domain) in the other process */
		if (snapshot_add_site(s, &site))
			return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	char path[4096], why[512];

	if (argc != 2) {
		fprintf(stderr, "usage: seed_snapfile DIR\n");
		return 2;
	}
	for (int n = 0; n < 5; n++) {
		struct snapshot *s = snapshot_new();

		if (!s)
			return 1;
		s->traceback_limit = 2;
		s->target.command = (uint32_t)snapshot_intern_string(s, "cmd");
		s->target.host = (uint32_t)snapshot_intern_string(s, "host");
		/* with and without the optional domain memory section */
		s->domain_memory_known = n > 0;
		s->domain_memory[SNAPSHOT_CLASS_PYTHON] = (struct snapshot_domain_memory){48, 96};
		s->domain_memory[SNAPSHOT_CLASS_NATIVE] = (struct snapshot_domain_memory){48, 48};
		/* the last two traced within a budget (its section) */
		if (n >= 3)
			s->budget = (struct snapshot_budget){.on = true,
							     .ratio = 0.05,
							     .coverage = 0.3,
							     .overhead = 0.046,
							     .hit_cost_s = 5e-7,
							     .frees_windowed = n == 4,
							     .windows = 12};
		snprintf(path, sizeof(path), "%s/seed-%d.snap", argv[1], n);
		/* the fourth with mappings and frame addresses too, the last
		 * three with trace ages and sites, the last of several
		 * processes */
		if (add_traces(s, n * 2) || (n >= 3 && add_native(s)) ||
		    (n >= 2 && add_sites(s)) || (n == 4 && add_processes(s)) ||
		    snapfile_write(s, path, why, sizeof(why))) {
			fprintf(stderr, "seed_snapfile: cannot write %s\n", path);
			return 1;
		}
		snapshot_free(s);
	}
	return 0;
}
