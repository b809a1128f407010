/* libFuzzer target: symbolizing reads files the target controls (its
 * executable, libraries and their debug files). The input is a whole ELF
 * file, given to libdwfl as a module; modsym_frames then resolves addresses
 * spread over the module and at each of its symbols. Whatever the input
 * (symbols, line tables, DIE trees of any depth, inlined calls of any
 * nesting, file indexes out of range), it must return without a crash, a
 * leak or an out-of-bounds access, with 1..SYMBOLIZE_MAX_INLINE frames. */
#include <elfutils/libdwfl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "modsym.h"

static int no_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname,
			Dwarf_Addr base, const char *file_name, const char *debuglink_file,
			GElf_Word debuglink_crc, char **debuginfo_file_name)
{
	return -1;
}

static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = no_debuginfo,
};

static void frames_at(struct modsym *m, Dwarf_Addr pc)
{
	struct symbolize_frame f[SYMBOLIZE_MAX_INLINE];
	size_t n = modsym_frames(m, pc, f);

	if (n < 1 || n > SYMBOLIZE_MAX_INLINE)
		abort();
	for (size_t i = 0; i < n; i++) {
		if (f[i].filename && !*f[i].filename && f[i].lineno)
			abort();
		free((char *)f[i].filename);
		free((char *)f[i].function);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	int fd = memfd_create("fuzz_symbols", MFD_CLOEXEC);
	Dwfl *dwfl;
	Dwfl_Module *mod;
	Dwarf_Addr start, end;

	if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	dwfl = dwfl_begin(&callbacks);
	dwfl_report_begin(dwfl);
	mod = dwfl_report_elf(dwfl, "fuzz", path, -1, 0x400000, false);
	dwfl_report_end(dwfl, NULL, NULL);
	if (mod && dwfl_module_info(mod, NULL, &start, &end, NULL, NULL, NULL, NULL)) {
		struct modsym *m = modsym_new(mod);
		int nsyms = dwfl_module_getsymtab(mod);

		for (int i = 0; m && i < 64 && end > start; i++)
			frames_at(m, start + (end - start) / 64 * (Dwarf_Addr)i);
		for (int i = 1; m && i < nsyms && i < 256; i++) {
			GElf_Sym sym;
			GElf_Addr addr;

			if (dwfl_module_getsym_info(mod, i, &sym, &addr, NULL, NULL, NULL)) {
				frames_at(m, addr);
				frames_at(m, addr + sym.st_size / 2);
			}
		}
		modsym_free(m);
	}
	dwfl_end(dwfl);
	close(fd);
	return 0;
}
