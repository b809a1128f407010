/* The native stack walker: from the allocator's return (frame 0, where the
 * registers are the caller's own), frame after frame with the unwind rows
 * of the file each address lies in (tracer.h; user/unwind/table.h says
 * what a row means), the way Parca's agent and the OpenTelemetry profiler
 * unwind code built without frame pointers. Frame pointers are one rule
 * among the rows (CFA = rbp + 16 where a function keeps them), and the rule
 * of a file that has no CFI at all.
 *
 * Per frame: the mapping of the address (a binary search of the process's
 * sorted mappings), its table offset, the page index entry of that offset,
 * a binary search of the page's rows; then CFA, return address at CFA - 8,
 * the caller's rbp. Frames above the first look up pc - 1: a return address
 * may be the first byte of the next function after a call that does not
 * return. Every walk ends with a reason (enum tracer_stack_end) stored with
 * the stack: user space counts why stacks were cut.
 *
 * Code only: the maps and settings it uses (native_stacks, native_scratch,
 * unwind_rows, unwind_pages, unwind_procs; native_nframe, native_stacks_added,
 * unwind_wanted) are declared at the top of tracer.bpf.c, with count() and
 * mix64(), before the line that includes this file. */
#ifndef TRACER_UNWIND_BPF_H
#define TRACER_UNWIND_BPF_H

#ifndef EEXIST
#define EEXIST 17
#endif

struct unwind_walk {
	const struct tracer_unwind_proc *proc; /* NULL: none installed yet */
	__u32 tgid, generation;		       /* the process and its table's install */
	struct tracer_unwind_mapping found;    /* the last found by bpf_find_vma */
	struct tracer_native_stack *st;
	__u64 pc, sp, bp;
	__u64 hash;
	bool bp_known; /* bp holds the frame's rbp (not lost to a rule) */
	__u32 end;     /* enum tracer_stack_end */
};

/* The binary searches run as bpf_loop callbacks: the verifier checks a
 * callback once, where a bounded loop's every path through every halving
 * is a state of its own (2^11 of them for the mappings alone). */
struct mapping_search {
	const struct tracer_unwind_proc *p;
	__u64 pc;
	__u32 lo, hi;
};

static long mapping_halve(__u32 i, struct mapping_search *s)
{
	__u32 mid;

	if (s->lo >= s->hi)
		return 1;
	mid = (s->lo + s->hi) / 2;
	if (s->p->m[mid & (TRACER_UNWIND_MAX_MAPPINGS - 1)].start <= s->pc)
		s->lo = mid + 1;
	else
		s->hi = mid;
	return 0;
}

/* The mapping of pc, or NULL: the last whose start is at most pc, if pc is
 * below its end. 11 halvings cover TRACER_UNWIND_MAX_MAPPINGS + 1. */
static __always_inline const struct tracer_unwind_mapping *
unwind_mapping(const struct tracer_unwind_proc *p, __u64 pc)
{
	struct mapping_search s = {.p = p, .pc = pc};
	const struct tracer_unwind_mapping *m;

	if (!p)
		return NULL;
	s.hi = p->n;
	if (s.hi > TRACER_UNWIND_MAX_MAPPINGS)
		s.hi = TRACER_UNWIND_MAX_MAPPINGS;
	bpf_loop(11, mapping_halve, &s, 0);
	if (!s.lo)
		return NULL;
	m = &p->m[(s.lo - 1) & (TRACER_UNWIND_MAX_MAPPINGS - 1)];
	return pc < m->end ? m : NULL;
}

struct row_search {
	__u64 off;
	__u32 lo, hi;
	bool bad;
};

static long row_halve(__u32 i, struct row_search *s)
{
	struct unwind_row *r;
	__u32 mid;

	if (s->lo >= s->hi)
		return 1;
	mid = s->lo + (s->hi - s->lo + 1) / 2;
	r = bpf_map_lookup_elem(&unwind_rows, &mid);
	if (!r) {
		s->bad = true;
		return 1;
	}
	if (r->start <= s->off)
		s->lo = mid;
	else
		s->hi = mid - 1;
	return 0;
}

/* The rule of the row covering table offset off of m's file: 0, or -1 when
 * no row does (past the table, or the maps disagree: a row index out of
 * range). A page holds at most 4097 candidate rows (distinct starts, and
 * the one covering its first byte): 13 halvings. */
static __always_inline int unwind_rule_at(const struct tracer_unwind_mapping *m, __u64 off,
					  __u32 *rule)
{
	__u64 page = off >> TRACER_UNWIND_PAGE_SHIFT, *first, *last;
	struct row_search s = {.off = off};
	struct unwind_row *r;
	__u32 k;

	if (page >= m->npages)
		return -1;
	k = m->pages + (__u32)page;
	first = bpf_map_lookup_elem(&unwind_pages, &k);
	k++;
	last = bpf_map_lookup_elem(&unwind_pages, &k);
	if (!first || !last || *first > *last || *last >= 0xffffffffull)
		return -1;
	s.lo = (__u32)*first; /* its start is at most the page's first byte */
	s.hi = (__u32)*last;
	bpf_loop(13, row_halve, &s, 0);
	if (s.bad)
		return -1;
	r = bpf_map_lookup_elem(&unwind_rows, &s.lo);
	if (!r)
		return -1;
	*rule = r->rule;
	return 0;
}

struct vma_found {
	__u64 start, end, pgoff, dev, ino;
	bool file;
};

static long vma_of(struct task_struct *task, struct vm_area_struct *vma, struct vma_found *v)
{
	struct file *f = vma->vm_file;
	struct inode *ino;

	if (!f)
		return 0;
	ino = BPF_CORE_READ(f, f_inode);
	v->start = vma->vm_start;
	v->end = vma->vm_end;
	v->pgoff = vma->vm_pgoff;
	v->ino = BPF_CORE_READ(ino, i_ino);
	v->dev = BPF_CORE_READ(ino, i_sb, s_dev);
	v->file = true;
	return 0;
}

/* The slow path, for an address the process's table does not cover: its
 * mapping from the kernel's, its file from unwind_files; into w->found.
 * The process's table is asked for (unwind_wanted) either way. */
static __always_inline const struct tracer_unwind_mapping *unwind_mapping_slow(struct unwind_walk *w,
									     __u64 pc)
{
	struct tracer_unwind_mapping *m = &w->found;
	struct tracer_unwind_file_key key;
	struct tracer_unwind_file *f;
	struct vma_found v = {};
	__u64 off;

	if (m->end && pc >= m->start && pc < m->end)
		return m;
	__sync_fetch_and_add(&unwind_wanted, 1);
	if (bpf_find_vma(bpf_get_current_task_btf(), pc, vma_of, &v, 0) || !v.file)
		return NULL;
	key.dev = v.dev;
	key.ino = v.ino;
	f = bpf_map_lookup_elem(&unwind_files, &key);
	if (!f)
		return NULL;
	off = v.pgoff << 12;
	m->start = v.start;
	m->end = v.end;
	m->pages = f->pages;
	m->npages = f->npages;
	m->bias = 0;
	if (!f->npages)
		return m; /* frame pointers: no bias needed */
	for (int i = 0; i < TRACER_UNWIND_FILE_SEGS; i++) {
		if (i >= f->nsegs)
			break;
		if (off >= (f->segs[i].offset & ~4095ull) &&
		    off < f->segs[i].offset + f->segs[i].filesz) {
			m->bias = v.start - off + f->segs[i].offset - f->segs[i].vaddr + f->base;
			return m;
		}
	}
	m->end = 0;
	return NULL;
}

/* The rule for address look: 0, or 1 with w->end set. From the cache when
 * the process's installed table gave it before; the slow path's answers
 * (no table covered the address) are not cached. */
static __always_inline int unwind_find_rule(struct unwind_walk *w, __u64 look, __u32 *rule)
{
	const struct tracer_unwind_mapping *m;
	struct unwind_cache_entry *c;
	bool slow = false;
	__u32 idx;

	idx = (__u32)(((look ^ ((__u64)w->tgid << 32)) * 0x9e3779b97f4a7c15ull) >> 52) &
	      (UNWIND_CACHE_SIZE - 1);
	c = bpf_map_lookup_elem(&unwind_cache, &idx);
	if (c && w->proc && c->pc == look && c->tgid == w->tgid && c->generation == w->generation) {
		*rule = c->rule;
		return 0;
	}
	m = unwind_mapping(w->proc, look);
	if (!m) {
		m = unwind_mapping_slow(w, look);
		slow = true;
	}
	if (!m) {
		w->end = TRACER_END_NO_MAPPING;
		return 1;
	}
	if (!m->npages) /* a file without CFI: it keeps frame pointers, or nothing does */
		*rule = unwind_rule(UNWIND_CFA_RBP, UNWIND_RBP_AT_CFA, -16, 16);
	else if (look < m->bias || unwind_rule_at(m, look - m->bias, rule))
		*rule = UNWIND_NONE;
	if (c && !slow) {
		c->pc = look;
		c->tgid = w->tgid;
		c->generation = w->generation;
		c->rule = *rule;
	}
	return 0;
}

/* One frame: from the state at w->pc to its caller's; 1 stops the walk. */
static long unwind_step(__u32 i, struct unwind_walk *w)
{
	__u64 look = i ? w->pc - 1 : w->pc, cfa, ra = 0, bp = w->bp, pair[2];
	__u32 rule, kind, n;
	int rbp_off;

	if (unwind_find_rule(w, look, &rule))
		return 1;
	kind = unwind_rule_kind(rule);
	switch (kind) {
	case UNWIND_CFA_RSP:
		cfa = w->sp + unwind_rule_cfa_off(rule);
		break;
	case UNWIND_CFA_RBP:
		if (!w->bp_known) {
			w->end = TRACER_END_RBP_LOST;
			return 1;
		}
		cfa = w->bp + unwind_rule_cfa_off(rule);
		break;
	case UNWIND_PLT: /* a lazy entry has pushed its index from this byte on */
		cfa = w->sp + 8 + ((w->pc & 15) >= unwind_rule_cfa_off(rule) ? 8 : 0);
		break;
	case UNWIND_STOP:
		w->end = TRACER_END_BOTTOM;
		return 1;
	case UNWIND_CANNOT:
		w->end = TRACER_END_CANNOT;
		return 1;
	default:
		w->end = TRACER_END_NO_CFI;
		return 1;
	}
	if (cfa <= w->sp || cfa < 16) {
		w->end = TRACER_END_BAD_CFA;
		return 1;
	}
	rbp_off = unwind_rule_rbp_off(rule);
	switch (unwind_rule_rbp(rule)) {
	case UNWIND_RBP_AT_CFA:
		if (rbp_off == -16) { /* push rbp right after the call: one read */
			if (bpf_probe_read_user(pair, sizeof(pair), (void *)(cfa - 16)))
				goto unreadable;
			bp = pair[0];
			ra = pair[1];
		} else if (bpf_probe_read_user(&ra, sizeof(ra), (void *)(cfa - 8)) ||
			   bpf_probe_read_user(&bp, sizeof(bp), (void *)(cfa + rbp_off))) {
			goto unreadable;
		}
		w->bp_known = true;
		break;
	case UNWIND_RBP_LOST:
		w->bp_known = false;
		/* fall through */
	default:
		if (bpf_probe_read_user(&ra, sizeof(ra), (void *)(cfa - 8)))
			goto unreadable;
	}
	if (!ra) {
		w->end = TRACER_END_BOTTOM;
		return 1;
	}
	w->pc = ra;
	w->sp = cfa;
	w->bp = bp;
	n = w->st->nframe;
	if (n < TRACER_MAX_NFRAME) {
		w->st->pcs[n] = ra;
		w->st->nframe = n + 1;
	}
	w->hash = mix64(w->hash ^ ra);
	if (n + 1 >= native_nframe) {
		w->end = TRACER_END_NFRAME;
		return 1;
	}
	return 0;
unreadable:
	w->end = TRACER_END_READ;
	return 1;
}

/* The native stack from the allocator's return at ip, the stack pointer
 * there sp and rbp as the probe found it (the caller's: the callee has
 * restored it, or not yet touched it at an entry): its key in
 * native_stacks (TRACER_SITE_STACK set), or 0 when there is none to keep
 * (no table for the process yet, or the table of stacks is full: counted). */
static __always_inline __u64 native_capture(struct pt_regs *ctx, __u32 tgid, __u64 ip, __u64 sp)
{
	struct unwind_walk w = {.pc = ip, .bp_known = true};
	struct tracer_native_stack *st;
	__u32 zero = 0;
	__u64 key;
	long err;

	w.tgid = tgid;
	w.proc = bpf_map_lookup_elem(&unwind_procs, &tgid);
	if (w.proc)
		w.generation = w.proc->generation;
	else /* walked the slow way until user space installs it */
		count(TRACER_CNT_UNWIND_NO_TABLE, 1);
	st = bpf_map_lookup_elem(&native_scratch, &zero);
	if (!st)
		return 0;
	st->nframe = 1;
	st->pcs[0] = ip;
	w.st = st;
	w.sp = sp;
	w.bp = PT_REGS_FP(ctx);
	w.hash = mix64(0x9e3779b97f4a7c15ull ^ ip);
	w.end = TRACER_END_NFRAME;
	if (native_nframe > 1)
		bpf_loop(native_nframe - 1 < TRACER_MAX_NFRAME ? native_nframe - 1
							       : TRACER_MAX_NFRAME - 1,
			 unwind_step, &w, 0);
	st->end = w.end;
	key = mix64(w.hash ^ w.end) | TRACER_SITE_STACK;
	if (bpf_map_lookup_elem(&native_stacks, &key))
		return key;
	err = bpf_map_update_elem(&native_stacks, &key, st, BPF_NOEXIST);
	if (err == -EEXIST) /* another CPU stored it first */
		return key;
	if (err) { /* full */
		count(TRACER_CNT_STACK_LOST, 1);
		return 0;
	}
	__sync_fetch_and_add(&native_stacks_added, 1);
	return key;
}

#endif
