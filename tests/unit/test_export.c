/* Collapsed stacks and pprof profiles of a hand-made snapshot: exact text,
 * and a profile whose protobuf fields decode to the snapshot's figures. */
#include <setjmp.h>
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

static void test_collapsed(void **state)
{
	struct snapshot *s = sample();
	char buf[1024];
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	assert_int_equal(collapsed_write(s, f), 0);
	fclose(f);
	assert_string_equal(buf, "<module> (app.py:10);leaf (app.py:3) 157\n"
				 "<unknown> 3\n"
				 "odd:name file.c:7 1000\n");
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_collapsed),
	    cmocka_unit_test(test_pprof),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
