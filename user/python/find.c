/* CPython in a process: the file holding _PyRuntime, its version, and the
 * facts the process gives about its layout (PyCode_Type's member table,
 * _Py_DebugOffsets at the positions python/layout.c lists). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elfsym.h"
#include "python/find.h"
#include "python/layout.h"

/* "pythonX.Y" or "libpythonX.Y..." in a file's name. */
static int version_from_name(const char *path, int *major, int *minor)
{
	const char *base = strrchr(path, '/');
	const char *p = strstr(base ? base + 1 : path, "python");

	if (!p || (p[6] != '2' && p[6] != '3') || p[7] != '.' || p[8] < '0' || p[8] > '9')
		return -ENOENT;
	*major = p[6] - '0';
	*minor = atoi(p + 8);
	return 0;
}

static int64_t u64_at(const uint8_t *b, size_t pos)
{
	uint64_t v;

	memcpy(&v, b + pos, sizeof(v));
	return v > INT32_MAX ? -1 : (int64_t)v;
}

/* PyCode_Type as the process has it: tp_basicsize and the offsets its
 * member table (PyMemberDef {name, type, offset, flags, doc}) gives. */
static void read_code_type(struct target_mem *mem, uint64_t type, struct python_facts *f)
{
	uint8_t obj[248], member[40];
	uint64_t members, name;
	char str[24];
	int i;

	if (!type || target_mem_read(mem, type, obj, sizeof(obj)))
		return;
	f->code_basicsize = u64_at(obj, 32);
	memcpy(&members, obj + 240, 8);
	for (i = 0; members && i < 64; i++) {
		int64_t off;

		if (target_mem_read(mem, members + 40 * (uint64_t)i, member, sizeof(member)))
			return;
		memcpy(&name, member, 8);
		if (!name || target_mem_read(mem, name, str, sizeof(str)))
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
static void read_debug_offsets(struct target_mem *mem, const struct python_target *t,
			       struct python_facts *f)
{
	const struct python_layout *l = python_layout_for(t->minor);
	const struct python_layout_debug *d = l ? &l->debug : NULL;
	uint8_t buf[1024];
	uint64_t version, free_threaded;

	if (!d || !d->total || d->total > sizeof(buf) ||
	    target_mem_read(mem, t->runtime, buf, d->total))
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

/* Whether the file of mapping m is loaded as code (some mapping of it is
 * executable), not a file the process maps to read (a debugger's, a
 * tracer's, libelf's own mmap of an interpreter's ELF). */
static bool mapped_as_code(const struct target_maps *maps, const struct target_mapping *m)
{
	for (size_t i = 0; i < maps->n; i++)
		if (maps->m[i].exec && maps->m[i].dev == m->dev && maps->m[i].ino == m->ino)
			return true;
	return false;
}

int python_find(struct target_mem *mem, struct python_target *out)
{
	pid_t pid = mem->pid;
	struct target_maps maps;
	size_t i;
	int err = -ENOENT;

	memset(out, 0, sizeof(*out));
	out->mem = mem;
	if ((err = target_read_maps(pid, &maps)))
		return err;
	err = -ENOENT;
	for (i = 0; i < maps.n && err == -ENOENT; i++) {
		const struct target_mapping *m = &maps.m[i];
		struct elfsym_file *f;
		struct elfsym rt, ver;
		uint32_t hex;
		char file[PATH_MAX + 64];

		if (!m->path || m->offset != 0 || !mapped_as_code(&maps, m))
			continue;
		target_file_path(pid, m, file, sizeof(file));
		if (elfsym_open(file, &f))
			continue;
		if (elfsym_lookup_object(f, "_PyRuntime", &rt)) {
			/* before 3.7 there is no _PyRuntime: an interpreter all the
			 * same, which the tracer cannot read */
			if (!elfsym_lookup(f, "Py_Initialize", &ver) &&
			    !version_from_name(m->path, &out->major, &out->minor))
				err = -EPROTONOSUPPORT;
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
			err = version_from_name(m->path, &out->major, &out->minor);
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
		read_code_type(mem, out->code_type, f);
		read_debug_offsets(mem, out, f);
	}
	return out->major == 3 && python_layout_for(out->minor) ? 0 : -EPROTONOSUPPORT;
}
