/* Where the allocator probes go: every ELF object the target maps that
 * defines a function of the malloc family (libc, a static executable,
 * libstdc++'s operator new, an allocator library), each function once. */
#ifndef TRACER_PROBES_H
#define TRACER_PROBES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "tracer.h" /* before the skeleton: its globals use these types */
#include "tracer.skel.h"

/* An entry point probed. */
struct probes_entry {
	char *path;
	uint64_t offset;
	pid_t pid; /* the process it is for, -1 every one */
	dev_t dev; /* the file's identity */
	ino_t ino;
};

/* What a probe does, for --budget's windows (user/budget.c): the probes
 * of allocations are attached within windows only; those of frees (and
 * reallocs, which free) too when even they cost more than the budget;
 * the others (the loader's hook, CPython's start and end) always. */
enum probes_class {
	PROBES_ALLOCATING,
	PROBES_FREEING,
	PROBES_CONTROL,
	PROBES_NCLASSES,
};
#define PROBES_CLASS_BIT(c) (1u << (c))

struct probes {
	/* a uprobe-multi link, with what makes it again (probes_window) */
	struct probes_link {
		int fd; /* -1 while its class is detached */
		bool retprobe;
		/* it catches returns (a uretprobe, or a call site's probe of
		 * its result): made before the entries, removed after them */
		bool returning;
		enum probes_class cls;
		struct bpf_program *prog;
		pid_t pid;
		char *path;
		uint64_t *offsets, *cookies;
		size_t n;
	} * links;
	/* probes queued for one link each (probes.c's flush) */
	struct probes_pending {
		struct bpf_program *prog;
		bool retprobe, returning;
		enum probes_class cls;
		pid_t pid;
		char *path;
		uint64_t *offsets, *cookies;
		size_t n, cap, cap_cookies;
	} * pending;
	unsigned detached; /* PROBES_CLASS_BITs detached by probes_window */
	size_t npending, cap_pending;
	size_t n, cap;
	struct probes_entry *entries; /* every entry point probed, so that none is probed twice */
	size_t nentries;
	struct probes_file {
		dev_t dev;
		ino_t ino;
		pid_t pid; /* probed for it, -1 every process */
	} * seen; /* every file examined, so that none is probed twice */
	size_t nseen, cap_seen;
	size_t functions;     /* functions probed */
	size_t files;	      /* files that define at least one */
	char failed_at[4200]; /* where an attach failed: "path+0xoff" */
};

/* CPython's obj malloc whose entry has no instruction its return probe
 * could sit on without a single step (3.11's _PyObject_Malloc): its entry
 * probed past its frame's making (py_malloc_inner), its returns at its call
 * sites (python/sites.h's calls: py_call_return, registered in
 * py_call_returns; its tail jumps with entry and return probes on the jmp).
 * 1, 0 when that function is probed already, -EAGAIN when its entry does not
 * gain by it (probe it with probes_attach_python), or a negative errno. */
/* CPython's raw malloc, calloc or realloc (kind) at fn that only
 * tail-jumps to libc's (python/sites.h's python_raw_tail): an entry probe
 * that marks libc's call beneath it as CPython's (py_raw_tail_*), libc's
 * probes catch its return. 1, 0 when probed already, or a negative errno. */
int probes_attach_python_raw_tail(struct tracer_bpf *skel, struct probes *p, pid_t pid,
				  pid_t attach_pid, uint64_t fn, uint64_t size, int kind,
				  bool verbose);

struct python_calls;
/* Whether CPython's allocator at fn (size bytes, kind as for
 * probes_attach_python) would be single-stepped where its return probe can
 * sit, and not past its frame: 1, else 0. */
int probes_python_entry_stepped(pid_t pid, uint64_t fn, uint64_t size, int kind);
struct probes_calls_result {
	uint64_t placed;      /* bytes past the entry */
	size_t calls, tails;  /* call sites and tail jumps probed */
	size_t stepped;	      /* call sites whose probe is single-stepped */
	size_t lost;	      /* sites not registered: their calls are counted */
};
int probes_attach_python_calls(struct tracer_bpf *skel, struct probes *p, pid_t pid,
			       pid_t attach_pid, uint64_t fn, uint64_t size,
			       const struct python_calls *calls, struct probes_calls_result *res,
			       uint64_t pool_cookie, bool verbose);

/* Attaches to the functions defined in the file at path (as the target sees
 * it) for process pid (-1: every process, filtered in BPF). Returns the
 * number of functions probed there (0 for a file examined before, under
 * any path), or a negative errno. */
int probes_attach_file(struct tracer_bpf *skel, struct probes *p, pid_t pid, const char *path,
		       bool verbose);
/* All files of a running process (from /proc/PID/maps). */
int probes_attach_process(struct tracer_bpf *skel, struct probes *p, pid_t pid, pid_t attach_pid,
			  bool verbose);
/* CPython's allocator functions found in its tables rather than by name
 * (pyalloc.h): fn is the address in process pid, size its size in bytes (0:
 * unknown, the probe stays at its entry; else it may move past the
 * prologue as for a named function); kind is the table slot
 * (PYTHON_ALLOC_MALLOC ... PYTHON_ALLOC_FREE); pool_cookie: 0, or (fn is
 * pymalloc's, whose frees run inlined where no probe is: its small blocks
 * get marks) TRACER_COOKIE_POOLED with TRACER_COOKIE_SMALL_POOLS for 4 KiB
 * pools. Returns 1 when probed, 0 when that entry point already is, or a
 * negative errno. */
int probes_attach_python(struct tracer_bpf *skel, struct probes *p, pid_t pid, pid_t attach_pid,
			 uint64_t fn, uint64_t size, int kind, uint64_t pool_cookie, bool verbose);
/* py_site_enter on the tail jump at addr in process pid, where CPython's
 * inlined raw allocator jumps to libc's (python/sites.h): 1, 0 when that
 * spot already is probed, or a negative errno. */
int probes_attach_site(struct tracer_bpf *skel, struct probes *p, pid_t pid, pid_t attach_pid,
		       uint64_t addr, bool verbose);
/* py_new_reference at each of the n code addresses addr of process pid
 * (python/newref.h's checks), with its cookie: how many were made, or a
 * negative errno. */
int probes_attach_new_references(struct tracer_bpf *skel, struct probes *p, pid_t pid,
				 pid_t attach_pid, const uint64_t *addr, const uint64_t *cookie,
				 size_t n, bool verbose);
/* py_code_dealloc on PyCode_Type's tp_dealloc at addr in process pid: 1,
 * 0 when probed already, or a negative errno. */
int probes_attach_code_dealloc(struct tracer_bpf *skel, struct probes *p, pid_t pid,
			       pid_t attach_pid, uint64_t addr, bool verbose);
void probes_detach(struct probes *p);

/* --budget: detaches the links of the classes in mask (entries first), or
 * makes them again from the offsets they had (returns first), without
 * reading any file again. Links made while a class is detached wait for
 * it to be attached. 0, or the first negative errno (the links that could
 * be made are). */
int probes_window(struct probes *p, unsigned mask, bool attach);

/* The probe table, as tests/unit/test_probes.c checks it: a row's
 * function, its entry program in skel (NULL: the row has none) and whether
 * alloc_return goes on its return. */
struct probes_row {
	const char *function;
	struct bpf_program *prog;
	bool returns;
};
/* Row i of the table; false past the last. */
bool probes_row(struct tracer_bpf *skel, size_t i, struct probes_row *row);
/* The probes outside the table: probes_attach_site's and
 * probes_attach_code_dealloc's. */
bool probes_site_row(struct tracer_bpf *skel, struct probes_row *row);
bool probes_code_dealloc_row(struct tracer_bpf *skel, struct probes_row *row);
/* ... and probes_attach_python_calls's and _raw_tail's: row i (0: the
 * entry past the frame, 1: the call sites' returns, 2-4: the raw malloc,
 * calloc and realloc's tail jumps); false past the last. */
bool probes_python_calls_row(struct tracer_bpf *skel, size_t i, struct probes_row *row);
bool probes_new_reference_row(struct tracer_bpf *skel, struct probes_row *row);
/* The row whose program and shape CPython's allocator slot kind takes
 * (PYTHON_ALLOC_MALLOC ... PYTHON_ALLOC_FREE); false for any other kind. */
bool probes_python_row(struct tracer_bpf *skel, int kind, struct probes_row *row);

#endif
