/* DWARF call frame information (.eh_frame, .debug_frame) read for what an
 * x86-64 unwinder needs and nothing else: the CFA rule, the return address
 * column and rbp. Every other register's rules are parsed and ignored.
 *
 * Why not libdw's dwarf_cfi_addrframe: it runs an FDE's program from its
 * start for every address asked (a table of every row costs rows^2), it
 * accepts register numbers up to 2^27 (one DW_CFA_offset_extended makes a 2
 * GiB realloc) and any depth of DW_CFA_remember_state (one copy of the
 * register table each), and it picks its .eh_frame through PT_GNU_EH_FRAME,
 * which a hostile file may point elsewhere than the section that was
 * checked. Here each program runs once, front to back, with a fixed-size
 * state: time is linear in the section's bytes, memory in the FDEs found.
 *
 * Ownership: a cfi_list owns its arrays; the FDEs point into the section
 * bytes, which the caller keeps alive while it runs them. Only what the
 * x86-64 psABI and GCC/LLVM emit is read: DWARF32 entries, CIE versions 1,
 * 3 and 4, addresses absolute or pc-relative; anything else is counted as a
 * bad entry. */
#ifndef TRACER_UNWIND_CFI_H
#define TRACER_UNWIND_CFI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* x86-64 DWARF register numbers (psABI, "DWARF Register Number Mapping") */
#define CFI_REG_RBP 6
#define CFI_REG_RSP 7
#define CFI_REG_RA 16

/* Bounds: a CIE or FDE beyond them is refused; more CIEs or FDEs than this
 * in one file make the whole read fail with -E2BIG. */
#define CFI_MAX_CIES 65536
#define CFI_MAX_FDES (4u << 20)
#define CFI_MAX_STATE_DEPTH 64 /* DW_CFA_remember_state nesting */

/* An offset that did not fit in 32 bits (only hostile or broken CFI) */
#define CFI_OFF_HUGE INT64_MIN

enum cfi_cfa_how {
	CFI_CFA_UNDEF, /* no DW_CFA_def_cfa* yet */
	CFI_CFA_REG,   /* CFA = reg + off */
	CFI_CFA_EXPR,  /* DW_CFA_def_cfa_expression: expr, expr_len */
};

enum cfi_reg_how {
	CFI_RULE_UNSPEC,     /* no rule given (rbp: callee-saved, so unchanged) */
	CFI_RULE_UNDEF,	     /* DW_CFA_undefined */
	CFI_RULE_SAME,	     /* DW_CFA_same_value */
	CFI_RULE_OFFSET,     /* saved at CFA + off */
	CFI_RULE_VAL_OFFSET, /* the value is CFA + off */
	CFI_RULE_REGISTER,   /* in register off */
	CFI_RULE_EXPR,	     /* DW_CFA_expression */
	CFI_RULE_VAL_EXPR,   /* DW_CFA_val_expression */
};

struct cfi_rule {
	uint8_t how; /* enum cfi_reg_how */
	int64_t off;
};

/* One row of the CFI table, for the registers that matter here */
struct cfi_state {
	uint8_t cfa_how; /* enum cfi_cfa_how */
	uint64_t cfa_reg;
	int64_t cfa_off;
	const uint8_t *cfa_expr;
	uint32_t cfa_expr_len;
	struct cfi_rule rbp, ra;
};

/* Where a section's bytes are and what they are */
struct cfi_section {
	const uint8_t *data;
	size_t size;
	uint64_t vaddr; /* sh_addr: the base of DW_EH_PE_pcrel */
	bool eh;	/* .eh_frame (else .debug_frame) */
};

struct cfi_cie {
	uint64_t off; /* in its section */
	uint64_t caf; /* code alignment factor */
	int64_t daf;  /* data alignment factor */
	uint64_t ra_reg;
	uint8_t fde_enc; /* DW_EH_PE_* of the FDEs' addresses */
	bool aug_z;	 /* FDEs carry augmentation data */
	bool signal;	 /* 'S': the frames are signal frames */
	bool init_ok;	 /* the initial instructions ran */
	struct cfi_state init;
};

struct cfi_fde {
	uint64_t lo, hi; /* the code covered: [lo, hi) */
	const uint8_t *insn;
	uint64_t insn_vaddr; /* where insn[0] is loaded (DW_CFA_set_loc's pcrel base) */
	uint32_t insn_len;
	uint32_t cie;  /* index in cfi_list.cies */
	uint8_t order; /* a tie-break for the caller's sort (which section first) */
};

struct cfi_counts {
	uint32_t cies, fdes;  /* entries read */
	uint32_t bad_entries; /* CIEs and FDEs that do not parse: no range known */
	uint32_t fdes_empty;  /* FDEs covering no byte */
};

struct cfi_list {
	struct cfi_cie *cies;
	size_t ncies, cies_cap;
	struct cfi_fde *fdes;
	size_t nfdes, fdes_cap;
	struct cfi_counts counts;
};

/* Reads every CIE and FDE of a section and appends them to list (FDEs of
 * an empty range are counted, not kept). order is copied into each FDE.
 * 0, -ENOMEM, or -E2BIG past CFI_MAX_CIES or CFI_MAX_FDES. */
int cfi_scan(const struct cfi_section *sec, uint8_t order, struct cfi_list *list);
void cfi_list_free(struct cfi_list *list);

/* Runs an FDE's program from its CIE's initial state. emit(arg, lo, hi,
 * state) is called once per row, in address order, for the parts of
 * [fde->lo, fde->hi) the rows cover; it returns 0, or a negative errno
 * that stops the run and is returned. -EINVAL: the CIE's initial
 * instructions or the program are malformed (rows emitted before the error
 * are the caller's to discard). */
int cfi_run(const struct cfi_cie *cie, const struct cfi_fde *fde,
	    int (*emit)(void *arg, uint64_t lo, uint64_t hi, const struct cfi_state *s), void *arg);

#endif
