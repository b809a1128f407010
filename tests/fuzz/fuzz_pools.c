/* libFuzzer target: pymalloc's pools are bytes in the target's memory, which
 * the tracer reads as root to decide which marked blocks are free
 * (python/pools.c). Each input is:
 *
 *   mode (u8), nblocks (u8), blocks {offset u16, size u16, pool_bits u8}...,
 *   the memory at BASE (up to 16 KiB; a read past it finds nothing mapped)
 *
 * mode 1 makes every read find no memory at all (an exiting process). None
 * of it may crash, read out of bounds or loop without end; a block is
 * never both free and unknown, and the count returned is the free ones. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "python/pools.h"
#include "target.h"

#define BASE 0x7f0000000000ull
#define MAX_BLOCKS 32

static const uint8_t *memory;
static size_t memory_len;
static int mode;

int target_mem_read(struct target_mem *m, uint64_t addr, void *buf, size_t len)
{
	(void)m;
	if (mode == 1)
		return -ESRCH;
	if (addr < BASE || addr - BASE > memory_len || len > memory_len - (addr - BASE))
		return -EIO;
	memcpy(buf, memory + (addr - BASE), len);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pymalloc_block blocks[MAX_BLOCKS];
	struct target_mem mem = {.pid = 1, .fd = -1, .wfd = -1};
	size_t n, at = 2;
	long nfree, counted = 0;

	if (size < 2)
		return 0;
	mode = data[0] & 1;
	n = data[1] % (MAX_BLOCKS + 1);
	if (size < at + 5 * n)
		return 0;
	for (size_t i = 0; i < n; i++, at += 5) {
		uint16_t off, sz;

		memcpy(&off, data + at, 2);
		memcpy(&sz, data + at + 2, 2);
		blocks[i] = (struct pymalloc_block){
		    .addr = BASE + off, .size = sz % 600, .pool_bits = 10 + data[at + 4] % 6,
		    .tag = (uint32_t)i};
	}
	memory = data + at;
	memory_len = size - at;
	nfree = pymalloc_find_free(&mem, blocks, n);
	for (size_t i = 0; i < n; i++) {
		if (blocks[i].free && blocks[i].unknown)
			abort();
		counted += blocks[i].free;
	}
	if (nfree >= 0 ? nfree != counted : (nfree != -ESRCH || counted))
		abort();
	return 0;
}
