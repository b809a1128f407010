/* The HTML report's data: JSON strings that stay inside their <script>
 * element whatever a target names its files (control characters,
 * "</script>", quotes, invalid UTF-8, U+2028), checked byte for byte; and
 * the page of a small hand-built snapshot and compare: the tree merged by
 * frame (oldest at the root, cut tracebacks under one node), the table, and
 * nothing in the data that could end the element. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "report/html.h"

static char buf[1 << 20];

static const char *json(const char *s)
{
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	html_json_string(f, s);
	fputc('\0', f);
	fclose(f);
	return buf;
}

static void test_json_escaping(void **state)
{
	assert_string_equal(json(NULL), "null");
	assert_string_equal(json(""), "\"\"");
	assert_string_equal(json("/src/a.c"), "\"/src/a.c\"");
	/* quotes and backslashes */
	assert_string_equal(json("a\"b\\c'd"), "\"a\\\"b\\\\c'd\"");
	/* every control character, DEL too */
	assert_string_equal(json("\x01\b\t\n\r\x1b\x1f\x7f"),
			    "\"\\u0001\\u0008\\t\\n\\u000d\\u001b\\u001f\\u007f\"");
	/* nothing that could end the script element or open a comment */
	assert_string_equal(json("</script><!--x-->&amp;"),
			    "\"\\u003c/script\\u003e\\u003c!--x--\\u003e\\u0026amp;\"");
	assert_string_equal(json("</SCRIPT >"), "\"\\u003c/SCRIPT \\u003e\"");
	/* valid UTF-8 stays as it is; U+2028 and U+2029 are escaped */
	assert_string_equal(json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
			    "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
	assert_string_equal(json("a\xe2\x80\xa8" "b\xe2\x80\xa9"), "\"a\\u2028b\\u2029\"");
	/* invalid UTF-8: each byte that starts no valid sequence is U+FFFD */
	assert_string_equal(json("\xff"), "\"\\ufffd\"");
	assert_string_equal(json("a\xc0\xaf" "b"), "\"a\\ufffd\\ufffdb\"");	    /* overlong */
	assert_string_equal(json("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");	    /* surrogate */
	assert_string_equal(json("\xe2\x82"), "\"\\ufffd\\ufffd\"");		    /* truncated */
	assert_string_equal(json("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
	assert_string_equal(json("\xe2\x82<"), "\"\\ufffd\\ufffd\\u003c\"");
}

static const char hostile[] = "/src/</script><b>\x01\"q\"\xff\xe2\x80\xa8.c";

static struct snapshot *make(uint64_t leaf_size)
{
	struct snapshot *s = snapshot_new();
	uint32_t f[3], tb, cut;

	assert_non_null(s);
	s->target.pid = 4242;
	s->target.command = (uint32_t)snapshot_intern_string(s, "./prog </script> \x02");
	s->target.host = (uint32_t)snapshot_intern_string(s, "h");
	s->traceback_limit = 2;
	s->traced_current = leaf_size + 13 + 7;
	s->traced_peak = 4096;
	f[0] = (uint32_t)snapshot_intern_frame(s, hostile, 2, "leaf");
	f[1] = (uint32_t)snapshot_intern_frame(s, "/src/a.c", 9, NULL);
	f[2] = (uint32_t)snapshot_intern_frame(s, "/src/c.c", 4, "other");
	tb = (uint32_t)snapshot_intern_traceback(s, f, 2, 2);
	/* cut at the limit: 5 frames, 2 kept */
	cut = (uint32_t)snapshot_intern_traceback(s, &f[2], 1, 5);
	assert_int_equal(snapshot_add_trace(s, 0x1000, leaf_size, 0, tb), 0);
	assert_int_equal(snapshot_add_trace(s, 0x2000, 13, 0, tb), 0);
	assert_int_equal(snapshot_add_trace(s, 0x3000, 7, 0, cut), 0);
	assert_int_equal(snapshot_set_counter(s, "lost <b>", 3), 0);
	return s;
}

static const char *page(const struct snapshot *s, const struct snapshot *old_snap)
{
	struct report_options o = {.format = REPORT_HTML, .key = STATS_KEY_LINENO, .top = 10};
	struct html_page p;
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	html_page_init(&p, s, old_snap, &o);
	assert_int_equal(html_write(f, &p), 0);
	fputc('\0', f);
	fclose(f);
	return buf;
}

/* The JSON document between its script tags, checked for anything that
 * could end the element early or break the parse. */
static char *data_of(const char *html)
{
	const char *open = "<script type=\"application/json\" id=\"data\">";
	const char *a = strstr(html, open), *b;
	char *d;

	assert_non_null(a);
	a += strlen(open);
	b = strstr(a, "</script>");
	assert_non_null(b);
	d = strndup(a, (size_t)(b - a));
	for (const unsigned char *p = (const unsigned char *)d; *p; p++) {
		assert_true(*p >= 0x20 && *p != 0x7f);
		assert_true(*p != '<' && *p != '>' && *p != '&');
	}
	return d;
}

static void test_page(void **state)
{
	struct snapshot *s = make(100);
	const char *html = page(s, NULL);
	char *d = data_of(html);

	/* the page is whole and self-contained: its template, style, script */
	assert_non_null(strstr(html, "<!DOCTYPE html>"));
	assert_non_null(strstr(html, "#flame .fr {"));
	assert_non_null(strstr(html, "\"use strict\";"));
	assert_non_null(strstr(html, "</html>\n"));
	assert_null(strstr(html, "http:"));
	assert_null(strstr(html, "https:"));
	assert_null(strstr(html, " src="));
	assert_null(strstr(html, " href="));
	assert_null(strstr(html, "@DATA@"));
	assert_non_null(strstr(d, "{\"version\":1,\"kind\":\"snapshot\",\"header\":{\"pid\":4242,"
				  "\"command\":\"./prog \\u003c/script\\u003e \\u0002\",\"host\":"
				  "\"h\","));
	assert_non_null(strstr(d, "\"counters\":[[\"lost \\u003cb\\u003e\",3]]}"));
	/* labels as the text report prints frames (its \\xNN for control
	 * characters and invalid UTF-8), then JSON-escaped; the two kinds of
	 * root */
	assert_non_null(strstr(d, "\"frames\":[[\"/src/\\u003c/script\\u003e\\u003cb\\u003e"
				  "\\\\x01\\\"q\\\"\\\\xff\\u2028.c:2\",\"leaf\"],"
				  "[\"/src/a.c:9\",null],[\"/src/c.c:4\",\"other\"],"
				  "[\"[older frames not kept]\",null],[\"\\u003cunknown\\u003e:0\","
				  "null]]"));
	/* oldest frame at the root; the cut traceback under its own node */
	assert_non_null(strstr(d, "\"total\":[120,3],\"tree\":[-1,120,3,[[3,7,1,[[2,7,1,[]]]],"
				  "[1,113,2,[[0,113,2,[]]]]]]"));
	assert_non_null(strstr(d, "\"table\":[[\"/src/\\u003c/script\\u003e\\u003cb\\u003e"
				  "\\\\x01\\\"q\\\"\\\\xff\\u2028.c:2\",\"leaf\",113,2],"
				  "[\"/src/c.c:4\",\"other\",7,1]]"));
	assert_non_null(strstr(d, "\"series\":null}"));
	free(d);
	snapshot_free(s);
}

static void test_compare_page(void **state)
{
	struct snapshot *old_snap = make(100), *new_snap = make(1100);
	char *d = data_of(page(new_snap, old_snap));

	assert_non_null(strstr(d, "\"kind\":\"compare\""));
	assert_non_null(strstr(d, "\"old_header\":{\"pid\":4242,"));
	/* every node: new size and count, its children, old size and count */
	assert_non_null(strstr(d, "\"total\":[1120,3],\"old_total\":[120,3],"
				  "\"tree\":[-1,1120,3,[[3,7,1,[[2,7,1,[],7,1]],7,1],"
				  "[1,1113,2,[[0,1113,2,[],113,2]],113,2]],120,3]"));
	/* the compare table: size and count, then their diffs */
	assert_non_null(strstr(d, "\\u2028.c:2\",\"leaf\",1113,2,1000,0],"
				  "[\"/src/c.c:4\",\"other\",7,1,0,0]]"));
	free(d);
	snapshot_free(old_snap);
	snapshot_free(new_snap);
}

/* More views are more entries of "views", in order, each with its own tree
 * and table (the page offers a selector then). */
static void test_views(void **state)
{
	struct report_options o = {.format = REPORT_HTML, .key = STATS_KEY_LINENO, .top = 1};
	struct snapshot *s = make(100), *peak = make(5000);
	struct html_page p;
	FILE *f = fmemopen(buf, sizeof(buf), "w");
	char *d;

	html_page_init(&p, s, NULL, &o);
	p.views[p.nviews++] = (struct html_view){.name = "peak", .title = "At the peak", .snap = peak};
	assert_int_equal(html_write(f, &p), 0);
	fputc('\0', f);
	fclose(f);
	d = data_of(buf);
	assert_non_null(strstr(d, "\"views\":{\"live\":{\"title\":\"Live memory\",\"total\":[120,3],"));
	assert_non_null(strstr(d, "]]},\"peak\":{\"title\":\"At the peak\",\"total\":[5020,3],"
				  "\"tree\":[-1,5020,3,"));
	/* -t 1: one row each */
	assert_non_null(strstr(d, "\"table\":[[\"/src/\\u003c/script\\u003e\\u003cb\\u003e"
				  "\\\\x01\\\"q\\\"\\\\xff\\u2028.c:2\",\"leaf\",5013,2]]}}"));
	free(d);
	snapshot_free(s);
	snapshot_free(peak);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_escaping),
	    cmocka_unit_test(test_page),
	    cmocka_unit_test(test_compare_page),
	    cmocka_unit_test(test_views),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
