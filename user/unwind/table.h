/* Compact unwind tables: a mapped file's CFI (.eh_frame, .debug_frame)
 * turned into sorted 8-byte rows a BPF walker can binary-search, the way
 * Parca's agent and the OpenTelemetry eBPF profiler unwind code built
 * without frame pointers (Debian's libc, python3, sqlite3, redis, clang).
 *
 * What a row says, for x86-64 and every pc in [row.start, next row.start):
 *
 *   kind CFA_RSP   CFA = rsp + cfa_off
 *   kind CFA_RBP   CFA = rbp + cfa_off
 *   kind PLT       CFA = rsp + 8, plus 8 when (pc & 15) >= cfa_off: a lazy
 *                  PLT entry (16 bytes) has pushed its index from that byte
 *                  on (11 in GNU ld's and lld's entries, 9 with IBT's
 *                  endbr64, 5 in MPX's). GCC and ld give .plt this DWARF
 *                  expression; Parca and otel special-case it the same way.
 *   kind STOP      the return address is undefined: the outermost frame
 *                  (_start, a thread's start routine); the stack ends here
 *   kind CANNOT    CFI exists but says something else (a CFA in another
 *                  register or from an expression, a return address not at
 *                  CFA-8, a signal frame, a malformed program): cfa_off
 *                  holds the reason, enum unwind_why. Counted, per reason.
 *   kind NONE      no CFI covers the address (between functions, code with
 *                  no CFI); the last row of a table is NONE.
 *
 * For CFA_RSP, CFA_RBP and PLT the return address is at CFA - 8 (checked:
 * x86-64's return address rule is offset(-8); any other rule is CANNOT) and
 * the caller's rbp is: unchanged (RBP_SAME), saved at CFA + rbp_off
 * (RBP_AT_CFA), or unknown (RBP_LOST: a rule this encoding does not hold;
 * the frame unwinds, but a caller that needs rbp cannot).
 *
 * Encoding: struct unwind_row { u32 start; u32 rule; }, start the offset
 * of the first byte from the table's base (the link-time address of the
 * file's first PT_LOAD, page-aligned down: 0 for PIE and DSOs). rule:
 *
 *   bits  0-2   kind (enum unwind_kind)
 *   bits  3-4   rbp rule (enum unwind_rbp)
 *   bits  5-10  rbp_off / 8, signed (-256 ... +248 bytes)
 *   bits 11-31  cfa_off, unsigned (0 ... 2 MiB - 1), or the PLT threshold,
 *               or the CANNOT reason
 *
 * A CFA offset or rbp slot outside those ranges is CANNOT (CFA_RANGE) or
 * RBP_LOST. Measured maxima: 181312 bytes of CFA offset (libLLVM-14),
 * rbp at CFA-56. Adjacent rows with the same rule are merged.
 *
 * The BPF walker (bpf/unwind.bpf.h) uses them so: per frame, the row of
 * pc (for frames above the first, of pc - 1: a return address may be the
 * first byte of the next function after a noreturn call); CFA from rsp or
 * rbp (or the PLT rule); return address = *(CFA - 8); rbp = unchanged, or
 * *(CFA + rbp_off), or unknown; rsp = CFA; pc = return address.
 * user/unwind/maps.c puts every file's rows into its maps. Not handled yet:
 * signal frames (glibc's __restore_rt) and the CFA = *(rbp - 8) form of
 * stack-realigning functions (CANNOT rows, counted by reason).
 *
 * Bounds (the target controls its files): at most 4 Mi rows
 * (UNWIND_MAX_ROWS, 32 MiB) and 4 Mi FDEs per file, and 64 Ki CIEs per
 * section (else -E2BIG, nothing built); DW_CFA_remember_state nests 64
 * deep at most (deeper: that FDE is BAD_CFI); each CFI program runs once,
 * front to back, in a fixed-size state (user/unwind/cfi.h says why not
 * libdw's dwarf_cfi_addrframe), so time is linear in the sections' sizes,
 * which libelf bounds by the file's; code beyond base + 4 GiB is counted
 * and left out. Measured on this machine: libc 28274 rows in 1 ms,
 * python3.11 64575 in 3 ms, libLLVM-14 948864 (7.4 MiB) in 30 ms. */
#ifndef TRACER_UNWIND_TABLE_H
#define TRACER_UNWIND_TABLE_H

#include <gelf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* the row encoding, shared with the BPF walker */
#include "tracer.h"

#define UNWIND_MAX_ROWS (4u << 20)

/* Why a row is CANNOT */
enum unwind_why {
	UNWIND_WHY_CFA_REG,    /* CFA from a register other than rsp and rbp */
	UNWIND_WHY_CFA_EXPR,   /* CFA from a DWARF expression other than the PLT's */
	UNWIND_WHY_CFA_UNDEF,  /* no CFA rule */
	UNWIND_WHY_CFA_RANGE,  /* a CFA offset outside 0 ... 2 MiB */
	UNWIND_WHY_RA,	       /* the return address is not at CFA-8 */
	UNWIND_WHY_SIGNAL,     /* a signal frame ('S' augmentation) */
	UNWIND_WHY_BAD_CFI,    /* the CIE or the FDE's program does not parse */
	UNWIND_WHY_PLT_LAYOUT, /* a PLT section without CFI, of an unknown layout */
	UNWIND_WHY_COUNT
};

static inline unsigned unwind_row_kind(const struct unwind_row *r)
{
	return unwind_rule_kind(r->rule);
}

static inline unsigned unwind_row_rbp(const struct unwind_row *r)
{
	return unwind_rule_rbp(r->rule);
}

static inline int unwind_row_rbp_off(const struct unwind_row *r)
{
	return unwind_rule_rbp_off(r->rule);
}

static inline uint32_t unwind_row_cfa_off(const struct unwind_row *r)
{
	return unwind_rule_cfa_off(r->rule);
}

/* What was read and what came of it. Each FDE read either gave rows (a
 * malformed program: one CANNOT row) or is in one of bad_entries (which
 * counts CIEs too), fdes_empty, fdes_outside and fdes_overlap. */
struct unwind_stats {
	uint32_t cies, fdes;		   /* entries read from the CFI sections */
	uint32_t bad_entries;		   /* CIEs and FDEs that do not parse (no range known) */
	uint32_t fdes_empty;		   /* FDEs covering no byte */
	uint32_t fdes_outside;		   /* FDEs outside [base, base + 4 GiB) */
	uint32_t fdes_overlap;		   /* FDEs starting inside an earlier one: left out */
	uint32_t plt_synthesized;	   /* PLT sections without CFI given rows */
	uint32_t rows[UNWIND_KIND_COUNT];  /* the table's rows, by kind */
	uint64_t bytes[UNWIND_KIND_COUNT]; /* code bytes they cover (not the last NONE) */
	uint32_t cannot[UNWIND_WHY_COUNT]; /* CANNOT rows by reason */
	uint64_t cannot_bytes[UNWIND_WHY_COUNT];
	uint32_t rbp_lost;	    /* rows whose caller's rbp is unknown */
	bool eh_frame, debug_frame; /* which sections were read */
};

struct unwind_table {
	uint64_t base; /* the link-time address row offsets count from */
	uint32_t n;
	struct unwind_row *rows; /* sorted by start, ends with a NONE row */
	struct unwind_stats stats;
};

/* Builds the table of the ELF file at path (read with ELF_C_READ, not
 * mapped: a file the target truncates cannot fault the tracer). 0, or
 * -errno: -ENOEXEC not a 64-bit little-endian x86-64 executable or shared
 * object, -ENOENT no .eh_frame or .debug_frame, -E2BIG over the bounds,
 * -ENOMEM, or open's error. *out is empty on failure. */
int unwind_table_build(const char *path, struct unwind_table *out);

/* The same for an Elf the caller owns (elf_memory for bytes in memory). */
int unwind_table_build_elf(Elf *elf, struct unwind_table *out);

/* The same for one section's bytes: an .eh_frame (eh) or .debug_frame
 * loaded at vaddr, rows relative to base. For tests and the fuzzer. */
int unwind_table_build_cfi(const void *data, size_t size, uint64_t vaddr, bool eh, uint64_t base,
			   struct unwind_table *out);

void unwind_table_free(struct unwind_table *t);

/* The sizes of the functions at the link-time addresses vaddrs[0..n) of the
 * ELF file at path, from the .eh_frame FDEs that start there (a stripped
 * binary has no symbol to give them): sizes[i] is 0 where no FDE starts at
 * vaddrs[i]. 0, or the errors of unwind_table_build. */
int unwind_function_sizes(const char *path, const uint64_t *vaddrs, uint64_t *sizes, size_t n);

/* The row that covers the link-time address vaddr, or NULL when vaddr is
 * before the first row or outside the 4 GiB the table can cover. After
 * the last row's start the answer is that NONE row. Its end is the next
 * row's start (unwind_row_end). */
const struct unwind_row *unwind_table_find(const struct unwind_table *t, uint64_t vaddr);

/* The end of a row's range as an offset: the next row's start, or 2^32. */
uint64_t unwind_row_end(const struct unwind_table *t, const struct unwind_row *r);

const char *unwind_kind_name(unsigned kind);
const char *unwind_why_name(unsigned why);

#endif
