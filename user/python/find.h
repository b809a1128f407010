/* CPython in a process: which file holds the interpreter, its version, and
 * what the process reveals about its own layout (to check python/layout.c's
 * table against). */
#ifndef TRACER_PYTHON_FIND_H
#define TRACER_PYTHON_FIND_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "target.h"

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
	/* the process's memory, read through by the python/ modules; owned by
	 * python_find's caller, open while the target is in use */
	struct target_mem *mem;
};

/* Finds CPython in the process whose memory mem is (mem->pid), reading
 * its facts through mem. 0, -ENOENT when the process runs no CPython,
 * -EPROTONOSUPPORT for a version without a layout table (out->minor says
 * which). */
int python_find(struct target_mem *mem, struct python_target *out);

#endif
