/* The attach-time check of the layout tables: facts as CPython 3.13.0 and
 * 3.14.8 reveal them (PyCode_Type's member table and _Py_DebugOffsets,
 * values read from those binaries) are accepted; one that differs, or
 * debug offsets that could not be read, make the walker's configuration
 * and the code reader refuse, naming the field. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "python/layout.h"

static struct python_target target(int minor)
{
	struct python_target t = {.major = 3, .minor = minor, .runtime = 0x1000};
	struct python_facts *f = &t.facts;

	f->co_filename = 112;
	f->co_name = 120;
	f->co_qualname = 128;
	f->co_firstlineno = 68;
	f->co_linetable = 136;
	f->debug_offsets = true;
	f->ts_current_frame = 72;
	f->ts_native_tid = 160;
	f->fr_previous = 8;
	f->fr_executable = 0;
	f->fr_instr = 56;
	f->fr_owner = minor == 13 ? 70 : 74;
	f->co_adaptive = f->code_basicsize = minor == 13 ? 200 : 208;
	f->ascii_size = 40;
	return t;
}

static int config(const struct python_target *t, char *why, size_t len)
{
	struct tracer_py_config cfg;
	int err = python_layout_config(t, &cfg, why, len);

	return err ? err : python_layout_check_code(t, why, len);
}

static void test_real_facts_agree(void **state)
{
	char why[160] = "";

	for (int minor = 13; minor <= 14; minor++) {
		struct python_target t = target(minor);

		assert_int_equal(config(&t, why, sizeof(why)), 0);
	}
}

static void test_a_moved_field_is_refused_and_named(void **state)
{
	struct python_target t = target(14);
	char why[160] = "";

	t.facts.fr_owner = 70; /* 3.13's place */
	assert_int_equal(config(&t, why, sizeof(why)), -EPROTO);
	assert_string_equal(why, "its frame's owner is at 70, the table says 74");

	t = target(14);
	t.facts.code_basicsize = 200;
	assert_int_equal(config(&t, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "co_code_adaptive"));

	t = target(13);
	t.facts.co_linetable = 144;
	assert_int_equal(config(&t, why, sizeof(why)), -EPROTO);
	assert_string_equal(why, "its co_linetable is at 144, the table says 136");

	t = target(14);
	t.facts.ascii_size = 48;
	assert_int_equal(config(&t, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "PyASCIIObject"));
}

static void test_unreadable_debug_offsets_are_refused(void **state)
{
	struct python_target t = target(13);
	char why[160] = "";

	/* unreadable (perhaps not yet: the caller looks again for a while) */
	t.facts.debug_offsets = false;
	assert_int_equal(config(&t, why, sizeof(why)), -EAGAIN);
	assert_non_null(strstr(why, "_Py_DebugOffsets"));

	t = target(14);
	t.facts.co_filename = -1; /* PyCode_Type could not be read */
	assert_int_equal(config(&t, why, sizeof(why)), -EAGAIN);
	assert_non_null(strstr(why, "co_filename"));
}

static void test_unknown_version_is_unsupported(void **state)
{
	struct python_target t = target(14);
	struct tracer_py_config cfg;
	char why[160] = "";

	t.minor = 15;
	assert_int_equal(python_layout_config(&t, &cfg, why, sizeof(why)), -EPROTONOSUPPORT);
}

static void test_one_entry_per_version(void **state)
{
	for (int minor = 8; minor <= 14; minor++) {
		assert_non_null(python_layout_for(minor));
		assert_int_equal(python_layout_for(minor)->minor, minor);
	}
	assert_null(python_layout_for(7));
	assert_null(python_layout_for(15));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_real_facts_agree),
	    cmocka_unit_test(test_a_moved_field_is_refused_and_named),
	    cmocka_unit_test(test_unreadable_debug_offsets_are_refused),
	    cmocka_unit_test(test_unknown_version_is_unsupported),
	    cmocka_unit_test(test_one_entry_per_version),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
