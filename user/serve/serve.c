#include <errno.h>
#include <stdio.h>

#include "serve/serve.h"

static bool wants(void *arg)
{
	return server_wants_snapshot(arg);
}

static void give(void *arg, struct snapshot *snap, double build_seconds)
{
	server_publish(arg, snap, build_seconds);
}

/* SIGHUP: the log opened again (logrotate's convention); the tracing and
 * the serving go on whatever happens. */
static void hangup(void *arg)
{
	char why[512];

	if (server_reopen_log(arg, why, sizeof(why)))
		fprintf(stderr, "tracer: %s\n", why);
}

int serve_run(struct session_options *trace, const struct server_options *o)
{
	struct server *srv;
	char why[512];
	int err, rc;

	/* everything the user gave is checked before anything is traced */
	if (server_check(o, why, sizeof(why)) || server_start(o, &srv, why, sizeof(why))) {
		fprintf(stderr, "tracer: %s\n", why);
		return 2;
	}
	fprintf(stderr, "tracer: serving on http://%s/ (/debug/pprof/heap, /metrics, /snapshot)\n",
		server_address(srv));
	struct session_consumer consumer = {
	    .wants = wants, .give = give, .hangup = hangup, .arg = srv};

	trace->consumer = &consumer;
	rc = session_run(trace);
	err = rc;
	server_stop(srv);
	return err;
}
