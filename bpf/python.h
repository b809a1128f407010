/* The Python frame walker: at an allocation, the calling thread's CPython
 * frames are read (thread state from its pthread TSD slot, then the frame
 * chain) and stored as (code object, instruction) pairs; user space turns
 * them into file:line:function. Included by tracer.bpf.c. */
#ifndef TRACER_PYTHON_BPF_H
#define TRACER_PYTHON_BPF_H

#ifndef E2BIG
#define E2BIG 7
#endif

/* set by user space once a traced process is known to run CPython */
bool python_enabled = false;
const volatile __u32 py_nframe = 1;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); /* tgid */
	__type(value, struct tracer_py_config);
} py_configs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1 << 14); /* --max-stacks */
	__type(key, __u64);
	__type(value, struct tracer_py_stack);
} py_stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tracer_py_stack);
} py_scratch SEC(".maps");

/* A frame's first bytes; a map value, since fields sit at offsets known only
 * at run time (the stack forbids variable-offset reads). */
/* Frames of 3.11+ sit next to each other in the thread's data stack, the
 * newest highest: one read of the window below a frame usually holds its
 * callers too, where a read per frame would cost ~100 ns each. */
#define PY_WINDOW 2048

struct py_frame_buf {
	__u8 win[PY_WINDOW + 128]; /* frames */
	__u8 code[128];		   /* a code object from co_filename to _co_firsttraceable */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct py_frame_buf);
} py_frame_bufs SEC(".maps");

struct py_walk {
	struct py_frame_buf *buf;
	const struct tracer_py_config *cfg;
	struct tracer_py_stack *st;
	__u64 frame;
	__u64 hash;
	bool unreadable;
	__u64 win_base;	 /* address of win[0]; 0: nothing read */
	__u32 win_len;	 /* bytes read there */
	bool started;	 /* a complete frame was seen: the frames above it are too */
	bool ident_read; /* buf->code holds this frame's code identity */
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
	if (!w->win_base || f < w->win_base || f - w->win_base > w->win_len - 128) {
		/* the window ending with this frame (3.11+, whose frames live
		 * in the data stack); before 3.11, or where memory below is not
		 * mapped, the frame alone */
		__u64 base = f + 128 - PY_WINDOW;

		if (c->code_adaptive && f > PY_WINDOW &&
		    !bpf_probe_read_user(w->buf->win, PY_WINDOW, (void *)base)) {
			w->win_base = base;
			w->win_len = PY_WINDOW;
		} else if (!bpf_probe_read_user(w->buf->win, 128, (void *)f)) {
			w->win_base = f;
			w->win_len = 128;
		} else {
			w->unreadable = true;
			return 1;
		}
	}
	buf = w->buf->win + ((f - w->win_base) & (PY_WINDOW - 1));
	previous = *(__u64 *)(buf + (c->fr_previous & 0x78));
	code = *(__u64 *)(buf + (c->fr_code & 0x78)) & ~(__u64)c->code_tag_mask;
	if (c->fr_owner)
		owner = buf[c->fr_owner & 0x7f];
	w->frame = previous;
	if (c->owner_skip_min && owner >= c->owner_skip_min)
		return 0; /* a shim frame of the C stack */
	if (!code) {
		w->unreadable = true;
		return 0;
	}
	if (c->code_adaptive) {
		__u64 first = code + c->code_adaptive;

		instr_raw = *(__u64 *)(buf + (c->fr_instr & 0x78));
		instr = instr_raw >= first ? (__s64)((instr_raw - first) / 2) : -1;
	} else {
		instr = *(__s32 *)(buf + (c->fr_instr & 0x7c));
	}
	/* incomplete: pushed but not yet started (before RESUME). Only the
	 * innermost frames can be: a frame that called another has started,
	 * so after one complete frame this is not read again. One read gets
	 * the code object's identity and _co_firsttraceable together. */
	if (c->code_firsttraceable && !w->started) {
		__u32 span = (c->code_firsttraceable - c->code_ident + 4) & 0x7f;

		w->ident_read = false;
		if (bpf_probe_read_user(w->buf->code, span, (void *)(code + c->code_ident))) {
			w->unreadable = true;
		} else {
			w->ident_read = true;
			if (owner != c->owner_generator &&
			    instr < *(__s32 *)(w->buf->code +
					       ((c->code_firsttraceable - c->code_ident) & 0x7c)))
				return 0;
		}
	}
	w->started = true;
	if (w->st->total < TRACER_PY_MAX_WALK)
		w->st->total++;
	/* beyond nframe a frame is only counted (total_nframe) */
	if (w->st->nframe < py_nframe && w->st->nframe < TRACER_MAX_NFRAME) {
		__u32 n = w->st->nframe;
		__u64 id[2] = {};

		if (w->ident_read) {
			id[0] = *(__u64 *)w->buf->code;
			id[1] = *(__u64 *)(w->buf->code + 8);
		} else if (bpf_probe_read_user(id, sizeof(id), (void *)(code + c->code_ident))) {
			w->unreadable = true;
		}
		w->ident_read = false;
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

/* Captures the Python stack of the calling thread; returns its key in
 * py_stacks, or 0 when the thread runs no Python code. */
static __always_inline __u64 py_capture(__u32 tgid)
{
	struct tracer_py_config *c;
	struct tracer_py_stack *st;
	struct py_walk w = {};
	__u64 tstate, frame = 0;
	__u32 zero = 0;

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
		/* the frame field and native_thread_id in one read (3.11+:
		 * less than 112 bytes apart, user space checks) */
		if (bpf_probe_read_user(w.buf->code, 112, (void *)(tstate + c->ts_frame)))
			goto unreadable;
		if (*(__u32 *)(w.buf->code + ((c->ts_native_tid - c->ts_frame) & 0x7c)) !=
		    (__u32)bpf_get_current_pid_tgid())
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
	w.cfg = c;
	w.st = st;
	w.frame = frame;
	w.hash = 0x2545f4914f6cdd1dull;
	bpf_loop(TRACER_PY_MAX_WALK, py_walk_step, &w, 0);
	if (w.unreadable)
		count(TRACER_CNT_PY_UNREADABLE, 1);
	w.hash = mix64(w.hash ^ st->total);
	if (w.hash == 0)
		w.hash = 1;
	if (bpf_map_update_elem(&py_stacks, &w.hash, st, BPF_NOEXIST) == -E2BIG) {
		count(TRACER_CNT_PY_STACKS_FULL, 1);
		return 0;
	}
	return w.hash;
unreadable:
	count(TRACER_CNT_PY_UNREADABLE, 1);
	return 0;
}

#endif
