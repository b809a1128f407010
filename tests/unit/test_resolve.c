/* The traceback merge rules of resolve.c, with a symbolizer of our own
 * (linked instead of symbolize.o): addresses 0x1000 + 0x100*k are known
 * code named by the table below; 0x9000 becomes known only after a
 * refresh (a library mapped since); 0xa000 and 0xa100 are calls in
 * inlined code (several frames each); anything else is outside code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "resolve.h"

#define NSTACK(a) ((uint32_t)(sizeof(a) / sizeof((a)[0])))

struct symbolizer {
	bool refreshed;
	int refreshes;
};

static const char *const functions[] = {
    "alloc_site", "helper", "caller", "main", "_start", "_PyEval_EvalFrameDefault", "start_thread",
    "__rust_alloc", "alloc::raw_vec::finish_grow", "void std::vector<long>::_M_realloc_insert<long>()",
    "zmalloc", "zmalloc_fast",
};

#define INLINED 0xa000	 /* grow <- push (inlined) <- user */
#define EVAL_INLINED 0xa100 /* list_append inlined in the interpreter loop */

bool symbolize_valid_ip(struct symbolizer *s, uint64_t ip)
{
	if (ip == 0x9000)
		return s->refreshed;
	if (ip == INLINED || ip == EVAL_INLINED)
		return true;
	return ip >= 0x1000 && ip < 0x1000 + 0x100 * sizeof(functions) / sizeof(functions[0]) &&
	       ip % 0x100 == 0;
}

void symbolize_refresh(struct symbolizer *s)
{
	s->refreshes++;
	s->refreshed = true;
}

/* The executable mappings, in address order: libc below the program (the
 * executable, listed first by resolve_mappings), the late library once
 * refreshed. */
static const struct symbolize_mapping mappings[] = {
    {0x400, 0x800, 0x1000, "/lib/libc.so.6", NULL, false},
    {0x800, 0x2000, 0, "/bin/prog", "0123abcd", true},
    {0x8000, 0xa000, 0x2000, "/lib/late.so", NULL, false},
};

bool symbolize_mapping_at(struct symbolizer *s, size_t i, struct symbolize_mapping *out)
{
	if (i >= (s->refreshed ? 3u : 2u))
		return false;
	*out = mappings[i];
	return true;
}

int symbolize_return_address(struct symbolizer *s, uint64_t ip,
			     const struct symbolize_frame **frames)
{
	static const struct symbolize_frame inlined[] = {
	    {"vec.h", 5, "grow"}, {"vec.h", 9, "push"}, {"user.c", 30, "user"}};
	static const struct symbolize_frame eval_inlined[] = {
	    {"listobject.c", 10, "list_append"}, {"ceval.c", 20, "_PyEval_EvalFrameDefault"}};
	static struct symbolize_frame one;

	if (!symbolize_valid_ip(s, ip))
		return -ENOENT;
	if (ip == INLINED) {
		*frames = inlined;
		return 3;
	}
	if (ip == EVAL_INLINED) {
		*frames = eval_inlined;
		return 2;
	}
	one.filename = "native.c";
	one.lineno = (uint32_t)(ip >> 8); /* 0x1000 -> line 16 */
	one.function = ip == 0x9000 ? "late" : functions[(ip - 0x1000) / 0x100];
	one.pc = ip - 1;
	one.function_offset = 0x10;
	one.mapping = mappings[ip == 0x9000 ? 2 : 1];
	*frames = &one;
	return 1;
}

#define SITE 0x1000   /* alloc_site, line 16 */
#define HELPER 0x1100 /* line 17 */
#define CALLER 0x1200 /* line 18 */
#define MAIN 0x1300   /* line 19 */
#define START 0x1400  /* _start */
#define EVAL 0x1500   /* the interpreter loop */
#define THREAD 0x1600 /* start_thread */
#define RUST_ALLOC 0x1700 /* plumbing ... */
#define RAW_VEC 0x1800
#define VECTOR 0x1900
#define ZMALLOC 0x1a00
#define NOT_ZMALLOC 0x1b00 /* a name that only starts like one */

struct fixture {
	struct snapshot *snap;
	struct symbolizer sym;
	struct resolve_counts counts;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->snap = snapshot_new();
	*state = f;
	return f->snap ? 0 : -1;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	snapshot_free(f->snap);
	free(f);
	return 0;
}

static const struct snapshot_traceback *resolve(struct fixture *f, uint32_t nframe, bool native,
						const struct resolve_trace *t)
{
	struct resolve_options o = {.nframe = nframe, .native = native};
	int64_t tb = resolve_traceback(f->snap, &f->sym, &o, t, &f->counts);

	assert_true(tb >= 0);
	return &f->snap->tracebacks[tb];
}

/* Frame i of tb as "file:line" or "file:line:function". */
static const char *frame(struct fixture *f, const struct snapshot_traceback *tb, uint32_t i)
{
	static char buf[128];
	const struct snapshot_frame *fr = snapshot_frame_at(f->snap, tb, i);
	const char *fn = snapshot_string(f->snap, fr->function);

	snprintf(buf, sizeof(buf), "%s:%u%s%s", snapshot_string(f->snap, fr->filename), fr->lineno,
		 fn ? ":" : "", fn ? fn : "");
	return buf;
}

static void test_native_frames_in_order(void **state)
{
	struct fixture *f = *state;
	const uint64_t stack[] = {SITE, HELPER, CALLER, MAIN, START};
	struct resolve_trace t = {.ip = SITE, .stack = stack, .nstack = NSTACK(stack), .domain = SNAPSHOT_DOMAIN_LIBC};
	const struct snapshot_traceback *tb = resolve(f, 5, false, &t);

	assert_int_equal(tb->nframe, 5);
	assert_int_equal(tb->total_nframe, 5);
	assert_string_equal(frame(f, tb, 0), "native.c:16:alloc_site");
	assert_string_equal(frame(f, tb, 1), "native.c:17:helper");
	assert_string_equal(frame(f, tb, 3), "native.c:19:main");
	assert_string_equal(frame(f, tb, 4), "native.c:20:_start");
	assert_int_equal(f->counts.truncated, 0);
}

static void test_native_truncated_at_nframe(void **state)
{
	struct fixture *f = *state;
	const uint64_t stack[] = {SITE, HELPER, CALLER, MAIN, START};
	struct resolve_trace t = {.ip = SITE, .stack = stack, .nstack = NSTACK(stack), .domain = SNAPSHOT_DOMAIN_LIBC};
	const struct snapshot_traceback *tb = resolve(f, 2, false, &t);

	assert_int_equal(tb->nframe, 2);
	assert_int_equal(tb->total_nframe, 2); /* a native walk counts what it kept */
	assert_string_equal(frame(f, tb, 1), "native.c:17:helper");
}

static void test_frame_zero_is_the_call_site_not_the_stack(void **state)
{
	struct fixture *f = *state;
	/* the walk's first entry is not used: the return probe's ip is frame 0 */
	const uint64_t stack[] = {MAIN, HELPER, START};
	struct resolve_trace t = {.ip = SITE, .stack = stack, .nstack = NSTACK(stack), .domain = SNAPSHOT_DOMAIN_LIBC};
	const struct snapshot_traceback *tb = resolve(f, 3, false, &t);

	assert_int_equal(tb->nframe, 3);
	assert_string_equal(frame(f, tb, 0), "native.c:16:alloc_site");
	assert_string_equal(frame(f, tb, 1), "native.c:17:helper");
}

static void test_cut_outside_code_is_counted(void **state)
{
	struct fixture *f = *state;
	const uint64_t stack[] = {SITE, HELPER, 0xdead, MAIN};
	struct resolve_trace t = {.ip = SITE, .stack = stack, .nstack = NSTACK(stack), .domain = SNAPSHOT_DOMAIN_LIBC};
	const struct snapshot_traceback *tb = resolve(f, 4, false, &t);

	assert_int_equal(tb->nframe, 2);
	assert_int_equal(f->counts.truncated, 1);
	assert_true(f->sym.refreshes >= 1); /* an unknown address first re-reads the maps */
}

static void test_unknown_address_known_after_refresh(void **state)
{
	struct fixture *f = *state;
	const uint64_t stack[] = {SITE, 0x9000, START};
	struct resolve_trace t = {.ip = SITE, .stack = stack, .nstack = NSTACK(stack), .domain = SNAPSHOT_DOMAIN_LIBC};
	const struct snapshot_traceback *tb = resolve(f, 3, false, &t);

	assert_int_equal(tb->nframe, 3);
	assert_string_equal(frame(f, tb, 1), "native.c:144:late");
	assert_int_equal(f->counts.truncated, 0);
}

static void test_walks_cut_short_are_counted_by_reason(void **state)
{
	struct fixture *f = *state;
	const uint64_t short_walk[] = {SITE, HELPER};
	const uint64_t to_bottom[] = {SITE, HELPER, THREAD};
	struct resolve_trace t = {.ip = SITE,
				  .stack = short_walk,
				  .nstack = NSTACK(short_walk),
				  .stack_end = TRACER_END_NO_CFI,
				  .domain = SNAPSHOT_DOMAIN_LIBC};

	assert_int_equal(resolve(f, 8, false, &t)->nframe, 2);
	assert_int_equal(f->counts.stack_end[TRACER_END_NO_CFI], 1);
	t.stack = to_bottom;
	t.nstack = NSTACK(to_bottom);
	t.stack_end = TRACER_END_BOTTOM; /* complete */
	assert_int_equal(resolve(f, 8, false, &t)->nframe, 3);
	t.stack_end = TRACER_END_NFRAME;
	assert_int_equal(resolve(f, 3, false, &t)->nframe, 3);
	t.stack_end = TRACER_END_READ;
	assert_int_equal(resolve(f, 8, false, &t)->nframe, 3);
	assert_int_equal(f->counts.stack_end[TRACER_END_READ], 1);
	assert_int_equal(f->counts.stack_end[TRACER_END_NO_CFI], 1);
	assert_int_equal(f->counts.stack_end[TRACER_END_BOTTOM], 0);
	assert_int_equal(f->counts.stack_end[TRACER_END_NFRAME], 0);
	t.stack = NULL; /* no walk (nframe 1): nothing to count */
	assert_int_equal(resolve(f, 8, false, &t)->nframe, 1);
	assert_int_equal(f->counts.stack_end[TRACER_END_READ], 1);
}

static void test_allocator_plumbing_left_out(void **state)
{
	struct fixture *f = *state;
	const uint64_t rust[] = {RUST_ALLOC, RAW_VEC, HELPER, CALLER, MAIN};
	const uint64_t cxx[] = {VECTOR, ZMALLOC, CALLER, MAIN};
	struct resolve_trace t = {
	    .ip = RUST_ALLOC, .stack = rust, .nstack = NSTACK(rust), .domain = SNAPSHOT_DOMAIN_LIBC};
	const struct snapshot_traceback *tb = resolve(f, 2, false, &t);

	/* the walk went deeper than nframe: 2 frames after the 2 left out */
	assert_int_equal(tb->nframe, 2);
	assert_string_equal(frame(f, tb, 0), "native.c:17:helper");
	assert_string_equal(frame(f, tb, 1), "native.c:18:caller");
	t.ip = VECTOR;
	t.stack = cxx;
	t.nstack = NSTACK(cxx);
	tb = resolve(f, 3, false, &t);
	assert_int_equal(tb->nframe, 2);
	assert_string_equal(frame(f, tb, 0), "native.c:18:caller");
}

static void test_plumbing_kept_when_asked_or_when_all(void **state)
{
	struct fixture *f = *state;
	const uint64_t rust[] = {RUST_ALLOC, RAW_VEC, HELPER};
	const uint64_t only[] = {RUST_ALLOC, RAW_VEC};
	const uint64_t near[] = {NOT_ZMALLOC, HELPER};
	struct resolve_options keep = {.nframe = 3, .keep_plumbing = true};
	struct resolve_trace t = {
	    .ip = RUST_ALLOC, .stack = rust, .nstack = NSTACK(rust), .domain = SNAPSHOT_DOMAIN_LIBC};
	int64_t id = resolve_traceback(f->snap, &f->sym, &keep, &t, &f->counts);
	const struct snapshot_traceback *tb;

	assert_true(id >= 0);
	tb = &f->snap->tracebacks[id];
	assert_int_equal(tb->nframe, 3);
	assert_string_equal(frame(f, tb, 0), "native.c:23:__rust_alloc");
	t.stack = only; /* nothing but plumbing: the last of it stays */
	t.nstack = NSTACK(only);
	tb = resolve(f, 3, false, &t);
	assert_int_equal(tb->nframe, 1);
	assert_string_equal(frame(f, tb, 0), "native.c:24:alloc::raw_vec::finish_grow");
	t.ip = NOT_ZMALLOC;
	t.stack = near;
	t.nstack = NSTACK(near);
	tb = resolve(f, 3, false, &t);
	assert_string_equal(frame(f, tb, 0), "native.c:27:zmalloc_fast");
	assert_true(resolve_is_plumbing("zmalloc(unsigned long)"));
	assert_false(resolve_is_plumbing("zmallocx"));
	assert_false(resolve_is_plumbing(NULL));
}

static void test_no_frame_at_all_is_unknown(void **state)
{
	struct fixture *f = *state;
	struct resolve_trace t = {.ip = 0xdead, .domain = SNAPSHOT_DOMAIN_LIBC};
	const struct snapshot_traceback *tb = resolve(f, 4, false, &t);

	assert_int_equal(tb->nframe, 1);
	assert_int_equal(tb->total_nframe, 1);
	assert_string_equal(frame(f, tb, 0), "<unknown>:0");
	assert_int_equal(f->counts.truncated, 1);
}

/* A Python stack of n frames py.py:100+i (most recent first), total. */
static struct python_frames_stack *py_stack(uint32_t n, uint32_t total, uint32_t unresolved)
{
	struct python_frames_stack *st = calloc(1, sizeof(*st) + n * sizeof(st->frames[0]));

	st->nframe = n;
	st->total = total;
	st->unresolved = unresolved;
	for (uint32_t i = 0; i < n; i++) {
		st->frames[i].filename = "py.py";
		st->frames[i].lineno = 100 + i;
		st->frames[i].function = "f";
	}
	return st;
}

static void test_python_frames_replace_native(void **state)
{
	struct fixture *f = *state;
	const uint64_t stack[] = {SITE, HELPER, EVAL, MAIN};
	struct python_frames_stack *py = py_stack(3, 7, 0);
	struct resolve_trace t = {.ip = SITE,
				  .stack = stack, .nstack = NSTACK(stack),
				  .domain = SNAPSHOT_DOMAIN_PYTHON,
				  .py = py,
				  .python_process = true};
	const struct snapshot_traceback *tb = resolve(f, 5, false, &t);

	assert_int_equal(tb->nframe, 3);
	assert_int_equal(tb->total_nframe, 7); /* tracemalloc's total_nframe: every frame walked */
	assert_string_equal(frame(f, tb, 0), "py.py:100:f");
	assert_string_equal(frame(f, tb, 2), "py.py:102:f");
	free(py);
}

static void test_python_frames_truncated_at_nframe(void **state)
{
	struct fixture *f = *state;
	struct python_frames_stack *py = py_stack(3, 3, 0);
	struct resolve_trace t = {
	    .ip = SITE, .domain = SNAPSHOT_DOMAIN_PYTHON, .py = py, .python_process = true};
	const struct snapshot_traceback *tb = resolve(f, 2, false, &t);

	assert_int_equal(tb->nframe, 2);
	assert_int_equal(tb->total_nframe, 3);
	free(py);
}

static void test_native_then_python_frames(void **state)
{
	struct fixture *f = *state;
	/* allocator <- helper <- interpreter loop: the loop's place is taken
	 * by the Python frames */
	const uint64_t stack[] = {SITE, HELPER, EVAL, MAIN};
	struct python_frames_stack *py = py_stack(2, 4, 0);
	struct resolve_trace t = {.ip = SITE,
				  .stack = stack, .nstack = NSTACK(stack),
				  .domain = SNAPSHOT_DOMAIN_PYTHON,
				  .py = py,
				  .python_process = true};
	const struct snapshot_traceback *tb = resolve(f, 10, true, &t);

	assert_int_equal(tb->nframe, 4);
	assert_int_equal(tb->total_nframe, 2 + 4);
	assert_string_equal(frame(f, tb, 0), "native.c:16:alloc_site");
	assert_string_equal(frame(f, tb, 1), "native.c:17:helper");
	assert_string_equal(frame(f, tb, 2), "py.py:100:f");
	assert_string_equal(frame(f, tb, 3), "py.py:101:f");
	/* nframe bounds the merged traceback */
	tb = resolve(f, 3, true, &t);
	assert_int_equal(tb->nframe, 3);
	assert_string_equal(frame(f, tb, 2), "py.py:100:f");
	free(py);
}

static void test_python_allocation_without_python_frames(void **state)
{
	struct fixture *f = *state;
	const uint64_t stack[] = {SITE, HELPER, MAIN};
	struct resolve_trace t = {
	    .ip = SITE, .stack = stack, .nstack = NSTACK(stack), .domain = SNAPSHOT_DOMAIN_PYTHON, .python_process = true};
	const struct snapshot_traceback *tb = resolve(f, 3, false, &t);

	/* tracemalloc's empty traceback */
	assert_int_equal(tb->nframe, 1);
	assert_int_equal(tb->total_nframe, 1);
	assert_string_equal(frame(f, tb, 0), "<unknown>:0");
	/* with --native its C frames; in a process without CPython, too */
	assert_int_equal(resolve(f, 3, true, &t)->nframe, 3);
	t.python_process = false;
	assert_int_equal(resolve(f, 3, false, &t)->nframe, 3);
	/* libc's blocks of a Python thread with no Python frame stay native */
	t.python_process = true;
	t.domain = SNAPSHOT_DOMAIN_LIBC;
	assert_int_equal(resolve(f, 3, false, &t)->nframe, 3);
}

static void test_unresolved_python_frames_are_counted(void **state)
{
	struct fixture *f = *state;
	struct python_frames_stack *py = py_stack(1, 3, 2);
	struct resolve_trace t = {
	    .ip = SITE, .domain = SNAPSHOT_DOMAIN_PYTHON, .py = py, .python_process = true};
	const struct snapshot_traceback *tb = resolve(f, 5, false, &t);

	assert_int_equal(tb->nframe, 1);
	assert_int_equal(f->counts.py_unresolved, 2);
	free(py);
}

static void test_a_stack_with_no_frame_resolved_is_counted(void **state)
{
	struct fixture *f = *state;
	struct python_frames_stack *py = py_stack(0, 4, 3);
	struct resolve_trace t = {
	    .ip = SITE, .domain = SNAPSHOT_DOMAIN_PYTHON, .py = py, .python_process = true};
	const struct snapshot_traceback *tb = resolve(f, 5, false, &t);

	assert_string_equal(frame(f, tb, 0), "<unknown>:0");
	assert_int_equal(f->counts.py_unresolved, 3); /* never silently */
	free(py);
}

static void test_inlined_frames_expand_innermost_first(void **state)
{
	struct fixture *f = *state;
	const uint64_t stack[] = {INLINED, HELPER, MAIN, START, 0};
	struct resolve_trace t = {
	    .ip = INLINED, .stack = stack, .nstack = NSTACK(stack), .domain = SNAPSHOT_DOMAIN_LIBC};
	const struct snapshot_traceback *tb = resolve(f, 10, false, &t);

	assert_int_equal(tb->nframe, 6);
	assert_int_equal(tb->total_nframe, 6);
	assert_string_equal(frame(f, tb, 0), "vec.h:5:grow");
	assert_string_equal(frame(f, tb, 1), "vec.h:9:push");
	assert_string_equal(frame(f, tb, 2), "user.c:30:user");
	assert_string_equal(frame(f, tb, 3), "native.c:17:helper");
	assert_string_equal(frame(f, tb, 5), "native.c:20:_start");
	assert_int_equal(f->counts.truncated, 0);
}

static void test_inlined_frames_count_toward_nframe(void **state)
{
	struct fixture *f = *state;
	const uint64_t stack[] = {INLINED, HELPER, MAIN};
	struct resolve_trace t = {
	    .ip = INLINED, .stack = stack, .nstack = NSTACK(stack), .domain = SNAPSHOT_DOMAIN_LIBC};
	const struct snapshot_traceback *tb = resolve(f, 2, false, &t);

	/* cut inside one address's frames */
	assert_int_equal(tb->nframe, 2);
	assert_int_equal(tb->total_nframe, 2);
	assert_string_equal(frame(f, tb, 1), "vec.h:9:push");
	tb = resolve(f, 4, false, &t);
	assert_int_equal(tb->nframe, 4);
	assert_string_equal(frame(f, tb, 3), "native.c:17:helper");
	/* a deeper address expands as well */
	const uint64_t deeper[] = {SITE, INLINED, MAIN};

	t.ip = SITE;
	t.stack = deeper;
	t.nstack = NSTACK(deeper);
	tb = resolve(f, 5, false, &t);
	assert_int_equal(tb->nframe, 5);
	assert_string_equal(frame(f, tb, 0), "native.c:16:alloc_site");
	assert_string_equal(frame(f, tb, 1), "vec.h:5:grow");
	assert_string_equal(frame(f, tb, 3), "user.c:30:user");
	assert_string_equal(frame(f, tb, 4), "native.c:19:main");
	assert_int_equal(f->counts.truncated, 0);
}

static void test_native_stops_at_inlined_interpreter_code(void **state)
{
	struct fixture *f = *state;
	const uint64_t stack[] = {SITE, HELPER, EVAL_INLINED, MAIN};
	struct python_frames_stack *py = py_stack(1, 1, 0);
	struct resolve_trace t = {.ip = SITE,
				  .stack = stack,
				  .nstack = NSTACK(stack),
				  .domain = SNAPSHOT_DOMAIN_PYTHON,
				  .py = py,
				  .python_process = true};
	const struct snapshot_traceback *tb = resolve(f, 10, true, &t);

	/* an address whose function is the loop: its inlined frames go too */
	assert_int_equal(tb->nframe, 3);
	assert_string_equal(frame(f, tb, 1), "native.c:17:helper");
	assert_string_equal(frame(f, tb, 2), "py.py:100:f");
	free(py);
}

static void test_equal_inputs_share_a_traceback(void **state)
{
	struct fixture *f = *state;
	const uint64_t stack[] = {SITE, HELPER, START};
	struct resolve_trace t = {.ip = SITE, .stack = stack, .nstack = NSTACK(stack), .domain = SNAPSHOT_DOMAIN_LIBC};
	struct resolve_options o = {.nframe = 3};
	int64_t a = resolve_traceback(f->snap, &f->sym, &o, &t, &f->counts);
	int64_t b = resolve_traceback(f->snap, &f->sym, &o, &t, &f->counts);

	assert_true(a >= 0);
	assert_int_equal(a, b);
}

/* Native frames say where they are: the mapping (interned with its
 * build-id), the address symbolized (the return address - 1) and the
 * offset in the function; resolve_mappings lists the executable first. */
static void test_native_frames_have_mappings_and_addresses(void **state)
{
	struct fixture *f = *state;
	const uint64_t stack[] = {SITE, HELPER};
	struct resolve_trace t = {.ip = SITE, .stack = stack, .nstack = NSTACK(stack), .domain = SNAPSHOT_DOMAIN_LIBC};
	const struct snapshot_traceback *tb;
	const struct snapshot_frame *fr;
	struct snapshot *all = snapshot_new();

	assert_int_equal(resolve_mappings(all, &f->sym), 0);
	assert_int_equal(all->nmappings, 2);
	assert_string_equal(snapshot_string(all, all->mappings[0].path), "/bin/prog");
	assert_string_equal(snapshot_string(all, all->mappings[0].build_id), "0123abcd");
	assert_int_equal(all->mappings[0].start, 0x800);
	assert_int_equal(all->mappings[0].limit, 0x2000);
	assert_string_equal(snapshot_string(all, all->mappings[1].path), "/lib/libc.so.6");
	assert_int_equal(all->mappings[1].build_id, SNAPSHOT_NO_STRING);
	assert_int_equal(all->mappings[1].file_offset, 0x1000);
	/* again: nothing new */
	assert_int_equal(resolve_mappings(all, &f->sym), 0);
	assert_int_equal(all->nmappings, 2);
	assert_int_equal(resolve_mappings(all, NULL), 0);
	snapshot_free(all);

	tb = resolve(f, 2, false, &t);
	fr = snapshot_frame_at(f->snap, tb, 1);
	assert_int_equal(f->snap->nmappings, 1);
	assert_int_equal(fr->mapping, 0);
	assert_int_equal(fr->address, HELPER - 1);
	assert_int_equal(fr->function_offset, 0x10);
	assert_int_equal(snapshot_frame_at(f->snap, tb, 0)->address, SITE - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_native_frames_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_native_truncated_at_nframe, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_frame_zero_is_the_call_site_not_the_stack, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_cut_outside_code_is_counted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_address_known_after_refresh, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_walks_cut_short_are_counted_by_reason, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_allocator_plumbing_left_out, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_plumbing_kept_when_asked_or_when_all, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_frame_at_all_is_unknown, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_python_frames_replace_native, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_python_frames_truncated_at_nframe, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_native_then_python_frames, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_python_allocation_without_python_frames, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_unresolved_python_frames_are_counted, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_a_stack_with_no_frame_resolved_is_counted, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_inlined_frames_expand_innermost_first, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_inlined_frames_count_toward_nframe, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_native_stops_at_inlined_interpreter_code, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_equal_inputs_share_a_traceback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_native_frames_have_mappings_and_addresses, setup,
					    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
