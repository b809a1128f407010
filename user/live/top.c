#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "live/top.h"
#include "live/view.h"
#include "target.h"

static bool wants(void *arg)
{
	return live_view_wants(arg);
}

static void give(void *arg, struct snapshot *snap, double build_seconds)
{
	live_view_show(arg, snap, build_seconds);
}

static bool done(void *arg)
{
	return live_view_quit(arg);
}

/* What the session says on stderr while the view has the terminal goes to
 * a file, shown once the terminal is given back. */
static int hold_stderr(FILE **held)
{
	int saved;

	fflush(stderr);
	*held = tmpfile();
	if (!*held)
		return -1;
	saved = dup(STDERR_FILENO);
	if (saved < 0 || dup2(fileno(*held), STDERR_FILENO) < 0) {
		if (saved >= 0)
			close(saved);
		fclose(*held);
		*held = NULL;
		return -1;
	}
	return saved;
}

static void release_stderr(FILE *held, int saved)
{
	char buf[4096];
	size_t n;

	if (!held)
		return;
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(held);
	while ((n = fread(buf, 1, sizeof(buf), held)) > 0)
		fwrite(buf, 1, n, stderr);
	fclose(held);
}

int top_run(struct session_options *trace)
{
	struct live_view_options vo = {.key = trace->report.key,
				       .top = trace->report.top,
				       .refresh = trace->interval > 0 ? trace->interval : 1};
	struct session_consumer consumer = {.wants = wants, .give = give, .done = done};
	struct live_view *v;
	char why[256];
	FILE *held = NULL;
	int rc, saved;

	if (!trace->pid || trace->argv) {
		fprintf(stderr, "tracer: tracer top attaches to a running process (-p PID)\n");
		return 2;
	}
	if (target_traceable(trace->pid, why, sizeof(why))) {
		fprintf(stderr, "tracer: %s\n", why);
		return 2;
	}
	trace->interval = 0; /* the view's refresh, not reports */
	v = live_view_open(&vo, why, sizeof(why));
	if (!v) {
		fprintf(stderr, "tracer: %s\n", why);
		return 2;
	}
	saved = hold_stderr(&held);
	consumer.arg = v;
	trace->consumer = &consumer;
	rc = session_run(trace);
	live_view_close(v);
	release_stderr(held, saved);
	free(v);
	return rc;
}
