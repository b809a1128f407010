/* CPython's allocators in a live process (PYTHON.md section 6): the three
 * PyMemAllocatorEx tables (raw, mem, obj), found by decoding the exported
 * wrappers PyMem_RawMalloc, PyMem_Malloc and PyObject_Malloc, the functions
 * they hold (which are what really runs even in a stripped LTO build) and
 * their probes, the coverage warning, and the one write the tracer can make
 * into a target, asked for by name (--hook-pymalloc): pointing the mem and
 * obj tables' malloc and calloc at the raw domain's, undone at detach. */
#ifndef TRACER_PYALLOC_H
#define TRACER_PYALLOC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "probes.h"
#include "python/find.h"
#include "python/free_lists.h"

enum python_alloc_domain {
	PYTHON_ALLOC_RAW,
	PYTHON_ALLOC_MEM,
	PYTHON_ALLOC_OBJ,
	PYTHON_ALLOC_NDOMAINS
};
enum python_alloc_slot {
	PYTHON_ALLOC_CTX,
	PYTHON_ALLOC_MALLOC,
	PYTHON_ALLOC_CALLOC,
	PYTHON_ALLOC_REALLOC,
	PYTHON_ALLOC_FREE
};

/* What the tables held when found. */
enum python_alloc_state {
	PYTHON_ALLOC_DEFAULT,	  /* CPython's own functions (pymalloc's or libc's) */
	PYTHON_ALLOC_LEFT_HOOKED, /* by an earlier --hook-pymalloc that did not end cleanly */
	PYTHON_ALLOC_TRACEMALLOC, /* tracemalloc's hooks: it is tracing */
	PYTHON_ALLOC_OTHER_HOOK,  /* another's (PYTHONMALLOC=debug, an extension) */
};

struct python_alloc {
	pid_t pid;
	struct target_mem *mem;		       /* the target's (python_target.mem), borrowed */
	uint64_t table[PYTHON_ALLOC_NDOMAINS]; /* runtime addresses */
	uint64_t fn[PYTHON_ALLOC_NDOMAINS][5]; /* their contents when found */
	enum python_alloc_state state;
	bool hooked;
	/* the tables as tracing began (after the hook), and as last followed:
	 * a change that is not tracemalloc starting or stopping is said once
	 * (python_alloc_check) */
	uint64_t tracing[PYTHON_ALLOC_NDOMAINS][5];
	uint64_t followed[PYTHON_ALLOC_NDOMAINS][5];   /* as last looked at */
	uint64_t hooks[PYTHON_ALLOC_NDOMAINS][5];      /* tracemalloc's, started since */
	uint64_t defaults[PYTHON_ALLOC_NDOMAINS][5];   /* once it stopped, if it ran before */
	uint64_t unfollowed[PYTHON_ALLOC_NDOMAINS][5]; /* another change, seen once */
	bool tracing_read, change_said;
	/* what python_alloc_check probes a tracemalloc started later with
	 * (borrowed from python_alloc_setup's caller) */
	const struct python_target *target;
	struct tracer_bpf *skel;
	struct probes *probes;
	pid_t attach_pid;
	bool verbose;
	bool hooks_followed, defaults_followed;
};

/* Once CPython t is recognised in process pid: finds its allocator tables,
 * probes every allocator function they hold (attach_pid as for
 * probes_attach_python) and, with hook (--hook-pymalloc), points the mem
 * and obj tables' malloc and calloc at the raw domain's (free and realloc
 * stay: pymalloc hands blocks it does not own to the raw domain). Says what
 * it did on stderr (more with verbose), and what it found when the tables
 * are not CPython's defaults: left hooked by an earlier tracer (taken over
 * by hook, to be restored to the defaults its debug hooks' table gives),
 * tracemalloc's or another hook (refused by hook). Returns 0, or -EINVAL
 * after printing its one error line: the hook was asked for and cannot be
 * made. t->mem
 * must stay open until python_alloc_restore. */
int python_alloc_setup(struct python_alloc *a, const struct python_target *t,
		       struct tracer_bpf *skel, struct probes *p, pid_t pid, pid_t attach_pid,
		       bool hook, enum python_free_lists free_lists, bool verbose);
/* While tracing: follows the tables' changes since the last call.
 * tracemalloc.start() puts its hooks around what they held: probed (as at
 * an attach while it runs), the allocators beneath run nested, so that a
 * block counts once and what tracemalloc allocates for itself inside them
 * not at all. Its stop() puts back what they held: CPython's own, probed
 * then where tracemalloc ran at the attach. Each is followed once (said on
 * stderr), to the functions first seen. Any other change (an extension's
 * PyMem_SetAllocator) is not followed: said once with warn (not for a
 * launched interpreter, which sets its tables after the tracer first reads
 * them). Returns 1 when the tables changed. */
int python_alloc_check(struct python_alloc *a, bool warn);
/* Undoes the hook if python_alloc_setup made it, where the slots still hold
 * our values (changed since: left alone), saying which. */
void python_alloc_restore(struct python_alloc *a);

/* The coverage warning: without pymalloc's functions in the symbol table
 * (a stripped build; with LTO their fast path is inlined into the callers
 * anyway) only blocks that reach libc are seen, unless the process runs with
 * PYTHONMALLOC=malloc or its tables call other functions than pymalloc's
 * (left hooked, tracemalloc's hooks: python_alloc_setup says which). Says
 * so once, with the way out. */
void python_alloc_warn_if_hidden(const struct python_target *t, pid_t pid);

#endif
