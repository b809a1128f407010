#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "elfsym.h"
#include "probes.h"
#include "python/alloc.h"
#include "python/frames.h"
#include "session.h"
#include "model/snapfile.h"
#include "model/snapshot.h"
#include "symbolize.h"
#include "target.h"
#include "tracer.h"
#include "tracer.skel.h"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_WARN && getenv("TRACER_DEBUG"))
		return vfprintf(stderr, fmt, ap);
	return 0;
}

static const char *const counter_names[TRACER_CNT_MAX] = {
    [TRACER_CNT_ALLOCS_FULL] = "allocs table full",
    [TRACER_CNT_ALLOCS_FULL_BYTES] = "allocs table full (bytes)",
    [TRACER_CNT_STACK_LOST] = "stack table full or collision",
    [TRACER_CNT_THREAD_LOST] = "thread slot unavailable",
    [TRACER_CNT_RETURN_UNMATCHED] = "return without entry",
    [TRACER_CNT_PROCS_FULL] = "process table full",
    [TRACER_CNT_FAILED_ALLOCS] = "failed allocations (NULL)",
    [TRACER_CNT_UNKNOWN_FREES] = "frees of untraced blocks",
    [TRACER_CNT_PY_UNREADABLE] = "python frames unreadable",
    [TRACER_CNT_PY_STACKS_FULL] = "python stack table full",
};
_Static_assert(sizeof(counter_names) / sizeof(counter_names[0]) == TRACER_CNT_MAX,
	       "every counter has a name");

struct session {
	const struct session_options *o;
	struct tracer_bpf *skel;
	struct probes probes;
	struct symbolizer *sym; /* the target's */
	struct python_frames *py;	/* the target's Python frames, when it runs CPython */
	uint64_t py_unresolved; /* Python frames whose code object was unreadable */
	struct proc_sym {
		pid_t pid;
		struct symbolizer *sym;
	} * children; /* --follow: one symbolizer per traced process */
	size_t nchildren;
	pid_t pid;
	char command[4096];
	uint64_t start_time;
	double started;
	unsigned saved;		/* snapshots written with -o (the %n of the next is saved+1) */
	struct python_alloc pyalloc; /* CPython's allocator tables, once found */
	bool python_alloc_done;
	uint64_t truncated;   /* tracebacks cut at an address outside any code */
	uint64_t ended_early; /* shorter than nframe, not at the stack's bottom */
};

static void read_counters(struct session *s, struct tracer_counters *sum)
{
	int ncpu = libbpf_num_possible_cpus(), i, c;
	struct tracer_counters *per;
	__u32 zero = 0;

	memset(sum, 0, sizeof(*sum));
	if (ncpu <= 0)
		return;
	per = calloc(ncpu, sizeof(*per));
	if (!per)
		return;
	if (!bpf_map_lookup_elem(bpf_map__fd(s->skel->maps.counters), &zero, per))
		for (i = 0; i < ncpu; i++)
			for (c = 0; c < TRACER_CNT_MAX; c++)
				sum->c[c] += per[i].c[c];
	free(per);
}

/* Kernel memory of the maps (as the kernel accounts it) plus our own RSS. */
static uint64_t tracer_memory(struct session *s)
{
	struct bpf_map *m;
	uint64_t total = 0;
	char path[64], line[256];
	long rss_pages = 0;
	FILE *f;

	bpf_object__for_each_map(m, s->skel->obj)
	{
		int fd = bpf_map__fd(m);

		if (fd < 0)
			continue;
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
		f = fopen(path, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			unsigned long long v;

			if (sscanf(line, "memlock: %llu", &v) == 1)
				total += v;
		}
		fclose(f);
	}
	f = fopen("/proc/self/statm", "re");
	if (f) {
		if (fscanf(f, "%*d %ld", &rss_pages) != 1)
			rss_pages = 0;
		fclose(f);
	}
	return total + (uint64_t)rss_pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Frames of one trace: frame 0 from the return probe, deeper ones from the
 * stack map; cut at the first address outside the target's code. */
static struct symbolizer *sym_for(struct session *s, pid_t pid)
{
	struct symbolizer *sym;
	struct proc_sym *p;
	size_t i;

	if (pid == s->pid)
		return s->sym;
	for (i = 0; i < s->nchildren; i++)
		if (s->children[i].pid == pid)
			return s->children[i].sym;
	p = realloc(s->children, (s->nchildren + 1) * sizeof(*p));
	if (!p)
		return NULL;
	s->children = p;
	if (symbolize_open(pid, &sym))
		return NULL;
	p[s->nchildren].pid = pid;
	p[s->nchildren].sym = sym;
	s->nchildren++;
	return sym;
}

/* Reads the mappings of every traced process while they live, so that
 * their frames resolve after they exit. */
static void refresh_all(struct session *s)
{
	int fd = bpf_map__fd(s->skel->maps.traced_pids);
	__u32 key, next, *prev = NULL;
	size_t i;

	symbolize_refresh(s->sym);
	if (!s->o->follow)
		return;
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (target_alive((pid_t)key))
			sym_for(s, (pid_t)key);
	}
	for (i = 0; i < s->nchildren; i++)
		symbolize_refresh(s->children[i].sym);
}

/* The functions where a walk ends because the stack does. */
static bool stack_bottom(const char *fn)
{
	static const char *const bottoms[] = {"_start",
					      "__libc_start_call_main",
					      "__libc_start_main",
					      "start_thread",
					      "clone",
					      "clone3",
					      "__clone",
					      "__clone3"};
	size_t i;

	for (i = 0; fn && i < sizeof(bottoms) / sizeof(bottoms[0]); i++)
		if (!strcmp(fn, bottoms[i]))
			return true;
	return false;
}

/* The interpreter's dispatch functions: with --native, the Python frames
 * take their place in a merged traceback. */
static bool interpreter_frame(const char *fn)
{
	return fn && (!strncmp(fn, "_PyEval_", 8) || !strncmp(fn, "PyEval_", 7));
}

/* Native frames of a trace, most recent first, into ids[*n .. limit): the
 * call site, then the frame-pointer walk. Stops where the walk leaves known
 * code (cut) and, with stop_at_interpreter, at the interpreter's loop. */
static int native_frames(struct session *s, struct snapshot *snap,
			 const struct tracer_alloc_info *info, const __u64 *stack,
			 struct symbolizer *sym, uint32_t *ids, uint32_t *n, uint32_t limit,
			 bool stop_at_interpreter, bool *cut, bool *at_interpreter)
{
	for (uint32_t i = 0; *n < limit; i++) {
		uint64_t ip = i == 0 ? info->ip : (stack && i < s->o->nframe ? stack[i] : 0);
		struct symbolize_frame f;
		int64_t id;

		if (!ip)
			break;
		if (!sym || !symbolize_valid_ip(sym, ip)) {
			if (sym)
				symbolize_refresh(sym);
			if (!sym || !symbolize_valid_ip(sym, ip)) {
				*cut = true;
				break;
			}
		}
		if (symbolize_return_address(sym, ip, &f))
			return -ENOMEM;
		if (stop_at_interpreter && interpreter_frame(f.function)) {
			*at_interpreter = true;
			break;
		}
		id = snapshot_intern_frame(snap, f.filename, f.lineno, f.function);
		if (id < 0)
			return (int)id;
		ids[(*n)++] = (uint32_t)id;
	}
	return 0;
}

static int64_t intern_traceback(struct session *s, struct snapshot *snap, uint32_t tgid,
				const struct tracer_alloc_info *info, const __u64 *stack,
				struct symbolizer *sym)
{
	uint32_t ids[TRACER_MAX_NFRAME];
	uint32_t n = 0, i, limit = s->o->nframe;
	bool cut = false, at_interpreter = false;
	const struct python_frames_stack *py =
	    python_frames_get(tgid == (uint32_t)s->pid ? s->py : NULL, info->py_stack);
	int err;

	/* A thread running Python code: its Python frames, as tracemalloc; with
	 * --native, after the C frames that lead from the interpreter to the
	 * allocator (as far as frame pointers show them). */
	if (py && py->nframe) {
		uint32_t native = 0;

		s->py_unresolved += py->unresolved;
		if (s->o->native) {
			err = native_frames(s, snap, info, stack, sym, ids, &n, limit, true, &cut,
					    &at_interpreter);
			if (err)
				return err;
			native = n;
		}
		for (i = 0; i < py->nframe && n < limit; i++) {
			int64_t id =
			    snapshot_intern_frame(snap, py->frames[i].filename,
						  py->frames[i].lineno, py->frames[i].function);

			if (id < 0)
				return id;
			ids[n++] = (uint32_t)id;
		}
		return snapshot_intern_traceback(
		    snap, ids, n, native + (py->total > py->nframe ? py->total : py->nframe));
	}
	if (info->domain == TRACER_DOMAIN_PYTHON && python_frames_describe(s->py) && !s->o->native) {
		/* a Python allocation by a thread with no Python frame */
		int64_t id = snapshot_intern_frame(snap, "<unknown>", 0, NULL);

		if (id < 0)
			return id;
		ids[0] = (uint32_t)id;
		return snapshot_intern_traceback(snap, ids, 1, 1);
	}
	err =
	    native_frames(s, snap, info, stack, sym, ids, &n, limit, false, &cut, &at_interpreter);
	if (err)
		return err;
	if (n < limit && n > 0 && !cut &&
	    !stack_bottom(snapshot_string(snap, snap->frames[ids[n - 1]].function)))
		s->ended_early++; /* a frame without a frame pointer hid its callers */
	if (cut)
		s->truncated++;
	if (n == 0) {
		int64_t id = snapshot_intern_frame(snap, "<unknown>", 0, NULL);

		if (id < 0)
			return id;
		ids[n++] = (uint32_t)id;
	}
	return snapshot_intern_traceback(snap, ids, n, n);
}

/* Traces with the same (process, call site, stack) share a traceback: most
 * of a large snapshot resolves from here without a syscall or a lookup. */
struct tb_cache_entry {
	uint64_t ip;
	uint64_t py_stack;
	uint32_t tgid;
	int32_t stack_id;
	bool truncated, ended_early; /* counted again for every trace */
	int64_t tb;		     /* -1: empty slot */
};

struct tb_cache {
	struct tb_cache_entry *e;
	size_t cap, n;
};

static struct tb_cache_entry *tb_cache_slot(struct tb_cache *c, uint32_t tgid, uint64_t ip,
					    int32_t stack_id, uint64_t py_stack)
{
	uint64_t h = (ip ^ ((uint64_t)tgid << 32) ^ (uint64_t)(uint32_t)stack_id ^ py_stack) *
		     0x9e3779b97f4a7c15ull;
	size_t i;

	if ((c->n + 1) * 2 > c->cap) {
		struct tb_cache old = *c;
		size_t j;

		c->cap = c->cap ? c->cap * 2 : 4096;
		c->e = malloc(c->cap * sizeof(*c->e));
		if (!c->e) {
			*c = old;
			return NULL;
		}
		for (j = 0; j < c->cap; j++)
			c->e[j].tb = -1;
		c->n = 0;
		for (j = 0; j < old.cap; j++)
			if (old.e[j].tb >= 0)
				*tb_cache_slot(c, old.e[j].tgid, old.e[j].ip, old.e[j].stack_id,
					       old.e[j].py_stack) = old.e[j],
					       c->n++;
		free(old.e);
	}
	for (i = (h >> 17) & (c->cap - 1); c->e[i].tb >= 0; i = (i + 1) & (c->cap - 1))
		if (c->e[i].ip == ip && c->e[i].tgid == tgid && c->e[i].stack_id == stack_id &&
		    c->e[i].py_stack == py_stack)
			break;
	return &c->e[i];
}

/* --follow: which process each index of the allocation keys stands for. */
static pid_t *proc_of_index(struct session *s, uint32_t *n)
{
	int fd = bpf_map__fd(s->skel->maps.traced_pids);
	__u32 key, next, idx, *prev = NULL;
	pid_t *map;

	*n = s->skel->bss->next_proc_index;
	map = calloc(*n + 1, sizeof(*map));
	if (!map)
		return NULL;
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (!bpf_map_lookup_elem(fd, &key, &idx) && idx < *n)
			map[idx] = (pid_t)key;
	}
	return map;
}

/* One live slot of the allocs table into the snapshot. */
static int add_slot(struct session *s, struct snapshot *snap, struct tb_cache *cache,
		    const pid_t *procs, uint32_t nprocs, __u64 key,
		    const struct tracer_alloc_info *info, __u64 *stack)
{
	int sfd = bpf_map__fd(s->skel->maps.stacks);
	uint32_t proc = TRACER_KEY_PROC(key), tgid;
	struct tb_cache_entry *ce;
	bool has_stack;
	int64_t tb;

	if (s->o->follow && proc >= nprocs)
		return 0; /* a process indexed since the map was read */
	tgid = (uint32_t)(s->o->follow ? procs[proc] : s->pid);
	ce = tb_cache_slot(cache, tgid, info->ip, info->stack_id, info->py_stack);
	if (!ce)
		return -ENOMEM;
	if (ce->tb >= 0) {
		tb = ce->tb;
		s->truncated += ce->truncated;
		s->ended_early += ce->ended_early;
	} else {
		uint64_t t0 = s->truncated, e0 = s->ended_early;

		has_stack =
		    info->stack_id >= 0 && !bpf_map_lookup_elem(sfd, &info->stack_id, stack);
		tb = intern_traceback(s, snap, tgid, info, has_stack ? stack : NULL,
				      sym_for(s, (pid_t)tgid));
		if (tb < 0)
			return (int)tb;
		*ce = (struct tb_cache_entry){.ip = info->ip,
					      .py_stack = info->py_stack,
					      .tgid = tgid,
					      .stack_id = info->stack_id,
					      .tb = tb,
					      .truncated = s->truncated != t0,
					      .ended_early = s->ended_early != e0};
		cache->n++;
	}
	return snapshot_add_trace(snap, TRACER_KEY_ADDR(key), info->size, info->domain,
				  (uint32_t)tb);
}

uint32_t session_alloc_buckets(uint32_t max_allocs)
{
	return (uint32_t)(((uint64_t)max_allocs * 5 / 4 + TRACER_BUCKET_SLOTS - 1) /
			  TRACER_BUCKET_SLOTS) +
	       1;
}

uint64_t session_alloc_table_bytes(uint32_t max_allocs)
{
	return (uint64_t)session_alloc_buckets(max_allocs) * sizeof(struct tracer_bucket);
}

/* The blocks that found both their buckets full. */
static int fill_overflow(struct session *s, struct snapshot *snap, struct tb_cache *cache,
			 const pid_t *procs, uint32_t nprocs, __u64 *stack)
{
	int fd = bpf_map__fd(s->skel->maps.allocs_overflow);
	__u64 key, next, *prev = NULL;
	struct tracer_alloc_info info;
	int err;

	if (!s->skel->bss->overflow_used)
		return 0;
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &info))
			continue; /* freed meanwhile */
		err = add_slot(s, snap, cache, procs, nprocs, key, &info, stack);
		if (err)
			return err;
	}
	return 0;
}

static int fill_traces(struct session *s, struct snapshot *snap)
{
	struct tb_cache cache = {};
	int afd = bpf_map__fd(s->skel->maps.allocs);
	uint32_t batch = 4096, count, i, out_batch;
	__u32 *keys = calloc(batch, sizeof(*keys));
	struct tracer_bucket *buckets = calloc(batch, sizeof(*buckets));
	__u64 *stack = calloc(TRACER_MAX_NFRAME, sizeof(__u64));
	uint32_t nprocs = 0;
	pid_t *procs = s->o->follow ? proc_of_index(s, &nprocs) : NULL;
	bool first = true;
	int err = 0;

	if (!keys || !buckets || !stack || (s->o->follow && !procs)) {
		err = -ENOMEM;
		goto out;
	}
	for (;;) {
		LIBBPF_OPTS(bpf_map_batch_opts, opts);
		int r;

		count = batch;
		r = bpf_map_lookup_batch(afd, first ? NULL : &out_batch, &out_batch, keys, buckets,
					 &count, &opts);
		if (r && errno != ENOENT) {
			err = -errno;
			break;
		}
		first = false;
		for (i = 0; i < count; i++)
			for (int j = 0; j < TRACER_BUCKET_SLOTS; j++) {
				const struct tracer_slot *sl = &buckets[i].s[j];

				/* empty, or a block being recorded right now */
				if (!sl->key || (sl->key & TRACER_SLOT_BUSY))
					continue;
				err = add_slot(s, snap, &cache, procs, nprocs, sl->key, &sl->info,
					       stack);
				if (err)
					goto out;
			}
		if (r)
			break; /* ENOENT: that was the last batch */
	}
	err = fill_overflow(s, snap, &cache, procs, nprocs, stack);
out:
	free(procs);
	free(cache.e);
	free(keys);
	free(buckets);
	free(stack);
	return err;
}

static void add_proc_stats(struct snapshot *snap, const struct tracer_proc_stats *st)
{
	snap->traced_current += st->current > 0 ? (uint64_t)st->current : 0;
	snap->traced_peak += st->peak > 0 ? (uint64_t)st->peak : 0;
	snap->alloc_events += st->allocs;
	snap->free_events += st->frees;
}

static struct snapshot *take_snapshot(struct session *s)
{
	int pfd = bpf_map__fd(s->skel->maps.procs);
	struct tracer_counters cnt;
	struct snapshot *snap = snapshot_new();
	struct tracer_proc_stats st;
	char host[256] = "";
	__u32 key, next, *prev = NULL;
	int c, err;

	if (!snap)
		return NULL;
	refresh_all(s);
	python_frames_poll(s->py);
	snap->traceback_limit = s->o->nframe;
	snap->taken_at = (uint64_t)time(NULL);
	snap->duration_ns = (uint64_t)((now_s() - s->started) * 1e9);
	snap->target.pid = s->pid;
	snap->target.start_time = s->start_time;
	gethostname(host, sizeof(host) - 1);
	if (snapshot_intern_string(snap, s->command) < 0 || snapshot_intern_string(snap, host) < 0)
		goto fail;
	snap->target.command = (uint32_t)snapshot_intern_string(snap, s->command);
	snap->target.host = (uint32_t)snapshot_intern_string(snap, host);

	/* traced memory: the target's own, or every traced process with --follow */
	if (!s->o->follow) {
		add_proc_stats(snap, &s->skel->bss->target_stats);
	} else {
		while (!bpf_map_get_next_key(pfd, prev, &next)) {
			key = next;
			prev = &key;
			if (!bpf_map_lookup_elem(pfd, &key, &st))
				add_proc_stats(snap, &st);
		}
	}
	err = fill_traces(s, snap);
	if (err)
		goto fail;
	read_counters(s, &cnt);
	for (c = 0; c < TRACER_CNT_MAX; c++)
		if (snapshot_set_counter(snap, counter_names[c], cnt.c[c]))
			goto fail;
	if (snapshot_set_counter(snap, "python frames unresolved", s->py_unresolved) ||
	    snapshot_set_counter(snap, "stack truncated (address outside code)", s->truncated) ||
	    snapshot_set_counter(snap, "stack ended early (no frame pointer)", s->ended_early))
		goto fail;
	snap->tracer_memory = tracer_memory(s);
	return snap;
fail:
	snapshot_free(snap);
	return NULL;
}

/* -o: the snapshot file of this report, its name expanded from the pattern */
static int save_snapshot(struct session *s, const struct snapshot *snap)
{
	char path[PATH_MAX];
	int err;

	err = snapfile_expand_name(s->o->output, ++s->saved, (long long)snap->taken_at, path,
				   sizeof(path));
	if (!err)
		err = snapfile_write(snap, path);
	if (err)
		fprintf(stderr, "tracer: cannot write snapshot %s: %s\n",
			path[0] ? path : s->o->output, strerror(-err));
	else if (s->o->verbose)
		fprintf(stderr, "tracer: snapshot written to %s\n", path);
	return err;
}

static int report(struct session *s)
{
	struct snapshot *snap;
	int err = 0;

	s->truncated = 0;
	s->ended_early = 0;
	s->py_unresolved = 0;
	snap = take_snapshot(s);
	if (!snap) {
		fprintf(stderr, "tracer: cannot take a snapshot: out of memory\n");
		return -ENOMEM;
	}
	if (s->o->output)
		err = save_snapshot(s, snap);
	if (!err && !filter_set_empty(s->o->filters)) {
		struct snapshot *all = snap;

		err = filter_set_apply(all, s->o->filters, &snap);
		snapshot_free(all);
		if (err)
			snap = NULL;
	}
	if (!err)
		err = report_snapshot(stdout, snap, &s->o->report);
	fflush(stdout);
	snapshot_free(snap);
	return err;
}

static int setup_bpf(struct session *s)
{
	const struct session_options *o = s->o;
	int err;

	s->skel = tracer_bpf__open();
	if (!s->skel) {
		fprintf(stderr, "tracer: cannot open the BPF object: %s\n", strerror(errno));
		return -errno;
	}
	s->skel->rodata->probe_only = o->probe_only;
	s->skel->rodata->filter_pids = o->follow;
	s->skel->rodata->capture_stack = o->nframe > 1;
	s->skel->rodata->native_with_python = o->native;
	s->skel->rodata->py_nframe = o->nframe;
	s->skel->rodata->alloc_buckets = o->probe_only ? 1 : session_alloc_buckets(o->max_allocs);
	s->skel->rodata->max_traces = o->max_allocs;
	bpf_map__set_max_entries(s->skel->maps.allocs, s->skel->rodata->alloc_buckets);
	bpf_map__set_max_entries(s->skel->maps.allocs_overflow,
				 o->probe_only ? 1 : o->max_allocs / 4 + 64);
	if (o->nframe > 1) {
		bpf_map__set_value_size(s->skel->maps.stacks, o->nframe * sizeof(__u64));
		bpf_map__set_max_entries(s->skel->maps.stacks, o->max_stacks);
	}
	if (!o->follow)
		bpf_program__set_autoload(s->skel->progs.follow_fork, false);
	err = tracer_bpf__load(s->skel);
	if (err) {
		fprintf(stderr, "tracer: cannot load the BPF programs: %s\n", strerror(-err));
		return err;
	}
	if (o->follow) {
		err = tracer_bpf__attach(s->skel);
		if (err) {
			fprintf(stderr, "tracer: cannot attach the fork tracepoint: %s\n",
				strerror(-err));
			return err;
		}
	}
	return 0;
}

static int add_traced_pid(struct session *s, pid_t pid)
{
	__u32 key = (uint32_t)pid;
	__u32 idx = __sync_fetch_and_add(&s->skel->bss->next_proc_index, 1);

	return bpf_map_update_elem(bpf_map__fd(s->skel->maps.traced_pids), &key, &idx, BPF_ANY)
		   ? -errno
		   : 0;
}

/* The files a launched command will map are not known before it runs: probe
 * the C library this system uses (ours) and the executable itself, which
 * defines malloc when it is linked statically. */
static void attach_needed(struct session *s, const char *exe, pid_t attach_pid);

static int attach_launch(struct session *s, pid_t attach_pid)
{
	struct target_maps self;
	char exe[PATH_MAX];
	size_t i;
	int err, n = 0, r;

	err = target_read_maps(getpid(), &self);
	if (err)
		return err;
	for (i = 0; i < self.n && !err; i++) {
		const char *p = self.m[i].path;
		const char *base = p ? strrchr(p, '/') + 1 : NULL;

		if (!self.m[i].exec || !p ||
		    (strncmp(base, "libc.so", 7) && strncmp(base, "libc-", 5)))
			continue;
		r = probes_attach_file(s->skel, &s->probes, attach_pid, p, s->o->verbose);
		if (r < 0)
			err = r;
		else
			n += r;
		break;
	}
	target_maps_free(&self);
	if (err)
		return err;
	/* resolve the command like execvp does */
	if (strchr(s->o->argv[0], '/')) {
		snprintf(exe, sizeof(exe), "%s", s->o->argv[0]);
	} else {
		const char *path = getenv("PATH");
		char *dup = strdup(path ? path : "/usr/bin:/bin"), *save = NULL, *dir;

		exe[0] = '\0';
		for (dir = strtok_r(dup, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
			snprintf(exe, sizeof(exe), "%s/%s", dir, s->o->argv[0]);
			if (access(exe, X_OK) == 0)
				break;
			exe[0] = '\0';
		}
		free(dup);
	}
	if (exe[0]) {
		r = probes_attach_file(s->skel, &s->probes, attach_pid, exe, s->o->verbose);
		if (r > 0)
			n += r;
		attach_needed(s, exe, attach_pid);
	}
	return n;
}

struct needed_ctx {
	struct session *s;
	pid_t attach_pid;
	char dirs[8192]; /* ':'-separated search path */
	int probed;
};

/* Finds a needed library the way the dynamic linker would (RUNPATH,
 * LD_LIBRARY_PATH, the system directories) and probes it when it defines
 * allocator functions (libstdc++'s operator new, an allocator library). */
static void probe_needed(const char *name, void *arg)
{
	struct needed_ctx *c = arg;
	char *dirs = strdup(c->dirs), *save = NULL, *dir, path[PATH_MAX];

	if (!dirs || !strncmp(name, "libc.so", 7))
		goto out;
	for (dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		int r;

		snprintf(path, sizeof(path), "%s/%s", dir, name);
		if (access(path, R_OK))
			continue;
		r = probes_attach_file(c->s->skel, &c->s->probes, c->attach_pid, path,
				       c->s->o->verbose);
		if (r > 0)
			c->probed += r;
		break;
	}
out:
	free(dirs);
}

static void attach_needed(struct session *s, const char *exe, pid_t attach_pid)
{
	struct needed_ctx c = {.s = s, .attach_pid = attach_pid};
	struct elfsym_file *f;
	char runpath[4096], origin[PATH_MAX], *slash;
	const char *llp = getenv("LD_LIBRARY_PATH");

	if (elfsym_open(exe, &f))
		return;
	elfsym_needed(f, NULL, NULL, runpath, sizeof(runpath));
	snprintf(origin, sizeof(origin), "%s", exe);
	slash = strrchr(origin, '/');
	if (slash)
		*slash = '\0';
	if (!strncmp(runpath, "$ORIGIN", 7))
		snprintf(c.dirs, sizeof(c.dirs), "%s%s:", origin, runpath + 7);
	else if (runpath[0])
		snprintf(c.dirs, sizeof(c.dirs), "%s:", runpath);
	snprintf(
	    c.dirs + strlen(c.dirs), sizeof(c.dirs) - strlen(c.dirs),
	    "%s%s/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:/lib64:/usr/lib64:/lib:/usr/lib",
	    llp ? llp : "", llp ? ":" : "");
	elfsym_needed(f, probe_needed, &c, NULL, 0);
	elfsym_close(f);
}

/* Launched commands (and with --follow their children) are ptrace-seized
 * for one reason: to stop at their exit while their mappings still exist.
 * Every other stop is resumed at once, with its signal. Returns true when
 * the launched command itself has ended. */
static bool reap_traced(struct session *s, int *exit_status)
{
	int status;
	pid_t r;

	while ((r = waitpid(-1, &status, WNOHANG | __WALL)) > 0) {
		int sig, event;

		if (WIFEXITED(status) || WIFSIGNALED(status)) {
			if (r == s->pid) {
				*exit_status = status;
				return true;
			}
			continue;
		}
		if (!WIFSTOPPED(status))
			continue;
		sig = WSTOPSIG(status);
		event = status >> 16;
		if (event == PTRACE_EVENT_EXIT) {
			struct symbolizer *sym = sym_for(s, r);

			if (sym)
				symbolize_refresh(sym);
			if (r == s->pid)
				python_frames_poll(s->py);
			sig = 0;
		} else if (event == PTRACE_EVENT_STOP) {
			if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
				ptrace(PTRACE_LISTEN, r, NULL, NULL); /* a real group stop */
				continue;
			}
			sig = 0;
		} else if (event == PTRACE_EVENT_EXEC && r == s->pid) {
			/* the new program is mapped, nothing of it has run yet:
			 * the moment to recognise a statically linked CPython */
			symbolize_refresh(s->sym);
			python_frames_poll(s->py);
			sig = 0;
		} else if (event) {
			sig = 0; /* fork, vfork, exec */
		}
		ptrace(PTRACE_CONT, r, NULL, (void *)(long)sig);
	}
	return false;
}

/* Once CPython is recognised: probe the allocator functions its tables
 * hold (a stripped build has no names for them) and, with --hook-pymalloc,
 * point pymalloc's tables at the raw allocator. */
static int python_allocators(struct session *s)
{
	const struct python_target *t = python_frames_target(s->py);

	if (s->python_alloc_done || !t)
		return 0;
	s->python_alloc_done = true;
	return python_alloc_setup(&s->pyalloc, t, s->skel, &s->probes, s->pid,
				  s->o->follow ? -1 : s->pid, s->o->hook_pymalloc, s->o->verbose);
}

static void python_unhook(struct session *s)
{
	python_alloc_restore(&s->pyalloc);
}

static int wait_loop(struct session *s, struct target_launch *launch, int *exit_status)
{
	const struct session_options *o = s->o;
	double next_report = o->interval > 0 ? s->started + o->interval : 0;
	double next_refresh = s->started + 0.05;
	int err;

	for (;;) {
		double t = now_s();

		if (stop_signal)
			return 0;
		if (o->duration > 0 && t - s->started >= o->duration)
			return 0;
		if (launch) {
			if (reap_traced(s, exit_status))
				return 0;
		} else if (!target_alive(s->pid)) {
			return 0;
		}
		if (t - s->started < 2 && !python_frames_describe(s->py))
			python_frames_poll(s->py); /* a starting interpreter: look often */
		if (t >= next_refresh) {
			refresh_all(s);
			python_frames_poll(s->py);
			next_refresh = t + 0.25;
		}
		if (python_allocators(s))
			return -EINVAL;
		if (next_report && t >= next_report) {
			err = report(s);
			if (err)
				return err;
			next_report += o->interval;
		}
		poll(NULL, 0, 20);
	}
}

int session_run(const struct session_options *o)
{
	struct session s = {.o = o};
	struct target_launch launch = {.go_fd = -1, .err_fd = -1};
	struct sigaction sa = {.sa_handler = on_signal};
	int exit_status = -1, err, rc = 1, n;
	bool launched = false, released = false;

	libbpf_set_print(libbpf_quiet);
	if (geteuid() != 0) {
		fprintf(stderr, "tracer: must run as root (BPF and uprobes need it)\n");
		return 2;
	}
	if (o->pid) {
		if (target_check(o->pid) || !target_alive(o->pid)) {
			fprintf(stderr, "tracer: no such process: %d\n", o->pid);
			return 2;
		}
		s.pid = o->pid;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (setup_bpf(&s))
		goto out;
	s.skel->bss->target_tgid = (__u32)s.pid; /* -p; a launch sets it below */

	if (o->argv) {
		static char pymalloc[] = "PYTHONMALLOC=malloc";
		char *extra[] = {o->python_malloc ? pymalloc : NULL, NULL};

		err = target_launch_prepare(o->argv, extra, &launch);
		if (err) {
			fprintf(stderr, "tracer: cannot start %s: %s\n", o->argv[0],
				strerror(-err));
			goto out;
		}
		launched = true;
		s.pid = launch.pid;
		s.skel->bss->target_tgid = (__u32)s.pid;
		if (o->follow)
			add_traced_pid(&s, s.pid);
		n = attach_launch(&s, o->follow ? -1 : s.pid);
	} else {
		if (o->follow)
			add_traced_pid(&s, s.pid);
		n = probes_attach_process(s.skel, &s.probes, s.pid, o->follow ? -1 : s.pid,
					  o->verbose);
	}
	if (n < 0) {
		if (n == -EINVAL && s.probes.failed_at[0])
			fprintf(
			    stderr,
			    "tracer: cannot attach probes to process %d: the kernel refused a "
			    "uprobe "
			    "at %s (another tool's uprobe there, such as memleak-bpfcc, can block "
			    "it; see dmesg)\n",
			    s.pid, s.probes.failed_at);
		else
			fprintf(stderr, "tracer: cannot attach probes to process %d: %s\n", s.pid,
				strerror(-n));
		rc = n == -ESRCH || n == -ENOENT ? 2 : 1;
		goto out;
	}
	if (n == 0) {
		fprintf(stderr,
			"tracer: process %d maps no allocator that can be probed "
			"(no malloc symbol: a stripped static executable?)\n",
			s.pid);
		rc = 2;
		goto out;
	}
	if (launched) {
		/* A launched command is ours: stop it at its exit for a last look
		 * at its mappings, so that short-lived programs get their frames. */
		long opts = PTRACE_O_TRACEEXIT | PTRACE_O_TRACEEXEC |
			    (o->follow ? PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK : 0);

		if (ptrace(PTRACE_SEIZE, s.pid, NULL, (void *)opts))
			fprintf(stderr, "tracer: warning: cannot watch %d's exit (%s)\n", s.pid,
				strerror(errno));
		err = target_launch_go(&launch);
		released = true;
		if (err) {
			fprintf(stderr, "tracer: cannot execute %s: %s\n", o->argv[0],
				strerror(-err));
			waitpid(s.pid, NULL, 0);
			launched = false;
			rc = 2;
			goto out;
		}
	} else if (!target_alive(s.pid)) {
		fprintf(stderr, "tracer: process %d exited before the probes were attached\n",
			s.pid);
		rc = 2;
		goto out;
	}
	target_command(s.pid, s.command, sizeof(s.command));
	s.start_time = target_start_time(s.pid);
	s.started = now_s();
	if (symbolize_open(s.pid, &s.sym) || python_frames_open(s.skel, s.pid, &s.py)) {
		fprintf(stderr, "tracer: out of memory\n");
		goto out;
	}
	if (o->hook_pymalloc)
		python_frames_expect_hook(s.py);
	python_frames_poll(s.py);
	if (o->hook_pymalloc && !python_frames_describe(s.py)) {
		fprintf(stderr,
			"tracer: --hook-pymalloc: process %d runs no CPython that tracer "
			"knows\n",
			s.pid);
		rc = 2;
		goto out;
	}
	if (python_allocators(&s)) {
		rc = 2;
		goto out;
	}
	if (o->verbose)
		fprintf(stderr, "tracer: tracing pid %d with %zu probes in %zu files\n", s.pid,
			s.probes.functions, s.probes.files);

	err = wait_loop(&s, launched ? &launch : NULL, &exit_status);
	if (!err)
		err = report(&s);
	rc = err ? 1 : 0;
out:
	python_unhook(&s);
	/* detach first: the target runs untraced from here on */
	probes_detach(&s.probes);
	if (launched && !released) {
		/* never let it run untraced when we failed before its exec */
		kill(s.pid, SIGKILL);
		waitpid(s.pid, NULL, 0);
	}
	symbolize_close(s.sym);
	python_frames_close(s.py);
	for (size_t i = 0; i < s.nchildren; i++)
		symbolize_close(s.children[i].sym);
	free(s.children);
	tracer_bpf__destroy(s.skel);
	return rc;
}
