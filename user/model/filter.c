#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "model/delta.h"
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
	/* per process of in: its index in the copy + 1, 0 when dropped;
	 * NULL: every one, as it is */
	const uint32_t *process_map;
	bool none; /* a snapshot of one process that is not kept */
};

static bool keeps_process(const struct keep *k, uint32_t process)
{
	return !k->none && (!k->process_map || k->process_map[process]);
}

static bool keeps_trace(const struct snapshot *in, const struct keep *k,
			const struct snapshot_trace *t)
{
	return keeps_process(k, t->process) && (!k->l || filter_keeps(in, k->l, t)) &&
	       t->age_ns >= k->min_age_ns;
}

/* A site is kept as a trace of its traceback, domain and process would be. */
static bool keeps_site(const struct snapshot *in, const struct keep *k,
		       const struct snapshot_site *site)
{
	struct snapshot_trace t = {.domain = site->domain, .traceback = site->traceback};

	return keeps_process(k, site->process) && (!k->l || filter_keeps(in, k->l, &t));
}

static uint32_t process_in_copy(const struct keep *k, uint32_t process)
{
	return k->process_map ? k->process_map[process] - 1 : process;
}

/* A string of in interned into out; SNAPSHOT_NO_STRING stays none. */
static int copy_string(struct snapshot *out, const struct snapshot *in, uint32_t *idx)
{
	const char *str = snapshot_string(in, *idx);
	int64_t r;

	if (!str) {
		*idx = SNAPSHOT_NO_STRING;
		return 0;
	}
	r = snapshot_intern_string(out, str);
	if (r < 0)
		return (int)r;
	*idx = (uint32_t)r;
	return 0;
}

/* The processes k keeps, their strings interned into s; when some are
 * dropped, s's header figures become the sums of the kept ones'. */
static int copy_processes(struct snapshot *s, const struct snapshot *in, const struct keep *k)
{
	bool subset = false;
	int err = 0;

	for (uint32_t i = 0; i < in->nprocesses && !err; i++) {
		struct snapshot_process p = in->processes[i];
		int64_t r;

		if (!keeps_process(k, i)) {
			subset = true;
			continue;
		}
		if ((err = copy_string(s, in, &p.command)) || (err = copy_string(s, in, &p.comm)) ||
		    (err = copy_string(s, in, &p.cgroup)) || (err = copy_string(s, in, &p.runtime)))
			break;
		r = snapshot_add_process(s, &p);
		if (r < 0)
			err = (int)r;
		else if ((uint32_t)r != process_in_copy(k, i))
			err = -EINVAL;
	}
	if (err || !(subset || k->none))
		return err;
	s->traced_current = s->traced_peak = s->alloc_events = s->free_events = 0;
	memset(s->domain_memory, 0, sizeof(s->domain_memory));
	for (uint32_t i = 0; i < s->nprocesses; i++) {
		const struct snapshot_process *p = &s->processes[i];

		s->traced_current += p->traced_current;
		s->traced_peak += p->traced_peak;
		s->alloc_events += p->alloc_events;
		s->free_events += p->free_events;
		for (int c = 0; c < SNAPSHOT_NCLASSES; c++) {
			s->domain_memory[c].current += p->domain_memory[c].current;
			s->domain_memory[c].peak += p->domain_memory[c].peak;
		}
	}
	return 0;
}

/* pf's comm against a process's: the kernel keeps 15 bytes of it */
static bool comm_matches(const char *want, const char *comm)
{
	return comm && (!strcmp(want, comm) ||
			(strlen(want) > SNAPSHOT_COMM_LEN - 1 && strlen(comm) == SNAPSHOT_COMM_LEN - 1 &&
			 !strncmp(want, comm, SNAPSHOT_COMM_LEN - 1)));
}

bool process_filter_matches(const struct snapshot *s, const struct process_filter *pf,
			    uint32_t i)
{
	const struct snapshot_process *p = snapshot_process_at(s, i);
	char buf[SNAPSHOT_COMM_LEN];
	const char *comm = p ? snapshot_string(s, p->comm) : snapshot_comm(s, buf);
	int32_t pid = p ? p->pid : s->target.pid;

	for (size_t k = 0; k < pf->npids; k++)
		if (pf->pids[k] == pid)
			return true;
	for (size_t k = 0; k < pf->ncomms; k++)
		if (comm_matches(pf->comms[k], comm))
			return true;
	return false;
}

int process_filter_add_pid(struct process_filter *pf, int32_t pid)
{
	int32_t *p = realloc(pf->pids, (pf->npids + 1) * sizeof(*p));

	if (!p)
		return -ENOMEM;
	pf->pids = p;
	p[pf->npids++] = pid;
	return 0;
}

int process_filter_add_comm(struct process_filter *pf, const char *comm)
{
	char **p = realloc(pf->comms, (pf->ncomms + 1) * sizeof(*p));

	if (!*comm)
		return -EINVAL;
	if (!p)
		return -ENOMEM;
	pf->comms = p;
	p[pf->ncomms] = strdup(comm);
	if (!p[pf->ncomms])
		return -ENOMEM;
	pf->ncomms++;
	return 0;
}

void process_filter_free(struct process_filter *pf)
{
	for (size_t i = 0; i < pf->ncomms; i++)
		free(pf->comms[i]);
	free(pf->comms);
	free(pf->pids);
	memset(pf, 0, sizeof(*pf));
}

static int copy_snapshot(const struct snapshot *in, const struct keep *k, struct snapshot **out);

int filter_snapshot(const struct snapshot *in, const struct filter_list *l, struct snapshot **out)
{
	struct keep k = {.l = l};

	return copy_snapshot(in, &k, out);
}

int filter_processes(const struct snapshot *in, const struct process_filter *pf,
		     struct snapshot **out)
{
	struct keep k = {0};
	uint32_t *map = NULL, n = 0;
	int err;

	if (!in->nprocesses) {
		k.none = !process_filter_matches(in, pf, 0);
		return copy_snapshot(in, &k, out);
	}
	map = calloc(in->nprocesses, sizeof(*map));
	if (!map)
		return -ENOMEM;
	for (uint32_t i = 0; i < in->nprocesses; i++)
		if (process_filter_matches(in, pf, i))
			map[i] = ++n;
	k.process_map = map;
	err = copy_snapshot(in, &k, out);
	free(map);
	return err;
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
	if (!err)
		err = copy_processes(s, in, k);
	for (uint64_t i = 0; i < in->ntraces && !err; i++) {
		struct snapshot_trace t = in->traces[i];

		if (!keeps_trace(in, k, &t))
			continue;
		if (tb_map[t.traceback] < 0)
			tb_map[t.traceback] = copy_traceback(s, in, t.traceback);
		if (tb_map[t.traceback] < 0) {
			err = (int)tb_map[t.traceback];
			break;
		}
		t.traceback = (uint32_t)tb_map[t.traceback];
		t.process = process_in_copy(k, t.process);
		err = snapshot_add_trace_of(s, &t, false);
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
			site.process = process_in_copy(k, site.process);
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

static int filter_traces_of(const struct snapshot *in, const struct filter_set *fs,
			    struct snapshot **out)
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

int filter_set_apply(const struct snapshot *in, const struct filter_set *fs, struct snapshot **out)
{
	struct snapshot *mid;
	int err;

	if (process_filter_empty(&fs->processes))
		return filter_traces_of(in, fs, out);
	err = filter_processes(in, &fs->processes, &mid);
	if (err)
		return err;
	err = filter_traces_of(mid, fs, out);
	snapshot_free(mid);
	return err;
}

void filter_set_free(struct filter_set *fs)
{
	process_filter_free(&fs->processes);
	filter_list_free(&fs->domains);
	filter_list_free(&fs->rest);
}
