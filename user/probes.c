#include <bpf/bpf.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "elfsym.h"
#include "placement.h"
#include "probes.h"
#include "python/alloc.h"
#include "python/sites.h"
#include "target.h"
#include "util/util.h"

enum probe_shape {
	ALLOC_RETURNS, /* entry stashes arguments, return records the block */
	FREE_ONLY,     /* entry only, may move past the prologue */
	AT_ENTRY,      /* entry only, on the first instruction: reads [sp] */
	SHAPE_MASK = 3,
	/* flag: only in an object that defines malloc (an allocator library,
	 * a static executable), where the function may not call a probed one */
	ALLOCATOR_ONLY = 4,
	/* flag: the link's cookie says where the file's code is around the
	 * probe (below << 32 | above, in bytes), so that BPF tells the file's
	 * own calls (libc's mmap for a thread's stack) from the program's */
	TEXT_COOKIE = 8,
	SHAPE_FLAGS = ALLOCATOR_ONLY | TEXT_COOKIE,
};

/* One probe: the function, found by name; the shape of its probe; the
 * argument registers its entry program reads (placement keeps them
 * untouched); and that program, as its place in the skeleton's progs
 * (PROG). A place rather than a name, so that a program the BPF object
 * does not have is a compile error; a row without one is what
 * tests/unit/test_probes.c catches. */
struct probe_spec {
	const char *name;
	enum probe_shape shape;
	unsigned reads;
	size_t prog; /* PROG(program) */
};

#define PROG(p) offsetof(struct tracer_bpf, progs.p)
#define R1 PLACEMENT_RDI
#define R2 (PLACEMENT_RDI | PLACEMENT_RSI)
#define R3 (PLACEMENT_RDI | PLACEMENT_RSI | PLACEMENT_RDX)
#define PY_R23 (PLACEMENT_RSI | PLACEMENT_RDX)

static const struct probe_spec specs[] = {
    {"malloc", ALLOC_RETURNS, R1, PROG(malloc_enter)},
    {"calloc", ALLOC_RETURNS, R2, PROG(calloc_enter)},
    {"realloc", ALLOC_RETURNS, R2, PROG(realloc_enter)},
    {"reallocarray", ALLOC_RETURNS, R3, PROG(reallocarray_enter)},
    {"posix_memalign", ALLOC_RETURNS, R3, PROG(posix_memalign_enter)},
    {"aligned_alloc", ALLOC_RETURNS, R2, PROG(memalign_enter)},
    {"memalign", ALLOC_RETURNS, R2, PROG(memalign_enter)},
    {"valloc", ALLOC_RETURNS, R1, PROG(malloc_enter)},
    {"pvalloc", ALLOC_RETURNS, R1, PROG(malloc_enter)},
    /* C++: operator new and new[] (plain, nothrow, aligned) so that the
     * traceback starts at the C++ call site, not inside libstdc++. */
    {"_Znwm", ALLOC_RETURNS, R1, PROG(malloc_enter)},
    {"_Znam", ALLOC_RETURNS, R1, PROG(malloc_enter)},
    {"_ZnwmRKSt9nothrow_t", ALLOC_RETURNS, R1, PROG(malloc_enter)},
    {"_ZnamRKSt9nothrow_t", ALLOC_RETURNS, R1, PROG(malloc_enter)},
    {"_ZnwmSt11align_val_t", ALLOC_RETURNS, R1, PROG(malloc_enter)},
    {"_ZnamSt11align_val_t", ALLOC_RETURNS, R1, PROG(malloc_enter)},
    {"_ZnwmSt11align_val_tRKSt9nothrow_t", ALLOC_RETURNS, R1, PROG(malloc_enter)},
    {"_ZnamSt11align_val_tRKSt9nothrow_t", ALLOC_RETURNS, R1, PROG(malloc_enter)},
    {"free", FREE_ONLY, R1, PROG(free_enter_prog)},
    /* jemalloc's own API (redis's defragmenter, jemalloc-aware C++): the
     * size, or the block and size, where malloc and realloc have them */
    {"mallocx", ALLOC_RETURNS, R1, PROG(malloc_enter)},
    {"rallocx", ALLOC_RETURNS, R2, PROG(realloc_enter)},
    {"xallocx", ALLOC_RETURNS, R2, PROG(xallocx_enter)},
    {"sdallocx", FREE_ONLY, R1, PROG(free_enter_prog)},
    {"dallocx", FREE_ONLY, R1, PROG(free_enter_prog)},
    /* mimalloc's own API (a program linked against it calls these, not
     * malloc): the size first where malloc has it (the _aligned variants'
     * alignment comes after it), the block first where realloc and free
     * have it; count * size as calloc (mi_mallocn does not zero: the same
     * bytes), mi_reallocn as reallocarray */
    {"mi_malloc", ALLOC_RETURNS, R1, PROG(malloc_enter)},
    {"mi_zalloc", ALLOC_RETURNS, R1, PROG(malloc_enter)},
    {"mi_malloc_aligned", ALLOC_RETURNS, R1, PROG(malloc_enter)},
    {"mi_zalloc_aligned", ALLOC_RETURNS, R1, PROG(malloc_enter)},
    {"mi_calloc", ALLOC_RETURNS, R2, PROG(calloc_enter)},
    {"mi_mallocn", ALLOC_RETURNS, R2, PROG(calloc_enter)},
    {"mi_calloc_aligned", ALLOC_RETURNS, R2, PROG(calloc_enter)},
    {"mi_realloc", ALLOC_RETURNS, R2, PROG(realloc_enter)},
    {"mi_reallocf", ALLOC_RETURNS, R2, PROG(realloc_enter)},
    {"mi_realloc_aligned", ALLOC_RETURNS, R2, PROG(realloc_enter)},
    {"mi_reallocn", ALLOC_RETURNS, R3, PROG(reallocarray_enter)},
    {"mi_new", ALLOC_RETURNS, R1, PROG(malloc_enter)},
    {"mi_new_nothrow", ALLOC_RETURNS, R1, PROG(malloc_enter)},
    {"mi_new_aligned", ALLOC_RETURNS, R1, PROG(malloc_enter)},
    {"mi_free", FREE_ONLY, R1, PROG(free_enter_prog)},
    {"mi_free_size", FREE_ONLY, R1, PROG(free_enter_prog)},
    {"mi_free_aligned", FREE_ONLY, R1, PROG(free_enter_prog)},
    {"mi_free_size_aligned", FREE_ONLY, R1, PROG(free_enter_prog)},
    /* C++ operator delete, every variant, where an allocator library
     * (jemalloc, tcmalloc) defines its own: sized delete never reaches its
     * free. libstdc++'s calls free, probed already (ALLOCATOR_ONLY). */
    {"_ZdlPv", FREE_ONLY | ALLOCATOR_ONLY, R1, PROG(free_enter_prog)},
    {"_ZdaPv", FREE_ONLY | ALLOCATOR_ONLY, R1, PROG(free_enter_prog)},
    {"_ZdlPvm", FREE_ONLY | ALLOCATOR_ONLY, R1, PROG(free_enter_prog)},
    {"_ZdaPvm", FREE_ONLY | ALLOCATOR_ONLY, R1, PROG(free_enter_prog)},
    {"_ZdlPvRKSt9nothrow_t", FREE_ONLY | ALLOCATOR_ONLY, R1, PROG(free_enter_prog)},
    {"_ZdaPvRKSt9nothrow_t", FREE_ONLY | ALLOCATOR_ONLY, R1, PROG(free_enter_prog)},
    {"_ZdlPvSt11align_val_t", FREE_ONLY | ALLOCATOR_ONLY, R1, PROG(free_enter_prog)},
    {"_ZdaPvSt11align_val_t", FREE_ONLY | ALLOCATOR_ONLY, R1, PROG(free_enter_prog)},
    {"_ZdlPvmSt11align_val_t", FREE_ONLY | ALLOCATOR_ONLY, R1, PROG(free_enter_prog)},
    {"_ZdaPvmSt11align_val_t", FREE_ONLY | ALLOCATOR_ONLY, R1, PROG(free_enter_prog)},
    {"_ZdlPvSt11align_val_tRKSt9nothrow_t", FREE_ONLY | ALLOCATOR_ONLY, R1,
     PROG(free_enter_prog)},
    {"_ZdaPvSt11align_val_tRKSt9nothrow_t", FREE_ONLY | ALLOCATOR_ONLY, R1,
     PROG(free_enter_prog)},
    /* anonymous memory the program maps itself (the mmap domain); inside an
     * allocator's call (its own chunks) a call only deepens the stash */
    {"mmap", ALLOC_RETURNS | TEXT_COOKIE, R3 | PLACEMENT_RCX, PROG(mmap_enter)},
    {"mmap64", ALLOC_RETURNS | TEXT_COOKIE, R3 | PLACEMENT_RCX, PROG(mmap_enter)},
    {"munmap", FREE_ONLY, R2, PROG(munmap_enter)},
    /* its return moves the block (the old address, both lengths, the
     * flags); libc's own calls (its realloc's) are told apart as mmap's */
    {"mremap", ALLOC_RETURNS | TEXT_COOKIE, R3 | PLACEMENT_RCX, PROG(mremap_enter)},
    /* CPython (from .symtab where the build keeps it) */
    /* their programs read no ctx (rdi): _PyMem_RawMalloc's `mov %rax,%rdi`
     * before its `jmp malloc` leaves that jmp to probe */
    {"_PyObject_Malloc", ALLOC_RETURNS, PLACEMENT_RSI, PROG(py_malloc_enter)},
    {"_PyObject_Calloc", ALLOC_RETURNS, PY_R23, PROG(py_calloc_enter)},
    {"_PyObject_Realloc", ALLOC_RETURNS, PY_R23, PROG(py_realloc_enter)},
    {"_PyObject_Free", FREE_ONLY, PLACEMENT_RSI, PROG(py_free_enter)},
    {"_PyMem_RawMalloc", ALLOC_RETURNS, PLACEMENT_RSI, PROG(py_malloc_enter)},
    {"_PyMem_RawCalloc", ALLOC_RETURNS, PY_R23, PROG(py_calloc_enter)},
    {"_PyMem_RawRealloc", ALLOC_RETURNS, PY_R23, PROG(py_realloc_enter)},
    /* an extension's own domains (numpy) */
    {"PyTraceMalloc_Track", AT_ENTRY, R3, PROG(py_track_enter)},
    {"PyTraceMalloc_Untrack", FREE_ONLY, R2, PROG(py_untrack_enter)},
    /* the interpreter's finalisation: the final report's moment */
    {"Py_FinalizeEx", AT_ENTRY, 0, PROG(py_finalize_enter)},
    /* ... and its start, once a shared libpython is relocated */
    {"_PyRuntime_Initialize", AT_ENTRY, 0, PROG(python_starting)},
    /* the dynamic linker's debugger hook: objects were just loaded */
    {"_dl_debug_state", AT_ENTRY, 0, PROG(loader_changed)},
};

#define NSPECS (sizeof(specs) / sizeof(specs[0]))

/* CPython's allocator table slots (python/alloc.h), found by address: each
 * probe takes the program and shape of the row of the function the slot
 * holds in a default build (the raw domain's _PyMem_Raw* share them). */
static const struct {
	const char *slot; /* for -v */
	const char *row;
} python_slots[] = {
    [PYTHON_ALLOC_MALLOC] = {"malloc", "_PyObject_Malloc"},
    [PYTHON_ALLOC_CALLOC] = {"calloc", "_PyObject_Calloc"},
    [PYTHON_ALLOC_REALLOC] = {"realloc", "_PyObject_Realloc"},
    [PYTHON_ALLOC_FREE] = {"free", "_PyObject_Free"},
};

/* The row for CPython's slot kind, or NULL. */
static const struct probe_spec *python_spec(int kind)
{
	if (kind < 0 || kind >= (int)(sizeof(python_slots) / sizeof(python_slots[0])) ||
	    !python_slots[kind].row)
		return NULL;
	for (size_t i = 0; i < NSPECS; i++)
		if (!strcmp(specs[i].name, python_slots[kind].row))
			return &specs[i];
	return NULL;
}

/* The row's entry program in skel; NULL for a row without one (its offset
 * then lies outside skel->progs). */
static struct bpf_program *spec_prog(struct tracer_bpf *skel, const struct probe_spec *s)
{
	size_t first = offsetof(struct tracer_bpf, progs);

	if (s->prog < first || s->prog >= first + sizeof(skel->progs))
		return NULL;
	return *(struct bpf_program **)((char *)skel + s->prog);
}

static void row_of(struct tracer_bpf *skel, const struct probe_spec *s, struct probes_row *row)
{
	row->function = s->name;
	row->prog = spec_prog(skel, s);
	row->returns = (s->shape & SHAPE_MASK) == ALLOC_RETURNS;
}

bool probes_row(struct tracer_bpf *skel, size_t i, struct probes_row *row)
{
	if (i >= NSPECS)
		return false;
	row_of(skel, &specs[i], row);
	return true;
}

bool probes_python_row(struct tracer_bpf *skel, int kind, struct probes_row *row)
{
	const struct probe_spec *s = python_spec(kind);

	if (!s)
		return false;
	row_of(skel, s, row);
	return true;
}

/* Whether path+off is probed for attach_pid (-1: every process): with a
 * link per process (-a with filters, several -p) each has its own. */
static bool probed(const struct probes *p, pid_t attach_pid, const char *path, uint64_t off)
{
	struct stat st;

	/* by identity: one file has many paths (/proc/PID/root/... in a
	 * container), and two probes on one spot would count twice */
	if (stat(path, &st))
		return false;
	for (size_t i = 0; i < p->nentries; i++)
		if (p->entries[i].offset == off && p->entries[i].pid == attach_pid &&
		    p->entries[i].dev == st.st_dev && p->entries[i].ino == st.st_ino)
			return true;
	return false;
}

static int remember(struct probes *p, pid_t attach_pid, const char *path, uint64_t off)
{
	struct stat st;

	if (stat(path, &st))
		return -errno;
	struct probes_entry *e = realloc(p->entries, (p->nentries + 1) * sizeof(*e));

	if (!e)
		return -ENOMEM;
	p->entries = e;
	e[p->nentries].path = strdup(path);
	if (!e[p->nentries].path)
		return -ENOMEM;
	e[p->nentries].pid = attach_pid;
	e[p->nentries].dev = st.st_dev;
	e[p->nentries].ino = st.st_ino;
	e[p->nentries++].offset = off;
	return 0;
}

/* A uprobe-multi link (BPF_TRACE_UPROBE_MULTI, kernel 6.6+): one program
 * on n offsets of one file, for process pid (-1: every process). Made with
 * the bpf syscall itself: the packaged libbpf (1.1) predates it. One link
 * for all of a program's functions in a file is one registration and, at
 * its close, one wait for the probes' removal, where a link per function
 * waited for each. */
#define UPROBE_MULTI_ATTACH_TYPE 48 /* BPF_TRACE_UPROBE_MULTI */
#define UPROBE_MULTI_RETURN 1u	    /* BPF_F_UPROBE_MULTI_RETURN */

struct uprobe_multi_attr { /* union bpf_attr's link_create, uprobe_multi */
	uint32_t prog_fd, target_fd, attach_type, flags;
	uint64_t path, offsets, ref_ctr_offsets, cookies;
	uint32_t cnt, multi_flags, pid;
	uint32_t pad;
};

static int uprobe_multi_link(struct bpf_program *prog, pid_t pid, const char *path,
			     const uint64_t *offsets, const uint64_t *cookies, uint32_t n,
			     bool retprobe)
{
	struct uprobe_multi_attr a = {
	    .prog_fd = (uint32_t)bpf_program__fd(prog),
	    .attach_type = UPROBE_MULTI_ATTACH_TYPE,
	    .path = (uint64_t)(uintptr_t)path,
	    .offsets = (uint64_t)(uintptr_t)offsets,
	    .cookies = (uint64_t)(uintptr_t)cookies,
	    .cnt = n,
	    .multi_flags = retprobe ? UPROBE_MULTI_RETURN : 0,
	    .pid = pid > 0 ? (uint32_t)pid : 0,
	};
	long fd = syscall(__NR_bpf, 28 /* BPF_LINK_CREATE */, &a, sizeof(a));

	return fd < 0 ? -errno : (int)fd;
}

/* Forgets the probes queued; returns err. */
static int drop_pending(struct probes *p, int err)
{
	for (size_t i = 0; i < p->npending; i++) {
		free(p->pending[i].path);
		free(p->pending[i].offsets);
		free(p->pending[i].cookies);
	}
	p->npending = 0;
	return err;
}

/* Makes the links of the probes queued (struct probes_pending): return
 * probes first, so that a call that passes an entry probe is one whose
 * return is caught, or its stash would be left behind. */
static int flush(struct probes *p)
{
	int err = 0;

	for (int round = 0; round < 2 && !err; round++)
		for (size_t i = 0; i < p->npending && !err; i++) {
			struct probes_pending *q = &p->pending[i];
			struct probes_link *l;
			int fd = -1;

			if (q->returning != (round == 0))
				continue;
			if (!(p->detached & PROBES_CLASS_BIT(q->cls)))
				fd = uprobe_multi_link(q->prog, q->pid, q->path, q->offsets,
						       q->cookies, (uint32_t)q->n, q->retprobe);
			if (fd < 0 && !(p->detached & PROBES_CLASS_BIT(q->cls))) {
				err = fd;
				snprintf(p->failed_at, sizeof(p->failed_at), "%s+0x%llx", q->path,
					 (unsigned long long)q->offsets[0]);
			} else if (array_reserve((void **)&p->links, &p->cap, sizeof(*p->links),
						 p->n + 1)) {
				if (fd >= 0)
					close(fd);
				err = -ENOMEM;
			} else {
				/* the link keeps the queue's path, offsets and cookies */
				l = &p->links[p->n++];
				*l = (struct probes_link){.fd = fd,
							  .retprobe = q->retprobe,
							  .returning = q->returning,
							  .cls = q->cls,
							  .prog = q->prog,
							  .pid = q->pid,
							  .path = q->path,
							  .offsets = q->offsets,
							  .cookies = q->cookies,
							  .n = q->n};
				q->path = NULL;
				q->offsets = NULL;
				q->cookies = NULL;
			}
		}
	return drop_pending(p, err);
}

/* Queues prog at off of path, with cookie for its program (the links are
 * made by flush): one queue a program, a kind and a file. returning: it
 * catches returns (flush makes those first). */
static int attach_queue(struct probes *p, struct bpf_program *prog, pid_t pid,
			const char *path, uint64_t off, uint64_t cookie, bool retprobe,
			bool returning, enum probes_class cls)
{
	struct probes_pending *q = NULL;
	size_t i;

	if (!prog)
		return -ENOENT; /* a row without a program: test_probes fails on it */
	for (i = 0; i < p->npending; i++)
		if (p->pending[i].prog == prog && p->pending[i].retprobe == retprobe &&
		    p->pending[i].returning == returning && p->pending[i].cls == cls &&
		    p->pending[i].pid == pid &&
		    !strcmp(p->pending[i].path, path))
			q = &p->pending[i];
	if (!q) {
		if (array_reserve((void **)&p->pending, &p->cap_pending, sizeof(*p->pending),
				  p->npending + 1))
			return -ENOMEM;
		q = &p->pending[p->npending];
		*q = (struct probes_pending){.prog = prog,
					     .retprobe = retprobe,
					     .returning = returning,
					     .cls = cls,
					     .pid = pid};
		q->path = strdup(path);
		if (!q->path)
			return -ENOMEM;
		p->npending++;
	}
	if (array_reserve((void **)&q->offsets, &q->cap, sizeof(*q->offsets), q->n + 1) ||
	    array_reserve((void **)&q->cookies, &q->cap_cookies, sizeof(*q->cookies), q->n + 1))
		return -ENOMEM;
	q->cookies[q->n] = cookie;
	q->offsets[q->n++] = off;
	return 0;
}

static int attach_cookie(struct probes *p, struct bpf_program *prog, pid_t pid,
			 const char *path, uint64_t off, uint64_t cookie, bool retprobe,
			 enum probes_class cls)
{
	return attach_queue(p, prog, pid, path, off, cookie, retprobe, retprobe, cls);
}

static int attach(struct probes *p, struct bpf_program *prog, pid_t pid, const char *path,
		  uint64_t off, bool retprobe, enum probes_class cls)
{
	return attach_cookie(p, prog, pid, path, off, 0, retprobe, cls);
}

/* An allocator's entry and return probes at off (return first: flush);
 * cookie for the entry's program. */
static int attach_with_return_cookie(struct tracer_bpf *skel, struct probes *p,
				     struct bpf_program *prog, pid_t pid, const char *path,
				     uint64_t off, uint64_t cookie, enum probes_class cls)
{
	/* mremap's return has a program of its own */
	struct bpf_program *ret = prog == skel->progs.mremap_enter ? skel->progs.mremap_return
								  : skel->progs.alloc_return;
	int err = attach(p, ret, pid, path, off, true, cls);

	return err ? err : attach_cookie(p, prog, pid, path, off, cookie, false, cls);
}

/* The class of a row's probes (enum probes_class): a realloc frees too, so
 * it stays with the frees, as an mremap, which moves blocks. */
static enum probes_class spec_class(struct tracer_bpf *skel, const struct probe_spec *s)
{
	struct bpf_program *prog = spec_prog(skel, s);

	switch (s->shape & SHAPE_MASK) {
	case ALLOC_RETURNS:
		return prog == skel->progs.realloc_enter || prog == skel->progs.reallocarray_enter ||
				       prog == skel->progs.py_realloc_enter ||
				       prog == skel->progs.xallocx_enter ||
				       prog == skel->progs.mremap_enter
			   ? PROBES_FREEING
			   : PROBES_ALLOCATING;
	case FREE_ONLY:
		return PROBES_FREEING;
	default:
		return prog == skel->progs.py_track_enter ? PROBES_ALLOCATING : PROBES_CONTROL;
	}
}


/* The cookie that tells a CPython allocator's entry program where placement
 * found the arguments (tracer.h); 0 where each is in its own register. */
static uint64_t args_cookie(const struct placement *pl)
{
	uint64_t c = TRACER_ARGS_MOVED;

	if (!pl->args_moved)
		return 0;
	for (int i = 0; i < 6; i++)
		c |= (uint64_t)(pl->arg_reg[i] & 7) << (3 * i);
	return c;
}

/* Whether the file st names was examined already, under whatever path (the
 * tracer's own, or /proc/PID/root/... for a process in a container or a
 * chroot). */
static bool seen_file(const struct probes *p, pid_t attach_pid, const struct stat *st)
{
	for (size_t i = 0; i < p->nseen; i++)
		if (p->seen[i].dev == st->st_dev && p->seen[i].ino == st->st_ino &&
		    p->seen[i].pid == attach_pid)
			return true;
	return false;
}

static int remember_file(struct probes *p, pid_t attach_pid, const struct stat *st)
{
	if (array_reserve((void **)&p->seen, &p->cap_seen, sizeof(*p->seen), p->nseen + 1))
		return -ENOMEM;
	p->seen[p->nseen].pid = attach_pid;
	p->seen[p->nseen].dev = st->st_dev;
	p->seen[p->nseen++].ino = st->st_ino;
	return 0;
}

int probes_attach_file(struct tracer_bpf *skel, struct probes *p, pid_t pid, const char *path,
		       bool verbose)
{
	uint64_t done[NSPECS];
	struct elfsym_file *f;
	struct elfsym sym;
	struct stat st;
	size_t i, j, ndone = 0;
	int err = 0, count = 0;
	bool allocator;

	if (stat(path, &st))
		return -errno;
	if (seen_file(p, pid, &st))
		return 0; /* probed already: a loader stop looks at every file mapped */
	err = elfsym_open(path, &f);
	if (err)
		return err;
	err = remember_file(p, pid, &st);
	if (err) {
		elfsym_close(f);
		return err;
	}
	allocator = !elfsym_lookup(f, "malloc", &sym);
	for (i = 0; i < NSPECS && !err; i++) {
		struct bpf_program *prog;
		struct placement pl = {};
		uint64_t off;

		if ((specs[i].shape & ALLOCATOR_ONLY) && !allocator)
			continue;
		if (elfsym_lookup(f, specs[i].name, &sym))
			continue;
		/* Aliases (memalign = aligned_alloc) share one probe. */
		for (j = 0; j < ndone && done[j] != sym.file_offset; j++)
			;
		if (j < ndone)
			continue;
		done[ndone++] = sym.file_offset;
		prog = spec_prog(skel, &specs[i]);
		off = sym.file_offset;
		if ((specs[i].shape & SHAPE_MASK) == AT_ENTRY) {
			err = attach(p, prog, pid, path, off, false, spec_class(skel, &specs[i]));
		} else if ((specs[i].shape & SHAPE_MASK) == FREE_ONLY) {
			if (!placement_file_keep(path, sym.file_offset, sym.size, specs[i].reads,
						 &pl))
				off += pl.offset;
			err = attach(p, prog, pid, path, off, false, PROBES_FREEING);
		} else {
			/* The return probe swaps the return address at [rsp], so it
			 * may move only past instructions that pushed nothing; the
			 * entry probe shares its breakpoint. */
			uint64_t lo, hi, cookie = 0;

			if (!placement_file_keep(path, sym.file_offset, sym.size, specs[i].reads,
						 &pl) &&
			    pl.stack_adjust == 0)
				off += pl.offset;
			if ((specs[i].shape & TEXT_COOKIE) &&
			    !elfsym_exec_segment(f, off, &lo, &hi) && off - lo < UINT32_MAX &&
			    hi - off < UINT32_MAX)
				cookie = (off - lo) << 32 | (hi - off);
			err = attach_with_return_cookie(skel, p, prog, pid, path, off, cookie,
							spec_class(skel, &specs[i]));
		}
		if (!err)
			err = remember(p, pid, path, sym.file_offset);
		if (err)
			break;
		if (verbose)
			fprintf(stderr, "tracer: probe %s %s+0x%llx%s\n", specs[i].name, path,
				(unsigned long long)off,
				(specs[i].shape & SHAPE_MASK) == ALLOC_RETURNS ? " (entry and return)" : "");
		count++;
	}
	elfsym_close(f);
	err = err ? drop_pending(p, err) : flush(p);
	if (err)
		return err;
	if (count) {
		p->files++;
		p->functions += count;
	}
	return count;
}

int probes_attach_process(struct tracer_bpf *skel, struct probes *p, pid_t pid, pid_t attach_pid,
			  bool verbose)
{
	struct target_maps maps;
	size_t i, j;
	int err, total = 0;

	err = target_read_maps(pid, &maps);
	if (err)
		return err;
	for (i = 0; i < maps.n; i++) {
		char file[4200];
		int n;

		if (!maps.m[i].exec || !maps.m[i].path)
			continue;
		for (j = 0; j < i; j++)
			if (maps.m[j].exec && maps.m[j].path &&
			    !strcmp(maps.m[j].path, maps.m[i].path))
				break;
		if (j < i)
			continue;
		target_file_path(pid, &maps.m[i], file, sizeof(file));
		n = probes_attach_file(skel, p, attach_pid, file, verbose);
		if (n == -ENOEXEC || n == -ENOENT || n == -EACCES)
			continue; /* not an ELF file, or gone */
		if (n < 0) {
			err = n;
			break;
		}
		total += n;
	}
	target_maps_free(&maps);
	return err ? err : total;
}

/* prog (with alloc_return on the same spot when returns) at the code
 * address addr of process pid, once: 1, 0 when that spot already is probed,
 * or a negative errno. path and off receive the spot (the function's entry:
 * what "already probed" is known by). With size (the function's bytes) the
 * probe may move past the prologue as probes_attach_file moves it, and
 * further where the prologue copies the argument registers in reads
 * elsewhere (prog then reads them by its cookie, TRACER_ARGS_*: only the
 * py_* programs do, for attach_placed's callers); *placed (if not NULL) receives where
 * it went, in bytes past the entry. */
static int attach_placed(struct tracer_bpf *skel, struct probes *p, pid_t pid, pid_t attach_pid,
			 uint64_t addr, uint64_t size, unsigned reads, struct bpf_program *prog,
			 bool returns, enum probes_class cls, char *path, size_t pathlen,
			 uint64_t *off, uint64_t *placed, uint64_t cookie_bits)
{
	const struct target_mapping *m;
	struct target_maps maps;
	struct placement pl;
	uint64_t at, cookie = 0;
	int err;

	err = target_read_maps(pid, &maps);
	if (err)
		return err;
	m = target_maps_find(&maps, addr);
	if (!m || !m->exec || !m->path) {
		target_maps_free(&maps);
		return -ENOENT;
	}
	target_file_path(pid, m, path, pathlen);
	*off = addr - m->start + m->offset;
	target_maps_free(&maps);
	if (probed(p, attach_pid, path, *off))
		return 0;
	at = *off;
	/* the return probe swaps the return address at [rsp]: only where
	 * nothing was pushed yet */
	if (size && !placement_file_follow(path, *off, size, reads, &pl) &&
	    (!returns || pl.stack_adjust == 0)) {
		at += pl.offset;
		cookie = args_cookie(&pl);
	}
	if (placed)
		*placed = at - *off;
	cookie |= cookie_bits;
	if (returns)
		err = attach_with_return_cookie(skel, p, prog, attach_pid, path, at, cookie, cls);
	else
		err = attach_cookie(p, prog, attach_pid, path, at, cookie, false, cls);
	if (!err)
		err = flush(p);
	if (!err)
		err = remember(p, attach_pid, path, *off);
	return err ? err : 1;
}

/* The same on the very instruction at addr. */
static int attach_at(struct tracer_bpf *skel, struct probes *p, pid_t pid, pid_t attach_pid,
		     uint64_t addr, struct bpf_program *prog, bool returns, enum probes_class cls,
		     char *path, size_t pathlen, uint64_t *off)
{
	return attach_placed(skel, p, pid, attach_pid, addr, 0, 0, prog, returns, cls, path,
			     pathlen, off, NULL, 0);
}

int probes_attach_python(struct tracer_bpf *skel, struct probes *p, pid_t pid, pid_t attach_pid,
			 uint64_t fn, uint64_t size, int kind, uint64_t pool_cookie, bool verbose)
{
	const struct probe_spec *spec = python_spec(kind);
	char path[4200];
	uint64_t off, placed = 0;
	int n;

	if (!spec)
		return -EINVAL;
	/* A stripped function whose size is unknown has nothing to decode its
	 * prologue against: the probe stays on its entry. */
	n = attach_placed(skel, p, pid, attach_pid, fn, size, spec->reads, spec_prog(skel, spec),
			  (spec->shape & SHAPE_MASK) == ALLOC_RETURNS, spec_class(skel, spec), path,
			  sizeof(path), &off, &placed, pool_cookie);
	if (n <= 0)
		return n;
	if (verbose)
		fprintf(stderr,
			"tracer: probe CPython %s (from its allocator table) %s+0x%llx, at +%llu\n",
			python_slots[kind].slot, path, (unsigned long long)off,
			(unsigned long long)placed);
	p->functions++;
	return 1;
}

int probes_attach_python_raw_tail(struct tracer_bpf *skel, struct probes *p, pid_t pid,
				  pid_t attach_pid, uint64_t fn, uint64_t size, int kind,
				  bool verbose)
{
	const struct probe_spec *spec = python_spec(kind);
	struct bpf_program *prog = kind == PYTHON_ALLOC_MALLOC   ? skel->progs.py_raw_tail_malloc
				   : kind == PYTHON_ALLOC_CALLOC ? skel->progs.py_raw_tail_calloc
				   : kind == PYTHON_ALLOC_REALLOC
				       ? skel->progs.py_raw_tail_realloc
				       : NULL;
	char path[4200];
	uint64_t off, placed = 0;
	int n;

	if (!spec || !prog || !size)
		return -EINVAL;
	n = attach_placed(skel, p, pid, attach_pid, fn, size, spec->reads, prog, false,
			  spec_class(skel, spec), path, sizeof(path), &off, &placed, 0);
	if (n <= 0)
		return n;
	if (verbose)
		fprintf(stderr,
			"tracer: probe CPython raw %s (from its allocator table) %s+0x%llx, at +%llu "
			"(a tail jump to libc's: its entry only)\n",
			python_slots[kind].slot, path, (unsigned long long)off,
			(unsigned long long)placed);
	p->functions++;
	return 1;
}

/* The file offset of addr in the mapping of path that holds it: 0, or
 * -ENOENT. */
static int file_offset_of(const struct target_maps *maps, uint64_t addr, uint64_t *off)
{
	const struct target_mapping *m = target_maps_find(maps, addr);

	if (!m || !m->exec || !m->path)
		return -ENOENT;
	*off = addr - m->start + m->offset;
	return 0;
}

int probes_python_entry_stepped(pid_t pid, uint64_t fn, uint64_t size, int kind)
{
	const struct probe_spec *spec = python_spec(kind);
	struct target_maps maps;
	struct placement ret, inner;
	char path[4200];
	uint64_t off;
	int stepped = 0;

	if (!spec || !size || target_read_maps(pid, &maps))
		return 0;
	if (!file_offset_of(&maps, fn, &off)) {
		target_file_path(pid, target_maps_find(&maps, fn), path, sizeof(path));
		stepped = !placement_file_follow(path, off, size, spec->reads, &ret) &&
			  !(ret.emulated && ret.stack_adjust == 0) &&
			  !placement_file_frame(path, off, size, spec->reads, &inner) &&
			  inner.emulated && inner.offset;
	}
	target_maps_free(&maps);
	return stepped;
}

int probes_attach_python_calls(struct tracer_bpf *skel, struct probes *p, pid_t pid,
			       pid_t attach_pid, uint64_t fn, uint64_t size,
			       const struct python_calls *calls, struct probes_calls_result *res,
			       uint64_t pool_cookie, bool verbose)
{
	const struct probe_spec *spec = python_spec(PYTHON_ALLOC_MALLOC);
	int fd = bpf_map__fd(skel->maps.py_call_returns), err;
	const struct target_mapping *m;
	struct target_maps maps;
	struct placement pl;
	char path[4200];
	uint64_t off, at;
	__u32 one = 1;
	bool already;

	memset(res, 0, sizeof(*res));
	if (!spec || !size)
		return -EINVAL;
	err = target_read_maps(pid, &maps);
	if (err)
		return err;
	m = target_maps_find(&maps, fn);
	if (!m || !m->exec || !m->path) {
		target_maps_free(&maps);
		return -ENOENT;
	}
	target_file_path(pid, m, path, sizeof(path));
	off = fn - m->start + m->offset;
	already = probed(p, attach_pid, path, off);
	/* worth it only where the entry probe lands on an emulated
	 * instruction past the frame's making */
	if (!already && (placement_file_frame(path, off, size, spec->reads, &pl) ||
			 !pl.emulated || !pl.offset || pl.stack_adjust > TRACER_COOKIE_SP_MASK)) {
		target_maps_free(&maps);
		return -EAGAIN;
	}
	if (already) {
		/* probed for another process (--follow, -a: one probe for all):
		 * this one's call sites still go into py_call_returns, under
		 * its tgid */
		for (size_t i = 0; i < calls->n; i++) {
			struct tracer_site_key key = {.addr = calls->v[i].addr, .tgid = (__u32)pid};

			if (!calls->v[i].tail && bpf_map_update_elem(fd, &key, &one, BPF_ANY))
				res->lost++;
		}
		target_maps_free(&maps);
		return 0;
	}
	/* the returns first: a call stashed at the entry is one whose return
	 * is caught */
	for (size_t i = 0; i < calls->n && !err; i++) {
		const struct python_call *c = &calls->v[i];
		struct tracer_site_key key = {.addr = c->addr, .tgid = (__u32)pid};
		uint64_t coff;

		if (file_offset_of(&maps, c->addr, &coff)) {
			res->lost++;
			continue;
		}
		if (c->tail) {
			err = attach_with_return_cookie(skel, p, spec_prog(skel, spec), attach_pid,
							path, coff, pool_cookie, PROBES_ALLOCATING);
			res->tails++;
			continue;
		}
		if (bpf_map_update_elem(fd, &key, &one, BPF_ANY)) {
			res->lost++; /* its calls are counted (python_return_uncaught) */
			continue;
		}
		err = attach_queue(p, skel->progs.py_call_return, attach_pid, path,
				   coff + c->probe, c->probe, false, true, PROBES_ALLOCATING);
		res->calls++;
		res->stepped += !c->emulated;
		if (verbose && !c->emulated)
			fprintf(stderr,
				"tracer: CPython malloc's call site returning to %s+0x%llx: its "
				"probe is single-stepped\n",
				path, (unsigned long long)coff);
	}
	target_maps_free(&maps);
	if (!err)
		err = flush(p);
	at = off + pl.offset;
	if (!err)
		err = attach_cookie(p, skel->progs.py_malloc_inner, attach_pid, path, at,
				    args_cookie(&pl) | pool_cookie |
					(uint64_t)pl.stack_adjust << TRACER_COOKIE_SP_SHIFT,
				    false, PROBES_ALLOCATING);
	if (!err)
		err = flush(p);
	if (!err)
		err = remember(p, attach_pid, path, off);
	if (err)
		return err;
	res->placed = pl.offset;
	if (verbose)
		fprintf(stderr,
			"tracer: probe CPython malloc (from its allocator table) %s+0x%llx, at +%llu "
			"(%s, past its frame: its returns at its %zu call sites, %zu single-stepped, "
			"%zu tail jumps on the jmp)\n",
			path, (unsigned long long)off, (unsigned long long)pl.offset, pl.insn,
			res->calls, res->stepped, res->tails);
	p->functions++;
	return 1;
}

int probes_attach_site(struct tracer_bpf *skel, struct probes *p, pid_t pid, pid_t attach_pid,
		       uint64_t addr, bool verbose)
{
	char path[4200];
	uint64_t off;
	int n;

	n = attach_at(skel, p, pid, attach_pid, addr, skel->progs.py_site_enter, false,
		      PROBES_ALLOCATING, path,
		      sizeof(path), &off);
	if (n > 0 && verbose)
		fprintf(stderr, "tracer: probe CPython's inlined allocator tail jump %s+0x%llx\n",
			path, (unsigned long long)off);
	return n;
}

int probes_attach_new_references(struct tracer_bpf *skel, struct probes *p, pid_t pid,
				 pid_t attach_pid, const uint64_t *addr, const uint64_t *cookie,
				 size_t n, bool verbose)
{
	struct target_maps maps;
	char path[4200];
	size_t made = 0;
	int err;

	err = target_read_maps(pid, &maps);
	if (err)
		return err;
	for (size_t i = 0; i < n && !err; i++) {
		const struct target_mapping *m = target_maps_find(&maps, addr[i]);
		uint64_t off;

		if (!m || !m->exec || !m->path)
			continue;
		target_file_path(pid, m, path, sizeof(path));
		off = addr[i] - m->start + m->offset;
		if (probed(p, attach_pid, path, off))
			continue;
		err = attach_cookie(p, skel->progs.py_new_reference, attach_pid, path, off,
				    cookie[i], false, PROBES_ALLOCATING);
		if (!err)
			err = remember(p, attach_pid, path, off);
		if (!err)
			made++;
	}
	target_maps_free(&maps);
	if (!err)
		err = flush(p);
	if (!err && verbose)
		fprintf(stderr, "tracer: probe CPython's object initialisations at %zu places\n",
			made);
	return err ? err : (int)made;
}

bool probes_new_reference_row(struct tracer_bpf *skel, struct probes_row *row)
{
	row->function = "(CPython's object initialisations)";
	row->prog = skel->progs.py_new_reference;
	row->returns = false;
	return true;
}

int probes_attach_code_dealloc(struct tracer_bpf *skel, struct probes *p, pid_t pid,
			       pid_t attach_pid, uint64_t addr, bool verbose)
{
	char path[4200];
	uint64_t off;
	int n;

	struct probes_row row;

	probes_code_dealloc_row(skel, &row);
	n = attach_at(skel, p, pid, attach_pid, addr, row.prog, false, PROBES_CONTROL, path,
		      sizeof(path), &off);
	if (n > 0 && verbose)
		fprintf(stderr, "tracer: probe CPython's code object dealloc %s+0x%llx\n", path,
			(unsigned long long)off);
	return n;
}

bool probes_code_dealloc_row(struct tracer_bpf *skel, struct probes_row *row)
{
	row->function = "(PyCode_Type's tp_dealloc)";
	row->prog = skel->progs.py_code_dealloc;
	row->returns = false;
	return true;
}

bool probes_python_calls_row(struct tracer_bpf *skel, size_t i, struct probes_row *row)
{
	static const char *const names[] = {
	    "(CPython's malloc past its frame's making)",
	    "(the call sites of CPython's malloc: its returns)",
	    "(CPython's raw malloc, a tail jump to libc's)",
	    "(CPython's raw calloc, a tail jump to libc's)",
	    "(CPython's raw realloc, a tail jump to libc's)",
	};
	struct bpf_program *progs[] = {skel->progs.py_malloc_inner, skel->progs.py_call_return,
				       skel->progs.py_raw_tail_malloc,
				       skel->progs.py_raw_tail_calloc,
				       skel->progs.py_raw_tail_realloc};

	if (i >= sizeof(progs) / sizeof(progs[0]))
		return false;
	row->function = names[i];
	row->prog = progs[i];
	row->returns = false;
	return true;
}

bool probes_site_row(struct tracer_bpf *skel, struct probes_row *row)
{
	row->function = "(CPython's inlined allocator tail jumps)";
	row->prog = skel->progs.py_site_enter;
	row->returns = false;
	return true;
}

/* Detaching waits: each link's removal waits for an RCU grace period
 * (~50 ms, up to 100 ms on 6.18), one link after another 7 s for a CPython.
 * Threads that each close some of the links wait for the same grace
 * periods instead: a thread per link, 16 to 256 of them, on small stacks
 * (-a with a link per process: 11 processes exit in 0.18 s, where a thread
 * for every 8 links took 0.95 s). Beyond ~100 processes kept by filters the
 * kernel's own work dominates: each consumer removed walks, under a global
 * lock, every traced mm's chain of consumers, for each probed offset. */
#define DETACH_LINKS_PER_THREAD 1
#define DETACH_MIN_THREADS 16
#define DETACH_MAX_THREADS 256

struct detach_share {
	struct probes *p;
	bool retprobes; /* this round's kind */
	unsigned mask;	/* of these classes */
	size_t first;	/* and every stride-th link after it */
	size_t stride;
};

static void *detach_some(void *arg)
{
	struct detach_share *d = arg;

	for (size_t i = d->first; i < d->p->n; i += d->stride) {
		struct probes_link *l = &d->p->links[i];

		if (l->returning == d->retprobes && (d->mask & PROBES_CLASS_BIT(l->cls)) &&
		    l->fd >= 0) {
			close(l->fd);
			l->fd = -1;
		}
	}
	return NULL;
}

/* Every link of one kind, many at a time (or one by one where no thread
 * can be made). */
static void detach_round(struct probes *p, bool retprobes, unsigned mask)
{
	struct detach_share share[DETACH_MAX_THREADS];
	pthread_t th[DETACH_MAX_THREADS];
	bool started[DETACH_MAX_THREADS] = {0};
	size_t nlinks = 0, n;
	pthread_attr_t attr;
	bool attr_ok = !pthread_attr_init(&attr);

	for (size_t i = 0; i < p->n; i++)
		nlinks += p->links[i].fd >= 0 && (mask & PROBES_CLASS_BIT(p->links[i].cls));
	n = nlinks / DETACH_LINKS_PER_THREAD;
	n = n < DETACH_MIN_THREADS ? DETACH_MIN_THREADS : n > DETACH_MAX_THREADS ? DETACH_MAX_THREADS : n;
	if (attr_ok)
		pthread_attr_setstacksize(&attr, 64 << 10);
	for (size_t t = 0; t < n; t++) {
		share[t] = (struct detach_share){
		    .p = p, .retprobes = retprobes, .mask = mask, .first = t, .stride = n};
		started[t] = t < nlinks && nlinks > 1 &&
			     !pthread_create(&th[t], attr_ok ? &attr : NULL, detach_some, &share[t]);
	}
	for (size_t t = 0; t < n; t++) {
		if (started[t])
			pthread_join(th[t], NULL);
		else
			detach_some(&share[t]);
	}
	if (attr_ok)
		pthread_attr_destroy(&attr);
}

void probes_detach(struct probes *p)
{
	size_t i;

	/* entries first: a call that passes an entry probe is one whose
	 * return probe is still there */
	detach_round(p, false, ~0u);
	detach_round(p, true, ~0u);
	for (i = 0; i < p->n; i++) {
		free(p->links[i].path);
		free(p->links[i].offsets);
		free(p->links[i].cookies);
	}
	free(p->links);
	for (i = 0; i < p->nentries; i++)
		free(p->entries[i].path);
	free(p->entries);
	free(p->seen);
	drop_pending(p, 0);
	free(p->pending);
	memset(p, 0, sizeof(*p));
}

int probes_window(struct probes *p, unsigned mask, bool attach)
{
	int err = 0;

	if (!attach) {
		p->detached |= mask;
		detach_round(p, false, mask);
		detach_round(p, true, mask);
		return 0;
	}
	p->detached &= ~mask;
	/* returns first, as flush */
	for (int round = 0; round < 2; round++)
		for (size_t i = 0; i < p->n; i++) {
			struct probes_link *l = &p->links[i];
			int fd;

			if (l->returning != (round == 0) || !(mask & PROBES_CLASS_BIT(l->cls)) ||
			    l->fd >= 0)
				continue;
			fd = uprobe_multi_link(l->prog, l->pid, l->path, l->offsets, l->cookies,
					       (uint32_t)l->n, l->retprobe);
			if (fd < 0 && !err)
				err = fd; /* a process gone, its file too: the others go on */
			l->fd = fd < 0 ? -1 : fd;
		}
	return err;
}
