#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "model/delta.h"

/* src index -> dst index + 1 (0: not imported yet), one table per kind */
struct import {
	struct snapshot *dst;
	const struct snapshot *src;
	uint32_t *mapping, *frame, *traceback, *process;
};

static int import_string(struct import *im, uint32_t *idx)
{
	const char *str = snapshot_string(im->src, *idx);
	int64_t r;

	if (!str) {
		*idx = SNAPSHOT_NO_STRING;
		return 0;
	}
	r = snapshot_intern_string(im->dst, str);
	if (r < 0)
		return (int)r;
	*idx = (uint32_t)r;
	return 0;
}

/* The process of src's trace in dst: dst's row of the same pid and start
 * time (its figures kept), or a copy of src's added. A snapshot of one
 * process stays one while both are; one imported into a snapshot of
 * several becomes a row made from its target. */
static int64_t import_process(struct import *im, uint32_t i)
{
	struct snapshot *dst = im->dst;
	const struct snapshot *src = im->src;
	struct snapshot_process p;
	char comm[SNAPSHOT_COMM_LEN];
	int64_t idx;
	int err;

	if (!src->nprocesses && !dst->nprocesses)
		return 0;
	if (src->nprocesses && !dst->nprocesses && dst->ntraces)
		return -EINVAL; /* dst's traces have no process to belong to */
	if (src->nprocesses && im->process[i])
		return im->process[i] - 1;
	if (src->nprocesses) {
		p = src->processes[i];
		if ((err = import_string(im, &p.command)) || (err = import_string(im, &p.comm)) ||
		    (err = import_string(im, &p.cgroup)) || (err = import_string(im, &p.runtime)))
			return err;
	} else {
		p = (struct snapshot_process){.pid = src->target.pid,
					      .command = src->target.command,
					      .comm = SNAPSHOT_NO_STRING,
					      .cgroup = SNAPSHOT_NO_STRING,
					      .runtime = SNAPSHOT_NO_STRING,
					      .start_time = src->target.start_time,
					      .traced_current = src->traced_current,
					      .traced_peak = src->traced_peak,
					      .alloc_events = src->alloc_events,
					      .free_events = src->free_events};
		memcpy(p.domain_memory, src->domain_memory, sizeof(p.domain_memory));
		if ((err = import_string(im, &p.command)))
			return err;
		if (snapshot_comm(src, comm)[0]) {
			idx = snapshot_intern_string(dst, comm);
			if (idx < 0)
				return idx;
			p.comm = (uint32_t)idx;
		}
	}
	for (idx = 0; idx < dst->nprocesses; idx++)
		if (dst->processes[idx].pid == p.pid &&
		    dst->processes[idx].start_time == p.start_time)
			break;
	if (idx == dst->nprocesses)
		idx = snapshot_add_process(dst, &p);
	if (idx >= 0 && src->nprocesses)
		im->process[i] = (uint32_t)idx + 1;
	return idx;
}

static int64_t import_mapping(struct import *im, uint32_t m)
{
	const struct snapshot_mapping *sm = &im->src->mappings[m];
	int64_t idx;

	if (im->mapping[m])
		return im->mapping[m] - 1;
	idx = snapshot_intern_mapping(im->dst, snapshot_string(im->src, sm->path),
				      snapshot_string(im->src, sm->build_id), sm->start,
				      sm->limit, sm->file_offset);
	if (idx >= 0)
		im->mapping[m] = (uint32_t)idx + 1;
	return idx;
}

static int64_t import_frame(struct import *im, uint32_t fi)
{
	const struct snapshot_frame *f = &im->src->frames[fi];
	uint32_t mapping = SNAPSHOT_NO_MAPPING;
	int64_t idx;

	if (im->frame[fi])
		return im->frame[fi] - 1;
	if (f->mapping < im->src->nmappings) {
		idx = import_mapping(im, f->mapping);
		if (idx < 0)
			return idx;
		mapping = (uint32_t)idx;
	}
	idx = snapshot_intern_native_frame(
	    im->dst, snapshot_string(im->src, f->filename), f->lineno,
	    snapshot_string(im->src, f->function), mapping,
	    mapping == SNAPSHOT_NO_MAPPING ? 0 : f->address,
	    mapping == SNAPSHOT_NO_MAPPING ? 0 : f->function_offset);
	if (idx >= 0)
		im->frame[fi] = (uint32_t)idx + 1;
	return idx;
}

static int64_t import_traceback(struct import *im, uint32_t ti, uint32_t *ids)
{
	const struct snapshot_traceback *tb = &im->src->tracebacks[ti];
	int64_t idx;

	if (im->traceback[ti])
		return im->traceback[ti] - 1;
	for (uint32_t k = 0; k < tb->nframe; k++) {
		idx = import_frame(im, im->src->frame_ids[tb->first + k]);
		if (idx < 0)
			return idx;
		ids[k] = (uint32_t)idx;
	}
	idx = snapshot_intern_traceback(im->dst, ids, tb->nframe, tb->total_nframe);
	if (idx >= 0)
		im->traceback[ti] = (uint32_t)idx + 1;
	return idx;
}

int snapshot_import_traces(struct snapshot *dst, const struct snapshot *src)
{
	struct import im = {.dst = dst, .src = src};
	uint32_t *ids = NULL, longest = 1;
	int err = 0;

	for (uint32_t i = 0; i < src->ntracebacks; i++)
		if (src->tracebacks[i].nframe > longest)
			longest = src->tracebacks[i].nframe;
	im.mapping = calloc(src->nmappings + 1ull, sizeof(uint32_t));
	im.frame = calloc(src->nframes + 1ull, sizeof(uint32_t));
	im.traceback = calloc(src->ntracebacks + 1ull, sizeof(uint32_t));
	im.process = calloc(src->nprocesses + 1ull, sizeof(uint32_t));
	ids = malloc(longest * sizeof(uint32_t));
	if (!im.mapping || !im.frame || !im.traceback || !im.process || !ids)
		err = -ENOMEM;
	for (uint64_t i = 0; i < src->ntraces && !err; i++) {
		struct snapshot_trace t = src->traces[i];
		int64_t tb = t.traceback < src->ntracebacks
				 ? import_traceback(&im, t.traceback, ids)
				 : -EINVAL;
		int64_t process = tb < 0 ? tb : import_process(&im, t.process);

		if (process < 0) {
			err = (int)process;
			break;
		}
		t.traceback = (uint32_t)tb;
		t.process = (uint32_t)process;
		t.age_ns = 0; /* as before: the import keeps no ages */
		err = snapshot_add_trace_of(dst, &t, false);
	}
	free(im.mapping);
	free(im.frame);
	free(im.traceback);
	free(im.process);
	free(ids);
	return err;
}

const char *snapshot_comm(const struct snapshot *s, char *buf)
{
	const char *cmd = snapshot_string(s, s->target.command), *end, *base;
	size_t n;

	buf[0] = '\0';
	if (!cmd)
		return buf;
	end = cmd + strcspn(cmd, " ");
	base = end;
	while (base > cmd && base[-1] != '/')
		base--;
	n = (size_t)(end - base);
	if (n > SNAPSHOT_COMM_LEN - 1)
		n = SNAPSHOT_COMM_LEN - 1;
	memcpy(buf, base, n);
	buf[n] = '\0';
	return buf;
}
