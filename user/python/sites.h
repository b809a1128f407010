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

/* The direct calls and tail jumps, in one CPython file, of one of its
 * allocators whose return probe cannot sit on its entry without being
 * single-stepped (3.11's _PyObject_Malloc): each call's return is caught
 * at the call site instead, by a probe at or a few bytes past its return
 * address (user/placement.c's placement_after_call), moved only where no
 * direct branch of the file lands in between; each tail jump gets the
 * function's own entry and return probes (on the jmp, which the kernel
 * emulates, where [rsp] is the return address). */
struct python_call {
	uint64_t addr;	/* call: its return address; tail: the jmp */
	uint32_t probe; /* call: where its return probe sits, bytes past addr */
	bool tail;
	bool emulated;	   /* the probed instruction is emulated */
	bool ret_emulated; /* ... the one at the return address */
};

struct python_calls {
	struct python_call *v;
	size_t n, cap;
	size_t moved_back; /* calls kept at their return address: a branch lands past it */
};

/* At most this many sites are taken: a function called from more places
 * keeps its probes on its entry. */
#define PYTHON_CALLS_MAX 512

/* Adds to out the calls of and jumps to fn (an address in the code's
 * address space) in code[0..size), whose first byte is at vaddr; *targets
 * (*ntargets, *cap) collects every direct branch's target, for
 * python_calls_settle. 0, -E2BIG (more than PYTHON_CALLS_MAX) or -ENOMEM. */
int python_calls_scan(const uint8_t *code, size_t size, uint64_t vaddr, uint64_t fn,
		      struct python_calls *out, uint64_t **targets, size_t *ntargets,
		      size_t *cap);

/* The calls of the function at fn in the CPython file at path, loaded at
 * bias (fn and the sites' addresses in the process). 0, -E2BIG, -ENOEXEC,
 * -ENOMEM or -errno. */
int python_calls_find(const char *path, uint64_t bias, uint64_t fn, struct python_calls *out);

void python_calls_free(struct python_calls *c);

#endif

/* Whether CPython's raw function of kind at fn (size bytes, an address in
 * the process of the file at path, loaded at bias) only tail-jumps to
 * libc's function of that kind: no call, no return, no write of rsp, every
 * branch within it or a jmp to that function's PLT stub (or through its
 * GOT slot), and no way to run off its end (3.11's and 3.14's
 * _PyMem_RawMalloc: `test; mov $1; cmovne; mov %rax,%rdi; jmp malloc`).
 * Its probe then need not catch the return: libc's does. */
bool python_raw_tail(const char *path, uint64_t bias, uint64_t fn, uint64_t size,
		     enum python_site_kind kind);
