/* Several processes traced at once (-a, -p given several times): which are
 * traced, found at the start and then as BPF notices them (fork, exec, a
 * dlopen), each probed, tabled for the native walker and given its own
 * CPython frames, each its own process in the snapshot (collect.h). */
#ifndef TRACER_MULTI_H
#define TRACER_MULTI_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "collect.h"
#include "probes.h"
#include "session.h"
#include "tracer.h"
#include "tracer.skel.h"
#include "unwind/maps.h"

struct multi {
	const struct session_options *o;
	struct tracer_bpf *skel;
	struct probes *probes;
	struct collector *collect;
	struct unwind_maps *unwind; /* nframe > 1, else NULL */
	/* a link per process (-a with a filter, several -p): a process
	 * outside them pays nothing; else one per file for every process */
	bool per_process_links;
	uint64_t notices_seen, lost_seen;
	double next_python_poll;
	size_t started; /* processes traced at the start */
};

/* Before the BPF object is loaded: its settings and table sizes for o.
 * 0, or 2 after one line on stderr (a cgroup that does not exist). */
int multi_configure(struct multi *m, const struct session_options *o, struct tracer_bpf *skel);
/* Once loaded, with collect open (pid 0): finds and traces the processes.
 * The number traced, or a negative errno after one line. */
int multi_start(struct multi *m);
/* Each turn of the loop: processes BPF noticed, CPython recognition. */
void multi_poll(struct multi *m, double now);
/* Whether any process is still traced (or, with -p, alive). */
bool multi_alive(struct multi *m);
/* The pid links for process pid are made for (-1: every process). */
pid_t multi_attach_pid(const struct multi *m, pid_t pid);

#endif
