/* libFuzzer target: CPython's code objects and line tables are bytes in the
 * target's memory, which the tracer reads as root. Each input is one of:
 *
 *   0, minor, firstlineno (i32), instr (i64), table...
 *       a line table of that version's format (lnotab, 3.10's linetable,
 *       the 3.11+ location table) and an instruction to look up;
 *   1, minor, code (u64), code_type (u64), instr (i64), regions...
 *       a process's memory as regions {addr u64, len u32, bytes[len]}
 *       (seed_pycode.py dumps real code objects, their str and bytes
 *       objects), in which the code object at code is resolved as the
 *       frame walker would ask, then the cache revalidated.
 *
 * None of it may crash, read out of bounds, overflow or leak; the names
 * given back must be NUL-terminated, no longer than read_str allows. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "python/code.h"
#include "python/layout.h"
#include "target.h"

#define MAX_REGIONS 64

struct region {
	uint64_t addr;
	uint32_t len;
	const uint8_t *bytes;
};

static struct region regions[MAX_REGIONS];
static size_t nregions;

/* The process's memory, as the input gives it: a read must lie within one
 * region. */
int target_mem_read(struct target_mem *m, uint64_t addr, void *buf, size_t len)
{
	for (size_t i = 0; i < nregions; i++) {
		const struct region *r = &regions[i];

		if (addr >= r->addr && addr - r->addr <= r->len && len <= r->len - (addr - r->addr)) {
			memcpy(buf, r->bytes + (addr - r->addr), len);
			return 0;
		}
	}
	return -EIO;
}

static uint64_t get(const uint8_t **p, const uint8_t *end, size_t n)
{
	uint64_t v = 0;

	if ((size_t)(end - *p) < n) {
		*p = end;
		return 0;
	}
	memcpy(&v, *p, n);
	*p += n;
	return v;
}

/* A name the cache gave back: terminated within the 4 bytes of each of
 * read_str's 4096 code points at most (a lone surrogate, which a str may
 * hold, is encoded as it is: the reports escape it). */
static void check_name(const char *s)
{
	if (strnlen(s, 4 * 4096 + 1) > 4 * 4096)
		abort();
}

static void one_table(int minor, const uint8_t *p, const uint8_t *end)
{
	int32_t first = (int32_t)get(&p, end, 4);
	int64_t instr = (int64_t)get(&p, end, 8);
	int line = python_code_line(minor, p, (size_t)(end - p), first, instr);

	/* a line is the first line moved by the table's deltas, or -1 */
	(void)line;
}

static void one_code(int minor, const uint8_t *p, const uint8_t *end)
{
	const struct python_layout *l = python_layout_for(minor);
	struct target_mem mem = {.pid = 1, .fd = -1, .wfd = -1};
	struct python_target t = {.major = 3, .minor = minor, .mem = &mem};
	uint64_t code = get(&p, end, 8), ident = 0, co_filename, co_name;
	int64_t instr;
	struct python_code *c;
	uint8_t obj[160];

	t.code_type = get(&p, end, 8);
	instr = (int64_t)get(&p, end, 8);
	nregions = 0;
	while (end - p >= 12 && nregions < MAX_REGIONS) {
		struct region *r = &regions[nregions++];

		r->addr = get(&p, end, 8);
		r->len = (uint32_t)get(&p, end, 4);
		if (r->len > (size_t)(end - p))
			r->len = (uint32_t)(end - p);
		r->bytes = p;
		p += r->len;
	}
	if (!l || python_code_open(&t, &c))
		return;
	/* the identity the walker captures: co_filename ^ co_name << 1 */
	if (!target_mem_read(&mem, code, obj, sizeof(obj))) {
		memcpy(&co_filename, obj + l->code.filename, 8);
		memcpy(&co_name, obj + l->code.filename + 8, 8);
		ident = co_filename ^ (co_name << 1);
	}
	for (int pass = 0; pass < 2; pass++) {
		const char *filename, *function;
		uint32_t lineno;

		if (!python_code_frame(c, code, instr, ident, &filename, &lineno, &function)) {
			check_name(filename);
			check_name(function);
		}
		python_code_frame(c, code, instr, ident ^ 1, &filename, &lineno, &function);
		python_code_revalidate(c);
	}
	python_code_close(c);
	nregions = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *end = data + size;

	if (size < 2)
		return 0;
	if (data[0] & 1)
		one_code(data[1], data + 2, end);
	else
		one_table(data[1], data + 2, end);
	return 0;
}
