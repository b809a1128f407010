#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elfsym.h"
#include "python/find.h"
#include "target.h"

/* Per minor version, x86-64 (../shared/PYTHON.md section 2, checked against
 * the DWARF of each build): where the thread state, frames and code objects
 * keep what the walker reads. tss_key is the offset of the gilstate TSS
 * key (autoTSSkey._key) in _PyRuntime. */
struct layout {
	int minor;
	uint32_t tss_key_off;
	struct tracer_py_config cfg;
};

static const struct layout layouts[] = {
    {8,
     1396,
     {.ts_frame = 24, .cframe_current = -1, .fr_previous = 24, .fr_code = 32, .fr_instr = 104}},
    {9,
     588,
     {.ts_frame = 24, .cframe_current = -1, .fr_previous = 24, .fr_code = 32, .fr_instr = 104}},
    {10,
     588,
     {.ts_frame = 24, .cframe_current = -1, .fr_previous = 24, .fr_code = 32, .fr_instr = 96}},
    {11,
     596,
     {.ts_native_tid = 160,
      .ts_frame = 56,
      .cframe_current = 8,
      .fr_previous = 48,
      .fr_code = 32,
      .fr_instr = 56,
      .fr_owner = 69,
      .owner_generator = 1,
      .code_adaptive = 184,
      .code_firsttraceable = 168}},
    {12,
     1548,
     {.ts_native_tid = 144,
      .ts_frame = 56,
      .cframe_current = 0,
      .fr_previous = 8,
      .fr_code = 0,
      .fr_instr = 56,
      .fr_owner = 70,
      .owner_skip_min = 3,
      .owner_generator = 1,
      .code_adaptive = 192,
      .code_firsttraceable = 176}},
    {13,
     2164,
     {.ts_native_tid = 160,
      .ts_frame = 72,
      .cframe_current = -1,
      .fr_previous = 8,
      .fr_code = 0,
      .fr_instr = 56,
      .fr_owner = 70,
      .owner_skip_min = 3,
      .owner_generator = 1,
      .code_adaptive = 200,
      .code_firsttraceable = 184}},
    /* 3.14: f_executable is a _PyStackRef whose low 2 bits are tags; the
     * owner enum gains INTERPRETER (3) before CSTACK (4); the gilstate key
     * still binds the thread (PyGILState_GetThisThreadState of 3.14.8). */
    {14,
     2340,
     {.ts_native_tid = 160,
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
      .code_tag_mask = 3}},
};

/* Where _Py_DebugOffsets keeps the offsets we check, per minor version
 * (Include/internal/pycore_debug_offsets.h; offsetof computed against each
 * version's headers, and read back from the 3.13.0 and 3.14.8 binaries). */
struct debug_positions {
	int minor;
	uint16_t ts_current_frame, ts_native_tid, fr_previous, fr_executable, fr_instr, fr_owner;
	uint16_t co_filename, co_name, co_qualname, co_linetable, co_firstlineno, co_adaptive;
	uint16_t ascii_size, total;
};

static const struct debug_positions debug_positions[] = {
    {13, 184, 200, 232, 240, 248, 264, 280, 288, 296, 304, 312, 344, 560, 584},
    {14, 208, 224, 256, 264, 272, 288, 320, 328, 336, 344, 352, 384, 640, 760},
};

/* glibc 2.36 x86-64: struct pthread.specific_1stblock (from the
 * disassembly of pthread_getspecific). */
#define GLIBC_PTHREAD_SPECIFIC 0x310

int python_read(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread(fd, buf, len, (off_t)addr);
	close(fd);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

static int version_from_name(const char *path, int *minor)
{
	const char *base = strrchr(path, '/');
	const char *p = strstr(base ? base : path, "python3.");

	if (!p)
		return -ENOENT;
	*minor = atoi(p + 8);
	return *minor > 0 ? 0 : -ENOENT;
}

static int64_t u64_at(const uint8_t *b, size_t pos)
{
	uint64_t v;

	memcpy(&v, b + pos, sizeof(v));
	return v > INT32_MAX ? -1 : (int64_t)v;
}

/* PyCode_Type as the process has it: tp_basicsize and the offsets its
 * member table (PyMemberDef {name, type, offset, flags, doc}) gives. */
static void read_code_type(pid_t pid, uint64_t type, struct python_facts *f)
{
	uint8_t obj[248], member[40];
	uint64_t members, name;
	char str[24];
	int i;

	if (!type || python_read(pid, type, obj, sizeof(obj)))
		return;
	f->code_basicsize = u64_at(obj, 32);
	memcpy(&members, obj + 240, 8);
	for (i = 0; members && i < 64; i++) {
		int64_t off;

		if (python_read(pid, members + 40 * (uint64_t)i, member, sizeof(member)))
			return;
		memcpy(&name, member, 8);
		if (!name || python_read(pid, name, str, sizeof(str)))
			return;
		str[sizeof(str) - 1] = '\0';
		off = u64_at(member, 16);
		if (!strcmp(str, "co_filename"))
			f->co_filename = off;
		else if (!strcmp(str, "co_name"))
			f->co_name = off;
		else if (!strcmp(str, "co_qualname"))
			f->co_qualname = off;
		else if (!strcmp(str, "co_firstlineno"))
			f->co_firstlineno = off;
		else if (!strcmp(str, "co_linetable") || !strcmp(str, "co_lnotab"))
			f->co_linetable = off;
	}
}

/* _Py_DebugOffsets at the start of _PyRuntime (3.13+): cookie, version,
 * free_threaded, then the groups of offsets. */
static void read_debug_offsets(pid_t pid, const struct python_target *t, struct python_facts *f)
{
	const struct debug_positions *d = NULL;
	uint8_t buf[1024];
	uint64_t version, free_threaded;
	size_t i;

	for (i = 0; i < sizeof(debug_positions) / sizeof(debug_positions[0]); i++)
		if (debug_positions[i].minor == t->minor)
			d = &debug_positions[i];
	if (!d || python_read(pid, t->runtime, buf, d->total))
		return;
	memcpy(&version, buf + 8, 8);
	memcpy(&free_threaded, buf + 16, 8);
	if (memcmp(buf, "xdebugpy", 8) || (version >> 16) != (uint64_t)(0x300 | t->minor) ||
	    free_threaded)
		return; /* not the layout this table describes: nothing confirmed */
	f->debug_offsets = true;
	f->ts_current_frame = u64_at(buf, d->ts_current_frame);
	f->ts_native_tid = u64_at(buf, d->ts_native_tid);
	f->fr_previous = u64_at(buf, d->fr_previous);
	f->fr_executable = u64_at(buf, d->fr_executable);
	f->fr_instr = u64_at(buf, d->fr_instr);
	f->fr_owner = u64_at(buf, d->fr_owner);
	f->co_adaptive = u64_at(buf, d->co_adaptive);
	f->ascii_size = u64_at(buf, d->ascii_size);
	/* the code object's fields, as the member table gives them too */
	if (f->co_filename != u64_at(buf, d->co_filename) ||
	    f->co_name != u64_at(buf, d->co_name) ||
	    f->co_qualname != u64_at(buf, d->co_qualname) ||
	    f->co_linetable != u64_at(buf, d->co_linetable) ||
	    f->co_firstlineno != u64_at(buf, d->co_firstlineno))
		f->co_filename = -2; /* the process contradicts itself: trust neither */
}

int python_find(pid_t pid, struct python_target *out)
{
	struct target_maps maps;
	size_t i;
	int err = -ENOENT;

	memset(out, 0, sizeof(*out));
	if ((err = target_read_maps(pid, &maps)))
		return err;
	err = -ENOENT;
	for (i = 0; i < maps.n && err == -ENOENT; i++) {
		const struct target_mapping *m = &maps.m[i];
		struct elfsym_file *f;
		struct elfsym rt, ver;
		uint32_t hex;
		char file[PATH_MAX + 64];

		if (!m->path || m->offset != 0)
			continue;
		target_file_path(pid, m, file, sizeof(file));
		if (elfsym_open(file, &f))
			continue;
		if (elfsym_lookup_object(f, "_PyRuntime", &rt)) {
			elfsym_close(f);
			continue;
		}
		out->bias = m->start - elfsym_first_load_vaddr(f);
		out->runtime = out->bias + rt.vaddr;
		snprintf(out->path, sizeof(out->path), "%s", file);
		out->major = 3;
		if (!elfsym_lookup_object(f, "PyCode_Type", &ver))
			out->code_type = out->bias + ver.vaddr;
		if (!elfsym_lookup_object(f, "Py_Version", &ver) &&
		    !elfsym_read(f, ver.vaddr, &hex, sizeof(hex))) {
			out->major = (int)(hex >> 24);
			out->minor = (int)((hex >> 16) & 0xff);
			out->micro = (int)((hex >> 8) & 0xff);
			err = 0;
		} else {
			err = version_from_name(m->path, &out->minor);
			if (err)
				err = -EPROTONOSUPPORT; /* an interpreter we cannot date */
		}
		elfsym_close(f);
	}
	target_maps_free(&maps);
	if (err)
		return err;
	{
		struct python_facts *f = &out->facts;

		f->code_basicsize = f->co_filename = f->co_name = f->co_qualname = -1;
		f->co_firstlineno = f->co_linetable = -1;
		f->ts_current_frame = f->ts_native_tid = f->fr_previous = f->fr_executable = -1;
		f->fr_instr = f->fr_owner = f->co_adaptive = f->ascii_size = -1;
		read_code_type(pid, out->code_type, f);
		read_debug_offsets(pid, out, f);
	}
	for (i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++)
		if (out->major == 3 && layouts[i].minor == out->minor)
			return 0;
	return -EPROTONOSUPPORT;
}

int python_layout_checks_agree(const struct python_layout_check *c, size_t n, char *why, size_t why_len)
{
	for (size_t i = 0; i < n; i++) {
		if (c[i].fact == c[i].table)
			continue;
		if (c[i].fact < 0)
			snprintf(why, why_len, "its %s could not be read", c[i].what);
		else
			snprintf(why, why_len, "its %s is at %lld, the table says %lld", c[i].what,
				 (long long)c[i].fact, (long long)c[i].table);
		return -EPROTO;
	}
	return 0;
}

int python_layout_config(const struct python_target *t, struct tracer_py_config *cfg, char *why,
		      size_t why_len)
{
	const struct python_facts *f = &t->facts;
	size_t i;

	for (i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++)
		if (layouts[i].minor == t->minor)
			break;
	if (i == sizeof(layouts) / sizeof(layouts[0]))
		return -EPROTONOSUPPORT;
	*cfg = layouts[i].cfg;
	cfg->code_ident = t->minor <= 10 ? 104 : 112; /* co_filename, then co_name */
	/* Py_tss_t {int _is_initialized; pthread_key_t _key;}: the walker reads
	 * it itself, so the process may not have created it yet. */
	cfg->tss_key_addr = t->runtime + layouts[i].tss_key_off - 4;
	cfg->pthread_specific = GLIBC_PTHREAD_SPECIFIC;
	cfg->tss_key = -1;
	/* the walker reads these pairs in one go each (bpf/python.bpf.h) */
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
		     t->minor >= 11 ? f->code_basicsize : cfg->code_adaptive, cfg->code_adaptive},
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

		if (python_layout_checks_agree(code, sizeof(code) / sizeof(code[0]), why, why_len))
			return -EPROTO;
		if (t->minor < 13)
			return 0; /* no _Py_DebugOffsets before 3.13 */
		if (!f->debug_offsets) {
			snprintf(why, why_len,
				 "its _Py_DebugOffsets could not be read or are not %d.%d's",
				 t->major, t->minor);
			return -EPROTO;
		}
		return python_layout_checks_agree(debug, sizeof(debug) / sizeof(debug[0]), why, why_len);
	}
}
