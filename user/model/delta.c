#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "model/delta.h"

/* src index -> dst index + 1 (0: not imported yet), one table per kind */
struct import {
	struct snapshot *dst;
	const struct snapshot *src;
	uint32_t *mapping, *frame, *traceback;
};

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
	ids = malloc(longest * sizeof(uint32_t));
	if (!im.mapping || !im.frame || !im.traceback || !ids)
		err = -ENOMEM;
	for (uint64_t i = 0; i < src->ntraces && !err; i++) {
		const struct snapshot_trace *t = &src->traces[i];
		int64_t tb = t->traceback < src->ntracebacks
				 ? import_traceback(&im, t->traceback, ids)
				 : -EINVAL;

		err = tb < 0 ? (int)tb
			     : snapshot_add_trace(dst, t->address, t->size, t->domain,
						  (uint32_t)tb);
	}
	free(im.mapping);
	free(im.frame);
	free(im.traceback);
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
