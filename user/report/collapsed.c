#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "model/delta.h"
#include "model/stats.h"
#include "report/collapsed.h"
#include "report/format.h"

struct line {
	char *stack;
	uint64_t bytes;
};

/* ';' separates frames, ' ' the count and '\n' lines: none may appear
 * inside a label (a space may, before the count: the tools take the last
 * one); control characters are escaped as the text report escapes them. */
static void put_label(FILE *out, const char *s)
{
	size_t len = strlen(s);
	char *clean = malloc(len + 1);

	if (!clean)
		return;
	for (size_t i = 0; i <= len; i++)
		clean[i] = s[i] == ';' ? ':' : s[i];
	format_text(out, clean);
	free(clean);
}

/* By function: "function", or "file:function" for a frame of interpreted
 * code (a Python frame: no mapping; its functions' names repeat across
 * files); a frame without a function: its file, or its binary. With lines:
 * "function (file:line)", or "file:line" without a function name; a native
 * frame without a source line: "function+0xOFFSET (binary)", or its
 * "binary+0xOFFSET" without a function name. */
static void frame_label(FILE *out, const struct snapshot *s, const struct snapshot_frame *sf,
			bool lines)
{
	struct stats_frame f = stats_frame_of(s, sf);
	char num[32];

	if (!lines) {
		if (f.function && !f.module && !f.binary && f.lineno) {
			put_label(out, f.filename);
			fputc(':', out);
		}
		if (f.function)
			put_label(out, f.function);
		else
			put_label(out, f.binary ? f.binary : f.filename);
		return;
	}
	if (f.function) {
		put_label(out, f.function);
		if (f.binary && f.function_offset) {
			snprintf(num, sizeof(num), "+0x%" PRIx64, f.function_offset);
			put_label(out, num);
		}
		put_label(out, " (");
	}
	if (f.binary && f.function) {
		put_label(out, f.binary);
	} else {
		put_label(out, f.filename);
		if (!f.binary) {
			snprintf(num, sizeof(num), ":%" PRIu32, f.lineno);
			put_label(out, num);
		}
	}
	if (f.function)
		put_label(out, ")");
}

/* Whether a traceback stops short of where its stack began: cut at nframe
 * (tracemalloc's total_nframe says so), or a native stack whose oldest
 * frame is not a program's or thread's start. */
static bool is_cut(const struct snapshot *s, const struct snapshot_traceback *tb)
{
	struct stats_frame root;

	if (tb->total_nframe > tb->nframe)
		return true;
	if (!tb->nframe)
		return false;
	root = stats_frame_of(s, snapshot_frame_at(s, tb, tb->nframe - 1));
	return root.module && !format_is_stack_start(&root);
}

static int cmp_line(const void *a, const void *b)
{
	return strcmp(((const struct line *)a)->stack, ((const struct line *)b)->stack);
}

/* The live bytes of a (process, traceback). */
struct stack_bytes {
	uint32_t process, traceback;
	uint64_t bytes;
};

static int cmp_stack_bytes(const void *pa, const void *pb)
{
	const struct stack_bytes *a = pa, *b = pb;

	if (a->process != b->process)
		return a->process < b->process ? -1 : 1;
	return a->traceback < b->traceback ? -1 : a->traceback > b->traceback;
}

/* "pid 4242 (redis-server);" before a stack of that process */
static void process_root(FILE *f, const struct snapshot *s, uint32_t process)
{
	const struct snapshot_process *p = snapshot_process_at(s, process);
	struct stats_process key = {.pid = p ? p->pid : s->target.pid};
	char comm[SNAPSHOT_COMM_LEN], title[64];

	key.comm = p ? snapshot_string(s, p->comm) : snapshot_comm(s, comm);
	put_label(f, stats_process_title(&key, title, sizeof(title)));
	fputc(';', f);
}

int collapsed_write(const struct snapshot *s, FILE *out, bool lines_kept)
{
	return collapsed_write_with(s, out, lines_kept, false);
}

int collapsed_write_with(const struct snapshot *s, FILE *out, bool lines_kept, bool by_process)
{
	struct stack_bytes *stacks = calloc(s->ntraces + 1, sizeof(*stacks));
	struct line *lines = calloc(s->ntraces + 1, sizeof(*lines));
	size_t n = 0, nstacks = 0, i, j;
	int err = 0;

	if (!stacks || !lines) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < s->ntraces; i++)
		stacks[i] = (struct stack_bytes){by_process ? s->traces[i].process : 0,
						 s->traces[i].traceback, s->traces[i].size};
	qsort(stacks, s->ntraces, sizeof(*stacks), cmp_stack_bytes);
	for (i = 0; i < s->ntraces; i++) {
		if (nstacks && !cmp_stack_bytes(&stacks[nstacks - 1], &stacks[i]))
			stacks[nstacks - 1].bytes += stacks[i].bytes;
		else
			stacks[nstacks++] = stacks[i];
	}
	/* one stack string per traceback (and process), root first */
	for (i = 0; i < nstacks; i++) {
		const struct snapshot_traceback *tb = &s->tracebacks[stacks[i].traceback];
		size_t len;
		FILE *f;

		if (!stacks[i].bytes)
			continue;
		f = open_memstream(&lines[n].stack, &len);
		if (!f) {
			err = -ENOMEM;
			goto out;
		}
		if (by_process)
			process_root(f, s, stacks[i].process);
		if (is_cut(s, tb))
			fputs(COLLAPSED_CUT_ROOT ";", f);
		if (!tb->nframe)
			fputs("<unknown>", f);
		for (uint32_t k = tb->nframe; k-- > 0;) {
			frame_label(f, s, snapshot_frame_at(s, tb, k), lines_kept);
			if (k)
				fputc(';', f);
		}
		if (fclose(f) || !lines[n].stack) {
			free(lines[n].stack);
			lines[n].stack = NULL;
			err = -ENOMEM;
			goto out;
		}
		lines[n++].bytes = stacks[i].bytes;
	}
	/* tracebacks that differ only in what the labels hide (lines, offsets,
	 * total_nframe) print as one line */
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
	free(stacks);
	return err;
}
