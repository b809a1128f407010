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

/* A new snapshot of the traces l keeps, with in's header, target and
 * counters; an empty list copies. Returns 0 or a negative errno. */
int filter_snapshot(const struct snapshot *in, const struct filter_list *l, struct snapshot **out);

/* --older-than: a new snapshot of the traces allocated at least min_age_ns
 * before in was taken, with in's header, counters and every site. -EINVAL
 * when in has no ages (a file written before tracer kept them). */
int filter_older_than(const struct snapshot *in, uint64_t min_age_ns, struct snapshot **out);

/* The command line's filters. --domain restricts first, as
 * filter_traces([DomainFilter(True, d), ...]) would; then --include,
 * --exclude and --exclude-domain combine in one filter_traces(). */
struct filter_set {
	struct filter_list domains;
	struct filter_list rest;
};

static inline bool filter_set_empty(const struct filter_set *fs)
{
	return !fs || (!fs->domains.n && !fs->rest.n);
}

int filter_set_apply(const struct snapshot *in, const struct filter_set *fs, struct snapshot **out);
void filter_set_free(struct filter_set *fs);

#endif
