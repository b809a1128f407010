/* tracer top: a session whose snapshots, one a second, go to the terminal
 * view (live/view.h) instead of reports. */
#ifndef TRACER_LIVE_TOP_H
#define TRACER_LIVE_TOP_H

#include "session.h"

/* Runs tracer top on the process trace->pid; returns the exit status. */
int top_run(struct session_options *trace);

#endif
