/* CPython's inlined raw-allocator calls (python/sites.h): the scanner on
 * hand-assembled code in this binary, and on Debian's LTO python3.11 and
 * forky's python3.14 where they are present. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "elfsym.h"
#include "python/sites.h"

/* The shapes GCC's devirtualisation leaves: a table slot compared with the
 * default function (an immediate in a non-PIE executable, a lea in PIE
 * code), its conditional branch, the inlined body, the call to libc. The
 * stubs stand for PLT entries; ts_calloc_slot for a GOT slot (-fno-plt). */
__asm__(".text\n"
	".globl ts_code\n ts_code:\n"
	/* 1: guarded call, immediate form: a site, by its return address */
	" mov ts_slot(%rip),%rax\n cmp $0x4f75e0,%rax\n jne 1f\n test %rsi,%rsi\n"
	" mov $1,%eax\n cmove %rax,%rsi\n call ts_realloc_stub\n"
	".globl ts_ret1\n ts_ret1:\n"
	/* 2: a call right after a ret: nothing guards it */
	"1: ret\n call ts_realloc_stub\n"
	/* 3: guarded tail jump, PIE form: a site, by the jmp's address (a
	 * short one here) */
	" lea ts_raw_malloc(%rip),%rdx\n cmp %rdx,%rax\n jne 2f\n pop %rbx\n pop %rbp\n"
	".globl ts_jmp1\n ts_jmp1:\n jmp ts_malloc_stub\n"
	/* 4: malloc called under realloc's guard: not a raw malloc */
	"2: cmp $0x4f75e0,%rax\n jne 3f\n call ts_malloc_stub\n"
	/* 5: the guard, then an unconditional jump before the call */
	"3: cmp $0x4f75e0,%rax\n jne 4f\n jmp 5f\n 5: call ts_realloc_stub\n"
	/* 6: the guard too far from the call */
	"4: cmp $0x4f75e0,%rax\n jne 6f\n .rept 20\n nop\n .endr\n call ts_realloc_stub\n"
	/* 7: guarded call through a GOT slot */
	"6: cmp $0x4f7600,%rax\n jne 7f\n call *ts_calloc_slot(%rip)\n"
	".globl ts_ret2\n ts_ret2:\n"
	"7: ret\n"
	".globl ts_code_end\n ts_code_end:\n"
	"ts_realloc_stub: ret\n ts_malloc_stub: ret\n ts_raw_malloc: ret\n"
	".data\n ts_slot: .quad 0\n ts_calloc_slot: .quad 0\n .text\n");

extern const uint8_t ts_code[], ts_code_end[], ts_ret1[], ts_ret2[], ts_jmp1[];
extern const uint8_t ts_realloc_stub[], ts_malloc_stub[], ts_raw_malloc[], ts_calloc_slot[];

static void test_hand_assembled_shapes(void **state)
{
	const struct python_sites_callee callees[] = {
	    {(uintptr_t)ts_realloc_stub, PYTHON_SITE_REALLOC, false},
	    {(uintptr_t)ts_malloc_stub, PYTHON_SITE_MALLOC, false},
	    {(uintptr_t)ts_calloc_slot, PYTHON_SITE_CALLOC, true},
	};
	struct python_sites_in in = {.callees = callees, .ncallees = 3};
	struct python_sites out = {0};

	in.guard[PYTHON_SITE_MALLOC] = (uintptr_t)ts_raw_malloc;
	in.guard[PYTHON_SITE_CALLOC] = 0x4f7600;
	in.guard[PYTHON_SITE_REALLOC] = 0x4f75e0;
	assert_int_equal(python_sites_scan(ts_code, (size_t)(ts_code_end - ts_code),
					   (uintptr_t)ts_code, &in, &out),
			 0);
	assert_int_equal(out.n, 3);
	assert_int_equal(out.calls, 2);
	assert_int_equal(out.tails, 1);
	assert_int_equal(out.unguarded, 4); /* shapes 2, 4, 5 and 6 */
	assert_int_equal(out.v[0].addr, (uintptr_t)ts_ret1);
	assert_int_equal(out.v[0].kind, PYTHON_SITE_REALLOC);
	assert_false(out.v[0].tail);
	assert_int_equal(out.v[1].addr, (uintptr_t)ts_jmp1);
	assert_int_equal(out.v[1].kind, PYTHON_SITE_MALLOC);
	assert_true(out.v[1].tail);
	assert_int_equal(out.v[2].addr, (uintptr_t)ts_ret2);
	assert_int_equal(out.v[2].kind, PYTHON_SITE_CALLOC);
	assert_false(out.v[2].tail);
	python_sites_free(&out);
}

static void test_no_guard_no_site(void **state)
{
	const struct python_sites_callee callees[] = {
	    {(uintptr_t)ts_realloc_stub, PYTHON_SITE_REALLOC, false},
	};
	struct python_sites_in in = {.callees = callees, .ncallees = 1};
	struct python_sites out = {0};

	/* a build whose raw table does not hold its defaults has no guard to find */
	assert_int_equal(python_sites_scan(ts_code, (size_t)(ts_code_end - ts_code),
					   (uintptr_t)ts_code, &in, &out),
			 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(out.unguarded, 4);
	python_sites_free(&out);
}

/* A binary known by where one of its exported functions is, with its raw
 * domain's default functions (from its allocator table, as alloc.c reads
 * it) and what objdump shows of its calls to libc's allocators. */
struct known_build {
	const char *path;
	const char *anchor;
	uint64_t anchor_vaddr;
	uint64_t guard[PYTHON_SITE_NKINDS];
	size_t calls[PYTHON_SITE_NKINDS], tails[PYTHON_SITE_NKINDS], unguarded;
};

static void check_build(const struct known_build *b)
{
	struct python_sites out;
	size_t calls[PYTHON_SITE_NKINDS] = {0}, tails[PYTHON_SITE_NKINDS] = {0};
	struct elfsym_file *f;
	struct elfsym sym;
	bool known;

	if (access(b->path, R_OK) || elfsym_open(b->path, &f))
		skip();
	known = !elfsym_lookup(f, b->anchor, &sym) && sym.vaddr == b->anchor_vaddr;
	elfsym_close(f);
	if (!known)
		skip();
	assert_int_equal(python_sites_find(b->path, 0, b->guard, &out), 0);
	for (size_t i = 0; i < out.n; i++) {
		if (out.v[i].tail)
			tails[out.v[i].kind]++;
		else
			calls[out.v[i].kind]++;
	}
	for (int k = 0; k < PYTHON_SITE_NKINDS; k++) {
		assert_int_equal(calls[k], b->calls[k]);
		assert_int_equal(tails[k], b->tails[k]);
	}
	assert_int_equal(out.unguarded, b->unguarded);
	python_sites_free(&out);
}

static void test_debian_python311(void **state)
{
	/* 3.11.2: the three tail jumps of the exported PyMem_Realloc (2) and
	 * PyObject_Realloc, and PyMem_RawMalloc's; the unguarded calls are
	 * the real _PyMem_Raw* functions' own and two of CPython's direct
	 * calls to malloc */
	static const struct known_build b = {
	    .path = "/usr/bin/python3.11",
	    .anchor = "PyMem_RawRealloc",
	    .anchor_vaddr = 0x4f75c0,
	    .guard = {0x4f7350, 0x4f76c0, 0x4f75e0},
	    .calls = {172, 6, 10},
	    .tails = {1, 0, 3},
	    .unguarded = 5,
	};
	check_build(&b);
}

static void test_forky_python314(void **state)
{
	static const struct known_build b = {
	    .path = "/var/lib/tracer/forky/usr/bin/python3.14",
	    .anchor = "PyMem_RawRealloc",
	    .anchor_vaddr = 0x6dc9e0,
	    .guard = {0x53d970, 0x543800, 0x53da10},
	    .calls = {224, 18, 15},
	    .tails = {1, 0, 3},
	    .unguarded = 73,
	};
	check_build(&b);
}

/* 3.11.2's _PyObject_Malloc (0x4fb450), as objdump shows its callers: 20
 * calls and 3 tail jumps; the call returning to 0x510974 (test %rax,%rax;
 * je) has its probe on the je, so has the one returning to 0x5616cb (mov
 * %rax,%rbp; test; je). */
static void test_debian_python311_malloc_calls(void **state)
{
	const char *path = "/usr/bin/python3.11";
	struct python_calls out;
	struct elfsym_file *f;
	struct elfsym sym;
	size_t tails = 0, calls = 0, seen = 0;
	bool known;

	if (access(path, R_OK) || elfsym_open(path, &f))
		skip();
	known = !elfsym_lookup(f, "PyMem_RawRealloc", &sym) && sym.vaddr == 0x4f75c0;
	elfsym_close(f);
	if (!known)
		skip();
	assert_int_equal(python_calls_find(path, 0, 0x4fb450, &out), 0);
	for (size_t i = 0; i < out.n; i++) {
		if (out.v[i].tail) {
			tails++;
			continue;
		}
		calls++;
		if (out.v[i].addr == 0x510974) {
			assert_int_equal(out.v[i].probe, 3);
			assert_true(out.v[i].emulated);
			seen++;
		}
		if (out.v[i].addr == 0x5616cb) {
			assert_int_equal(out.v[i].probe, 6);
			assert_true(out.v[i].emulated);
			seen++;
		}
	}
	assert_int_equal(calls, 20);
	assert_int_equal(tails, 3);
	assert_int_equal(seen, 2);
	python_calls_free(&out);
}

/* 3.11.2's raw functions, sized by their FDEs: each only tail-jumps to
 * libc's (calloc's zero path jumps back to its jmp); _PyObject_Malloc,
 * or a raw function asked about another kind, does not. */
static void test_debian_python311_raw_tails(void **state)
{
	const char *path = "/usr/bin/python3.11";
	struct elfsym_file *f;
	struct elfsym sym;
	bool known;

	if (access(path, R_OK) || elfsym_open(path, &f))
		skip();
	known = !elfsym_lookup(f, "PyMem_RawRealloc", &sym) && sym.vaddr == 0x4f75c0;
	elfsym_close(f);
	if (!known)
		skip();
	assert_true(python_raw_tail(path, 0, 0x4f7350, 0x14, PYTHON_SITE_MALLOC));
	assert_true(python_raw_tail(path, 0, 0x4f76c0, 0x21, PYTHON_SITE_CALLOC));
	assert_true(python_raw_tail(path, 0, 0x4f75e0, 0x17, PYTHON_SITE_REALLOC));
	assert_false(python_raw_tail(path, 0, 0x4f7350, 0x14, PYTHON_SITE_CALLOC));
	assert_false(python_raw_tail(path, 0, 0x4f7350, 0x10, PYTHON_SITE_MALLOC));
	assert_false(python_raw_tail(path, 0, 0x4fb450, 0xee, PYTHON_SITE_MALLOC));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hand_assembled_shapes),
	    cmocka_unit_test(test_no_guard_no_site),
	    cmocka_unit_test(test_debian_python311),
	    cmocka_unit_test(test_forky_python314),
	    cmocka_unit_test(test_debian_python311_malloc_calls),
	    cmocka_unit_test(test_debian_python311_raw_tails),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
