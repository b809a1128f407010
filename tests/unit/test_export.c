/* Collapsed stacks and pprof profiles of a hand-made snapshot: exact text,
 * and a profile whose protobuf fields decode to the snapshot's figures. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zlib.h>

#include "report/collapsed.h"
#include "report/pprof.h"
#include "model/snapshot.h"

static uint32_t tb(struct snapshot *s, int n, ...)
{
	uint32_t ids[8];
	va_list ap;

	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		const char *file = va_arg(ap, const char *);
		int line = va_arg(ap, int);
		const char *fn = va_arg(ap, const char *);

		ids[i] = (uint32_t)snapshot_intern_frame(s, file, (uint32_t)line, fn);
	}
	va_end(ap);
	return (uint32_t)snapshot_intern_traceback(s, ids, (uint32_t)n, (uint32_t)n);
}

static struct snapshot *sample(void)
{
	struct snapshot *s = snapshot_new();
	uint32_t a = tb(s, 2, "app.py", 3, "leaf", "app.py", 10, "<module>");
	uint32_t b = tb(s, 1, "odd;name\nfile.c", 7, NULL);
	uint32_t c = tb(s, 0);

	s->traceback_limit = 2;
	s->target.command = (uint32_t)snapshot_intern_string(s, "cmd");
	s->target.host = s->target.command;
	s->taken_at = 1795558500;
	snapshot_add_trace(s, 0x10, 100, SNAPSHOT_DOMAIN_PYTHON, a);
	snapshot_add_trace(s, 0x20, 50, SNAPSHOT_DOMAIN_PYTHON, a);
	snapshot_add_trace(s, 0x30, 7, SNAPSHOT_DOMAIN_LIBC, a);
	snapshot_add_trace(s, 0x40, 1000, SNAPSHOT_DOMAIN_LIBC, b);
	snapshot_add_trace(s, 0x50, 3, 42, c);
	return s;
}

static const char *collapsed(const struct snapshot *s, bool lines)
{
	static char buf[1024];
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	assert_int_equal(collapsed_write(s, f, lines), 0);
	fclose(f);
	return buf;
}

/* By function: one box per function (a Python frame "file:function", its
 * names repeating across files); with lines, "function (file:line)". A
 * ';' in a name is a ':', a control character \xNN. */
static void test_collapsed(void **state)
{
	struct snapshot *s = sample();

	assert_string_equal(collapsed(s, true), "<module> (app.py:10);leaf (app.py:3) 157\n"
						"<unknown> 3\n"
						"odd:name\\x0afile.c:7 1000\n");
	assert_string_equal(collapsed(s, false), "<unknown> 3\n"
						 "app.py:<module>;app.py:leaf 157\n"
						 "odd:name\\x0afile.c 1000\n");
	snapshot_free(s);
}

/* Two lines of one function are one box; a traceback cut at nframe
 * (total_nframe above nframe) starts at [cut], not at whatever frame the
 * cut left oldest. */
static void test_collapsed_by_function_and_cut(void **state)
{
	struct snapshot *s = snapshot_new();
	uint32_t f[3], whole, cut;

	f[0] = (uint32_t)snapshot_intern_frame(s, "app.py", 3, "leaf");
	f[1] = (uint32_t)snapshot_intern_frame(s, "app.py", 4, "leaf");
	f[2] = (uint32_t)snapshot_intern_frame(s, "app.py", 10, "<module>");
	whole = (uint32_t)snapshot_intern_traceback(s, (uint32_t[]){f[0], f[2]}, 2, 2);
	snapshot_add_trace(s, 0x10, 100, SNAPSHOT_DOMAIN_PYTHON, whole);
	snapshot_add_trace(s, 0x20, 20, SNAPSHOT_DOMAIN_PYTHON,
			   (uint32_t)snapshot_intern_traceback(s, (uint32_t[]){f[1], f[2]}, 2, 2));
	cut = (uint32_t)snapshot_intern_traceback(s, (uint32_t[]){f[0], f[2]}, 2, 9);
	snapshot_add_trace(s, 0x30, 5, SNAPSHOT_DOMAIN_PYTHON, cut);
	assert_string_equal(collapsed(s, false), "[cut];app.py:<module>;app.py:leaf 5\n"
						 "app.py:<module>;app.py:leaf 120\n");
	assert_string_equal(collapsed(s, true), "<module> (app.py:10);leaf (app.py:3) 100\n"
						"<module> (app.py:10);leaf (app.py:4) 20\n"
						"[cut];<module> (app.py:10);leaf (app.py:3) 5\n");
	snapshot_free(s);
}

/* A tiny protobuf reader for the test: the fields of one message. */
struct field {
	unsigned num, wire;
	uint64_t v;
	const unsigned char *p;
	size_t len;
};

static int next_field(const unsigned char **p, const unsigned char *end, struct field *f)
{
	uint64_t key = 0, v = 0;
	int shift = 0;

	if (*p >= end)
		return 0;
	do {
		assert_true(*p < end);
		key |= (uint64_t)(**p & 0x7f) << shift;
		shift += 7;
	} while (*(*p)++ & 0x80);
	f->num = (unsigned)(key >> 3);
	f->wire = key & 7;
	shift = 0;
	do {
		assert_true(*p < end);
		v |= (uint64_t)(**p & 0x7f) << shift;
		shift += 7;
	} while (*(*p)++ & 0x80);
	assert_true(f->wire == 0 || f->wire == 2);
	f->v = v;
	if (f->wire == 2) {
		assert_true(v <= (uint64_t)(end - *p));
		f->p = *p;
		f->len = v;
		*p += v;
	}
	return 1;
}

static uint64_t packed_at(const unsigned char *p, size_t len, int index)
{
	const unsigned char *end = p + len;
	uint64_t v = 0;

	for (int i = 0; i <= index; i++) {
		int shift = 0;

		v = 0;
		assert_true(p < end);
		do {
			v |= (uint64_t)(*p & 0x7f) << shift;
			shift += 7;
		} while (*p++ & 0x80);
	}
	return v;
}

static void test_pprof(void **state)
{
	struct snapshot *s = sample();
	char *gz = NULL;
	size_t gzlen = 0;
	FILE *f = open_memstream(&gz, &gzlen);
	unsigned char raw[65536];
	uLongf rawlen = sizeof(raw);
	z_stream z = {0};
	const unsigned char *p, *end;
	struct field fl;
	int sample_types = 0, samples = 0, strings = 0, functions = 0, locations = 0;
	uint64_t objects = 0, bytes = 0;
	char first_string[8] = "x";

	assert_int_equal(pprof_write(s, f), 0);
	fclose(f);
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = (unsigned char *)gz;
	z.avail_in = (uInt)gzlen;
	z.next_out = raw;
	z.avail_out = (uInt)rawlen;
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	rawlen = z.total_out;
	inflateEnd(&z);

	for (p = raw, end = raw + rawlen; next_field(&p, end, &fl);) {
		switch (fl.num) {
		case 1:
			sample_types++;
			break;
		case 2: {
			const unsigned char *q = fl.p;
			struct field sf;

			samples++;
			while (next_field(&q, fl.p + fl.len, &sf))
				if (sf.num == 2) {
					objects += packed_at(sf.p, sf.len, 0);
					bytes += packed_at(sf.p, sf.len, 1);
				}
			break;
		}
		case 4:
			locations++;
			break;
		case 5:
			functions++;
			break;
		case 6:
			if (!strings++)
				snprintf(first_string, sizeof(first_string), "%.*s", (int)fl.len,
					 (const char *)fl.p);
			break;
		}
	}
	assert_int_equal(sample_types, 2);
	/* (traceback a, python), (a, libc), (b, libc), (no frame, 42) */
	assert_int_equal(samples, 4);
	assert_int_equal(objects, 5);
	assert_int_equal(bytes, 1160);
	assert_string_equal(first_string, ""); /* the format's rule */
	assert_int_equal(locations, 4);	       /* 3 frames and <unknown> */
	assert_int_equal(functions, 4);
	free(gz);
	snapshot_free(s);
}

/* The fields of one message: value (varint) or bytes of the first field
 * of each number up to 15. */
struct msg {
	uint64_t v[16];
	bool has[16];
};

static struct msg decode(const unsigned char *p, size_t len)
{
	struct msg m = {{0}};
	struct field f;

	for (const unsigned char *end = p + len; next_field(&p, end, &f);)
		if (f.num < 16 && f.wire == 0 && !m.has[f.num]) {
			m.v[f.num] = f.v;
			m.has[f.num] = true;
		}
	return m;
}

static unsigned char *inflate_all(const char *gz, size_t gzlen, size_t *len)
{
	static unsigned char raw[65536];
	z_stream z = {0};

	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = (unsigned char *)gz;
	z.avail_in = (uInt)gzlen;
	z.next_out = raw;
	z.avail_out = sizeof(raw);
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	*len = z.total_out;
	inflateEnd(&z);
	return raw;
}

/* Mappings (the snapshot's, in order, then one for frames without an
 * address), locations at their addresses in their mappings, and function
 * names pprof keeps: a Python frame's system_name is empty (pprof would
 * otherwise cut "<module>" as a template argument), a native one's is its
 * name, and a native frame without a source line has no file. */
static void test_pprof_mappings(void **state)
{
	struct snapshot *s = snapshot_new();
	int64_t exe =
	    snapshot_intern_mapping(s, "/usr/bin/prog", "9fb3", 0x401000, 0x402000, 0x1000);
	int64_t lib = snapshot_intern_mapping(s, "/lib/libc.so.6", NULL, 0x7f0000001000,
					      0x7f0000100000, 0x1000);
	uint32_t f[3];
	char *gz = NULL, *strs[64];
	size_t gzlen = 0, rawlen;
	FILE *out = open_memstream(&gz, &gzlen);
	const unsigned char *p, *end, *raw;
	struct field fl;
	struct msg maps[4] = {{{0}}}, locs[8] = {{{0}}}, funcs[8] = {{{0}}};
	int nmaps = 0, nlocs = 0, nfuncs = 0, nstrs = 0;

	f[0] = (uint32_t)snapshot_intern_native_frame(s, "/usr/bin/prog+0x234", 0, "work",
						      (uint32_t)exe, 0x401234, 0x19);
	f[1] = (uint32_t)snapshot_intern_native_frame(s, "prog.c", 7, "std::vector<int>::push",
						      (uint32_t)exe, 0x401300, 0x40);
	f[2] = (uint32_t)snapshot_intern_frame(s, "app.py", 3, "<module>");
	assert_true(lib == 1);
	snapshot_add_trace(s, 0x10, 8, SNAPSHOT_DOMAIN_LIBC,
			   (uint32_t)snapshot_intern_traceback(s, f, 3, 3));
	s->target.command = (uint32_t)snapshot_intern_string(s, "prog");
	s->target.host = s->target.command;
	assert_int_equal(pprof_write(s, out), 0);
	fclose(out);
	raw = inflate_all(gz, gzlen, &rawlen);
	for (p = raw, end = raw + rawlen; next_field(&p, end, &fl);) {
		if (fl.num == 3 && nmaps < 4)
			maps[nmaps++] = decode(fl.p, fl.len);
		else if (fl.num == 4 && nlocs < 8)
			locs[nlocs++] = decode(fl.p, fl.len);
		else if (fl.num == 5 && nfuncs < 8)
			funcs[nfuncs++] = decode(fl.p, fl.len);
		else if (fl.num == 6 && nstrs < 64)
			strs[nstrs++] = strndup((const char *)fl.p, fl.len);
	}
#define STR(m, k) ((m).v[k] < (uint64_t)nstrs ? strs[(m).v[k]] : "?")
	assert_int_equal(nmaps, 3);
	/* id, start, limit, offset, file, build-id, has functions/files/lines */
	assert_int_equal(maps[0].v[1], 1);
	assert_int_equal(maps[0].v[2], 0x401000);
	assert_int_equal(maps[0].v[3], 0x402000);
	assert_int_equal(maps[0].v[4], 0x1000);
	assert_string_equal(STR(maps[0], 5), "/usr/bin/prog");
	assert_string_equal(STR(maps[0], 6), "9fb3");
	assert_true(maps[0].v[7] && maps[0].v[8] && maps[0].v[9]);
	/* no frame in libc: left for pprof (or a server) to symbolize */
	assert_int_equal(maps[1].v[1], 2);
	assert_string_equal(STR(maps[1], 5), "/lib/libc.so.6");
	assert_string_equal(STR(maps[1], 6), "");
	assert_true(!maps[1].v[7] && !maps[1].v[8] && !maps[1].v[9]);
	assert_int_equal(maps[2].v[1], 3);
	assert_string_equal(STR(maps[2], 5), "[python]");
	assert_true(maps[2].v[7] && maps[2].v[8] && maps[2].v[9] && !maps[2].v[2]);
	/* locations: id, mapping, address; <unknown> last */
	assert_int_equal(nlocs, 4);
	assert_int_equal(locs[0].v[2], 1);
	assert_int_equal(locs[0].v[3], 0x401234);
	assert_int_equal(locs[1].v[3], 0x401300);
	assert_int_equal(locs[2].v[2], 3);
	assert_false(locs[2].has[3]);
	assert_int_equal(locs[3].v[2], 3);
	/* functions: id, name, system_name, file */
	assert_int_equal(nfuncs, 4);
	assert_string_equal(STR(funcs[0], 2), "work");
	assert_string_equal(STR(funcs[0], 3), "work");
	assert_string_equal(STR(funcs[0], 4), "");
	assert_string_equal(STR(funcs[1], 2), "std::vector<int>::push");
	assert_string_equal(STR(funcs[1], 3), "std::vector<int>::push");
	assert_string_equal(STR(funcs[1], 4), "prog.c");
	assert_string_equal(STR(funcs[2], 2), "<module>");
	assert_false(funcs[2].has[3]);
	assert_string_equal(STR(funcs[2], 4), "app.py");
#undef STR
	for (int i = 0; i < nstrs; i++)
		free(strs[i]);
	free(gz);
	snapshot_free(s);
}

/* Collapsed stacks: a native frame without a source line reads
 * "function+0xOFFSET (binary)", or "binary+0xOFFSET" without a name. */
static void test_collapsed_native(void **state)
{
	struct snapshot *s = snapshot_new();
	int64_t exe = snapshot_intern_mapping(s, "/usr/bin/prog", NULL, 0x401000, 0x402000, 0x1000);
	uint32_t f[3];
	char out[1024];
	FILE *o = fmemopen(out, sizeof(out), "w");

	f[0] = (uint32_t)snapshot_intern_native_frame(s, "/usr/bin/prog+0x234", 0, "work",
						      (uint32_t)exe, 0x401234, 0x19);
	f[1] = (uint32_t)snapshot_intern_native_frame(s, "/usr/bin/prog+0x300", 0, NULL,
						      (uint32_t)exe, 0x401300, 0);
	f[2] = (uint32_t)snapshot_intern_native_frame(s, "prog.c", 7, "main", (uint32_t)exe,
						      0x401400, 0x40);
	snapshot_add_trace(s, 0x10, 8, SNAPSHOT_DOMAIN_LIBC,
			   (uint32_t)snapshot_intern_traceback(s, f, 3, 3));
	assert_int_equal(collapsed_write(s, o, true), 0);
	fclose(o);
	/* main is not where a stack starts (_start, clone3): a cut root */
	assert_string_equal(
	    out, "[cut];main (prog.c:7);/usr/bin/prog+0x300;work+0x19 (/usr/bin/prog) 8\n");
	assert_string_equal(collapsed(s, false), "[cut];main;/usr/bin/prog;work 8\n");
	/* a stack that reaches _start has none */
	f[0] = (uint32_t)snapshot_intern_native_frame(s, "/usr/bin/prog+0x100", 0, "_start",
						      (uint32_t)exe, 0x401100, 0x21);
	snapshot_add_trace(s, 0x20, 4, SNAPSHOT_DOMAIN_LIBC,
			   (uint32_t)snapshot_intern_traceback(s, (uint32_t[]){f[2], f[0]}, 2, 2));
	assert_string_equal(collapsed(s, false), "[cut];main;/usr/bin/prog;work 8\n"
						 "_start;main 4\n");
	snapshot_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_collapsed),
	    cmocka_unit_test(test_collapsed_by_function_and_cut),
	    cmocka_unit_test(test_pprof),
	    cmocka_unit_test(test_pprof_mappings),
	    cmocka_unit_test(test_collapsed_native),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
