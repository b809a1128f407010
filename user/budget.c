#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"
#include "collect.h"
#include "proc_index.h"
#include "target.h"
#include "util/util.h"

#define CALIBRATE_CALLS 10000 /* malloc+free pairs a helper's run makes */
#define CALIBRATE_RUNS 3      /* of each kind; the fastest counts */
#define CALIBRATE_WORK 8192   /* bytes a pair's work reads between the calls */
#define FIRST_PERIOD_S 0.1    /* the first: half of it traced whole, to measure */
/* The share of the budget the windows aim at: what the estimate misses
 * (the switching of windows, what a trap evicts beyond the calibration's
 * own) measured 1.3-1.5x on the request loop (make bench) */
#define BUDGET_AIM 0.7
/* CPU seconds a second under which a process is idle: its account does
 * not hold the windows shut (it allocates next to nothing) */
#define IDLE_CPU 0.005

/* One traced process's account, all in seconds of its CPU time. */
struct budget_proc {
	pid_t pid;
	uint32_t slot; /* in proc_hits */
	bool seen;     /* this period */
	struct tracer_hits last;
	double cpu_last;
	double cost; /* the tracer's, since tracing began */
	double cpu;  /* the process's, since then (cost included) */
	/* rates, per second of window (allocating) and of wall time (freeing;
	 * per second of window once the frees are windowed too) */
	double alloc_rate, free_rate, work_rate;
	bool rated;
};

struct budget {
	double ratio;
	struct tracer_bpf *skel;
	struct probes *probes;
	pid_t pid;
	bool follow, verbose;
	double hit_s;	 /* one hit's trap, calibrated */
	int stats_fd;	 /* the kernel's BPF run-time statistics, while open */
	uint64_t run_ns; /* the programs' run time at the last period's end */
	int ncpus;
	struct tracer_hits *percpu;
	struct budget_proc *procs;
	size_t nprocs, cap_procs;
	/* the windows */
	bool open, frees_windowed;
	unsigned windowed; /* PROBES_CLASS_BITs attached within windows only */
	double started, period_start, period_len, duty, opened_at, open_s, period_open_s;
	uint64_t windows, periods;
};

static double now_s(void)
{
	return collect_now_ns() / 1e9;
}

double budget_process_cpu(pid_t pid)
{
	char path[64], buf[128];
	double total = 0;
	struct dirent *d;
	DIR *dir;
	int n = 0;

	/* every thread's run time, to the nanosecond (/proc/PID/stat's ticks
	 * are 10 ms: too coarse for a period's share of a percent) */
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((d = readdir(dir)) && n < 4096) {
		unsigned long long ns;
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.20s/schedstat", (int)pid, d->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f) && sscanf(buf, "%llu", &ns) == 1) {
			total += ns / 1e9;
			n++;
		}
		fclose(f);
	}
	closedir(dir);
	return n ? total : -1;
}

/* The helper: malloc and free pairs, timed on its own CPU clock, one run
 * per byte read from in, each run's ns per pair written to out. */
static void helper_main(int in, int out)
{
	static unsigned char work[CALIBRATE_WORK];
	char c;

	while (read(in, &c, 1) == 1) {
		struct timespec a, b;
		uint64_t h = 0;
		double ns;

		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
		for (int i = 0; i < CALIBRATE_CALLS; i++) {
			void *v = malloc(24);

			/* some work of a program's between the calls: what a trap
			 * evicts from the caches it pays for, as a target does */
			for (size_t j = 0; j < sizeof(work); j += 64)
				h = (h ^ work[j]) * 0x100000001b3ull;
			__asm__ volatile("" : : "r"(v), "r"(h) : "memory");
			free(v);
		}
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
		ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / CALIBRATE_CALLS;
		if (write(out, &ns, sizeof(ns)) != sizeof(ns))
			break;
	}
	_exit(0);
}

/* The fastest of CALIBRATE_RUNS runs of the helper, in ns per pair. */
static double helper_runs(int to, int from)
{
	double best = -1, ns;

	for (int i = 0; i < CALIBRATE_RUNS; i++) {
		if (write(to, "r", 1) != 1 || read(from, &ns, sizeof(ns)) != sizeof(ns))
			return -1;
		if (best < 0 || ns < best)
			best = ns;
	}
	return best;
}

/* The path of the tracer's own libc, as /proc/self/maps gives it. */
static int own_libc(char *path, size_t len)
{
	struct target_maps self;
	int err = -ENOENT;

	if (target_read_maps(getpid(), &self))
		return -ENOENT;
	for (size_t i = 0; i < self.n; i++) {
		const char *p = self.m[i].path, *base = p ? strrchr(p, '/') : NULL;

		if (!self.m[i].exec || !base)
			continue;
		base++;
		if (!strncmp(base, "libc.so", 7) || !strncmp(base, "libc-", 5)) {
			snprintf(path, len, "%s", p);
			err = 0;
			break;
		}
	}
	target_maps_free(&self);
	return err;
}

/* What a hit costs: a helper's malloc and free pairs, unprobed then with
 * libc probed for it as a target's is (three hits a pair: malloc's entry
 * and return, free's entry; its programs return at once, it being no
 * target: their full run is added from the run-time statistics). */
static int calibrate(struct budget *b)
{
	int to[2], from[2], err = 0;
	struct probes cal = {0};
	double bare, probed;
	char libc[4096];
	pid_t helper;

	if (own_libc(libc, sizeof(libc)))
		return -ENOENT;
	if (pipe2(to, O_CLOEXEC) || pipe2(from, O_CLOEXEC))
		return -errno;
	helper = fork();
	if (helper < 0)
		return -errno;
	if (!helper) {
		close(to[1]);
		close(from[0]);
		helper_main(to[0], from[1]);
	}
	close(to[0]);
	close(from[1]);
	bare = helper_runs(to[1], from[0]);
	err = probes_attach_file(b->skel, &cal, helper, libc, false);
	if (err >= 0)
		probed = helper_runs(to[1], from[0]);
	probes_detach(&cal);
	close(to[1]);
	close(from[0]);
	waitpid(helper, NULL, 0);
	if (err < 0)
		return err;
	if (err == 0 || bare < 0 || probed < 0)
		return -EIO;
	b->hit_s = (probed > bare ? probed - bare : 0) / 3 / 1e9;
	return 0;
}

/* The BPF programs' run time so far, in ns (0 without statistics). */
static uint64_t programs_run_ns(struct budget *b)
{
	struct bpf_program *prog;
	uint64_t ns = 0;

	if (b->stats_fd < 0)
		return 0;
	bpf_object__for_each_program(prog, b->skel->obj)
	{
		struct bpf_prog_info info = {0};
		__u32 len = sizeof(info);
		int fd = bpf_program__fd(prog);

		if (fd >= 0 && !bpf_obj_get_info_by_fd(fd, &info, &len))
			ns += info.run_time_ns;
	}
	return ns;
}

static struct budget_proc *proc_of(struct budget *b, pid_t pid)
{
	for (size_t i = 0; i < b->nprocs; i++)
		if (b->procs[i].pid == pid)
			return &b->procs[i];
	if (array_reserve((void **)&b->procs, &b->cap_procs, sizeof(*b->procs), b->nprocs + 1))
		return NULL;
	b->procs[b->nprocs] = (struct budget_proc){.pid = pid, .slot = UINT32_MAX};
	return &b->procs[b->nprocs++];
}

static int read_hits(struct budget *b, uint32_t slot, struct tracer_hits *sum)
{
	int fd = bpf_map__fd(b->skel->maps.proc_hits);

	*sum = (struct tracer_hits){0};
	if (bpf_map_lookup_elem(fd, &slot, b->percpu))
		return -errno;
	for (int c = 0; c < b->ncpus; c++) {
		sum->allocating += b->percpu[c].allocating;
		sum->freeing += b->percpu[c].freeing;
	}
	return 0;
}

/* Calls fn for each traced process (tgid, slot in proc_hits). */
static void for_each_traced(struct budget *b, void (*fn)(struct budget *, pid_t, uint32_t))
{
	int fd;
	__u32 key, next, idx, *prev = NULL;

	if (!b->follow) {
		fn(b, b->pid, 0);
		return;
	}
	fd = bpf_map__fd(b->skel->maps.traced_pids);
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (!bpf_map_lookup_elem(fd, &key, &idx))
			fn(b, (pid_t)key, idx % TRACER_HIT_SLOTS);
	}
}

/* Takes the hits counted so far as the start of slot's account. */
static void baseline(struct budget *b, pid_t pid, uint32_t slot)
{
	struct budget_proc *pr = proc_of(b, pid);

	if (!pr)
		return;
	if (pr->slot != slot) {
		read_hits(b, slot, &pr->last);
		pr->slot = slot;
	}
	if (!pr->cpu_last)
		pr->cpu_last = budget_process_cpu(pid);
}

/* The period that ends, for account() (a for_each_traced callback). */
struct period {
	double seconds, open_s, cost_per_hit;
};

static struct period this_period;

/* A period's end for one process: its hits and CPU time since the last. */
static void account(struct budget *b, pid_t pid, uint32_t slot)
{
	const struct period *pe = &this_period;
	struct budget_proc *pr = proc_of(b, pid);
	struct tracer_hits now;
	double cpu, alloc_cost, free_cost, work;

	if (!pr)
		return;
	pr->seen = true;
	if (pr->slot != slot) { /* new, or a new index: counted from here */
		baseline(b, pid, slot);
		return;
	}
	cpu = budget_process_cpu(pid);
	if (read_hits(b, slot, &now) || cpu < 0)
		return;
	alloc_cost = (double)(now.allocating - pr->last.allocating) * pe->cost_per_hit;
	free_cost = (double)(now.freeing - pr->last.freeing) * pe->cost_per_hit;
	pr->last = now;
	pr->cost += alloc_cost + free_cost;
	if (cpu < pr->cpu_last) /* a thread gone took its time along */
		pr->cpu_last = cpu;
	pr->cpu += cpu - pr->cpu_last;
	work = cpu - pr->cpu_last - alloc_cost - free_cost;
	pr->cpu_last = cpu;
	if (work < 0)
		work = 0;
	/* rates of this period, smoothed over the last few */
#define SMOOTH(old, v) (pr->rated ? 0.5 * (old) + 0.5 * (v) : (v))
	if (pe->open_s > 0)
		pr->alloc_rate = SMOOTH(pr->alloc_rate, alloc_cost / pe->open_s);
	if (!b->frees_windowed)
		pr->free_rate = SMOOTH(pr->free_rate, free_cost / pe->seconds);
	else if (pe->open_s > 0)
		pr->free_rate = SMOOTH(pr->free_rate, free_cost / pe->open_s);
	pr->work_rate = SMOOTH(pr->work_rate, work / pe->seconds);
#undef SMOOTH
	pr->rated = true;
}

/* The share of the next period that a process allows allocations to be
 * traced: what keeps its cost since tracing began within the budget of
 * its own work by the period's end (a debt is paid back, a credit spent,
 * at most two periods' worth). */
static double duty_of(const struct budget *b, const struct budget_proc *pr)
{
	double own = pr->cpu - pr->cost, allowed, per_window, aim = BUDGET_AIM * b->ratio;

	allowed = aim * (own + pr->work_rate * BUDGET_PERIOD_S) - pr->cost;
	if (allowed > 2 * aim * pr->work_rate * BUDGET_PERIOD_S)
		allowed = 2 * aim * pr->work_rate * BUDGET_PERIOD_S;
	per_window = pr->alloc_rate;
	if (b->frees_windowed)
		per_window += pr->free_rate;
	else
		allowed -= pr->free_rate * BUDGET_PERIOD_S;
	if (per_window * BUDGET_PERIOD_S <= 1e-9)
		return 1; /* allocates nothing (so far): no limit from it */
	return allowed / (per_window * BUDGET_PERIOD_S);
}

/* Every probe windowed: the live set of the window that ends is dropped
 * before the next opens (no probe is attached now, nothing races): each
 * traced process takes a new index in allocation keys, as at an exec, and
 * the old one's slots are swept (collect_sweep_gone). */
static void drop_window_live_set(struct budget *b)
{
	struct tracer_bpf *skel = b->skel;

	if (!b->follow) {
		skel->bss->target_index = TRACER_NEXT_TARGET_INDEX(skel->bss->target_index);
		skel->bss->target_stats.current = 0;
		for (int k = 0; k < TRACER_NCLASSES; k++)
			skel->bss->target_stats.classes[k].current = 0;
	} else {
		int fd = bpf_map__fd(skel->maps.traced_pids), sfd = bpf_map__fd(skel->maps.procs);
		__u32 key, next, *prev = NULL;
		struct tracer_proc_stats st;

		while (!bpf_map_get_next_key(fd, prev, &next)) {
			key = next;
			prev = &key;
			/* none left: it keeps its blocks (counted) */
			proc_index_give(skel, (pid_t)key, BPF_EXIST);
			if (!bpf_map_lookup_elem(sfd, &key, &st)) {
				st.current = 0;
				for (int k = 0; k < TRACER_NCLASSES; k++)
					st.classes[k].current = 0;
				bpf_map_update_elem(sfd, &key, &st, BPF_EXIST);
			}
		}
		for_each_traced(b, baseline); /* new indexes, new hit slots */
	}
	__atomic_fetch_add(&skel->bss->window_drops, 1, __ATOMIC_RELAXED);
}

static void open_window(struct budget *b)
{
	if (b->open)
		return;
	if (b->frees_windowed)
		drop_window_live_set(b);
	if (probes_window(b->probes, b->windowed, true) && b->verbose)
		fprintf(stderr, "tracer: budget: some probes could not be attached again\n");
	b->skel->bss->between_windows = false;
	b->open = true;
	/* from when every probe is in: the attaching takes a while (ms, more
	 * with --follow's probes on every process's libc), and what its
	 * first probes cost then counts without its time, which errs safe */
	b->opened_at = now_s();
	b->windows++;
}

static void close_window(struct budget *b, double t)
{
	if (!b->open)
		return;
	b->skel->bss->between_windows = true; /* a realloc from here on only frees */
	probes_window(b->probes, b->windowed, false);
	b->open = false;
	b->open_s += t - b->opened_at;
	b->period_open_s += t - b->opened_at;
}

/* A period's end: measure every process, then set the next window. */
static void next_period(struct budget *b, double t)
{
	uint64_t run_ns = programs_run_ns(b), hits = 0;
	struct tracer_hits h;
	double duty = 1;
	bool over = false;

	if (b->open) { /* the window's time so far counts in this period */
		b->period_open_s += t - b->opened_at;
		b->open_s += t - b->opened_at;
		b->opened_at = t;
	}
	/* the programs' run time since the last period, shared by hit */
	for (size_t i = 0; i < b->nprocs; i++) {
		b->procs[i].seen = false;
		if (b->procs[i].slot != UINT32_MAX && !read_hits(b, b->procs[i].slot, &h))
			hits += h.allocating + h.freeing - b->procs[i].last.allocating -
				b->procs[i].last.freeing;
	}
	this_period = (struct period){.seconds = t - b->period_start,
				      .open_s = b->period_open_s,
				      .cost_per_hit = b->hit_s};
	if (hits && run_ns > b->run_ns)
		this_period.cost_per_hit += (double)(run_ns - b->run_ns) / 1e9 / (double)hits;
	b->run_ns = run_ns;
	for_each_traced(b, account);
	b->periods++;
	/* --follow: the children gone leave their accounts (the target's stays,
	 * for the last report) */
	for (size_t i = 0; i < b->nprocs;)
		if (!b->procs[i].seen && b->procs[i].pid != b->pid)
			b->procs[i] = b->procs[--b->nprocs];
		else
			i++;
	for (size_t i = 0; i < b->nprocs; i++) {
		struct budget_proc *pr = &b->procs[i];
		double d;

		if (!pr->seen || (pr->rated && pr->work_rate < IDLE_CPU))
			continue; /* an idle process (a shell waiting) holds no window shut */
		if (!pr->rated) { /* new (a child): a window as long as its share, to measure */
			if (BUDGET_AIM * b->ratio < duty)
				duty = BUDGET_AIM * b->ratio;
			continue;
		}
		/* the frees alone cost more than the budget: they go in windows too */
		if (!b->frees_windowed && b->periods >= 1 && pr->work_rate > 0 &&
		    pr->free_rate > 0.9 * BUDGET_AIM * b->ratio * pr->work_rate)
			over = true;
		d = duty_of(b, pr);
		if (getenv("TRACER_DEBUG") /* each account, per period */)
			fprintf(stderr,
				"tracer: budget: pid %d work %.4f/s alloc %.4f/s free %.4f/s cost %.4f "
				"cpu %.4f -> %.3f\n",
				pr->pid, pr->work_rate, pr->alloc_rate, pr->free_rate, pr->cost,
				pr->cpu, d);
		if (d < duty)
			duty = d;
	}
	if (over) {
		b->frees_windowed = true;
		b->windowed |= PROBES_CLASS_BIT(PROBES_FREEING);
		if (b->open) {
			close_window(b, t);
			b->period_open_s = 0;
		}
		probes_window(b->probes, b->windowed, false);
		if (b->verbose)
			fprintf(stderr, "tracer: budget: the frees alone cost more than %.3g %%: "
				"they are traced in windows too, each window's live set its own\n",
				b->ratio * 100);
		/* measured again from the next window, as long as the budget's share */
		for (size_t i = 0; i < b->nprocs; i++)
			b->procs[i].rated = false;
		duty = b->ratio;
	}
	if (duty < 0)
		duty = 0;
	if (duty > 1)
		duty = 1;
	b->duty = duty;
	b->period_start = t;
	b->period_len = BUDGET_PERIOD_S;
	b->period_open_s = 0;
	if (duty * BUDGET_PERIOD_S < BUDGET_MIN_WINDOW_S)
		close_window(b, t);
	else
		open_window(b);
	if (b->verbose)
		fprintf(stderr, "tracer: budget: window %.1f ms of %.0f ms (coverage %.3f)\n",
			duty * BUDGET_PERIOD_S * 1e3, BUDGET_PERIOD_S * 1e3,
			b->open_s / (t - b->started));
}

void budget_tick(struct budget *b)
{
	double t;

	if (!b || !b->started)
		return;
	t = now_s();
	if (t - b->period_start >= b->period_len)
		next_period(b, t);
	else if (b->open && t - b->period_start >= b->duty * b->period_len)
		close_window(b, t);
}

int budget_open(struct budget **out, double ratio, struct tracer_bpf *skel, struct probes *p,
		bool follow, bool verbose)
{
	struct budget *b = calloc(1, sizeof(*b));
	int err;

	*out = NULL;
	if (!b)
		return -ENOMEM;
	*b = (struct budget){.ratio = ratio,
			     .skel = skel,
			     .probes = p,
			     .follow = follow,
			     .verbose = verbose,
			     .stats_fd = -1,
			     .windowed = PROBES_CLASS_BIT(PROBES_ALLOCATING)};
	b->ncpus = libbpf_num_possible_cpus();
	b->percpu = b->ncpus > 0 ? calloc((size_t)b->ncpus, sizeof(*b->percpu)) : NULL;
	if (!b->percpu) {
		free(b);
		return -ENOMEM;
	}
	/* before the session's probes: with --follow they are on every
	 * process's libc, the helper's too */
	err = calibrate(b);
	if (err) {
		fprintf(stderr, "tracer: --budget: cannot calibrate a probe hit's cost: %s\n",
			strerror(-err));
		budget_close(b);
		return err;
	}
	*out = b;
	return 0;
}

void budget_start(struct budget *b, pid_t pid)
{
	if (!b)
		return;
	b->pid = pid;
	/* the programs' own time, as the kernel measures it; without it the
	 * trap alone is counted */
	b->stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	b->run_ns = programs_run_ns(b);
	if (b->verbose)
		fprintf(stderr, "tracer: budget %.3g %%: a probe hit's trap costs %.0f ns%s\n",
			b->ratio * 100, b->hit_s * 1e9,
			b->stats_fd < 0 ? " (no BPF run-time statistics: programs not counted)"
					: ", plus its program's run time");
	b->started = b->period_start = now_s();
	for_each_traced(b, baseline);
	/* the first period is short, half of it a window that measures */
	b->period_len = FIRST_PERIOD_S;
	b->duty = 0.5;
	b->open = true; /* the session attached every probe */
	b->opened_at = b->started;
	b->windows = 1;
}

double budget_hit_cost(const struct budget *b)
{
	return b ? b->hit_s : 0;
}

void budget_describe(const struct budget *b, struct snapshot *snap)
{
	double t, open_s, overhead = 0;

	if (!b || !snap)
		return;
	t = now_s();
	open_s = b->open_s + (b->open ? t - b->opened_at : 0);
	for (size_t i = 0; i < b->nprocs; i++) {
		double own = b->procs[i].cpu - b->procs[i].cost;

		if (own > 0 && b->procs[i].cost / own > overhead)
			overhead = b->procs[i].cost / own;
	}
	snap->budget = (struct snapshot_budget){
	    .on = true,
	    .ratio = b->ratio,
	    .coverage = t > b->started ? open_s / (t - b->started) : 1,
	    .overhead = overhead,
	    .hit_cost_s = b->hit_s,
	    .frees_windowed = b->frees_windowed,
	    .windows = b->windows,
	};
	if (snap->budget.coverage > 1)
		snap->budget.coverage = 1;
}

void budget_close(struct budget *b)
{
	if (!b)
		return;
	if (b->stats_fd >= 0)
		close(b->stats_fd);
	free(b->percpu);
	free(b->procs);
	free(b);
}
