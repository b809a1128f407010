#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "report/format.h"
#include "report/report.h"

static void text_header(FILE *out, const struct snapshot *s)
{
	char a[32], b[32];
	uint32_t i;

	fprintf(out, "tracer: pid %d (%s), nframe %u\n", s->target.pid,
		snapshot_string(s, s->target.command) ? snapshot_string(s, s->target.command) : "?",
		s->traceback_limit);
	fprintf(out, "traced memory: current %s (%" PRIu64 " B), peak %s (%" PRIu64 " B)\n",
		format_size(a, sizeof(a), (double)s->traced_current, false), s->traced_current,
		format_size(b, sizeof(b), (double)s->traced_peak, false), s->traced_peak);
	fprintf(out, "tracer memory: %s (%" PRIu64 " B)\n",
		format_size(a, sizeof(a), (double)s->tracer_memory, false), s->tracer_memory);
	fprintf(out,
		"events: %" PRIu64 " allocations, %" PRIu64 " frees, %" PRIu64 " live traces\n",
		s->alloc_events, s->free_events, s->ntraces);
	fputs("lost:", out);
	for (i = 0; i < s->ncounters; i++)
		fprintf(out, "%s %s %" PRIu64, i ? "," : "",
			snapshot_string(s, s->counters[i].name), s->counters[i].value);
	fputc('\n', out);
}

static void text_stats(FILE *out, const struct stats_list *l, const struct report_options *o,
		       bool diff)
{
	size_t i, n = o->top > 0 && (size_t)o->top < l->n ? (size_t)o->top : l->n;

	fprintf(out, "top %zu %s %s%s:\n", n, stats_key_name(o->key),
		diff ? "differences" : "statistics", o->cumulative ? " (cumulative)" : "");
	for (i = 0; i < n; i++) {
		const struct stats_entry *e = &l->entries[i];

		format_statistic(out, e, diff);
		fputc('\n', out);
		if (o->key == STATS_KEY_TRACEBACK)
			format_traceback(out, e->key, e->nkey,
					 o->traceback_limit ? o->traceback_limit : (int)e->nkey,
					 false);
	}
}

static void json_header(FILE *out, const struct snapshot *s)
{
	uint32_t i;

	fprintf(out, "{\"target\":{\"pid\":%d,\"command\":", s->target.pid);
	format_json_string(out, snapshot_string(s, s->target.command));
	fprintf(out, ",\"start_time\":%" PRIu64 ",\"host\":", s->target.start_time);
	format_json_string(out, snapshot_string(s, s->target.host));
	fprintf(out,
		"},\"nframe\":%u,\"traced_memory\":{\"current\":%" PRIu64 ",\"peak\":%" PRIu64
		"},\"tracer_memory\":%" PRIu64 ",\"events\":{\"allocations\":%" PRIu64
		",\"frees\":%" PRIu64 "},\"traces\":%" PRIu64 ",\"taken_at\":%" PRIu64
		",\"duration_ns\":%" PRIu64 ",\"counters\":{",
		s->traceback_limit, s->traced_current, s->traced_peak, s->tracer_memory,
		s->alloc_events, s->free_events, s->ntraces, s->taken_at, s->duration_ns);
	for (i = 0; i < s->ncounters; i++) {
		if (i)
			fputc(',', out);
		format_json_string(out, snapshot_string(s, s->counters[i].name));
		fprintf(out, ":%" PRIu64, s->counters[i].value);
	}
	fputc('}', out);
}

static void json_stats(FILE *out, const struct stats_list *l, const struct report_options *o,
		       bool diff)
{
	size_t i, n = o->top > 0 && (size_t)o->top < l->n ? (size_t)o->top : l->n;
	uint32_t k;

	fprintf(out, ",\"key\":\"%s\",\"cumulative\":%s,\"statistics\":[", stats_key_name(o->key),
		o->cumulative ? "true" : "false");
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
			fputc('}', out);
		}
		fprintf(out, "],\"size\":%" PRIu64 ",\"count\":%" PRIu64, e->size, e->count);
		/* tracemalloc's average is size / count, undefined for count 0 */
		if (e->count)
			fprintf(out, ",\"average\":%.17g", (double)e->size / (double)e->count);
		else
			fputs(",\"average\":null", out);
		if (diff)
			fprintf(out, ",\"size_diff\":%" PRId64 ",\"count_diff\":%" PRId64,
				e->size_diff, e->count_diff);
		fputc('}', out);
	}
	fputc(']', out);
}

int report_snapshot(FILE *out, const struct snapshot *s, const struct report_options *o)
{
	struct stats_list l;
	int err = stats_compute(s, o->key, o->cumulative, &l);

	if (err)
		return err;
	if (o->format == REPORT_JSON) {
		json_header(out, s);
		json_stats(out, &l, o, false);
		fputs("}\n", out);
	} else {
		text_header(out, s);
		text_stats(out, &l, o, false);
	}
	stats_list_free(&l);
	return ferror(out) ? -EIO : 0;
}

int report_compare(FILE *out, const struct snapshot *old_snap, const struct snapshot *new_snap,
		   const struct report_options *o)
{
	struct stats_list l;
	int err = stats_compare(new_snap, old_snap, o->key, o->cumulative, &l);

	if (err)
		return err;
	if (o->format == REPORT_JSON) {
		fputs("{\"old\":", out);
		json_header(out, old_snap);
		fputs("},\"new\":", out);
		json_header(out, new_snap);
		fputc('}', out);
		json_stats(out, &l, o, true);
		fputs("}\n", out);
	} else {
		fputs("old snapshot\n", out);
		text_header(out, old_snap);
		fputs("new snapshot\n", out);
		text_header(out, new_snap);
		text_stats(out, &l, o, true);
	}
	stats_list_free(&l);
	return ferror(out) ? -EIO : 0;
}

int report_address(FILE *out, const struct snapshot *s, uint64_t addr)
{
	char dom[16], size[32];
	uint64_t i;

	for (i = 0; i < s->ntraces; i++) {
		const struct snapshot_trace *t = &s->traces[i];
		const struct snapshot_traceback *tb = &s->tracebacks[t->traceback];

		if (addr < t->address || addr - t->address >= (t->size ? t->size : 1))
			continue;
		fprintf(out,
			"0x%" PRIx64 ": offset %" PRIu64 " in a block of %s (%" PRIu64
			" B) at 0x%" PRIx64 ", domain %s, allocated at:\n",
			addr, addr - t->address,
			format_size(size, sizeof(size), (double)t->size, false), t->size,
			t->address, snapshot_domain_name(t->domain, dom));
		for (uint32_t k = 0; k < tb->nframe; k++) {
			const struct snapshot_frame *f = snapshot_frame_at(s, tb, k);

			fprintf(out, "  File \"%s\", line %u", snapshot_string(s, f->filename),
				f->lineno);
			if (f->function != SNAPSHOT_NO_STRING)
				fprintf(out, ", in %s", snapshot_string(s, f->function));
			fputc('\n', out);
		}
		if (!tb->nframe)
			fputs("  <unknown>:0\n", out);
		return 0;
	}
	fprintf(out, "0x%" PRIx64 ": no traced block holds this address\n", addr);
	return 1;
}
