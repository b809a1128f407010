#include <stdlib.h>
#include <string.h>

#include "python/pools.h"

#define ALIGNMENT 16	/* pymalloc's, on 64-bit 3.8-3.14 */
#define NCLASSES 32	/* size classes: 512 / ALIGNMENT */
#define POOL_OVERHEAD 48 /* the header, rounded up to ALIGNMENT */
#define LARGE_POOL 16384 /* 3.10+ (USE_LARGE_POOLS) */
#define SMALL_POOL 4096	 /* 3.8, 3.9 */

/* struct pool_header (Objects/obmalloc.c, Include/internal/pycore_obmalloc.h) */
struct pool_header {
	uint32_t count; /* blocks in use (a union with a pointer: 8 bytes) */
	uint32_t pad;
	uint64_t freeblock;
	uint64_t nextpool, prevpool;
	uint32_t arenaindex, szidx, nextoffset, maxnextoffset;
};
_Static_assert(sizeof(struct pool_header) == POOL_OVERHEAD, "the pool header's layout");

/* One pool read: its address and size, and its bytes (the header first). */
struct pool {
	uint64_t addr;
	uint32_t size;	/* 0: none could be made out */
	bool gone;	/* nothing readable where it would be */
	uint8_t *bytes; /* read once a block needs its free list */
	struct pool_header h;
};

static bool header_valid(const struct pool_header *h, uint32_t pool_size)
{
	uint32_t bs;

	if (h->szidx >= NCLASSES)
		return false;
	bs = (h->szidx + 1) * ALIGNMENT;
	/* set when the pool is set up for its class, never changed after */
	return h->maxnextoffset == pool_size - bs && h->nextoffset <= pool_size &&
	       h->count <= (pool_size - POOL_OVERHEAD) / bs;
}

/* The pool holding addr: a large pool's header if one is there, else a
 * small one's. */
static void pool_find(struct target_mem *mem, uint64_t addr, struct pool *p)
{
	static const uint32_t sizes[] = {LARGE_POOL, SMALL_POOL};
	bool readable = false;

	free(p->bytes);
	memset(p, 0, sizeof(*p));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t base = addr & ~(uint64_t)(sizes[i] - 1);

		if (target_mem_read(mem, base, &p->h, sizeof(p->h)))
			continue;
		readable = true;
		if (header_valid(&p->h, sizes[i])) {
			p->addr = base;
			p->size = sizes[i];
			return;
		}
	}
	p->addr = addr & ~(uint64_t)(LARGE_POOL - 1);
	p->gone = !readable; /* its arena given back */
}

/* Whether block b is on the pool's free list (the list bounded by the
 * blocks a pool holds; a link out of the pool ends it). */
static bool on_free_list(struct target_mem *mem, struct pool *p, uint64_t b, bool *unknown)
{
	uint64_t at = p->h.freeblock;
	uint32_t bs = (p->h.szidx + 1) * ALIGNMENT;

	if (!p->bytes) {
		p->bytes = malloc(p->size);
		if (!p->bytes || target_mem_read(mem, p->addr, p->bytes, p->size)) {
			free(p->bytes);
			p->bytes = NULL;
			*unknown = true;
			return false;
		}
	}
	for (uint32_t steps = 0; at && steps <= p->size / ALIGNMENT; steps++) {
		uint64_t off = at - p->addr;

		if (at < p->addr || off < POOL_OVERHEAD || off > p->size - bs ||
		    (off - POOL_OVERHEAD) % bs)
			return false;
		if (at == b)
			return true;
		memcpy(&at, p->bytes + off, sizeof(at));
	}
	return false;
}

static bool block_free(struct target_mem *mem, struct pool *p, const struct pymalloc_block *b)
{
	uint64_t off = b->addr - p->addr;
	uint32_t bs;
	bool unknown = false, listed;

	if (p->gone)
		return true;
	if (!p->size)
		return false; /* not a pool we can read: left as it is */
	if (p->h.count == 0)
		return true; /* the pool is empty */
	if (b->size == 0 || p->h.szidx != (b->size - 1) / ALIGNMENT)
		return true; /* set up since for another size class */
	bs = (p->h.szidx + 1) * ALIGNMENT;
	if (off < POOL_OVERHEAD || (off - POOL_OVERHEAD) % bs)
		return false; /* not a block of this pool */
	if (off >= p->h.nextoffset)
		return true; /* not handed out since the pool was set up */
	listed = on_free_list(mem, p, b->addr, &unknown);
	return listed && !unknown;
}

static int by_addr(const void *a, const void *b)
{
	const struct pymalloc_block *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

size_t pymalloc_find_free(struct target_mem *mem, struct pymalloc_block *blocks, size_t n)
{
	struct pool p = {0};
	bool have = false;
	size_t nfree = 0;

	qsort(blocks, n, sizeof(*blocks), by_addr);
	for (size_t i = 0; i < n; i++) {
		struct pymalloc_block *b = &blocks[i];

		if (!have || b->addr < p.addr || b->addr >= p.addr + (p.size ? p.size : SMALL_POOL) ||
		    (!p.size && !p.gone)) {
			pool_find(mem, b->addr, &p);
			have = true;
		}
		b->free = block_free(mem, &p, b);
		nfree += b->free;
	}
	free(p.bytes);
	return nfree;
}
