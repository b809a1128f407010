/* CPython seen from the probes: which file of a process holds the
 * interpreter, its version, and the layout the BPF frame walker
 * (bpf/python.bpf.h) needs to read the allocating thread's frames. */
#ifndef TRACER_PYTHON_BPF_H_USER
#define TRACER_PYTHON_BPF_H_USER

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "tracer.h"

/* What a CPython process reveals about its own layout, to check the tables
 * against: PyCode_Type (its size and member table, all versions) and, from
 * 3.13, the _Py_DebugOffsets that start _PyRuntime. -1: not revealed. */
struct python_facts {
	int64_t code_basicsize; /* == offsetof(co_code_adaptive) from 3.11 */
	int64_t co_filename, co_name, co_qualname, co_firstlineno, co_linetable;
	bool debug_offsets; /* the fields below were read from _Py_DebugOffsets */
	int64_t ts_current_frame, ts_native_tid, fr_previous, fr_executable, fr_instr, fr_owner;
	int64_t co_adaptive, ascii_size;
};

struct python_target {
	int major, minor, micro;
	uint64_t runtime;   /* address of _PyRuntime in the process */
	uint64_t code_type; /* address of PyCode_Type; 0: not found */
	struct python_facts facts;
	uint64_t bias; /* load bias of the interpreter's file */
	char path[PATH_MAX + 64];
};

/* 0, -ENOENT when the process runs no CPython, -EPROTONOSUPPORT for a
 * version without a layout table (out->minor says which). */
int python_find(pid_t pid, struct python_target *out);

/* One offset of a layout table against what the process revealed (a fact
 * below 0 was not revealed). */
struct python_layout_check {
	const char *what;
	int64_t fact, table;
};

/* 0 when every check agrees; else -EPROTO with why naming the first that
 * does not. */
int python_layout_checks_agree(const struct python_layout_check *c, size_t n, char *why, size_t why_len);

/* The walker's configuration for this interpreter: 0, -EPROTONOSUPPORT, or
 * -EPROTO when the process's own facts contradict the table (why says how). */
int python_layout_config(const struct python_target *t, struct tracer_py_config *cfg, char *why,
		      size_t why_len);

/* Reads len bytes of the process's memory at addr (no ptrace, no writes). */
int python_read(pid_t pid, uint64_t addr, void *buf, size_t len);

#endif
