#include <elfutils/debuginfod.h>
#include <elfutils/libdwelf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <zlib.h>

#include "debuginfo.h"
#include "util/hash.h"


#ifndef CONFIGFS_MAGIC_NUMBER
#define CONFIGFS_MAGIC_NUMBER 0x62656570
#endif

static char *dirs[DEBUGINFO_MAX_DIRS];
static size_t ndirs;

int debuginfo_add_dir(const char *dir)
{
	size_t len = strlen(dir);

	if (dir[0] != '/' || len >= PATH_MAX || ndirs == DEBUGINFO_MAX_DIRS)
		return -EINVAL;
	while (len > 1 && dir[len - 1] == '/')
		len--;
	dirs[ndirs] = strndup(dir, len);
	if (!dirs[ndirs])
		return -ENOMEM;
	ndirs++;
	return 0;
}

/* Pseudo file systems: their "regular files" are kernel interfaces. */
static bool pseudo_fs(long type)
{
	static const long types[] = {PROC_SUPER_MAGIC,	  SYSFS_MAGIC,	       DEBUGFS_MAGIC,
				     TRACEFS_MAGIC,	  CGROUP_SUPER_MAGIC,  CGROUP2_SUPER_MAGIC,
				     BPF_FS_MAGIC,	  SECURITYFS_MAGIC,    SELINUX_MAGIC,
				     SMACK_MAGIC,	  EFIVARFS_MAGIC,      PSTOREFS_MAGIC,
				     DEVPTS_SUPER_MAGIC,  CONFIGFS_MAGIC_NUMBER};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (type == types[i])
			return true;
	return false;
}

/* Opens path read-only if it is a regular file of a real file system and
 * of a size a debug file can have, without opening anything else on the
 * way: the name is resolved to an O_PATH descriptor (no open of a device,
 * no wait on a FIFO), checked, and only then reopened. With root >= 0 the
 * path resolves inside that root directory. Returns a descriptor or
 * -errno. */
static int open_regular(int root, const char *path, struct stat *st)
{
	struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_NO_MAGICLINKS};
	char self[64];
	struct statfs fs;
	struct stat again;
	int pfd, fd;

	if (root >= 0) {
		how.resolve |= RESOLVE_IN_ROOT;
		while (*path == '/')
			path++;
	}
	pfd = (int)syscall(SYS_openat2, root >= 0 ? root : AT_FDCWD, path, &how, sizeof(how));
	if (pfd < 0)
		return -errno;
	if (fstat(pfd, st) || !S_ISREG(st->st_mode) || fstatfs(pfd, &fs) ||
	    pseudo_fs((long)fs.f_type) || st->st_size < (off_t)sizeof(Elf64_Ehdr) ||
	    (unsigned long long)st->st_size > DEBUGINFO_MAX_SIZE) {
		close(pfd);
		return -ENOENT;
	}
	snprintf(self, sizeof(self), "/proc/self/fd/%d", pfd);
	fd = open(self, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	close(pfd);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &again) || again.st_dev != st->st_dev || again.st_ino != st->st_ino) {
		close(fd);
		return -ENOENT;
	}
	return fd;
}

static uint32_t file_crc(int fd, off_t size)
{
	unsigned char *buf = malloc(1 << 16);
	uLong crc = crc32(0, Z_NULL, 0);
	off_t off = 0;

	while (buf && off < size) {
		ssize_t n = pread(fd, buf, sizeof(buf), off);

		if (n <= 0)
			break;
		crc = crc32(crc, buf, (uInt)n);
		off += n;
	}
	free(buf);
	return (uint32_t)crc;
}

/* Says once per file and binary why a debug file is not used (libdwfl asks
 * again for a module whose first lookup failed; --follow has many
 * processes mapping one file). */
static void refuse(const char *path, const char *name, const char *why)
{
	static uint64_t said[256];
	static size_t nsaid;
	uint64_t h = hash_mix(hash_str(path), hash_str(name));

	for (size_t i = 0; i < nsaid; i++)
		if (said[i] == h)
			return;
	if (nsaid < sizeof(said) / sizeof(said[0]))
		said[nsaid++] = h;
	fprintf(stderr, "tracer: debug file %s for %s refused: %s\n", path, name, why);
}

/* Whether fd is an ELF file that belongs to b. */
static bool matches(const struct debuginfo_binary *b, int fd, off_t size, const char *path)
{
	const void *id = NULL;
	ssize_t len;
	Elf *elf;
	bool ok;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return false;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf || elf_kind(elf) != ELF_K_ELF) {
		if (elf)
			elf_end(elf);
		refuse(path, b->name, "not an ELF file");
		return false;
	}
	len = dwelf_elf_gnu_build_id(elf, &id);
	if (b->build_id)
		ok = len == (ssize_t)b->build_id_len && !memcmp(id, b->build_id, (size_t)len);
	else
		ok = b->debuglink && file_crc(fd, size) == b->crc;
	elf_end(elf);
	if (!ok)
		refuse(path, b->name,
		       b->build_id ? "its build-id does not match" : "its CRC does not match");
	return ok;
}

struct search {
	const struct debuginfo_binary *b;
	struct stat self; /* the binary itself: never its own debug file */
	bool have_self;
	int root;	/* /proc/PID/root of a binary opened through it, or -1 */
	char root_name[32];
	char **path;
};

/* Tries one candidate; a descriptor, or -ENOENT to go on. */
static int try(struct search *s, int root, const char *path)
{
	struct stat st;
	char shown[PATH_MAX + 64];
	int fd = open_regular(root, path, &st);

	if (fd < 0)
		return -ENOENT;
	if (s->have_self && st.st_dev == s->self.st_dev && st.st_ino == s->self.st_ino) {
		close(fd);
		return -ENOENT;
	}
	if (root >= 0)
		snprintf(shown, sizeof(shown), "%s%s", s->root_name, path);
	else
		snprintf(shown, sizeof(shown), "%s", path);
	if (!matches(s->b, fd, st.st_size, shown)) {
		close(fd);
		return -ENOENT;
	}
	*s->path = strdup(shown);
	if (!*s->path) {
		close(fd);
		return -ENOMEM;
	}
	return fd;
}

/* Every debug root in search order, as (root fd, directory). */
static int each_root(struct search *s, int (*fn)(struct search *, int, const char *, void *),
		     void *arg)
{
	int fd;

	for (size_t i = 0; i < ndirs; i++)
		if ((fd = fn(s, -1, dirs[i], arg)) != -ENOENT)
			return fd;
	if ((fd = fn(s, -1, "/usr/lib/debug", arg)) != -ENOENT)
		return fd;
	if (s->root >= 0)
		return fn(s, s->root, "/usr/lib/debug", arg);
	return -ENOENT;
}

static int by_build_id(struct search *s, int root, const char *dir, void *arg)
{
	const struct debuginfo_binary *b = s->b;
	char path[PATH_MAX + 256];
	int n = snprintf(path, sizeof(path), "%s/.build-id/%02x/", dir, b->build_id[0]);

	for (size_t i = 1; i < b->build_id_len && n < (int)sizeof(path) - 8; i++)
		n += snprintf(path + n, sizeof(path) - (size_t)n, "%02x", b->build_id[i]);
	snprintf(path + n, sizeof(path) - (size_t)n, ".debug");
	return try(s, root, path);
}

static int by_link_under(struct search *s, int root, const char *dir, void *bindir)
{
	char path[PATH_MAX * 2 + 256];

	snprintf(path, sizeof(path), "%s%s/%s", dir, (const char *)bindir, s->b->debuglink);
	return try(s, root, path);
}

/* A debuglink is a file name: anything else is not followed. */
static bool plain_name(const char *name)
{
	size_t len = strnlen(name, 256);

	return len > 0 && len < 256 && !strchr(name, '/') && strcmp(name, ".") &&
	       strcmp(name, "..");
}

static int by_debuglink(struct search *s)
{
	const struct debuginfo_binary *b = s->b;
	char dir[PATH_MAX], path[PATH_MAX + 300];
	const char *slash = strrchr(b->name, '/');
	int fd, root = -1;

	if (!b->debuglink || !plain_name(b->debuglink) || b->name[0] != '/' || !slash ||
	    (size_t)(slash - b->name) >= sizeof(dir))
		return -ENOENT;
	/* the binary's directory, where the target sees it */
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - b->name), b->name);
	if (strcmp(b->file, b->name))
		root = s->root; /* opened through /proc/PID/...: the target's view */
	if (root >= 0 || !strcmp(b->file, b->name)) {
		snprintf(path, sizeof(path), "%s/%s", dir, b->debuglink);
		if ((fd = try(s, root, path)) != -ENOENT)
			return fd;
		snprintf(path, sizeof(path), "%s/.debug/%s", dir, b->debuglink);
		if ((fd = try(s, root, path)) != -ENOENT)
			return fd;
	}
	return each_root(s, by_link_under, dir);
}

static debuginfod_client *debuginfod;

static int from_debuginfod(struct search *s)
{
	const char *urls = getenv("DEBUGINFOD_URLS");
	char *found = NULL;
	struct stat st;
	int fd;

	if (!urls || !*urls || !s->b->build_id)
		return -ENOENT;
	if (!debuginfod && !(debuginfod = debuginfod_begin()))
		return -ENOENT;
	fd = debuginfod_find_debuginfo(debuginfod, s->b->build_id, (int)s->b->build_id_len,
				       &found);
	if (fd < 0)
		return -ENOENT;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) ||
	    (unsigned long long)st.st_size > DEBUGINFO_MAX_SIZE ||
	    !matches(s->b, fd, st.st_size, found ? found : "(debuginfod)")) {
		close(fd);
		free(found);
		return -ENOENT;
	}
	*s->path = found ? found : strdup("(debuginfod)");
	return fd;
}

/* The /proc/PID/root of a binary opened as /proc/PID/root/... or
 * /proc/PID/map_files/...; -1 otherwise. */
static int target_root(const char *file, char *root, size_t len)
{
	int pid, n = 0;

	if (sscanf(file, "/proc/%d/%n", &pid, &n) != 1 || n == 0 || pid <= 0)
		return -1;
	if (strncmp(file + n, "root/", 5) && strncmp(file + n, "map_files/", 10))
		return -1;
	snprintf(root, len, "/proc/%d/root", pid);
	return open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* The dwz file at the path its link names. */
static int by_alt_name(struct search *s)
{
	const char *alt = s->b->alt, *slash = strrchr(s->b->file, '/');
	char path[PATH_MAX * 2 + 16];
	int fd;

	if (!alt[0] || strnlen(alt, PATH_MAX) == PATH_MAX)
		return -ENOENT;
	if (alt[0] != '/') {
		if (!slash)
			return -ENOENT;
		snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - s->b->file), s->b->file,
			 alt);
		return try(s, -1, path);
	}
	for (size_t i = 0; i < ndirs; i++)
		if (!strncmp(alt, "/usr/lib/debug/", 15)) {
			snprintf(path, sizeof(path), "%s%s", dirs[i], alt + 14);
			if ((fd = try(s, -1, path)) != -ENOENT)
				return fd;
		}
	if ((fd = try(s, -1, alt)) != -ENOENT)
		return fd;
	return s->root >= 0 ? try(s, s->root, alt) : -ENOENT;
}

int debuginfo_find(const struct debuginfo_binary *b, char **path)
{
	struct search s = {.b = b, .path = path};
	int fd = -ENOENT;

	s.root = target_root(b->file, s.root_name, sizeof(s.root_name));
	*path = NULL;
	s.have_self = stat(b->file, &s.self) == 0;
	if (b->build_id && b->build_id_len)
		fd = each_root(&s, by_build_id, NULL);
	if (fd == -ENOENT)
		fd = b->alt ? by_alt_name(&s) : by_debuglink(&s);
	if (fd == -ENOENT)
		fd = from_debuginfod(&s);
	if (s.root >= 0)
		close(s.root);
	return fd;
}

int debuginfo_dwfl_find(Dwfl_Module *mod, void **userdata, const char *modname,
			Dwarf_Addr base, const char *file_name, const char *debuglink_file,
			GElf_Word debuglink_crc, char **debuginfo_file_name)
{
	const unsigned char *id = NULL;
	GElf_Addr vaddr;
	Dwarf_Addr bias;
	int len = dwfl_module_build_id(mod, &id, &vaddr);
	struct debuginfo_binary b = {
	    .file = file_name ? file_name : modname,
	    .name = modname,
	    .build_id = len > 0 ? id : NULL,
	    .build_id_len = len > 0 ? (size_t)len : 0,
	    .debuglink = debuglink_file,
	    .crc = debuglink_crc,
	};
	Elf *elf = dwfl_module_getelf(mod, &bias);
	GElf_Word crc;
	int fd;

	if (!b.file || !b.name)
		return -1;
	/* libdwfl asks again, with the debug file's altlink name in place of
	 * the binary's debuglink, for the dwz file that debug file needs */
	if (debuglink_file && (!elf || debuglink_file != dwelf_elf_gnu_debuglink(elf, &crc))) {
		Dwarf *dw = dwfl_module_getdwarf(mod, &bias);
		const void *alt_id;
		const char *alt;
		ssize_t n = dw ? dwelf_dwarf_gnu_debugaltlink(dw, &alt, &alt_id) : -1;

		if (n <= 0 || alt != debuglink_file)
			return -1;
		b.build_id = alt_id;
		b.build_id_len = (size_t)n;
		b.debuglink = NULL;
		b.alt = alt;
	}
	fd = debuginfo_find(&b, debuginfo_file_name);
	return fd < 0 ? -1 : fd;
}
