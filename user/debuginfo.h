/* Separate debug information, found where distributions put it:
 *
 * 1. by build-id: DIR/.build-id/xx/yyyy.debug for each --debug-dir, then
 *    /usr/lib/debug, then the target's own /usr/lib/debug (a container);
 * 2. by .gnu_debuglink: beside the binary, in its .debug/ subdirectory, and
 *    under each debug directory followed by the binary's directory;
 * 3. from debuginfod (libdebuginfod) when DEBUGINFOD_URLS is set.
 *
 * A debug file that dwz made refers to a shared one (.gnu_debugaltlink: a
 * path and that file's build-id), looked for by build-id in the same
 * places, then at the path: as given, relative to the debug file, and with
 * a leading /usr/lib/debug replaced by each --debug-dir.
 *
 * The tracer runs as root and the target controls the binary (its build-id
 * and debuglink bytes) and maybe the directories: a candidate is looked at
 * without opening it first (O_PATH), and only a regular file on a real file
 * system, of bounded size, is opened (read only, non-blocking); it must be an
 * ELF file whose build-id equals the binary's (or, for a binary without
 * one, whose CRC equals the debuglink's), else it is refused with one line
 * on stderr. A debuglink naming anything but a plain file name is ignored.
 * Under /proc/PID/root, paths resolve inside the target's root. */
#ifndef TRACER_DEBUGINFO_H
#define TRACER_DEBUGINFO_H

#include <elfutils/libdwfl.h>
#include <stddef.h>
#include <stdint.h>

/* The largest debug file looked at (libLLVM's is ~1.5 GiB). */
#define DEBUGINFO_MAX_SIZE (16ULL << 30)

#define DEBUGINFO_MAX_DIRS 16

/* Adds a directory searched before /usr/lib/debug (--debug-dir); it must
 * be an absolute path. Returns 0, -EINVAL or -ENOMEM. */
int debuginfo_add_dir(const char *dir);

/* What a lookup knows of the binary. file is the path it was opened by
 * (possibly /proc/PID/root/...), name the path the target maps it as. */
struct debuginfo_binary {
	const char *file;
	const char *name;
	const uint8_t *build_id; /* NULL when it has none */
	size_t build_id_len;
	const char *debuglink; /* NULL when it has none */
	uint32_t crc;	       /* the debuglink's CRC-32 */
	/* Looking for the dwz file a debug file's .gnu_debugaltlink names:
	 * build_id is that link's, file the debug file, alt the name. */
	const char *alt;
};

/* Opens the debug file of b: a read-only descriptor, and its path in
 * *path (malloc'd), or a negative errno (-ENOENT: none found). */
int debuginfo_find(const struct debuginfo_binary *b, char **path);

/* The same as a Dwfl_Callbacks find_debuginfo. */
int debuginfo_dwfl_find(Dwfl_Module *mod, void **userdata, const char *modname,
			Dwarf_Addr base, const char *file_name, const char *debuglink_file,
			GElf_Word debuglink_crc, char **debuginfo_file_name);

#endif
