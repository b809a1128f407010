#include <dwarf.h>
#include <libiberty/demangle.h>
#include <errno.h>
#include <gelf.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "modsym.h"
#include "util/path.h"
#include "util/hash.h"

#define NEST_DEPTH 64 /* namespaces, types within types */

char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

struct sym {
	Dwarf_Addr addr, size;
	const char *name;
	int rank; /* global, weak, local; untyped after typed: the name preferred */
};

struct fn {
	Dwarf_Addr low, high;
	Dwarf_Die die;
};

struct cu_index {
	struct fn *fns;
	size_t n;
};

struct modsym {
	Dwfl_Module *mod;
	bool syms_built;
	struct sym *syms;
	size_t nsyms;
	struct u64_map cus; /* CU DIE offset + 1 -> struct cu_index * */
};

struct modsym *modsym_new(Dwfl_Module *mod)
{
	struct modsym *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->mod = mod;
	if (u64_map_init(&m->cus, sizeof(struct cu_index *))) {
		free(m);
		return NULL;
	}
	return m;
}

void modsym_free(struct modsym *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cus.cap; i++) {
		struct cu_index **x = u64_map_value_at(&m->cus, i);

		if (!m->cus.keys[i] || !*x)
			continue;
		free((*x)->fns);
		free(*x);
	}
	u64_map_free(&m->cus);
	free(m->syms);
	free(m);
}

static int cmp_sym(const void *a, const void *b)
{
	const struct sym *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	if (x->rank != y->rank)
		return x->rank - y->rank;
	return x->size > y->size ? -1 : x->size < y->size;
}

static void build_syms(struct modsym *m)
{
	int n = dwfl_module_getsymtab(m->mod);
	size_t k = 0, i;

	m->syms_built = true;
	if (n <= 1 || !(m->syms = calloc((size_t)n, sizeof(*m->syms))))
		return;
	for (int j = 1; j < n; j++) {
		GElf_Sym sym;
		GElf_Addr addr;
		GElf_Word shndx;
		const char *name = dwfl_module_getsym_info(m->mod, j, &sym, &addr, &shndx, NULL, NULL);
		int type = GELF_ST_TYPE(sym.st_info), bind = GELF_ST_BIND(sym.st_info);

		/* functions, and assembly's untyped labels after them */
		if (!name || !*name ||
		    (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_NOTYPE) ||
		    sym.st_shndx == SHN_UNDEF || sym.st_shndx == SHN_ABS)
			continue;
		m->syms[k++] = (struct sym){
		    .addr = addr,
		    .size = sym.st_size,
		    .name = name,
		    .rank = (type == STT_NOTYPE ? 3 : 0) +
			    (bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1 : 2)};
	}
	qsort(m->syms, k, sizeof(*m->syms), cmp_sym);
	/* one symbol an address: the preferred one sorts first */
	for (i = 0, m->nsyms = 0; i < k; i++)
		if (!m->nsyms || m->syms[m->nsyms - 1].addr != m->syms[i].addr)
			m->syms[m->nsyms++] = m->syms[i];
}

const char *modsym_function(struct modsym *m, Dwarf_Addr addr)
{
	return modsym_function_at(m, addr, NULL);
}

const char *modsym_function_at(struct modsym *m, Dwarf_Addr addr, Dwarf_Addr *start)
{
	size_t lo = 0, hi;

	if (!m->syms_built)
		build_syms(m);
	hi = m->nsyms;
	while (lo < hi) { /* the first symbol above addr */
		size_t mid = lo + (hi - lo) / 2;

		if (m->syms[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* the nearest below whose size covers addr, else the nearest below if
	 * it has no size (up to the next symbol) */
	for (size_t i = lo; i-- > 0 && lo - i <= 8;)
		if (m->syms[i].size && addr < m->syms[i].addr + m->syms[i].size) {
			if (start)
				*start = m->syms[i].addr;
			return m->syms[i].name;
		}
	if (!lo || m->syms[lo - 1].size)
		return NULL;
	if (start)
		*start = m->syms[lo - 1].addr;
	return m->syms[lo - 1].name;
}

struct fns {
	struct fn *v;
	size_t n, cap;
};

static void add_ranges(struct fns *f, Dwarf_Die *die)
{
	Dwarf_Addr base, low, high;
	ptrdiff_t off = 0;

	while ((off = dwarf_ranges(die, off, &base, &low, &high)) > 0) {
		if (high <= low)
			continue;
		if (f->n == f->cap) {
			size_t cap = f->cap ? f->cap * 2 : 64;
			struct fn *v = realloc(f->v, cap * sizeof(*v));

			if (!v)
				return;
			f->v = v;
			f->cap = cap;
		}
		f->v[f->n++] = (struct fn){.low = low, .high = high, .die = *die};
	}
}

/* Every function with code under parent (through namespaces and types). */
static void collect(struct fns *f, Dwarf_Die *parent, int nest)
{
	Dwarf_Die child;

	if (dwarf_child(parent, &child) != 0)
		return;
	do {
		switch (dwarf_tag(&child)) {
		case DW_TAG_subprogram:
			add_ranges(f, &child);
			break;
		case DW_TAG_namespace:
		case DW_TAG_module:
		case DW_TAG_class_type:
		case DW_TAG_structure_type:
		case DW_TAG_union_type:
			if (nest < NEST_DEPTH)
				collect(f, &child, nest + 1);
			break;
		}
	} while (dwarf_siblingof(&child, &child) == 0);
}

static int cmp_fn(const void *a, const void *b)
{
	const struct fn *x = a, *y = b;

	return x->low < y->low ? -1 : x->low > y->low;
}

static struct cu_index *cu_index(struct modsym *m, Dwarf_Die *cu)
{
	uint64_t key = dwarf_dieoffset(cu) + 1;
	bool added;
	struct cu_index **slot = u64_map_put(&m->cus, key, &added), *x;
	struct fns f = {0};

	if (!slot)
		return NULL;
	if (!added)
		return *slot;
	x = calloc(1, sizeof(*x));
	if (x) {
		collect(&f, cu, 0);
		if (f.n)
			qsort(f.v, f.n, sizeof(*f.v), cmp_fn);
		x->fns = f.v;
		x->n = f.n;
	}
	*slot = x;
	return x;
}

int modsym_subprogram(struct modsym *m, Dwarf_Die *cu, Dwarf_Addr pc, Dwarf_Die *out)
{
	struct cu_index *x = cu_index(m, cu);
	size_t lo = 0, hi;

	if (!x)
		return -ENOENT;
	hi = x->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (x->fns[mid].low <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* ranges of distinct functions do not overlap; look a few back in case */
	for (size_t i = lo; i-- > 0 && lo - i <= 4;)
		if (pc < x->fns[i].high) {
			*out = x->fns[i].die;
			return 0;
		}
	return -ENOENT;
}

static char *demangle(const char *name)
{
	int status = -1;
	char *d;

	if (!name)
		return NULL;
	/* Rust's (legacy _ZN...17h<hash>E, v0 _R...), by libiberty */
	if ((name[0] == '_' && (name[1] == 'Z' || name[1] == 'R')) &&
	    (d = rust_demangle(name, DMGL_PARAMS | DMGL_ANSI)))
		return d;
	if (name[0] == '_' && name[1] == 'Z') {
		d = __cxa_demangle(name, NULL, NULL, &status);
		if (d && status == 0)
			return d;
		free(d);
	}
	return strdup(name);
}

/* A relative source name is relative to its compilation directory; the
 * joined path is normalised (path.h: "./libio/./libio/x.c" -> "libio/x.c"),
 * here, where every report's frames come from. */
static char *absolute_source(Dwarf_Die *cu, const char *src)
{
	Dwarf_Attribute attr;
	const char *dir;
	char *out;

	dir = src[0] == '/' || !cu ? NULL : dwarf_formstring(dwarf_attr(cu, DW_AT_comp_dir, &attr));
	if (!dir || asprintf(&out, "%s/%s", dir, src) < 0)
		out = strdup(src);
	if (out)
		path_normalise_source(out);
	return out;
}

/* The name of a function's DIE (through its abstract origin or
 * specification): the linkage name demangled, else the plain name. */
static char *die_function(Dwarf_Die *die)
{
	Dwarf_Attribute attr;
	const char *name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));

	if (!name)
		name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
	if (name)
		return demangle(name);
	name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &attr));
	return name ? strdup(name) : NULL;
}

/* Where an inlined call was made: its DW_AT_call_file and _line. */
static void call_site(Dwarf_Die *inl, struct symbolize_frame *f)
{
	Dwarf_Attribute attr;
	Dwarf_Word file, line;
	Dwarf_Files *files;
	Dwarf_Die cu;
	size_t nfiles;
	const char *src;

	if (dwarf_formudata(dwarf_attr(inl, DW_AT_call_file, &attr), &file) ||
	    dwarf_formudata(dwarf_attr(inl, DW_AT_call_line, &attr), &line) || line == 0 ||
	    line > UINT32_MAX || !dwarf_diecu(inl, &cu, NULL, NULL) ||
	    dwarf_getsrcfiles(&cu, &files, &nfiles) || file >= nfiles)
		return;
	src = dwarf_filesrc(files, file, NULL, NULL);
	if (!src)
		return;
	f->filename = absolute_source(&cu, src);
	f->lineno = (uint32_t)line;
}

#define SCOPE_DEPTH 256 /* nested scopes (functions, blocks, inlined calls) */

/* Finds the scopes containing pc under parent and writes them, outermost
 * first, to path[depth...]; returns the depth reached (depth: none). DIEs
 * without addresses that may hold functions (namespaces, as Rust nests every
 * function; types) are searched through. dwarf_getscopes is not used: it
 * finds nothing under Rust's namespaces. */
static int find_scopes(Dwarf_Die *parent, Dwarf_Addr pc, Dwarf_Die *path, int depth, int nest)
{
	Dwarf_Die child;
	int r;

	if (dwarf_child(parent, &child) != 0)
		return depth;
	do {
		switch (dwarf_tag(&child)) {
		case DW_TAG_subprogram:
		case DW_TAG_inlined_subroutine:
		case DW_TAG_lexical_block:
		case DW_TAG_try_block:
		case DW_TAG_catch_block:
		case DW_TAG_with_stmt:
		case DW_TAG_entry_point:
			if (dwarf_haspc(&child, pc) != 1)
				break;
			path[depth] = child;
			if (depth + 1 == SCOPE_DEPTH)
				return depth + 1;
			return find_scopes(&child, pc, path, depth + 1, nest);
		case DW_TAG_namespace:
		case DW_TAG_module:
		case DW_TAG_class_type:
		case DW_TAG_structure_type:
		case DW_TAG_union_type:
			if (nest < NEST_DEPTH &&
			    (r = find_scopes(&child, pc, path, depth, nest + 1)) > depth)
				return r;
			break;
		}
	} while (dwarf_siblingof(&child, &child) == 0);
	return depth;
}

/* The inlined calls at pc, innermost first: frames[0..n) get the inlined
 * functions' names, frames[1..n] the lines of their calls, frames[n] the
 * name of the function they are in. Returns n (0: pc is in no inlined
 * code). */
static size_t inline_chain(struct modsym *ms, Dwarf_Die *cu, Dwarf_Addr pc,
			   struct symbolize_frame *frames)
{
	Dwarf_Die *path = malloc(SCOPE_DEPTH * sizeof(*path));
	int depth = 0, i;
	size_t n = 0;

	/* the function by its CU's index, then the scopes within it */
	if (path && !modsym_subprogram(ms, cu, pc, &path[0]))
		depth = find_scopes(&path[0], pc, path, 1, 0);

	for (i = depth - 1; i >= 0 && n < SYMBOLIZE_MAX_INLINE - 1; i--) {
		int tag = dwarf_tag(&path[i]);

		if (tag == DW_TAG_subprogram)
			break;
		if (tag != DW_TAG_inlined_subroutine)
			continue;
		frames[n].function = die_function(&path[i]);
		call_site(&path[i], &frames[n + 1]);
		n++;
	}
	if (i >= 0 && dwarf_tag(&path[i]) == DW_TAG_subprogram)
		frames[n].function = die_function(&path[i]); /* the symbol's name wins */
	free(path);
	return n;
}

size_t modsym_frames(struct modsym *m, Dwarf_Addr pc, struct symbolize_frame *f)
{
	Dwarf_Addr bias = 0;
	Dwarf_Die *cu = dwfl_module_addrdie(m->mod, pc, &bias);
	Dwfl_Line *line = dwfl_module_getsrc(m->mod, pc);
	const char *name = modsym_function(m, pc);
	int lineno = 0;
	size_t n = 0;

	memset(f, 0, SYMBOLIZE_MAX_INLINE * sizeof(*f));
	if (line) {
		const char *src = dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);

		if (src && lineno > 0) {
			f[0].filename = absolute_source(cu, src);
			f[0].lineno = (uint32_t)lineno;
		}
	}
	if (cu)
		n = inline_chain(m, cu, pc - bias, f);
	/* the outermost frame is the function the symbol table names */
	if (name) {
		free((char *)f[n].function);
		f[n].function = demangle(name);
	}
	return n + 1;
}
