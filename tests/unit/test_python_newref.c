/* user/python/newref.c on the interpreters present: every check of
 * tracemalloc's hook that _Py_NewReference's copies make is found, with
 * the register holding the object, and the scan accounts for every load of
 * the flag: a check followed, a check not followed, or no check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include <cmocka.h>

#include "python/newref.h"

struct build {
	const char *path;
	int minor;
	size_t least;	       /* found at least */
	size_t least_indirect; /* of which op in a stack slot */
};

static void scan(const struct build *b)
{
	struct python_newref_sites out;
	size_t indirect = 0;

	if (access(b->path, R_OK))
		skip();
	assert_int_equal(python_newref_find(b->path, 0, b->minor, &out), 0);
	fprintf(stderr, "%s: %zu checks followed, %zu not\n", b->path, out.n, out.unresolved);
	assert_true(out.n >= b->least);
	/* every path that calls the hook for a new object is followed (the
	 * other loads of the flag: tracemalloc's own functions, 3.13+'s
	 * calls for PyRefTracer_DESTROY) */
	assert_int_equal(out.unresolved, 0);
	for (size_t i = 0; i < out.n; i++) {
		assert_true(out.v[i].reg < NEWREF_NREGS ||
			    (out.v[i].reg == NEWREF_RSP && out.v[i].indirect));
		indirect += out.v[i].indirect;
	}
	assert_true(indirect >= b->least_indirect);
	python_newref_free(&out);
}

static void test_debian_python311(void **state)
{
	/* LTO: _Py_NewReference inlined into ~270 places; two keep op in
	 * 8(%rsp) and load it into rdi for the hook's call only */
	static const struct build b = {"/usr/bin/python3.11", 11, 250, 2};
	scan(&b);
}

static void test_forky_python314(void **state)
{
	static const struct build b = {"/var/lib/tracer/forky/usr/bin/python3.14", 14, 400, 0};
	scan(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_debian_python311),
	    cmocka_unit_test(test_forky_python314),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
