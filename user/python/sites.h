/* CPython's inlined raw-allocator calls: where an LTO build (Debian's
 * python3.11 and python3.14) calls libc's malloc, calloc or realloc on behalf
 * of PyMem_RawMalloc & co inlined into their callers.
 *
 * GCC devirtualises a call through the raw domain's table slot into
 * "load the slot; compare it with the default function (_PyMem_RawRealloc);
 * if equal, run its inlined body, which ends in a call or a tail jump to
 * libc's function; else call through the slot". So a call to libc's
 * allocator that a test against the raw domain's default function guards is
 * CPython's own allocator, whose blocks tracemalloc puts in its domain 0; an
 * unguarded one is CPython calling libc directly, which tracemalloc never
 * sees. The guard is what tells them apart: the callers are arbitrary code.
 * Through the table's slot (tracemalloc's hooks, PYTHONMALLOC=malloc_debug)
 * the functions probed from the tables run instead. */
#ifndef TRACER_PYTHON_SITES_H
#define TRACER_PYTHON_SITES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum python_site_kind {
	PYTHON_SITE_MALLOC,
	PYTHON_SITE_CALLOC,
	PYTHON_SITE_REALLOC,
	PYTHON_SITE_NKINDS
};

/* One inlined call: a `call` is known by its return address (what the
 * libc function's return probe sees), a tail `jmp` by its own address (it
 * has no return address of its own in CPython: it is probed). */
struct python_site {
	uint64_t addr; /* call: the return address; jmp: the jmp */
	enum python_site_kind kind;
	bool tail;
};

struct python_sites {
	struct python_site *v;
	size_t n, cap;
	size_t calls, tails; /* of v */
	size_t unguarded;    /* calls to libc's allocators with no guard: CPython's own */
};

/* What the scanner looks for, in the code's address space: the address
 * each kind's guard compares with (the raw domain's default function), and
 * the libc functions' entry points in the code: a PLT stub (called
 * directly) or a GOT slot (called through, -fno-plt). */
struct python_sites_callee {
	uint64_t addr;
	enum python_site_kind kind;
	bool slot; /* addr is a GOT slot: `call *addr(%rip)` */
};

struct python_sites_in {
	uint64_t guard[PYTHON_SITE_NKINDS]; /* 0: that kind has no guard to find */
	const struct python_sites_callee *callees;
	size_t ncallees;
};

/* Adds to out the guarded sites of code[0..size), whose first byte is at
 * vaddr: a linear sweep. 0 or -ENOMEM. */
int python_sites_scan(const uint8_t *code, size_t size, uint64_t vaddr,
		      const struct python_sites_in *in, struct python_sites *out);

/* The sites of the CPython file at path, loaded at bias, whose raw domain's
 * default functions are at guard[] in the process (0: none): addresses in
 * the process. 0, -ENOEXEC, -ENOMEM or -errno. */
int python_sites_find(const char *path, uint64_t bias, const uint64_t guard[PYTHON_SITE_NKINDS],
		      struct python_sites *out);

void python_sites_free(struct python_sites *s);

#endif
