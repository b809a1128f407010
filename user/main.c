/* tracer: tracemalloc for any process, from outside. Command line. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"
#include "stats.h"
#include "tracer.h"

static const char usage[] =
	"usage: tracer [options] -p PID\n"
	"       tracer [options] -- COMMAND [ARG...]\n"
	"\n"
	"  -p, --pid PID          attach to a running process (all its threads)\n"
	"  -n, --nframe N         frames per traceback, 1..%d (default 1, or $TRACER_NFRAME)\n"
	"  -d, --duration SEC     stop after SEC seconds (default: Ctrl-C or target exit)\n"
	"  -i, --interval SEC     also report every SEC seconds\n"
	"  -t, --top N            statistics to print (default 10, 0 = all)\n"
	"  -k, --key KEY          lineno (default), filename or traceback\n"
	"      --cumulative       cumulative statistics (lineno, filename)\n"
	"  -l, --limit N          frames printed per traceback (default: all)\n"
	"      --format FMT       text (default) or json\n"
	"      --follow           with --: trace the command's children too\n"
	"      --max-allocs N     live allocations kept (default %u)\n"
	"      --max-stacks N     distinct stacks kept when nframe > 1 (default %u)\n"
	"      --probe-only       place the probes but record nothing (overhead floor)\n"
	"      --python-malloc    with --: run CPython with PYTHONMALLOC=malloc, so that\n"
	"                         every object allocation is seen even where pymalloc is\n"
	"                         inlined (Debian's python3.11)\n"
	"  -v, --verbose          say where the probes are\n"
	"  -h, --help\n";

static void print_usage(FILE *f)
{
	fprintf(f, usage, TRACER_MAX_NFRAME, SESSION_DEFAULT_MAX_ALLOCS,
		SESSION_DEFAULT_MAX_STACKS);
}

static int bad(const char *fmt, const char *arg)
{
	fprintf(stderr, "tracer: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	return 2;
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

int main(int argc, char **argv)
{
	enum { OPT_CUMULATIVE = 256, OPT_FORMAT, OPT_FOLLOW, OPT_MAX_ALLOCS, OPT_MAX_STACKS,
	       OPT_PROBE_ONLY, OPT_PYTHON_MALLOC };
	static const struct option longopts[] = {
		{"pid", required_argument, NULL, 'p'},
		{"nframe", required_argument, NULL, 'n'},
		{"duration", required_argument, NULL, 'd'},
		{"interval", required_argument, NULL, 'i'},
		{"top", required_argument, NULL, 't'},
		{"key", required_argument, NULL, 'k'},
		{"limit", required_argument, NULL, 'l'},
		{"cumulative", no_argument, NULL, OPT_CUMULATIVE},
		{"format", required_argument, NULL, OPT_FORMAT},
		{"follow", no_argument, NULL, OPT_FOLLOW},
		{"max-allocs", required_argument, NULL, OPT_MAX_ALLOCS},
		{"max-stacks", required_argument, NULL, OPT_MAX_STACKS},
		{"probe-only", no_argument, NULL, OPT_PROBE_ONLY},
		{"python-malloc", no_argument, NULL, OPT_PYTHON_MALLOC},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	struct session_options o = {
		.nframe = 1,
		.max_allocs = SESSION_DEFAULT_MAX_ALLOCS,
		.max_stacks = SESSION_DEFAULT_MAX_STACKS,
		.report = {.format = REPORT_TEXT, .key = STATS_KEY_LINENO, .top = 10},
	};
	const char *env = getenv("TRACER_NFRAME");
	long v;
	int c;

	if (env && *env && parse_nframe(env, &o.nframe))
		return 2;
	while ((c = getopt_long(argc, argv, "+p:n:d:i:t:k:l:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (parse_long(optarg, 1, INT_MAX, &v))
				return bad("invalid PID '%s'", optarg);
			o.pid = (pid_t)v;
			break;
		case 'n':
			if (parse_nframe(optarg, &o.nframe))
				return 2;
			break;
		case 'd':
			if (parse_seconds(optarg, &o.duration))
				return bad("invalid duration '%s' (seconds > 0)", optarg);
			break;
		case 'i':
			if (parse_seconds(optarg, &o.interval))
				return bad("invalid interval '%s' (seconds > 0)", optarg);
			break;
		case 't':
			if (parse_long(optarg, 0, INT_MAX, &v))
				return bad("invalid top count '%s'", optarg);
			o.report.top = (int)v;
			break;
		case 'k':
			if (stats_parse_key(optarg, &o.report.key))
				return bad("unknown key_type: '%s' (lineno, filename or traceback)",
					   optarg);
			break;
		case 'l':
			if (parse_long(optarg, INT_MIN, INT_MAX, &v))
				return bad("invalid traceback limit '%s'", optarg);
			o.report.traceback_limit = (int)v;
			break;
		case OPT_CUMULATIVE:
			o.report.cumulative = true;
			break;
		case OPT_FORMAT:
			if (!strcmp(optarg, "text"))
				o.report.format = REPORT_TEXT;
			else if (!strcmp(optarg, "json"))
				o.report.format = REPORT_JSON;
			else
				return bad("unknown format '%s' (text or json)", optarg);
			break;
		case OPT_FOLLOW:
			o.follow = true;
			break;
		case OPT_MAX_ALLOCS:
			if (parse_long(optarg, 1, 1 << 28, &v))
				return bad("invalid --max-allocs '%s' (1..268435456)", optarg);
			o.max_allocs = (uint32_t)v;
			break;
		case OPT_MAX_STACKS:
			if (parse_long(optarg, 1, 1 << 24, &v))
				return bad("invalid --max-stacks '%s' (1..16777216)", optarg);
			o.max_stacks = (uint32_t)v;
			break;
		case OPT_PROBE_ONLY:
			o.probe_only = true;
			break;
		case OPT_PYTHON_MALLOC:
			o.python_malloc = true;
			break;
		case 'v':
			o.verbose = true;
			break;
		case 'h':
			print_usage(stdout);
			return 0;
		default:
			print_usage(stderr);
			return 2;
		}
	}
	if (optind < argc)
		o.argv = argv + optind;
	if (!o.pid == !o.argv)
		return bad("%s", o.pid ? "give either -p PID or -- COMMAND, not both"
					: "nothing to trace: give -p PID or -- COMMAND (see --help)");
	if (o.python_malloc && !o.argv)
		return bad("%s", "--python-malloc applies to a launched command (-- COMMAND)");
	if (o.follow && !o.argv)
		return bad("%s", "--follow applies to a launched command (-- COMMAND)");
	if (o.report.cumulative && o.report.key == STATS_KEY_TRACEBACK)
		return bad("%s", "cumulative mode cannot by used with key type 'traceback'");
	return session_run(&o);
}
