/* CPython's allocator tables in a live process (PYTHON.md section 6): the
 * three PyMemAllocatorEx tables (raw, mem, obj), found by decoding the
 * exported wrappers PyMem_RawMalloc, PyMem_Malloc and PyObject_Malloc, and
 * the functions they hold, which are what really runs even in a stripped
 * LTO build. And the one write the tracer can make into a target, asked for
 * by name (--hook-pymalloc): pointing the mem and obj tables' malloc and
 * calloc at the raw domain's, undone at detach. */
#ifndef TRACER_PYALLOC_H
#define TRACER_PYALLOC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "python/find.h"

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

struct python_alloc {
	pid_t pid;
	struct target_mem *mem;		       /* the target's (python_target.mem), borrowed */
	uint64_t table[PYTHON_ALLOC_NDOMAINS]; /* runtime addresses */
	uint64_t fn[PYTHON_ALLOC_NDOMAINS][5]; /* their contents when found */
	bool hooked;
};

/* Finds the tables of the CPython t in process pid and reads them through
 * t->mem, which must stay open while out is in use.
 * Returns 0, -ENOENT (a wrapper is missing or does not decode) or -errno. */
int python_alloc_find(pid_t pid, const struct python_target *t, struct python_alloc *out);

/* --hook-pymalloc: mem and obj malloc/calloc := raw malloc/calloc, after
 * checking that the slots still hold what python_alloc_find read. free and
 * realloc stay: pymalloc hands blocks it does not own to the raw domain.
 * Returns 0, -EBUSY (the tables changed: someone else hooks them) or -errno. */
int python_alloc_hook(struct python_alloc *a);
/* Restores what python_alloc_hook replaced, where the slots still hold our
 * values. Returns 0, -EBUSY (changed since: left alone) or -errno. */
int python_alloc_unhook(struct python_alloc *a);

#endif
