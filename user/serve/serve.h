/* tracer serve: a tracing session whose snapshots feed the HTTP server
 * (serve/server.h) instead of reports, until SIGINT/SIGTERM, -d or the
 * target's exit. */
#ifndef TRACER_SERVE_H
#define TRACER_SERVE_H

#include "serve/server.h"
#include "session.h"

/* The process exit status: 0, 1 (runtime error), 2 (bad input: the
 * address, the token file, the target), having said why in one line. */
int serve_run(struct session_options *trace, const struct server_options *o);

#endif
