/* Python frames of a traced process (see frames.h): recognition, the
 * walker's configuration, and the resolved stacks by key. */
#include <bpf/bpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/snapshot.h"
#include "python/alloc.h"
#include "python/code.h"
#include "python/frames.h"
#include "util/util.h"
#include "python/layout.h"
#include "util/hash.h"

enum state { SEARCHING, ACTIVE, UNSUPPORTED };

struct python_frames {
	struct tracer_bpf *skel;
	pid_t pid;
	enum state state;
	int attempts;
	int max_attempts; /* polls that look for an interpreter (python_frames_set_attempts) */
	struct target_mem mem; /* the process's, target.mem: open while ACTIVE */
	struct python_target target;
	struct python_code *code;
	struct snapshot *strings; /* owns the strings of resolved stacks */
	struct u64_map stacks;	  /* stack key -> struct python_frames_stack * */
	char describe[64];
	bool hook_pymalloc; /* coverage will be complete: no warning */
	/* --follow: the memory of forked children whose stacks were resolved
	 * last (a child's code objects may be its own), round robin */
	struct python_frames_child {
		pid_t pid;
		struct target_mem mem;
	} children[16];
	unsigned next_child;
	/* python_frames_own_only: the processes whose stacks it resolves */
	bool own_only;
	pid_t *adopted;
	size_t nadopted, cap_adopted;
};

void python_frames_own_only(struct python_frames *p)
{
	p->own_only = true;
}

int python_frames_adopt(struct python_frames *p, pid_t child)
{
	for (size_t i = 0; i < p->nadopted; i++)
		if (p->adopted[i] == child)
			return 0;
	if (array_reserve((void **)&p->adopted, &p->cap_adopted, sizeof(*p->adopted),
			  p->nadopted + 1))
		return -ENOMEM;
	p->adopted[p->nadopted++] = child;
	return 0;
}

void python_frames_set_attempts(struct python_frames *p, int n)
{
	p->max_attempts = n;
}

pid_t python_frames_pid(const struct python_frames *p)
{
	return p ? p->pid : 0;
}

/* Whether p resolves the stacks that process tgid captured. */
static bool resolves_for(const struct python_frames *p, pid_t tgid)
{
	if (!p->own_only || tgid == p->pid)
		return true;
	for (size_t i = 0; i < p->nadopted; i++)
		if (p->adopted[i] == tgid)
			return true;
	return false;
}

/* The memory of process pid, another than the target (a forked child), or
 * NULL: the target's, or a process whose memory cannot be opened. */
static struct target_mem *child_mem(struct python_frames *p, pid_t pid)
{
	struct python_frames_child *ch;

	if (!pid || pid == p->pid)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(p->children); i++)
		if (p->children[i].pid == pid)
			return &p->children[i].mem;
	ch = &p->children[p->next_child++ % ARRAY_SIZE(p->children)];
	if (ch->pid)
		target_mem_close(&ch->mem);
	ch->pid = 0;
	if (target_mem_open(pid, &ch->mem))
		return NULL;
	ch->pid = pid;
	return &ch->mem;
}

int python_frames_open(struct tracer_bpf *skel, pid_t pid, struct python_frames **out)
{
	struct python_frames *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->skel = skel;
	p->pid = pid;
	p->max_attempts = 400;
	p->mem.fd = p->mem.wfd = -1;
	p->strings = snapshot_new();
	if (!p->strings || u64_map_init(&p->stacks, sizeof(struct python_frames_stack *))) {
		python_frames_close(p);
		return -ENOMEM;
	}
	*out = p;
	return 0;
}

void python_frames_close(struct python_frames *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->stacks.cap; i++)
		if (p->stacks.keys[i])
			free(*(struct python_frames_stack **)u64_map_value_at(&p->stacks, i));
	u64_map_free(&p->stacks);
	python_code_close(p->code);
	target_mem_close(&p->mem);
	for (size_t i = 0; i < ARRAY_SIZE(p->children); i++)
		if (p->children[i].pid)
			target_mem_close(&p->children[i].mem);
	snapshot_free(p->strings);
	free(p->adopted);
	free(p);
}

void python_frames_expect_hook(struct python_frames *p)
{
	p->hook_pymalloc = true;
}

const struct python_target *python_frames_target(struct python_frames *p)
{
	return p && p->state == ACTIVE ? &p->target : NULL;
}

const char *python_frames_describe(struct python_frames *p)
{
	return p && p->state == ACTIVE ? p->describe : NULL;
}

/* Polls (20 ms apart in a launch's first 2 s, 250 ms later) during which a
 * layout fact that cannot be read yet is retried. */
#define PYTHON_FRAMES_UNREADABLE_ATTEMPTS 50

/* One attempt at recognising CPython in the process: the state it leaves. */
static enum state recognise_once(struct python_frames *p)
{
	struct tracer_py_config cfg;
	__u32 key = (__u32)p->pid;
	char why[160] = "";
	int err;

	err = python_find(&p->mem, &p->target);
	if (err == -ENOENT)
		return SEARCHING; /* not (yet) a Python process */
	if (err == -EPROTONOSUPPORT) {
		fprintf(stderr,
			"tracer: warning: CPython %d.%d in process %d has no known frame layout "
			"(the tracer reads 3.8 to 3.14); tracebacks stay native%s\n",
			p->target.major, p->target.minor, p->pid,
			p->target.major < 3 ? ", and its small objects (pymalloc) are not seen"
					    : "");
		return UNSUPPORTED;
	}
	if (err)
		return SEARCHING;
	err = python_layout_config(&p->target, &cfg, why, sizeof(why));
	if (!err)
		err = python_layout_check_code(&p->target, why, sizeof(why));
	/* A process just launched may not have relocated libpython yet (its
	 * PyCode_Type's member table reads as zeros): look again for a while
	 * before saying it does not match. */
	if (err == -EAGAIN && p->attempts < PYTHON_FRAMES_UNREADABLE_ATTEMPTS)
		return SEARCHING;
	if (err) {
		if (err == -EPROTO || err == -EAGAIN)
			fprintf(
			    stderr,
			    "tracer: warning: CPython %d.%d.%d in process %d does not match the "
			    "tracer's layout table (%s); tracebacks stay native\n",
			    p->target.major, p->target.minor, p->target.micro, p->pid, why);
		return UNSUPPORTED;
	}
	if (python_code_open(&p->target, &p->code) ||
	    bpf_map_update_elem(bpf_map__fd(p->skel->maps.py_configs), &key, &cfg, BPF_ANY))
		return UNSUPPORTED;
	if (!p->hook_pymalloc)
		python_alloc_warn_if_hidden(&p->target, p->pid);
	snprintf(p->describe, sizeof(p->describe), "CPython %d.%d.%d", p->target.major,
		 p->target.minor, p->target.micro);
	p->skel->bss->python_enabled = true;
	return ACTIVE;
}

static void recognise(struct python_frames *p)
{
	/* Opened for each attempt: a launched command may exec again (a
	 * wrapper script) before the interpreter appears. Left unopened, every
	 * read fails and the layout checks say what could not be read. */
	target_mem_open(p->pid, &p->mem);
	p->state = recognise_once(p);
	if (p->state != ACTIVE)
		target_mem_close(&p->mem);
}

static const char *keep(struct python_frames *p, const char *s)
{
	int64_t idx;

	if (!s)
		return NULL;
	idx = snapshot_intern_string(p->strings, s);
	return idx < 0 ? NULL : p->strings->strings[idx];
}

static struct python_frames_stack *resolve(struct python_frames *p, uint64_t key)
{
	struct tracer_py_stack raw;
	struct python_frames_stack *st;
	struct target_mem *child;
	uint32_t i, n;

	if (bpf_map_lookup_elem(bpf_map__fd(p->skel->maps.py_stacks), &key, &raw) ||
	    !resolves_for(p, (pid_t)raw.tgid))
		return NULL; /* another's: left for its own */
	n = raw.nframe < TRACER_MAX_NFRAME ? raw.nframe : TRACER_MAX_NFRAME;
	st = calloc(1, sizeof(*st) + n * sizeof(st->frames[0]));
	if (!st)
		return NULL;
	st->total = raw.total;
	for (i = 0; i < n; i++) /* resolved now: its code objects may go */
		bpf_map_delete_elem(bpf_map__fd(p->skel->maps.py_pending_code),
				    &raw.frames[i].code);
	/* a forked child's code objects: its own memory first, then (gone, or
	 * code from before its fork) its parent's */
	child = child_mem(p, (pid_t)raw.tgid);
	for (i = 0; i < n; i++) {
		const char *file, *fn;
		uint32_t line;
		int err = -ENOENT;

		if (child) {
			struct target_mem *own = python_code_use_mem(p->code, child);

			err = python_code_frame(p->code, raw.frames[i].code, raw.frames[i].instr,
						raw.frames[i].ident, &file, &line, &fn);
			python_code_use_mem(p->code, own);
		}
		if (err && python_code_frame(p->code, raw.frames[i].code, raw.frames[i].instr,
					     raw.frames[i].ident, &file, &line, &fn)) {
			st->unresolved++;
			continue; /* counted, and left out */
		}
		st->frames[st->nframe].filename = keep(p, file);
		st->frames[st->nframe].lineno = line;
		st->frames[st->nframe].function = keep(p, fn);
		st->nframe++;
	}
	return st;
}

const struct python_frames_stack *python_frames_get(struct python_frames *p, uint64_t key)
{
	struct python_frames_stack **slot, *st;
	bool added;

	if (!p || p->state != ACTIVE || !key)
		return NULL;
	slot = u64_map_get(&p->stacks, key);
	if (slot)
		return *slot;
	st = resolve(p, key);
	if (!st)
		return NULL;
	slot = u64_map_put(&p->stacks, key, &added);
	if (!slot) {
		free(st);
		return NULL;
	}
	*slot = st;
	return st;
}

void python_frames_exec(struct python_frames *p)
{
	/* a new image: any interpreter in it is looked for afresh (the one
	 * recognised before, if any, went with the old image) */
	if (p && p->state != ACTIVE) {
		p->state = SEARCHING;
		p->attempts = 0;
	}
}

void python_frames_poll(struct python_frames *p)
{
	static __u64 keys[1 << 14];
	__u64 k, next, *prev = NULL;
	size_t n = 0;
	int fd;

	if (!p)
		return;
	if (p->state == SEARCHING && p->attempts++ < p->max_attempts)
		recognise(p);
	if (p->state != ACTIVE)
		return;
	/* Code objects freed since the last look must not lend their address to
	 * the next one: forget them, then resolve what is new. */
	python_code_revalidate(p->code);
	fd = bpf_map__fd(p->skel->maps.py_stacks);
	while (n < sizeof(keys) / sizeof(keys[0]) && !bpf_map_get_next_key(fd, prev, &next)) {
		k = next;
		prev = &k;
		keys[n++] = k;
	}
	/* A resolved stack lives on in the cache under its key (a hash of its
	 * frames and their code objects' identities): the map keeps only what
	 * awaits resolution, so it fills only if that many distinct stacks
	 * appear between two polls. */
	for (size_t i = 0; i < n; i++)
		if (python_frames_get(p, keys[i]))
			bpf_map_delete_elem(fd, &keys[i]);
}
