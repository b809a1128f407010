/* Where CPython (re)initialises an object: its _Py_NewReference, and the
 * copies of it inlined into its callers (all of them in an LTO build,
 * Debian's python3.11 and python3.14).
 *
 * tracemalloc gives an object taken from a free list (a list, tuple,
 * float, dict, dict keys ... freed earlier, never given back to the
 * allocator) the traceback of the line that takes it (bpo-35053): every
 * _Py_NewReference(op) checks whether tracemalloc traces and then calls its
 * hook (3.8-3.12: _PyTraceMalloc_NewReference(op), guarded by
 * _Py_tracemalloc_config.tracing; 3.13+: the reference tracer,
 * _PyRuntime.ref_tracer.tracer_func(op, PyRefTracer_CREATE, data)). The
 * scanner finds each such check, and the register that holds op there: the
 * tracer's probe on the check's conditional branch re-attributes the
 * object's block as the hook would. */
#ifndef TRACER_PYTHON_NEWREF_H
#define TRACER_PYTHON_NEWREF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The registers a site's op may be in, in the order the BPF program reads
 * them (bpf/tracer.bpf.c's newref_reg). */
enum python_newref_reg {
	NEWREF_RAX, NEWREF_RBX, NEWREF_RCX, NEWREF_RDX, NEWREF_RSI, NEWREF_RDI, NEWREF_RBP,
	NEWREF_R8, NEWREF_R9, NEWREF_R10, NEWREF_R11, NEWREF_R12, NEWREF_R13, NEWREF_R14,
	NEWREF_R15, NEWREF_NREGS,
	NEWREF_RSP = NEWREF_NREGS /* only as the base of an op in memory */
};

/* One check: the conditional branch taken (or not) to the hook's call,
 * where op is reg + disp, or (indirect) the 8 bytes there: LTO keeps op in
 * a stack slot across some calls, loaded into rdi just for the hook's. */
struct python_newref_site {
	uint64_t addr;
	enum python_newref_reg reg;
	int32_t disp;
	bool indirect;
};

/* A probe's cookie: the register (low byte), NEWREF_COOKIE_INDIRECT, the
 * displacement (high 32 bits); bpf/tracer.bpf.c's py_new_reference. */
#define NEWREF_COOKIE_INDIRECT 0x100

struct python_newref_sites {
	struct python_newref_site *v;
	size_t n, cap;
	size_t unresolved; /* checks whose op the scanner could not place (of
			    * paths that call the hook for a new object) */
};

/* What the scanner looks for, at link-time addresses: the flag the check
 * reads (4 bytes: 3.8-3.12; 8 bytes, a function pointer: 3.13+) and, for
 * 3.8-3.12, the hook's function (3.13+: 0, the call goes through the
 * pointer just read, with PyRefTracer_CREATE, 0, in esi). */
struct python_newref_in {
	uint64_t flag;
	uint64_t hook;
	/* a shared library's code reads flag (a GOT slot) for the address of
	 * the structure, and the flag at deref_disp into it */
	bool deref;
	int64_t deref_disp;
};

/* Adds to out the checks in code[0..size), whose first byte is at vaddr.
 * 0 or -ENOMEM. */
int python_newref_scan(const uint8_t *code, size_t size, uint64_t vaddr,
		       const struct python_newref_in *in, struct python_newref_sites *out);

/* The checks of the CPython file at path, loaded at bias (of version
 * minor, 3.x), as addresses in the process. 0, -ENOENT (no _Py_NewReference
 * to learn the flag and hook from), -ENOEXEC, -ENOMEM or -errno. */
int python_newref_find(const char *path, uint64_t bias, int minor,
		       struct python_newref_sites *out);

void python_newref_free(struct python_newref_sites *s);

#endif
