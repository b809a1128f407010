#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "report/format.h"
#include "util/util.h"

const char *format_size(char *buf, size_t len, double size, bool sign)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int u;

	for (u = 0; u < 5; u++) {
		double a = size < 0 ? -size : size;

		if (a < 100 && u > 0) {
			snprintf(buf, len, sign ? "%+.1f %s" : "%.1f %s", size, units[u]);
			return buf;
		}
		if (a < 10 * 1024 || u == 4) {
			snprintf(buf, len, sign ? "%+.0f %s" : "%.0f %s", size, units[u]);
			return buf;
		}
		size /= 1024;
	}
	return buf;
}

/* A code point a terminal acts on rather than shows: C0 and C1 controls,
 * DEL, and the bidirectional overrides and isolates (U+202A..U+202E,
 * U+2066..U+2069) that reorder what follows them. */
static bool is_control(const unsigned char *s, int n)
{
	if (n == 1)
		return s[0] < 0x20 || s[0] == 0x7f;
	if (n == 2)
		return s[0] == 0xc2 && s[1] < 0xa0; /* U+0080..U+009F */
	if (n == 3 && s[0] == 0xe2 && s[1] == 0x80)
		return s[2] >= 0xaa && s[2] <= 0xae;
	if (n == 3 && s[0] == 0xe2 && s[1] == 0x81)
		return s[2] >= 0xa6 && s[2] <= 0xa9;
	return false;
}

/* tabs: a source line's inner tabs (alignment before a comment) are
 * harmless on a terminal and kept; in names they are escaped */
static void escape_text(FILE *out, const char *str, bool tabs)
{
	const unsigned char *s = (const unsigned char *)str;

	while (s && *s) {
		int n = utf8_sequence(s);

		if (!n || (is_control(s, n) && !(tabs && *s == '\t'))) {
			/* each byte of it: nothing reaches the terminal raw */
			for (int i = 0; i < (n ? n : 1); i++)
				fprintf(out, "\\x%02x", s[i]);
			s += n ? n : 1;
			continue;
		}
		fwrite(s, 1, (size_t)n, out);
		s += n;
	}
}

void format_text(FILE *out, const char *str)
{
	escape_text(out, str, false);
}

void format_frame(FILE *out, const struct stats_frame *f)
{
	if (f->binary && f->function) {
		format_text(out, f->binary);
		fputs(": ", out);
		format_text(out, f->function);
		if (f->function_offset)
			fprintf(out, "+0x%" PRIx64, f->function_offset);
	} else if (f->binary) {
		format_text(out, f->filename); /* "binary+0xOFFSET" */
	} else {
		format_text(out, f->filename);
		fprintf(out, ":%u", f->lineno);
	}
}

bool format_frame_file(FILE *out, const struct stats_frame *f)
{
	fputs("File \"", out);
	if (f->binary && f->function) {
		format_text(out, f->binary);
		fputs("\", in ", out);
		format_text(out, f->function);
		if (f->function_offset)
			fprintf(out, "+0x%" PRIx64, f->function_offset);
		return true;
	}
	format_text(out, f->filename);
	fputc('"', out);
	if (!f->binary)
		fprintf(out, ", line %u", f->lineno);
	return false;
}

/* Where a native program starts, and threads start: the oldest frames of
 * every complete native stack. */
static const char *const startup_functions[] = {
    "_start",	   "_start_c",		"__libc_start_main", "__libc_start_main_impl", "__libc_start_call_main",
    "_dl_start",   "_dl_start_user",	"start_thread",		  "clone",
    "clone3",	   "__clone",		"__clone3",		  "__clone_internal",
};
static const char *const startup_files[] = {
    "libc-start.c", "libc_start_call_main.h", "start.S", "clone.S", "clone3.S", "pthread_create.c",
};
/* The runtime every program runs on, by the start of the mapped file's
 * name: the C and C++ runtimes, the dynamic linker, allocators, and the
 * CPython interpreter's own C code (a Python frame has no mapping). */
static const char *const runtime_modules[] = {
    "libc.so",	  "libc-",	   "ld-linux",	 "ld-musl",	"libstdc++.so", "libgcc_s.so",
    "libc++.so",  "libc++abi.so", "libm.so",	 "libpthread.so", "libdl.so",	  "libjemalloc.so",
    "libtcmalloc", "libmimalloc",  "libpython", "python",
};

static bool in_list(const char *s, const char *const *list, size_t n, bool prefix)
{
	for (size_t i = 0; s && i < n; i++)
		if (prefix ? !strncmp(s, list[i], strlen(list[i])) : !strcmp(s, list[i]))
			return true;
	return false;
}

static const char *base_name(const char *path)
{
	const char *slash = path ? strrchr(path, '/') : NULL;

	return slash ? slash + 1 : path;
}

/* The outermost frame of a whole stack: the program's entry, or a
 * thread's (clone's child side). */
static const char *const outermost_functions[] = {
    "_start", "_start_c", "clone", "clone3", "__clone", "__clone3",
};
static const char *const outermost_files[] = {"start.S", "clone.S", "clone3.S"};

bool format_is_stack_start(const struct stats_frame *f)
{
	return in_list(f->function, outermost_functions, ARRAY_SIZE(outermost_functions), false) ||
	       in_list(base_name(f->filename), outermost_files, ARRAY_SIZE(outermost_files), false);
}

bool format_is_startup_frame(const struct stats_frame *f)
{
	return in_list(f->function, startup_functions, ARRAY_SIZE(startup_functions), false) ||
	       in_list(base_name(f->filename), startup_files, ARRAY_SIZE(startup_files), false);
}

bool format_is_runtime_frame(const struct stats_frame *f)
{
	if (format_is_startup_frame(f))
		return true;
	/* libstdc++'s headers inlined into the program's own functions */
	if (!strncmp(f->filename, "/usr/include/c++/", 17))
		return true;
	return in_list(base_name(f->module ? f->module : f->binary), runtime_modules,
		       ARRAY_SIZE(runtime_modules), true);
}

uint32_t format_title_frame(const struct stats_entry *e)
{
	uint32_t oldest = e->nkey - 1;

	if (!e->nkey)
		return 0;
	if (!format_is_runtime_frame(&e->key[oldest]))
		return oldest;
	for (uint32_t k = 0; k < e->nkey; k++)
		if (!format_is_runtime_frame(&e->key[k]))
			return k;
	return oldest;
}

/* str(Traceback) is str of its oldest frame, "file:line"; where that is
 * runtime (format_title_frame), of the most recent frame of the program's
 * own code. */
static void print_title(FILE *out, const struct stats_entry *e)
{
	char title[64];

	if (e->process) { /* -k process: "pid 4242 (redis-server)" */
		format_text(out, stats_process_title(e->process, title, sizeof(title)));
		return;
	}
	if (!e->nkey) {
		fputs("<unknown>:0", out);
		return;
	}
	format_frame(out, &e->key[format_title_frame(e)]);
}

/* ANSI styles of the text report in colour */
#define STYLE_SIZE "\033[1m"
#define STYLE_GROWTH "\033[1;31m"
#define STYLE_SHRINK "\033[1;32m"
#define STYLE_RESET "\033[0m"

static void styled_size(FILE *out, double size, bool sign, bool color)
{
	char a[32];
	const char *style = !color ? "" : !sign ? STYLE_SIZE : size > 0 ? STYLE_GROWTH
				       : size < 0 ? STYLE_SHRINK : "";

	fprintf(out, "%s%s%s", style, format_size(a, sizeof(a), size, sign), *style ? STYLE_RESET : "");
}

void format_statistic_styled(FILE *out, const struct stats_entry *e, bool diff, bool color)
{
	char a[32];

	print_title(out, e);
	fputs(": size=", out);
	styled_size(out, (double)e->size, false, color);
	if (diff) {
		fputs(" (", out);
		styled_size(out, (double)e->size_diff, true, color);
		fprintf(out, "), count=%llu (%+lld)", (unsigned long long)e->count,
			(long long)e->count_diff);
	} else {
		fprintf(out, ", count=%llu", (unsigned long long)e->count);
	}
	if (e->count)
		fprintf(out, ", average=%s",
			format_size(a, sizeof(a), (double)e->size / (double)e->count, false));
}

void format_statistic(FILE *out, const struct stats_entry *e, bool diff)
{
	format_statistic_styled(out, e, diff, false);
}

/* linecache.getline(filename, lineno).strip(), with a small cache. */
struct cached_file {
	char *name;
	char *text;
	size_t len;
};

static struct cached_file files[16];
static unsigned next_file;

static const struct cached_file *load_file(const char *name)
{
	struct cached_file *c;
	struct stat st;
	FILE *f;
	long n;
	unsigned i;
	int fd;

	for (i = 0; i < 16; i++)
		if (files[i].name && !strcmp(files[i].name, name))
			return &files[i];
	c = &files[next_file++ % 16];
	free(c->name);
	free(c->text);
	memset(c, 0, sizeof(*c));
	c->name = strdup(name);
	/* a path a snapshot names: only a regular file is read (a FIFO or a
	 * device there would block, or be read from) */
	fd = open(name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return c;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || !(f = fdopen(fd, "r"))) {
		close(fd);
		return c;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && n < (64 << 20) &&
	    fseek(f, 0, SEEK_SET) == 0) {
		c->text = malloc((size_t)n);
		if (c->text && fread(c->text, 1, (size_t)n, f) == (size_t)n)
			c->len = (size_t)n;
	}
	fclose(f);
	return c;
}

static void print_source_line(FILE *out, const char *filename, uint32_t lineno)
{
	const struct cached_file *c;
	const char *p, *end, *eol;
	uint32_t line = 1;

	if (!lineno || !filename[0] || filename[0] == '<')
		return;
	c = load_file(filename);
	if (!c->text)
		return;
	p = c->text;
	end = c->text + c->len;
	while (line < lineno && p < end) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			return;
		p = eol + 1;
		line++;
	}
	if (p >= end)
		return;
	eol = memchr(p, '\n', (size_t)(end - p));
	if (!eol)
		eol = end;
	while (p < eol && strchr(" \t\r\f\v", *p))
		p++;
	while (eol > p && strchr(" \t\r\f\v", eol[-1]))
		eol--;
	if (eol > p) {
		/* the line is the target's text: escaped as its names are */
		char *line = strndup(p, (size_t)(eol - p));

		fputs("    ", out);
		escape_text(out, line ? line : "", true);
		fputc('\n', out);
		free(line);
	}
}

void format_traceback(FILE *out, const struct stats_frame *frames, uint32_t n, int limit,
		      bool most_recent_first)
{
	/* oldest first: index k is frames[n - 1 - k] */
	long start = 0, stop = n, k;

	if (limit > 0) {
		if ((long)limit < (long)n)
			start = (long)n - limit;
	} else if (limit < 0) {
		stop = (long)n + limit;
		if (stop < 0)
			stop = 0;
	} else {
		stop = 0;
	}
	for (k = 0; k < stop - start; k++) {
		long idx = most_recent_first ? stop - 1 - k : start + k;
		const struct stats_frame *f = &frames[n - 1 - idx];

		fputs("  ", out);
		format_frame_file(out, f);
		fputc('\n', out);
		if (!f->binary)
			print_source_line(out, f->filename, f->lineno);
	}
}

/* JSON needs valid UTF-8: a byte that does not start a valid sequence (a
 * file name in another encoding, say) becomes U+FFFD. */
void format_json_string(FILE *out, const char *str)
{
	format_json_escaped(out, str, false);
}

void format_json_escaped(FILE *out, const char *str, bool in_script)
{
	const unsigned char *s = (const unsigned char *)str;

	fputc('"', out);
	while (s && *s) {
		unsigned char c = *s;
		int n = utf8_sequence(s);

		if (!n) {
			fputs("\\ufffd", out);
			s++;
			continue;
		}
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", out);
		else if (c == '\t')
			fputs("\\t", out);
		else if (c < 0x20 || c == 0x7f ||
			 (in_script && (c == '<' || c == '>' || c == '&')))
			fprintf(out, "\\u%04x", c);
		else if (is_control(s, n) || (n == 3 && s[0] == 0xe2 && s[1] == 0x80 &&
					      (s[2] == 0xa8 || s[2] == 0xa9)))
			/* C1 controls, bidirectional controls, and U+2028/9 (line
			 * ends to JavaScript) as \uXXXX */
			fprintf(out, "\\u%04x",
				n == 2 ? (unsigned)(s[0] & 0x1f) << 6 | (s[1] & 0x3f)
				       : (unsigned)(s[0] & 0x0f) << 12 | (unsigned)(s[1] & 0x3f) << 6 |
					     (s[2] & 0x3f));
		else
			fwrite(s, 1, (size_t)n, out);
		s += n;
	}
	fputc('"', out);
}
