#include <dwarf.h>
#include <errno.h>
#include <gelf.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "modsym.h"
#include "util/hash.h"

#define NEST_DEPTH 64 /* namespaces, types within types */

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
		if (m->syms[i].size && addr < m->syms[i].addr + m->syms[i].size)
			return m->syms[i].name;
	return lo && !m->syms[lo - 1].size ? m->syms[lo - 1].name : NULL;
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
