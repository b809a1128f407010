/* The probe table against the BPF object: every row names a program the
 * skeleton has (a row without one would attach nothing), every entry
 * program serves some row, and CPython's allocator slots take the rows of
 * the functions they hold. The skeleton is only opened, never loaded: no
 * privileges needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "probes.h"
#include "python/alloc.h"

static int open_skel(void **state)
{
	struct tracer_bpf *skel = tracer_bpf__open();

	*state = skel;
	return skel ? 0 : -1;
}

static int close_skel(void **state)
{
	tracer_bpf__destroy(*state);
	return 0;
}

/* Whether prog is one of the object's programs (not some other pointer). */
static bool in_object(struct tracer_bpf *skel, const struct bpf_program *prog)
{
	struct bpf_program *p;

	bpf_object__for_each_program(p, skel->obj) if (p == prog) return true;
	return false;
}

static void test_every_row_has_its_program(void **state)
{
	struct tracer_bpf *skel = *state;
	struct probes_row row, other;
	size_t i, j;

	for (i = 0; probes_row(skel, i, &row); i++) {
		assert_non_null(row.function);
		if (!row.prog)
			fail_msg("probe row %s has no BPF program", row.function);
		assert_true(in_object(skel, row.prog));
		assert_string_equal(bpf_program__section_name(row.prog), "uprobe");
		for (j = 0; j < i; j++) {
			assert_true(probes_row(skel, j, &other));
			assert_string_not_equal(other.function, row.function);
		}
	}
	assert_true(i > 20);
	assert_non_null(skel->progs.alloc_return);
}

/* An entry program no row uses would be dead, or a row would be missing. */
static void test_every_entry_program_has_a_row(void **state)
{
	struct tracer_bpf *skel = *state;
	struct bpf_program *p;
	struct probes_row row;
	size_t i;

	bpf_object__for_each_program(p, skel->obj)
	{
		if (strcmp(bpf_program__section_name(p), "uprobe"))
			continue; /* alloc_return, follow_fork */
		if (probes_site_row(skel, &row) && row.prog == p)
			continue; /* CPython's inlined allocator sites: not by name */
		if (probes_code_dealloc_row(skel, &row) && row.prog == p)
			continue; /* found in PyCode_Type, not by name */
		for (i = 0; probes_python_calls_row(skel, i, &row) && row.prog != p; i++)
			;
		if (probes_python_calls_row(skel, i, &row))
			continue; /* CPython's malloc, its call sites, its raw tails: by address */
		if (probes_new_reference_row(skel, &row) && row.prog == p)
			continue; /* CPython's object initialisations: not by name */
		for (i = 0; probes_row(skel, i, &row) && row.prog != p; i++)
			;
		if (!probes_row(skel, i, &row))
			fail_msg("BPF program %s is in no probe row", bpf_program__name(p));
	}
}

static void test_python_slots_take_the_pyobject_rows(void **state)
{
	struct tracer_bpf *skel = *state;
	static const struct {
		int kind;
		const char *function;
		bool returns;
	} want[] = {
	    {PYTHON_ALLOC_MALLOC, "_PyObject_Malloc", true},
	    {PYTHON_ALLOC_CALLOC, "_PyObject_Calloc", true},
	    {PYTHON_ALLOC_REALLOC, "_PyObject_Realloc", true},
	    {PYTHON_ALLOC_FREE, "_PyObject_Free", false},
	};
	struct bpf_program *progs[] = {skel->progs.py_malloc_enter, skel->progs.py_calloc_enter,
				       skel->progs.py_realloc_enter, skel->progs.py_free_enter};
	struct probes_row row;

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_true(probes_python_row(skel, want[i].kind, &row));
		assert_string_equal(row.function, want[i].function);
		assert_ptr_equal(row.prog, progs[i]);
		assert_int_equal(row.returns, want[i].returns);
	}
	assert_false(probes_python_row(skel, PYTHON_ALLOC_CTX, &row));
	assert_false(probes_python_row(skel, PYTHON_ALLOC_FREE + 1, &row));
	assert_false(probes_python_row(skel, -1, &row));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_row_has_its_program),
	    cmocka_unit_test(test_every_entry_program_has_a_row),
	    cmocka_unit_test(test_python_slots_take_the_pyobject_rows),
	};

	return cmocka_run_group_tests(tests, open_skel, close_skel);
}
