#include <errno.h>
#include <string.h>

#include "resolve.h"
#include "util/util.h"

/* The interpreter's dispatch functions: with --native, the Python frames
 * take their place in a merged traceback. */
static bool interpreter_frame(const char *fn)
{
	return fn && (!strncmp(fn, "_PyEval_", 8) || !strncmp(fn, "PyEval_", 7));
}

/* Allocator plumbing: functions between the allocator and the code that
 * asked for memory, whose frames say nothing of where it was asked. Frames
 * in them at the top of a traceback (most recent first) are left out, so
 * that the statistic by line lands on the first frame a user would call
 * "where I allocated": Rust's global allocator shims and RawVec/Vec
 * growth, libstdc++'s allocators and containers' growth, and allocator
 * wrappers of well-known programs and libraries (redis's zmalloc family,
 * GLib's g_malloc family, GNU's xmalloc family). Matched on the function's
 * name (prefix, or whole name for the wrappers). */
static const char *const plumbing_prefixes[] = {
    "__rust_", "__rdl_", "__rg_", "alloc::", "<alloc::", "core::", "<core::", "std::sys::",
    "std::alloc::", "<std::alloc::", "std::", "__gnu_cxx::", "operator new",
};
static const char *const plumbing_names[] = {
    "zmalloc", "zcalloc", "zrealloc", "zstrdup", "zmalloc_usable", "zcalloc_usable",
    "zrealloc_usable", "ztrymalloc", "ztrycalloc", "ztryrealloc", "ztrymalloc_usable",
    "ztrycalloc_usable", "ztryrealloc_usable", "ztrymalloc_usable_internal",
    "ztrycalloc_usable_internal", "ztryrealloc_usable_internal", "g_malloc", "g_malloc0",
    "g_realloc", "g_try_malloc", "g_try_malloc0", "g_try_realloc", "g_malloc_n", "g_malloc0_n",
    "g_realloc_n", "g_strdup", "g_memdup", "g_memdup2", "xmalloc", "xcalloc", "xrealloc",
    "xzalloc", "xstrdup", "xmemdup",
};

/* Source files of the languages' own allocation paths: Rust's standard
 * library (alloc, core, std, as rustc records them: /rustc/HASH/library/)
 * and libstdc++'s headers, whose code is inlined into the caller's frame
 * (each of its lines an inline frame of its own once expanded). */
static bool plumbing_file(const char *file)
{
	if (!file)
		return false;
	if (!strncmp(file, "/rustc/", 7)) {
		const char *lib = strstr(file, "/library/");

		return lib && (!strncmp(lib, "/library/alloc/", 15) ||
			       !strncmp(lib, "/library/core/", 14) ||
			       !strncmp(lib, "/library/std/", 13));
	}
	return !strncmp(file, "/usr/include/c++/", 17);
}

bool resolve_is_plumbing(const char *fn)
{
	const char *sp;

	if (!fn)
		return false;
	/* a template function's demangled name starts with its return type
	 * ("void std::vector<long>::_M_realloc_insert<long>(...)"): skip one
	 * word of it */
	sp = strchr(fn, ' ');
	if (sp && strcspn(fn, "(<:") > (size_t)(sp - fn))
		fn = sp + 1;
	for (size_t i = 0; i < ARRAY_SIZE(plumbing_prefixes); i++)
		if (!strncmp(fn, plumbing_prefixes[i], strlen(plumbing_prefixes[i])))
			return true;
	for (size_t i = 0; i < ARRAY_SIZE(plumbing_names); i++) {
		size_t n = strlen(plumbing_names[i]);

		/* the name alone, or with its C++ parameter list */
		if (!strncmp(fn, plumbing_names[i], n) && (fn[n] == '\0' || fn[n] == '('))
			return true;
	}
	return false;
}

struct walk {
	uint32_t ids[TRACER_MAX_NFRAME];
	uint32_t n, limit;
	bool cut;	     /* left known code */
	bool at_interpreter; /* stopped at the interpreter's loop */
};

/* The mapping of a native frame into snap: its index, or
 * SNAPSHOT_NO_MAPPING when the symbolizer knows none; or a negative errno. */
static int64_t intern_mapping(struct snapshot *snap, const struct symbolize_mapping *m)
{
	if (!m->path || m->start >= m->limit)
		return SNAPSHOT_NO_MAPPING;
	return snapshot_intern_mapping(snap, m->path, m->build_id, m->start, m->limit, m->offset);
}

/* A native frame with where it is (its mapping, address, offset in its
 * function), when that is known and consistent. */
static int64_t intern_native(struct snapshot *snap, const struct symbolize_frame *f)
{
	int64_t m = intern_mapping(snap, &f->mapping);

	if (m < 0)
		return m;
	if (m == SNAPSHOT_NO_MAPPING || f->pc < f->mapping.start || f->pc >= f->mapping.limit)
		return snapshot_intern_frame(snap, f->filename, f->lineno, f->function);
	return snapshot_intern_native_frame(snap, f->filename, f->lineno, f->function, (uint32_t)m,
					    f->pc, f->function_offset);
}

int resolve_mappings(struct snapshot *snap, struct symbolizer *sym)
{
	struct symbolize_mapping m;

	/* the executable's first, then the others in address order */
	for (int pass = 0; sym && pass < 2; pass++)
		for (size_t i = 0; symbolize_mapping_at(sym, i, &m); i++) {
			int64_t id;

			if (m.main != (pass == 0))
				continue;
			id = intern_mapping(snap, &m);
			if (id < 0)
				return (int)id;
		}
	return 0;
}

/* Native frames of a trace, most recent first, into w->ids: the call site,
 * then the stack walk, each address expanded into its inlined frames (each
 * one a frame toward nframe). Stops where the walk leaves known code and,
 * with stop_at_interpreter, at an address in the interpreter's loop (its
 * frames, inlined ones too, are where the Python frames go). */
static int native_frames(struct snapshot *snap, struct symbolizer *sym,
			 const struct resolve_trace *t, struct walk *w, bool stop_at_interpreter)
{
	for (uint32_t i = 0; w->n < w->limit; i++) {
		uint64_t ip = i == 0 ? t->ip : (t->stack && i < t->nstack ? t->stack[i] : 0);
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
			int64_t id = intern_native(snap, &f[k]);

			if (id < 0)
				return (int)id;
			w->ids[w->n++] = (uint32_t)id;
		}
	}
	return 0;
}

/* Leaves out the leading frames in allocator plumbing (all but the last
 * when every one is), then keeps at most limit frames. */
static void skip_plumbing(const struct snapshot *snap, struct walk *w, uint32_t limit)
{
	uint32_t k = 0;

	/* by the file only where no function is known: a frame's line can be
	 * in a library header inlined into the caller's own function */
	for (; k + 1 < w->n; k++) {
		const struct snapshot_frame *f = &snap->frames[w->ids[k]];
		const char *fn = snapshot_string(snap, f->function);

		if (!(fn ? resolve_is_plumbing(fn) : plumbing_file(snapshot_string(snap, f->filename))))
			break;
	}
	if (k)
		memmove(w->ids, w->ids + k, (w->n - k) * sizeof(w->ids[0]));
	w->n -= k;
	if (w->n > limit)
		w->n = limit;
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
		if (!o->keep_plumbing)
			skip_plumbing(snap, w, o->nframe);
		native = w->n;
	}
	w->limit = o->nframe < TRACER_MAX_NFRAME ? o->nframe : TRACER_MAX_NFRAME;
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
	uint32_t limit = o->nframe < TRACER_MAX_NFRAME ? o->nframe : TRACER_MAX_NFRAME;
	/* frames walked beyond nframe stand in for the plumbing left out (the
	 * walk's addresses, each maybe expanded into many inlined frames) */
	struct walk w = {.limit = o->keep_plumbing ? limit : TRACER_MAX_NFRAME};
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
	if (t->stack && !w.cut && w.n < w.limit && t->stack_end < TRACER_END_COUNT &&
	    t->stack_end != TRACER_END_NFRAME && t->stack_end != TRACER_END_BOTTOM)
		counts->stack_end[t->stack_end]++; /* the walk could not go on */
	if (w.cut)
		counts->truncated++;
	if (!o->keep_plumbing)
		skip_plumbing(snap, &w, limit);
	if (w.n == 0)
		return unknown_traceback(snap);
	return snapshot_intern_traceback(snap, w.ids, w.n, w.n);
}

uint32_t resolve_walk_depth(const struct resolve_options *o)
{
	uint32_t n = o->nframe + (o->keep_plumbing || o->nframe <= 1 ? 0 : RESOLVE_PLUMBING_EXTRA);

	return n < TRACER_MAX_NFRAME ? n : TRACER_MAX_NFRAME;
}
