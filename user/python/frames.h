/* Python frames of a traced process: recognise CPython, hand the BPF walker
 * its configuration, and turn the stacks it captured into file:line:function
 * promptly (while their code objects still exist). */
#ifndef TRACER_PYFRAMES_H
#define TRACER_PYFRAMES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "probes.h"
#include "python/find.h"

struct python_frames;

struct python_frames_frame {
	const char *filename;
	uint32_t lineno;
	const char *function;
};

struct python_frames_stack {
	uint32_t nframe, total;
	uint32_t unresolved; /* frames whose code object could not be read */
	struct python_frames_frame frames[];
};

int python_frames_open(struct tracer_bpf *skel, pid_t pid, struct python_frames **out);
void python_frames_close(struct python_frames *p);
/* Called often: recognises the interpreter once it is there, then resolves
 * the stacks captured since the last call. */
void python_frames_poll(struct python_frames *p);
/* The process exec'd: an interpreter in its new image is looked for, as
 * at the start (one that was recognised stays: an exec from CPython into
 * CPython keeps its configuration until it is seen again). */
void python_frames_exec(struct python_frames *p);
/* With several traced processes (-a), each with its own instance: this
 * one resolves only the stacks its own process, and the children it was
 * given (forked, the same interpreter), captured. */
void python_frames_own_only(struct python_frames *p);
int python_frames_adopt(struct python_frames *p, pid_t child);
/* How many polls look for an interpreter before giving up (400: a
 * launched command may take a while to load one; a process that has run
 * a while has one or not). */
void python_frames_set_attempts(struct python_frames *p, int n);
/* The process it was opened for. */
pid_t python_frames_pid(const struct python_frames *p);
/* The resolved stack with this key (resolving it now if needed), or NULL. */
const struct python_frames_stack *python_frames_get(struct python_frames *p, uint64_t key);
/* --hook-pymalloc will make coverage complete: no coverage warning. */
void python_frames_expect_hook(struct python_frames *p);
/* The recognised interpreter, else NULL. */
const struct python_target *python_frames_target(struct python_frames *p);
/* "CPython 3.11.7" once recognised, else NULL. */
const char *python_frames_describe(struct python_frames *p);

#endif
