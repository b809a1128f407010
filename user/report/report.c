#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "model/delta.h"
#include "model/filter.h"
#include "report/counters.h"
#include "report/format.h"
#include "report/report.h"

/* How each class of domains is named in the text header. */
static const char *const class_labels[SNAPSHOT_NCLASSES] = {
    [SNAPSHOT_CLASS_PYTHON] = "python",
    [SNAPSHOT_CLASS_NATIVE] = "native (libc)",
};

/* "current X (N B), peak Y (N B)" */
static void text_memory(FILE *out, uint64_t current, uint64_t peak)
{
	char a[32], b[32];

	fprintf(out, "current %s (%" PRIu64 " B), peak %s (%" PRIu64 " B)",
		format_size(a, sizeof(a), (double)current, false), current,
		format_size(b, sizeof(b), (double)peak, false), peak);
}

/* The first line is tracemalloc's get_traced_memory() (the python class)
 * for a process that has had Python-domain blocks, else every domain's;
 * the second gives each class and all domains, so that the first is
 * always one of them. */
static void text_traced_memory(FILE *out, const struct snapshot *s)
{
	uint64_t current, peak;

	snapshot_traced_memory(s, &current, &peak);
	fputs("traced memory: ", out);
	text_memory(out, current, peak);
	fputs("\ntraced memory by domain: ", out);
	if (!s->domain_memory_known) {
		fputs("not in this snapshot file (written by an older tracer); "
		      "the line above counts all domains\n",
		      out);
		return;
	}
	for (int k = 0; k < SNAPSHOT_NCLASSES; k++) {
		fprintf(out, "%s ", class_labels[k]);
		text_memory(out, s->domain_memory[k].current, s->domain_memory[k].peak);
		fputs("; ", out);
	}
	fputs("all domains ", out);
	text_memory(out, s->traced_current, s->traced_peak);
	fputc('\n', out);
}

/* Wraps the counters' line before this many columns. */
#define COUNTER_LINE_WIDTH 100

/* ANSI styles of the text report in colour (--color) */
#define STYLE_HEADER "\033[1m"
#define STYLE_LOST "\033[1;31m"
#define STYLE_RESET "\033[0m"

/* What a counter of s is (a name out of the string table reads as ""). */
static void describe(const struct snapshot *s, uint32_t i, struct counter_info *ci)
{
	const char *name = snapshot_string(s, s->counters[i].name);

	counter_describe(name ? name : "", ci);
}

/* "lost: 12 allocations not traced (...), 3 native stacks cut (no CFI)":
 * the nonzero counters of one kind, wrapped under the label; nothing when
 * every one is 0. The bytes of a full allocation table go with its count. */

static void text_counters(FILE *out, const struct snapshot *s, enum counter_kind kind,
			  const char *label, bool color)
{
	size_t col = 0, indent = strlen(label) + 2;
	uint64_t lost_bytes = 0;
	struct counter_info ci;
	uint32_t i;

	for (i = 0; i < s->ncounters; i++) {
		describe(s, i, &ci);
		if (ci.bytes_of_previous)
			lost_bytes = s->counters[i].value;
	}
	for (i = 0; i < s->ncounters; i++) {
		char item[1024], size[32]; /* an escaped text is at most 4 x 192 */
		uint64_t v = s->counters[i].value;
		FILE *f;
		size_t len;

		describe(s, i, &ci);
		if (!v || ci.kind != kind || ci.bytes_of_previous)
			continue;
		/* the text may hold a name from a file: escaped */
		f = fmemopen(item, sizeof(item), "w");
		if (!f)
			continue;
		fprintf(f, "%" PRIu64 " ", v);
		if (!strcmp(ci.key, "allocs_table_full") && lost_bytes) {
			/* "12 allocations (48.0 KiB) not traced (...)" */
			size_t word = strcspn(ci.text, " ");

			fprintf(f, "%.*s (%s)", (int)word, ci.text,
				format_size(size, sizeof(size), (double)lost_bytes, false));
			format_text(f, ci.text + word);
		} else {
			format_text(f, ci.text);
		}
		fputc('\0', f);
		fclose(f);
		item[sizeof(item) - 1] = '\0';
		len = strlen(item);
		if (!col) {
			if (color && kind == COUNTER_LOSS)
				fprintf(out, STYLE_LOST "%s:" STYLE_RESET " ", label);
			else
				fprintf(out, "%s: ", label);
			col = indent;
		} else if (col + 2 + len + 1 > COUNTER_LINE_WIDTH) { /* and its comma */
			fprintf(out, ",\n%*s", (int)indent, "");
			col = indent;
		} else {
			fputs(", ", out);
			col += 2;
		}
		fputs(item, out);
		col += len;
	}
	if (col)
		fputc('\n', out);
}

/* How many processes have every flag of mask. */
static uint32_t processes_with(const struct snapshot *s, uint32_t mask)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < s->nprocesses; i++)
		n += (s->processes[i].flags & mask) == mask;
	return n;
}

static void text_header(FILE *out, const struct snapshot *s, bool color)
{
	const char *command = snapshot_string(s, s->target.command);
	char a[32];

	if (s->nprocesses) {
		uint32_t after = processes_with(s, SNAPSHOT_PROCESS_STARTED_AFTER);

		fprintf(out,
			"%stracer: %u process%s (%u started before the tracer, %u after it, %u "
			"attached late, %u exited), nframe %u%s\n",
			color ? STYLE_HEADER : "", s->nprocesses, s->nprocesses == 1 ? "" : "es",
			s->nprocesses - after, after,
			processes_with(s, SNAPSHOT_PROCESS_ATTACHED_LATE),
			processes_with(s, SNAPSHOT_PROCESS_EXITED), s->traceback_limit,
			color ? STYLE_RESET : "");
	} else {
		fprintf(out, "%stracer: pid %d (", color ? STYLE_HEADER : "", s->target.pid);
		format_text(out, command ? command : "?");
		fprintf(out, "), nframe %u%s\n", s->traceback_limit, color ? STYLE_RESET : "");
	}
	text_traced_memory(out, s);
	fprintf(out, "tracer memory: %s (%" PRIu64 " B)\n",
		format_size(a, sizeof(a), (double)s->tracer_memory, false), s->tracer_memory);
	fprintf(out,
		"events: %" PRIu64 " allocations, %" PRIu64 " frees, %" PRIu64 " live traces\n",
		s->alloc_events, s->free_events, s->ntraces);
	if (s->budget.on) {
		char line[512];

		snapshot_budget_line(s, line, sizeof(line));
		fprintf(out, "%s\n", line);
	}
	text_counters(out, s, COUNTER_LOSS, "lost", color);
	text_counters(out, s, COUNTER_NOTE, "notes", color);
}

/* What the statistics count, after "statistics" in the title. */
static const char *const source_titles[] = {
    [STATS_SOURCE_LIVE] = "",
    [STATS_SOURCE_PEAK] = " of the live set at the peak",
    [STATS_SOURCE_ALLOCATIONS] = " of allocations since tracing began",
    [STATS_SOURCE_TEMPORARY] = " of temporary allocations (freed before their thread's next "
			       "allocation)",
};

static void text_stats(FILE *out, const struct stats_list *l, const struct report_options *o,
		       bool diff)
{
	size_t i, n = o->top > 0 && (size_t)o->top < l->n ? (size_t)o->top : l->n;

	fprintf(out, "%stop %zu %s %s%s%s", o->color ? STYLE_HEADER : "", n,
		stats_key_name(o->key), diff ? "differences" : "statistics",
		source_titles[o->source], o->cumulative ? " (cumulative)" : "");
	if (o->older_than_ns)
		fprintf(out, ", blocks allocated %.9g s or more before the snapshot",
			(double)o->older_than_ns / 1e9);
	fprintf(out, ":%s\n", o->color ? STYLE_RESET : "");
	for (i = 0; i < n; i++) {
		const struct stats_entry *e = &l->entries[i];

		format_statistic_styled(out, e, diff, o->color);
		fputc('\n', out);
		if (o->key == STATS_KEY_TRACEBACK)
			format_traceback(out, e->key, e->nkey,
					 o->traceback_limit ? o->traceback_limit : (int)e->nkey,
					 false);
	}
}

/* A string, or null when unknown. */
static void json_string_or_null(FILE *out, const char *str)
{
	if (str)
		format_json_string(out, str);
	else
		fputs("null", out);
}

/* {"current":N,"peak":N} */
static void json_memory(FILE *out, uint64_t current, uint64_t peak)
{
	fprintf(out, "{\"current\":%" PRIu64 ",\"peak\":%" PRIu64 "}", current, peak);
}

/* "traced_memory": current and peak as the text header's first line, "of"
 * saying which figure they are ("python" or "all"), then each class (null
 * when the snapshot file predates them) and all domains. */
static void json_traced_memory(FILE *out, const struct snapshot *s)
{
	uint64_t current, peak;
	bool python = snapshot_traced_memory(s, &current, &peak);

	fprintf(out,
		",\"traced_memory\":{\"current\":%" PRIu64 ",\"peak\":%" PRIu64 ",\"of\":\"%s\"",
		current, peak, python ? "python" : "all");
	for (int k = 0; k < SNAPSHOT_NCLASSES; k++) {
		fprintf(out, ",\"%s\":", snapshot_class_name((enum snapshot_domain_class)k));
		if (s->domain_memory_known)
			json_memory(out, s->domain_memory[k].current, s->domain_memory[k].peak);
		else
			fputs("null", out);
	}
	fputs(",\"all\":", out);
	json_memory(out, s->traced_current, s->traced_peak);
	fputc('}', out);
}

/* ,"losses":{"allocs_table_full":0,...}: every counter of a kind, zero or
 * not, by its key. */
static void json_counters(FILE *out, const struct snapshot *s, enum counter_kind kind,
			  const char *name)
{
	struct counter_info ci;
	bool first = true;

	fprintf(out, ",\"%s\":{", name);
	for (uint32_t i = 0; i < s->ncounters; i++) {
		describe(s, i, &ci);
		if (ci.kind != kind)
			continue;
		fprintf(out, "%s\"%s\":%" PRIu64, first ? "" : ",", ci.key, s->counters[i].value);
		first = false;
	}
	fputc('}', out);
}

static void json_header(FILE *out, const struct snapshot *s)
{

	fprintf(out, "{\"target\":{\"pid\":%d,\"command\":", s->target.pid);
	format_json_string(out, snapshot_string(s, s->target.command));
	fprintf(out, ",\"start_time\":%" PRIu64 ",\"host\":", s->target.start_time);
	format_json_string(out, snapshot_string(s, s->target.host));
	fprintf(out, "},\"nframe\":%u", s->traceback_limit);
	json_traced_memory(out, s);
	fprintf(out,
		",\"tracer_memory\":%" PRIu64 ",\"events\":{\"allocations\":%" PRIu64
		",\"frees\":%" PRIu64 "},\"traces\":%" PRIu64 ",\"taken_at\":%" PRIu64
		",\"duration_ns\":%" PRIu64,
		s->tracer_memory, s->alloc_events, s->free_events, s->ntraces, s->taken_at,
		s->duration_ns);
	/* "budget": null, or what the figures cover (snapshot_budget_line) */
	if (s->budget.on)
		fprintf(out,
			",\"budget\":{\"ratio\":%.6g,\"coverage\":%.6f,\"overhead\":%.6f,"
			"\"windows\":%llu,\"frees_windowed\":%s,\"hit_cost_ns\":%.1f,"
			"\"alloc_scaled\":false}",
			s->budget.ratio, s->budget.coverage, s->budget.overhead,
			(unsigned long long)s->budget.windows,
			s->budget.frees_windowed ? "true" : "false", s->budget.hit_cost_s * 1e9);
	else
		fputs(",\"budget\":null", out);
	json_counters(out, s, COUNTER_LOSS, "losses");
	json_counters(out, s, COUNTER_NOTE, "notes");
}

/* Every source's figures of a statistic: live, and from the sites (null
 * when the snapshot has none), and the age of its oldest live block (null
 * when the snapshot has no ages). */
static void json_figures(FILE *out, const struct snapshot *s, const struct stats_figures *f)
{
	fprintf(out, ",\"live\":{\"size\":%" PRIu64 ",\"count\":%" PRIu64 "}", f->size, f->count);
	if (s->sites_known)
		fprintf(out,
			",\"peak\":{\"size\":%" PRIu64 ",\"count\":%" PRIu64
			"},\"allocations\":{\"size\":%" PRIu64 ",\"count\":%" PRIu64
			"},\"temporary\":{\"size\":%" PRIu64 ",\"count\":%" PRIu64 "}",
			f->peak_size, f->peak_count, f->alloc_size, f->alloc_count, f->temp_size,
			f->temp_count);
	else
		fputs(",\"peak\":null,\"allocations\":null,\"temporary\":null", out);
	if (s->ages_known && f->count)
		fprintf(out, ",\"max_age_ns\":%" PRIu64, f->max_age_ns);
	else
		fputs(",\"max_age_ns\":null", out);
}

static void json_stats(FILE *out, const struct snapshot *s, const struct stats_list *l,
		       const struct report_options *o, bool diff)
{
	size_t i, n = o->top > 0 && (size_t)o->top < l->n ? (size_t)o->top : l->n;
	uint32_t k;

	fprintf(out, ",\"key\":\"%s\",\"cumulative\":%s,\"source\":\"%s\",\"older_than_ns\":%" PRIu64
		",\"statistics\":[",
		stats_key_name(o->key), o->cumulative ? "true" : "false",
		stats_source_name(o->source), o->older_than_ns);
	for (i = 0; i < n; i++) {
		const struct stats_entry *e = &l->entries[i];

		fprintf(out, "%s{\"frames\":[", i ? "," : "");
		for (k = 0; k < e->nkey; k++) {
			fprintf(out, "%s{\"filename\":", k ? "," : "");
			format_json_string(out, e->key[k].filename);
			fprintf(out, ",\"lineno\":%u,\"function\":", e->key[k].lineno);
			if (e->key[k].function)
				format_json_string(out, e->key[k].function);
			else
				fputs("null", out);
			/* a native frame without a source line: its binary, and
			 * where in its function */
			fputs(",\"binary\":", out);
			if (e->key[k].binary)
				format_json_string(out, e->key[k].binary);
			else
				fputs("null", out);
			if (e->key[k].binary && e->key[k].function_offset)
				fprintf(out, ",\"function_offset\":%" PRIu64,
					e->key[k].function_offset);
			else
				fputs(",\"function_offset\":null", out);
			fputc('}', out);
		}
		fputc(']', out);
		if (e->process) {
			char title[64];

			fprintf(out, ",\"process\":{\"pid\":%d,\"ns_pid\":%d,\"comm\":",
				e->process->pid, e->process->ns_pid);
			json_string_or_null(out, e->process->comm);
			fputs(",\"command\":", out);
			json_string_or_null(out, e->process->command);
			fputs(",\"title\":", out);
			format_json_string(out, stats_process_title(e->process, title, sizeof(title)));
			fputc('}', out);
		}
		/* which frame the text report titles it by */
		if (o->key == STATS_KEY_TRACEBACK && e->nkey)
			fprintf(out, ",\"title_frame\":%u", format_title_frame(e));
		fprintf(out, ",\"size\":%" PRIu64 ",\"count\":%" PRIu64, e->size, e->count);
		/* tracemalloc's average is size / count, undefined for count 0 */
		if (e->count)
			fprintf(out, ",\"average\":%.17g", (double)e->size / (double)e->count);
		else
			fputs(",\"average\":null", out);
		if (diff)
			fprintf(out, ",\"size_diff\":%" PRId64 ",\"count_diff\":%" PRId64,
				e->size_diff, e->count_diff);
		json_figures(out, s, &e->all);
		fputc('}', out);
	}
	fputc(']', out);
}

/* -- a snapshot of several processes -------------------------------------- */

/* Processes by traced memory: current, then peak, the most first; then
 * by pid. */
static int cmp_process(const void *pa, const void *pb, void *ctx)
{
	const struct snapshot *s = ctx;
	const struct snapshot_process *a = &s->processes[*(const uint32_t *)pa];
	const struct snapshot_process *b = &s->processes[*(const uint32_t *)pb];

	if (a->traced_current != b->traced_current)
		return a->traced_current > b->traced_current ? -1 : 1;
	if (a->traced_peak != b->traced_peak)
		return a->traced_peak > b->traced_peak ? -1 : 1;
	if (a->pid != b->pid)
		return a->pid < b->pid ? -1 : 1;
	return a->start_time < b->start_time ? -1 : a->start_time > b->start_time;
}

/* The indices of s's processes in that order (malloc'ed), NULL on ENOMEM;
 * blocks (also malloc'ed) counts each one's live traces. */
static uint32_t *processes_by_memory(const struct snapshot *s, uint64_t **blocks)
{
	uint32_t *order = malloc(s->nprocesses * sizeof(*order) + 1);

	*blocks = calloc(s->nprocesses + 1, sizeof(**blocks));
	if (!order || !*blocks) {
		free(order);
		free(*blocks);
		*blocks = NULL;
		return NULL;
	}
	for (uint32_t i = 0; i < s->nprocesses; i++)
		order[i] = i;
	for (uint64_t i = 0; i < s->ntraces; i++)
		if (s->traces[i].process < s->nprocesses)
			(*blocks)[s->traces[i].process]++;
	qsort_r(order, s->nprocesses, sizeof(*order), cmp_process, (void *)s);
	return order;
}

/* "pid 4242 (redis-server)", the comm escaped */
static void text_process_name(FILE *out, const struct snapshot *s,
			      const struct snapshot_process *p)
{
	const char *comm = snapshot_string(s, p->comm);

	fprintf(out, "pid %d", p->pid);
	if (comm) {
		fputs(" (", out);
		format_text(out, comm);
		fputc(')', out);
	}
}

static void text_process_flags(FILE *out, const struct snapshot_process *p)
{
	if (p->flags & SNAPSHOT_PROCESS_STARTED_AFTER)
		fputs(", started after the tracer", out);
	if (p->flags & SNAPSHOT_PROCESS_ATTACHED_LATE)
		fputs(", attached late", out);
	if (p->flags & SNAPSHOT_PROCESS_EXITED)
		fputs(", exited", out);
}

static size_t processes_shown(const struct snapshot *s, const struct report_options *o)
{
	size_t top = o->top_processes > 0 ? (size_t)o->top_processes : REPORT_TOP_PROCESSES;

	return o->every_process || top > s->nprocesses ? s->nprocesses : top;
}

/* "top 3 processes by traced memory:", a line each, and what was left out */
static void text_top_processes(FILE *out, const struct snapshot *s, const uint32_t *order,
			       const uint64_t *blocks, size_t shown, bool color)
{
	uint64_t rest_current = 0;
	size_t i;

	fprintf(out, "%stop %zu processes by traced memory:%s\n", color ? STYLE_HEADER : "",
		shown, color ? STYLE_RESET : "");
	for (i = 0; i < shown; i++) {
		const struct snapshot_process *p = &s->processes[order[i]];

		fputs("  ", out);
		text_process_name(out, s, p);
		fputs(": ", out);
		text_memory(out, p->traced_current, p->traced_peak);
		fprintf(out, ", %" PRIu64 " blocks, %" PRIu64 " allocations%s\n", blocks[order[i]],
			p->alloc_events, p->flags & SNAPSHOT_PROCESS_EXITED ? ", exited" : "");
	}
	for (; i < s->nprocesses; i++)
		rest_current += s->processes[order[i]].traced_current;
	if (shown < s->nprocesses) {
		char a[32];

		fprintf(out,
			"  %zu more processes not shown (current %s (%" PRIu64
			" B) in all): --pid or --comm selects them\n",
			(size_t)s->nprocesses - shown,
			format_size(a, sizeof(a), (double)rest_current, false), rest_current);
	}
}

/* The line that names a process's section. */
static void text_process_heading(FILE *out, const struct snapshot *s,
				 const struct snapshot_process *p, bool color)
{
	const char *command = snapshot_string(s, p->command);
	const char *cgroup = snapshot_string(s, p->cgroup);
	const char *runtime = snapshot_string(s, p->runtime);

	fprintf(out, "\n%s", color ? STYLE_HEADER : "");
	text_process_name(out, s, p);
	if (p->ns_pid && p->ns_pid != p->pid)
		fprintf(out, ", ns pid %d", p->ns_pid);
	if (command) {
		fputs(", command \"", out);
		format_text(out, command);
		fputc('"', out);
	}
	if (cgroup) {
		fputs(", cgroup ", out);
		format_text(out, cgroup);
	}
	if (runtime) {
		fputs(", runtime ", out);
		format_text(out, runtime);
	}
	text_process_flags(out, p);
	fprintf(out, "%s\n", color ? STYLE_RESET : "");
}

/* The top processes, then each one's top statistics. */
static int text_processes(FILE *out, const struct snapshot *s, const struct report_options *o)
{
	uint64_t *blocks;
	uint32_t *order = processes_by_memory(s, &blocks);
	size_t shown = processes_shown(s, o);
	int err = 0;

	if (!order)
		return -ENOMEM;
	text_top_processes(out, s, order, blocks, shown, o->color);
	for (size_t i = 0; i < shown && !err; i++) {
		struct stats_list l;

		text_process_heading(out, s, &s->processes[order[i]], o->color);
		err = stats_compute_process(s, order[i], o->source, o->key, o->cumulative, &l);
		if (!err) {
			text_stats(out, &l, o, false);
			stats_list_free(&l);
		}
	}
	free(order);
	free(blocks);
	return err;
}

/* Traced memory of a process as json_traced_memory gives a snapshot's. */
static void json_process_memory(FILE *out, const struct snapshot *s,
				const struct snapshot_process *p)
{
	const struct snapshot_domain_memory *py = &p->domain_memory[SNAPSHOT_CLASS_PYTHON];
	bool python = s->domain_memory_known && (py->current || py->peak);

	fprintf(out,
		",\"traced_memory\":{\"current\":%" PRIu64 ",\"peak\":%" PRIu64 ",\"of\":\"%s\"",
		python ? py->current : p->traced_current, python ? py->peak : p->traced_peak,
		python ? "python" : "all");
	for (int k = 0; k < SNAPSHOT_NCLASSES; k++) {
		fprintf(out, ",\"%s\":", snapshot_class_name((enum snapshot_domain_class)k));
		if (s->domain_memory_known)
			json_memory(out, p->domain_memory[k].current, p->domain_memory[k].peak);
		else
			fputs("null", out);
	}
	fputs(",\"all\":", out);
	json_memory(out, p->traced_current, p->traced_peak);
	fputc('}', out);
}

/* ,"processes":[...]: each process's document, as a snapshot of one
 * process's, in the order of the text report's table. */
static int json_processes(FILE *out, const struct snapshot *s, const struct report_options *o)
{
	uint64_t *blocks;
	uint32_t *order = processes_by_memory(s, &blocks);
	int err = 0;

	if (!order)
		return -ENOMEM;
	fputs(",\"processes\":[", out);
	for (uint32_t i = 0; i < s->nprocesses && !err; i++) {
		const struct snapshot_process *p = &s->processes[order[i]];
		struct stats_list l;

		fprintf(out, "%s{\"target\":{\"pid\":%d,\"ns_pid\":%d,\"command\":", i ? "," : "",
			p->pid, p->ns_pid);
		json_string_or_null(out, snapshot_string(s, p->command));
		fputs(",\"comm\":", out);
		json_string_or_null(out, snapshot_string(s, p->comm));
		fputs(",\"cgroup\":", out);
		json_string_or_null(out, snapshot_string(s, p->cgroup));
		fputs(",\"runtime\":", out);
		json_string_or_null(out, snapshot_string(s, p->runtime));
		fprintf(out, ",\"start_time\":%" PRIu64 ",\"host\":", p->start_time);
		format_json_string(out, snapshot_string(s, s->target.host));
		fprintf(out,
			"},\"started_after\":%s,\"attached_late\":%s,\"exited\":%s,\"nframe\":%u",
			p->flags & SNAPSHOT_PROCESS_STARTED_AFTER ? "true" : "false",
			p->flags & SNAPSHOT_PROCESS_ATTACHED_LATE ? "true" : "false",
			p->flags & SNAPSHOT_PROCESS_EXITED ? "true" : "false", s->traceback_limit);
		json_process_memory(out, s, p);
		fprintf(out,
			",\"events\":{\"allocations\":%" PRIu64 ",\"frees\":%" PRIu64
			"},\"traces\":%" PRIu64,
			p->alloc_events, p->free_events, blocks[order[i]]);
		err = stats_compute_process(s, order[i], o->source, o->key, o->cumulative, &l);
		if (!err) {
			json_stats(out, s, &l, o, false);
			stats_list_free(&l);
		}
		fputc('}', out);
	}
	fputc(']', out);
	free(order);
	free(blocks);
	return err;
}

const char *report_missing(const struct snapshot *s, const struct report_options *o)
{
	if (o->source != STATS_SOURCE_LIVE && !s->sites_known)
		return o->source == STATS_SOURCE_PEAK
			   ? "this snapshot has no live set at the peak (written by an older tracer)"
			   : "this snapshot has no allocations per site (written by an older tracer)";
	if (o->older_than_ns && !s->ages_known)
		return "this snapshot has no block ages for --older-than (written by an older "
		       "tracer)";
	return NULL;
}

int report_snapshot(FILE *out, const struct snapshot *s, const struct report_options *o)
{
	struct snapshot *old_enough = NULL;
	struct stats_list l;
	int err;

	if (report_missing(s, o))
		return -ENODATA;
	if (o->older_than_ns) {
		err = filter_older_than(s, o->older_than_ns, &old_enough);
		if (err)
			return err;
		s = old_enough;
	}
	err = stats_compute_source(s, o->source, o->key, o->cumulative, &l);
	if (err) {
		snapshot_free(old_enough);
		return err;
	}
	if (o->format == REPORT_JSON) {
		json_header(out, s);
		json_stats(out, s, &l, o, false);
		/* pid 0: of many processes (-a, several -p), even of none yet */
		if (s->nprocesses || s->target.pid == 0)
			err = json_processes(out, s, o);
		fputs("}\n", out);
	} else {
		text_header(out, s, o->color);
		/* of several processes: each one's, unless grouped by them */
		if (s->nprocesses && o->key != STATS_KEY_PROCESS)
			err = text_processes(out, s, o);
		else
			text_stats(out, &l, o, false);
	}
	stats_list_free(&l);
	snapshot_free(old_enough);
	if (err)
		return err;
	return ferror(out) ? -EIO : 0;
}

int report_compare(FILE *out, const struct snapshot *old_snap, const struct snapshot *new_snap,
		   const struct report_options *o)
{
	struct stats_list l;
	int err;

	if (report_missing(old_snap, o) || report_missing(new_snap, o))
		return -ENODATA;
	err = stats_compare_source(new_snap, old_snap, o->source, o->key, o->cumulative, &l);
	if (err)
		return err;
	if (o->format == REPORT_JSON) {
		fputs("{\"old\":", out);
		json_header(out, old_snap);
		fputs("},\"new\":", out);
		json_header(out, new_snap);
		fputc('}', out);
		json_stats(out, new_snap, &l, o, true);
		fputs("}\n", out);
	} else {
		fputs("old snapshot\n", out);
		text_header(out, old_snap, o->color);
		fputs("new snapshot\n", out);
		text_header(out, new_snap, o->color);
		text_stats(out, &l, o, true);
	}
	stats_list_free(&l);
	return ferror(out) ? -EIO : 0;
}

int report_address(FILE *out, const struct snapshot *s, uint64_t addr)
{
	char dom[16], size[32];
	bool found = false;
	uint64_t i;

	/* in a snapshot of several processes an address may be live in each:
	 * every block that holds it, with its process */
	for (i = 0; i < s->ntraces && !(found && !s->nprocesses); i++) {
		const struct snapshot_trace *t = &s->traces[i];
		const struct snapshot_traceback *tb = &s->tracebacks[t->traceback];
		const struct snapshot_process *p = snapshot_process_at(s, t->process);

		if (addr < t->address || addr - t->address >= (t->size ? t->size : 1))
			continue;
		found = true;
		fprintf(out,
			"0x%" PRIx64 ": offset %" PRIu64 " in a block of %s (%" PRIu64
			" B) at 0x%" PRIx64 ", domain %s",
			addr, addr - t->address,
			format_size(size, sizeof(size), (double)t->size, false), t->size,
			t->address, snapshot_domain_name(t->domain, dom));
		if (p) {
			fputs(", ", out);
			text_process_name(out, s, p);
		}
		fputs(", allocated at:\n", out);
		for (uint32_t k = 0; k < tb->nframe; k++) {
			struct stats_frame f = stats_frame_of(s, snapshot_frame_at(s, tb, k));

			fputs("  ", out);
			if (!format_frame_file(out, &f) && f.function) {
				fputs(", in ", out);
				format_text(out, f.function);
			}
			fputc('\n', out);
		}
		if (!tb->nframe)
			fputs("  <unknown>:0\n", out);
	}
	if (found)
		return 0;
	fprintf(out, "0x%" PRIx64 ": no traced block holds this address\n", addr);
	return 1;
}
