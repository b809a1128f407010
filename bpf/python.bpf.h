/* The Python frame walker: at an allocation, the calling thread's CPython
 * frames are read (thread state from its pthread TSD slot, then the frame
 * chain) and stored as (code object, instruction) pairs; user space turns
 * them into file:line:function.
 *
 * Code only: the maps and settings it uses (py_configs, py_stacks,
 * py_scratch, py_frame_bufs with PY_READ and PY_WINDOW; python_enabled,
 * nframe) are declared at the top of tracer.bpf.c, with count() and
 * mix64(), before the line that includes this file. */
#ifndef TRACER_PYTHON_BPF_H
#define TRACER_PYTHON_BPF_H

#ifndef E2BIG
#define E2BIG 7
#endif

/* Fields at offsets from user space.
 *
 * The walker reads fields at offsets user space gives (struct
 * tracer_py_config) out of PY_READ-byte buffers: a frame in the window, or
 * buf->code. The verifier knows nothing of those values, and passes a read
 * of size bytes at buf + off only if it can prove off + size <= PY_READ; so
 * each offset is masked first. PY_READ being a power of two, off &
 * (PY_READ - size), for a size of 1, 4 or 8, is both at most PY_READ - size
 * and a multiple of size: 0x7f, 0x7c, 0x78.
 *
 * The mask never changes a real offset, which is at most PY_READ - size
 * and a multiple of size already. user/python/find.c's python_layout_config
 * refuses a layout where one of the two spans would not fit
 * (native_thread_id more than PY_TSTATE_READ - 4 bytes past the frame
 * field; _co_firsttraceable's end more than PY_READ - 1 past co_filename).
 * The frame fields are constants of its per-version layouts[] (each ends
 * within a frame's first 112 bytes; pointers 8-aligned, f_lasti 4-aligned),
 * checked against the process's _Py_DebugOffsets from 3.13 on. A layout
 * that broke this would read a wrong field, never outside the buffer. */
static __always_inline __u64 py_u64_at(const __u8 *buf, __u32 off)
{
	return *(const __u64 *)(buf + (off & (PY_READ - 8)));
}

static __always_inline __u32 py_u32_at(const __u8 *buf, __u32 off)
{
	return *(const __u32 *)(buf + (off & (PY_READ - 4)));
}

static __always_inline __u8 py_u8_at(const __u8 *buf, __u32 off)
{
	return buf[off & (PY_READ - 1)];
}

/* A length from user space for a read into a PY_READ-byte buffer: at most
 * PY_READ - 1, which python_layout_config checks of the one such length
 * (co_filename to the end of _co_firsttraceable). */
static __always_inline __u32 py_read_len(__u32 len)
{
	return len & (PY_READ - 1);
}

/* Where the frame at f starts in the window read at win_base: the walker
 * looks a frame up there only when it lies wholly inside, f - win_base <=
 * win_len - PY_READ < PY_WINDOW, so the mask changes nothing; it tells the
 * verifier that a PY_READ read from there stays inside win[PY_WINDOW +
 * PY_READ]. */
static __always_inline __u32 py_window_off(__u64 f, __u64 win_base)
{
	return (__u32)(f - win_base) & (PY_WINDOW - 1);
}

/* The smallest page: a read that stays in the page of a frame it holds
 * cannot fault on unmapped memory below. */
#define PY_PAGE 4096

/* The thread state's frame field and native_thread_id, in one read (3.11+:
 * less than PY_TSTATE_READ bytes apart, python_layout_config checks). */
#define PY_TSTATE_READ 112

struct py_walk {
	struct py_frame_buf *buf;
	const struct tracer_py_config *cfg;
	struct tracer_py_stack *st;
	__u64 frame;
	__u64 hash;
};

/* One step of the chain: returns 1 to stop. */
static long py_walk_step(__u32 i, struct py_walk *w)
{
	const struct tracer_py_config *c = w->cfg;
	__u64 code, instr_raw, previous, ident, f = w->frame;
	__u8 owner = 0, *buf;
	__s64 instr;

	if (!f)
		return 1;
	if (!w->buf->win_base || f < w->buf->win_base ||
	    f - w->buf->win_base > w->buf->win_len - PY_READ) {
		/* the window ending with this frame (3.11+, whose frames live
		 * in the data stack); before 3.11, or where memory below is not
		 * mapped, the frame alone */
		__u64 base = f + PY_READ - PY_WINDOW, page = f & ~(__u64)(PY_PAGE - 1);

		/* where the window would reach below the frame's page, which
		 * may not be mapped (the frames at the start of a data stack
		 * chunk: all of 3.14's bench_py stack), it starts at the
		 * page instead, the frame's callers in that page with it;
		 * else every frame there paid a failed read and one of its
		 * own. The same length either way: the verifier's states
		 * of the two stay one. */
		if (f > PY_WINDOW && page > base)
			base = page;
		if (c->code_adaptive && f > PY_WINDOW &&
		    !bpf_probe_read_user(w->buf->win, PY_WINDOW, (void *)base)) {
			w->buf->win_base = base;
			w->buf->win_len = PY_WINDOW;
		} else if (!bpf_probe_read_user(w->buf->win, PY_READ, (void *)f)) {
			w->buf->win_base = f;
			w->buf->win_len = PY_READ;
		} else {
			w->buf->unreadable = true;
			return 1;
		}
	}
	buf = w->buf->win + py_window_off(f, w->buf->win_base);
	previous = py_u64_at(buf, c->fr_previous);
	code = py_u64_at(buf, c->fr_code) & ~(__u64)c->code_tag_mask;
	if (c->fr_owner)
		owner = py_u8_at(buf, c->fr_owner);
	w->frame = previous;
	if (c->owner_skip_min && owner >= c->owner_skip_min)
		return 0; /* a shim frame of the C stack */
	if (!code) {
		w->buf->unreadable = true;
		return 0;
	}
	if (c->code_adaptive) {
		__u64 first = code + c->code_adaptive;

		instr_raw = py_u64_at(buf, c->fr_instr);
		instr = instr_raw >= first ? (__s64)((instr_raw - first) / 2) : -1;
	} else {
		instr = (__s32)py_u32_at(buf, c->fr_instr);
	}
	/* incomplete: pushed but not yet started (before RESUME): tracemalloc
	 * neither shows nor counts it. The innermost frames can be; above a
	 * complete frame a caller has run past its RESUME to a CALL, so its
	 * index is at least 1, except for the shim that 3.13+ pushes under
	 * an __init__ called by a class (_Py_InitCleanup, index 0, first
	 * traceable 4): only a frame at index 0 or below is read again there.
	 * One read gets the code object's identity and _co_firsttraceable. */
	if (c->code_firsttraceable && (!w->buf->started || instr <= 0)) {
		__u32 span = py_read_len(c->code_firsttraceable - c->code_ident + 4);

		w->buf->ident_read = false;
		if (bpf_probe_read_user(w->buf->code, span, (void *)(code + c->code_ident))) {
			w->buf->unreadable = true;
		} else {
			w->buf->ident_read = true;
			if (owner != c->owner_generator &&
			    instr < (__s32)py_u32_at(w->buf->code,
						     c->code_firsttraceable - c->code_ident)) {
				w->buf->ident_read = false; /* it was this frame's */
				return 0;
			}
		}
	}
	w->buf->started = true;
	if (w->st->total < TRACER_PY_MAX_WALK)
		w->st->total++;
	/* beyond nframe a frame is only counted (total_nframe) */
	if (w->st->nframe < nframe && w->st->nframe < TRACER_MAX_NFRAME) {
		__u32 n = w->st->nframe;
		__u64 id[2] = {};

		if (w->buf->ident_read) {
			id[0] = *(__u64 *)w->buf->code;
			id[1] = *(__u64 *)(w->buf->code + 8);
		} else if (bpf_probe_read_user(id, sizeof(id), (void *)(code + c->code_ident))) {
			w->buf->unreadable = true;
		}
		w->buf->ident_read = false;
		ident = id[0] ^ (id[1] << 1);

		if (n < TRACER_MAX_NFRAME) {
			w->st->frames[n].code = code;
			w->st->frames[n].instr = instr;
			w->st->frames[n].ident = ident;
		}
		w->st->nframe = n + 1;
		w->hash = mix64(w->hash ^ code);
		w->hash = mix64(w->hash ^ (__u64)instr);
		w->hash = mix64(w->hash ^ ident);
	}
	return 0;
}

/* The thread state bound to the calling thread (PyGILState's TSD key):
 * the right one even while the thread has released the GIL. */
static __always_inline __u64 py_thread_state(struct tracer_py_config *c)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 fsbase = BPF_CORE_READ(task, thread.fsbase), tstate = 0;
	__s32 key = c->tss_key;

	if (!fsbase)
		return 0;
	if (key < 0) {
		__s32 tss[2]; /* Py_tss_t: {_is_initialized, _key} */

		/* the interpreter may create its key after we attach; once
		 * created it never changes */
		if (bpf_probe_read_user(tss, sizeof(tss), (void *)c->tss_key_addr) || !tss[0] ||
		    tss[1] < 0 || tss[1] >= 32)
			return 0;
		key = tss[1];
		c->tss_key = key;
	}
	if (key >= 32 ||
	    bpf_probe_read_user(&tstate, sizeof(tstate),
				(void *)(fsbase + c->pthread_specific + 16 * (__u32)key + 8)))
		return 0;
	return tstate;
}

/* The calling thread's id in its own pid namespace: what gettid() returns
 * there, and so what CPython keeps in native_thread_id for a process in a
 * container. */
static __always_inline __u32 ns_tid(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct pid *pid = BPF_CORE_READ(task, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	int nr = 0;

	/* pid namespaces nest at most 32 deep (MAX_PID_NS_LEVEL) */
	bpf_probe_read_kernel(&nr, sizeof(nr), &pid->numbers[level & 31].nr);
	return (__u32)nr;
}

/* One frame of a new stack: its code object into py_pending_code. */
struct py_watch {
	struct tracer_py_stack *st;
};

static long py_watch_code(__u32 i, void *ctx)
{
	struct tracer_py_stack *st = ((struct py_watch *)ctx)->st;
	__u8 one = 1;

	if (i >= st->nframe || i >= TRACER_MAX_NFRAME)
		return 1;
	bpf_map_update_elem(&py_pending_code, &st->frames[i].code, &one, BPF_ANY);
	return 0;
}

/* Captures the Python stack of the calling thread; returns its key in
 * py_stacks, or 0 when the thread runs no Python code. A stack that cannot
 * be read counts unreadable (what its caller loses then). */
__noinline __u64 py_capture(__u32 tgid, __u32 unreadable)
{
	struct tracer_py_config *c;
	struct tracer_py_stack *st;
	struct py_walk w = {};
	__u64 tstate, frame = 0;
	__u32 zero = 0, native_tid;
	long err;

	if (!python_enabled)
		return 0;
	c = bpf_map_lookup_elem(&py_configs, &tgid);
	if (!c)
		return 0;
	tstate = py_thread_state(c);
	if (!tstate)
		return 0; /* a thread that never ran Python */
	st = bpf_map_lookup_elem(&py_scratch, &zero);
	w.buf = bpf_map_lookup_elem(&py_frame_bufs, &zero);
	if (!st || !w.buf)
		return 0;
	if (c->ts_native_tid) {
		if (bpf_probe_read_user(w.buf->code, PY_TSTATE_READ,
					(void *)(tstate + c->ts_frame)))
			goto unreadable;
		native_tid = py_u32_at(w.buf->code, c->ts_native_tid - c->ts_frame);
		if (native_tid != (__u32)bpf_get_current_pid_tgid() && native_tid != ns_tid())
			return 0; /* the key's thread state is another thread's */
		frame = *(__u64 *)w.buf->code;
	} else if (bpf_probe_read_user(&frame, sizeof(frame), (void *)(tstate + c->ts_frame))) {
		goto unreadable;
	}
	if (c->cframe_current >= 0 && frame &&
	    bpf_probe_read_user(&frame, sizeof(frame), (void *)(frame + c->cframe_current)))
		goto unreadable;
	st->nframe = 0;
	st->total = 0;
	st->tgid = tgid;
	w.cfg = c;
	w.st = st;
	w.frame = frame;
	w.hash = 0x2545f4914f6cdd1dull;
	w.buf->win_base = 0;
	w.buf->win_len = 0;
	w.buf->started = 0;
	w.buf->ident_read = 0;
	w.buf->unreadable = 0;
	bpf_loop(TRACER_PY_MAX_WALK, py_walk_step, &w, 0);
	if (w.buf->unreadable)
		count(unreadable, 1);
	w.hash = mix64(w.hash ^ st->total);
	if (w.hash == 0)
		w.hash = 1;
	/* Most stacks repeat and are there already (until the next poll): a
	 * lookup takes no bucket lock, where an update that finds the key
	 * takes it to refuse (~40 ns more a capture on bench_py). */
	if (bpf_map_lookup_elem(&py_stacks, &w.hash))
		return w.hash;
	err = bpf_map_update_elem(&py_stacks, &w.hash, st, BPF_NOEXIST);
	if (err == -E2BIG) {
		count(TRACER_CNT_PY_STACKS_FULL, 1);
		return 0;
	}
	if (!err && loader_stop) { /* a new stack: its code objects are watched */
		struct py_watch watch = {.st = st};

		bpf_loop(TRACER_MAX_NFRAME, py_watch_code, &watch, 0);
	}
	return w.hash;
unreadable:
	count(unreadable, 1);
	return 0;
}

#endif
