#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "report/format.h"

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

void format_frame(FILE *out, const struct stats_frame *f)
{
	if (f->binary && f->function) {
		fprintf(out, "%s: %s", f->binary, f->function);
		if (f->function_offset)
			fprintf(out, "+0x%" PRIx64, f->function_offset);
	} else if (f->binary) {
		fputs(f->filename, out); /* "binary+0xOFFSET" */
	} else {
		fprintf(out, "%s:%u", f->filename, f->lineno);
	}
}

bool format_frame_file(FILE *out, const struct stats_frame *f)
{
	if (f->binary && f->function) {
		fprintf(out, "File \"%s\", in %s", f->binary, f->function);
		if (f->function_offset)
			fprintf(out, "+0x%" PRIx64, f->function_offset);
		return true;
	}
	if (f->binary)
		fprintf(out, "File \"%s\"", f->filename);
	else
		fprintf(out, "File \"%s\", line %u", f->filename, f->lineno);
	return false;
}

/* str(Traceback) is str of its oldest frame: "file:line". */
static void print_oldest(FILE *out, const struct stats_entry *e)
{
	if (!e->nkey) {
		fputs("<unknown>:0", out);
		return;
	}
	format_frame(out, &e->key[e->nkey - 1]);
}

void format_statistic(FILE *out, const struct stats_entry *e, bool diff)
{
	char a[32], b[32];

	print_oldest(out, e);
	if (diff)
		fprintf(out, ": size=%s (%s), count=%llu (%+lld)",
			format_size(a, sizeof(a), (double)e->size, false),
			format_size(b, sizeof(b), (double)e->size_diff, true),
			(unsigned long long)e->count, (long long)e->count_diff);
	else
		fprintf(out, ": size=%s, count=%llu",
			format_size(a, sizeof(a), (double)e->size, false),
			(unsigned long long)e->count);
	if (e->count)
		fprintf(out, ", average=%s",
			format_size(a, sizeof(a), (double)e->size / (double)e->count, false));
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
	if (eol > p)
		fprintf(out, "    %.*s\n", (int)(eol - p), p);
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

/* Length of the valid UTF-8 sequence at s, or 0 when it is not one
 * (truncated, overlong, a surrogate, beyond U+10FFFF). */
static int utf8_sequence(const unsigned char *s)
{
	uint32_t cp;
	int n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/* JSON needs valid UTF-8: a byte that does not start a valid sequence (a
 * file name in another encoding, say) becomes U+FFFD. */
void format_json_string(FILE *out, const char *str)
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
		else if (c < 0x20 || c == 0x7f)
			fprintf(out, "\\u%04x", c);
		else
			fwrite(s, 1, (size_t)n, out);
		s += n;
	}
	fputc('"', out);
}
