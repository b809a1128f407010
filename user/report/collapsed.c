#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "model/stats.h"
#include "report/collapsed.h"

struct line {
	char *stack;
	uint64_t bytes;
};

/* ';' separates frames and '\n' lines: neither may appear inside one. */
static void put_label(char **p, const char *s)
{
	for (; *s; s++)
		*(*p)++ = *s == ';' ? ':' : *s == '\n' ? ' ' : *s;
}

/* "function (file:line)", or "file:line" without a function name; a
 * native frame without a source line: "function+0xOFFSET (binary)", or its
 * "binary+0xOFFSET" without a function name. */
static size_t frame_label(const struct snapshot *s, const struct snapshot_frame *sf, char *out)
{
	struct stats_frame f = stats_frame_of(s, sf);
	char *p = out, num[32];

	if (f.function) {
		put_label(&p, f.function);
		if (f.binary && f.function_offset) {
			snprintf(num, sizeof(num), "+0x%" PRIx64, f.function_offset);
			put_label(&p, num);
		}
		put_label(&p, " (");
	}
	if (f.binary && f.function) {
		put_label(&p, f.binary);
	} else {
		put_label(&p, f.filename);
		if (!f.binary) {
			snprintf(num, sizeof(num), ":%" PRIu32, f.lineno);
			put_label(&p, num);
		}
	}
	if (f.function)
		put_label(&p, ")");
	*p = '\0';
	return (size_t)(p - out);
}

static size_t label_bound(const struct snapshot *s, const struct snapshot_frame *sf)
{
	struct stats_frame f = stats_frame_of(s, sf);
	size_t n = strlen(f.filename) + 16;

	if (f.binary)
		n += strlen(f.binary) + 24;
	if (f.function)
		n += strlen(f.function) + 3;
	return n;
}

static int cmp_line(const void *a, const void *b)
{
	return strcmp(((const struct line *)a)->stack, ((const struct line *)b)->stack);
}

int collapsed_write(const struct snapshot *s, FILE *out)
{
	uint64_t *bytes = calloc(s->ntracebacks + 1, sizeof(*bytes));
	struct line *lines = calloc(s->ntracebacks + 1, sizeof(*lines));
	size_t n = 0, i, j;
	int err = 0;

	if (!bytes || !lines) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < s->ntraces; i++)
		bytes[s->traces[i].traceback] += s->traces[i].size;
	/* one stack string per traceback, root first */
	for (i = 0; i < s->ntracebacks; i++) {
		const struct snapshot_traceback *tb = &s->tracebacks[i];
		size_t len = 16;
		char *p;

		if (!bytes[i])
			continue;
		for (uint32_t k = 0; k < tb->nframe; k++)
			len += label_bound(s, snapshot_frame_at(s, tb, k)) + 1;
		p = lines[n].stack = malloc(len);
		if (!p) {
			err = -ENOMEM;
			goto out;
		}
		if (!tb->nframe)
			p += sprintf(p, "<unknown>");
		for (uint32_t k = tb->nframe; k-- > 0;) {
			p += frame_label(s, snapshot_frame_at(s, tb, k), p);
			if (k)
				*p++ = ';';
		}
		*p = '\0';
		lines[n++].bytes = bytes[i];
	}
	/* tracebacks that differ only in what the labels hide (total_nframe)
	 * print as one line */
	qsort(lines, n, sizeof(*lines), cmp_line);
	for (i = 0; i < n; i = j) {
		uint64_t sum = lines[i].bytes;

		for (j = i + 1; j < n && !strcmp(lines[i].stack, lines[j].stack); j++)
			sum += lines[j].bytes;
		fprintf(out, "%s %" PRIu64 "\n", lines[i].stack, sum);
	}
	if (ferror(out))
		err = -EIO;
out:
	for (i = 0; lines && i < n; i++)
		free(lines[i].stack);
	free(lines);
	free(bytes);
	return err;
}
