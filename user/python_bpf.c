#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elfsym.h"
#include "python_bpf.h"
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
	{8, 1396, {.ts_frame = 24, .cframe_current = -1, .fr_previous = 24, .fr_code = 32,
		   .fr_instr = 104}},
	{9, 588, {.ts_frame = 24, .cframe_current = -1, .fr_previous = 24, .fr_code = 32,
		  .fr_instr = 104}},
	{10, 588, {.ts_frame = 24, .cframe_current = -1, .fr_previous = 24, .fr_code = 32,
		   .fr_instr = 96}},
	{11, 596, {.ts_native_tid = 160, .ts_frame = 56, .cframe_current = 8, .fr_previous = 48,
		   .fr_code = 32, .fr_instr = 56, .fr_owner = 69, .owner_generator = 1,
		   .code_adaptive = 184, .code_firsttraceable = 168}},
	{12, 1548, {.ts_native_tid = 144, .ts_frame = 56, .cframe_current = 0, .fr_previous = 8,
		    .fr_code = 0, .fr_instr = 56, .fr_owner = 70, .owner_skip_min = 3,
		    .owner_generator = 1, .code_adaptive = 192, .code_firsttraceable = 176}},
	{13, 2164, {.ts_native_tid = 160, .ts_frame = 72, .cframe_current = -1, .fr_previous = 8,
		    .fr_code = 0, .fr_instr = 56, .fr_owner = 70, .owner_skip_min = 3,
		    .owner_generator = 1, .code_adaptive = 200, .code_firsttraceable = 184}},
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
		target_file_path(pid, m->path, file, sizeof(file));
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
	for (i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++)
		if (out->major == 3 && layouts[i].minor == out->minor)
			return 0;
	return -EPROTONOSUPPORT;
}

int python_bpf_config(pid_t pid, const struct python_target *t, struct tracer_py_config *cfg)
{
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
	return 0;
}
