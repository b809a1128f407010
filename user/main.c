/* tracer: tracemalloc for any process, from outside. Command line. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "debuginfo.h"
#include "model/filter.h"
#include "model/snapfile.h"
#include "model/stats.h"
#include "offline.h"
#include "report/format.h"
#include "live/top.h"
#include "report/html.h"
#include "serve/serve.h"
#include "serve/server.h"
#include "session.h"
#include "tracer.h"
#include "util/outfile.h"

/* VERSION from the Makefile, and git describe where the build had it */
#ifndef TRACER_VERSION
#define TRACER_VERSION "unknown"
#endif
#ifdef TRACER_GIT
#define TRACER_VERSION_STRING TRACER_VERSION " (git " TRACER_GIT ")"
#else
#define TRACER_VERSION_STRING TRACER_VERSION
#endif

static const char usage[] =
    "usage: tracer [options] -p PID            trace a running process\n"
    "       tracer [options] -a                 trace every process\n"
    "       tracer [options] -- COMMAND [ARG...] launch a command and trace it\n"
    "       tracer stats [options] FILE          statistics of a saved snapshot\n"
    "       tracer compare [options] OLD NEW     what changed between two snapshots\n"
    "       tracer serve [options] -p PID|-- COMMAND  trace, and serve profiles and\n"
    "                                            metrics over HTTP until stopped\n"
    "       tracer top [options] -p PID            a live view of a process's\n"
    "                                            allocations, refreshed each second\n"
    "       tracer --version\n"
    "\n"
    "tracing:\n"
    "  -p, --pid PID          attach to a running process (all its threads); given\n"
    "                         several times, each is traced as its own process\n"
    "  -a, --all              every process on the host that maps an allocator:\n"
    "                         those running and those that start, in containers\n"
    "                         too; each with its own statistics\n"
    "      --cgroup PATH      with -a: only processes in cgroup v2 PATH (as\n"
    "                         /proc/PID/cgroup says: /system.slice/x.service) or\n"
    "                         below it; several: any (--comm NAME: see below)\n"
    "      --exclude-pid PID  with -a: never trace PID (several: each)\n"
    "  -n, --nframe N         frames per traceback, 1..%d (default 1, or $TRACER_NFRAME)\n"
    "  -d, --duration SEC     stop after SEC seconds (default: Ctrl-C or target exit)\n"
    "  -i, --interval SEC     also report (and save, with -o) every SEC seconds\n"
    "  -o, --output FILE      save each snapshot to FILE; %%n in FILE is the sequence\n"
    "                         number (1, 2, ...), %%t the UTC time (20261124T221500Z);\n"
    "                         with --format html, FILE is the page (each interval's\n"
    "                         replaces it, or gets its own with %%n)\n"
    "      --follow           with -- or -p: trace children too (fork and exec),\n"
    "                         each as its own process; one that exits leaves the\n"
    "                         live set\n"
    "      --keep-exited      with --follow: the blocks a child held when it exited\n"
    "                         stay in the reports\n"
    "      --max-allocs N     live allocations kept (default %u); their table takes\n"
    "                         50 bytes of kernel memory per N, from the start\n"
    "      --max-stacks N     distinct stacks kept when nframe > 1 (default %u)\n"
    "      --budget PCT       keep the tracer's cost on each traced process under PCT %%\n"
    "                         of its CPU time (0.01..100, e.g. 2 or 2%%): allocations\n"
    "                         are then traced in windows, and every report says what\n"
    "                         share of the time they cover (README: Overhead budget)\n"
    "      --probe-only       place the probes but record nothing (overhead floor)\n"
    "      --python-malloc    with --: run CPython with PYTHONMALLOC=malloc, so that\n"
    "                         every object allocation is seen even where pymalloc is\n"
    "                         inlined (Debian's python3.11)\n"
    "      --hook-pymalloc    with -p: point CPython's object and mem allocators at its\n"
    "                         raw allocator while tracing (the one write into a target,\n"
    "                         undone at detach), so that every block reaches a probe\n"
    "      --python-free-lists  an object CPython takes from a free list moves to\n"
    "                         the line that takes it, as in tracemalloc (the\n"
    "                         default; asked for, said where it cannot be done)\n"
    "      --no-python-free-lists  it keeps the line its block was first allocated\n"
    "                         at: no probe hit per object made (README: Python)\n"
    "      --native           Python tracebacks start with the C frames that lead\n"
    "                         from the interpreter to the allocator\n"
    "      --keep-allocator-frames  keep the frames of allocator plumbing (Rust's alloc\n"
    "                         shims, libstdc++'s allocators, zmalloc ...) at the top\n"
    "                         of native tracebacks; by default they are left out\n"
    "      --debug-dir DIR    look for separate debug files (DIR/.build-id/xx/yyyy.debug,\n"
    "                         DIR/<binary's directory>/<debuglink>) in DIR before\n"
    "                         /usr/lib/debug; may be repeated; debuginfod is asked\n"
    "                         too when DEBUGINFOD_URLS is set\n"
    "  -v, --verbose          say where the probes are\n"
    "\n"
    "reports (tracing, stats and compare):\n"
    "  -t, --top N            statistics to print (default 10, 0 = all)\n"
    "  -k, --key KEY          lineno (default), filename, traceback or process (a\n"
    "                         statistic per traced process)\n"
    "      --cumulative       cumulative statistics (lineno, filename)\n"
    "  -l, --limit N          frames printed per traceback (default: all)\n"
    "      --peak             statistics of the live set when traced memory was at\n"
    "                         its peak (per process), not of the live set now\n"
    "      --sort WHAT        size (default: the live set, by size), allocations\n"
    "                         (every allocation since tracing began, by count) or\n"
    "                         temporary (allocations freed before their thread's\n"
    "                         next allocation, by count)\n"
    "      --older-than SEC   only blocks allocated at least SEC seconds before the\n"
    "                         snapshot (leak candidates)\n"
    "      --format FMT       text (default), json or html (one self-contained page:\n"
    "                         flame graph, sortable table, memory over time with -i;\n"
    "                         -t defaults to %d there); for stats also pprof (gzipped\n"
    "                         profile.proto for go tool pprof) or collapsed (stacks\n"
    "                         for flame graphs)\n"
    "      --color WHEN       colour in the text report: auto (default: when standard\n"
    "                         output is a terminal and NO_COLOR is unset), always, never\n"
    "                         (--colour too)\n"
    "\n"
    "filters (tracemalloc's filter_traces; reports only, -o files keep everything):\n"
    "      --include PAT[:LINE]  keep traces whose most recent frame matches (fnmatch);\n"
    "                         several: any of them\n"
    "      --exclude PAT[:LINE]  drop traces whose most recent frame matches\n"
    "      --all-frames       --include/--exclude test every frame, not the most recent\n"
    "      --domain D         only domain D (python, libc or a number), applied first\n"
    "      --exclude-domain D drop domain D\n"
    "      --comm NAME        stats and compare: only the processes named NAME\n"
    "                         (the kernel's comm), before the other filters; with\n"
    "                         -a: trace only them; several, or with --pid: any\n"
    "  -p, --pid PID          stats and compare: only process PID (several: any)\n"
    "\n"
    "serve (the tracing options too; reports are served, not printed):\n"
    "      --listen ADDR:PORT address to serve on (default %s; loopback unless\n"
    "                         given: 0.0.0.0:PORT or [::]:PORT for every interface)\n"
    "      --token-file FILE  require 'Authorization: Bearer TOKEN', TOKEN being the\n"
    "                         file's content (16..4096 characters, mode 600)\n"
    "      --log FILE         append a line per request to FILE (time, client,\n"
    "                         method, path, status, bytes, seconds); SIGHUP opens\n"
    "                         it again (after a rotation) and never ends serve\n"
    "\n"
    "top (-p PID and the tracing options; -k and -t set what it shows first,\n"
    "-i its refresh in seconds, default 1): keys g grouping (lineno, filename,\n"
    "traceback), s order (size, growth, count), + and - frames shown, p pause,\n"
    "q quit\n"
    "\n"
    "stats and compare:\n"
    "  -o, --output FILE      write the report to FILE instead of standard output\n"
    "                         (compare: --format html only)\n"
    "      --address ADDR     the traceback of the live block holding ADDR\n"
    "      --collapsed-lines  --format collapsed with a frame per line, not per function\n"
    "  -h, --help\n"
    "      --version\n";

static void print_usage(FILE *f)
{
	fprintf(f, usage, TRACER_MAX_NFRAME, SESSION_DEFAULT_MAX_ALLOCS,
		SESSION_DEFAULT_MAX_STACKS, HTML_DEFAULT_TOP, SERVER_DEFAULT_LISTEN);
}

static int bad(const char *fmt, const char *arg)
{
	fprintf(stderr, "tracer: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	return 2;
}

/* An allocation table that would take more than half of the memory
 * available now is refused before anything is loaded: say so. */
static bool table_too_big(uint32_t max_allocs)
{
	uint64_t need = session_alloc_table_bytes(max_allocs);
	unsigned long long avail_kib = 0;
	char line[128], a[32], b[32];
	FILE *f = fopen("/proc/meminfo", "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &avail_kib) == 1)
			break;
	if (f)
		fclose(f);
	if (!avail_kib || need <= avail_kib * 1024 / 2)
		return false;
	fprintf(stderr,
		"tracer: --max-allocs %u needs %s of kernel memory for its table, more than half "
		"of the %s available\n",
		max_allocs, format_size(a, sizeof(a), (double)need, false),
		format_size(b, sizeof(b), (double)avail_kib * 1024, false));
	return true;
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 1e9)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_nframe(const char *s, uint32_t *out)
{
	long v;

	if (parse_long(s, LONG_MIN, LONG_MAX, &v) || v < 1 || v > TRACER_MAX_NFRAME) {
		fprintf(stderr, "tracer: the number of frames must be in range [1; %d], got '%s'\n",
			TRACER_MAX_NFRAME, s);
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

/* --budget PCT: "2", "2%", "0.5" -> 0.02, 0.005; 0.01..100 %. */
static int parse_budget(const char *s, double *out)
{
	char *end;
	double v;

	if (!*s || strlen(s) > 32)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || (*end && strcmp(end, "%")) || !(v >= 0.01 && v <= 100))
		return -EINVAL;
	*out = v / 100;
	return 0;
}

enum command { CMD_TRACE, CMD_STATS, CMD_COMPARE, CMD_SERVE, CMD_TOP };

enum {
	OPT_CUMULATIVE = 256,
	OPT_FORMAT,
	OPT_FOLLOW,
	OPT_MAX_ALLOCS,
	OPT_MAX_STACKS,
	OPT_PROBE_ONLY,
	OPT_PYTHON_MALLOC,
	OPT_ADDRESS,
	OPT_NATIVE,
	OPT_KEEP_ALLOCATOR_FRAMES,
	OPT_KEEP_EXITED,
	OPT_INCLUDE,
	OPT_EXCLUDE,
	OPT_ALL_FRAMES,
	OPT_DOMAIN,
	OPT_EXCLUDE_DOMAIN,
	OPT_HOOK_PYMALLOC,
	OPT_PYTHON_FREE_LISTS,
	OPT_NO_PYTHON_FREE_LISTS,
	OPT_DEBUG_DIR,
	OPT_LISTEN,
	OPT_TOKEN_FILE,
	OPT_LOG,
	OPT_VERSION,
	OPT_COLOR,
	OPT_COLLAPSED_LINES,
	OPT_PEAK,
	OPT_SORT,
	OPT_OLDER_THAN,
	OPT_COMM,
	OPT_CGROUP,
	OPT_EXCLUDE_PID,
	OPT_BUDGET,
};

static const struct option longopts[] = {
    {"pid", required_argument, NULL, 'p'},
    {"all", no_argument, NULL, 'a'},
    {"comm", required_argument, NULL, OPT_COMM},
    {"cgroup", required_argument, NULL, OPT_CGROUP},
    {"exclude-pid", required_argument, NULL, OPT_EXCLUDE_PID},
    {"nframe", required_argument, NULL, 'n'},
    {"duration", required_argument, NULL, 'd'},
    {"interval", required_argument, NULL, 'i'},
    {"output", required_argument, NULL, 'o'},
    {"top", required_argument, NULL, 't'},
    {"key", required_argument, NULL, 'k'},
    {"limit", required_argument, NULL, 'l'},
    {"cumulative", no_argument, NULL, OPT_CUMULATIVE},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"follow", no_argument, NULL, OPT_FOLLOW},
    {"keep-exited", no_argument, NULL, OPT_KEEP_EXITED},
    {"max-allocs", required_argument, NULL, OPT_MAX_ALLOCS},
    {"max-stacks", required_argument, NULL, OPT_MAX_STACKS},
    {"probe-only", no_argument, NULL, OPT_PROBE_ONLY},
    {"budget", required_argument, NULL, OPT_BUDGET},
    {"python-malloc", no_argument, NULL, OPT_PYTHON_MALLOC},
    {"address", required_argument, NULL, OPT_ADDRESS},
    {"native", no_argument, NULL, OPT_NATIVE},
    {"keep-allocator-frames", no_argument, NULL, OPT_KEEP_ALLOCATOR_FRAMES},
    {"hook-pymalloc", no_argument, NULL, OPT_HOOK_PYMALLOC},
    {"python-free-lists", no_argument, NULL, OPT_PYTHON_FREE_LISTS},
    {"no-python-free-lists", no_argument, NULL, OPT_NO_PYTHON_FREE_LISTS},
    {"debug-dir", required_argument, NULL, OPT_DEBUG_DIR},
    {"peak", no_argument, NULL, OPT_PEAK},
    {"sort", required_argument, NULL, OPT_SORT},
    {"older-than", required_argument, NULL, OPT_OLDER_THAN},
    {"include", required_argument, NULL, OPT_INCLUDE},
    {"exclude", required_argument, NULL, OPT_EXCLUDE},
    {"all-frames", no_argument, NULL, OPT_ALL_FRAMES},
    {"domain", required_argument, NULL, OPT_DOMAIN},
    {"exclude-domain", required_argument, NULL, OPT_EXCLUDE_DOMAIN},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"log", required_argument, NULL, OPT_LOG},
    {"color", required_argument, NULL, OPT_COLOR},
    {"colour", required_argument, NULL, OPT_COLOR},
    {"collapsed-lines", no_argument, NULL, OPT_COLLAPSED_LINES},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {},
};

/* Options that only tracing takes, and those that only stats takes. */
static bool tracing_only(int c)
{
	/* -p and --comm choose what is traced, and in stats and compare
	 * which processes a report keeps */
	return c == 'a' || c == OPT_CGROUP || c == OPT_EXCLUDE_PID || c == 'n' || c == 'd' ||
	       c == 'i' || c == OPT_FOLLOW || c == OPT_KEEP_EXITED ||
	       c == OPT_MAX_ALLOCS || c == OPT_MAX_STACKS || c == OPT_PROBE_ONLY ||
	       c == OPT_PYTHON_MALLOC || c == OPT_NATIVE || c == OPT_KEEP_ALLOCATOR_FRAMES ||
	       c == OPT_HOOK_PYMALLOC || c == OPT_PYTHON_FREE_LISTS ||
	       c == OPT_NO_PYTHON_FREE_LISTS || c == OPT_DEBUG_DIR ||
	       c == OPT_BUDGET || c == 'v';
}

/* Options of reports, which tracer serve serves rather than prints. */
static bool report_only(int c)
{
	return c == 'o' || c == 'i' || c == 't' || c == 'k' || c == 'l' || c == OPT_CUMULATIVE ||
	       c == OPT_FORMAT || c == OPT_INCLUDE || c == OPT_EXCLUDE || c == OPT_ALL_FRAMES ||
	       c == OPT_DOMAIN || c == OPT_EXCLUDE_DOMAIN || c == OPT_ADDRESS;
}

/* --include/--exclude in the order given; built once --all-frames is known */
struct filename_filter {
	bool inclusive;
	const char *spec;
};

enum color_when { COLOR_AUTO, COLOR_ALWAYS, COLOR_NEVER };

struct cli {
	enum command cmd;
	enum color_when color;
	struct session_options trace;
	struct server_options serve;
	struct filter_set filters;
	struct filename_filter *names;
	int nnames;
	bool all_frames;
	bool has_address;
	uint64_t address;
	bool top_given; /* -t N given */
	char **files;
	int nfiles;
};

static const char *option_name(int c, char *buf)
{
	for (const struct option *o = longopts; o->name; o++)
		if (o->val == c) {
			snprintf(buf, 64, "--%s", o->name);
			return buf;
		}
	snprintf(buf, 64, "-%c", c);
	return buf;
}

static int parse_args(int argc, char **argv, struct cli *cli)
{
	struct session_options *o = &cli->trace;
	const char *env = getenv("TRACER_NFRAME");
	char name[64];
	char *end;
	long v;
	int c;

	bool tracing = cli->cmd == CMD_TRACE || cli->cmd == CMD_SERVE || cli->cmd == CMD_TOP;

	if (tracing && env && *env && parse_nframe(env, &o->nframe))
		return 2;
	/* tests: the reuse of process indexes without 65,536 processes */
	env = getenv("TRACER_PROC_INDEXES");
	if (tracing && env) {
		if (parse_long(env, 1, TRACER_MAX_PROCS, &v)) {
			fprintf(stderr, "tracer: TRACER_PROC_INDEXES must be a count of 1 to %u: %.64s\n",
				TRACER_MAX_PROCS, env);
			return 2;
		}
		o->proc_indexes = (uint32_t)v;
	}
	/* tracing stops at the command; stats and compare take options anywhere */
	/* ':' first: a missing value is told from an unknown option, each
	 * said in one line here rather than getopt's and the whole usage */
	const char *optstring = tracing ? "+:p:an:d:i:o:t:k:l:vh" : ":p:an:d:i:o:t:k:l:vh";

	opterr = 0;

	while ((c = getopt_long(argc, argv, optstring, longopts, NULL)) != -1) {
		if (!tracing && tracing_only(c))
			return bad("%s applies to tracing, not to saved snapshots",
				   option_name(c, name));
		if (cli->cmd == CMD_SERVE && report_only(c))
			return bad("%s applies to reports; tracer serve serves them (see "
				   "--help)",
				   option_name(c, name));
		if (cli->cmd == CMD_TOP && report_only(c) && c != 't' && c != 'k' && c != 'i')
			return bad("%s applies to reports; tracer top shows its own view (see "
				   "--help)",
				   option_name(c, name));
		if ((c == OPT_LISTEN || c == OPT_TOKEN_FILE || c == OPT_LOG) && cli->cmd != CMD_SERVE)
			return bad("%s applies to 'tracer serve'", option_name(c, name));
		if (c == OPT_ADDRESS && cli->cmd != CMD_STATS)
			return bad("%s", "--address applies to 'tracer stats FILE'");
		if (c == OPT_COLLAPSED_LINES && cli->cmd != CMD_STATS)
			return bad("%s", "--collapsed-lines applies to 'tracer stats FILE'");
		switch (c) {
		case 'p':
			if (parse_long(optarg, 1, INT_MAX, &v))
				return bad("invalid PID '%s'", optarg);
			if (!tracing) {
				/* stats and compare: the processes a report keeps */
				if (process_filter_add_pid(&cli->filters.processes, (int32_t)v))
					return bad("%s", "out of memory");
				break;
			}
			for (size_t i = 0; i < o->npids; i++)
				if (o->pids[i] == (pid_t)v)
					return bad("-p %s given twice", optarg);
			if (o->npids == SESSION_MAX_LIST)
				return bad("%s", "-p given more than 64 times: use -a with filters");
			o->pids[o->npids++] = (pid_t)v;
			if (!o->pid)
				o->pid = (pid_t)v;
			break;
		case 'a':
			o->all = true;
			break;
		case OPT_COMM:
			if (!tracing) {
				/* stats and compare: the processes a report keeps (a
				 * name longer than comm's 15 bytes matches on them) */
				if (strlen(optarg) > 255 ||
				    process_filter_add_comm(&cli->filters.processes, optarg))
					return bad("invalid --comm '%s' (a process name)", optarg);
				break;
			}
			if (!*optarg || strlen(optarg) > 15)
				return bad("invalid --comm '%s' (a process name of 1 to 15 "
					   "characters, as in /proc/PID/comm)",
					   optarg);
			if (o->ncomms == SESSION_MAX_LIST)
				return bad("%s", "--comm given more than 64 times");
			o->comms[o->ncomms++] = optarg;
			break;
		case OPT_CGROUP:
			if (optarg[0] != '/' || strstr(optarg, "/../") || strlen(optarg) > 4000)
				return bad("invalid --cgroup '%s' (a cgroup v2 path from the root, "
					   "as /proc/PID/cgroup shows it: /system.slice/x.service)",
					   optarg);
			if (o->ncgroups == SESSION_MAX_LIST)
				return bad("%s", "--cgroup given more than 64 times");
			o->cgroups[o->ncgroups++] = optarg;
			break;
		case OPT_EXCLUDE_PID:
			if (parse_long(optarg, 1, INT_MAX, &v))
				return bad("invalid PID '%s'", optarg);
			if (o->nexclude == SESSION_MAX_LIST)
				return bad("%s", "--exclude-pid given more than 64 times");
			o->exclude_pids[o->nexclude++] = (pid_t)v;
			break;
		case 'n':
			if (parse_nframe(optarg, &o->nframe))
				return 2;
			break;
		case 'd':
			if (parse_seconds(optarg, &o->duration))
				return bad("invalid duration '%s' (seconds > 0)", optarg);
			break;
		case 'i':
			if (parse_seconds(optarg, &o->interval))
				return bad("invalid interval '%s' (seconds > 0)", optarg);
			break;
		case 'o':
			if (!*optarg)
				return bad("%s", "empty output file name");
			o->output = optarg;
			break;
		case 't':
			if (parse_long(optarg, 0, INT_MAX, &v))
				return bad("invalid top count '%s'", optarg);
			o->report.top = (int)v;
			cli->top_given = true;
			break;
		case 'k':
			if (stats_parse_key(optarg, &o->report.key))
				return bad("unknown key_type: '%s' (lineno, filename, traceback or "
					   "process)",
					   optarg);
			if (cli->cmd == CMD_TOP && o->report.key == STATS_KEY_PROCESS)
				return bad("%s", "tracer top groups by lineno, filename or traceback");
			break;
		case 'l':
			if (parse_long(optarg, INT_MIN, INT_MAX, &v))
				return bad("invalid traceback limit '%s'", optarg);
			o->report.traceback_limit = (int)v;
			break;
		case OPT_CUMULATIVE:
			o->report.cumulative = true;
			break;
		case OPT_PEAK:
			if (o->report.source != STATS_SOURCE_LIVE &&
			    o->report.source != STATS_SOURCE_PEAK)
				return bad("%s", "--peak and --sort allocations|temporary exclude "
						 "each other");
			o->report.source = STATS_SOURCE_PEAK;
			break;
		case OPT_SORT: {
			enum stats_source src;

			if (stats_parse_source(optarg, &src) || src == STATS_SOURCE_PEAK)
				return bad("unknown --sort '%s' (size, allocations or temporary)",
					   optarg);
			if (o->report.source == STATS_SOURCE_PEAK && src != STATS_SOURCE_LIVE)
				return bad("%s", "--peak and --sort allocations|temporary exclude "
						 "each other");
			if (o->report.source != STATS_SOURCE_PEAK)
				o->report.source = src;
			break;
		}
		case OPT_OLDER_THAN: {
			double sec;

			if (cli->cmd == CMD_COMPARE)
				return bad("%s", "--older-than applies to tracing and to 'tracer stats'");
			if (parse_seconds(optarg, &sec))
				return bad("invalid --older-than '%s' (seconds > 0)", optarg);
			o->report.older_than_ns = (uint64_t)(sec * 1e9);
			break;
		}
		case OPT_FORMAT:
			if (!strcmp(optarg, "text"))
				o->report.format = REPORT_TEXT;
			else if (!strcmp(optarg, "json"))
				o->report.format = REPORT_JSON;
			else if (!strcmp(optarg, "html"))
				o->report.format = REPORT_HTML;
			else if (!strcmp(optarg, "pprof") || !strcmp(optarg, "collapsed")) {
				if (cli->cmd != CMD_STATS)
					return bad(
					    "--format %s applies to 'tracer stats FILE' (save "
					    "a snapshot with -o first)",
					    optarg);
				o->report.format =
				    optarg[0] == 'p' ? REPORT_PPROF : REPORT_COLLAPSED;
			} else
				return bad("unknown format '%s' (text, json, html, pprof or collapsed)",
					   optarg);
			break;
		case OPT_FOLLOW:
			o->follow = true;
			break;
		case OPT_KEEP_EXITED:
			o->keep_exited = true;
			break;
		case OPT_MAX_ALLOCS:
			if (parse_long(optarg, 1, 1 << 28, &v))
				return bad("invalid --max-allocs '%s' (1..268435456)", optarg);
			o->max_allocs = (uint32_t)v;
			if (table_too_big(o->max_allocs))
				return 2;
			break;
		case OPT_MAX_STACKS:
			if (parse_long(optarg, 1, 1 << 24, &v))
				return bad("invalid --max-stacks '%s' (1..16777216)", optarg);
			o->max_stacks = (uint32_t)v;
			break;
		case OPT_PROBE_ONLY:
			o->probe_only = true;
			break;
		case OPT_BUDGET:
			if (parse_budget(optarg, &o->budget))
				return bad("invalid --budget '%s' (a percentage, 0.01..100: 2 or 2%%)",
					   optarg);
			break;
		case OPT_PYTHON_MALLOC:
			o->python_malloc = true;
			break;
		case OPT_NATIVE:
			o->native = true;
			break;
		case OPT_KEEP_ALLOCATOR_FRAMES:
			o->keep_allocator_frames = true;
			break;
		case OPT_HOOK_PYMALLOC:
			o->hook_pymalloc = true;
			break;
		case OPT_PYTHON_FREE_LISTS:
			o->python_free_lists = PYTHON_FREE_LISTS_ASKED;
			break;
		case OPT_NO_PYTHON_FREE_LISTS:
			o->python_free_lists = PYTHON_FREE_LISTS_OFF;
			break;
		case OPT_DEBUG_DIR: {
			struct stat st;

			if (stat(optarg, &st) || !S_ISDIR(st.st_mode))
				return bad("--debug-dir '%s' is not a directory", optarg);
			if (debuginfo_add_dir(optarg))
				return bad("invalid --debug-dir '%s' (an absolute path, at most 16 "
					   "of them)",
					   optarg);
			break;
		}
		case OPT_INCLUDE:
		case OPT_EXCLUDE: {
			struct filename_filter *n =
			    realloc(cli->names, (cli->nnames + 1) * sizeof(*n));

			if (!n)
				return bad("%s", "out of memory");
			cli->names = n;
			n[cli->nnames++] = (struct filename_filter){c == OPT_INCLUDE, optarg};
			break;
		}
		case OPT_ALL_FRAMES:
			cli->all_frames = true;
			break;
		case OPT_DOMAIN:
		case OPT_EXCLUDE_DOMAIN: {
			uint32_t d;

			if (snapshot_parse_domain(optarg, &d))
				return bad("unknown domain '%s' (python, libc or a number)",
					   optarg);
			if (filter_add_domain(c == OPT_DOMAIN ? &cli->filters.domains
							      : &cli->filters.rest,
					      c == OPT_DOMAIN, d))
				return bad("%s", "out of memory");
			break;
		}
		case OPT_ADDRESS:
			errno = 0;
			cli->address = strtoull(optarg, &end, 0);
			if (errno || end == optarg || *end || optarg[0] == '-')
				return bad("invalid address '%s' (e.g. 0x7f3a12c0)", optarg);
			cli->has_address = true;
			break;
		case OPT_COLOR:
			if (!strcmp(optarg, "auto"))
				cli->color = COLOR_AUTO;
			else if (!strcmp(optarg, "always"))
				cli->color = COLOR_ALWAYS;
			else if (!strcmp(optarg, "never"))
				cli->color = COLOR_NEVER;
			else
				return bad("invalid --color '%s' (auto, always or never)", optarg);
			break;
		case OPT_COLLAPSED_LINES:
			o->report.collapsed_lines = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case OPT_LISTEN:
			cli->serve.listen = optarg;
			break;
		case OPT_LOG:
			cli->serve.log_file = optarg;
			break;
		case OPT_TOKEN_FILE:
			cli->serve.token_file = optarg;
			break;
		case 'h':
			print_usage(stdout);
			exit(0);
		case OPT_VERSION:
			if (optind < argc)
				return bad("%s", "--version takes nothing after it");
			printf("tracer %s\n", TRACER_VERSION_STRING);
			exit(0);
		case ':':
			return bad("%s needs a value (see tracer --help)", argv[optind - 1]);
		default: /* '?': unknown, or a value given to an option that takes none */
			if (!strncmp(argv[optind - 1], "--", 2)) {
				snprintf(name, sizeof(name), "%.*s",
					 (int)strcspn(argv[optind - 1], "="), argv[optind - 1]);
				return bad(strchr(argv[optind - 1], '=') && optopt
					       ? "%s takes no value (see tracer --help)"
					       : "unknown option '%s' (see tracer --help)",
					   name);
			}
			snprintf(name, sizeof(name), "-%c", optopt);
			return bad("unknown option '%s' (see tracer --help)", name);
		}
	}
	if ((o->report.format == REPORT_PPROF || o->report.format == REPORT_COLLAPSED) &&
	    o->report.source != STATS_SOURCE_LIVE)
		return bad("%s", "--peak and --sort apply to text and json reports (pprof and "
				 "collapsed give the live set)");
	/* the page's views for the peak and the allocations are still to come */
	if (o->report.format == REPORT_HTML &&
	    (o->report.source != STATS_SOURCE_LIVE || o->report.older_than_ns))
		return bad("%s", "--peak, --sort and --older-than apply to text and json reports "
				 "(html gives the live set)");
	if (o->report.cumulative && o->report.key == STATS_KEY_TRACEBACK)
		return bad("%s", "cumulative mode cannot by used with key type 'traceback'");
	if (o->report.cumulative && o->report.key == STATS_KEY_PROCESS)
		return bad("%s", "cumulative mode cannot by used with key type 'process'");
	/* the processes chosen (by name or pid) are shown, every one */
	o->report.every_process = !process_filter_empty(&cli->filters.processes) ||
				  o->ncomms || o->npids > 1;
	for (int i = 0; i < cli->nnames; i++) {
		int err = filter_add(&cli->filters.rest, cli->names[i].inclusive,
				     cli->names[i].spec, cli->all_frames);

		if (err == -EINVAL)
			return bad("invalid filter '%s' (PATTERN or PATTERN:LINE, line >= 1)",
				   cli->names[i].spec);
		if (err)
			return bad("%s", "out of memory");
	}
	if (cli->all_frames && !cli->nnames)
		return bad("%s", "--all-frames applies to --include and --exclude filters");
	if (o->report.collapsed_lines && o->report.format != REPORT_COLLAPSED)
		return bad("%s", "--collapsed-lines applies to --format collapsed");
	/* auto: a terminal on standard output that did not opt out (no-color.org);
	 * a report written to a file (stats -o) never */
	o->report.color = o->report.format == REPORT_TEXT &&
			  (cli->color == COLOR_ALWAYS ||
			   (cli->color == COLOR_AUTO && isatty(STDOUT_FILENO) &&
			    !(cli->cmd == CMD_STATS && o->output) && !getenv("NO_COLOR") &&
			    !(getenv("TERM") && !strcmp(getenv("TERM"), "dumb"))));
	if (o->output && cli->cmd == CMD_COMPARE && o->report.format != REPORT_HTML)
		return bad("%s", "-o does not apply to compare (except with --format html)");
	if (o->report.format == REPORT_HTML) {
		if (o->report.key == STATS_KEY_TRACEBACK)
			return bad("%s", "--format html shows tracebacks as its flame graph: its "
					 "table takes -k lineno or filename");
		if (cli->has_address)
			return bad("%s", "--address prints one traceback: it does not apply to "
					 "--format html");
		if (cli->cmd == CMD_TRACE && o->interval > 0 && !o->output)
			return bad("%s", "--format html with -i writes a page per interval: give "
					 "-o FILE");
		/* the table is sortable: more rows than a terminal's ten */
		if (!cli->top_given)
			o->report.top = HTML_DEFAULT_TOP;
	}
	o->filters = &cli->filters;
	cli->files = argv + optind;
	cli->nfiles = argc - optind;
	return 0;
}

static int check_trace_args(struct cli *cli)
{
	struct session_options *o = &cli->trace;

	if (cli->nfiles > 0)
		o->argv = cli->files;
	if ((o->pid != 0) + (o->argv != NULL) + o->all > 1)
		return bad("%s", "give one of -p PID, -a or -- COMMAND");
	if (!o->pid && !o->argv && !o->all)
		return bad("%s", "nothing to trace: give -p PID, -a or -- COMMAND (see --help)");
	if ((o->ncomms || o->ncgroups || o->nexclude) && !o->all)
		return bad("%s", "--comm, --cgroup and --exclude-pid choose processes for -a");
	if (o->hook_pymalloc && (o->all || o->npids > 1))
		return bad("%s", "--hook-pymalloc writes into its target: give one -p PID");
	if (o->python_malloc && !o->argv)
		return bad("%s", "--python-malloc applies to a launched command (-- COMMAND)");
	if (o->hook_pymalloc && o->argv)
		return bad("%s", "--hook-pymalloc applies to -p PID; a launched command gets "
				 "--python-malloc");
	if (o->follow && o->all)
		return bad("%s", "-a traces children already: --follow is for -p and --");
	if (o->keep_exited && !o->follow)
		return bad("%s", "--keep-exited applies with --follow");
	if (o->budget > 0 && o->probe_only)
		return bad("%s", "--budget and --probe-only do not go together (the floor has no "
				 "windows)");
	if (o->output) {
		char probe[PATH_MAX];

		char why[PATH_MAX + 256];

		if (snapfile_expand_name(o->output, 1, 0, probe, sizeof(probe)))
			return bad("invalid output file name '%s' (%%n, %%t and %%%% are the only "
				   "escapes)",
				   o->output);
		/* where the snapshots go is checked before anything is traced */
		if (outfile_check(probe, why, sizeof(why)))
			return bad("cannot save snapshots: %s", why);
		if (o->interval > 0 && !strstr(o->output, "%n") && !strstr(o->output, "%t") &&
		    o->report.format != REPORT_HTML) /* a page shows the series so far */
			fprintf(stderr,
				"tracer: note: -o without %%n or %%t: every interval "
				"replaces %s\n",
				o->output);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct cli cli = {
	    .cmd = CMD_TRACE,
	    .trace = {.nframe = 1,
		      .python_free_lists = PYTHON_FREE_LISTS_ON,
		      .max_allocs = SESSION_DEFAULT_MAX_ALLOCS,
		      .max_stacks = SESSION_DEFAULT_MAX_STACKS,
		      .proc_indexes = TRACER_MAX_PROCS,
		      .report = {.format = REPORT_TEXT, .key = STATS_KEY_LINENO, .top = 10}},
	};
	int rc;

	if (argc > 1 && !strcmp(argv[1], "stats"))
		cli.cmd = CMD_STATS;
	else if (argc > 1 && !strcmp(argv[1], "compare"))
		cli.cmd = CMD_COMPARE;
	else if (argc > 1 && !strcmp(argv[1], "serve"))
		cli.cmd = CMD_SERVE;
	else if (argc > 1 && !strcmp(argv[1], "top"))
		cli.cmd = CMD_TOP;
	if (cli.cmd != CMD_TRACE) {
		argv++;
		argc--;
	}
	rc = parse_args(argc, argv, &cli);
	if (!rc) {
		switch (cli.cmd) {
		case CMD_STATS:
		case CMD_COMPARE: {
			struct offline_request r = {.files = (const char *const *)cli.files,
						    .nfiles = cli.nfiles,
						    .output = cli.trace.output,
						    .report = &cli.trace.report,
						    .filters = &cli.filters,
						    .has_address = cli.has_address,
						    .address = cli.address};

			rc = cli.cmd == CMD_STATS ? offline_stats(&r) : offline_compare(&r);
			break;
		}
		case CMD_TOP:
			rc = check_trace_args(&cli);
			if (!rc)
				rc = top_run(&cli.trace);
			break;
		case CMD_SERVE:
			cli.serve.version = TRACER_VERSION_STRING;
			rc = check_trace_args(&cli);
			if (!rc)
				rc = serve_run(&cli.trace, &cli.serve);
			break;
		default:
			rc = check_trace_args(&cli);
			if (!rc)
				rc = session_run(&cli.trace);
		}
	}
	filter_set_free(&cli.filters);
	free(cli.names);
	return rc;
}
