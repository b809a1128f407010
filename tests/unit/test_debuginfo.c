/* debuginfo.c: where separate debug files are looked for, and what is
 * refused. The "debug file" is this test program itself (an ELF file with a
 * build-id), copied into a temporary directory laid out as /usr/lib/debug. */
#include <elfutils/libdwelf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "debuginfo.h"

static char dir[PATH_MAX], self[PATH_MAX];
static uint8_t id[64];
static size_t id_len;
static uint32_t self_crc;

static void run(const char *fmt, ...)
{
	char cmd[3 * PATH_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
	int fd = open("/proc/self/exe", O_RDONLY);
	const void *p;
	unsigned char buf[65536];
	ssize_t n;
	uLong crc = crc32(0, Z_NULL, 0);
	Elf *elf;

	elf_version(EV_CURRENT);
	elf = elf_begin(fd, ELF_C_READ, NULL);
	id_len = (size_t)dwelf_elf_gnu_build_id(elf, &p);
	if (id_len == 0 || id_len > sizeof(id))
		return -1;
	memcpy(id, p, id_len);
	elf_end(elf);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		crc = crc32(crc, buf, (uInt)n);
	self_crc = (uint32_t)crc;
	close(fd);
	if (readlink("/proc/self/exe", self, sizeof(self) - 1) < 0)
		return -1;
	snprintf(dir, sizeof(dir), "/tmp/test_debuginfo.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	if (debuginfo_add_dir(dir))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

/* dir/.build-id/xx/yyyy.debug for our build-id */
static void build_id_path(char *out, size_t len)
{
	int n = snprintf(out, len, "%s/.build-id/%02x/", dir, id[0]);

	for (size_t i = 1; i < id_len; i++)
		n += snprintf(out + n, len - (size_t)n, "%02x", id[i]);
	snprintf(out + n, len - (size_t)n, ".debug");
}

static int find(const struct debuginfo_binary *b, char **path)
{
	int fd = debuginfo_find(b, path);

	if (fd >= 0)
		close(fd);
	return fd;
}

static void test_by_build_id(void **state)
{
	char want[PATH_MAX], *path = NULL;
	struct debuginfo_binary b = {
	    .file = "/nonexistent/bin/prog", .name = "/nonexistent/bin/prog", .build_id = id,
	    .build_id_len = id_len};

	build_id_path(want, sizeof(want));
	run("mkdir -p \"$(dirname '%s')\" && cp '%s' '%s'", want, self, want);
	assert_true(find(&b, &path) >= 0);
	assert_string_equal(path, want);
	free(path);
	/* another build-id is not ours: refused */
	uint8_t other[64];

	memcpy(other, id, id_len);
	other[id_len - 1] ^= 1;
	b.build_id = other;
	assert_int_equal(find(&b, &path), -ENOENT);
	assert_null(path);
	run("rm -f '%s'", want);
}

static void test_by_build_id_refuses_another_file(void **state)
{
	char want[PATH_MAX], *path = NULL;
	struct debuginfo_binary b = {
	    .file = "/nonexistent/p", .name = "/nonexistent/p", .build_id = id,
	    .build_id_len = id_len};

	build_id_path(want, sizeof(want));
	run("mkdir -p \"$(dirname '%s')\" && cp /bin/true '%s'", want, want);
	assert_int_equal(find(&b, &path), -ENOENT); /* an ELF file, another build-id */
	run("rm -f '%s' && mkfifo '%s'", want, want);
	assert_int_equal(find(&b, &path), -ENOENT); /* never opened: no wait */
	run("rm -f '%s' && ln -s /dev/zero '%s'", want, want);
	assert_int_equal(find(&b, &path), -ENOENT);
	run("rm -f '%s' && ln -s /proc/self/exe '%s'", want, want);
	assert_int_equal(find(&b, &path), -ENOENT); /* a magic link is not followed */
	run("rm -f '%s' && ln -s '%s' '%s'", want, self, want);
	assert_true(find(&b, &path) >= 0); /* a plain symbolic link is */
	free(path);
	run("rm -f '%s'", want);
}

static void test_by_debuglink(void **state)
{
	char bin[PATH_MAX + 32], *path = NULL, want[PATH_MAX * 2];
	struct debuginfo_binary b = {.file = bin, .name = bin, .debuglink = "prog.debug",
				     .crc = self_crc};

	/* no build-id: the CRC ties them */
	snprintf(bin, sizeof(bin), "%s/bin/prog", dir);
	run("mkdir -p '%s/bin/.debug' && cp /bin/true '%s'", dir, bin);
	run("cp '%s' '%s/bin/.debug/prog.debug'", self, dir);
	assert_true(find(&b, &path) >= 0);
	snprintf(want, sizeof(want), "%s/bin/.debug/prog.debug", dir);
	assert_string_equal(path, want);
	free(path);
	b.crc ^= 1;
	assert_int_equal(find(&b, &path), -ENOENT);
	b.crc ^= 1;
	/* beside the binary comes first */
	run("cp '%s' '%s/bin/prog.debug'", self, dir);
	assert_true(find(&b, &path) >= 0);
	snprintf(want, sizeof(want), "%s/bin/prog.debug", dir);
	assert_string_equal(path, want);
	free(path);
	/* a debuglink that is a path is not followed */
	b.debuglink = "../bin/prog.debug";
	assert_int_equal(find(&b, &path), -ENOENT);
	b.debuglink = "..";
	assert_int_equal(find(&b, &path), -ENOENT);
	/* under a debug directory, followed by the binary's directory */
	b.debuglink = "prog.debug";
	run("rm -f '%s/bin/prog.debug' '%s/bin/.debug/prog.debug'", dir, dir);
	assert_int_equal(find(&b, &path), -ENOENT);
	run("mkdir -p '%s%s/bin' && cp '%s' '%s%s/bin/prog.debug'", dir, dir, self, dir, dir);
	assert_true(find(&b, &path) >= 0);
	free(path);
}

static void test_debug_dirs_are_absolute(void **state)
{
	assert_int_equal(debuginfo_add_dir("relative/dir"), -EINVAL);
	assert_int_equal(debuginfo_add_dir(""), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_by_build_id),
	    cmocka_unit_test(test_by_build_id_refuses_another_file),
	    cmocka_unit_test(test_by_debuglink),
	    cmocka_unit_test(test_debug_dirs_are_absolute),
	};

	unsetenv("DEBUGINFOD_URLS");
	return cmocka_run_group_tests(tests, setup, teardown);
}
