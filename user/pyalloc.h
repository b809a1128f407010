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

#include "python_bpf.h"

enum pyalloc_domain { PYALLOC_RAW, PYALLOC_MEM, PYALLOC_OBJ, PYALLOC_NDOMAINS };
enum pyalloc_slot { PYALLOC_CTX, PYALLOC_MALLOC, PYALLOC_CALLOC, PYALLOC_REALLOC, PYALLOC_FREE };

struct pyalloc {
	pid_t pid;
	uint64_t table[PYALLOC_NDOMAINS];   /* runtime addresses */
	uint64_t fn[PYALLOC_NDOMAINS][5];   /* their contents when found */
	bool hooked;
};

/* Finds the tables of the CPython t in process pid and reads them.
 * Returns 0, -ENOENT (a wrapper is missing or does not decode) or -errno. */
int pyalloc_find(pid_t pid, const struct python_target *t, struct pyalloc *out);

/* --hook-pymalloc: mem and obj malloc/calloc := raw malloc/calloc, after
 * checking that the slots still hold what pyalloc_find read. free and
 * realloc stay: pymalloc hands blocks it does not own to the raw domain.
 * Returns 0, -EBUSY (the tables changed: someone else hooks them) or -errno. */
int pyalloc_hook(struct pyalloc *a);
/* Restores what pyalloc_hook replaced, where the slots still hold our
 * values. Returns 0, -EBUSY (changed since: left alone) or -errno. */
int pyalloc_unhook(struct pyalloc *a);

#endif
