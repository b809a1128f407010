/* Line tables of every supported CPython version: the line the tracer
 * computes for each instruction equals what the interpreter itself says.
 * The tables and expectations were produced by each pyenv interpreter from
 * one small function (co_lnotab / co_linetable, and dis.findlinestarts or
 * co_lines() for the expected lines); 3.14's by Debian's python3.14 from a
 * function with a loop, a comprehension and try/except. The code object
 * cache is checked on objects laid out as 3.12's in this process's memory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "python/code.h"
#include "target.h"

struct line_case {
	int minor, firstlineno;
	const char *table;
	size_t len;
	struct {
		int instr, line;
	} expect[64];
};

static const struct line_case cases[] = {
	{8, 2, "\x00\x01\x04\x01\x04\x01\x06\x01\x06\xff\x08\x03\x04\x03\x02\x01\x0a\xff", 18, {{0, 3}, {2, 3}, {4, 4}, {6, 4}, {8, 5}, {10, 5}, {12, 5}, {14, 6}, {16, 6}, {18, 6}, {20, 5}, {22, 5}, {24, 5}, {26, 5}, {28, 8}, {30, 8}, {32, 11}, {34, 12}, {36, 12}, {38, 12}, {40, 12}, {42, 12}, {44, 11}, {46, 11}}},
	{9, 2, "\x00\x01\x04\x01\x04\x01\x06\x01\x06\xff\x08\x03\x04\x03\x02\x01\x0a\xff", 18, {{0, 3}, {2, 3}, {4, 4}, {6, 4}, {8, 5}, {10, 5}, {12, 5}, {14, 6}, {16, 6}, {18, 6}, {20, 5}, {22, 5}, {24, 5}, {26, 5}, {28, 8}, {30, 8}, {32, 11}, {34, 12}, {36, 12}, {38, 12}, {40, 12}, {42, 12}, {44, 11}, {46, 11}}},
	{10, 2, "\x04\x01\x04\x01\x06\x01\x06\x01\x08\xff\x04\x03\x02\x03\x0a\x01\x04\xff", 18, {{0, 3}, {1, 3}, {2, 4}, {3, 4}, {4, 5}, {5, 5}, {6, 5}, {7, 6}, {8, 6}, {9, 6}, {10, 5}, {11, 5}, {12, 5}, {13, 5}, {14, 8}, {15, 8}, {16, 11}, {17, 12}, {18, 12}, {19, 12}, {20, 12}, {21, 12}, {22, 11}, {23, 11}}},
	{11, 2, "\x80\x00\xd8\x08\x09\x80\x41\xd8\x07\x08\xf0\x00\x04\x05\x0e\xf0\x02\x01\x0d\x20\xf0\x00\x01\x0d\x20\xdd\x16\x1b\x98\x41\x91\x68\x94\x68\xf0\x03\x01\x0d\x20\xf1\x00\x01\x0d\x20\xf4\x00\x01\x0d\x20\x88\x01\x88\x01\xf0\x06\x00\x0d\x0e\x88\x01\xf0\x06\x00\x0c\x0d\xdd\x08\x0b\x8d\x43\x90\x01\x89\x46\x8c\x46\x89\x0b\x8c\x0b\xf1\x03\x01\x0c\x14\xf0\x00\x01\x05\x14", 90, {{0, 2}, {1, 3}, {2, 3}, {3, 4}, {4, 4}, {5, 5}, {6, 5}, {7, 6}, {8, 6}, {9, 6}, {10, 6}, {11, 6}, {12, 6}, {13, 6}, {14, 6}, {15, 6}, {16, 6}, {17, 6}, {18, 6}, {19, 6}, {20, 6}, {21, 5}, {22, 5}, {23, 5}, {24, 5}, {25, 5}, {26, 5}, {27, 5}, {28, 5}, {29, 5}, {30, 5}, {31, 8}, {32, 8}, {33, 11}, {34, 12}, {35, 12}, {36, 12}, {37, 12}, {38, 12}, {39, 12}, {40, 12}, {41, 12}, {42, 12}, {43, 12}, {44, 12}, {45, 12}, {46, 12}, {47, 12}, {48, 12}, {49, 12}, {50, 12}, {51, 12}, {52, 12}, {53, 12}, {54, 12}, {55, 12}, {56, 12}, {57, 12}, {58, 12}, {59, 12}, {60, 12}, {61, 11}, {62, 11}, {63, 11}}},
	{12, 2, "\x80\x00\xd8\x08\x09\x80\x41\xd9\x07\x08\xe4\x16\x1b\x98\x41\x93\x68\xf6\x03\x01\x0d\x20\xd8\x11\x12\xf2\x03\x00\x0e\x0f\xf0\x00\x01\x0d\x20\x88\x01\xf1\x00\x01\x0d\x20\xf0\x06\x00\x0d\x0e\x88\x01\xf0\x06\x00\x0c\x0d\xdc\x08\x0b\x8c\x43\x90\x01\x8b\x46\x8b\x0b\xf1\x03\x01\x0c\x14\xf0\x00\x01\x05\x14\xf9\xf2\x0d\x01\x0d\x20", 81, {{0, 2}, {1, 3}, {2, 3}, {3, 4}, {4, 4}, {5, 6}, {6, 6}, {7, 6}, {8, 6}, {9, 6}, {10, 6}, {11, 6}, {12, 6}, {13, 6}, {14, 6}, {15, 5}, {16, 5}, {17, 5}, {18, 5}, {19, 5}, {20, 5}, {21, 5}, {22, 6}, {23, 5}, {24, 5}, {25, 5}, {26, 5}, {27, 5}, {28, 5}, {29, 5}, {30, 8}, {31, 8}, {32, 11}, {33, 12}, {34, 12}, {35, 12}, {36, 12}, {37, 12}, {38, 12}, {39, 12}, {40, 12}, {41, 12}, {42, 12}, {43, 12}, {44, 12}, {45, 12}, {46, 12}, {47, 12}, {48, 12}, {49, 12}, {50, 12}, {51, 12}, {52, 11}, {53, 11}, {54, 11}, {55, -1}, {56, -1}, {57, 5}, {58, 5}, {59, 5}}},
	{13, 2, "\x80\x00\xd8\x08\x09\x80\x41\xde\x07\x08\xe4\x16\x1b\x98\x41\x94\x68\xf3\x03\x01\x0d\x20\xd9\x16\x1e\x90\x11\xf3\x03\x00\x0e\x0f\xd9\x16\x1e\xf0\x03\x00\x09\x0a\xf0\x00\x01\x0d\x20\x88\x01\xf0\x06\x00\x0d\x0e\x88\x01\xf0\x06\x00\x0c\x0d\xdc\x08\x0b\x8c\x43\x90\x01\x8b\x46\x8b\x0b\xf1\x03\x01\x0c\x14\xf0\x00\x01\x05\x14\xf9\xf2\x0d\x01\x0d\x20", 86, {{0, 2}, {1, 3}, {2, 3}, {3, 4}, {4, 4}, {5, 4}, {6, 4}, {7, 4}, {8, 4}, {9, 4}, {10, 6}, {11, 6}, {12, 6}, {13, 6}, {14, 6}, {15, 6}, {16, 6}, {17, 6}, {18, 6}, {19, 6}, {20, 6}, {21, 5}, {22, 5}, {23, 5}, {24, 5}, {25, 6}, {26, 6}, {27, 6}, {28, 5}, {29, 5}, {30, 5}, {31, 5}, {32, 6}, {33, 6}, {34, 5}, {35, 5}, {36, 5}, {37, 8}, {38, 8}, {39, 11}, {40, 12}, {41, 12}, {42, 12}, {43, 12}, {44, 12}, {45, 12}, {46, 12}, {47, 12}, {48, 12}, {49, 12}, {50, 12}, {51, 12}, {52, 12}, {53, 12}, {54, 12}, {55, 12}, {56, 12}, {57, 12}, {58, 12}, {59, 11}, {60, 11}, {61, 11}, {62, -1}, {63, -1}}},
	{14, 1, "\x80\x00\xd8\x08\x09\x88\x41\x8d\x05\x80\x41\xd8\x07\x08\x84\x75\xdc\x11\x16\x90\x71\x96\x18\x88\x41\xd8\x0c\x0d\x8d\x46\x88\x41\xd8\x0f\x10\x90\x31\x8e\x75\xd9\x10\x15\xf2\x07\x00\x12\x1a\xf4\x0c\x00\x17\x1c\x98\x41\x94\x68\xf3\x03\x01\x0d\x20\xd9\x16\x1e\x90\x11\xf0\x03\x00\x0e\x0f\x90\x11\x8f\x55\x88\x55\xd9\x16\x1e\xf0\x03\x00\x09\x0a\xf0\x00\x01\x0d\x20\xf0\x04\x03\x05\x12\xdc\x0f\x12\x94\x33\x90\x71\x93\x36\x8b\x7b\xd0\x08\x1a\xf9\xf2\x07\x01\x0d\x20\xf8\xf4\x08\x00\x0c\x16\xf4\x00\x01\x05\x12\xd8\x0f\x11\x8a\x09\xf0\x03\x01\x05\x12\xfa", 137, {{0, 1}, {1, 2}, {2, 2}, {3, 2}, {4, 2}, {5, 2}, {6, 2}, {7, 2}, {8, 2}, {9, 2}, {10, 3}, {11, 3}, {12, 3}, {13, 3}, {14, 3}, {15, 3}, {16, 4}, {17, 4}, {18, 4}, {19, 4}, {20, 4}, {21, 4}, {22, 4}, {23, 4}, {24, 4}, {25, 4}, {26, 4}, {27, 4}, {28, 4}, {29, 4}, {30, 5}, {31, 5}, {32, 5}, {33, 5}, {34, 5}, {35, 5}, {36, 5}, {37, 5}, {38, 6}, {39, 6}, {40, 6}, {41, 6}, {42, 6}, {43, 6}, {44, 6}, {45, 6}, {46, 6}, {47, 7}, {48, 7}, {49, 4}, {50, 4}, {51, 4}, {52, 10}, {53, 10}, {54, 10}, {55, 10}, {56, 10}, {57, 10}, {58, 10}, {59, 10}, {60, 10}, {61, 10}, {62, 10}, {63, 9}}},
};

static void test_line_tables(void **state)
{
	size_t c, k;

	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const struct line_case *lc = &cases[c];
		size_t checked = 0;

		for (k = 0; k < 64; k++) {
			if (!lc->expect[k].line && !lc->expect[k].instr && k)
				break;
			if (lc->expect[k].line < 0)
				continue; /* no location: tracemalloc shows 0 */
			assert_int_equal(python_code_line(lc->minor, (const uint8_t *)lc->table,
							  lc->len, lc->firstlineno,
							  lc->expect[k].instr),
					 lc->expect[k].line);
			checked++;
		}
		assert_true(checked >= 10);
	}
}

static void test_before_first_instruction(void **state)
{
	/* a frame pushed but not started: its first line */
	assert_int_equal(python_code_line(11, (const uint8_t *)cases[3].table, cases[3].len,
					  cases[3].firstlineno, -1),
			 cases[3].firstlineno);
}

/* Hostile tables (found by fuzz_pycode): an instruction index a 3.10
 * table would double past int64, and deltas that would carry a line past
 * int32 saturate there instead of overflowing. */
static void test_hostile_tables(void **state)
{
	/* two code-13 entries (one unit each) of a line delta +2^29 */
	const uint8_t loc[] = {0xe8, 0x40, 0x40, 0x40, 0x40, 0x40, 0x01,
			       0xe8, 0x40, 0x40, 0x40, 0x40, 0x40, 0x01};
	uint8_t up[64];

	assert_int_equal(python_code_line(10, (const uint8_t *)"\x04\x01", 2, 1, INT64_MAX / 2 + 1),
			 -1);
	for (size_t i = 0; i < sizeof(up); i += 2) {
		up[i] = 0;
		up[i + 1] = 0x7f;
	}
	assert_int_equal(python_code_line(9, up, sizeof(up), INT32_MAX - 10, 0), INT32_MAX);
	assert_int_equal(python_code_line(10, up, sizeof(up), INT32_MAX - 10, 100), -1);
	assert_int_equal(python_code_line(11, loc, sizeof(loc), 1 << 30, 0), (1 << 30) + (1 << 29));
	assert_int_equal(python_code_line(11, loc, sizeof(loc), 1 << 30, 1), INT32_MAX);
}

/* A compact ASCII str as 3.12 lays it out: header of 40 bytes, then the
 * characters. */
static void make_str(uint64_t obj[8], const char *s)
{
	uint32_t state = 1u << 2 | 1u << 5 | 1u << 6; /* kind 1, compact, ascii */

	memset(obj, 0, 8 * sizeof(obj[0]));
	obj[0] = 1;
	obj[2] = strlen(s);
	memcpy((char *)obj + 32, &state, 4);
	strcpy((char *)obj + 40, s);
}

#define NCODE 300

static void test_cache_forgets_reused_code_objects(void **state)
{
	static uint64_t codes[NCODE][26], type[8], file_f[8], file_g[8], name[8], table[8];
	struct target_mem mem;
	struct python_target t = {.major = 3, .minor = 12, .code_type = (uint64_t)type};
	struct python_code *c;
	const char *file, *fn;
	uint32_t line;

	make_str(file_f, "f.py");
	make_str(file_g, "g.py");
	make_str(name, "fn");
	table[2] = 3; /* bytes of 3: one entry of 8 code units, line + 1 */
	memcpy((char *)table + 32, "\xdf\x00\x00", 3);
	for (int i = 0; i < NCODE; i++) {
		int32_t first = 10 + i;

		codes[i][0] = 1;
		codes[i][1] = (uint64_t)type;
		memcpy((char *)codes[i] + 68, &first, 4);
		codes[i][112 / 8] = (uint64_t)file_f;
		codes[i][120 / 8] = codes[i][128 / 8] = (uint64_t)name;
		codes[i][136 / 8] = (uint64_t)table;
	}
	assert_int_equal(target_mem_open(getpid(), &mem), 0);
	t.mem = &mem;
	assert_int_equal(python_code_open(&t, &c), 0);
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < NCODE; i++) {
			uint64_t ident = (uint64_t)file_f ^ ((uint64_t)name << 1);

			assert_int_equal(
			    python_code_frame(c, (uint64_t)codes[i], 3, ident, &file, &line, &fn),
			    0);
			assert_string_equal(file, "f.py");
			assert_string_equal(fn, "fn");
			assert_int_equal(line, 11 + i);
		}
	/* the even ones freed and their memory reused by other code objects */
	for (int i = 0; i < NCODE; i += 2)
		codes[i][112 / 8] = (uint64_t)file_g;
	python_code_revalidate(c);
	for (int i = 0; i < NCODE; i++) {
		uint64_t old = (uint64_t)file_f ^ ((uint64_t)name << 1);
		uint64_t now = (uint64_t)file_g ^ ((uint64_t)name << 1);

		if (i % 2) {
			assert_int_equal(
			    python_code_frame(c, (uint64_t)codes[i], 3, old, &file, &line, &fn), 0);
			assert_string_equal(file, "f.py");
			continue;
		}
		assert_int_equal(
		    python_code_frame(c, (uint64_t)codes[i], 3, old, &file, &line, &fn), -ESTALE);
		assert_int_equal(
		    python_code_frame(c, (uint64_t)codes[i], 3, now, &file, &line, &fn), 0);
		assert_string_equal(file, "g.py");
		assert_int_equal(line, 11 + i);
	}
	python_code_close(c);
	target_mem_close(&mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_tables),
		cmocka_unit_test(test_before_first_instruction),
		cmocka_unit_test(test_hostile_tables),
		cmocka_unit_test(test_cache_forgets_reused_code_objects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
