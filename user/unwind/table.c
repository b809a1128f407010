#include <dwarf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unwind/cfi.h"
#include "unwind/table.h"
#include "util/util.h"

#define PAGE_SIZE_MIN 4096

/* At one address .eh_frame wins over .debug_frame, and both over the rows
 * a PLT section without CFI is given. */
enum { ORDER_EH, ORDER_DEBUG, ORDER_PLT };

/* A PLT section with no CFI: lazy entries whose push ends at byte thr of
 * each 16, or jump stubs (thr 0: .plt.got, .plt.sec), or unknown (-1). */
struct plt {
	uint64_t lo, hi;
	int thr;
};

#define MAX_PLTS 3

struct builder {
	struct unwind_table *t;
	size_t cap;
	const struct cfi_cie *cie;
};

static int append(struct builder *b, uint64_t vaddr, uint32_t rule)
{
	struct unwind_table *t = b->t;

	if (t->n && t->rows[t->n - 1].rule == rule)
		return 0;
	if (t->n >= UNWIND_MAX_ROWS)
		return -E2BIG;
	if (array_reserve((void **)&t->rows, &b->cap, sizeof(*t->rows), t->n + 1))
		return -ENOMEM;
	t->rows[t->n++] = (struct unwind_row){(uint32_t)(vaddr - t->base), rule};
	return 0;
}

static uint32_t cannot(unsigned why)
{
	return unwind_rule(UNWIND_CANNOT, UNWIND_RBP_SAME, 0, why);
}

/* GCC's and GNU ld's one expression for a whole .plt (lit11 for classic
 * entries): CFA = rsp + 8 + ((((rip & 15) >= N)) << 3). N, or -1. */
static int plt_threshold(const uint8_t *e, uint32_t len)
{
	static const uint8_t head[] = {DW_OP_breg7, 8, DW_OP_breg16, 0, DW_OP_lit15, DW_OP_and};
	static const uint8_t tail[] = {DW_OP_ge, DW_OP_lit3, DW_OP_shl, DW_OP_plus};
	const size_t n = sizeof(head);

	if (len != n + 1 + sizeof(tail) || memcmp(e, head, n) ||
	    memcmp(e + n + 1, tail, sizeof(tail)))
		return -1;
	if (e[n] < DW_OP_lit0 || e[n] > DW_OP_lit15)
		return -1;
	return e[n] - DW_OP_lit0;
}

static uint32_t classify(const struct cfi_cie *cie, const struct cfi_state *s)
{
	unsigned kind, rbp = UNWIND_RBP_SAME;
	int rbp_off = 0;
	uint32_t cfa_off;
	int thr;

	if (cie->ra_reg != CFI_REG_RA)
		return cannot(UNWIND_WHY_RA);
	if (s->ra.how == CFI_RULE_UNDEF)
		return unwind_rule(UNWIND_STOP, UNWIND_RBP_SAME, 0, 0);
	if (cie->signal)
		return cannot(UNWIND_WHY_SIGNAL);
	switch (s->cfa_how) {
	case CFI_CFA_REG:
		if (s->cfa_reg == CFI_REG_RSP)
			kind = UNWIND_CFA_RSP;
		else if (s->cfa_reg == CFI_REG_RBP)
			kind = UNWIND_CFA_RBP;
		else
			return cannot(UNWIND_WHY_CFA_REG);
		if (s->cfa_off < 0 || s->cfa_off > UNWIND_CFA_OFF_MAX)
			return cannot(UNWIND_WHY_CFA_RANGE);
		cfa_off = (uint32_t)s->cfa_off;
		break;
	case CFI_CFA_EXPR:
		thr = plt_threshold(s->cfa_expr, s->cfa_expr_len);
		if (thr < 0)
			return cannot(UNWIND_WHY_CFA_EXPR);
		kind = UNWIND_PLT;
		cfa_off = (uint32_t)thr;
		break;
	default:
		return cannot(UNWIND_WHY_CFA_UNDEF);
	}
	if (s->ra.how != CFI_RULE_OFFSET || s->ra.off != -8)
		return cannot(UNWIND_WHY_RA);
	switch (s->rbp.how) {
	case CFI_RULE_UNSPEC:
	case CFI_RULE_SAME:
		break;
	case CFI_RULE_OFFSET:
		if (s->rbp.off % 8 == 0 && s->rbp.off >= UNWIND_RBP_OFF_MIN &&
		    s->rbp.off <= UNWIND_RBP_OFF_MAX) {
			rbp = UNWIND_RBP_AT_CFA;
			rbp_off = (int)s->rbp.off;
			break;
		}
		/* fall through */
	default:
		rbp = UNWIND_RBP_LOST;
	}
	return unwind_rule(kind, rbp, rbp_off, cfa_off);
}

static int emit(void *arg, uint64_t lo, uint64_t hi, const struct cfi_state *s)
{
	struct builder *b = arg;

	return append(b, lo, classify(b->cie, s));
}

/* Which lazy-PLT layout the section's first two entries have: the push
 * of each entry ends at byte 11 (GNU ld, lld: jmp *GOT; push $n; jmp
 * PLT0), 9 (IBT: endbr64; push; bnd jmp) or 5 (MPX: push; bnd jmp). */
static int plt_layout(const uint8_t *p, size_t size, uint64_t vaddr)
{
	const uint8_t *e = p + 16;

	if ((vaddr & 15) || size < 32 || size % 16)
		return -1;
	/* PLT0: push GOT+8(%rip); jmp *GOT+16(%rip), or bnd jmp */
	if (p[0] != 0xff || p[1] != 0x35 ||
	    !((p[6] == 0xff && p[7] == 0x25) || (p[6] == 0xf2 && p[7] == 0xff && p[8] == 0x25)))
		return -1;
	if (e[0] == 0xff && e[1] == 0x25 && e[6] == 0x68)
		return 11;
	if (e[0] == 0xf3 && e[1] == 0x0f && e[2] == 0x1e && e[3] == 0xfa && e[4] == 0x68)
		return 9;
	if (e[0] == 0x68)
		return 5;
	return -1;
}

static int plt_rows(struct builder *b, const struct plt *plt)
{
	const uint32_t rsp8 = unwind_rule(UNWIND_CFA_RSP, UNWIND_RBP_SAME, 0, 8);
	int err;

	if (plt->thr < 0)
		return append(b, plt->lo, cannot(UNWIND_WHY_PLT_LAYOUT));
	if (plt->thr == 0)
		return append(b, plt->lo, rsp8);
	/* PLT0 is entered from an entry, after its push: CFA = rsp + 16,
	 * and + 24 once PLT0 has pushed GOT[1] (its first 6 bytes) */
	err = append(b, plt->lo, unwind_rule(UNWIND_CFA_RSP, UNWIND_RBP_SAME, 0, 16));
	if (!err)
		err = append(b, plt->lo + 6, unwind_rule(UNWIND_CFA_RSP, UNWIND_RBP_SAME, 0, 24));
	if (!err)
		err = append(b, plt->lo + 16,
			     unwind_rule(UNWIND_PLT, UNWIND_RBP_SAME, 0, (uint32_t)plt->thr));
	return err;
}

static int cmp_fde(const void *a, const void *b)
{
	const struct cfi_fde *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	if (x->hi != y->hi)
		return x->hi > y->hi ? -1 : 1;
	if (x->insn != y->insn) /* the same range twice: the first in the file */
		return x->insn < y->insn ? -1 : 1;
	return 0;
}

/* PLT sections that no FDE touches become FDEs of their own (cie: the
 * index in plts). */
static int add_plts(struct cfi_list *list, const struct plt *plts, size_t nplts)
{
	const size_t nreal = list->nfdes;

	for (size_t i = 0; i < nplts; i++) {
		bool covered = false;

		for (size_t j = 0; j < nreal && !covered; j++)
			covered = list->fdes[j].lo < plts[i].hi && list->fdes[j].hi > plts[i].lo;
		if (covered)
			continue;
		if (array_reserve((void **)&list->fdes, &list->fdes_cap, sizeof(*list->fdes),
				  list->nfdes + 1))
			return -ENOMEM;
		list->fdes[list->nfdes++] = (struct cfi_fde){
		    .lo = plts[i].lo, .hi = plts[i].hi, .cie = (uint32_t)i, .order = ORDER_PLT};
	}
	return 0;
}

static void count_rows(struct unwind_table *t)
{
	struct unwind_stats *st = &t->stats;

	for (uint32_t i = 0; i < t->n; i++) {
		const struct unwind_row *r = &t->rows[i];
		unsigned kind = unwind_row_kind(r);
		uint64_t len = i + 1 < t->n ? t->rows[i + 1].start - r->start : 0;

		st->rows[kind]++;
		st->bytes[kind] += len;
		if (kind == UNWIND_CANNOT && unwind_row_cfa_off(r) < UNWIND_WHY_COUNT) {
			st->cannot[unwind_row_cfa_off(r)]++;
			st->cannot_bytes[unwind_row_cfa_off(r)] += len;
		}
		if (kind != UNWIND_CANNOT && unwind_row_rbp(r) == UNWIND_RBP_LOST)
			st->rbp_lost++;
	}
}

/* The rows of every FDE in list (and of the PLT sections without CFI),
 * sorted, gaps between them NONE. */
static int build_rows(struct cfi_list *list, const struct plt *plts, size_t nplts,
		      struct unwind_table *t)
{
	struct builder b = {.t = t};
	uint64_t covered = 0;
	bool any = false;
	int err;

	err = add_plts(list, plts, nplts);
	if (err)
		return err;
	if (list->nfdes)
		qsort(list->fdes, list->nfdes, sizeof(*list->fdes), cmp_fde);
	for (size_t i = 0; i < list->nfdes; i++) {
		const struct cfi_fde *fde = &list->fdes[i];
		uint32_t before = t->n;

		if (fde->lo < t->base || fde->hi - t->base > UINT32_MAX) {
			t->stats.fdes_outside++;
			continue;
		}
		if (any && fde->lo < covered) {
			t->stats.fdes_overlap++;
			continue;
		}
		if (any && fde->lo > covered) {
			err = append(&b, covered, unwind_rule(UNWIND_NONE, UNWIND_RBP_SAME, 0, 0));
			if (err)
				return err;
		}
		if (fde->order == ORDER_PLT) {
			t->stats.plt_synthesized++;
			err = plt_rows(&b, &plts[fde->cie]);
		} else {
			b.cie = &list->cies[fde->cie];
			err = cfi_run(b.cie, fde, emit, &b);
			if (err == -EINVAL) { /* the FDE's rows so far go */
				t->n = before;
				err = append(&b, fde->lo, cannot(UNWIND_WHY_BAD_CFI));
			}
		}
		if (err)
			return err;
		covered = fde->hi;
		any = true;
	}
	if (any) {
		err = append(&b, covered, unwind_rule(UNWIND_NONE, UNWIND_RBP_SAME, 0, 0));
		if (err)
			return err;
	}
	count_rows(t);
	return 0;
}

static void take_counts(struct unwind_stats *st, const struct cfi_counts *c)
{
	st->cies = c->cies;
	st->fdes = c->fdes;
	st->bad_entries = c->bad_entries;
	st->fdes_empty = c->fdes_empty;
}

static int finish(struct cfi_list *list, const struct plt *plts, size_t nplts, int err,
		  struct unwind_table *out)
{
	if (!err)
		err = build_rows(list, plts, nplts, out);
	take_counts(&out->stats, &list->counts);
	cfi_list_free(list);
	if (err)
		unwind_table_free(out);
	return err;
}

int unwind_table_build_cfi(const void *data, size_t size, uint64_t vaddr, bool eh, uint64_t base,
			   struct unwind_table *out)
{
	const struct cfi_section sec = {data, size, vaddr, eh};
	struct cfi_list list = {0};

	memset(out, 0, sizeof(*out));
	out->base = base;
	out->stats.eh_frame = eh;
	out->stats.debug_frame = !eh;
	return finish(&list, NULL, 0, cfi_scan(&sec, eh ? ORDER_EH : ORDER_DEBUG, &list), out);
}

/* The link-time address of the first PT_LOAD, page-aligned down */
static int elf_base(Elf *elf, uint64_t *base)
{
	size_t n;
	bool found = false;

	if (elf_getphdrnum(elf, &n))
		return -ENOEXEC;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (!found || ph.p_vaddr < *base)
			*base = ph.p_vaddr;
		found = true;
	}
	if (!found)
		return -ENOEXEC;
	*base &= ~(uint64_t)(PAGE_SIZE_MIN - 1);
	return 0;
}

static const Elf_Data *section_data(Elf_Scn *scn)
{
	Elf_Data *d = elf_getdata(scn, NULL);

	return d && d->d_buf && d->d_size ? d : NULL;
}

int unwind_table_build_elf(Elf *elf, struct unwind_table *out)
{
	struct cfi_list list = {0};
	struct plt plts[MAX_PLTS];
	size_t nplts = 0, shstrndx;
	GElf_Ehdr eh;
	Elf_Scn *scn = NULL;
	int err = 0;

	memset(out, 0, sizeof(*out));
	if (!gelf_getehdr(elf, &eh) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64 ||
	    (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) || elf_getshdrstrndx(elf, &shstrndx))
		return -ENOEXEC;
	err = elf_base(elf, &out->base);
	if (err)
		return err;
	while (!err && (scn = elf_nextscn(elf, scn))) {
		const char *name;
		const Elf_Data *d;
		GElf_Shdr sh;
		bool eh_frame;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS ||
		    !(name = elf_strptr(elf, shstrndx, sh.sh_name)))
			continue;
		eh_frame = !strcmp(name, ".eh_frame") &&
			   (sh.sh_type == SHT_PROGBITS || sh.sh_type == SHT_X86_64_UNWIND);
		if ((eh_frame && !out->stats.eh_frame) ||
		    (!strcmp(name, ".debug_frame") && !out->stats.debug_frame &&
		     sh.sh_type == SHT_PROGBITS && !(sh.sh_flags & SHF_COMPRESSED))) {
			struct cfi_section sec;

			if (!(d = section_data(scn)))
				continue;
			sec = (struct cfi_section){d->d_buf, d->d_size, sh.sh_addr, eh_frame};
			*(eh_frame ? &out->stats.eh_frame : &out->stats.debug_frame) = true;
			err = cfi_scan(&sec, eh_frame ? ORDER_EH : ORDER_DEBUG, &list);
		} else if ((!strcmp(name, ".plt") || !strcmp(name, ".plt.got") ||
			    !strcmp(name, ".plt.sec")) &&
			   sh.sh_type == SHT_PROGBITS && (sh.sh_flags & SHF_EXECINSTR) &&
			   nplts < MAX_PLTS && sh.sh_size &&
			   sh.sh_addr <= UINT64_MAX - sh.sh_size) {
			struct plt *p = &plts[nplts++];

			p->lo = sh.sh_addr;
			p->hi = sh.sh_addr + sh.sh_size;
			p->thr = 0;
			if (!strcmp(name, ".plt"))
				p->thr = (d = section_data(scn))
					     ? plt_layout(d->d_buf, d->d_size, sh.sh_addr)
					     : -1;
		}
	}
	if (!err && !out->stats.eh_frame && !out->stats.debug_frame)
		err = -ENOENT;
	return finish(&list, plts, nplts, err, out);
}

/* The ELF file at path, a regular file only (a target's files are
 * hostile: no FIFO to block on): *fd and its Elf (NULL when it is none). */
static int open_elf(const char *path, int *fd, Elf **elf)
{
	struct stat st;

	*elf = NULL;
	*fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (*fd < 0)
		return -errno;
	if (fstat(*fd, &st) || !S_ISREG(st.st_mode)) {
		close(*fd);
		return -ENOEXEC;
	}
	elf_version(EV_CURRENT);
	*elf = elf_begin(*fd, ELF_C_READ, NULL);
	return 0;
}

int unwind_table_build(const char *path, struct unwind_table *out)
{
	Elf *elf;
	int fd, err;

	memset(out, 0, sizeof(*out));
	err = open_elf(path, &fd, &elf);
	if (err)
		return err;
	err = elf && elf_kind(elf) == ELF_K_ELF ? unwind_table_build_elf(elf, out) : -ENOEXEC;
	if (elf)
		elf_end(elf);
	close(fd);
	return err;
}

static int fde_sizes(Elf *elf, const uint64_t *vaddrs, uint64_t *sizes, size_t n)
{
	struct cfi_list list = {0};
	size_t shstrndx;
	Elf_Scn *scn = NULL;
	int err = -ENOENT;

	if (elf_getshdrstrndx(elf, &shstrndx))
		return -ENOEXEC;
	while ((scn = elf_nextscn(elf, scn))) {
		const Elf_Data *d;
		const char *name;
		GElf_Shdr sh;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS ||
		    !(name = elf_strptr(elf, shstrndx, sh.sh_name)) || strcmp(name, ".eh_frame") ||
		    !(d = section_data(scn)))
			continue;
		err = cfi_scan(&(struct cfi_section){d->d_buf, d->d_size, sh.sh_addr, true},
			       ORDER_EH, &list);
		break;
	}
	for (size_t i = 0; !err && i < n; i++)
		for (size_t j = 0; j < list.nfdes; j++)
			if (list.fdes[j].lo == vaddrs[i]) {
				sizes[i] = list.fdes[j].hi - list.fdes[j].lo;
				break;
			}
	cfi_list_free(&list);
	return err;
}

int unwind_function_sizes(const char *path, const uint64_t *vaddrs, uint64_t *sizes, size_t n)
{
	Elf *elf;
	int fd, err;

	memset(sizes, 0, n * sizeof(*sizes));
	err = open_elf(path, &fd, &elf);
	if (err)
		return err;
	err = elf && elf_kind(elf) == ELF_K_ELF ? fde_sizes(elf, vaddrs, sizes, n) : -ENOEXEC;
	if (elf)
		elf_end(elf);
	close(fd);
	return err;
}

void unwind_table_free(struct unwind_table *t)
{
	free(t->rows);
	t->rows = NULL;
	t->n = 0;
}

const struct unwind_row *unwind_table_find(const struct unwind_table *t, uint64_t vaddr)
{
	uint32_t off, lo = 0, hi = t->n;

	if (!t->n || vaddr < t->base || vaddr - t->base > UINT32_MAX)
		return NULL;
	off = (uint32_t)(vaddr - t->base);
	/* the last row whose start is <= off */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (t->rows[mid].start <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? &t->rows[lo - 1] : NULL;
}

uint64_t unwind_row_end(const struct unwind_table *t, const struct unwind_row *r)
{
	size_t i = (size_t)(r - t->rows);

	return i + 1 < t->n ? t->rows[i + 1].start : (uint64_t)1 << 32;
}

/* in the order of the enums */
static const char *const kind_names[] = {"none", "rsp", "rbp", "plt", "stop", "cannot"};
static const char *const why_names[] = {
    "CFA in another register",	   "CFA expression", "no CFA rule",   "CFA offset out of range",
    "return address not at CFA-8", "signal frame",   "malformed CFI", "PLT of unknown layout",
};
_Static_assert(ARRAY_SIZE(kind_names) == UNWIND_KIND_COUNT, "a name per kind");
_Static_assert(ARRAY_SIZE(why_names) == UNWIND_WHY_COUNT, "a name per reason");

const char *unwind_kind_name(unsigned kind)
{
	return kind < UNWIND_KIND_COUNT ? kind_names[kind] : "?";
}

const char *unwind_why_name(unsigned why)
{
	return why < UNWIND_WHY_COUNT ? why_names[why] : "?";
}
