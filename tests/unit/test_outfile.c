/* util/outfile: what the tracer may write over and what it refuses, in a
 * directory of the test's own. Ownership cases need root (make test runs
 * as root) and skip without it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "util/outfile.h"

static char dir[64];
static char why[512];

/* dir/name, in one of four buffers (a call may use two) */
static const char *in_dir(const char *name)
{
	static char path[4][PATH_MAX];
	static int next;
	char *p = path[next++ % 4];

	snprintf(p, PATH_MAX, "%s/%s", dir, name);
	return p;
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/test_outfile.XXXXXX");
	unsetenv("SUDO_UID");
	unsetenv("SUDO_GID");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static int entries(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while ((e = readdir(d)))
		n += e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."));
	closedir(d);
	return n;
}

static void assert_content(const char *path, const char *want)
{
	char buf[256] = "";
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	assert_string_equal(buf, want);
}

static void test_new_file_is_private_and_complete(void **state)
{
	struct stat st;

	assert_int_equal(outfile_write(in_dir("a.snap"), "hello", 5, why, sizeof(why)), 0);
	assert_content(in_dir("a.snap"), "hello");
	assert_int_equal(stat(in_dir("a.snap"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(entries(), 1); /* nothing hidden left beside it */
}

static void test_regular_file_is_replaced_whole(void **state)
{
	struct stat before, after;
	FILE *f = fopen(in_dir("b"), "w");

	fputs("old content, longer than the new", f);
	fclose(f);
	stat(in_dir("b"), &before);
	assert_int_equal(outfile_write(in_dir("b"), "new", 3, why, sizeof(why)), 0);
	assert_content(in_dir("b"), "new");
	stat(in_dir("b"), &after);
	assert_int_not_equal(before.st_ino, after.st_ino); /* renamed over, never rewritten */
	assert_int_equal(entries(), 1);
}

static void test_symlink_is_not_followed(void **state)
{
	FILE *f = fopen(in_dir("victim"), "w");
	struct stat st;

	fputs("precious", f);
	fclose(f);
	assert_int_equal(symlink(in_dir("victim"), in_dir("link")), 0);
	assert_int_equal(outfile_check(in_dir("link"), why, sizeof(why)), -ELOOP);
	assert_non_null(strstr(why, "symbolic link"));
	assert_int_equal(outfile_write(in_dir("link"), "x", 1, why, sizeof(why)), -ELOOP);
	assert_content(in_dir("victim"), "precious");
	assert_int_equal(lstat(in_dir("link"), &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	/* a dangling link too: creating its target would follow it */
	assert_int_equal(symlink(in_dir("nowhere"), in_dir("dangling")), 0);
	assert_int_equal(outfile_write(in_dir("dangling"), "x", 1, why, sizeof(why)), -ELOOP);
	assert_int_equal(access(in_dir("nowhere"), F_OK), -1);
	assert_int_equal(entries(), 3);
}

static void test_non_regular_files_are_not_replaced(void **state)
{
	struct stat st;

	assert_int_equal(mkfifo(in_dir("fifo"), 0600), 0);
	assert_int_equal(outfile_check(in_dir("fifo"), why, sizeof(why)), -EEXIST);
	assert_non_null(strstr(why, "not a regular file"));
	assert_int_equal(outfile_write(in_dir("fifo"), "x", 1, why, sizeof(why)), -EEXIST);
	assert_int_equal(stat(in_dir("fifo"), &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	assert_int_equal(mkdir(in_dir("sub"), 0700), 0);
	assert_true(outfile_write(in_dir("sub"), "x", 1, why, sizeof(why)) < 0);
	if (geteuid() == 0) { /* a device node, as /dev/null is */
		assert_int_equal(mknod(in_dir("null"), S_IFCHR | 0666, makedev(1, 3)), 0);
		assert_int_equal(outfile_write(in_dir("null"), "x", 1, why, sizeof(why)), -EEXIST);
		assert_int_equal(stat(in_dir("null"), &st), 0);
		assert_true(S_ISCHR(st.st_mode));
	}
	assert_int_equal(outfile_write(in_dir("sub/"), "x", 1, why, sizeof(why)), -EISDIR);
}

static void test_missing_directory_is_named(void **state)
{
	assert_int_equal(outfile_check(in_dir("no/such/file"), why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "no/such"));
	assert_int_equal(outfile_write(in_dir("no/file"), "x", 1, why, sizeof(why)), -ENOENT);
}

static void test_discard_leaves_nothing(void **state)
{
	struct outfile *o;

	assert_int_equal(outfile_create(in_dir("c"), &o, why, sizeof(why)), 0);
	fputs("half", outfile_stream(o));
	assert_int_equal(entries(), 0); /* no name while being written */
	outfile_discard(o);
	assert_int_equal(entries(), 0);
}

static void test_sticky_directory_protects_other_users_files(void **state)
{
	struct stat st;
	FILE *f;

	if (geteuid() != 0)
		skip();
	assert_int_equal(chmod(dir, 01777), 0);
	f = fopen(in_dir("theirs"), "w");
	fputs("theirs", f);
	fclose(f);
	assert_int_equal(chown(in_dir("theirs"), 12345, 12345), 0);
	assert_int_equal(outfile_write(in_dir("theirs"), "x", 1, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "another user"));
	assert_content(in_dir("theirs"), "theirs");
	/* the invoking user's own file is theirs to replace, and stays theirs */
	setenv("SUDO_UID", "12345", 1);
	setenv("SUDO_GID", "12345", 1);
	assert_int_equal(outfile_write(in_dir("theirs"), "mine", 4, why, sizeof(why)), 0);
	assert_content(in_dir("theirs"), "mine");
	assert_int_equal(stat(in_dir("theirs"), &st), 0);
	assert_int_equal(st.st_uid, 12345);
	assert_int_equal(st.st_gid, 12345);
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_sudo_user_owns_new_files(void **state)
{
	struct stat st;

	if (geteuid() != 0)
		skip();
	setenv("SUDO_UID", "4242", 1);
	setenv("SUDO_GID", "4343", 1);
	assert_int_equal(outfile_write(in_dir("d"), "x", 1, why, sizeof(why)), 0);
	assert_int_equal(stat(in_dir("d"), &st), 0);
	assert_int_equal(st.st_uid, 4242);
	assert_int_equal(st.st_gid, 4343);
	setenv("SUDO_UID", "not a number", 1);
	assert_int_equal(outfile_write(in_dir("e"), "x", 1, why, sizeof(why)), 0);
	assert_int_equal(stat(in_dir("e"), &st), 0);
	assert_int_equal(st.st_uid, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_new_file_is_private_and_complete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_regular_file_is_replaced_whole, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_symlink_is_not_followed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_non_regular_files_are_not_replaced, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_missing_directory_is_named, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_discard_leaves_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sticky_directory_protects_other_users_files, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_sudo_user_owns_new_files, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
