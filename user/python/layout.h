/* CPython's layout, per minor version (x86-64, default GIL builds): the one
 * table of everything version-specific the tracer reads — the BPF frame
 * walker's configuration, the code object and str layout the code reader
 * uses, and where _Py_DebugOffsets (3.13+) publishes the fields checked
 * against it. Adding a CPython minor version is one edit in one file: a new
 * entry in layout.c's table. */
#ifndef TRACER_PYTHON_LAYOUT_H
#define TRACER_PYTHON_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "python/find.h"
#include "tracer.h"

/* Where a code object and a str keep their fields (PYTHON.md section 2). */
struct python_layout_code {
	uint32_t firstlineno, filename, linetable; /* co_name follows co_filename */
	uint32_t name;				   /* co_name; co_qualname from 3.11 */
	uint32_t ascii_size;			   /* sizeof(PyASCIIObject) */
	uint32_t compact_size;			   /* sizeof(PyCompactUnicodeObject) */
};

/* Where _Py_DebugOffsets keeps each offset we check
 * (Include/internal/pycore_debug_offsets.h); total 0: not published. */
struct python_layout_debug {
	uint16_t ts_current_frame, ts_native_tid;
	uint16_t fr_previous, fr_executable, fr_instr, fr_owner;
	uint16_t co_filename, co_name, co_qualname, co_linetable, co_firstlineno, co_adaptive;
	uint16_t ascii_size;
	uint16_t total; /* sizeof(_Py_DebugOffsets) */
};

struct python_layout {
	int minor;
	uint32_t tss_key; /* offsetof(_PyRuntime, autoTSSkey._key): the gilstate key */
	/* what bpf/python.bpf.h reads; code_ident, tss_key_addr, tss_key and
	 * pthread_specific are filled in by python_layout_config */
	struct tracer_py_config walker;
	struct python_layout_code code;
	struct python_layout_debug debug;
};

/* The table's entry for CPython 3.minor, or NULL. */
const struct python_layout *python_layout_for(int minor);

/* One offset of a layout table against what the process revealed (a fact
 * below 0 was not revealed). */
struct python_layout_check {
	const char *what;
	int64_t fact, table;
};

/* 0 when every check agrees; else -EPROTO (a fact differs) or -EAGAIN (one
 * could not be read) with why naming the first that
 * does not. */
int python_layout_checks_agree(const struct python_layout_check *c, size_t n, char *why,
			       size_t why_len);

/* The walker's configuration for this interpreter: 0, -EPROTONOSUPPORT, or
 * -EPROTO when the process's own facts contradict the table (why says how). */
int python_layout_config(const struct python_target *t, struct tracer_py_config *cfg, char *why,
			 size_t why_len);

/* 0 when the process's PyCode_Type (and _Py_DebugOffsets, 3.13+) agree
 * with the code and str layout the code reader uses; -EPROTONOSUPPORT, or
 * -EPROTO with why filled if not. */
int python_layout_check_code(const struct python_target *t, char *why, size_t why_len);

#endif
