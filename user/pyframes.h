/* Python frames of a traced process: recognise CPython, hand the BPF walker
 * its configuration, and turn the stacks it captured into file:line:function
 * promptly (while their code objects still exist). */
#ifndef TRACER_PYFRAMES_H
#define TRACER_PYFRAMES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "probes.h"
#include "python_bpf.h"

struct pyframes;

struct pyframes_frame {
	const char *filename;
	uint32_t lineno;
	const char *function;
};

struct pyframes_stack {
	uint32_t nframe, total;
	uint32_t unresolved; /* frames whose code object could not be read */
	struct pyframes_frame frames[];
};

int pyframes_open(struct tracer_bpf *skel, pid_t pid, struct pyframes **out);
void pyframes_close(struct pyframes *p);
/* Called often: recognises the interpreter once it is there, then resolves
 * the stacks captured since the last call. */
void pyframes_poll(struct pyframes *p);
/* The resolved stack with this key (resolving it now if needed), or NULL. */
const struct pyframes_stack *pyframes_get(struct pyframes *p, uint64_t key);
/* --hook-pymalloc will make coverage complete: no coverage warning. */
void pyframes_expect_hook(struct pyframes *p);
/* The recognised interpreter, else NULL. */
const struct python_target *pyframes_target(struct pyframes *p);
/* "CPython 3.11.7" once recognised, else NULL. */
const char *pyframes_describe(struct pyframes *p);

#endif
