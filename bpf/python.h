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
struct py_frame_buf {
	__u8 b[128];
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
	bool started; /* a complete frame was seen: the frames above it are too */
};

static __always_inline __u64 py_mix(__u64 h, __u64 v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdull;
}

/* One step of the chain: returns 1 to stop. */
static long py_walk_step(__u32 i, struct py_walk *w)
{
	const struct tracer_py_config *c = w->cfg;
	__u8 *buf = w->buf->b;
	__u64 code, instr_raw, previous, ident;
	__u8 owner = 0;
	__s64 instr;

	if (!w->frame)
		return 1;
	if (bpf_probe_read_user(buf, 112, (void *)w->frame)) {
		w->unreadable = true;
		return 1;
	}
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
		/* incomplete: pushed but not yet started (before RESUME). Only
		 * the innermost frames can be: a frame that called another has
		 * started, so after one complete frame nothing more is read. */
		if (c->code_firsttraceable && owner != c->owner_generator && !w->started) {
			__s32 ft = 0;

			if (bpf_probe_read_user(&ft, sizeof(ft),
						(void *)(code + c->code_firsttraceable)) == 0 &&
			    instr < ft)
				return 0;
		}
	} else {
		instr = *(__s32 *)(buf + (c->fr_instr & 0x7c));
	}
	w->started = true;
	if (w->st->total < TRACER_PY_MAX_WALK)
		w->st->total++;
	/* beyond nframe a frame is only counted (total_nframe) */
	if (w->st->nframe < py_nframe && w->st->nframe < TRACER_MAX_NFRAME) {
		__u32 n = w->st->nframe;
		__u64 id[2] = {};

		if (bpf_probe_read_user(id, sizeof(id), (void *)(code + c->code_ident)))
			w->unreadable = true;
		ident = id[0] ^ (id[1] << 1);

		if (n < TRACER_MAX_NFRAME) {
			w->st->frames[n].code = code;
			w->st->frames[n].instr = instr;
			w->st->frames[n].ident = ident;
		}
		w->st->nframe = n + 1;
		w->hash = py_mix(py_mix(py_mix(w->hash, code), (__u64)instr), ident);
	}
	return 0;
}

/* The thread state bound to the calling thread (PyGILState's TSD key):
 * the right one even while the thread has released the GIL. */
static __always_inline __u64 py_thread_state(const struct tracer_py_config *c)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 fsbase = BPF_CORE_READ(task, thread.fsbase), tstate = 0;

	__s32 tss[2]; /* Py_tss_t: {_is_initialized, _key} */

	/* read each time: the interpreter may create its key after we attach */
	if (!fsbase || bpf_probe_read_user(tss, sizeof(tss), (void *)c->tss_key_addr) || !tss[0] ||
	    tss[1] < 0 || tss[1] >= 32)
		return 0;
	if (bpf_probe_read_user(&tstate, sizeof(tstate),
				(void *)(fsbase + c->pthread_specific + 16 * (__u32)tss[1] + 8)))
		return 0;
	return tstate;
}

/* Captures the Python stack of the calling thread; returns its key in
 * py_stacks, or 0 when the thread runs no Python code. */
static __always_inline __u64 py_capture(__u32 tgid)
{
	const struct tracer_py_config *c;
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
	if (c->ts_native_tid) {
		__u32 tid = 0;

		if (bpf_probe_read_user(&tid, sizeof(tid), (void *)(tstate + c->ts_native_tid)) ||
		    tid != (__u32)bpf_get_current_pid_tgid())
			return 0;
	}
	if (bpf_probe_read_user(&frame, sizeof(frame), (void *)(tstate + c->ts_frame)))
		goto unreadable;
	if (c->cframe_current >= 0 && frame &&
	    bpf_probe_read_user(&frame, sizeof(frame), (void *)(frame + c->cframe_current)))
		goto unreadable;
	st = bpf_map_lookup_elem(&py_scratch, &zero);
	w.buf = bpf_map_lookup_elem(&py_frame_bufs, &zero);
	if (!st || !w.buf)
		return 0;
	st->nframe = 0;
	st->total = 0;
	w.cfg = c;
	w.st = st;
	w.frame = frame;
	w.hash = 0x2545f4914f6cdd1dull;
	bpf_loop(TRACER_PY_MAX_WALK, py_walk_step, &w, 0);
	if (w.unreadable)
		count(TRACER_CNT_PY_UNREADABLE, 1);
	w.hash = py_mix(w.hash, st->total);
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
