/* The per-version table of CPython's layout (see layout.h). Adding a
 * CPython minor version is one edit here: a new entry in layouts[], nothing
 * else in the tracer lists versions. */
#include <errno.h>
#include <stdio.h>

#include "python/layout.h"

/* glibc 2.36 x86-64: struct pthread.specific_1stblock (from the
 * disassembly of pthread_getspecific). */
#define GLIBC_PTHREAD_SPECIFIC 0x310

/* x86-64 (../shared/PYTHON.md sections 2 and 3), checked against the DWARF
 * of each build; debug positions: offsetof computed against each version's
 * headers, and read back from the 3.13.0 and 3.14.8 binaries. */
static const struct python_layout layouts[] = {
    {
	.minor = 8,
	.tss_key = 1396,
	.walker = {.ts_frame = 24,
		   .cframe_current = -1,
		   .fr_previous = 24,
		   .fr_code = 32,
		   .fr_instr = 104},
	.code = {.firstlineno = 40,
		 .filename = 104,
		 .name = 112,
		 .linetable = 120,
		 .ascii_size = 48,
		 .compact_size = 72},
    },
    {
	.minor = 9,
	.tss_key = 588,
	.walker = {.ts_frame = 24,
		   .cframe_current = -1,
		   .fr_previous = 24,
		   .fr_code = 32,
		   .fr_instr = 104},
	.code = {.firstlineno = 40,
		 .filename = 104,
		 .name = 112,
		 .linetable = 120,
		 .ascii_size = 48,
		 .compact_size = 72},
    },
    {
	.minor = 10,
	.tss_key = 588,
	.walker = {.ts_frame = 24,
		   .cframe_current = -1,
		   .fr_previous = 24,
		   .fr_code = 32,
		   .fr_instr = 96},
	.code = {.firstlineno = 40,
		 .filename = 104,
		 .name = 112,
		 .linetable = 120,
		 .ascii_size = 48,
		 .compact_size = 72},
    },
    {
	.minor = 11,
	.tss_key = 596,
	.walker = {.ts_native_tid = 160,
		   .ts_frame = 56,
		   .cframe_current = 8,
		   .fr_previous = 48,
		   .fr_code = 32,
		   .fr_instr = 56,
		   .fr_owner = 69,
		   .owner_generator = 1,
		   .code_adaptive = 184,
		   .code_firsttraceable = 168},
	.code = {.firstlineno = 72,
		 .filename = 112,
		 .name = 128,
		 .linetable = 136,
		 .ascii_size = 48,
		 .compact_size = 72},
    },
    {
	.minor = 12,
	.tss_key = 1548,
	.walker = {.ts_native_tid = 144,
		   .ts_frame = 56,
		   .cframe_current = 0,
		   .fr_previous = 8,
		   .fr_code = 0,
		   .fr_instr = 56,
		   .fr_owner = 70,
		   .owner_skip_min = 3,
		   .owner_generator = 1,
		   .code_adaptive = 192,
		   .code_firsttraceable = 176},
	.code = {.firstlineno = 68,
		 .filename = 112,
		 .name = 128,
		 .linetable = 136,
		 .ascii_size = 40,
		 .compact_size = 56},
    },
    {
	.minor = 13,
	.tss_key = 2164,
	.walker = {.ts_native_tid = 160,
		   .ts_frame = 72,
		   .cframe_current = -1,
		   .fr_previous = 8,
		   .fr_code = 0,
		   .fr_instr = 56,
		   .fr_owner = 70,
		   .owner_skip_min = 3,
		   .owner_generator = 1,
		   .code_adaptive = 200,
		   .code_firsttraceable = 184},
	.code = {.firstlineno = 68,
		 .filename = 112,
		 .name = 128,
		 .linetable = 136,
		 .ascii_size = 40,
		 .compact_size = 56},
	.debug = {.ts_current_frame = 184,
		  .ts_native_tid = 200,
		  .fr_previous = 232,
		  .fr_executable = 240,
		  .fr_instr = 248,
		  .fr_owner = 264,
		  .co_filename = 280,
		  .co_name = 288,
		  .co_qualname = 296,
		  .co_linetable = 304,
		  .co_firstlineno = 312,
		  .co_adaptive = 344,
		  .ascii_size = 560,
		  .total = 584},
    },
    /* 3.14: f_executable is a _PyStackRef whose low 2 bits are tags; the
     * owner enum gains INTERPRETER (3) before CSTACK (4); the gilstate key
     * still binds the thread (PyGILState_GetThisThreadState of 3.14.8). */
    {
	.minor = 14,
	.tss_key = 2340,
	.walker = {.ts_native_tid = 160,
		   .ts_frame = 72,
		   .cframe_current = -1,
		   .fr_previous = 8,
		   .fr_code = 0,
		   .fr_instr = 56,
		   .fr_owner = 74,
		   .owner_skip_min = 3,
		   .owner_generator = 1,
		   .code_adaptive = 208,
		   .code_firsttraceable = 192,
		   .code_tag_mask = 3},
	.code = {.firstlineno = 68,
		 .filename = 112,
		 .name = 128,
		 .linetable = 136,
		 .ascii_size = 40,
		 .compact_size = 56},
	.debug = {.ts_current_frame = 208,
		  .ts_native_tid = 224,
		  .fr_previous = 256,
		  .fr_executable = 264,
		  .fr_instr = 272,
		  .fr_owner = 288,
		  .co_filename = 320,
		  .co_name = 328,
		  .co_qualname = 336,
		  .co_linetable = 344,
		  .co_firstlineno = 352,
		  .co_adaptive = 384,
		  .ascii_size = 640,
		  .total = 760},
    },
};

const struct python_layout *python_layout_for(int minor)
{
	for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++)
		if (layouts[i].minor == minor)
			return &layouts[i];
	return NULL;
}

int python_layout_checks_agree(const struct python_layout_check *c, size_t n, char *why,
			       size_t why_len)
{
	for (size_t i = 0; i < n; i++) {
		if (c[i].fact == c[i].table)
			continue;
		if (c[i].fact < 0) {
			snprintf(why, why_len, "its %s could not be read", c[i].what);
			return -EAGAIN; /* not yet, perhaps: a library not yet relocated */
		}
		snprintf(why, why_len, "its %s is at %lld, the table says %lld", c[i].what,
			 (long long)c[i].fact, (long long)c[i].table);
		return -EPROTO;
	}
	return 0;
}

/* A field of size bytes at off lies whole in the walker's 128-byte read and
 * is aligned, so that its mask leaves it as it is. */
static bool field_fits(uint32_t off, uint32_t size)
{
	return off % size == 0 && off + size <= 128;
}

int python_layout_config(const struct python_target *t, struct tracer_py_config *cfg, char *why,
			 size_t why_len)
{
	const struct python_layout *l = python_layout_for(t->minor);
	const struct python_facts *f = &t->facts;

	if (!l)
		return -EPROTONOSUPPORT;
	*cfg = l->walker;
	cfg->code_ident = l->code.filename; /* co_filename, then co_name */
	/* Py_tss_t {int _is_initialized; pthread_key_t _key;}: the walker reads
	 * it itself, so the process may not have created it yet. */
	cfg->tss_key_addr = t->runtime + l->tss_key - 4;
	cfg->pthread_specific = GLIBC_PTHREAD_SPECIFIC;
	cfg->tss_key = -1;
	/* 3.12's _PyType_PreHeaderSize: the managed dict and weakref pointers */
	cfg->obj_preheader = t->minor >= 12 ? 16 : 0;
	/* the walker masks frame fields into its 128-byte read of a frame, and
	 * reads these pairs in one go each (bpf/python.bpf.h) */
	if (!field_fits(cfg->fr_previous, 8) || !field_fits(cfg->fr_code, 8) ||
	    !field_fits(cfg->fr_instr, cfg->code_adaptive ? 8 : 4) || cfg->fr_owner >= 128)
		return -EPROTONOSUPPORT;
	if (cfg->ts_native_tid &&
	    (cfg->ts_native_tid < cfg->ts_frame || cfg->ts_native_tid - cfg->ts_frame > 108))
		return -EPROTONOSUPPORT;
	if (cfg->code_firsttraceable && cfg->code_firsttraceable - cfg->code_ident + 4 > 127)
		return -EPROTONOSUPPORT;
	/* The code object's fields from PyCode_Type in every version, the
	 * thread state and frame fields from _Py_DebugOffsets where published:
	 * a process that disagrees gets native tracebacks, never wrong frames. */
	{
		const struct python_layout_check code[] = {
		    {"PyCode_Type.co_filename", f->co_filename, cfg->code_ident},
		    {"PyCode_Type.co_name", f->co_name, cfg->code_ident + 8},
		    /* from 3.11 its size is where co_code_adaptive starts */
		    {"PyCode_Type size (co_code_adaptive)",
		     cfg->code_adaptive ? f->code_basicsize : 0, cfg->code_adaptive},
		};
		const struct python_layout_check debug[] = {
		    {"thread state's current_frame", f->ts_current_frame, cfg->ts_frame},
		    {"thread state's native_thread_id", f->ts_native_tid, cfg->ts_native_tid},
		    {"frame's previous", f->fr_previous, cfg->fr_previous},
		    {"frame's executable", f->fr_executable, cfg->fr_code},
		    {"frame's instr_ptr", f->fr_instr, cfg->fr_instr},
		    {"frame's owner", f->fr_owner, cfg->fr_owner},
		    {"code's co_code_adaptive", f->co_adaptive, cfg->code_adaptive},
		};

		int err =
		    python_layout_checks_agree(code, sizeof(code) / sizeof(code[0]), why, why_len);

		if (err)
			return err;
		if (!l->debug.total)
			return 0; /* no _Py_DebugOffsets before 3.13 */
		if (!f->debug_offsets) {
			snprintf(why, why_len,
				 "its _Py_DebugOffsets could not be read or are not %d.%d's",
				 t->major, t->minor);
			return -EAGAIN;
		}
		return python_layout_checks_agree(debug, sizeof(debug) / sizeof(debug[0]), why,
						  why_len);
	}
}

int python_layout_check_code(const struct python_target *t, char *why, size_t why_len)
{
	const struct python_layout *l = python_layout_for(t->minor);
	const struct python_facts *f = &t->facts;

	if (!l)
		return -EPROTONOSUPPORT;
	{
		const struct python_layout_check checks[] = {
		    {"co_filename", f->co_filename, l->code.filename},
		    {t->minor >= 11 ? "co_qualname" : "co_name",
		     t->minor >= 11 ? f->co_qualname : f->co_name, l->code.name},
		    {"co_firstlineno", f->co_firstlineno, l->code.firstlineno},
		    {t->minor >= 10 ? "co_linetable" : "co_lnotab", f->co_linetable,
		     l->code.linetable},
		    {"sizeof(PyASCIIObject)", f->debug_offsets ? f->ascii_size : l->code.ascii_size,
		     l->code.ascii_size},
		};

		return python_layout_checks_agree(checks, sizeof(checks) / sizeof(checks[0]), why,
						  why_len);
	}
}
