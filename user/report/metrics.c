#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "model/delta.h"
#include "report/counters.h"
#include "report/metrics.h"

/* What each of the snapshot's counters means for a scrape. A counter whose
 * name is not here is taken for lost events: nothing is hidden. */
enum metric_kind {
	KIND_LOST,	       /* an event not traced, or not applied */
	KIND_LOST_BYTES,       /* the bytes of the allocations lost */
	KIND_DEGRADED,	       /* traced, with less than the whole traceback or domain */
	KIND_FAILED_ALLOCS,    /* the allocator returned NULL: nothing to trace */
	KIND_UNTRACED_FREES,   /* frees of blocks allocated before tracing */
	KIND_NOTE,	       /* what report/counters.c calls a note: no figure misses it */
};

static const struct {
	const char *name; /* a whole name, or a prefix ending in ':' */
	enum metric_kind kind;
	const char *reason; /* the label, when not the name's identifier */
} kinds[] = {
    {"allocs table full (bytes)", KIND_LOST_BYTES, "allocs_table_full"},
    {"failed allocations (NULL)", KIND_FAILED_ALLOCS},
    {"frees of untraced blocks", KIND_UNTRACED_FREES},
    {"native stack table full", KIND_DEGRADED},
    {"native stacks walked before their process was tabled", KIND_DEGRADED},
    {"python frames unreadable", KIND_DEGRADED},
    {"python stack table full", KIND_DEGRADED},
    {"reallocs of untraced blocks, domain unknown (libc)", KIND_DEGRADED},
    {"python frames unresolved", KIND_DEGRADED},
    {"stack truncated (address outside code)", KIND_DEGRADED},
    {"native stack missing", KIND_DEGRADED},
    {"native stack cut:", KIND_DEGRADED},
    {"unwind:", KIND_DEGRADED},
};

static enum metric_kind kind_of(const char *name, const char **reason)
{
	struct counter_info info;

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t n = strlen(kinds[i].name);

		if (kinds[i].name[n - 1] == ':' ? !strncmp(name, kinds[i].name, n)
						: !strcmp(name, kinds[i].name)) {
			if (reason)
				*reason = kinds[i].reason;
			return kinds[i].kind;
		}
	}
	if (reason)
		*reason = NULL;
	/* the reports' table says the rest: a loss, or a note */
	counter_describe(name, &info);
	return info.kind == COUNTER_NOTE ? KIND_NOTE : KIND_LOST;
}

void metrics_identifier(const char *name, char *out, size_t len)
{
	size_t n = 0;
	bool gap = false;

	for (const char *p = name; *p && n + 2 < len; p++) {
		char c = *p;

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			if (gap && n)
				out[n++] = '_';
			out[n++] = c;
			gap = false;
		} else {
			gap = true;
		}
	}
	if (!n && len > 7)
		n = (size_t)snprintf(out, len, "unnamed");
	out[n] = '\0';
}

/* A label value as the exposition format quotes it: \, " and newline escaped. */
static void put_value(FILE *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\')
			fputs("\\\\", out);
		else if (*v == '"')
			fputs("\\\"", out);
		else if (*v == '\n')
			fputs("\\n", out);
		else
			fputc(*v, out);
	}
}

struct writer {
	FILE *out;
	const struct snapshot *s;
	/* the labels of the samples being written: one process's (the
	 * target's, or one of several), or none (unlabelled: a snapshot of
	 * several processes' figures that are not any one's) */
	bool unlabelled;
	char pid[16];
	char comm[SNAPSHOT_COMM_LEN];
	const char *cgroup; /* "" or NULL: unknown */
};

static void family(struct writer *w, const char *name, const char *type, const char *help)
{
	fprintf(w->out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{pid="..",comm=".."[,cgroup=".."][,key="value"]}: cgroup when known */
static void labels(struct writer *w, const char *name, const char *key, const char *value)
{
	if (w->unlabelled) {
		fputs(name, w->out);
		if (key) {
			fprintf(w->out, "{%s=\"", key);
			put_value(w->out, value);
			fputs("\"}", w->out);
		}
		return;
	}
	fprintf(w->out, "%s{pid=\"%s\",comm=\"", name, w->pid);
	put_value(w->out, w->comm);
	fputc('"', w->out);
	if (w->cgroup && w->cgroup[0]) {
		fputs(",cgroup=\"", w->out);
		put_value(w->out, w->cgroup);
		fputc('"', w->out);
	}
	if (key) {
		fprintf(w->out, ",%s=\"", key);
		put_value(w->out, value);
		fputc('"', w->out);
	}
	fputc('}', w->out);
}

/* The labels of process i of a snapshot of several. */
static void process_labels(struct writer *w, uint32_t i)
{
	const struct snapshot_process *p = &w->s->processes[i];
	const char *comm = snapshot_string(w->s, p->comm);

	w->unlabelled = false;
	snprintf(w->pid, sizeof(w->pid), "%d", (int)p->pid);
	snprintf(w->comm, sizeof(w->comm), "%s", comm ? comm : "");
	w->cgroup = snapshot_string(w->s, p->cgroup);
}

/* One family with a sample per traced process: the target's figure, or
 * each process's of several (values[i]; then the writer is left
 * unlabelled). */
static void each_process(struct writer *w, const char *name, const char *type,
			 const char *help, uint64_t target_value, const uint64_t *values)
{
	family(w, name, type, help);
	if (!w->s->nprocesses) {
		labels(w, name, NULL, NULL);
		fprintf(w->out, " %llu\n", (unsigned long long)target_value);
		return;
	}
	for (uint32_t i = 0; i < w->s->nprocesses; i++) {
		process_labels(w, i);
		labels(w, name, NULL, NULL);
		fprintf(w->out, " %llu\n", (unsigned long long)values[i]);
	}
	w->unlabelled = true;
}

static void per_process(struct writer *w, const char *name, const char *type, const char *help,
			uint64_t value)
{
	family(w, name, type, help);
	labels(w, name, NULL, NULL);
	fprintf(w->out, " %llu\n", (unsigned long long)value);
}

/* One family with one sample per counter of that kind (by reason), every
 * reason there even at 0 so that rates start at the first scrape. */
static void by_reason(struct writer *w, enum metric_kind kind, const char *name,
		      const char *help)
{
	char id[128];

	family(w, name, "counter", help);
	for (uint32_t i = 0; i < w->s->ncounters; i++) {
		const char *cn = snapshot_string(w->s, w->s->counters[i].name), *reason;

		if (!cn || kind_of(cn, &reason) != kind)
			continue;
		if (!reason) { /* the key reports give it */
			struct counter_info info;

			counter_describe(cn, &info);
			snprintf(id, sizeof(id), "%s", info.key);
		}
		labels(w, name, "reason", reason ? reason : id);
		fprintf(w->out, " %llu\n", (unsigned long long)w->s->counters[i].value);
	}
}

static uint64_t sum_of(const struct snapshot *s, enum metric_kind kind)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < s->ncounters; i++) {
		const char *cn = snapshot_string(s, s->counters[i].name);

		if (cn && kind_of(cn, NULL) == kind)
			n += s->counters[i].value;
	}
	return n;
}

int metrics_write(const struct snapshot *s, const struct metrics_info *info, FILE *out)
{
	struct writer w = {.out = out, .s = s};
	uint64_t lost = sum_of(s, KIND_LOST), failed = sum_of(s, KIND_FAILED_ALLOCS);
	uint64_t untraced = sum_of(s, KIND_UNTRACED_FREES);

	uint64_t *v = calloc(5 * (size_t)(s->nprocesses + 1), sizeof(*v));
	uint64_t *current = v, *peak = current + s->nprocesses + 1,
		 *blocks = peak + s->nprocesses + 1, *allocs = blocks + s->nprocesses + 1,
		 *frees = allocs + s->nprocesses + 1;

	if (!v)
		return -ENOMEM;
	snprintf(w.pid, sizeof(w.pid), "%d", (int)s->target.pid);
	snapshot_comm(s, w.comm);
	w.cgroup = s->target.cgroup;
	/* several processes: each one's figures under its own labels, the
	 * rest (the tracer's) unlabelled */
	for (uint32_t i = 0; i < s->nprocesses; i++) {
		current[i] = s->processes[i].traced_current;
		peak[i] = s->processes[i].traced_peak;
		allocs[i] = s->processes[i].alloc_events;
		frees[i] = s->processes[i].free_events;
	}
	for (uint64_t i = 0; i < s->ntraces && s->nprocesses; i++)
		if (s->traces[i].process < s->nprocesses)
			blocks[s->traces[i].process]++;

	each_process(&w, "tracer_traced_bytes", "gauge",
		     "Bytes in the live blocks traced now, every domain.", s->traced_current,
		     current);
	each_process(&w, "tracer_traced_peak_bytes", "gauge",
		     "The highest tracer_traced_bytes reached since tracing began (or SIGUSR2).",
		     s->traced_peak, peak);
	if (s->domain_memory_known) {
		family(&w, "tracer_traced_class_bytes", "gauge",
		       "Bytes traced now by class of domain: python (tracemalloc's "
		       "get_traced_memory()) or native.");
		for (uint32_t i = 0; i < (s->nprocesses ? s->nprocesses : 1); i++) {
			const struct snapshot_domain_memory *dm = s->domain_memory;

			if (s->nprocesses) {
				process_labels(&w, i);
				dm = s->processes[i].domain_memory;
			}
			for (int k = 0; k < SNAPSHOT_NCLASSES; k++) {
				labels(&w, "tracer_traced_class_bytes", "class",
				       snapshot_class_name((enum snapshot_domain_class)k));
				fprintf(out, " %llu\n", (unsigned long long)dm[k].current);
			}
		}
		w.unlabelled = s->nprocesses > 0;
	}
	each_process(&w, "tracer_live_blocks", "gauge", "Live blocks traced now.", s->ntraces,
		     blocks);
	each_process(&w, "tracer_allocations_total", "counter",
		     "Allocation events traced since tracing began.", s->alloc_events, allocs);
	each_process(&w, "tracer_frees_total", "counter",
		     "Frees of traced blocks since tracing began.", s->free_events, frees);
	free(v);
	per_process(&w, "tracer_failed_allocations_total", "counter",
		    "Allocations that returned NULL (nothing to trace).", failed);
	per_process(&w, "tracer_untraced_frees_total", "counter",
		    "Frees of blocks allocated before tracing began.", untraced);
	by_reason(&w, KIND_LOST, "tracer_lost_events_total",
		  "Allocator events not traced or not applied, by reason.");
	by_reason(&w, KIND_LOST_BYTES, "tracer_lost_bytes_total",
		  "Bytes of the allocations not traced, by reason.");
	by_reason(&w, KIND_DEGRADED, "tracer_degraded_events_total",
		  "Events traced with less than their whole traceback or domain, by reason.");
	by_reason(&w, KIND_NOTE, "tracer_noted_events_total",
		  "Events worth knowing that no figure misses (blocks of exec'd or exited "
		  "images, events after Python's finalization ...), by reason.");
	per_process(&w, "tracer_probe_hits_total", "counter",
		    "Allocator calls the probes handled: traced, untraced frees, failed and "
		    "lost.",
		    s->alloc_events + s->free_events + failed + untraced + lost);
	family(&w, "tracer_tracing_seconds", "gauge", "How long tracing has run.");
	labels(&w, "tracer_tracing_seconds", NULL, NULL);
	fprintf(out, " %.3f\n", s->duration_ns / 1e9);

	family(&w, "tracer_coverage_ratio", "gauge",
	       "Share of the time since tracing began with allocations traced: 1 without "
	       "--budget; within a budget, allocation figures count the windows' events "
	       "(unscaled) and the live set their blocks.");
	labels(&w, "tracer_coverage_ratio", NULL, NULL);
	fprintf(out, " %.6f\n", s->budget.on ? s->budget.coverage : 1.0);
	if (s->budget.on) {
		family(&w, "tracer_budget_ratio", "gauge",
		       "--budget: the cost allowed, as a share of each process's own CPU time.");
		fprintf(out, "tracer_budget_ratio %.6g\n", s->budget.ratio);
		family(&w, "tracer_overhead_ratio", "gauge",
		       "Estimated cost of the probes so far (hits times the calibrated cost of a "
		       "hit, plus the programs' run time) over the process's own CPU time; the "
		       "highest of the traced processes.");
		fprintf(out, "tracer_overhead_ratio %.6f\n", s->budget.overhead);
		family(&w, "tracer_budget_frees_windowed", "gauge",
		       "1 when even the frees cost more than the budget and are traced in windows "
		       "too: the live set is then the last window's.");
		fprintf(out, "tracer_budget_frees_windowed %d\n", s->budget.frees_windowed);
		family(&w, "tracer_budget_windows_total", "counter", "Windows opened so far.");
		fprintf(out, "tracer_budget_windows_total %llu\n",
			(unsigned long long)s->budget.windows);
	}

	family(&w, "tracer_memory_bytes", "gauge",
	       "The tracer's own memory: its BPF maps (kernel) and its resident set.");
	fprintf(out, "tracer_memory_bytes %llu\n", (unsigned long long)s->tracer_memory);
	if (info) {
		family(&w, "tracer_snapshot_build_seconds", "gauge",
		       "How long the snapshot these figures come from took to build.");
		fprintf(out, "tracer_snapshot_build_seconds %.6f\n", info->snapshot_seconds);
		family(&w, "tracer_snapshot_age_seconds", "gauge",
		       "How old that snapshot was when served.");
		fprintf(out, "tracer_snapshot_age_seconds %.6f\n", info->snapshot_age_seconds);
		if (info->version) {
			family(&w, "tracer_build_info", "gauge", "The tracer's version, as a label.");
			fputs("tracer_build_info{version=\"", out);
			put_value(out, info->version);
			fputs("\"} 1\n", out);
		}
	}
	return ferror(out) ? -EIO : 0;
}
