/* libFuzzer target: the unwind table builder reads files the target
 * controls (its executable and libraries). The first byte picks what the
 * rest is: bit 0 clear, a whole ELF file (elf_memory); set, one CFI
 * section alone: bit 1 says .debug_frame (else .eh_frame), then the
 * section's load address (u32, little-endian), then its bytes. Whatever
 * the input, the builder must return without a crash, a leak or an
 * out-of-bounds access, and a table it returns must be sorted, end with a
 * NONE row, merge equal neighbours and answer every lookup with its row. */
#include <gelf.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "unwind/table.h"

static void check(const struct unwind_table *t)
{
	if (!t->n)
		return;
	if (t->n > UNWIND_MAX_ROWS || unwind_row_kind(&t->rows[t->n - 1]) != UNWIND_NONE)
		abort();
	for (uint32_t i = 0; i < t->n; i++) {
		const struct unwind_row *r = &t->rows[i];

		if (unwind_row_kind(r) >= UNWIND_KIND_COUNT)
			abort();
		if (i && (r->start <= r[-1].start || r->rule == r[-1].rule))
			abort();
		if (unwind_table_find(t, t->base + r->start) != r)
			abort();
		if (unwind_row_end(t, r) - 1 != r->start &&
		    unwind_table_find(t, t->base + unwind_row_end(t, r) - 1) != r)
			abort();
	}
	if (t->rows[0].start && t->base + t->rows[0].start - 1 >= t->base &&
	    unwind_table_find(t, t->base + t->rows[0].start - 1))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct unwind_table t;
	uint8_t *copy;

	if (size < 1)
		return 0;
	if (data[0] & 1) {
		uint32_t vaddr = 0;

		if (size < 5)
			return 0;
		for (int i = 0; i < 4; i++)
			vaddr |= (uint32_t)data[1 + i] << (8 * i);
		if (!unwind_table_build_cfi(data + 5, size - 5, vaddr, !(data[0] & 2), 0, &t)) {
			check(&t);
			unwind_table_free(&t);
		}
		return 0;
	}
	/* elf_memory wants writable bytes */
	copy = malloc(size - 1 ? size - 1 : 1);
	if (!copy)
		return 0;
	memcpy(copy, data + 1, size - 1);
	elf_version(EV_CURRENT);
	Elf *elf = elf_memory((char *)copy, size - 1);
	if (elf) {
		if (elf_kind(elf) == ELF_K_ELF && !unwind_table_build_elf(elf, &t)) {
			check(&t);
			unwind_table_free(&t);
		}
		elf_end(elf);
	}
	free(copy);
	return 0;
}
