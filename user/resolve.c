#include <errno.h>
#include <string.h>

#include "resolve.h"
#include "tracer.h"
#include "util/util.h"

/* The functions where a walk ends because the stack does. */
static bool stack_bottom(const char *fn)
{
	static const char *const bottoms[] = {"_start",
					      "__libc_start_call_main",
					      "__libc_start_main",
					      "start_thread",
					      "clone",
					      "clone3",
					      "__clone",
					      "__clone3"};

	for (size_t i = 0; fn && i < ARRAY_SIZE(bottoms); i++)
		if (!strcmp(fn, bottoms[i]))
			return true;
	return false;
}

/* The interpreter's dispatch functions: with --native, the Python frames
 * take their place in a merged traceback. */
static bool interpreter_frame(const char *fn)
{
	return fn && (!strncmp(fn, "_PyEval_", 8) || !strncmp(fn, "PyEval_", 7));
}

struct walk {
	uint32_t ids[TRACER_MAX_NFRAME];
	uint32_t n, limit;
	bool cut;	     /* left known code */
	bool at_interpreter; /* stopped at the interpreter's loop */
};

/* Native frames of a trace, most recent first, into w->ids: the call site,
 * then the stack walk, each address expanded into its inlined frames (each
 * one a frame toward nframe). Stops where the walk leaves known code and,
 * with stop_at_interpreter, at an address in the interpreter's loop (its
 * frames, inlined ones too, are where the Python frames go). */
static int native_frames(struct snapshot *snap, struct symbolizer *sym,
			 const struct resolve_trace *t, struct walk *w, bool stop_at_interpreter)
{
	for (uint32_t i = 0; w->n < w->limit; i++) {
		uint64_t ip = i == 0 ? t->ip : (t->stack ? t->stack[i] : 0);
		const struct symbolize_frame *f;
		int n;

		if (!ip)
			break;
		if (!sym || !symbolize_valid_ip(sym, ip)) {
			if (sym)
				symbolize_refresh(sym); /* a library mapped since */
			if (!sym || !symbolize_valid_ip(sym, ip)) {
				w->cut = true;
				break;
			}
		}
		n = symbolize_return_address(sym, ip, &f);
		if (n < 1)
			return n < 0 ? n : -ENOENT;
		if (stop_at_interpreter && interpreter_frame(f[n - 1].function)) {
			w->at_interpreter = true;
			break;
		}
		for (int k = 0; k < n && w->n < w->limit; k++) {
			int64_t id = snapshot_intern_frame(snap, f[k].filename, f[k].lineno,
							   f[k].function);

			if (id < 0)
				return (int)id;
			w->ids[w->n++] = (uint32_t)id;
		}
	}
	return 0;
}

static int64_t unknown_traceback(struct snapshot *snap)
{
	int64_t id = snapshot_intern_frame(snap, "<unknown>", 0, NULL);
	uint32_t frame;

	if (id < 0)
		return id;
	frame = (uint32_t)id;
	return snapshot_intern_traceback(snap, &frame, 1, 1);
}

static int64_t python_traceback(struct snapshot *snap, struct symbolizer *sym,
				const struct resolve_options *o, const struct resolve_trace *t,
				struct walk *w)
{
	const struct python_frames_stack *py = t->py;
	uint32_t native = 0, i;
	int err;

	if (o->native) {
		err = native_frames(snap, sym, t, w, true);
		if (err)
			return err;
		native = w->n;
	}
	for (i = 0; i < py->nframe && w->n < w->limit; i++) {
		int64_t id = snapshot_intern_frame(snap, py->frames[i].filename,
						   py->frames[i].lineno, py->frames[i].function);

		if (id < 0)
			return id;
		w->ids[w->n++] = (uint32_t)id;
	}
	return snapshot_intern_traceback(
	    snap, w->ids, w->n, native + (py->total > py->nframe ? py->total : py->nframe));
}

int64_t resolve_traceback(struct snapshot *snap, struct symbolizer *sym,
			  const struct resolve_options *o, const struct resolve_trace *t,
			  struct resolve_counts *counts)
{
	struct walk w = {.limit = o->nframe < TRACER_MAX_NFRAME ? o->nframe : TRACER_MAX_NFRAME};
	int err;

	if (t->py)
		counts->py_unresolved += t->py->unresolved;
	if (t->py && t->py->nframe)
		return python_traceback(snap, sym, o, t, &w);
	if (t->domain == SNAPSHOT_DOMAIN_PYTHON && t->python_process && !o->native)
		return unknown_traceback(snap); /* a Python allocation with no Python frame */
	err = native_frames(snap, sym, t, &w, false);
	if (err)
		return err;
	if (w.n < w.limit && w.n > 0 && !w.cut &&
	    !stack_bottom(snapshot_string(snap, snap->frames[w.ids[w.n - 1]].function)))
		counts->ended_early++; /* a frame without a frame pointer hid its callers */
	if (w.cut)
		counts->truncated++;
	if (w.n == 0)
		return unknown_traceback(snap);
	return snapshot_intern_traceback(snap, w.ids, w.n, w.n);
}
