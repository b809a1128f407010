#include <bpf/bpf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "target.h"
#include "unwind/maps.h"
#include "unwind/table.h"
#include "util/hash.h"
#include "util/util.h"

#define MAX_SEGS 8 /* PT_LOADs remembered per file: more is not a real binary */
#define PAGE_BYTES (1u << TRACER_UNWIND_PAGE_SHIFT)

struct segment {
	uint64_t offset, vaddr, filesz;
};

struct file {
	dev_t dev;
	ino_t ino;
	struct segment segs[MAX_SEGS];
	uint32_t nsegs;
	uint64_t base;	       /* the table's */
	uint32_t first_row;    /* in unwind_rows, once written */
	uint32_t pages;	       /* first page-index entry, once written */
	uint32_t npages;       /* 0: no CFI (frame pointers), or nothing written */
	bool usable;	       /* an x86-64 ELF whose segments were read */
	bool written;	       /* its rows are in the maps */
	bool prepared;	       /* counted in the maps' size */
	struct unwind_table t; /* built, until written */
};

/* A process's table as last installed, for unwind_maps_rule. */
struct proc {
	pid_t pid;
	uint64_t signature; /* of its executable mappings */
	struct tracer_unwind_mapping *m;
	uint32_t n;
};

struct unwind_maps {
	struct file *files;
	size_t nfiles, files_cap;
	struct proc *procs;
	size_t nprocs, procs_cap;
	struct unwind_row *rows; /* the mapped arrays */
	uint64_t *pages;
	size_t rows_len, pages_len;
	uint32_t rows_cap, pages_cap, rows_used, pages_used;
	int procs_fd, files_fd;
	uint64_t prepared_rows, prepared_pages;
	struct unwind_maps_stats st;
	struct tracer_unwind_proc *value; /* the one being written */
};

int unwind_maps_new(struct unwind_maps **out)
{
	struct unwind_maps *u = calloc(1, sizeof(*u));

	*out = u;
	if (!u)
		return -ENOMEM;
	u->procs_fd = u->files_fd = -1;
	u->value = calloc(1, sizeof(*u->value));
	if (!u->value) {
		free(u);
		*out = NULL;
		return -ENOMEM;
	}
	elf_version(EV_CURRENT);
	return 0;
}

void unwind_maps_free(struct unwind_maps *u)
{
	if (!u)
		return;
	for (size_t i = 0; i < u->nfiles; i++)
		unwind_table_free(&u->files[i].t);
	for (size_t i = 0; i < u->nprocs; i++)
		free(u->procs[i].m);
	if (u->rows)
		munmap(u->rows, u->rows_len);
	if (u->pages)
		munmap(u->pages, u->pages_len);
	free(u->files);
	free(u->procs);
	free(u->value);
	free(u);
}

static struct file *find_file(struct unwind_maps *u, dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < u->nfiles; i++)
		if (u->files[i].dev == dev && u->files[i].ino == ino)
			return &u->files[i];
	return NULL;
}

/* The entries a table takes: rows (one NONE row in front when the first
 * starts after 0, so that every page has a covering row) and page index. */
static void table_size(const struct unwind_table *t, uint64_t *rows, uint64_t *pages)
{
	*rows = *pages = 0;
	if (!t->n)
		return;
	*rows = t->n + (t->rows[0].start ? 1 : 0);
	*pages = ((uint64_t)t->rows[t->n - 1].start >> TRACER_UNWIND_PAGE_SHIFT) + 2;
}

static int read_segments(Elf *elf, struct file *f)
{
	size_t n;

	if (elf_getphdrnum(elf, &n))
		return -ENOEXEC;
	for (size_t i = 0; i < n && f->nsegs < MAX_SEGS; i++) {
		GElf_Phdr ph;

		/* executable ones only: an exec mapping maps one of them, and the
		 * page its file offset starts in may also hold the end of the
		 * segment before (Rust's and lld's layouts) */
		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD || !(ph.p_flags & PF_X))
			continue;
		f->segs[f->nsegs++] = (struct segment){ph.p_offset, ph.p_vaddr, ph.p_filesz};
	}
	return f->nsegs ? 0 : -ENOEXEC;
}

/* Opens path, which must be a regular file (and, when want_dev is set, the
 * very file dev/ino names), and builds its table into a new entry. */
static int add_file(struct unwind_maps *u, const char *path, bool want, dev_t dev, ino_t ino,
		    struct file **out)
{
	struct stat st;
	struct file *f;
	Elf *elf = NULL;
	int fd, err;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (want && (st.st_dev != dev || st.st_ino != ino))) {
		close(fd);
		return 0;
	}
	if ((f = find_file(u, st.st_dev, st.st_ino))) {
		close(fd);
		*out = f;
		return 0;
	}
	if (array_reserve((void **)&u->files, &u->files_cap, sizeof(*u->files), u->nfiles + 1)) {
		close(fd);
		return -ENOMEM;
	}
	f = &u->files[u->nfiles++];
	memset(f, 0, sizeof(*f));
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	elf = elf_begin(fd, ELF_C_READ, NULL);
	err = elf && elf_kind(elf) == ELF_K_ELF ? read_segments(elf, f) : -ENOEXEC;
	if (!err)
		err = unwind_table_build_elf(elf, &f->t);
	if (elf)
		elf_end(elf);
	close(fd);
	if (err == -ENOMEM)
		return err;
	f->usable = !err || err == -ENOENT; /* -ENOENT: no CFI, frame pointers */
	if (!f->usable)
		u->st.files_bad++;
	else if (err)
		u->st.files_no_cfi++;
	else
		f->base = f->t.base;
	*out = f;
	return 0;
}

/* f by identity in unwind_files, for the walker's slow path (the
 * kernel's device encoding, as s_dev holds it). */
static void publish_file(struct unwind_maps *u, const struct file *f)
{
	struct tracer_unwind_file_key key = {
	    .dev = (uint64_t)major(f->dev) << 20 | minor(f->dev), .ino = (uint64_t)f->ino};
	struct tracer_unwind_file v = {.pages = f->pages, .npages = f->npages, .base = f->base};

	for (uint32_t i = 0; i < f->nsegs && v.nsegs < TRACER_UNWIND_FILE_SEGS; i++) {
		v.segs[v.nsegs].offset = f->segs[i].offset;
		v.segs[v.nsegs].vaddr = f->segs[i].vaddr;
		v.segs[v.nsegs].filesz = f->segs[i].filesz;
		v.nsegs++;
	}
	if (u->files_fd >= 0 && bpf_map_update_elem(u->files_fd, &key, &v, BPF_ANY))
		u->st.files_unpublished++;
}

/* Copies f's table into the maps; a file that finds no room is counted
 * and unwinds no frame (npages 0 and not usable). */
static void write_file(struct unwind_maps *u, struct file *f)
{
	uint64_t nrows, npages;
	uint32_t lead, j = 0;

	if (f->written || !u->rows)
		return;
	f->written = true;
	if (!f->usable)
		return;
	if (!f->t.n) { /* no CFI: frame pointers */
		publish_file(u, f);
		return;
	}
	table_size(&f->t, &nrows, &npages);
	if (nrows > u->rows_cap - u->rows_used || npages > u->pages_cap - u->pages_used) {
		u->st.files_no_room++;
		f->usable = false;
		unwind_table_free(&f->t);
		return;
	}
	lead = f->t.rows[0].start ? 1 : 0;
	f->first_row = u->rows_used;
	if (lead)
		u->rows[f->first_row] = (struct unwind_row){0, UNWIND_NONE};
	memcpy(&u->rows[f->first_row + lead], f->t.rows, f->t.n * sizeof(*f->t.rows));
	/* page p: the last row starting at or before its first byte */
	f->pages = u->pages_used;
	f->npages = (uint32_t)(npages - 1);
	for (uint32_t p = 0; p < f->npages; p++) {
		uint64_t at = (uint64_t)p << TRACER_UNWIND_PAGE_SHIFT;

		while (j + 1 < nrows && u->rows[f->first_row + j + 1].start <= at)
			j++;
		u->pages[f->pages + p] = f->first_row + j;
	}
	u->pages[f->pages + f->npages] = f->first_row + nrows - 1;
	u->rows_used += (uint32_t)nrows;
	u->pages_used += (uint32_t)npages;
	u->st.files++;
	u->st.rows = u->rows_used;
	u->st.pages = u->pages_used;
	unwind_table_free(&f->t); /* the maps hold it now */
	publish_file(u, f);
}

int unwind_maps_prepare_file(struct unwind_maps *u, const char *path)
{
	uint64_t rows, pages;
	struct file *f;
	int err = add_file(u, path, false, 0, 0, &f);

	if (err || !f || f->prepared || !f->t.n)
		return err;
	if (u->rows) { /* the maps exist: into them now */
		write_file(u, f);
		return 0;
	}
	table_size(&f->t, &rows, &pages);
	u->prepared_rows += rows;
	u->prepared_pages += pages;
	f->prepared = true;
	return 0;
}

static bool tabled(const struct target_mapping *m)
{
	return m->exec && m->path && m->path[0] == '/';
}

int unwind_maps_prepare_process(struct unwind_maps *u, pid_t pid)
{
	struct target_maps maps;
	char path[PATH_MAX + 64];
	int err;

	err = target_read_maps(pid, &maps);
	if (err)
		return err == -ENOMEM ? err : 0;
	for (size_t i = 0; i < maps.n && !err; i++) {
		const struct target_mapping *m = &maps.m[i];
		uint64_t rows, pages;
		struct file *f;

		if (!tabled(m) || find_file(u, m->dev, m->ino))
			continue;
		target_file_path(pid, m, path, sizeof(path));
		err = add_file(u, path, true, m->dev, m->ino, &f);
		if (!err && f && f->t.n && !f->prepared) {
			table_size(&f->t, &rows, &pages);
			u->prepared_rows += rows;
			u->prepared_pages += pages;
			f->prepared = true;
		}
	}
	target_maps_free(&maps);
	return err;
}

void unwind_maps_capacity(const struct unwind_maps *u, uint32_t *rows, uint32_t *pages)
{
	/* files mapped later (dlopen) are few next to what a program maps at
	 * start, where the large ones (libLLVM: 949 k rows) are */
	uint64_t r = u->prepared_rows + u->prepared_rows / 4 + UNWIND_MAPS_HEADROOM;
	uint64_t p = u->prepared_pages + u->prepared_pages / 4 + UNWIND_MAPS_HEADROOM / 8;

	*rows = r > 2 * UNWIND_MAX_ROWS ? 2 * UNWIND_MAX_ROWS : (uint32_t)r;
	*pages = p > (1u << 22) ? 1u << 22 : (uint32_t)p;
}

static void *map_array(int fd, uint32_t entries, size_t *len)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t bytes = (size_t)entries * 8;
	void *p;

	*len = (bytes + (size_t)page - 1) / (size_t)page * (size_t)page;
	p = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

int unwind_maps_bind(struct unwind_maps *u, int rows_fd, uint32_t rows_cap, int pages_fd,
		     uint32_t pages_cap, int procs_fd, int files_fd)
{
	_Static_assert(sizeof(struct unwind_row) == 8, "rows are array elements of 8 bytes");
	u->rows = map_array(rows_fd, rows_cap, &u->rows_len);
	u->pages = map_array(pages_fd, pages_cap, &u->pages_len);
	if (!u->rows || !u->pages)
		return -errno;
	u->rows_cap = rows_cap;
	u->pages_cap = pages_cap;
	u->procs_fd = procs_fd;
	u->files_fd = files_fd;
	u->st.rows_cap = rows_cap;
	u->st.pages_cap = pages_cap;
	for (size_t i = 0; i < u->nfiles; i++)
		write_file(u, &u->files[i]);
	return 0;
}

/* Where pc's table offset starts from, for m mapped from f: the bias that
 * makes pc - bias the offset from the table's base; -1 when m's file offset
 * lies in no PT_LOAD. */
static int mapping_bias(const struct file *f, const struct target_mapping *m, uint64_t *bias)
{
	for (uint32_t i = 0; i < f->nsegs; i++) {
		const struct segment *s = &f->segs[i];
		uint64_t lo = s->offset & ~(uint64_t)(PAGE_BYTES - 1);

		if (m->offset >= lo && m->offset < s->offset + s->filesz) {
			*bias = m->start - m->offset + s->offset - s->vaddr + f->base;
			return 0;
		}
	}
	return -1;
}

static struct proc *find_proc(const struct unwind_maps *u, pid_t pid)
{
	for (size_t i = 0; i < u->nprocs; i++)
		if (u->procs[i].pid == pid)
			return &u->procs[i];
	return NULL;
}

static uint64_t signature(const struct target_maps *maps)
{
	uint64_t h = 0x2545f4914f6cdd1dull;

	for (size_t i = 0; i < maps->n; i++) {
		const struct target_mapping *m = &maps->m[i];

		if (!tabled(m))
			continue;
		h = hash_mix(h, m->start);
		h = hash_mix(h, m->end);
		h = hash_mix(h, m->offset);
		h = hash_mix(h, (uint64_t)m->dev);
		h = hash_mix(h, (uint64_t)m->ino);
	}
	return h;
}

int unwind_maps_install(struct unwind_maps *u, pid_t pid)
{
	struct tracer_unwind_proc *v = u->value;
	char path[PATH_MAX + 64];
	struct target_maps maps;
	struct proc *p;
	uint64_t sig;
	__u32 key = (__u32)pid;
	int err;

	if (u->procs_fd < 0)
		return -EBADF;
	err = target_read_maps(pid, &maps);
	if (err)
		return err;
	sig = signature(&maps);
	p = find_proc(u, pid);
	if (p && p->signature == sig) {
		target_maps_free(&maps);
		return 0;
	}
	memset(v, 0, sizeof(*v));
	for (size_t i = 0; i < maps.n; i++) {
		const struct target_mapping *m = &maps.m[i];
		struct tracer_unwind_mapping *e;
		struct file *f = NULL;
		uint64_t bias = 0;

		if (!tabled(m))
			continue;
		f = find_file(u, m->dev, m->ino);
		if (!f) {
			target_file_path(pid, m, path, sizeof(path));
			err = add_file(u, path, true, m->dev, m->ino, &f);
			if (err)
				break;
		}
		if (!f || !f->usable)
			continue;
		write_file(u, f);
		if (!f->usable || (f->npages && mapping_bias(f, m, &bias))) {
			u->st.mappings_left_out += f->usable;
			continue;
		}
		if (v->n >= TRACER_UNWIND_MAX_MAPPINGS) {
			u->st.mappings_left_out++;
			continue;
		}
		e = &v->m[v->n++];
		e->start = m->start;
		e->end = m->end;
		e->bias = bias;
		e->pages = f->pages;
		e->npages = f->npages;
	}
	target_maps_free(&maps);
	if (err)
		return err;
	if (!p) {
		if (array_reserve((void **)&u->procs, &u->procs_cap, sizeof(*u->procs),
				  u->nprocs + 1))
			return -ENOMEM;
		p = &u->procs[u->nprocs++];
		memset(p, 0, sizeof(*p));
		p->pid = pid;
	}
	v->generation = ++u->st.installs;
	free(p->m);
	p->m = malloc((v->n ? v->n : 1) * sizeof(*p->m));
	if (!p->m) {
		p->n = 0;
		return -ENOMEM;
	}
	memcpy(p->m, v->m, v->n * sizeof(*p->m));
	p->n = v->n;
	p->signature = sig;
	if (bpf_map_update_elem(u->procs_fd, &key, v, BPF_ANY)) {
		p->signature = 0;
		return -errno;
	}
	return 0;
}

void unwind_maps_forget(struct unwind_maps *u, pid_t pid)
{
	__u32 key = (__u32)pid;
	struct proc *p = find_proc(u, pid);

	if (u->procs_fd >= 0)
		bpf_map_delete_elem(u->procs_fd, &key);
	if (p)
		p->signature = 0; /* a later install writes it again */
}

int unwind_maps_rule(const struct unwind_maps *u, pid_t pid, uint64_t pc, uint32_t *rule)
{
	const struct proc *p = find_proc(u, pid);
	uint32_t lo, hi;
	uint64_t off, page;

	if (!p)
		return -ENOENT;
	for (uint32_t i = 0; i < p->n; i++) {
		const struct tracer_unwind_mapping *m = &p->m[i];

		if (pc < m->start || pc >= m->end || !m->npages || pc < m->bias)
			continue;
		off = pc - m->bias;
		page = off >> TRACER_UNWIND_PAGE_SHIFT;
		if (page >= m->npages)
			return -ENOENT;
		lo = (uint32_t)u->pages[m->pages + page];
		hi = (uint32_t)u->pages[m->pages + page + 1];
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo + 1) / 2;

			if (u->rows[mid].start <= off)
				lo = mid;
			else
				hi = mid - 1;
		}
		*rule = u->rows[lo].rule;
		return 0;
	}
	return -ENOENT;
}

void unwind_maps_get_stats(const struct unwind_maps *u, struct unwind_maps_stats *st)
{
	*st = u->st;
}
