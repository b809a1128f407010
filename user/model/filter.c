#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "model/filter.h"

/* tracemalloc's _normalize_filename: a trailing ".pyc" becomes ".py". */
static char *normalize(const char *name)
{
	size_t n = strlen(name);
	char *out = strdup(name);

	if (out && n >= 4 && !strcmp(name + n - 4, ".pyc"))
		out[n - 1] = '\0';
	return out;
}

static struct filter *append(struct filter_list *l)
{
	struct filter *f = realloc(l->f, (l->n + 1) * sizeof(*f));

	if (!f)
		return NULL;
	l->f = f;
	f = &l->f[l->n++];
	memset(f, 0, sizeof(*f));
	return f;
}

int filter_add(struct filter_list *l, bool inclusive, const char *spec, bool all_frames)
{
	const char *colon = strrchr(spec, ':');
	unsigned long lineno = 0;
	size_t plen = strlen(spec);
	struct filter *f;
	char *pattern;

	if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
		if (strlen(colon + 1) > 9)
			return -EINVAL;
		lineno = strtoul(colon + 1, NULL, 10);
		if (lineno == 0)
			return -EINVAL; /* lines start at 1 */
		plen = (size_t)(colon - spec);
	}
	if (plen == 0)
		return -EINVAL;
	pattern = strndup(spec, plen);
	if (!pattern)
		return -ENOMEM;
	f = append(l);
	if (!f) {
		free(pattern);
		return -ENOMEM;
	}
	f->inclusive = inclusive;
	f->pattern = normalize(pattern);
	free(pattern);
	if (!f->pattern) {
		l->n--;
		return -ENOMEM;
	}
	f->lineno = (uint32_t)lineno;
	f->all_frames = all_frames;
	return 0;
}

int filter_set_domain(struct filter_list *l, uint32_t domain)
{
	if (!l->n || !l->f[l->n - 1].pattern)
		return -EINVAL;
	l->f[l->n - 1].has_domain = true;
	l->f[l->n - 1].domain = domain;
	return 0;
}

int filter_add_domain(struct filter_list *l, bool inclusive, uint32_t domain)
{
	struct filter *f = append(l);

	if (!f)
		return -ENOMEM;
	f->inclusive = inclusive;
	f->has_domain = true;
	f->domain = domain;
	return 0;
}

void filter_list_free(struct filter_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->f[i].pattern);
	free(l->f);
	l->f = NULL;
	l->n = 0;
}

/* Filter._match_frame_impl */
static bool frame_matches(const struct filter *f, const char *filename, uint32_t lineno)
{
	size_t n = strlen(filename);
	bool match;

	if (n >= 4 && !strcmp(filename + n - 4, ".pyc")) {
		char *norm = normalize(filename);

		match = norm && !fnmatch(f->pattern, norm, 0);
		free(norm);
	} else {
		match = !fnmatch(f->pattern, filename, 0);
	}
	return match && (!f->lineno || lineno == f->lineno);
}

/* Filter._match / DomainFilter._match: true when the filter lets the trace
 * through (for an exclusive filter, when it does not reject it). */
static bool filter_passes(const struct snapshot *s, const struct filter *f,
			  const struct snapshot_trace *t)
{
	const struct snapshot_traceback *tb = &s->tracebacks[t->traceback];
	bool res = false;

	if (!f->pattern)
		return (t->domain == f->domain) == f->inclusive;
	if (!tb->nframe) {
		/* tracemalloc's traceback is never empty: (<unknown>, 0) */
		res = frame_matches(f, "<unknown>", 0) == f->inclusive;
	} else if (f->all_frames) {
		bool any = false;

		for (uint32_t i = 0; i < tb->nframe && !any; i++) {
			const struct snapshot_frame *fr = snapshot_frame_at(s, tb, i);

			any = frame_matches(f, snapshot_string(s, fr->filename), fr->lineno);
		}
		res = any == f->inclusive;
	} else {
		const struct snapshot_frame *fr = snapshot_frame_at(s, tb, 0);

		res =
		    frame_matches(f, snapshot_string(s, fr->filename), fr->lineno) == f->inclusive;
	}
	if (f->has_domain)
		return f->inclusive ? res && t->domain == f->domain : res || t->domain != f->domain;
	return res;
}

bool filter_keeps(const struct snapshot *s, const struct filter_list *l,
		  const struct snapshot_trace *t)
{
	bool any_inclusive = false, included = false;

	for (size_t i = 0; i < l->n; i++) {
		const struct filter *f = &l->f[i];

		if (f->inclusive) {
			any_inclusive = true;
			if (!included && filter_passes(s, f, t))
				included = true;
		} else if (!filter_passes(s, f, t)) {
			return false;
		}
	}
	return !any_inclusive || included;
}

static int64_t copy_traceback(struct snapshot *out, const struct snapshot *in, uint32_t idx)
{
	const struct snapshot_traceback *tb = &in->tracebacks[idx];
	uint32_t *ids = malloc((tb->nframe ? tb->nframe : 1) * sizeof(*ids));
	int64_t r = 0;

	if (!ids)
		return -ENOMEM;
	for (uint32_t i = 0; i < tb->nframe && r >= 0; i++) {
		const struct snapshot_frame *f = snapshot_frame_at(in, tb, i);

		/* mappings were copied first, in order: their indices are kept */
		r = snapshot_intern_native_frame(out, snapshot_string(in, f->filename), f->lineno,
						 snapshot_string(in, f->function), f->mapping,
						 f->address, f->function_offset);
		ids[i] = (uint32_t)r;
	}
	if (r >= 0)
		r = snapshot_intern_traceback(out, ids, tb->nframe, tb->total_nframe);
	free(ids);
	return r;
}

/* Which traces and sites a copy keeps. */
struct keep {
	const struct filter_list *l; /* filter_traces(l); NULL: every one */
	uint64_t min_age_ns;	     /* and those at least this old */
};

static bool keeps_trace(const struct snapshot *in, const struct keep *k,
			const struct snapshot_trace *t)
{
	return (!k->l || filter_keeps(in, k->l, t)) && t->age_ns >= k->min_age_ns;
}

/* A site is kept as a trace of its traceback and domain would be. */
static bool keeps_site(const struct snapshot *in, const struct keep *k,
		       const struct snapshot_site *site)
{
	struct snapshot_trace t = {.domain = site->domain, .traceback = site->traceback};

	return !k->l || filter_keeps(in, k->l, &t);
}

static int copy_snapshot(const struct snapshot *in, const struct keep *k, struct snapshot **out);

int filter_snapshot(const struct snapshot *in, const struct filter_list *l, struct snapshot **out)
{
	struct keep k = {.l = l};

	return copy_snapshot(in, &k, out);
}

int filter_older_than(const struct snapshot *in, uint64_t min_age_ns, struct snapshot **out)
{
	struct keep k = {.min_age_ns = min_age_ns};

	if (!in->ages_known)
		return -EINVAL;
	return copy_snapshot(in, &k, out);
}

static int copy_snapshot(const struct snapshot *in, const struct keep *k, struct snapshot **out)
{
	struct snapshot *s = snapshot_new();
	int64_t *tb_map = malloc((in->ntracebacks ? in->ntracebacks : 1) * sizeof(*tb_map));
	int64_t cmd, host;
	int err = 0;

	if (!s || !tb_map) {
		err = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < in->ntracebacks; i++)
		tb_map[i] = -1;
	s->traceback_limit = in->traceback_limit;
	s->traced_current = in->traced_current;
	s->traced_peak = in->traced_peak;
	s->domain_memory_known = in->domain_memory_known;
	memcpy(s->domain_memory, in->domain_memory, sizeof(s->domain_memory));
	s->tracer_memory = in->tracer_memory;
	s->taken_at = in->taken_at;
	s->duration_ns = in->duration_ns;
	s->budget = in->budget;
	s->alloc_events = in->alloc_events;
	s->free_events = in->free_events;
	s->target = in->target;
	cmd = snapshot_intern_string(s, snapshot_string(in, in->target.command) ?: "");
	host = snapshot_intern_string(s, snapshot_string(in, in->target.host) ?: "");
	if (cmd < 0 || host < 0) {
		err = -ENOMEM;
		goto out;
	}
	s->target.command = (uint32_t)cmd;
	s->target.host = (uint32_t)host;
	for (uint32_t i = 0; i < in->nmappings && !err; i++) {
		const struct snapshot_mapping *m = &in->mappings[i];
		int64_t r = snapshot_intern_mapping(s, snapshot_string(in, m->path),
						    snapshot_string(in, m->build_id), m->start,
						    m->limit, m->file_offset);

		if (r < 0)
			err = (int)r;
		else if (r != i)
			err = -EINVAL; /* two equal mappings: not an interned table */
	}
	for (uint32_t i = 0; i < in->ncounters && !err; i++)
		err = snapshot_set_counter(s, snapshot_string(in, in->counters[i].name),
					   in->counters[i].value);
	for (uint64_t i = 0; i < in->ntraces && !err; i++) {
		const struct snapshot_trace *t = &in->traces[i];

		if (!keeps_trace(in, k, t))
			continue;
		if (tb_map[t->traceback] < 0)
			tb_map[t->traceback] = copy_traceback(s, in, t->traceback);
		if (tb_map[t->traceback] < 0)
			err = (int)tb_map[t->traceback];
		else
			err = snapshot_add_trace(s, t->address, t->size, t->domain,
						 (uint32_t)tb_map[t->traceback]);
		if (!err)
			s->traces[s->ntraces - 1].age_ns = t->age_ns;
	}
	s->ages_known = in->ages_known;
	s->sites_known = in->sites_known;
	if (!err && in->nsites) {
		/* renumbered, so no longer in order: added sorted at once */
		struct snapshot_site *sites = malloc(in->nsites * sizeof(*sites));
		size_t n = 0;

		if (!sites)
			err = -ENOMEM;
		for (uint32_t i = 0; i < in->nsites && !err; i++) {
			struct snapshot_site site = in->sites[i];

			if (!keeps_site(in, k, &site))
				continue;
			if (tb_map[site.traceback] < 0)
				tb_map[site.traceback] = copy_traceback(s, in, site.traceback);
			if (tb_map[site.traceback] < 0) {
				err = (int)tb_map[site.traceback];
				break;
			}
			site.traceback = (uint32_t)tb_map[site.traceback];
			sites[n++] = site;
		}
		if (!err)
			err = snapshot_add_sites(s, sites, n);
		free(sites);
	}
out:
	free(tb_map);
	if (err) {
		snapshot_free(s);
		return err;
	}
	*out = s;
	return 0;
}

int filter_set_apply(const struct snapshot *in, const struct filter_set *fs, struct snapshot **out)
{
	struct snapshot *mid;
	int err;

	if (!fs->domains.n)
		return filter_snapshot(in, &fs->rest, out);
	err = filter_snapshot(in, &fs->domains, &mid);
	if (err)
		return err;
	err = filter_snapshot(mid, &fs->rest, out);
	snapshot_free(mid);
	return err;
}

void filter_set_free(struct filter_set *fs)
{
	filter_list_free(&fs->domains);
	filter_list_free(&fs->rest);
}
