/* Several processes traced at once (multi.h). */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "multi.h"
#include "python/alloc.h"
#include "python/frames.h"
#include "target.h"
#include "util/util.h"

/* -a: the process tables (BPF's traced_pids and procs) */
#define MULTI_MAX_PROCS 16384

pid_t multi_attach_pid(const struct multi *m, pid_t pid)
{
	return m->per_process_links ? pid : -1;
}

int multi_configure(struct multi *m, const struct session_options *o, struct tracer_bpf *skel)
{
	const struct session_options *opt = o;

	memset(m, 0, sizeof(*m));
	m->o = o;
	m->skel = skel;
	/* a link per process, so that a process outside the filters pays no
	 * probe cost; one per file, for every process, where every child
	 * must be traced from its first instruction */
	m->per_process_links = opt->all ? opt->ncomms || opt->ncgroups || opt->nexclude
					: !opt->follow;
	skel->rodata->trace_all = opt->all;
	skel->rodata->multi = true;
	skel->rodata->tracer_tgid = (__u32)getpid();
	skel->rodata->nfilter_comms = (__u32)opt->ncomms;
	for (size_t i = 0; i < opt->ncomms && i < TRACER_MAX_FILTERS; i++)
		strncpy((char *)skel->rodata->filter_comms[i], opt->comms[i], TRACER_COMM_LEN - 1);
	if (opt->ncomms > TRACER_MAX_FILTERS || opt->ncgroups > TRACER_MAX_FILTERS) {
		fprintf(stderr, "tracer: at most %d --comm and %d --cgroup values\n",
			TRACER_MAX_FILTERS, TRACER_MAX_FILTERS);
		return 2;
	}
	skel->rodata->nfilter_cgroups = (__u32)opt->ncgroups;
	for (size_t i = 0; i < opt->ncgroups; i++) {
		char why[PATH_MAX + 64];
		uint64_t id;
		uint32_t level;

		if (cgroup_id(opt->cgroups[i], &id, &level, why, sizeof(why))) {
			fprintf(stderr, "tracer: --cgroup: %s\n", why);
			return 2;
		}
		skel->rodata->filter_cgroup_ids[i] = id;
		skel->rodata->filter_cgroup_levels[i] = level;
	}
	if (opt->all) {
		bpf_map__set_max_entries(skel->maps.traced_pids, MULTI_MAX_PROCS);
		bpf_map__set_max_entries(skel->maps.procs, MULTI_MAX_PROCS);
		bpf_map__set_max_entries(skel->maps.py_configs, MULTI_MAX_PROCS / 4);
		bpf_map__set_max_entries(skel->maps.unwind_procs, MULTI_MAX_PROCS);
	}
	return 0;
}

static bool comm_wanted(const struct session_options *o, pid_t pid)
{
	char comm[32];

	if (!o->ncomms)
		return true;
	if (target_comm(pid, comm, sizeof(comm)))
		return false;
	for (size_t i = 0; i < o->ncomms; i++)
		if (!strcmp(comm, o->comms[i]))
			return true;
	return false;
}

static bool cgroup_wanted(const struct session_options *o, pid_t pid)
{
	char cg[4096];

	if (!o->ncgroups)
		return true;
	if (target_cgroup(pid, cg, sizeof(cg)))
		return false;
	for (size_t i = 0; i < o->ncgroups; i++) {
		size_t n = strlen(o->cgroups[i]);

		while (n > 1 && o->cgroups[i][n - 1] == '/')
			n--;
		if (!strncmp(cg, o->cgroups[i], n) && (cg[n] == '\0' || cg[n] == '/' || n == 1))
			return true;
	}
	return false;
}

static bool excluded(const struct session_options *o, pid_t pid)
{
	for (size_t i = 0; i < o->nexclude; i++)
		if (o->exclude_pids[i] == pid)
			return true;
	return false;
}

static bool in_traced_pids(struct multi *m, pid_t pid)
{
	__u32 key = (__u32)pid, idx;

	return !bpf_map_lookup_elem(bpf_map__fd(m->skel->maps.traced_pids), &key, &idx);
}

/* The allocators a CPython process's tables hold, once it is recognised
 * (a stripped build names none of them). */
static void python_probes(struct multi *m, struct collect_proc *p)
{
	const struct python_target *t = python_frames_target(p->py);
	struct python_alloc alloc = {0};

	/* a forked child's are its parent's, at the same addresses: probed
	 * already unless each process has its own links */
	if (p->python_probed || !t)
		return;
	p->python_probed = true;
	python_alloc_setup(&alloc, t, m->skel, m->probes, p->pid, multi_attach_pid(m, p->pid),
			   false, m->o->python_free_lists, m->o->verbose);
}

/* The objects process pid maps now, probed (those probed for it, or for
 * every process, already are), its mappings read again. */
static int probe_objects(struct multi *m, struct collect_proc *p)
{
	int n = probes_attach_process(m->skel, m->probes, p->pid, multi_attach_pid(m, p->pid),
				      m->o->verbose);

	if (n < 0 && n != -ENOENT && n != -ESRCH && m->o->verbose)
		fprintf(stderr, "tracer: probing process %d: %s\n", p->pid, strerror(-n));
	symbolize_refresh(p->sym);
	if (m->unwind)
		unwind_maps_install(m->unwind, p->pid);
	return n;
}

/* Its own CPython frames (not yet recognised: each poll looks, for
 * attempts polls). */
static void own_python(struct multi *m, struct collect_proc *p, int attempts)
{
	struct python_frames *py;

	if (python_frames_open(m->skel, p->pid, &py))
		return;
	python_frames_own_only(py);
	python_frames_set_attempts(py, attempts);
	collect_set_python(m->collect, p->pid, py);
	p->python_probed = false;
	python_frames_poll(py);
}

/* Starts tracing pid: indexed (unless BPF did), its CPython (a forked
 * child's is its parent's: parent_py), its tables and its probes. */
static int trace_process(struct multi *m, pid_t pid, uint32_t flags,
			 struct python_frames *parent_py, int attempts)
{
	struct collect_proc *p;
	int err;

	if (!in_traced_pids(m, pid) && (err = collect_index_process(m->skel, pid)))
		return err;
	p = collect_process(m->collect, pid);
	if (!p)
		return -ENOMEM;
	p->flags |= flags;
	p->set_up = true;
	if (parent_py && !python_frames_adopt(parent_py, pid))
		collect_set_python(m->collect, pid, parent_py);
	else
		own_python(m, p, attempts);
	if (m->unwind)
		unwind_maps_install(m->unwind, pid);
	/* a process that started after us, with an allocator no other had
	 * (a container's libc, a preloaded one): probed only now */
	if (probe_objects(m, p) > 0 && (flags & SNAPSHOT_PROCESS_STARTED_AFTER))
		p->flags |= SNAPSHOT_PROCESS_ATTACHED_LATE;
	python_probes(m, p);
	return 0;
}

/* Whether -a traces pid found at the start. */
static bool wanted_at_start(struct multi *m, pid_t pid)
{
	return pid != getpid() && !excluded(m->o, pid) && target_user_process(pid) &&
	       comm_wanted(m->o, pid) && cgroup_wanted(m->o, pid);
}

int multi_start(struct multi *m)
{
	const struct session_options *o = m->o;
	int xfd = bpf_map__fd(m->skel->maps.excluded_pids), err;
	size_t n = 0;

	for (size_t i = 0; i < o->nexclude; i++) {
		__u32 key = (__u32)o->exclude_pids[i];
		__u8 one = 1;

		bpf_map_update_elem(xfd, &key, &one, BPF_ANY);
	}
	if (!o->all) {
		for (size_t i = 0; i < o->npids; i++) {
			__u32 key = (__u32)o->pids[i];
			__u8 one = 1;
			char why[256];

			bpf_map_update_elem(bpf_map__fd(m->skel->maps.kept_pids), &key, &one, BPF_ANY);
			if (target_traceable(o->pids[i], why, sizeof(why))) {
				fprintf(stderr, "tracer: %s\n", why);
				return -EINVAL;
			}
		}
		for (size_t i = 0; i < o->npids; i++) {
			err = trace_process(m, o->pids[i], 0, NULL, 400);
			if (err) {
				fprintf(stderr, "tracer: cannot trace process %d: %s\n", o->pids[i],
					strerror(-err));
				return err;
			}
			n++;
		}
	} else {
		DIR *d = opendir("/proc");
		struct dirent *e;

		if (!d) {
			fprintf(stderr, "tracer: cannot read /proc: %s\n", strerror(errno));
			return -errno;
		}
		while ((e = readdir(d))) {
			char *end;
			long pid = strtol(e->d_name, &end, 10);

			if (*end || pid <= 0 || pid > INT_MAX || !wanted_at_start(m, (pid_t)pid))
				continue;
			/* a process that has run a while has its interpreter or not:
			 * a few looks, for one that is starting */
			err = trace_process(m, (pid_t)pid, 0, NULL, 8);
			if (err == -ENOSPC || err == -E2BIG) {
				fprintf(stderr, "tracer: warning: the process table is full: %ld "
					"and later processes are not traced\n", pid);
				break;
			}
			if (!err)
				n++;
		}
		closedir(d);
	}
	m->started = n;
	m->notices_seen = 0;
	return (int)n;
}

struct notice {
	__u32 tgid, what;
};

static int read_notices(struct multi *m, struct notice **out, size_t *n)
{
	int fd = bpf_map__fd(m->skel->maps.proc_notices);
	struct notice *list = NULL;
	size_t cap = 0;
	__u32 key, next, *prev = NULL, what;

	*n = 0;
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &what))
			continue;
		if (array_reserve((void **)&list, &cap, sizeof(*list), *n + 1))
			break;
		list[(*n)++] = (struct notice){key, what};
	}
	/* deleted after the walk: a hash map's walk restarts at a deleted key */
	for (size_t i = 0; i < *n; i++)
		bpf_map_delete_elem(fd, &list[i].tgid);
	*out = list;
	return 0;
}

static uint64_t notices_lost(struct multi *m)
{
	struct tracer_counters sum;

	collect_read_counters(m->collect, &sum);
	return sum.c[TRACER_CNT_NOTICES_LOST];
}

/* A process BPF noticed: newly traced (fork, exec), exec'd, or it loaded
 * objects. */
static void handle_notice(struct multi *m, pid_t pid, __u32 what)
{
	struct collect_proc *p = collect_find_process(m->collect, pid);
	uint32_t late = m->per_process_links ? SNAPSHOT_PROCESS_ATTACHED_LATE : 0;

	if (!in_traced_pids(m, pid) || !target_alive(pid)) {
		int nfd = bpf_map__fd(m->skel->maps.exit_notes);
		struct tracer_exit_note note;
		__u32 key = (__u32)pid;

		/* gone already (BPF noted its exit), or no longer traced: one
		 * only the probes attached for it would have seen is lost; its
		 * note, which no row takes, goes (not for a later pid) */
		if (m->per_process_links && (!p || !p->set_up) && !target_alive(pid) &&
		    !bpf_map_lookup_elem(nfd, &key, &note)) {
			m->collect->gone_before_probed++;
			if (!p)
				bpf_map_delete_elem(nfd, &key);
		}
		return;
	}
	if (!p || !p->set_up) { /* an entry a snapshot made: not set up yet */
		struct collect_proc *parent = NULL;
		struct python_frames *parent_py = NULL;

		if (!(what & TRACER_NOTICE_EXEC)) {
			/* a fork: the same interpreter as its parent's */
			parent = collect_find_process(m->collect, target_parent(pid));
			if (parent && python_frames_describe(parent->py))
				parent_py = parent->py;
		}
		if (!trace_process(m, pid, SNAPSHOT_PROCESS_STARTED_AFTER | late, parent_py, 400) &&
		    m->o->verbose)
			fprintf(stderr, "tracer: tracing pid %d too, started after the tracer\n", pid);
		return;
	}
	if (what & TRACER_NOTICE_EXEC) {
		char buf[4096];

		/* a new program: its command, and its own interpreter if any */
		if (!target_command(pid, buf, sizeof(buf))) {
			free(p->command);
			p->command = strdup(buf);
		}
		if (target_comm(pid, p->comm, sizeof(p->comm)))
			p->comm[0] = '\0';
		own_python(m, p, 400);
	}
	if ((what & (TRACER_NOTICE_LOADED | TRACER_NOTICE_EXEC)) && probe_objects(m, p) > 0 &&
	    (what & TRACER_NOTICE_EXEC))
		p->flags |= SNAPSHOT_PROCESS_ATTACHED_LATE; /* its new image's allocator */
}

/* Processes in traced_pids without an entry (their notice was lost). */
static void rescan(struct multi *m)
{
	int fd = bpf_map__fd(m->skel->maps.traced_pids);
	__u32 key, next, *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		struct collect_proc *p = collect_find_process(m->collect, (pid_t)key);

		if ((!p || !p->set_up) && target_alive((pid_t)key))
			handle_notice(m, (pid_t)key, TRACER_NOTICE_NEW | TRACER_NOTICE_EXEC);
	}
}

void multi_poll(struct multi *m, double now)
{
	uint64_t seen = __atomic_load_n(&m->skel->bss->notices, __ATOMIC_RELAXED);

	if (seen != m->notices_seen) {
		struct notice *list;
		size_t n;
		uint64_t lost = notices_lost(m);

		m->notices_seen = seen;
		read_notices(m, &list, &n);
		for (size_t i = 0; i < n; i++)
			handle_notice(m, (pid_t)list[i].tgid, list[i].what);
		free(list);
		if (lost != m->lost_seen) {
			m->lost_seen = lost;
			rescan(m);
		}
	}
	if (now < m->next_python_poll)
		return;
	m->next_python_poll = now + 0.25;
	/* each interpreter once (a forked child shares its parent's) */
	for (size_t i = 0; i < m->collect->nprocs; i++) {
		struct collect_proc *p = &m->collect->procs[i];
		bool polled = false;

		for (size_t j = 0; j < i && !polled && p->py; j++)
			polled = m->collect->procs[j].py == p->py;
		if (p->py && !polled)
			python_frames_poll(p->py);
		python_probes(m, p);
	}
}

bool multi_alive(struct multi *m)
{
	if (m->o->all)
		return true;
	for (size_t i = 0; i < m->o->npids; i++)
		if (target_alive(m->o->pids[i]))
			return true;
	for (size_t i = 0; i < m->collect->nprocs; i++)
		if (target_alive(m->collect->procs[i].pid))
			return true;
	return false;
}
