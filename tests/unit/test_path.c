/* path_normalise_source: the redundant parts of source paths as debug
 * information spells them (glibc's, Debian-built: "./libio/./libio/x.c")
 * removed, and nothing else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/path.h"

static const char *norm(const char *in)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf), "%s", in);
	path_normalise_source(buf);
	return buf;
}

/* what glibc 2.36's DWARF gives, joined with its compilation directory */
static void test_glibc(void **state)
{
	assert_string_equal(norm("./libio/./libio/filedoalloc.c"), "libio/filedoalloc.c");
	assert_string_equal(norm("./nptl/./nptl/pthread_create.c"), "nptl/pthread_create.c");
	assert_string_equal(norm("./csu/../csu/libc-start.c"), "csu/libc-start.c");
	assert_string_equal(norm("./csu/../sysdeps/nptl/libc_start_call_main.h"),
			    "sysdeps/nptl/libc_start_call_main.h");
	assert_string_equal(norm("./misc/../sysdeps/unix/sysv/linux/x86_64/clone3.S"),
			    "sysdeps/unix/sysv/linux/x86_64/clone3.S");
}

static void test_only_the_redundant(void **state)
{
	/* absolute: '.' and doubled '/' go, '..' stays (a link may be there) */
	assert_string_equal(norm("/usr/src/./app//main.c"), "/usr/src/app/main.c");
	assert_string_equal(norm("/build/x/../y.c"), "/build/x/../y.c");
	assert_string_equal(norm("/src/src/a.c"), "/src/src/a.c");
	assert_string_equal(norm("/work/a.c"), "/work/a.c");
	/* a relative path not from "./": its doubled directory is kept */
	assert_string_equal(norm("src/src/a.c"), "src/src/a.c");
	assert_string_equal(norm("src/./a.c"), "src/a.c");
	/* a leading '..' cannot be undone; "D/.." can */
	assert_string_equal(norm("../a/../b.c"), "../b.c");
	assert_string_equal(norm("./../../x.c"), "../../x.c");
	assert_string_equal(norm("./a/b/../../c.c"), "c.c");
	/* a file named as its directory is not a doubled directory */
	assert_string_equal(norm("./a/a"), "a/a");
	assert_string_equal(norm("app.py"), "app.py");
	assert_string_equal(norm("<frozen importlib._bootstrap>"), "<frozen importlib._bootstrap>");
	assert_string_equal(norm("."), ".");
	assert_string_equal(norm("./"), ".");
	assert_string_equal(norm("/"), "/");
	assert_string_equal(norm(""), ".");
}

/* hostile depth: more components than it handles is left alone */
static void test_deep(void **state)
{
	char *deep = malloc(2 * 600 + 8);
	char *copy;

	for (int i = 0; i < 600; i++)
		memcpy(deep + 2 * i, "./", 2);
	strcpy(deep + 1200, "a.c");
	copy = strdup(deep);
	path_normalise_source(copy);
	assert_string_equal(copy, "a.c"); /* '.' components are not kept */
	free(copy);
	for (int i = 0; i < 600; i++)
		memcpy(deep + 2 * i, "d/", 2);
	copy = strdup(deep);
	path_normalise_source(copy);
	assert_string_equal(copy, deep);
	free(copy);
	free(deep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_glibc),
	    cmocka_unit_test(test_only_the_redundant),
	    cmocka_unit_test(test_deep),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
