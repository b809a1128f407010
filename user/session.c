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

#include "budget.h"
#include "collect.h"
#include "elfsym.h"
#include "model/snapfile.h"
#include "model/snapshot.h"
#include "multi.h"
#include "probes.h"
#include "python/alloc.h"
#include "python/frames.h"
#include "report/html.h"
#include "session.h"
#include "symbolize.h"
#include "target.h"
#include "tracer.h"
#include "tracer.skel.h"
#include "unwind/maps.h"
#include "util/outfile.h"
#include "util/progress.h"
#include "util/util.h"

/* Every signal that would end the tracer ends it through the normal path,
 * so that what it changed (--hook-pymalloc) is restored; SIGUSR1 takes a
 * snapshot now (tracemalloc's take_snapshot(): the report, and the -o
 * file), SIGUSR2 resets the peak (reset_peak()). */
static volatile sig_atomic_t stop_signal, snapshot_requested, reset_peak_requested;
static volatile sig_atomic_t hangup_requested; /* SIGHUP, for a consumer that takes it */
static sigset_t loop_mask;   /* the loop's wait: SIGCHLD unblocked */
static sigset_t start_mask;  /* as the tracer was started: a launched command's */
static bool hangup_wanted;   /* a consumer takes SIGHUP (tracer serve: its log) */

static void on_signal(int sig)
{
	if (sig == SIGCHLD)
		return; /* only to end the loop's wait: a traced child stopped */
	if (sig == SIGUSR1)
		snapshot_requested = 1;
	else if (sig == SIGUSR2)
		reset_peak_requested = 1;
	else if (sig == SIGHUP && hangup_wanted)
		hangup_requested = 1;
	else
		stop_signal = sig;
}

static void catch_signals(void)
{
	static const int ending[] = {SIGINT,  SIGTERM, SIGHUP,	  SIGQUIT, SIGALRM,
				     SIGUSR1, SIGUSR2, SIGXCPU,	  SIGXFSZ, SIGVTALRM,
				     SIGPROF, SIGPWR,  SIGSTKFLT, SIGIO};
	struct sigaction sa = {.sa_handler = on_signal};

	sigset_t chld;

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < ARRAY_SIZE(ending); i++)
		sigaction(ending[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN); /* a closed stdout is an EPIPE to report, not a death */
	/* A launched process waits in its stops for the loop: SIGCHLD, blocked
	 * but for the loop's wait (ppoll), wakes it at once. */
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &start_mask);
	loop_mask = start_mask;
	sigdelset(&loop_mask, SIGCHLD);
}

static double now_s(void)
{
	return collect_now_ns() / 1e9;
}

/* libbpf says nothing, but its warnings with $TRACER_DEBUG, and everything
 * (each program's verifier statistics among it) with
 * $TRACER_VERIFIER_STATS: what a change to bpf/ costs at every load. */
static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (getenv("TRACER_VERIFIER_STATS") ||
	    (level == LIBBPF_WARN && getenv("TRACER_DEBUG")))
		return vfprintf(stderr, fmt, ap);
	return 0;
}

struct session {
	const struct session_options *o;
	struct tracer_bpf *skel;
	struct probes probes;
	struct collector collect;
	struct python_frames *py; /* the target's Python frames, when it runs CPython */
	pid_t pid;
	unsigned saved;		     /* snapshots written with -o (the %n of the next is saved+1) */
	int save_error;		     /* the last -o write that failed, or 0 */
	struct python_alloc pyalloc; /* CPython's allocator tables, once found */
	bool python_alloc_done;
	int python_alloc_err; /* python_allocators' at a stop, for the loop to end on */
	uint64_t stops[2];    /* launched threads stopped for us: for CPython, for loads */
	bool releasing;	      /* release_stops: the command is let go */
	bool release_at_report; /* the last report: the command is let go as it is made */
	struct resolve_options resolve; /* how tracebacks are made (and walked) */
	struct unwind_maps *unwind; /* nframe > 1: the native walker's tables */
	uint64_t unwind_seen;	    /* unwind_wanted when the tables were last installed */
	double next_unwind;	    /* when they may be installed again */
	uint64_t loader_seen;	    /* loader_changes when objects were last probed */
	uint64_t execs_seen;	    /* execs when the command was last read */
	/* multi (-a, several -p): each process on its own, found at the
	 * start and then by BPF's notices */
	bool multi;
	struct multi many;
	/* --format html: traced memory at each report so far, for the page's
	 * memory over time */
	struct html_series_point *series;
	size_t nseries, cap_series;
	struct budget *budget; /* --budget, or NULL */
};

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

/* -o: the snapshot file of this report, its name expanded from the pattern.
 * A file that cannot be written is said and remembered; the report and the
 * tracing go on. */
/* Snapshots with this many traces take a noticeable time to write. */
#define SAVE_PROGRESS_TRACES (1u << 20)

static void save_snapshot(struct session *s, const struct snapshot *snap)
{
	char path[PATH_MAX], why[PATH_MAX + 256] = "";
	int err;

	err = snapfile_expand_name(s->o->output, ++s->saved, (long long)snap->taken_at, path,
				   sizeof(path));
	if (err)
		snprintf(why, sizeof(why), "%s: name too long", s->o->output);
	else {
		struct progress p;

		/* one encoding and one write: said beforehand when big */
		progress_begin(&p, stderr, "saving the snapshot, traces", 0);
		if (snap->ntraces >= SAVE_PROGRESS_TRACES)
			progress_show(&p, snap->ntraces);
		err = snapfile_write(snap, path, why, sizeof(why));
		progress_end(&p);
	}
	if (err) {
		fprintf(stderr, "tracer: snapshot %u not saved: %s\n", s->saved, why);
		s->save_error = err;
	} else if (s->o->verbose) {
		fprintf(stderr, "tracer: snapshot written to %s\n", path);
	}
}

/* --format html: this report's point of the series, then the page, to
 * the -o file (named as snapshots are: %n, %t) or standard output. A page
 * that cannot be written is said and remembered, as a snapshot is. */
static int write_page(struct session *s, const struct snapshot *snap)
{
	char path[PATH_MAX], why[PATH_MAX + 256] = "";
	struct outfile *file = NULL;
	struct html_page page;
	uint64_t current, peak;
	int err;

	if (s->nseries == s->cap_series) {
		size_t cap = s->cap_series ? s->cap_series * 2 : 64;
		struct html_series_point *p = realloc(s->series, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		s->series = p;
		s->cap_series = cap;
	}
	snapshot_traced_memory(snap, &current, &peak); /* filters leave it alone */
	s->series[s->nseries++] = (struct html_series_point){
	    .seconds = snap->duration_ns / 1e9, .traced_current = current, .traced_peak = peak};
	html_page_init(&page, snap, NULL, &s->o->report);
	/* one report at the end has no series to draw */
	if (s->o->interval > 0 || s->nseries > 1) {
		page.series = s->series;
		page.nseries = s->nseries;
	}
	if (!s->o->output) {
		err = html_write(stdout, &page);
		if (!err && fflush(stdout))
			err = -errno;
		return err;
	}
	err = snapfile_expand_name(s->o->output, ++s->saved, (long long)snap->taken_at, path,
				   sizeof(path));
	if (err)
		snprintf(why, sizeof(why), "%s: name too long", s->o->output);
	else
		err = outfile_create(path, &file, why, sizeof(why));
	if (!err) {
		err = html_write(outfile_stream(file), &page);
		if (err) {
			snprintf(why, sizeof(why), "%s", strerror(-err));
			outfile_discard(file);
		} else {
			err = outfile_commit(file, why, sizeof(why));
		}
	}
	if (err) {
		fprintf(stderr, "tracer: report %u not written: %s\n", s->saved, why);
		s->save_error = err;
	} else if (s->o->verbose) {
		fprintf(stderr, "tracer: report written to %s\n", path);
	}
	return 0;
}

static void release_stops(struct session *s);

static int report_now(struct session *s);

/* A report, with every signal held until it is written: one that a handler
 * takes, arriving while a write waits on a full pipe, fails that write
 * (EINTR) and the report with it (1 run in ~15 of a --follow test with
 * 6,000 children). They are taken once it is done. */
static int report(struct session *s)
{
	sigset_t all, before;
	int err;

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &before);
	err = report_now(s);
	sigprocmask(SIG_SETMASK, &before, NULL);
	return err;
}

static int report_now(struct session *s)
{
	bool html = s->o->report.format == REPORT_HTML;
	struct snapshot *snap;
	int err = 0;

	if (s->multi) /* the processes noticed since the last turn, named */
		multi_poll(&s->many, now_s());
	/* a change since the last turn, followed before the report; not said
	 * for a launched command, whose interpreter sets its tables
	 * (PYTHONMALLOC) after the tracer first reads them */
	python_alloc_check(&s->pyalloc, !s->o->argv);
	snap = collect_snapshot(&s->collect);
	if (!snap) {
		fprintf(stderr, "tracer: cannot take a snapshot: out of memory\n");
		return -ENOMEM;
	}
	/* once its stacks are resolved: the stops it did not take are counted */
	if (s->release_at_report) {
		release_stops(s);
		if (snapshot_set_counter(snap, COLLECT_STOPS_KEPT, s->collect.stops_kept)) {
			snapshot_free(snap);
			return -ENOMEM;
		}
	}
	budget_describe(s->budget, snap);
	if (s->o->output && !html) /* with html, -o names the page */
		save_snapshot(s, snap);
	if (!filter_set_empty(s->o->filters)) {
		struct snapshot *all = snap;

		err = filter_set_apply(all, s->o->filters, &snap);
		snapshot_free(all);
		if (err)
			snap = NULL;
	}
	if (!err && html)
		err = write_page(s, snap);
	else if (!err)
		err = report_snapshot(stdout, snap, &s->o->report);
	fflush(stdout);
	snapshot_free(snap);
	return err;
}

/* The libraries a launched command will map, found as the dynamic linker
 * will (breadth of DT_NEEDED, each once, 256 at most), each given to fn. */
#define LAUNCH_MAX_LIBS 256

struct launch_libs {
	char *paths[LAUNCH_MAX_LIBS];
	size_t n;
	const char *runpath, *origin;
};

static void add_launch_lib(const char *name, void *arg)
{
	struct launch_libs *l = arg;
	char path[PATH_MAX];

	if (l->n >= LAUNCH_MAX_LIBS ||
	    target_find_library(name, l->runpath, l->origin, path, sizeof(path)))
		return;
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->paths[i], path))
			return;
	l->paths[l->n] = strdup(path);
	if (l->paths[l->n])
		l->n++;
}

/* Adds the needed libraries of the object at path to l. */
static void needed_of(struct launch_libs *l, const char *path)
{
	char runpath[4096], origin[PATH_MAX], *slash;
	struct elfsym_file *f;

	if (elfsym_open(path, &f))
		return;
	runpath[0] = '\0';
	elfsym_needed(f, NULL, NULL, runpath, sizeof(runpath));
	snprintf(origin, sizeof(origin), "%s", path);
	slash = strrchr(origin, '/');
	if (slash)
		*slash = '\0';
	l->runpath = runpath;
	l->origin = origin;
	elfsym_needed(f, add_launch_lib, l, NULL, 0);
	elfsym_close(f);
}

/* nframe > 1: the unwind tables of what the target maps (attach), or of
 * the command, its libraries and ours (launch), built before the maps are
 * sized. */
static int prepare_unwind(struct session *s)
{
	struct launch_libs libs = {0};
	char exe[PATH_MAX];
	int err;

	err = unwind_maps_new(&s->unwind);
	if (err)
		return err;
	if (s->o->all)
		return unwind_maps_prepare_process(s->unwind, getpid());
	if (!s->o->argv) {
		for (size_t i = 0; i < s->o->npids && !err; i++)
			err = unwind_maps_prepare_process(s->unwind, s->o->pids[i]);
		return err;
	}
	err = unwind_maps_prepare_process(s->unwind, getpid()); /* our libc, as attach_launch */
	if (!err && !target_find_executable(s->o->argv[0], exe, sizeof(exe))) {
		err = unwind_maps_prepare_file(s->unwind, exe);
		needed_of(&libs, exe);
		for (size_t i = 0; i < libs.n && !err; i++) {
			needed_of(&libs, libs.paths[i]);
			err = unwind_maps_prepare_file(s->unwind, libs.paths[i]);
		}
	}
	for (size_t i = 0; i < libs.n; i++)
		free(libs.paths[i]);
	return err;
}

/* A traced process has just exec'd (stopped there, nothing of the new
 * program run): its table now, with the executable's libraries, so that
 * its first allocations unwind whole (the slow path finds them by identity
 * once mapped). */
static void unwind_exec(struct session *s, pid_t pid)
{
	struct launch_libs libs = {0};
	char exe[64];

	if (!s->unwind)
		return;
	snprintf(exe, sizeof(exe), "/proc/%d/exe", pid);
	needed_of(&libs, exe);
	for (size_t i = 0; i < libs.n; i++) {
		needed_of(&libs, libs.paths[i]);
		unwind_maps_prepare_file(s->unwind, libs.paths[i]);
	}
	for (size_t i = 0; i < libs.n; i++)
		free(libs.paths[i]);
	unwind_maps_install(s->unwind, pid);
}

/* Installs the unwind tables of every traced process whose mappings the
 * walker asked for (a process not yet tabled, an address in no mapping:
 * a library mapped since), at most every 0.1 s. */
static void refresh_unwind(struct session *s, bool now)
{
	__u64 wanted;
	double t = now_s();

	if (!s->unwind)
		return;
	wanted = __atomic_load_n(&s->skel->bss->unwind_wanted, __ATOMIC_RELAXED);
	if (!now && (wanted == s->unwind_seen || t < s->next_unwind))
		return;
	s->unwind_seen = wanted;
	s->next_unwind = t + 0.1;
	if (s->pid)
		unwind_maps_install(s->unwind, s->pid);
	if (s->o->follow || s->multi) {
		int fd = bpf_map__fd(s->skel->maps.traced_pids);
		__u32 key, next, *prev = NULL;

		while (!bpf_map_get_next_key(fd, prev, &next)) {
			key = next;
			prev = &key;
			if ((pid_t)key != s->pid && target_alive((pid_t)key))
				unwind_maps_install(s->unwind, (pid_t)key);
		}
	}
}

static int setup_bpf(struct session *s)
{
	const struct session_options *o = s->o;
	struct bpf_program *prog;
	int err;

	s->skel = tracer_bpf__open();
	if (!s->skel) {
		fprintf(stderr, "tracer: cannot open the BPF object: %s\n", strerror(errno));
		return -errno;
	}
	s->skel->rodata->probe_only = o->probe_only;
	s->skel->rodata->loader_stop = o->argv != NULL;
	s->skel->rodata->keep_exited = o->keep_exited;
	s->skel->rodata->count_hits = o->budget > 0;
	s->skel->rodata->filter_pids = o->follow || s->multi;
	s->skel->rodata->proc_index_limit = o->proc_indexes;
	if (s->multi && multi_configure(&s->many, o, s->skel))
		return 2;
	s->skel->rodata->capture_stack = o->nframe > 1;
	s->skel->rodata->native_with_python = o->native;
	s->skel->rodata->nframe = o->nframe;
	s->skel->rodata->native_nframe = resolve_walk_depth(&s->resolve);
	s->skel->rodata->alloc_buckets = o->probe_only ? 1 : session_alloc_buckets(o->max_allocs);
	s->skel->rodata->max_traces = o->max_allocs;
	bpf_map__set_max_entries(s->skel->maps.allocs, s->skel->rodata->alloc_buckets);
	bpf_map__set_max_entries(s->skel->maps.allocs_overflow,
				 o->probe_only ? 1 : o->max_allocs / 4 + 64);
	/* a mark per small pymalloc block at most: one per trace */
	bpf_map__set_max_entries(s->skel->maps.pool_marks, o->probe_only ? 1 : o->max_allocs);
	if (o->nframe > 1 && !o->probe_only) {
		uint32_t rows, pages;

		if (prepare_unwind(s)) {
			fprintf(stderr, "tracer: out of memory\n");
			return -ENOMEM;
		}
		unwind_maps_capacity(s->unwind, &rows, &pages);
		if (o->all) { /* what processes will map is not known: room for much */
			rows = rows < UNWIND_MAX_ROWS ? UNWIND_MAX_ROWS : rows;
			pages = pages < (1u << 20) ? 1u << 20 : pages;
		}
		bpf_map__set_max_entries(s->skel->maps.unwind_rows, rows);
		bpf_map__set_max_entries(s->skel->maps.unwind_pages, pages);
		bpf_map__set_value_size(s->skel->maps.native_stacks,
					offsetof(struct tracer_native_stack, pcs) +
					    resolve_walk_depth(&s->resolve) * sizeof(__u64));
		bpf_map__set_max_entries(s->skel->maps.native_stacks, o->max_stacks);
	}
	if (!o->follow && !o->all)
		bpf_program__set_autoload(s->skel->progs.follow_fork, false);
	if (!o->follow && !s->multi)
		bpf_program__set_autoload(s->skel->progs.traced_exit, false);
	/* every uprobe program goes on uprobe-multi links (probes.c) */
	bpf_object__for_each_program(prog, s->skel->obj)
		if (bpf_program__type(prog) == BPF_PROG_TYPE_KPROBE)
			bpf_program__set_expected_attach_type(prog, 48 /* BPF_TRACE_UPROBE_MULTI */);
	if (getenv("TRACER_VERIFIER_STATS"))
		bpf_object__for_each_program(prog, s->skel->obj)
			bpf_program__set_log_level(prog, 4 /* statistics */);
	err = tracer_bpf__load(s->skel);
	if (err) {
		fprintf(stderr, "tracer: cannot load the BPF programs: %s\n", strerror(-err));
		return err;
	}
	if (s->unwind) {
		err = unwind_maps_bind(s->unwind, bpf_map__fd(s->skel->maps.unwind_rows),
				       bpf_map__max_entries(s->skel->maps.unwind_rows),
				       bpf_map__fd(s->skel->maps.unwind_pages),
				       bpf_map__max_entries(s->skel->maps.unwind_pages),
				       bpf_map__fd(s->skel->maps.unwind_procs),
				       bpf_map__fd(s->skel->maps.unwind_files));
		if (err) {
			fprintf(stderr, "tracer: cannot map the unwind tables: %s\n",
				strerror(-err));
			return err;
		}
	}
	/* the exec tracepoint (and with --follow the fork one) */
	err = tracer_bpf__attach(s->skel);
	if (err) {
		fprintf(stderr, "tracer: cannot attach the fork and exec tracepoints: %s\n",
			strerror(-err));
		return err;
	}
	return 0;
}

/* The pid a process's links are made for: -1 (every process, filtered in
 * BPF) when children must be traced from their first instruction
 * (--follow, -a without filters), else the process itself. */
static pid_t attach_pid_of(const struct session *s, pid_t pid)
{
	if (s->multi)
		return multi_attach_pid(&s->many, pid);
	return s->o->follow ? -1 : s->pid;
}


/* The needed libraries of the launched command (the dynamic linker's
 * search, needed_of), probed when they define allocator functions
 * (libstdc++'s operator new, an allocator library); libc is ours, probed
 * already. */
static void attach_needed(struct session *s, const char *exe, pid_t attach_pid)
{
	struct launch_libs libs = {0};

	needed_of(&libs, exe);
	for (size_t i = 0; i < libs.n; i++) {
		const char *base = strrchr(libs.paths[i], '/');

		base = base ? base + 1 : libs.paths[i];
		if (strncmp(base, "libc.so", 7))
			probes_attach_file(s->skel, &s->probes, attach_pid, libs.paths[i],
					   s->o->verbose);
		free(libs.paths[i]);
	}
}

/* The files a launched command will map are not known before it runs: probe
 * the C library this system uses (ours), the executable itself (which
 * defines malloc when it is linked statically) and its needed libraries. */
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
	if (!target_find_executable(s->o->argv[0], exe, sizeof(exe))) {
		r = probes_attach_file(s->skel, &s->probes, attach_pid, exe, s->o->verbose);
		if (r > 0)
			n += r;
		attach_needed(s, exe, attach_pid);
	}
	return n;
}

static int python_allocators(struct session *s);

/* The launched command's CPython at a stop: recognised (and then its
 * allocators probed) before it goes on, and the stacks captured so far
 * resolved while their code objects live. */
static void python_stop(struct session *s)
{
	python_frames_poll(s->py);
	if (!s->python_alloc_done)
		s->python_alloc_err = python_allocators(s);
}

/* The objects a traced process maps now (its new image at an exec stop,
 * what its dynamic linker just loaded at a loader stop, a dlopen): their
 * allocator functions probed, its unwind table and symbols read again,
 * and CPython recognised in the launched command before any of it runs. */
static void probe_new_objects(struct session *s, pid_t tgid)
{
	int n;

	n = probes_attach_process(s->skel, &s->probes, tgid, attach_pid_of(s, tgid),
				  s->o->verbose);
	if (n < 0 && s->o->verbose)
		fprintf(stderr, "tracer: probing what process %d loaded: %s\n", tgid,
			strerror(-n));
	symbolize_refresh(collect_symbolizer(&s->collect, tgid));
	if (s->unwind)
		unwind_maps_install(s->unwind, tgid);
	if (tgid == s->pid && !s->multi)
		python_stop(s);
}

/* Whether a SIGSTOP of thread tid is one that BPF sent (stop_for_tracer):
 * then the stop is ours, the signal goes no further, and *why says what
 * to look at (enum tracer_stop). */
static bool stopped_for_us(struct session *s, pid_t tid, __u32 *why)
{
	int fd = bpf_map__fd(s->skel->maps.loader_stops);
	__u32 key = (__u32)tid;

	return !bpf_map_lookup_elem(fd, &key, why) && !bpf_map_delete_elem(fd, &key);
}

/* Launched commands (and with --follow their children) are ptrace-seized
 * to stop at their exit while their mappings still exist, at each exec
 * and where their dynamic linker has loaded objects (loader_changed), so
 * that what they load is probed before it runs. Every other stop is
 * resumed at once, with its signal. Returns true when the launched command
 * itself has ended. */
static bool reap_traced(struct session *s, int *exit_status)
{
	int status;
	pid_t r;

	while ((r = waitpid(-1, &status, WNOHANG | __WALL)) > 0) {
		int sig, event;
		__u32 why;

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
		if (event == PTRACE_EVENT_EXIT && target_tgid_of(r) != r) {
			sig = 0; /* a thread ends, its process goes on */
		} else if (event == PTRACE_EVENT_EXIT) {
			/* its mappings, for its blocks' frames, while they exist:
			 * the command's, and with --keep-exited a child's */
			struct symbolizer *sym = r == s->pid || s->o->keep_exited
							 ? collect_symbolizer(&s->collect, r)
							 : NULL;

			if (sym)
				symbolize_refresh(sym);
			if (s->unwind)
				unwind_maps_forget(s->unwind, r);
			if (r == s->pid)
				python_frames_poll(s->py);
			sig = 0;
		} else if (event == PTRACE_EVENT_STOP) {
			if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
				ptrace(PTRACE_LISTEN, r, NULL, NULL); /* a real group stop */
				continue;
			}
			sig = 0;
		} else if (event == PTRACE_EVENT_EXEC) {
			/* the new program (of the command, or a child of --follow)
			 * is mapped with its dynamic linker, nothing of it has run
			 * yet: the moment to probe a static allocator and the
			 * loader's hook, and to recognise a static CPython */
			unwind_exec(s, r);
			if (r == s->pid) {
				target_command(r, s->collect.command, sizeof(s->collect.command));
				python_frames_exec(s->py);
			}
			probe_new_objects(s, r);
			sig = 0;
		} else if (!event && sig == SIGSTOP && stopped_for_us(s, r, &why)) {
			pid_t tgid = target_tgid_of(r);

			s->stops[why == TRACER_STOP_LOADER]++;
			if (s->releasing)
				; /* only taken, the probes are going */
			else if (why == TRACER_STOP_LOADER && tgid)
				probe_new_objects(s, tgid);
			else if (tgid == s->pid)
				python_stop(s);
			sig = 0;
		} else if (event) {
			sig = 0; /* fork, vfork, exec */
		}
		ptrace(PTRACE_CONT, r, NULL, (void *)(long)sig);
	}
	return false;
}

/* PyTypeObject.tp_dealloc: after ob_refcnt, ob_type, ob_size, tp_name,
 * tp_basicsize and tp_itemsize in every CPython 3 */
#define PY_TYPE_TP_DEALLOC 48

/* A launched CPython stops where a code object that an unresolved stack
 * refers to is freed (py_code_dealloc), so that its frames are named. */
static void watch_code_objects(struct session *s, const struct python_target *t)
{
	uint64_t dealloc = 0;

	if (!t->code_type || !t->mem ||
	    target_mem_read(t->mem, t->code_type + PY_TYPE_TP_DEALLOC, &dealloc, sizeof(dealloc)) ||
	    !dealloc)
		return;
	probes_attach_code_dealloc(s->skel, &s->probes, s->pid, s->o->follow ? -1 : s->pid,
				   dealloc, s->o->verbose);
}

/* Before the tracer lets a launched command go: no thread of it may keep a
 * SIGSTOP of ours (sent, or in its signal-delivery stop), which would stop
 * its process for real once the tracer is gone. No new one is sent, and
 * those sent are taken (within 2 s: a thread that is gone has none); a
 * thread that still has one then is named and counted (a loss of the
 * report: collector.stops_kept). Once only. */
static void release_stops(struct session *s)
{
	int fd = bpf_map__fd(s->skel->maps.loader_stops), status;
	double until = now_s() + 2;
	__u32 key, next;

	if (s->releasing)
		return;
	s->skel->bss->stops_off = true;
	s->releasing = true;
	while (!bpf_map_get_next_key(fd, NULL, &next) && now_s() < until) {
		do {
			key = next;
			if (!target_alive((pid_t)key))
				bpf_map_delete_elem(fd, &key);
		} while (!bpf_map_get_next_key(fd, &key, &next));
		reap_traced(s, &status);
		ppoll(NULL, 0, &(struct timespec){.tv_nsec = 5 * 1000 * 1000}, &loop_mask);
	}
	for (int err = bpf_map_get_next_key(fd, NULL, &next); !err;
	     err = bpf_map_get_next_key(fd, &key, &next)) {
		key = next;
		if (!target_alive((pid_t)key))
			continue;
		s->collect.stops_kept++;
		fprintf(stderr,
			"tracer: warning: thread %u of process %d had not taken the tracer's stop "
			"after 2 s: its process may stop once the tracer is gone (kill -CONT %d)\n",
			key, target_tgid_of((pid_t)key), target_tgid_of((pid_t)key));
	}
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
	if (s->o->argv)
		watch_code_objects(s, t);
	return python_alloc_setup(&s->pyalloc, t, s->skel, &s->probes, s->pid,
				  s->o->follow ? -1 : s->pid, s->o->hook_pymalloc,
				  s->o->python_free_lists, s->o->verbose);
}

static void python_unhook(struct session *s)
{
	python_alloc_restore(&s->pyalloc);
}

/* A snapshot for the consumer (tracer serve's requests), built here
 * between polls so that the loop never waits on a client. */
static void feed_consumer(struct session *s)
{
	double t = now_s();
	struct snapshot *snap;

	if (s->multi)
		multi_poll(&s->many, t);
	snap = collect_snapshot(&s->collect);
	budget_describe(s->budget, snap);
	s->o->consumer->give(s->o->consumer->arg, snap, now_s() - t);
}

static int wait_loop(struct session *s, struct target_launch *launch, int *exit_status)
{
	const struct session_options *o = s->o;
	double started = s->collect.started_ns / 1e9;
	double next_report = o->interval > 0 ? started + o->interval : 0;
	double next_refresh = started + 0.05;
	int err;

	for (;;) {
		double t = now_s();

		if (stop_signal)
			return 0;
		budget_tick(s->budget);
		if (o->duration > 0 && t - started >= o->duration)
			return 0;
		if (launch) {
			if (reap_traced(s, exit_status))
				return 0;
		} else if (s->multi ? !multi_alive(&s->many) : !target_alive(s->pid)) {
			return 0;
		}
		if (s->multi)
			multi_poll(&s->many, t);
		if (t - started < 2 && !python_frames_describe(s->py))
			python_frames_poll(s->py); /* a starting interpreter: look often */
		if (!launch && !s->multi && s->skel->bss->execs != s->execs_seen) {
			/* the attached process is a new program now */
			s->execs_seen = s->skel->bss->execs;
			target_command(s->pid, s->collect.command, sizeof(s->collect.command));
			python_frames_exec(s->py);
		}
		if (!launch && !s->multi && s->skel->bss->loader_changes != s->loader_seen) {
			s->loader_seen = s->skel->bss->loader_changes;
			probe_new_objects(s, s->pid);
		}
		refresh_unwind(s, false);
		collect_drain_stacks(&s->collect, t >= next_refresh);
		if (t >= next_refresh) {
			collect_refresh(&s->collect);
			collect_sweep_gone(&s->collect);
			python_frames_poll(s->py);
			python_alloc_check(&s->pyalloc, !launch);
			next_refresh = t + 0.25;
		}
		if (s->python_alloc_err || python_allocators(s))
			return -EINVAL;
		if (reset_peak_requested) {
			reset_peak_requested = 0;
			collect_reset_peak(&s->collect);
		}
		if (o->consumer && o->consumer->wants(o->consumer->arg))
			feed_consumer(s);
		if (o->consumer && o->consumer->done && o->consumer->done(o->consumer->arg))
			return 0;
		if (hangup_requested) {
			hangup_requested = 0;
			o->consumer->hangup(o->consumer->arg);
		}
		if (snapshot_requested || (next_report && t >= next_report)) {
			if (!snapshot_requested)
				next_report += o->interval;
			snapshot_requested = 0;
			err = report(s);
			if (err)
				return err;
		}
		ppoll(NULL, 0, &(struct timespec){.tv_nsec = 20 * 1000 * 1000}, &loop_mask);
	}
}

/* Recognises CPython in the target now and configures its walker: 0, or
 * the exit status after one line. */
static int recognise_python(struct session *s)
{
	if (s->o->hook_pymalloc)
		python_frames_expect_hook(s->py);
	python_frames_poll(s->py);
	if (s->o->hook_pymalloc && !python_frames_describe(s->py)) {
		fprintf(stderr,
			"tracer: --hook-pymalloc: process %d runs no CPython that tracer "
			"knows\n",
			s->pid);
		return 2;
	}
	return 0;
}

/* -a, or several -p: every process on its own (multi.h). */
static int run_multi(struct session *s)
{
	const struct session_options *o = s->o;
	int n, err, exit_status;

	if (collect_open(&s->collect, s->skel, 0, &s->resolve, true, NULL)) {
		fprintf(stderr, "tracer: out of memory\n");
		return 1;
	}
	s->collect.unwind = s->unwind;
	s->collect.keep_exited = o->keep_exited;
	if (o->all) {
		snprintf(s->collect.command, sizeof(s->collect.command), "%s",
			 o->ncomms || o->ncgroups ? "every matching process" : "every process");
	} else {
		size_t len = 0;

		for (size_t i = 0; i < o->npids && len < sizeof(s->collect.command) - 16; i++)
			len += (size_t)snprintf(s->collect.command + len,
						sizeof(s->collect.command) - len, "%s%d",
						i ? ", " : "processes ", o->pids[i]);
	}
	s->many.probes = &s->probes;
	s->many.collect = &s->collect;
	s->many.unwind = s->unwind;
	n = multi_start(&s->many);
	if (n < 0)
		return n == -EINVAL || n == -ESRCH || n == -ENOENT ? 2 : 1;
	if (o->verbose)
		fprintf(stderr, "tracer: tracing %d processes with %zu probes in %zu files\n", n,
			s->probes.functions, s->probes.files);
	budget_start(s->budget, 0);
	err = wait_loop(s, NULL, &exit_status);
	if (!err && !o->consumer)
		err = report(s);
	if (err)
		return 1;
	if (s->save_error)
		return s->save_error == -ELOOP || s->save_error == -EEXIST ||
			       s->save_error == -EPERM || s->save_error == -EISDIR ||
			       s->save_error == -ENAMETOOLONG
			   ? 2
			   : 1;
	return 0;
}

int session_run(const struct session_options *o)
{
	struct session s = {.o = o,
			    .resolve = {.nframe = o->nframe,
					.native = o->native,
					.keep_plumbing = o->keep_allocator_frames}};
	struct target_launch launch = {.go_fd = -1, .err_fd = -1};
	int exit_status = -1, err, rc = 1, n;
	bool launched = false, released = false;

	libbpf_set_print(libbpf_quiet);
	if (geteuid() != 0) {
		fprintf(stderr, "tracer: must run as root (BPF and uprobes need it)\n");
		return 2;
	}
	/* several processes, each its own: -a, several -p, -p with --follow */
	s.multi = o->all || o->npids > 1 || (o->follow && !o->argv);
	if (o->pid && !s.multi) {
		char why[256];

		if (target_traceable(o->pid, why, sizeof(why))) {
			fprintf(stderr, "tracer: %s\n", why);
			return 2;
		}
		s.pid = o->pid;
	}
	hangup_wanted = o->consumer && o->consumer->hangup;
	catch_signals();

	if ((err = setup_bpf(&s))) {
		rc = err == 2 ? 2 : 1;
		goto out;
	}
	if (o->budget > 0 &&
	    budget_open(&s.budget, o->budget, s.skel, &s.probes, o->follow || s.multi, o->verbose))
		goto out;
	if (s.multi) {
		rc = run_multi(&s);
		goto out;
	}
	s.skel->bss->target_tgid = (__u32)s.pid; /* -p; a launch sets it below */

	if (o->argv) {
		static char pymalloc[] = "PYTHONMALLOC=malloc";
		char *extra[] = {o->python_malloc ? pymalloc : NULL, NULL};

		launch.mask = start_mask;
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
			collect_index_process(s.skel, s.pid);
		n = python_frames_open(s.skel, s.pid, &s.py) ? -ENOMEM
							      : attach_launch(&s, o->follow ? -1 : s.pid);
	} else {
		if (o->follow)
			collect_index_process(s.skel, s.pid);
		/* Python's walker first: configured before any probe can record
		 * an allocation of a thread running Python */
		if (python_frames_open(s.skel, s.pid, &s.py)) {
			fprintf(stderr, "tracer: out of memory\n");
			goto out;
		}
		if ((rc = recognise_python(&s)))
			goto out;
		rc = 1;
		/* the native walker's tables, too, before any probe records */
		if (s.unwind)
			unwind_maps_install(s.unwind, s.pid);
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
		/* every thread: any of them may stop at its dynamic linker */
		long opts = PTRACE_O_TRACEEXIT | PTRACE_O_TRACEEXEC | PTRACE_O_TRACECLONE |
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
	if (collect_open(&s.collect, s.skel, s.pid,
			 &s.resolve,
			 o->follow, s.py)) {
		fprintf(stderr, "tracer: out of memory\n");
		goto out;
	}
	s.collect.unwind = s.unwind;
	s.collect.keep_exited = o->keep_exited;
	if (launched && (rc = recognise_python(&s)))
		goto out;
	/* the allocator functions CPython's tables hold, probed where the
	 * symbol table did not already place them (and --hook-pymalloc) */
	if (python_allocators(&s)) {
		rc = 2;
		goto out;
	}
	rc = 1;
	if (o->verbose)
		fprintf(stderr, "tracer: tracing pid %d with %zu probes in %zu files\n", s.pid,
			s.probes.functions, s.probes.files);

	budget_start(s.budget, s.pid);
	err = wait_loop(&s, launched ? &launch : NULL, &exit_status);
	s.release_at_report = launched && released;
	/* said once tracing ends: an interpreter may be recognised late (one
	 * not yet initialised at the attach, a command's exec) */
	if (o->python_free_lists == PYTHON_FREE_LISTS_ASKED && !s.python_alloc_done)
		fprintf(stderr,
			"tracer: warning: --python-free-lists: process %d ran no CPython that "
			"tracer knows: nothing was moved\n",
			s.pid);
	if (!err && !o->consumer)
		err = report(&s);
	if (o->verbose && s.collect.swept_blocks)
		fprintf(stderr, "tracer: freed %llu slots of the allocation table that processes "
			"gone had left\n", (unsigned long long)s.collect.swept_blocks);
	if (o->verbose && launched)
		fprintf(stderr, "tracer: stopped the command %llu times where it loaded objects, "
			"%llu times for its CPython\n",
			(unsigned long long)s.stops[1], (unsigned long long)s.stops[0]);
	rc = err ? 1 : 0;
	if (!rc && s.save_error) /* refused (a link, a device, another's file): bad input */
		rc = s.save_error == -ELOOP || s.save_error == -EEXIST || s.save_error == -EPERM ||
			     s.save_error == -EISDIR || s.save_error == -ENAMETOOLONG
			 ? 2
			 : 1;
out:
	python_unhook(&s);
	if (launched && released)
		release_stops(&s);
	/* detach first: the target runs untraced from here on */
	probes_detach(&s.probes);
	if (launched && !released) {
		/* never let it run untraced when we failed before its exec */
		kill(s.pid, SIGKILL);
		waitpid(s.pid, NULL, 0);
	}
	collect_close(&s.collect);
	python_frames_close(s.py);
	unwind_maps_free(s.unwind);
	tracer_bpf__destroy(s.skel);
	budget_close(s.budget);
	free(s.series);
	return rc;
}
