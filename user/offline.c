/* tracer stats and tracer compare: saved snapshot files to reports, with
 * no BPF and no root. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/snapfile.h"
#include "offline.h"
#include "report/collapsed.h"
#include "report/html.h"
#include "report/pprof.h"
#include "util/outfile.h"

static int usage_error(const char *line)
{
	fprintf(stderr, "tracer: %s\n", line);
	return 2;
}

static struct snapshot *load(const char *path)
{
	struct snapshot *s;
	char err[256];

	if (snapfile_load(path, &s, err, sizeof(err))) {
		fprintf(stderr, "tracer: %s: %s\n", path, err);
		return NULL;
	}
	return s;
}

/* Replaces *s by its filtered copy; frees it and says so on failure. */
static int filter(struct snapshot **s, const struct filter_set *fs)
{
	struct snapshot *out;
	int err;

	if (filter_set_empty(fs))
		return 0;
	err = filter_set_apply(*s, fs, &out);
	snapshot_free(*s);
	*s = NULL;
	if (err) {
		fprintf(stderr, "tracer: cannot filter the snapshot: %s\n", strerror(-err));
		return err;
	}
	*s = out;
	return 0;
}

static int write_html(FILE *out, const struct snapshot *s, const struct snapshot *old_snap,
		      const struct report_options *ro)
{
	struct html_page page;

	html_page_init(&page, s, old_snap, ro);
	return html_write(out, &page);
}

int offline_stats(const struct offline_request *r)
{
	const struct report_options *ro = r->report;
	struct outfile *file = NULL;
	char why[PATH_MAX + 256];
	struct snapshot *s;
	FILE *out = stdout;
	int err;

	if (r->nfiles != 1)
		return usage_error("usage: tracer stats [options] FILE (one snapshot file)");
	s = load(r->files[0]);
	if (!s)
		return 2;
	if (filter(&s, r->filters))
		return 1;
	if (report_missing(s, ro)) {
		fprintf(stderr, "tracer: %s: %s\n", r->files[0], report_missing(s, ro));
		snapshot_free(s);
		return 2;
	}
	if (ro->older_than_ns && (r->has_address || ro->format == REPORT_PPROF ||
				  ro->format == REPORT_COLLAPSED)) {
		struct snapshot *old_enough;

		err = filter_older_than(s, ro->older_than_ns, &old_enough);
		snapshot_free(s);
		if (err) {
			fprintf(stderr, "tracer: cannot filter the snapshot: %s\n", strerror(-err));
			return 1;
		}
		s = old_enough;
	}
	if (r->output) {
		err = outfile_create(r->output, &file, why, sizeof(why));
		if (err) {
			fprintf(stderr, "tracer: cannot write the report: %s\n", why);
			snapshot_free(s);
			return 2;
		}
		out = outfile_stream(file);
	}
	if (r->has_address)
		err = report_address(out, s, r->address) ? -ENOENT : 0;
	else if (ro->format == REPORT_PPROF)
		err = pprof_write(s, out);
	else if (ro->format == REPORT_COLLAPSED)
		err = collapsed_write_with(s, out, ro->collapsed_lines,
					   ro->key == STATS_KEY_PROCESS);
	else if (ro->format == REPORT_HTML)
		err = write_html(out, s, NULL, ro);
	else
		err = report_snapshot(out, s, ro);
	snapshot_free(s);
	snprintf(why, sizeof(why), "%s", strerror(-err));
	if (file && err && err != -ENOENT)
		outfile_discard(file);
	else if (file && outfile_commit(file, why, sizeof(why)))
		err = -EIO;
	else if (!file && fflush(stdout) && !err)
		err = -errno, snprintf(why, sizeof(why), "%s", strerror(errno));
	if (err == -ENOENT)
		return 1; /* no block holds the address: said in the report */
	if (err) {
		fprintf(stderr, "tracer: cannot write the report: %s\n", why);
		return 1;
	}
	return 0;
}

int offline_compare(const struct offline_request *r)
{
	struct snapshot *old_snap, *new_snap;
	struct outfile *file = NULL;
	char why[PATH_MAX + 256];
	FILE *out = stdout;
	int err;

	if (r->nfiles != 2)
		return usage_error("usage: tracer compare [options] OLD NEW (two snapshot files)");
	old_snap = load(r->files[0]);
	if (!old_snap)
		return 2;
	new_snap = load(r->files[1]);
	if (!new_snap) {
		snapshot_free(old_snap);
		return 2;
	}
	if (filter(&old_snap, r->filters) || filter(&new_snap, r->filters)) {
		snapshot_free(old_snap);
		snapshot_free(new_snap);
		return 1;
	}
	if (report_missing(old_snap, r->report) || report_missing(new_snap, r->report)) {
		const bool old_lacks = report_missing(old_snap, r->report) != NULL;

		fprintf(stderr, "tracer: %s: %s\n", r->files[old_lacks ? 0 : 1],
			report_missing(old_lacks ? old_snap : new_snap, r->report));
		snapshot_free(old_snap);
		snapshot_free(new_snap);
		return 2;
	}
	if (r->output) {
		err = outfile_create(r->output, &file, why, sizeof(why));
		if (err) {
			fprintf(stderr, "tracer: cannot write the report: %s\n", why);
			snapshot_free(old_snap);
			snapshot_free(new_snap);
			return 2;
		}
		out = outfile_stream(file);
	}
	if (r->report->format == REPORT_HTML)
		err = write_html(out, new_snap, old_snap, r->report);
	else
		err = report_compare(out, old_snap, new_snap, r->report);
	snapshot_free(old_snap);
	snapshot_free(new_snap);
	snprintf(why, sizeof(why), "%s", strerror(-err));
	if (file && err)
		outfile_discard(file);
	else if (file && outfile_commit(file, why, sizeof(why)))
		err = -EIO;
	else if (!file && fflush(stdout) && !err)
		err = -errno, snprintf(why, sizeof(why), "%s", strerror(errno));
	if (err) {
		fprintf(stderr, "tracer: cannot write the report: %s\n", why);
		return 1;
	}
	return 0;
}
