/* How long a large snapshot takes: 1,000,000 traces over 100,000 tracebacks
 * of 5 frames (1000 lines in 100 files) are written to a file, loaded back,
 * grouped by every key and printed, the way 'tracer stats' does.
 * Run: make snapshot-perf */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "report/report.h"
#include "model/snapfile.h"
#include "model/snapshot.h"
#include "model/stats.h"

#define NTRACES 1000000u
#define NTRACEBACKS 100000u
#define NLINES 1000u

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static struct snapshot *build(void)
{
	static uint32_t lines[NLINES], tracebacks[NTRACEBACKS];
	struct snapshot *s = snapshot_new();
	char file[64];
	uint32_t i, k;

	s->traceback_limit = 5;
	s->target.command = (uint32_t)snapshot_intern_string(s, "synthetic");
	s->target.host = s->target.command;
	for (i = 0; i < NLINES; i++) {
		snprintf(file, sizeof(file), "/src/file%u.c", i % 100);
		lines[i] = (uint32_t)snapshot_intern_frame(s, file, i, "f");
	}
	for (i = 0; i < NTRACEBACKS; i++) {
		uint32_t ids[5];

		for (k = 0; k < 5; k++)
			ids[k] = lines[k == 0	? i % NLINES
				       : k == 1 ? (i / NLINES) % NLINES
						: (i * 7 + k * 131) % NLINES];
		tracebacks[i] = (uint32_t)snapshot_intern_traceback(s, ids, 5, 5);
	}
	for (i = 0; i < NTRACES; i++)
		if (snapshot_add_trace(s, 0x1000 + i * 16ull, 16 + i % 1000, 0,
				       tracebacks[(i * 2654435761u) % NTRACEBACKS]))
			exit(1);
	return s;
}

int main(void)
{
	static const struct {
		enum stats_key key;
		bool cumulative;
	} reports[] = {{STATS_KEY_LINENO, false},
		       {STATS_KEY_LINENO, true},
		       {STATS_KEY_FILENAME, false},
		       {STATS_KEY_TRACEBACK, false}};
	char path[] = "/tmp/snapshot_perf.XXXXXX", err[256], why[512];
	struct snapshot *s = build(), *loaded;
	FILE *devnull = fopen("/dev/null", "w");
	double t;
	int fd = mkstemp(path);

	close(fd);
	t = now();
	if (snapfile_write(s, path, why, sizeof(why))) {
		fprintf(stderr, "write: %s\n", why);
		return 1;
	}
	printf("write %u traces: %.3f s\n", NTRACES, now() - t);
	t = now();
	if (snapfile_load(path, &loaded, err, sizeof(err))) {
		fprintf(stderr, "load: %s\n", err);
		return 1;
	}
	printf("load: %.3f s\n", now() - t);
	for (size_t i = 0; i < sizeof(reports) / sizeof(reports[0]); i++) {
		struct report_options o = {
		    .key = reports[i].key, .cumulative = reports[i].cumulative, .top = 10};

		t = now();
		report_snapshot(devnull, loaded, &o);
		printf("group and print by %s%s: %.3f s\n", stats_key_name(o.key),
		       o.cumulative ? " (cumulative)" : "", now() - t);
	}
	t = now();
	{
		struct report_options o = {.key = STATS_KEY_TRACEBACK, .top = 10};

		report_compare(devnull, s, loaded, &o);
	}
	printf("compare by traceback: %.3f s\n", now() - t);
	unlink(path);
	snapshot_free(s);
	snapshot_free(loaded);
	return 0;
}
