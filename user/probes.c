#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elfsym.h"
#include "placement.h"
#include "probes.h"
#include "target.h"
#include "util/util.h"

enum probe_shape {
	ALLOC_RETURNS, /* entry stashes arguments, return records the block */
	FREE_ONLY,     /* entry only, may move past the prologue */
	AT_ENTRY,      /* entry only, on the first instruction: reads [sp] */
};

struct probe_spec {
	const char *name;
	enum probe_shape shape;
	unsigned reads; /* argument registers the entry program reads */
};

#define R1 PLACEMENT_RDI
#define R2 (PLACEMENT_RDI | PLACEMENT_RSI)
#define R3 (PLACEMENT_RDI | PLACEMENT_RSI | PLACEMENT_RDX)

static const struct probe_spec specs[] = {
    {"malloc", ALLOC_RETURNS, R1},
    {"calloc", ALLOC_RETURNS, R2},
    {"realloc", ALLOC_RETURNS, R2},
    {"reallocarray", ALLOC_RETURNS, R3},
    {"posix_memalign", ALLOC_RETURNS, R3},
    {"aligned_alloc", ALLOC_RETURNS, R2},
    {"memalign", ALLOC_RETURNS, R2},
    {"valloc", ALLOC_RETURNS, R1},
    {"pvalloc", ALLOC_RETURNS, R1},
    /* C++: operator new and new[] (plain, nothrow, aligned) so that the
     * traceback starts at the C++ call site, not inside libstdc++. */
    {"_Znwm", ALLOC_RETURNS, R1},
    {"_Znam", ALLOC_RETURNS, R1},
    {"_ZnwmRKSt9nothrow_t", ALLOC_RETURNS, R1},
    {"_ZnamRKSt9nothrow_t", ALLOC_RETURNS, R1},
    {"_ZnwmSt11align_val_t", ALLOC_RETURNS, R1},
    {"_ZnamSt11align_val_t", ALLOC_RETURNS, R1},
    {"_ZnwmSt11align_val_tRKSt9nothrow_t", ALLOC_RETURNS, R1},
    {"_ZnamSt11align_val_tRKSt9nothrow_t", ALLOC_RETURNS, R1},
    {"free", FREE_ONLY, R1},
    /* CPython (from .symtab where the build keeps it) */
    {"_PyObject_Malloc", ALLOC_RETURNS, R2},
    {"_PyObject_Calloc", ALLOC_RETURNS, R3},
    {"_PyObject_Realloc", ALLOC_RETURNS, R3},
    {"_PyObject_Free", FREE_ONLY, PLACEMENT_RSI},
    {"_PyMem_RawMalloc", ALLOC_RETURNS, R2},
    {"_PyMem_RawCalloc", ALLOC_RETURNS, R3},
    {"_PyMem_RawRealloc", ALLOC_RETURNS, R3},
    /* an extension's own domains (numpy) */
    {"PyTraceMalloc_Track", AT_ENTRY, R3},
    {"PyTraceMalloc_Untrack", FREE_ONLY, R2},
};

static struct bpf_program *entry_prog(struct tracer_bpf *skel, const char *name)
{
	if (!strcmp(name, "calloc"))
		return skel->progs.calloc_enter;
	if (!strcmp(name, "realloc"))
		return skel->progs.realloc_enter;
	if (!strcmp(name, "reallocarray"))
		return skel->progs.reallocarray_enter;
	if (!strcmp(name, "posix_memalign"))
		return skel->progs.posix_memalign_enter;
	if (!strcmp(name, "aligned_alloc") || !strcmp(name, "memalign"))
		return skel->progs.memalign_enter;
	if (!strcmp(name, "free"))
		return skel->progs.free_enter_prog;
	if (!strcmp(name, "_PyObject_Malloc") || !strcmp(name, "_PyMem_RawMalloc"))
		return skel->progs.py_malloc_enter;
	if (!strcmp(name, "_PyObject_Calloc") || !strcmp(name, "_PyMem_RawCalloc"))
		return skel->progs.py_calloc_enter;
	if (!strcmp(name, "_PyObject_Realloc") || !strcmp(name, "_PyMem_RawRealloc"))
		return skel->progs.py_realloc_enter;
	if (!strcmp(name, "_PyObject_Free"))
		return skel->progs.py_free_enter;
	if (!strcmp(name, "PyTraceMalloc_Track"))
		return skel->progs.py_track_enter;
	if (!strcmp(name, "PyTraceMalloc_Untrack"))
		return skel->progs.py_untrack_enter;
	return skel->progs.malloc_enter; /* (size, ...) */
}

static int add_link(struct probes *p, struct bpf_link *l)
{
	if (array_reserve((void **)&p->links, &p->cap, sizeof(*p->links), p->n + 1))
		return -ENOMEM;
	p->links[p->n++] = l;
	return 0;
}

static bool probed(const struct probes *p, const char *path, uint64_t off)
{
	for (size_t i = 0; i < p->nentries; i++)
		if (p->entries[i].offset == off && !strcmp(p->entries[i].path, path))
			return true;
	return false;
}

static int remember(struct probes *p, const char *path, uint64_t off)
{
	struct probes_entry *e = realloc(p->entries, (p->nentries + 1) * sizeof(*e));

	if (!e)
		return -ENOMEM;
	p->entries = e;
	e[p->nentries].path = strdup(path);
	if (!e[p->nentries].path)
		return -ENOMEM;
	e[p->nentries++].offset = off;
	return 0;
}

static int attach(struct probes *p, struct bpf_program *prog, pid_t pid, const char *path,
		  uint64_t off, bool retprobe)
{
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = retprobe);
	struct bpf_link *l = bpf_program__attach_uprobe_opts(prog, pid, path, off, &opts);
	if (!l) {
		int err = -errno;

		snprintf(p->failed_at, sizeof(p->failed_at), "%s+0x%llx", path,
			 (unsigned long long)off);
		return err;
	}
	return add_link(p, l);
}

int probes_attach_file(struct tracer_bpf *skel, struct probes *p, pid_t pid, const char *path,
		       bool verbose)
{
	uint64_t done[sizeof(specs) / sizeof(specs[0])];
	struct elfsym_file *f;
	size_t i, j, ndone = 0;
	int err = 0, count = 0;

	err = elfsym_open(path, &f);
	if (err)
		return err;
	for (i = 0; i < sizeof(specs) / sizeof(specs[0]) && !err; i++) {
		struct bpf_program *prog;
		struct placement pl = {};
		struct elfsym sym;
		uint64_t off;

		if (elfsym_lookup(f, specs[i].name, &sym))
			continue;
		/* Aliases (memalign = aligned_alloc) share one probe. */
		for (j = 0; j < ndone && done[j] != sym.file_offset; j++)
			;
		if (j < ndone)
			continue;
		done[ndone++] = sym.file_offset;
		prog = entry_prog(skel, specs[i].name);
		off = sym.file_offset;
		if (specs[i].shape == AT_ENTRY) {
			err = attach(p, prog, pid, path, off, false);
		} else if (specs[i].shape == FREE_ONLY) {
			if (!placement_file_keep(path, sym.file_offset, sym.size, specs[i].reads,
						 &pl))
				off += pl.offset;
			err = attach(p, prog, pid, path, off, false);
		} else {
			/* The return probe swaps the return address at [rsp], so it
			 * may move only past instructions that pushed nothing; the
			 * entry probe shares its breakpoint. */
			if (!placement_file_keep(path, sym.file_offset, sym.size, specs[i].reads,
						 &pl) &&
			    pl.stack_adjust == 0)
				off += pl.offset;
			err = attach(p, prog, pid, path, off, false);
			if (!err)
				err = attach(p, skel->progs.alloc_return, pid, path, off, true);
		}
		if (!err)
			err = remember(p, path, sym.file_offset);
		if (err)
			break;
		if (verbose)
			fprintf(stderr, "tracer: probe %s %s+0x%llx%s\n", specs[i].name, path,
				(unsigned long long)off,
				specs[i].shape == ALLOC_RETURNS ? " (entry and return)" : "");
		count++;
	}
	elfsym_close(f);
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

int probes_attach_python(struct tracer_bpf *skel, struct probes *p, pid_t pid, pid_t attach_pid,
			 uint64_t fn, int kind, bool verbose)
{
	static const char *const kinds[] = {"", "malloc", "calloc", "realloc", "free"};
	struct bpf_program *progs[] = {NULL, skel->progs.py_malloc_enter,
				       skel->progs.py_calloc_enter, skel->progs.py_realloc_enter,
				       skel->progs.py_free_enter};
	const struct target_mapping *m;
	struct target_maps maps;
	char path[4200];
	uint64_t off;
	int err;

	if (kind < 1 || kind > 4)
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
	target_maps_free(&maps);
	/* A stripped function has no size to decode its prologue against:
	 * the probe stays on its entry. */
	if (probed(p, path, off))
		return 0;
	err = attach(p, progs[kind], attach_pid, path, off, false);
	if (!err && kind != 4)
		err = attach(p, skel->progs.alloc_return, attach_pid, path, off, true);
	if (!err)
		err = remember(p, path, off);
	if (err)
		return err;
	if (verbose)
		fprintf(stderr, "tracer: probe CPython %s (from its allocator table) %s+0x%llx\n",
			kinds[kind], path, (unsigned long long)off);
	p->functions++;
	return 1;
}

void probes_detach(struct probes *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		bpf_link__destroy(p->links[i]);
	free(p->links);
	for (i = 0; i < p->nentries; i++)
		free(p->entries[i].path);
	free(p->entries);
	memset(p, 0, sizeof(*p));
}
