#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "collect.h"
#include "pool_frees.h"
#include "proc_index.h"
#include "target.h"
#include "util/hash.h"
#include "util/progress.h"
#include "util/util.h"

static const char *const counter_names[TRACER_CNT_MAX] = {
    [TRACER_CNT_ALLOCS_FULL] = "allocs table full",
    [TRACER_CNT_ALLOCS_FULL_BYTES] = "allocs table full (bytes)",
    [TRACER_CNT_STACK_LOST] = "native stack table full",
    [TRACER_CNT_UNWIND_NO_TABLE] = "native stacks walked before their process was tabled",
    [TRACER_CNT_THREAD_LOST] = "thread slot unavailable",
    [TRACER_CNT_RETURN_UNMATCHED] = "return without entry",
    [TRACER_CNT_PROCS_FULL] = "process table full",
    [TRACER_CNT_FAILED_ALLOCS] = "failed allocations (NULL)",
    [TRACER_CNT_UNKNOWN_FREES] = "frees of untraced blocks",
    [TRACER_CNT_PY_UNREADABLE] = "python frames unreadable",
    [TRACER_CNT_PY_STACKS_FULL] = "python stack table full",
    [TRACER_CNT_AFTER_FINALIZE] = "events after Python finalization (not applied)",
    [TRACER_CNT_REALLOC_DOMAIN_UNKNOWN] = "reallocs of untraced blocks, domain unknown (libc)",
    [TRACER_CNT_LOADER_STOP_LOST] = "objects loaded without a stop (probed late)",
    [TRACER_CNT_SITES_FULL] = "sites table full (allocations left out of per-site figures)",
    [TRACER_CNT_NOTICES_LOST] = "process notices lost (every process looked at again)",
    [TRACER_CNT_MMAP_SPLITS] = "mapped blocks split by an unmap in their middle",
    [TRACER_CNT_MMAP_UNFOLLOWED] = "unmaps inside mapped blocks not followed (address space busy)",
    [TRACER_CNT_PY_RETURN_UNCAUGHT] = "python allocations from an unknown call site",
    [TRACER_CNT_GONE_BEFORE_PROBED] = "processes gone before their probes were attached",
    [TRACER_CNT_FREE_LIST_UNREADABLE] = "free-list objects not moved (frames unreadable)",
    [TRACER_CNT_FREES_UNSEEN] = "frees no probe saw (the address given out again)",
    [TRACER_CNT_POOL_FREES_FOUND] = "frees no probe saw (found in pymalloc's pools)",
    [TRACER_CNT_POOL_MARKS_FULL] = "pymalloc blocks not marked (pool marks table full)",
    [TRACER_CNT_POOL_CHECKS_FAILED] = "pymalloc pool checks failed",
};
_Static_assert(ARRAY_SIZE(counter_names) == TRACER_CNT_MAX, "every counter has a name");

/* Why native walks ended short (NFRAME and BOTTOM are complete). */
static const char *const stack_end_names[TRACER_END_COUNT] = {
    [TRACER_END_NO_MAPPING] = "native stack cut: address in no mapping read",
    [TRACER_END_NO_CFI] = "native stack cut: no CFI for the address",
    [TRACER_END_CANNOT] = "native stack cut: CFI not followed",
    [TRACER_END_RBP_LOST] = "native stack cut: rbp lost",
    [TRACER_END_READ] = "native stack cut: stack unreadable",
    [TRACER_END_BAD_CFA] = "native stack cut: CFA below the stack pointer",
};

uint64_t collect_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int collect_open(struct collector *c, struct tracer_bpf *skel, pid_t pid,
		 const struct resolve_options *resolve, bool follow, struct python_frames *py)
{
	memset(c, 0, sizeof(*c));
	c->skel = skel;
	c->resolve = *resolve;
	c->follow = follow;
	c->pid = pid;
	c->py = py;
	c->started_ns = collect_now_ns();
	if (!pid) /* multi: every process is one of procs */
		c->multi = c->follow = true;
	else
		target_command(pid, c->command, sizeof(c->command));
	c->rows = c->follow;
	c->start_time = pid ? target_start_time(pid) : 0;
	if (resolve->nframe > 1) {
		if (stack_store_init(&c->stacks, bpf_map__fd(skel->maps.native_stacks),
				     resolve_walk_depth(resolve)))
			return -ENOMEM;
		c->have_stacks = true;
		c->sweep_at = 4 * (size_t)bpf_map__max_entries(skel->maps.native_stacks);
	}
	return pid ? symbolize_open(pid, &c->sym) : 0;
}

static void sweep_stacks(struct collector *c);

static bool index_gone(const uint8_t *gone, uint64_t key)
{
	return proc_index_is_gone(gone, TRACER_KEY_PROC(key));
}

/* The sites of processes gone go with their blocks: found first, then
 * deleted (a hash map's walk restarts at a deleted key). */
static void sweep_gone_sites(struct collector *c, const uint8_t *gone)
{
	int fd = bpf_map__fd(c->skel->maps.sites);
	struct tracer_sites_key key, next, *prev = NULL, *dead = NULL;
	size_t n = 0, cap = 0;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (!proc_index_is_gone(gone, key.proc))
			continue;
		if (array_reserve((void **)&dead, &cap, sizeof(*dead), n + 1))
			break; /* the rest at the next sweep */
		dead[n++] = key;
	}
	for (size_t i = 0; i < n; i++)
		bpf_map_delete_elem(fd, &dead[i]);
	free(dead);
}

void collect_sweep_gone(struct collector *c)
{
	uint64_t events = __atomic_load_n(&c->skel->bss->execs, __ATOMIC_RELAXED) +
			  __atomic_load_n(&c->skel->bss->exits, __ATOMIC_RELAXED) +
			  __atomic_load_n(&c->skel->bss->window_drops, __ATOMIC_RELAXED);
	int fd = bpf_map__fd(c->skel->maps.allocs);
	uint32_t nbuckets = bpf_map__max_entries(c->skel->maps.allocs);
	uint64_t freed = 0, freed_overflow = 0;
	uint8_t *gone;

	if (events == c->swept_at_events && !c->indexes.pending)
		return;
	if (!c->table) {
		size_t page = (size_t)sysconf(_SC_PAGESIZE);
		void *m;

		c->table_bytes = ((size_t)nbuckets * sizeof(struct tracer_bucket) + page - 1) /
				 page * page;
		m = mmap(NULL, c->table_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED)
			return;
		c->table = m;
	}
	gone = proc_index_gone(&c->indexes, c->skel, c->follow);
	if (!gone)
		return;
	c->swept_at_events = events; /* and c->indexes.pending calls for another */
	for (uint32_t b = 0; b < nbuckets; b++)
		for (int j = 0; j < TRACER_BUCKET_SLOTS; j++) {
			__u64 *k = &c->table[b].s[j].key;
			__u64 key = __atomic_load_n(k, __ATOMIC_RELAXED);

			/* the probes claim a free slot (0) and free a live one with
			 * a compare-and-swap: so does this, on keys no probe can
			 * free any more */
			if (key && !(key & TRACER_SLOT_BUSY) && index_gone(gone, key) &&
			    __atomic_compare_exchange_n(k, &key, 0, false, __ATOMIC_RELAXED,
							__ATOMIC_RELAXED))
				freed++;
		}
	if (c->skel->bss->overflow_used) {
		int ofd = bpf_map__fd(c->skel->maps.allocs_overflow);
		__u64 key, next, *prev = NULL;

		while (!bpf_map_get_next_key(ofd, prev, &next)) {
			key = next;
			if (index_gone(gone, key) && !bpf_map_delete_elem(ofd, &key)) {
				freed_overflow++;
				prev = NULL; /* from the start again */
				continue;
			}
			prev = &key;
		}
	}
	sweep_gone_sites(c, gone);
	proc_index_recycle(&c->indexes, c->skel, gone);
	__atomic_sub_fetch(&c->skel->bss->overflow_used, freed_overflow, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&c->skel->bss->live_traces, freed + freed_overflow, __ATOMIC_RELAXED);
	c->swept_blocks += freed + freed_overflow;
	free(gone);
}

void collect_drain_stacks(struct collector *c, bool due)
{
	uint64_t added;

	if (!c->have_stacks)
		return;
	added = __atomic_load_n(&c->skel->bss->native_stacks_added, __ATOMIC_RELAXED);
	/* every drained stack in use is stored again at its next use: drain
	 * when due, or before the map is a quarter full */
	if (added != c->stacks_seen &&
	    (due || added - c->stacks_seen >= bpf_map__max_entries(c->skel->maps.native_stacks) / 4)) {
		c->stacks_seen = added;
		stack_store_drain(&c->stacks);
	}
	/* twice what the last sweep kept, and at least 4 tables' worth */
	if (due && c->stacks.stacks.n > c->sweep_at) {
		sweep_stacks(c);
		c->sweep_at = 2 * c->stacks.stacks.n;
		if (c->sweep_at < 4 * (size_t)bpf_map__max_entries(c->skel->maps.native_stacks))
			c->sweep_at = 4 * (size_t)bpf_map__max_entries(c->skel->maps.native_stacks);
	}
}

/* Whether another entry than procs[skip] shares py. */
static bool python_shared(const struct collector *c, size_t skip, const struct python_frames *py)
{
	for (size_t i = 0; i < c->nprocs; i++)
		if (i != skip && c->procs[i].py == py)
			return true;
	return false;
}

static void proc_release(struct collector *c, size_t i, bool keep_strings)
{
	struct collect_proc *p = &c->procs[i];

	symbolize_close(p->sym);
	p->sym = NULL;
	if (p->py && !python_shared(c, i, p->py))
		python_frames_close(p->py);
	p->py = NULL;
	if (!keep_strings) {
		free(p->command);
		free(p->cgroup);
	}
}

void collect_close(struct collector *c)
{
	symbolize_close(c->sym);
	if (c->have_stacks)
		stack_store_free(&c->stacks);
	for (size_t i = 0; i < c->nprocs; i++)
		proc_release(c, i, false);
	free(c->procs);
	for (size_t i = 0; i < c->nexited; i++) {
		free(c->exited[i].p.command);
		free(c->exited[i].p.cgroup);
	}
	free(c->exited);
	free(c->target.cgroup);
	proc_index_free(&c->indexes);
	if (c->table)
		munmap(c->table, c->table_bytes);
	memset(c, 0, sizeof(*c));
}

int collect_index_process(struct tracer_bpf *skel, pid_t pid)
{
	/* BPF may have indexed it since (a fork, an exec): that one stays */
	int err = proc_index_give(skel, pid, BPF_NOEXIST);

	return err == -EEXIST ? 0 : err;
}

struct collect_proc *collect_find_process(struct collector *c, pid_t pid)
{
	for (size_t i = 0; i < c->nprocs; i++)
		if (c->procs[i].pid == pid)
			return &c->procs[i];
	return NULL;
}

struct collect_proc *collect_process(struct collector *c, pid_t pid)
{
	struct collect_proc *p = collect_find_process(c, pid);
	char buf[4096];

	if (p)
		return p;
	p = realloc(c->procs, (c->nprocs + 1) * sizeof(*p));
	if (!p)
		return NULL;
	c->procs = p;
	p = &p[c->nprocs];
	memset(p, 0, sizeof(*p));
	if (symbolize_open(pid, &p->sym))
		return NULL;
	p->pid = pid;
	if (c->rows) {
		p->ns_pid = target_ns_pid(pid);
		p->start_time = target_start_time(pid);
		if (target_comm(pid, p->comm, sizeof(p->comm)))
			p->comm[0] = '\0';
		if (!target_command(pid, buf, sizeof(buf)))
			p->command = strdup(buf);
		if (!target_cgroup(pid, buf, sizeof(buf)))
			p->cgroup = strdup(buf);
	}
	c->nprocs++;
	return p;
}

void collect_set_python(struct collector *c, pid_t pid, struct python_frames *py)
{
	struct collect_proc *p = collect_process(c, pid);

	if (!p) {
		python_frames_close(py);
		return;
	}
	if (p->py && p->py != py && !python_shared(c, (size_t)(p - c->procs), p->py))
		python_frames_close(p->py);
	p->py = py;
}

struct symbolizer *collect_symbolizer(struct collector *c, pid_t pid)
{
	struct collect_proc *p;

	if (pid == c->pid && !c->multi)
		return c->sym;
	p = collect_process(c, pid);
	return p ? p->sym : NULL;
}

/* A child that left: its events and its peak count, its blocks no more. */
static void add_gone(struct tracer_proc_stats *gone, const struct tracer_proc_stats *st)
{
	gone->allocs += st->allocs;
	gone->frees += st->frees;
	gone->peak += st->peak;
	for (int k = 0; k < TRACER_NCLASSES; k++)
		gone->classes[k].peak += st->classes[k].peak;
}

/* --follow: whether tgid has left (traced_exit) with what it held. */
static bool left(struct collector *c, __u32 tgid)
{
	__u32 idx;

	return !c->keep_exited && (pid_t)tgid != c->pid &&
	       bpf_map_lookup_elem(bpf_map__fd(c->skel->maps.traced_pids), &tgid, &idx);
}

/* multi: the row of a process that left, with its last figures; beyond
 * COLLECT_MAX_EXITED the oldest row goes (its figures stay in gone). */
static void keep_exited_row(struct collector *c, struct collect_proc *p,
			    const struct tracer_proc_stats *st)
{
	struct collect_exited *e;

	if (c->nexited == COLLECT_MAX_EXITED) {
		free(c->exited[0].p.command);
		free(c->exited[0].p.cgroup);
		memmove(&c->exited[0], &c->exited[1], (c->nexited - 1) * sizeof(*c->exited));
		c->nexited--;
	}
	if (array_reserve((void **)&c->exited, &c->cap_exited, sizeof(*c->exited),
			  c->nexited + 1)) {
		free(p->command);
		free(p->cgroup);
		return;
	}
	e = &c->exited[c->nexited++];
	e->p = *p;
	e->p.sym = NULL;
	e->p.py = NULL;
	e->p.flags |= SNAPSHOT_PROCESS_EXITED;
	/* multi: an entry never set up is one BPF indexed after the start (a
	 * fork, an exec) that a snapshot met before its notice was handled */
	if (c->multi && !p->set_up)
		e->p.flags |= SNAPSHOT_PROCESS_STARTED_AFTER;
	e->st = st ? *st : (struct tracer_proc_stats){0};
	e->st.current = 0;
	for (int k = 0; k < TRACER_NCLASSES; k++)
		e->st.classes[k].current = 0;
}

/* What BPF noted of process pid at its exit (exit_notes: its comm, command
 * line, pid in its namespace, start and cgroup) becomes what p says of it,
 * where user space read /proc when it first met pid (before it exec'd, or
 * once it had gone), but never for worse: the note's arguments are cut at
 * TRACER_EXIT_ARGS, and absent where the kernel let its memory go before
 * the exit tracepoint (before ~6.16) or a page was not resident. A note
 * of an earlier process with the same pid (its start differs) is not
 * taken. Whether one was. */
static bool take_exit_note(struct collector *c, pid_t pid, struct collect_proc *p)
{
	struct tracer_exit_note note;
	__u32 key = (__u32)pid;
	char buf[TRACER_EXIT_ARGS + 1];
	uint64_t start;
	char *s = NULL;
	size_t n;

	if (bpf_map_lookup_elem(bpf_map__fd(c->skel->maps.exit_notes), &key, &note))
		return false;
	start = note.start_ns ? target_boot_to_epoch(note.start_ns) : 0;
	if (p->start_time && start && (start > p->start_time + 2 || start + 2 < p->start_time))
		return false;
	if (start)
		p->start_time = start;
	if (note.comm[0]) {
		memcpy(p->comm, note.comm, sizeof(p->comm));
		p->comm[sizeof(p->comm) - 1] = '\0';
	}
	if (note.ns_pid)
		p->ns_pid = (pid_t)note.ns_pid;
	n = note.args_len < sizeof(note.args) ? note.args_len : sizeof(note.args);
	if (target_join_args(note.args, n, buf, sizeof(buf))) {
		/* the command it exec'd, unless the one read is it, whole */
		if (!p->command || strncmp(p->command, buf, strlen(buf)))
			s = strdup(buf);
	} else if (!p->command && p->comm[0]) {
		s = strdup(p->comm); /* no arguments: its comm, as target_command */
	}
	if (s) {
		free(p->command);
		p->command = s;
	}
	if (!cgroup_path(&c->cgroups, note.cgroup_id, p->cgroup, buf, sizeof(buf)) &&
	    (!p->cgroup || strcmp(p->cgroup, buf)) && (s = strdup(buf))) {
		free(p->cgroup);
		p->cgroup = s;
	}
	return true;
}

/* multi or --follow: the row of process pid, which left before user space
 * ever saw it alive, from what BPF noted at its exit; its figures st. */
static void keep_short_lived_row(struct collector *c, pid_t pid, const struct tracer_proc_stats *st)
{
	struct collect_proc p = {.pid = pid};

	/* -a and several -p hear of every process they trace after the start */
	if (c->multi)
		p.flags |= SNAPSHOT_PROCESS_STARTED_AFTER;
	take_exit_note(c, pid, &p);
	keep_exited_row(c, &p, st);
}

/* --follow: what children that exited leave behind, once they have left
 * (traced_exit): their symbolizer (and CPython frames), and their figures
 * in the procs map, whose events and peak are kept in c->gone (multi:
 * and in a row of their own). */
static void forget_exited(struct collector *c)
{
	int pfd = bpf_map__fd(c->skel->maps.procs), tfd = bpf_map__fd(c->skel->maps.traced_pids);
	int nfd = bpf_map__fd(c->skel->maps.exit_notes);
	struct tracer_proc_stats st, *last = NULL;
	__u32 key, next, idx, *prev = NULL;
	pid_t *last_pid = NULL;
	size_t i, kept = 0, nlast = 0, cap_last = 0, cap_pid = 0;
	bool *dead;

	while (!bpf_map_get_next_key(pfd, prev, &next)) {
		key = next;
		if ((pid_t)key == c->pid || !bpf_map_lookup_elem(tfd, &key, &idx) ||
		    target_alive((pid_t)key) || bpf_map_lookup_elem(pfd, &key, &st)) {
			prev = &key;
			continue;
		}
		add_gone(&c->gone, &st);
		if (c->rows &&
		    !array_reserve((void **)&last, &cap_last, sizeof(*last), nlast + 1) &&
		    !array_reserve((void **)&last_pid, &cap_pid, sizeof(*last_pid), nlast + 1)) {
			last[nlast] = st;
			last_pid[nlast++] = (pid_t)key;
		}
		bpf_map_delete_elem(pfd, &key); /* the walk goes on from the start */
		prev = NULL;
	}
	dead = calloc(c->nprocs + 1, sizeof(*dead));
	if (!dead)
		goto out;
	for (i = 0; i < c->nprocs; i++) {
		key = (__u32)c->procs[i].pid;
		/* gone, and its figures taken above (or it has none) */
		dead[i] = bpf_map_lookup_elem(tfd, &key, &idx) && !target_alive(c->procs[i].pid) &&
			  bpf_map_lookup_elem(pfd, &key, &st);
	}
	for (i = 0; i < c->nprocs; i++) {
		struct collect_proc *p = &c->procs[i];
		const struct tracer_proc_stats *figures = NULL;
		bool shared = false;

		if (!dead[i])
			continue;
		for (size_t j = 0; j < nlast; j++)
			if (last_pid[j] == p->pid)
				figures = &last[j];
		symbolize_close(p->sym);
		/* a CPython's frames go with the last process they serve */
		for (size_t j = 0; j < c->nprocs && p->py && !shared; j++)
			shared = j != i && c->procs[j].py == p->py && (!dead[j] || j > i);
		if (p->py && !shared)
			python_frames_close(p->py);
		if (c->rows) {
			take_exit_note(c, p->pid, p);
			keep_exited_row(c, p, figures);
			key = (__u32)p->pid;
			bpf_map_delete_elem(nfd, &key); /* taken: not for a later pid */
		} else {
			free(p->command);
			free(p->cgroup);
		}
	}
	/* a process never seen alive (it lived less than a loop turn): its
	 * row as BPF noted it at its exit */
	for (size_t j = 0; j < nlast; j++)
		if (!collect_find_process(c, last_pid[j]))
			keep_short_lived_row(c, last_pid[j], &last[j]);
	for (i = 0; i < c->nprocs; i++)
		if (!dead[i])
			c->procs[kept++] = c->procs[i];
	c->nprocs = kept;
	free(dead);
out:
	for (size_t j = 0; j < nlast; j++) {
		key = (__u32)last_pid[j];
		bpf_map_delete_elem(nfd, &key);
	}
	free(last);
	free(last_pid);
}

void collect_refresh(struct collector *c)
{
	int fd = bpf_map__fd(c->skel->maps.traced_pids);
	__u32 key, next, *prev = NULL;

	symbolize_refresh(c->sym);
	if (!c->follow)
		return;
	if (!c->keep_exited)
		forget_exited(c);
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (target_alive((pid_t)key))
			collect_symbolizer(c, (pid_t)key);
	}
	for (size_t i = 0; i < c->nprocs; i++)
		symbolize_refresh(c->procs[i].sym);
}

void collect_read_counters(struct collector *c, struct tracer_counters *sum)
{
	int ncpu = libbpf_num_possible_cpus(), i, k;
	struct tracer_counters *per;
	__u32 zero = 0;

	memset(sum, 0, sizeof(*sum));
	if (ncpu <= 0)
		return;
	per = calloc(ncpu, sizeof(*per));
	if (!per)
		return;
	if (!bpf_map_lookup_elem(bpf_map__fd(c->skel->maps.counters), &zero, per))
		for (i = 0; i < ncpu; i++)
			for (k = 0; k < TRACER_CNT_MAX; k++)
				sum->c[k] += per[i].c[k];
	sum->c[TRACER_CNT_PROCS_FULL] +=
		__atomic_load_n(&c->skel->bss->procs_full_in_user_space, __ATOMIC_RELAXED);
	sum->c[TRACER_CNT_GONE_BEFORE_PROBED] += c->gone_before_probed;
	sum->c[TRACER_CNT_POOL_CHECKS_FAILED] += c->pool_checks_failed;
	free(per);
}

/* Kernel memory of the maps (as the kernel accounts it) plus our own RSS. */
static uint64_t tracer_memory(struct collector *c)
{
	struct bpf_map *m;
	uint64_t total = 0;
	char path[64], line[256];
	long rss_pages = 0;
	FILE *f;

	bpf_object__for_each_map(m, c->skel->obj)
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

/* Traces with the same (process, call site, stack) share a traceback: most
 * of a large snapshot resolves from here without a syscall or a lookup. */
struct tb_cache_entry {
	uint64_t site, py_stack;
	uint32_t tgid;
	struct resolve_counts counts; /* what resolving it counted */
	int64_t tb;
};

struct drain {
	struct collector *c;
	struct snapshot *snap;
	struct progress progress; /* on a terminal, for a large process */
	struct resolve_counts counts;
	struct hash_index index; /* -> cache entries */
	struct tb_cache_entry *cache;
	size_t ncache, cap_cache;
	pid_t *procs; /* --follow: the process of each key index */
	uint32_t nprocs;
	uint32_t *rows; /* multi: the snapshot process of each key index */
	uint32_t target_index; /* without --follow: the target's key index now */
	uint64_t replaced;     /* blocks of images since exec'd over: not reported */
	uint64_t stacks_missing; /* site keys found in no store: frame 0 unknown */
	__u32 now;		 /* TRACER_TIME when the drain began */
	uint64_t generation;	 /* peak_generation then */
	struct snapshot_site *sites; /* what the sites map says, resolved */
	size_t nsites, cap_sites;
};

static bool cache_eq(const void *ctx, uint32_t entry, const void *key)
{
	const struct tb_cache_entry *a = &((const struct drain *)ctx)->cache[entry], *b = key;

	return a->site == b->site && a->py_stack == b->py_stack && a->tgid == b->tgid;
}

/* A cut or short stack counts for every trace that has it; an unresolved
 * Python frame once per distinct stack. */
static void add_counts(struct resolve_counts *to, const struct resolve_counts *c, bool first)
{
	to->truncated += c->truncated;
	for (int k = 0; k < TRACER_END_COUNT; k++)
		to->stack_end[k] += c->stack_end[k];
	for (int k = 0; k < UNWIND_WHY_COUNT; k++)
		to->cannot[k] += c->cannot[k];
	if (first)
		to->py_unresolved += c->py_unresolved;
}

/* Which CFI rule stopped a walk at a CANNOT row: the row of its last
 * frame (looked up at pc - 1 above frame 0, as the walker did). */
static void explain_cannot(struct collector *c, uint32_t tgid, const struct stack_entry *st,
			   struct resolve_counts *counts)
{
	uint64_t pc;
	uint32_t rule, why;

	if (!c->unwind || !st || !st->n)
		return;
	pc = st->pcs[st->n - 1] - (st->n > 1 ? 1 : 0);
	if (unwind_maps_rule(c->unwind, (pid_t)tgid, pc, &rule))
		return;
	why = unwind_rule_cfa_off(rule);
	if (unwind_rule_kind(rule) == UNWIND_CANNOT && why < UNWIND_WHY_COUNT)
		counts->cannot[why] += counts->stack_end[TRACER_END_CANNOT];
}

/* The traceback of a trace of process tgid with this info; counted adds
 * what resolving it lost to the snapshot's counters (of traces, not sites). */
static int64_t traceback_of(struct drain *d, uint32_t tgid, const struct tracer_alloc_info *info,
			    bool counted)
{
	struct collector *c = d->c;
	struct tb_cache_entry key = {.site = info->site, .py_stack = info->py_stack, .tgid = tgid};
	uint64_t h = hash_mix(hash_mix(hash_u64(info->site), info->py_stack), tgid);
	struct resolve_trace t = {.ip = info->site, .domain = info->domain};
	const struct stack_entry *native = NULL;
	struct tb_cache_entry *e;
	int64_t found;
	size_t pos;

	if (hash_index_reserve(&d->index))
		return -ENOMEM;
	found = hash_index_find(&d->index, h, cache_eq, d, &key, &pos);
	if (found >= 0) {
		e = &d->cache[found];
		if (counted)
			add_counts(&d->counts, &e->counts, false);
		return e->tb;
	}
	if (array_reserve((void **)&d->cache, &d->cap_cache, sizeof(*d->cache), d->ncache + 1))
		return -ENOMEM;
	e = &d->cache[d->ncache];
	*e = key;
	if (TRACER_SITE_IS_STACK(info->site)) {
		t.ip = 0;
		if (c->have_stacks)
			native = stack_store_get(&c->stacks, info->site);
		if (native && native->n) {
			t.ip = native->pcs[0];
			t.stack = native->pcs;
			t.nstack = native->n;
			t.stack_end = native->end;
		} else if (counted) {
			d->stacks_missing++;
		}
	}
	/* the target's stacks, and with --follow its forked children's (the
	 * walker's configuration copied at fork; each resolved in the memory
	 * of the process that captured it) */
	if (c->multi) {
		struct collect_proc *p = collect_process(c, (pid_t)tgid);
		struct python_frames *py = p ? p->py : NULL;

		t.py = python_frames_get(py, info->py_stack);
		t.python_process = python_frames_describe(py) != NULL;
	} else {
		t.py = python_frames_get(tgid == (uint32_t)c->pid || c->follow ? c->py : NULL,
					 info->py_stack);
		t.python_process = python_frames_describe(c->py) != NULL;
	}
	e->tb = resolve_traceback(d->snap, collect_symbolizer(c, (pid_t)tgid), &c->resolve, &t,
				  &e->counts);
	if (e->tb < 0)
		return e->tb;
	if (e->counts.stack_end[TRACER_END_CANNOT])
		explain_cannot(c, tgid, native, &e->counts);
	if (counted)
		add_counts(&d->counts, &e->counts, true);
	hash_index_put(&d->index, pos, h, (uint32_t)d->ncache++);
	return e->tb;
}

/* A block's age at the drain: its time is at most 2^32 units old (tracer.h);
 * one stamped since the drain began reads 0. */
static uint64_t age_ns(const struct drain *d, __u32 time)
{
	__u32 units = d->now - time;

	if (units >= 0xfffffff0u) /* up to 67 ms after the drain began */
		return 0;
	return (uint64_t)units << TRACER_TIME_SHIFT;
}

/* One live slot of the allocation table into the snapshot. */
static int add_slot(void *arg, __u64 key, const struct tracer_alloc_info *info)
{
	struct drain *d = arg;
	uint32_t proc = TRACER_KEY_PROC(key), tgid;
	int64_t tb;

	if (d->c->follow && proc >= d->nprocs)
		return 0; /* a process indexed since the map was read */
	tgid = (uint32_t)(d->c->follow ? d->procs[proc] : d->c->pid);
	if (d->c->follow ? !tgid : proc != d->target_index) {
		d->replaced++; /* a block of an image since exec'd over */
		return 0;
	}
	tb = traceback_of(d, tgid, info, true);
	if (tb < 0)
		return (int)tb;
	progress_step(&d->progress, d->snap->ntraces);
	return snapshot_add_trace_of(d->snap,
				     &(struct snapshot_trace){.address = TRACER_KEY_ADDR(key),
							      .size = info->size,
							      .domain = info->domain,
							      .traceback = (uint32_t)tb,
							      .age_ns = age_ns(d, info->time),
							      .process = d->rows ? d->rows[proc] : 0},
				     true);
}

/* --follow: which process each index of the allocation keys stands for. */
static pid_t *proc_of_index(struct collector *c, uint32_t *n)
{
	int fd = bpf_map__fd(c->skel->maps.traced_pids);
	__u32 key, next, idx, *prev = NULL;
	pid_t *map;

	*n = __atomic_load_n(&c->skel->bss->next_proc_index, __ATOMIC_RELAXED);
	if (*n > TRACER_MAX_PROCS)
		*n = TRACER_MAX_PROCS;
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

/* Calls fn for every live trace: the slots of the allocation table's
 * buckets, then the blocks that found both their buckets full. Stops at
 * fn's first error and returns it; 0, or -ENOMEM, or a read's -errno. */
typedef int (*trace_fn)(void *arg, __u64 key, const struct tracer_alloc_info *info);

/* Calls fn for every element of the map fd, read in batches of 4096 (keys
 * and values of the sizes given); stops at fn's first error and returns
 * it; 0, or -ENOMEM, or a read's -errno. */
typedef int (*element_fn)(void *arg, const void *key, const void *value);

static int each_element(int fd, size_t key_size, size_t value_size, element_fn fn, void *arg)
{
	uint32_t batch = 4096, count, i;
	char *keys = calloc(batch, key_size), *vals = calloc(batch, value_size);
	__u64 in_batch, out_batch; /* the batch token: a hash's bucket, an array's index */
	bool first = true;
	int err = 0;

	if (!keys || !vals) {
		err = -ENOMEM;
		goto out;
	}
	for (;;) {
		LIBBPF_OPTS(bpf_map_batch_opts, opts);
		int r;

		count = batch;
		r = bpf_map_lookup_batch(fd, first ? NULL : &in_batch, &out_batch, keys, vals,
					 &count, &opts);
		if (r && errno != ENOENT) {
			err = -errno;
			goto out;
		}
		first = false;
		in_batch = out_batch;
		for (i = 0; i < count && !err; i++)
			err = fn(arg, keys + i * key_size, vals + i * value_size);
		if (err || r)
			break; /* ENOENT: that was the last batch */
	}
out:
	free(keys);
	free(vals);
	return err;
}

struct each_trace {
	trace_fn fn;
	void *arg;
};

/* One bucket of the allocation table: its live slots. */
static int bucket_traces(void *arg, const void *key, const void *value)
{
	const struct each_trace *e = arg;
	const struct tracer_bucket *b = value;
	int err = 0;

	for (int j = 0; j < TRACER_BUCKET_SLOTS && !err; j++) {
		const struct tracer_slot *sl = &b->s[j];

		/* empty, or a block being recorded right now */
		if (sl->key && !(sl->key & TRACER_SLOT_BUSY))
			err = e->fn(e->arg, sl->key, &sl->info);
	}
	return err;
}

static int overflow_trace(void *arg, const void *key, const void *value)
{
	const struct each_trace *e = arg;

	return e->fn(e->arg, *(const __u64 *)key, value);
}

static int each_trace(struct collector *c, trace_fn fn, void *arg)
{
	struct each_trace e = {fn, arg};
	int err = each_element(bpf_map__fd(c->skel->maps.allocs), sizeof(__u32),
			       sizeof(struct tracer_bucket), bucket_traces, &e);

	if (!err && c->skel->bss->overflow_used)
		err = each_element(bpf_map__fd(c->skel->maps.allocs_overflow), sizeof(__u64),
				   sizeof(struct tracer_alloc_info), overflow_trace, &e);
	return err;
}

/* Calls fn for every entry of the sites map; as each_trace. */
typedef int (*site_fn)(void *arg, const struct tracer_sites_key *key,
		       const struct tracer_site_stats *site);

struct each_site {
	site_fn fn;
	void *arg;
};

static int site_element(void *arg, const void *key, const void *value)
{
	const struct each_site *e = arg;

	return e->fn(e->arg, key, value);
}

static int each_site(struct collector *c, site_fn fn, void *arg)
{
	struct each_site e = {fn, arg};

	return each_element(bpf_map__fd(c->skel->maps.sites), sizeof(struct tracer_sites_key),
			    sizeof(struct tracer_site_stats), site_element, &e);
}

/* The figures of the process with index proc (in allocation keys), as the
 * drain began; false when it has none (gone, indexed since the map was
 * read, or an image since exec'd over: its sites are not reported). */
static bool proc_figures(struct drain *d, uint32_t proc, struct tracer_proc_stats *st)
{
	__u32 tgid;

	if (!d->c->follow) {
		*st = d->c->skel->bss->target_stats;
		return proc == d->target_index; /* not an image since exec'd over */
	}
	if (proc >= d->nprocs || !d->procs[proc])
		return false;
	tgid = (__u32)d->procs[proc];
	return !bpf_map_lookup_elem(bpf_map__fd(d->c->skel->maps.procs), &tgid, st);
}

static uint64_t nonnegative(__s64 v)
{
	return v > 0 ? (uint64_t)v : 0;
}

/* One entry of the sites map into the drain's sites: its traceback, and
 * its figures at its process's peak (tracer.h: a site that has not changed
 * since the peak's epoch holds its live figures, as after a reset_peak()
 * no event has followed yet). */
static int add_site(void *arg, const struct tracer_sites_key *key,
		    const struct tracer_site_stats *v)
{
	struct drain *d = arg;
	struct tracer_alloc_info info = {.site = key->site,
					 .py_stack = key->py_stack,
					 .domain = key->domain};
	struct tracer_proc_stats st;
	struct snapshot_site *site;
	bool live_is_peak;
	int64_t tb;

	if (!proc_figures(d, key->proc, &st))
		return 0; /* a process indexed since the map was read, or gone */
	tb = traceback_of(d, (uint32_t)(d->c->follow ? d->procs[key->proc] : d->c->pid), &info,
			  false);
	if (tb < 0)
		return (int)tb;
	if (array_reserve((void **)&d->sites, &d->cap_sites, sizeof(*d->sites), d->nsites + 1))
		return -ENOMEM;
	live_is_peak = st.peak_generation != d->generation || v->epoch < st.peak_epoch;
	site = &d->sites[d->nsites++];
	*site = (struct snapshot_site){
	    .traceback = (uint32_t)tb,
	    .domain = key->domain,
	    .process = d->rows ? d->rows[key->proc] : 0,
	    .alloc_count = v->alloc_count,
	    .alloc_bytes = v->alloc_bytes,
	    .temp_count = v->temp_count,
	    .temp_bytes = v->temp_bytes,
	    .peak_count = nonnegative(live_is_peak ? v->live_count : v->peak_count),
	    .peak_bytes = nonnegative(live_is_peak ? v->live_bytes : v->peak_bytes),
	};
	return 0;
}

static int mark_stack(void *c, __u64 key, const struct tracer_alloc_info *info)
{
	if (TRACER_SITE_IS_STACK(info->site))
		stack_store_get(&((struct collector *)c)->stacks, info->site);
	return 0;
}

static int mark_site_stack(void *c, const struct tracer_sites_key *key,
			   const struct tracer_site_stats *site)
{
	if (TRACER_SITE_IS_STACK(key->site))
		stack_store_get(&((struct collector *)c)->stacks, key->site);
	return 0;
}

/* Marks the stacks live traces and sites refer to, then sweeps the
 * others: what a snapshot does, without resolving anything. For a long run
 * without reports, whose store would otherwise keep every stack it saw. */
static void sweep_stacks(struct collector *c)
{
	/* a failed read sweeps nothing */
	if (!each_trace(c, mark_stack, c) && !each_site(c, mark_site_stack, c))
		stack_store_sweep(&c->stacks);
}

static uint64_t bytes(__s64 v);

/* A process's row in the snapshot, with its figures. */
static int64_t add_process_row(struct snapshot *snap, const struct collect_proc *p,
			       const struct tracer_proc_stats *st, uint64_t generation)
{
	bool reset = st->peak_generation != generation; /* no event since reset_peak() */
	struct snapshot_process row = {.pid = p->pid,
				       .ns_pid = p->ns_pid,
				       .flags = p->flags,
				       .start_time = p->start_time,
				       .command = SNAPSHOT_NO_STRING,
				       .comm = SNAPSHOT_NO_STRING,
				       .cgroup = SNAPSHOT_NO_STRING,
				       .runtime = SNAPSHOT_NO_STRING,
				       .traced_current = bytes(st->current),
				       .traced_peak = bytes(reset ? st->current : st->peak),
				       .alloc_events = st->allocs,
				       .free_events = st->frees};
	const char *runtime = python_frames_describe(p->py);
	int64_t i;

	for (int k = 0; k < TRACER_NCLASSES; k++) {
		row.domain_memory[k].current = bytes(st->classes[k].current);
		row.domain_memory[k].peak =
		    bytes(reset ? st->classes[k].current : st->classes[k].peak);
	}
	if (p->command && (i = snapshot_intern_string(snap, p->command)) >= 0)
		row.command = (uint32_t)i;
	if (p->comm[0] && (i = snapshot_intern_string(snap, p->comm)) >= 0)
		row.comm = (uint32_t)i;
	if (p->cgroup && (i = snapshot_intern_string(snap, p->cgroup)) >= 0)
		row.cgroup = (uint32_t)i;
	if (runtime && (i = snapshot_intern_string(snap, runtime)) >= 0)
		row.runtime = (uint32_t)i;
	return snapshot_add_process(snap, &row);
}

/* multi: a row for each process live in the allocation keys, then for
 * those that exited; d->rows gives each key index its row. */
static int process_rows(struct drain *d)
{
	struct collector *c = d->c;
	int pfd = bpf_map__fd(c->skel->maps.procs);

	d->rows = calloc(d->nprocs + 1, sizeof(*d->rows));
	if (!d->rows)
		return -ENOMEM;
	for (uint32_t idx = 0; idx < d->nprocs; idx++) {
		struct tracer_proc_stats st = {0};
		struct collect_proc *p;
		__u32 key = (__u32)d->procs[idx];
		int64_t row;

		if (!d->procs[idx])
			continue;
		if (d->procs[idx] == c->pid && !c->multi) {
			/* --follow's target: its row is c's */
			p = &c->target;
			p->pid = c->pid;
			p->command = c->command;
			p->py = c->py;
			p->start_time = c->start_time;
			if (target_comm(c->pid, p->comm, sizeof(p->comm)))
				p->comm[0] = '\0';
			if (!p->ns_pid)
				p->ns_pid = target_ns_pid(c->pid);
			if (!p->cgroup) {
				char cg[4096];

				if (!target_cgroup(c->pid, cg, sizeof(cg)))
					p->cgroup = strdup(cg);
			}
		} else if (!(p = collect_process(c, d->procs[idx]))) {
			continue;
		}
		bpf_map_lookup_elem(pfd, &key, &st);
		st.peak_generation = st.peak_generation ? st.peak_generation : d->generation;
		if (!target_alive(p->pid)) /* kept at its exit (--keep-exited, -p) */
			p->flags |= SNAPSHOT_PROCESS_EXITED;
		row = add_process_row(d->snap, p, &st, d->generation);
		if (row < 0)
			return (int)row;
		d->rows[idx] = (uint32_t)row;
	}
	for (size_t i = 0; i < c->nexited; i++) {
		struct tracer_proc_stats st = c->exited[i].st;

		st.peak_generation = d->generation; /* its peak is what it was */
		if (add_process_row(d->snap, &c->exited[i].p, &st, d->generation) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* Every live trace, then every site (whose tracebacks mostly are the
 * traces' already). */
static int drain_traces(struct collector *c, struct snapshot *snap, struct resolve_counts *counts)
{
	struct drain d = {.c = c, .snap = snap};
	int err = -ENOMEM;

	if (c->have_stacks)
		stack_store_drain(&c->stacks);
	d.generation = __atomic_load_n(&c->skel->bss->peak_generation, __ATOMIC_RELAXED);
	d.now = TRACER_TIME(collect_now_ns());
	if (c->follow)
		d.procs = proc_of_index(c, &d.nprocs);
	else
		d.target_index = __atomic_load_n(&c->skel->bss->target_index, __ATOMIC_RELAXED);
	progress_begin(&d.progress, stderr, "symbolizing live traces", PROGRESS_AFTER_MS);
	if (c->rows && d.procs)
		err = process_rows(&d);
	if ((!c->follow || d.procs) && !(c->rows && err))
		err = each_trace(c, add_slot, &d);
	progress_end(&d.progress);
	if (!err)
		err = each_site(c, add_site, &d);
	if (!err)
		err = snapshot_add_sites(snap, d.sites, d.nsites);
	free(d.sites);
	snap->ages_known = true;
	*counts = d.counts;
	c->stacks_missing = d.stacks_missing;
	c->replaced_blocks = d.replaced;
	if (c->have_stacks && !err)
		stack_store_sweep(&c->stacks);
	hash_index_free(&d.index);
	free(d.cache);
	free(d.procs);
	free(d.rows);
	return err;
}

static uint64_t bytes(__s64 v)
{
	return v > 0 ? (uint64_t)v : 0;
}

/* The BPF classes (tracer.h) are the model's (snapshot.h), in the same order. */
_Static_assert((int)TRACER_NCLASSES == (int)SNAPSHOT_NCLASSES &&
		   (int)TRACER_CLASS_PYTHON == (int)SNAPSHOT_CLASS_PYTHON &&
		   (int)TRACER_CLASS_NATIVE == (int)SNAPSHOT_CLASS_NATIVE &&
		   TRACER_DOMAIN_NATIVE == SNAPSHOT_DOMAIN_NATIVE,
	       "domain classes differ between tracer.h and snapshot.h");

static void add_proc_stats(struct snapshot *snap, const struct tracer_proc_stats *st,
			   uint64_t generation)
{
	bool reset = st->peak_generation != generation; /* no event since reset_peak() */

	snap->traced_current += bytes(st->current);
	snap->traced_peak += bytes(reset ? st->current : st->peak);
	for (int k = 0; k < TRACER_NCLASSES; k++) {
		const struct tracer_mem *m = &st->classes[k];

		snap->domain_memory[k].current += bytes(m->current);
		snap->domain_memory[k].peak += bytes(reset ? m->current : m->peak);
	}
	snap->alloc_events += st->allocs;
	snap->free_events += st->frees;
}

/* Traced memory, every domain's and each class's: the target's own, or the
 * sum over every traced process with --follow. */
static void traced_memory(struct collector *c, struct snapshot *snap)
{
	int pfd = bpf_map__fd(c->skel->maps.procs);
	struct tracer_proc_stats st;
	__u32 key, next, *prev = NULL;
	uint64_t generation = __atomic_load_n(&c->skel->bss->peak_generation, __ATOMIC_RELAXED);

	snap->domain_memory_known = true;
	if (!c->follow) {
		add_proc_stats(snap, &c->skel->bss->target_stats, generation);
		return;
	}
	struct tracer_proc_stats gone = c->gone;

	while (!bpf_map_get_next_key(pfd, prev, &next)) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(pfd, &key, &st))
			continue;
		if (left(c, key))
			add_gone(&gone, &st); /* not yet forgotten */
		else
			add_proc_stats(snap, &st, generation);
	}
	gone.peak_generation = generation; /* its peaks are what they were */
	add_proc_stats(snap, &gone, generation);
}

static int set_counters(struct collector *c, struct snapshot *snap,
			const struct resolve_counts *lost)
{
	struct tracer_counters cnt;

	collect_read_counters(c, &cnt);
	for (int k = 0; k < TRACER_CNT_MAX; k++)
		if (snapshot_set_counter(snap, counter_names[k], cnt.c[k]))
			return -ENOMEM;
	if (snapshot_set_counter(snap, "python frames unresolved", lost->py_unresolved) ||
	    snapshot_set_counter(snap, "stack truncated (address outside code)", lost->truncated) ||
	    snapshot_set_counter(snap, "blocks of exec'd or exited images (not reported)",
				 c->replaced_blocks + c->swept_blocks) ||
	    snapshot_set_counter(snap, COLLECT_STOPS_KEPT, c->stops_kept))
		return -ENOMEM;
	if (!c->have_stacks)
		return 0;
	for (int k = 0; k < TRACER_END_COUNT; k++) {
		char name[128];

		if (!stack_end_names[k])
			continue;
		if (k == TRACER_END_CANNOT) {
			uint64_t explained = 0;

			for (int w = 0; w < UNWIND_WHY_COUNT; w++) {
				snprintf(name, sizeof(name), "%s (%s)", stack_end_names[k],
					 unwind_why_name((unsigned)w));
				explained += lost->cannot[w];
				if (lost->cannot[w] && /* a breakdown: only what happened */
				    snapshot_set_counter(snap, name, lost->cannot[w]))
					return -ENOMEM;
			}
			/* the rest: rows the last install no longer holds */
			if (snapshot_set_counter(snap, stack_end_names[k],
						 lost->stack_end[k] - explained))
				return -ENOMEM;
			continue;
		}
		if (snapshot_set_counter(snap, stack_end_names[k], lost->stack_end[k]))
			return -ENOMEM;
	}
	if (snapshot_set_counter(snap, "native stack missing", c->stacks_missing))
		return -ENOMEM;
	if (c->unwind) {
		struct unwind_maps_stats st;

		unwind_maps_get_stats(c->unwind, &st);
		if (snapshot_set_counter(snap, "unwind: files not tabled (no room in the maps)",
					 st.files_no_room) ||
		    snapshot_set_counter(snap, "unwind: files unreadable", st.files_bad) ||
		    snapshot_set_counter(snap, "unwind: files not found by identity (table full)",
					 st.files_unpublished) ||
		    snapshot_set_counter(snap, "unwind: mappings left out", st.mappings_left_out))
			return -ENOMEM;
	}
	return 0;
}

void collect_reset_peak(struct collector *c)
{
	/* every process's peaks date from before this now: the probes reset
	 * them at its next event, add_proc_stats reads them as reset until then */
	__atomic_add_fetch(&c->skel->bss->peak_generation, 1, __ATOMIC_RELAXED);
	/* children gone hold nothing now */
	c->gone.peak = 0;
	for (int k = 0; k < TRACER_NCLASSES; k++)
		c->gone.classes[k].peak = 0;
}

struct snapshot *collect_snapshot(struct collector *c)
{
	struct snapshot *snap = snapshot_new();
	struct resolve_counts lost;
	char host[256] = "";
	int64_t command, hostname;

	if (!snap)
		return NULL;
	collect_refresh(c);
	/* before anything is read: the blocks pymalloc's inlined free gave
	 * back leave the figures as their frees would have */
	c->pool_checks_failed = 0; /* this report's: a block still unchecked counts again */
	pool_frees_apply(c->skel, &c->pool_checks_failed);
	python_frames_poll(c->py);
	for (size_t i = 0; c->multi && i < c->nprocs; i++)
		python_frames_poll(c->procs[i].py); /* a shared one: polled again, cheap */
	snap->traceback_limit = c->resolve.nframe;
	snap->taken_at = (uint64_t)time(NULL);
	snap->duration_ns = collect_now_ns() - c->started_ns;
	snap->target.pid = c->pid;
	snap->target.start_time = c->start_time;
	target_cgroup(c->pid, snap->target.cgroup, sizeof(snap->target.cgroup));
	gethostname(host, sizeof(host) - 1);
	command = snapshot_intern_string(snap, c->command);
	hostname = snapshot_intern_string(snap, host);
	if (command < 0 || hostname < 0)
		goto fail;
	snap->target.command = (uint32_t)command;
	snap->target.host = (uint32_t)hostname;
	traced_memory(c, snap);
	if (resolve_mappings(snap, c->sym))
		goto fail;
	for (size_t i = 0; i < c->nprocs; i++)
		if (resolve_mappings(snap, c->procs[i].sym))
			goto fail;
	if (drain_traces(c, snap, &lost) || set_counters(c, snap, &lost))
		goto fail;
	snap->tracer_memory = tracer_memory(c);
	return snap;
fail:
	snapshot_free(snap);
	return NULL;
}
