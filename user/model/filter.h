/* tracemalloc's Snapshot.filter_traces() with its Filter and DomainFilter
 * (../shared/TRACEMALLOC.md section 4): filename patterns (fnmatch), an
 * optional line, all_frames, domains, inclusive and exclusive. */
#ifndef TRACER_FILTER_H
#define TRACER_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/snapshot.h"

/* Filter(inclusive, pattern, lineno, all_frames, domain) when pattern is
 * set; DomainFilter(inclusive, domain) when it is NULL. */
struct filter {
	bool inclusive;
	char *pattern;	 /* normalised: a trailing .pyc reads .py */
	uint32_t lineno; /* 0: any line (tracemalloc's None) */
	bool all_frames;
	bool has_domain; /* Filter(domain=...) */
	uint32_t domain;
};

struct filter_list {
	struct filter *f;
	size_t n;
};

/* Adds a Filter from "PATTERN" or "PATTERN:LINENO" (only a trailing
 * ":digits" is a line; a pattern may hold ':' itself). Returns 0, -EINVAL
 * for an empty pattern or line 0, or -ENOMEM. */
int filter_add(struct filter_list *l, bool inclusive, const char *spec, bool all_frames);
/* Restricts the last Filter added to one domain (Filter(domain=d)). */
int filter_set_domain(struct filter_list *l, uint32_t domain);
/* Adds a DomainFilter. */
int filter_add_domain(struct filter_list *l, bool inclusive, uint32_t domain);
void filter_list_free(struct filter_list *l);

/* Whether filter_traces(l) keeps a trace: kept when no inclusive filter
 * exists or one matches, and no exclusive filter rejects it. */
bool filter_keeps(const struct snapshot *s, const struct filter_list *l,
		  const struct snapshot_trace *t);

/* A new snapshot of the traces l keeps, with in's header, target,
 * counters and processes; an empty list copies. Returns 0 or a negative errno. */
int filter_snapshot(const struct snapshot *in, const struct filter_list *l, struct snapshot **out);

/* --older-than: a new snapshot of the traces allocated at least min_age_ns
 * before in was taken, with in's header, counters and every site. -EINVAL
 * when in has no ages (a file written before tracer kept them). */
int filter_older_than(const struct snapshot *in, uint64_t min_age_ns, struct snapshot **out);

/* --pid and --comm: the processes whose traces and sites a report keeps;
 * a process matches when any pid or any comm does. A comm longer than the
 * kernel keeps (15 bytes) matches on its first 15. */
struct process_filter {
	int32_t *pids;
	size_t npids;
	char **comms;
	size_t ncomms;
};

int process_filter_add_pid(struct process_filter *pf, int32_t pid);
int process_filter_add_comm(struct process_filter *pf, const char *comm);
void process_filter_free(struct process_filter *pf);

static inline bool process_filter_empty(const struct process_filter *pf)
{
	return !pf || (!pf->npids && !pf->ncomms);
}

/* Whether process i of s matches; in a snapshot of one process (no
 * processes), whether its target does (its pid, and snapshot_comm's name). */
bool process_filter_matches(const struct snapshot *s, const struct process_filter *pf,
			    uint32_t i);

/* A new snapshot of the traces and sites of the processes pf keeps, and
 * their rows (renumbered in order); its header figures are the sums of
 * theirs (in's when every process is kept). Of a snapshot of one process:
 * a copy when its target matches, else one with no traces nor sites and
 * its figures 0 (the target, tracer memory and counters kept). */
int filter_processes(const struct snapshot *in, const struct process_filter *pf,
		     struct snapshot **out);

/* The command line's filters. --pid and --comm keep their processes
 * first; then --domain restricts, as
 * filter_traces([DomainFilter(True, d), ...]) would; then --include,
 * --exclude and --exclude-domain combine in one filter_traces(). */
struct filter_set {
	struct process_filter processes;
	struct filter_list domains;
	struct filter_list rest;
};

static inline bool filter_set_empty(const struct filter_set *fs)
{
	return !fs || (!fs->domains.n && !fs->rest.n && process_filter_empty(&fs->processes));
}

int filter_set_apply(const struct snapshot *in, const struct filter_set *fs, struct snapshot **out);
void filter_set_free(struct filter_set *fs);

#endif
