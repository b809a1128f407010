#include <dwarf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "unwind/cfi.h"
#include "util/util.h"

/* A bounded reader: past the end it returns zeros and sets bad. */
struct cur {
	const uint8_t *p, *end;
	bool bad;
};

static size_t left(const struct cur *c)
{
	return (size_t)(c->end - c->p);
}

static uint64_t rd_fixed(struct cur *c, unsigned n)
{
	uint64_t v = 0;

	if (left(c) < n) {
		c->bad = true;
		c->p = c->end;
		return 0;
	}
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)c->p[i] << (8 * i);
	c->p += n;
	return v;
}

static uint8_t rd_u8(struct cur *c)
{
	return (uint8_t)rd_fixed(c, 1);
}

/* LEB128 of any length (padding is legal); bits beyond 64 set bad. */
static uint64_t rd_uleb(struct cur *c)
{
	uint64_t v = 0;
	unsigned shift = 0;
	uint8_t b;

	do {
		uint64_t part;

		if (c->p >= c->end) {
			c->bad = true;
			return 0;
		}
		b = *c->p++;
		part = b & 0x7f;
		if (shift < 64) {
			if (shift && (part >> (64 - shift)))
				c->bad = true;
			v |= part << shift;
			shift += 7;
		} else if (part) {
			c->bad = true;
		}
	} while (b & 0x80);
	return v;
}

static int64_t rd_sleb(struct cur *c)
{
	uint64_t v = 0;
	unsigned shift = 0;
	uint8_t b;

	do {
		if (c->p >= c->end) {
			c->bad = true;
			return 0;
		}
		b = *c->p++;
		if (shift < 64) {
			v |= (uint64_t)(b & 0x7f) << shift;
			shift += 7;
		}
	} while (b & 0x80);
	if (shift < 64 && (b & 0x40))
		v |= ~(uint64_t)0 << shift;
	return (int64_t)v;
}

/* The formats of DW_EH_PE_* values that can be read (not "aligned"). */
static bool enc_format_ok(uint8_t enc)
{
	switch (enc & 0x0f) {
	case DW_EH_PE_absptr:
	case DW_EH_PE_uleb128:
	case DW_EH_PE_udata2:
	case DW_EH_PE_udata4:
	case DW_EH_PE_udata8:
	case DW_EH_PE_sleb128:
	case DW_EH_PE_sdata2:
	case DW_EH_PE_sdata4:
	case DW_EH_PE_sdata8:
		return (enc & 0x70) != DW_EH_PE_aligned;
	default:
		return false;
	}
}

/* An FDE address encoding this reader resolves: absolute or pc-relative. */
static bool enc_addr_ok(uint8_t enc)
{
	return enc_format_ok(enc) && !(enc & DW_EH_PE_indirect) &&
	       ((enc & 0x70) == DW_EH_PE_absptr || (enc & 0x70) == DW_EH_PE_pcrel);
}

/* Reads an encoded value; field is the load address of c->p (pcrel base). */
static uint64_t rd_enc(struct cur *c, uint8_t enc, uint64_t field)
{
	uint64_t v;

	switch (enc & 0x0f) {
	case DW_EH_PE_uleb128:
		v = rd_uleb(c);
		break;
	case DW_EH_PE_udata2:
		v = rd_fixed(c, 2);
		break;
	case DW_EH_PE_udata4:
		v = rd_fixed(c, 4);
		break;
	case DW_EH_PE_sleb128:
		v = (uint64_t)rd_sleb(c);
		break;
	case DW_EH_PE_sdata2:
		v = (uint64_t)(int64_t)(int16_t)rd_fixed(c, 2);
		break;
	case DW_EH_PE_sdata4:
		v = (uint64_t)(int64_t)(int32_t)rd_fixed(c, 4);
		break;
	default: /* absptr, udata8, sdata8 (64-bit ELF only) */
		v = rd_fixed(c, 8);
		break;
	}
	if ((enc & 0x70) == DW_EH_PE_pcrel)
		v += field;
	return v;
}

/* A data-factored offset; what cannot be a real stack offset is HUGE. */
static int64_t factored(int64_t n, int64_t daf)
{
	if (n > INT32_MAX || n < INT32_MIN)
		return CFI_OFF_HUGE;
	return n * daf;
}

static int64_t ufactored(uint64_t n, int64_t daf)
{
	return n > INT32_MAX ? CFI_OFF_HUGE : factored((int64_t)n, daf);
}

static int64_t unfactored(uint64_t n)
{
	return n > INT32_MAX ? CFI_OFF_HUGE : (int64_t)n;
}

/* One program's run: a CIE's initial instructions (cie_init) or an FDE's. */
struct run {
	const struct cfi_cie *cie;
	bool cie_init;
	const uint8_t *insn;
	uint64_t insn_vaddr;
	uint64_t loc, hi;
	struct cfi_state st;
	struct cfi_state saved[CFI_MAX_STATE_DEPTH];
	unsigned depth;
	int (*emit)(void *arg, uint64_t lo, uint64_t hi, const struct cfi_state *s);
	void *arg;
};

static struct cfi_rule *rule_of(struct run *r, uint64_t reg)
{
	if (reg == CFI_REG_RBP)
		return &r->st.rbp;
	if (reg == r->cie->ra_reg)
		return &r->st.ra;
	return NULL;
}

static void set_rule(struct run *r, uint64_t reg, uint8_t how, int64_t off)
{
	struct cfi_rule *rule = rule_of(r, reg);

	if (rule) {
		rule->how = how;
		rule->off = off;
	}
}

/* DW_CFA_restore: the rule after the CIE's initial instructions; in those
 * instructions themselves, the rule before any (unspecified). */
static void restore_rule(struct run *r, uint64_t reg)
{
	struct cfi_rule *rule = rule_of(r, reg);

	if (!rule)
		return;
	if (r->cie_init)
		*rule = (struct cfi_rule){CFI_RULE_UNSPEC, 0};
	else
		*rule = rule == &r->st.rbp ? r->cie->init.rbp : r->cie->init.ra;
}

/* Moves to address to: the row that held until there is emitted. 1 when
 * the FDE's range is done, else 0 or a negative errno. */
static int advance(struct run *r, uint64_t to)
{
	int err;

	if (r->cie_init || to < r->loc)
		return -EINVAL;
	if (to > r->loc && r->loc < r->hi) {
		err = r->emit(r->arg, r->loc, to < r->hi ? to : r->hi, &r->st);
		if (err)
			return err;
	}
	r->loc = to;
	return r->loc >= r->hi;
}

static int advance_by(struct run *r, uint64_t delta)
{
	uint64_t d = delta * r->cie->caf; /* delta < 2^32, caf <= 2^16 */

	return advance(r, r->loc > UINT64_MAX - d ? UINT64_MAX : r->loc + d);
}

/* A DW_FORM_block: its length, then its bytes, within the program */
static const uint8_t *rd_block(struct cur *c, uint32_t *len)
{
	uint64_t n = rd_uleb(c);
	const uint8_t *p = c->p;

	if (c->bad || n > left(c)) {
		c->bad = true;
		return NULL;
	}
	c->p += n;
	*len = (uint32_t)n;
	return p;
}

/* Runs the program in [r->insn, end): 0 when it ran to its end or past
 * the FDE's range, -EINVAL if malformed, or the error emit returned. */
static int run_program(struct run *r, const uint8_t *end)
{
	struct cur c = {r->insn, end, false};
	const int64_t daf = r->cie->daf;
	struct cfi_state *st = &r->st;
	int ret = 0;

	while (c.p < c.end && !ret) {
		uint8_t op = rd_u8(&c);
		uint64_t reg, u;
		int64_t s;
		uint32_t len;
		const uint8_t *blk;

		switch (op & 0xc0) {
		case DW_CFA_advance_loc:
			ret = advance_by(r, op & 0x3f);
			continue;
		case DW_CFA_offset:
			set_rule(r, op & 0x3f, CFI_RULE_OFFSET, ufactored(rd_uleb(&c), daf));
			break;
		case DW_CFA_restore:
			restore_rule(r, op & 0x3f);
			break;
		default:
			switch (op) {
			case DW_CFA_nop:
				break;
			case DW_CFA_set_loc: {
				uint64_t field = r->insn_vaddr + (uint64_t)(c.p - r->insn);
				uint64_t to = rd_enc(&c, r->cie->fde_enc, field);

				if (c.bad)
					return -EINVAL;
				ret = advance(r, to);
				continue;
			}
			case DW_CFA_advance_loc1:
				u = rd_fixed(&c, 1);
				goto adv;
			case DW_CFA_advance_loc2:
				u = rd_fixed(&c, 2);
				goto adv;
			case DW_CFA_advance_loc4:
				u = rd_fixed(&c, 4);
			adv:
				if (c.bad)
					return -EINVAL;
				ret = advance_by(r, u);
				continue;
			case DW_CFA_offset_extended:
			case DW_CFA_val_offset:
			case DW_CFA_GNU_negative_offset_extended:
				reg = rd_uleb(&c);
				s = ufactored(rd_uleb(&c), daf);
				if (op == DW_CFA_GNU_negative_offset_extended && s != CFI_OFF_HUGE)
					s = -s;
				set_rule(r, reg,
					 op == DW_CFA_val_offset ? CFI_RULE_VAL_OFFSET
								 : CFI_RULE_OFFSET,
					 s);
				break;
			case DW_CFA_offset_extended_sf:
			case DW_CFA_val_offset_sf:
				reg = rd_uleb(&c);
				set_rule(r, reg,
					 op == DW_CFA_val_offset_sf ? CFI_RULE_VAL_OFFSET
								    : CFI_RULE_OFFSET,
					 factored(rd_sleb(&c), daf));
				break;
			case DW_CFA_restore_extended:
				restore_rule(r, rd_uleb(&c));
				break;
			case DW_CFA_undefined:
				set_rule(r, rd_uleb(&c), CFI_RULE_UNDEF, 0);
				break;
			case DW_CFA_same_value:
				set_rule(r, rd_uleb(&c), CFI_RULE_SAME, 0);
				break;
			case DW_CFA_register:
				reg = rd_uleb(&c);
				u = rd_uleb(&c);
				set_rule(r, reg, CFI_RULE_REGISTER, unfactored(u));
				break;
			case DW_CFA_expression:
			case DW_CFA_val_expression:
				reg = rd_uleb(&c);
				if (!rd_block(&c, &len))
					return -EINVAL;
				set_rule(
				    r, reg,
				    op == DW_CFA_expression ? CFI_RULE_EXPR : CFI_RULE_VAL_EXPR, 0);
				break;
			case DW_CFA_remember_state:
				if (r->depth == CFI_MAX_STATE_DEPTH)
					return -EINVAL;
				r->saved[r->depth++] = *st;
				break;
			case DW_CFA_restore_state:
				if (!r->depth)
					return -EINVAL;
				*st = r->saved[--r->depth];
				break;
			case DW_CFA_def_cfa:
			case DW_CFA_def_cfa_sf:
				st->cfa_how = CFI_CFA_REG;
				st->cfa_reg = rd_uleb(&c);
				st->cfa_off = op == DW_CFA_def_cfa ? unfactored(rd_uleb(&c))
								   : factored(rd_sleb(&c), daf);
				break;
			case DW_CFA_def_cfa_register:
			case DW_CFA_def_cfa_offset:
			case DW_CFA_def_cfa_offset_sf: /* these change a register rule only */
				if (st->cfa_how != CFI_CFA_REG)
					return -EINVAL;
				if (op == DW_CFA_def_cfa_register)
					st->cfa_reg = rd_uleb(&c);
				else
					st->cfa_off = op == DW_CFA_def_cfa_offset
							  ? unfactored(rd_uleb(&c))
							  : factored(rd_sleb(&c), daf);
				break;
			case DW_CFA_def_cfa_expression:
				blk = rd_block(&c, &len);
				if (!blk)
					return -EINVAL;
				st->cfa_how = CFI_CFA_EXPR;
				st->cfa_expr = blk;
				st->cfa_expr_len = len;
				break;
			case DW_CFA_GNU_args_size:
				rd_uleb(&c);
				break;
			default: /* SPARC's window save, vendor codes, unknown */
				return -EINVAL;
			}
		}
		if (c.bad)
			return -EINVAL;
	}
	if (c.bad)
		return -EINVAL;
	return ret < 0 ? ret : 0;
}

int cfi_run(const struct cfi_cie *cie, const struct cfi_fde *fde,
	    int (*emit)(void *arg, uint64_t lo, uint64_t hi, const struct cfi_state *s), void *arg)
{
	struct run r;
	int err;

	if (!cie->init_ok)
		return -EINVAL;
	r.cie = cie;
	r.cie_init = false;
	r.insn = fde->insn;
	r.insn_vaddr = fde->insn_vaddr;
	r.loc = fde->lo;
	r.hi = fde->hi;
	r.st = cie->init;
	r.depth = 0;
	r.emit = emit;
	r.arg = arg;
	err = run_program(&r, fde->insn + fde->insn_len);
	if (err)
		return err;
	if (r.loc < r.hi)
		return emit(arg, r.loc, r.hi, &r.st);
	return 0;
}

/* Reads a CIE's header and runs its initial instructions. c is the entry
 * after its id, loaded at vaddr. -EINVAL if the FDEs that use it cannot
 * even be located. */
static int parse_cie(uint64_t off, uint64_t vaddr, struct cur c, struct cfi_cie *cie)
{
	const uint8_t *const start = c.p;
	const uint8_t *aug;
	size_t auglen;
	uint8_t version;
	struct run r;

	memset(cie, 0, sizeof(*cie));
	cie->off = off;
	cie->fde_enc = DW_EH_PE_absptr;
	version = rd_u8(&c);
	if (version != 1 && version != 3 && version != 4)
		return -EINVAL;
	aug = c.p;
	auglen = strnlen((const char *)aug, left(&c));
	if (auglen == left(&c)) /* unterminated */
		return -EINVAL;
	c.p += auglen + 1;
	/* without 'z' first, only letters that carry no data (GAS writes
	 * "S" in .debug_frame); "eh" and the like are refused */
	if (auglen && aug[0] != 'z') {
		if (strspn((const char *)aug, "S") != auglen)
			return -EINVAL;
		cie->signal = true;
	}
	if (version == 4 && (rd_u8(&c) != 8 || rd_u8(&c) != 0)) /* address, segment size */
		return -EINVAL;
	cie->caf = rd_uleb(&c);
	cie->daf = rd_sleb(&c);
	cie->ra_reg = version == 1 ? rd_u8(&c) : rd_uleb(&c);
	if (c.bad || !cie->caf || cie->caf > 1 << 16 || cie->daf > 1 << 16 || cie->daf < -(1 << 16))
		return -EINVAL;
	if (auglen && aug[0] == 'z') {
		uint64_t n = rd_uleb(&c);
		struct cur a;

		if (c.bad || n > left(&c))
			return -EINVAL;
		a = (struct cur){c.p, c.p + n, false};
		c.p += n;
		cie->aug_z = true;
		for (size_t i = 1; i < auglen; i++) {
			uint8_t enc;

			switch (aug[i]) {
			case 'R':
				cie->fde_enc = rd_u8(&a);
				break;
			case 'L': /* the LSDA's encoding */
				rd_u8(&a);
				break;
			case 'P': /* the personality routine: skipped */
				enc = rd_u8(&a);
				if (!enc_format_ok(enc))
					return -EINVAL;
				rd_enc(&a, enc, 0);
				break;
			case 'S':
				cie->signal = true;
				break;
			default:
				return -EINVAL;
			}
		}
		if (a.bad)
			return -EINVAL;
	}
	if (!enc_addr_ok(cie->fde_enc))
		return -EINVAL;

	/* Before any instruction: no CFA, and rbp and the return address
	 * unspecified (rbp is callee-saved: the caller's value). */
	memset(&r, 0, sizeof(r));
	r.cie = cie;
	r.cie_init = true;
	r.insn = c.p;
	r.insn_vaddr = vaddr + (uint64_t)(c.p - start);
	cie->init_ok = run_program(&r, c.end) == 0;
	cie->init = r.st;
	return 0;
}

/* One entry of the section: its offset, where its body (after the id)
 * is, and whether it is a CIE and which CIE offset it names. */
struct entry {
	uint64_t off;
	struct cur body;
	uint64_t id_off; /* offset of the id field */
	uint64_t id;
	bool cie;
};

/* Steps to the entry at *off: 1 and the entry, 0 at the end, -EINVAL
 * when the rest of the section does not parse. *off moves past it. */
static int next_entry(const struct cfi_section *sec, uint64_t *off, struct entry *e)
{
	struct cur c;
	uint64_t len;

	if (*off >= sec->size)
		return 0;
	c = (struct cur){sec->data + *off, sec->data + sec->size, false};
	len = rd_fixed(&c, 4);
	if (c.bad)
		return -EINVAL;
	if (len == 0) /* the terminator */
		return 0;
	if (len >= 0xfffffff0) /* DWARF64 or reserved: not read */
		return -EINVAL;
	if (len > left(&c) || len < 4)
		return -EINVAL;
	e->off = *off;
	e->id_off = *off + 4;
	e->body = (struct cur){c.p, c.p + len, false};
	e->id = rd_fixed(&e->body, 4);
	e->cie = sec->eh ? e->id == 0 : e->id == 0xffffffff;
	*off += 4 + len;
	return 1;
}

static const struct cfi_cie *find_cie(const struct cfi_list *list, size_t first, uint64_t off,
				      uint32_t *idx)
{
	size_t lo = first, hi = list->ncies;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (list->cies[mid].off < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == list->ncies || list->cies[lo].off != off)
		return NULL;
	*idx = (uint32_t)lo;
	return &list->cies[lo];
}

int cfi_scan(const struct cfi_section *sec, uint8_t order, struct cfi_list *list)
{
	const size_t first = list->ncies;
	struct entry e;
	uint64_t off = 0;
	int more;

	/* The CIEs first (an FDE may name a later one in .debug_frame), in
	 * offset order, so that FDEs find theirs by binary search. */
	while ((more = next_entry(sec, &off, &e)) > 0) {
		if (!e.cie)
			continue;
		if (list->ncies - first >= CFI_MAX_CIES)
			return -E2BIG;
		if (array_reserve((void **)&list->cies, &list->cies_cap, sizeof(*list->cies),
				  list->ncies + 1))
			return -ENOMEM;
		list->counts.cies++;
		if (parse_cie(e.off, sec->vaddr + (uint64_t)(e.body.p - sec->data), e.body,
			      &list->cies[list->ncies]))
			list->counts.bad_entries++;
		else
			list->ncies++;
	}
	/* a rest that does not parse is counted once, by the FDE pass */

	off = 0;
	while ((more = next_entry(sec, &off, &e)) > 0) {
		const struct cfi_cie *cie;
		struct cfi_fde fde = {.order = order};
		uint64_t cie_off, range;
		struct cur c = e.body;

		if (e.cie)
			continue;
		list->counts.fdes++;
		if (sec->eh) /* backwards from the id field */
			cie_off = e.id <= e.id_off ? e.id_off - e.id : UINT64_MAX;
		else
			cie_off = e.id;
		cie = find_cie(list, first, cie_off, &fde.cie);
		if (!cie) {
			list->counts.bad_entries++;
			continue;
		}
		fde.lo = rd_enc(&c, cie->fde_enc, sec->vaddr + (uint64_t)(c.p - sec->data));
		range = rd_enc(&c, cie->fde_enc & 0x0f, 0);
		if (cie->aug_z) {
			uint64_t n = rd_uleb(&c);

			if (n > left(&c))
				c.bad = true;
			else
				c.p += n;
		}
		if (c.bad || range > UINT64_MAX - fde.lo) {
			list->counts.bad_entries++;
			continue;
		}
		if (!range) {
			list->counts.fdes_empty++;
			continue;
		}
		fde.hi = fde.lo + range;
		fde.insn = c.p;
		fde.insn_vaddr = sec->vaddr + (uint64_t)(c.p - sec->data);
		fde.insn_len = (uint32_t)left(&c);
		if (list->nfdes >= CFI_MAX_FDES)
			return -E2BIG;
		if (array_reserve((void **)&list->fdes, &list->fdes_cap, sizeof(*list->fdes),
				  list->nfdes + 1))
			return -ENOMEM;
		list->fdes[list->nfdes++] = fde;
	}
	if (more < 0)
		list->counts.bad_entries++;
	return 0;
}

void cfi_list_free(struct cfi_list *list)
{
	free(list->cies);
	free(list->fdes);
	memset(list, 0, sizeof(*list));
}
