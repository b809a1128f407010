#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/delta.h"
#include "model/stats.h"
#include "util/hash.h"
#include "util/util.h"

struct group {
	uint64_t hash;
	struct stats_frame *key;
	uint32_t nkey;
	uint64_t size, count;	      /* new (or only) snapshot, the source's */
	uint64_t old_size, old_count; /* compare: old snapshot */
	struct stats_figures all;     /* new (or only) snapshot, every source's */
	bool is_process;	      /* a 'process' key: proc says which */
	struct stats_process proc;
};

struct grouping {
	struct group *groups;
	size_t n, cap;
	struct hash_index index;   /* key hash -> group */
	struct stats_frame **pool; /* key arrays, freed with the list */
	size_t npool, cappool;
	char **owned; /* strings made here (a target's comm), freed with it */
	size_t nowned, capowned;
};

static uint64_t hash_frame(uint64_t h, const char *filename, uint32_t lineno)
{
	for (; *filename; filename++)
		h = (h ^ (unsigned char)*filename) * 1099511628211ull;
	h = (h ^ lineno) * 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 29);
}

struct group_key {
	const struct stats_frame *frames;
	uint32_t n;
};

static bool key_eq(const void *ctx, uint32_t entry, const void *key)
{
	const struct group *g = &((const struct grouping *)ctx)->groups[entry];
	const struct group_key *k = key;
	uint32_t i;

	if (g->nkey != k->n)
		return false;
	for (i = 0; i < k->n; i++)
		if (g->key[i].lineno != k->frames[i].lineno ||
		    strcmp(g->key[i].filename, k->frames[i].filename))
			return false;
	return true;
}

/* The group of key (n frames, most recent first); created when new. */
static int64_t group_of(struct grouping *gr, const struct stats_frame *key, uint32_t n)
{
	uint64_t h = 1469598103934665603ull;
	const struct group_key k = {key, n};
	struct stats_frame *copy;
	struct group *g;
	int64_t found;
	uint32_t i;
	size_t pos;

	for (i = 0; i < n; i++)
		h = hash_frame(h, key[i].filename, key[i].lineno);
	if (hash_index_reserve(&gr->index))
		return -ENOMEM;
	found = hash_index_find(&gr->index, h, key_eq, gr, &k, &pos);
	if (found >= 0)
		return found;
	if (array_reserve((void **)&gr->groups, &gr->cap, sizeof(*gr->groups), gr->n + 1) ||
	    array_reserve((void **)&gr->pool, &gr->cappool, sizeof(*gr->pool), gr->npool + 1))
		return -ENOMEM;
	copy = malloc((n ? n : 1) * sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	if (n) /* key is NULL for an empty traceback */
		memcpy(copy, key, n * sizeof(*copy));
	gr->pool[gr->npool++] = copy;
	g = &gr->groups[gr->n];
	memset(g, 0, sizeof(*g));
	g->hash = h;
	g->key = copy;
	g->nkey = n;
	hash_index_put(&gr->index, pos, h, (uint32_t)gr->n);
	return (int64_t)gr->n++;
}

static struct stats_frame key_frame(const struct snapshot *s, const struct snapshot_frame *f,
				    enum stats_key key)
{
	const struct snapshot_mapping *fm = snapshot_frame_mapping(s, f);
	const struct snapshot_mapping *m = f->lineno ? NULL : fm;
	struct stats_frame k = {
	    .filename = s->strings[f->filename],
	    .lineno = key == STATS_KEY_FILENAME ? 0 : f->lineno,
	    .function = key == STATS_KEY_FILENAME ? NULL : snapshot_string(s, f->function),
	    .module = fm ? snapshot_string(s, fm->path) : NULL,
	};

	/* a native frame without a source line: its file is its binary, and
	 * its line is where in it (the filename's offset) */
	if (m && key == STATS_KEY_FILENAME) {
		k.filename = snapshot_string(s, m->path);
	} else if (m) {
		k.binary = snapshot_string(s, m->path);
		k.function_offset = k.function ? f->function_offset : 0;
	}
	return k;
}

struct stats_frame stats_frame_of(const struct snapshot *s, const struct snapshot_frame *f)
{
	return key_frame(s, f, STATS_KEY_LINENO);
}

/* A traceback's figures, counted by source into size and count. */
struct tb_figures {
	uint64_t size, count;
	struct stats_figures all;
};

static void accumulate(struct group *g, bool old, const struct tb_figures *f)
{
	if (old) {
		g->old_size += f->size;
		g->old_count += f->count;
		return;
	}
	g->size += f->size;
	g->count += f->count;
	g->all.size += f->all.size;
	g->all.count += f->all.count;
	g->all.peak_size += f->all.peak_size;
	g->all.peak_count += f->all.peak_count;
	g->all.alloc_size += f->all.alloc_size;
	g->all.alloc_count += f->all.alloc_count;
	g->all.temp_size += f->all.temp_size;
	g->all.temp_count += f->all.temp_count;
	if (f->all.max_age_ns > g->all.max_age_ns)
		g->all.max_age_ns = f->all.max_age_ns;
}

/* The source's figures of f->all into f->size and f->count. */
static void select_source(struct tb_figures *f, enum stats_source source)
{
	const struct stats_figures *a = &f->all;

	switch (source) {
	case STATS_SOURCE_LIVE:
		f->size = a->size, f->count = a->count;
		break;
	case STATS_SOURCE_PEAK:
		f->size = a->peak_size, f->count = a->peak_count;
		break;
	case STATS_SOURCE_ALLOCATIONS:
		f->size = a->alloc_size, f->count = a->alloc_count;
		break;
	case STATS_SOURCE_TEMPORARY:
		f->size = a->temp_size, f->count = a->temp_count;
		break;
	}
}

/* Whether a trace's or site's process is the one counted. */
static bool counted(uint32_t process, uint32_t only)
{
	return only == STATS_EVERY_PROCESS || process == only;
}

/* Figures indexed by slot (a traceback, or a process), from the traces and
 * sites of process only (or every one); a slot out of range is skipped. */
static struct tb_figures *figures_by(const struct snapshot *s, enum stats_source source,
				     uint32_t only, bool by_process, size_t nslots)
{
	struct tb_figures *f = calloc(nslots ? nslots : 1, sizeof(*f));
	uint64_t k;

	if (!f)
		return NULL;
	for (k = 0; k < s->ntraces; k++) {
		const struct snapshot_trace *t = &s->traces[k];
		size_t slot = by_process ? t->process : t->traceback;
		struct stats_figures *a;

		if (!counted(t->process, only) || slot >= nslots)
			continue;
		a = &f[slot].all;
		a->size += t->size;
		a->count++;
		if (t->age_ns > a->max_age_ns)
			a->max_age_ns = t->age_ns;
	}
	for (k = 0; k < s->nsites; k++) {
		const struct snapshot_site *site = &s->sites[k];
		size_t slot = by_process ? site->process : site->traceback;
		struct stats_figures *a;

		if (!counted(site->process, only) || slot >= nslots)
			continue;
		a = &f[slot].all;
		a->peak_size += site->peak_bytes;
		a->peak_count += site->peak_count;
		a->alloc_size += site->alloc_bytes;
		a->alloc_count += site->alloc_count;
		a->temp_size += site->temp_bytes;
		a->temp_count += site->temp_count;
	}
	for (k = 0; k < nslots; k++)
		select_source(&f[k], source);
	return f;
}

/* The process of a snapshot's slot as a key says it: a process of the
 * table, or a single-process snapshot's target (its comm made here). */
static int process_key(struct grouping *gr, const struct snapshot *s, uint32_t i,
		       struct stats_process *out)
{
	const struct snapshot_process *p = snapshot_process_at(s, i);
	char comm[SNAPSHOT_COMM_LEN];

	if (p) {
		*out = (struct stats_process){.pid = p->pid,
					      .ns_pid = p->ns_pid,
					      .comm = snapshot_string(s, p->comm),
					      .command = snapshot_string(s, p->command),
					      .cgroup = snapshot_string(s, p->cgroup),
					      .runtime = snapshot_string(s, p->runtime),
					      .flags = p->flags,
					      .start_time = p->start_time};
		return 0;
	}
	*out = (struct stats_process){.pid = s->target.pid,
				      .command = snapshot_string(s, s->target.command),
				      .start_time = s->target.start_time};
	snapshot_comm(s, comm);
	if (!comm[0])
		return 0;
	if (array_reserve((void **)&gr->owned, &gr->capowned, sizeof(*gr->owned),
			  gr->nowned + 1))
		return -ENOMEM;
	gr->owned[gr->nowned] = strdup(comm);
	if (!gr->owned[gr->nowned])
		return -ENOMEM;
	out->comm = gr->owned[gr->nowned++];
	return 0;
}

/* 'process': a group per process (the same in two snapshots when pid and
 * start time are), of the processes the source counts. */
static int add_processes(struct grouping *gr, const struct snapshot *s, enum stats_source source,
			 uint32_t only, bool old)
{
	size_t n = s->nprocesses ? s->nprocesses : 1, i, g;
	struct tb_figures *fig = figures_by(s, source, only, true, n);
	int err = 0;

	if (!fig)
		return -ENOMEM;
	for (i = 0; i < n && !err; i++) {
		struct stats_process key;

		if (!fig[i].count)
			continue;
		err = process_key(gr, s, (uint32_t)i, &key);
		if (err)
			break;
		for (g = 0; g < gr->n; g++)
			if (gr->groups[g].proc.pid == key.pid &&
			    gr->groups[g].proc.start_time == key.start_time)
				break;
		if (g == gr->n) {
			if (array_reserve((void **)&gr->groups, &gr->cap, sizeof(*gr->groups),
					  gr->n + 1)) {
				err = -ENOMEM;
				break;
			}
			memset(&gr->groups[g], 0, sizeof(gr->groups[g]));
			gr->groups[g].is_process = true;
			gr->groups[g].proc = key;
			gr->n++;
		}
		accumulate(&gr->groups[g], old, &fig[i]);
	}
	free(fig);
	return err;
}

/* Adds every traceback of s that the source counts to its group(s); old
 * selects the columns. */
static int add_snapshot(struct grouping *gr, const struct snapshot *s, enum stats_source source,
			uint32_t only, enum stats_key key, bool cumulative, bool old)
{
	struct tb_figures *fig;
	struct stats_frame *kf = NULL;
	uint32_t t, i, cap = 0;
	int err = 0;

	if (key == STATS_KEY_PROCESS)
		return add_processes(gr, s, source, only, old);
	fig = figures_by(s, source, only, false, s->ntracebacks);
	if (!fig) {
		err = -ENOMEM;
		goto out;
	}
	/* traces with the same traceback group together whatever the key */
	for (t = 0; t < s->ntracebacks; t++) {
		const struct snapshot_traceback *tb = &s->tracebacks[t];
		uint32_t nk;

		if (!fig[t].count)
			continue;
		if (!tb->nframe) {
			/* tracemalloc's traceback is never empty: it says <unknown>:0 */
			static const struct stats_frame unknown = {"<unknown>", 0, NULL};
			int64_t g = group_of(gr, &unknown, 1);

			if (g < 0) {
				err = (int)g;
				goto out;
			}
			accumulate(&gr->groups[g], old, &fig[t]);
			continue;
		}
		if (tb->nframe > cap) {
			cap = tb->nframe;
			free(kf);
			kf = malloc(cap * sizeof(*kf));
			if (!kf) {
				err = -ENOMEM;
				goto out;
			}
		}
		if (key == STATS_KEY_TRACEBACK) {
			for (i = 0; i < tb->nframe; i++)
				kf[i] = key_frame(s, snapshot_frame_at(s, tb, i), key);
			nk = tb->nframe;
		} else {
			nk = cumulative ? tb->nframe : 1;
			for (i = 0; i < nk; i++)
				kf[i] = key_frame(s, snapshot_frame_at(s, tb, i), key);
		}
		if (key == STATS_KEY_TRACEBACK || !cumulative) {
			int64_t g = group_of(gr, kf, nk);

			if (g < 0) {
				err = (int)g;
				goto out;
			}
			accumulate(&gr->groups[g], old, &fig[t]);
			continue;
		}
		/* cumulative: every stored frame counts, duplicates included */
		for (i = 0; i < nk; i++) {
			int64_t g = group_of(gr, &kf[i], 1);

			if (g < 0) {
				err = (int)g;
				goto out;
			}
			accumulate(&gr->groups[g], old, &fig[t]);
		}
	}
out:
	free(kf);
	free(fig);
	return err;
}

/* Oldest-first tuple comparison of (filename, lineno) pairs. */
static int cmp_traceback(const struct stats_entry *a, const struct stats_entry *b)
{
	uint32_t i, n = a->nkey < b->nkey ? a->nkey : b->nkey;

	for (i = 0; i < n; i++) {
		const struct stats_frame *x = &a->key[a->nkey - 1 - i],
					 *y = &b->key[b->nkey - 1 - i];
		int c = strcmp(x->filename, y->filename);

		if (c)
			return c;
		if (x->lineno != y->lineno)
			return x->lineno < y->lineno ? -1 : 1;
	}
	return a->nkey < b->nkey ? -1 : a->nkey > b->nkey;
}

/* Equal figures: tracemalloc's reverse traceback order; processes by pid. */
static int tie(const struct stats_entry *a, const struct stats_entry *b)
{
	if (a->process && b->process) {
		if (a->process->pid != b->process->pid)
			return a->process->pid < b->process->pid ? -1 : 1;
		return a->process->start_time < b->process->start_time
			   ? -1
			   : a->process->start_time > b->process->start_time;
	}
	return -cmp_traceback(a, b);
}

#define CMP(x, y)                                                                                  \
	do {                                                                                       \
		if ((x) != (y))                                                                    \
			return (x) < (y) ? 1 : -1; /* descending */                                \
	} while (0)

static int cmp_stat(const void *pa, const void *pb)
{
	const struct stats_entry *a = pa, *b = pb;

	CMP(a->size, b->size);
	CMP(a->count, b->count);
	return tie(a, b);
}

/* allocations and temporaries: the busiest first */
static int cmp_count(const void *pa, const void *pb)
{
	const struct stats_entry *a = pa, *b = pb;

	CMP(a->count, b->count);
	CMP(a->size, b->size);
	return tie(a, b);
}

static uint64_t uabs(int64_t v)
{
	return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
}

static int cmp_diff(const void *pa, const void *pb)
{
	const struct stats_entry *a = pa, *b = pb;

	CMP(uabs(a->size_diff), uabs(b->size_diff));
	CMP(a->size, b->size);
	CMP(uabs(a->count_diff), uabs(b->count_diff));
	CMP(a->count, b->count);
	return tie(a, b);
}

struct storage {
	struct stats_frame **pool;
	size_t npool;
	char **owned;
	size_t nowned;
	struct stats_process *procs;
};

static void grouping_free(struct grouping *gr);

static int finish(struct grouping *gr, bool diff, enum stats_source source,
		  struct stats_list *out)
{
	struct storage *st = calloc(1, sizeof(*st));
	struct stats_process *procs = calloc(gr->n ? gr->n : 1, sizeof(*procs));
	size_t i;

	memset(out, 0, sizeof(*out));
	out->entries = calloc(gr->n ? gr->n : 1, sizeof(*out->entries));
	if (!st || !out->entries || !procs) {
		free(st);
		free(out->entries);
		free(procs);
		out->entries = NULL;
		grouping_free(gr);
		return -ENOMEM;
	}
	hash_index_free(&gr->index);
	for (i = 0; i < gr->n; i++) {
		struct group *g = &gr->groups[i];
		struct stats_entry *e = &out->entries[i];

		e->key = g->key;
		e->nkey = g->nkey;
		e->size = g->size;
		e->count = g->count;
		e->all = g->all;
		if (g->is_process) {
			procs[i] = g->proc;
			e->process = &procs[i];
		}
		if (diff) {
			e->size_diff = (int64_t)g->size - (int64_t)g->old_size;
			e->count_diff = (int64_t)g->count - (int64_t)g->old_count;
		}
	}
	out->n = gr->n;
	qsort(out->entries, out->n, sizeof(*out->entries),
	      diff ? cmp_diff
		   : source == STATS_SOURCE_ALLOCATIONS || source == STATS_SOURCE_TEMPORARY
			 ? cmp_count
			 : cmp_stat);
	st->pool = gr->pool;
	st->npool = gr->npool;
	st->owned = gr->owned;
	st->nowned = gr->nowned;
	st->procs = procs;
	out->storage = st;
	free(gr->groups);
	return 0;
}

static void grouping_free(struct grouping *gr)
{
	size_t i;

	for (i = 0; i < gr->npool; i++)
		free(gr->pool[i]);
	free(gr->pool);
	for (i = 0; i < gr->nowned; i++)
		free(gr->owned[i]);
	free(gr->owned);
	free(gr->groups);
	hash_index_free(&gr->index);
}

int stats_compute_process(const struct snapshot *s, uint32_t process, enum stats_source source,
			  enum stats_key key, bool cumulative, struct stats_list *out)
{
	struct grouping gr = {};
	int err;

	if (cumulative && (key == STATS_KEY_TRACEBACK || key == STATS_KEY_PROCESS))
		return -EINVAL;
	err = add_snapshot(&gr, s, source, process, key, cumulative, false);
	if (err) {
		grouping_free(&gr);
		return err;
	}
	return finish(&gr, false, source, out);
}

int stats_compute_source(const struct snapshot *s, enum stats_source source, enum stats_key key,
			 bool cumulative, struct stats_list *out)
{
	return stats_compute_process(s, STATS_EVERY_PROCESS, source, key, cumulative, out);
}

int stats_compute(const struct snapshot *s, enum stats_key key, bool cumulative,
		  struct stats_list *out)
{
	return stats_compute_source(s, STATS_SOURCE_LIVE, key, cumulative, out);
}

int stats_compare_source(const struct snapshot *new_snap, const struct snapshot *old_snap,
			 enum stats_source source, enum stats_key key, bool cumulative,
			 struct stats_list *out)
{
	struct grouping gr = {};
	int err;

	if (cumulative && (key == STATS_KEY_TRACEBACK || key == STATS_KEY_PROCESS))
		return -EINVAL;
	err = add_snapshot(&gr, new_snap, source, STATS_EVERY_PROCESS, key, cumulative, false);
	if (!err)
		err = add_snapshot(&gr, old_snap, source, STATS_EVERY_PROCESS, key, cumulative,
				   true);
	if (err) {
		grouping_free(&gr);
		return err;
	}
	return finish(&gr, true, source, out);
}

int stats_compare(const struct snapshot *new_snap, const struct snapshot *old_snap,
		  enum stats_key key, bool cumulative, struct stats_list *out)
{
	return stats_compare_source(new_snap, old_snap, STATS_SOURCE_LIVE, key, cumulative, out);
}

void stats_list_free(struct stats_list *l)
{
	struct storage *st = l->storage;
	size_t i;

	if (st) {
		for (i = 0; i < st->npool; i++)
			free(st->pool[i]);
		free(st->pool);
		for (i = 0; i < st->nowned; i++)
			free(st->owned[i]);
		free(st->owned);
		free(st->procs);
		free(st);
	}
	free(l->entries);
	memset(l, 0, sizeof(*l));
}

static const char *const key_names[] = {
    [STATS_KEY_FILENAME] = "filename",
    [STATS_KEY_LINENO] = "lineno",
    [STATS_KEY_TRACEBACK] = "traceback",
    [STATS_KEY_PROCESS] = "process",
};

int stats_parse_key(const char *name, enum stats_key *key)
{
	int i;

	for (i = 0; i < (int)ARRAY_SIZE(key_names); i++)
		if (!strcmp(name, key_names[i])) {
			*key = (enum stats_key)i;
			return 0;
		}
	return -EINVAL;
}

const char *stats_key_name(enum stats_key key)
{
	return key <= STATS_KEY_PROCESS ? key_names[key] : "?";
}

const char *stats_process_title(const struct stats_process *p, char *buf, size_t len)
{
	if (p->comm && p->comm[0])
		snprintf(buf, len, "pid %d (%s)", (int)p->pid, p->comm);
	else
		snprintf(buf, len, "pid %d", (int)p->pid);
	return buf;
}

static const char *const source_names[] = {
    [STATS_SOURCE_LIVE] = "size",
    [STATS_SOURCE_PEAK] = "peak",
    [STATS_SOURCE_ALLOCATIONS] = "allocations",
    [STATS_SOURCE_TEMPORARY] = "temporary",
};

int stats_parse_source(const char *name, enum stats_source *source)
{
	for (int i = 0; i < (int)(sizeof(source_names) / sizeof(source_names[0])); i++)
		if (!strcmp(name, source_names[i])) {
			*source = (enum stats_source)i;
			return 0;
		}
	return -EINVAL;
}

const char *stats_source_name(enum stats_source source)
{
	return source <= STATS_SOURCE_TEMPORARY ? source_names[source] : "?";
}
