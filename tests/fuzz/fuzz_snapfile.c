/* libFuzzer target: the snapshot loader must reject or accept any bytes
 * without a crash, a leak or an out-of-bounds access (built with ASan and
 * UBSan). The build defines FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, which
 * makes the loader ignore the checksum so that the fuzzer reaches the
 * checks behind it. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "model/delta.h"
#include "model/filter.h"
#include "model/snapfile.h"
#include "model/stats.h"
#include "report/collapsed.h"
#include "report/html.h"
#include "report/metrics.h"
#include "report/pprof.h"
#include "report/report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snapshot *s;
	struct stats_list l;
	char err[256];

	if (snapfile_decode(data, size, &s, err, sizeof(err)))
		return 0;
	/* what loads must also group: every index it holds is used here */
	if (!stats_compute(s, STATS_KEY_TRACEBACK, false, &l))
		stats_list_free(&l);
	if (!stats_compute(s, STATS_KEY_FILENAME, true, &l))
		stats_list_free(&l);
	if (!stats_compute(s, STATS_KEY_PROCESS, false, &l))
		stats_list_free(&l);
	/* and keep its processes through a filter (the second one's pid) */
	{
		struct process_filter pf = {0};
		struct snapshot *kept;

		if (!process_filter_add_pid(&pf, s->nprocesses > 1 ? s->processes[1].pid : 1) &&
		    !filter_processes(s, &pf, &kept)) {
			if (!stats_compute(kept, STATS_KEY_LINENO, false, &l))
				stats_list_free(&l);
			snapshot_free(kept);
		}
		process_filter_free(&pf);
	}
	/* and be printed in every format: frames, mappings, addresses */
	static FILE *null;
	if (!null)
		null = fopen("/dev/null", "w");
	if (null) {
		/* text by lineno: -k traceback would open the source files the
		 * frames name */
		struct report_options o = {.format = REPORT_TEXT, .key = STATS_KEY_LINENO};

		report_snapshot(null, s, &o);
		o.format = REPORT_JSON;
		o.key = STATS_KEY_TRACEBACK;
		report_snapshot(null, s, &o);
		/* by process: each process's section and document */
		o.key = STATS_KEY_PROCESS;
		report_snapshot(null, s, &o);
		o.format = REPORT_TEXT;
		report_snapshot(null, s, &o);
		collapsed_write_with(s, null, false, true);
		o.format = REPORT_JSON;
		o.key = STATS_KEY_TRACEBACK;
		pprof_write(s, null);
		collapsed_write(s, null, false); /* by function */
		collapsed_write(s, null, true);	 /* by line */
		metrics_write(s, NULL, null);
		/* the HTML page: the tree of every traceback, and a compare of
		 * the snapshot to itself */
		struct html_page page;

		o.format = REPORT_HTML;
		o.key = STATS_KEY_LINENO;
		html_page_init(&page, s, NULL, &o);
		html_write(null, &page);
		html_page_init(&page, s, s, &o);
		html_write(null, &page);
	}
	/* and be the earlier half of a delta profile (tracer serve) */
	struct snapshot *d = snapshot_new();

	if (d && !snapshot_import_traces(d, s) && null) {
		struct pprof_options po = {.delta = true, .subtract_from = d->ntraces};

		if (!snapshot_import_traces(d, s))
			pprof_write_with(d, &po, null);
	}
	snapshot_free(d);
	snapshot_free(s);
	return 0;
}
