#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "python/pools.h"

#define ALIGNMENT 16	 /* pymalloc's, on 64-bit 3.8-3.14 */
#define NCLASSES 32	 /* size classes: 512 / ALIGNMENT */
#define POOL_OVERHEAD 48 /* the header, rounded up to ALIGNMENT */
#define MAX_POOL_BITS 14

/* struct pool_header (Objects/obmalloc.c, Include/internal/pycore_obmalloc.h) */
struct pool_header {
	uint32_t count; /* blocks in use (a union with a pointer: 8 bytes) */
	uint32_t pad;
	uint64_t freeblock;
	uint64_t nextpool, prevpool;
	uint32_t arenaindex, szidx, nextoffset, maxnextoffset;
};
_Static_assert(sizeof(struct pool_header) == POOL_OVERHEAD, "the pool header's layout");

#define MAX_BLOCKS (((1u << MAX_POOL_BITS) - POOL_OVERHEAD) / ALIGNMENT)

enum pool_state {
	POOL_READ,    /* bytes and header consistent */
	POOL_GONE,    /* nothing mapped there */
	POOL_UNKNOWN, /* unreadable otherwise, or not a pool we make out */
};

/* One pool read whole, at one moment, and its free list walked once. */
struct pool {
	uint64_t addr;
	uint32_t size;
	enum pool_state state;
	struct pool_header h;
	uint32_t bs;			      /* its block size */
	bool list_ok;			      /* its free list ends where the header says */
	uint8_t listed[(MAX_BLOCKS + 7) / 8]; /* blocks on the free list, by index */
	uint8_t bytes[1u << MAX_POOL_BITS];   /* the pool, header first */
};

/* The header as pymalloc leaves it: set up for its class (maxnextoffset
 * never changes after), blocks carved up to nextoffset, at most that many
 * in use, its free list's head one of the carved blocks or none. */
static bool header_valid(const struct pool *p)
{
	const struct pool_header *h = &p->h;
	uint32_t bs;

	if (h->szidx >= NCLASSES)
		return false;
	bs = (h->szidx + 1) * ALIGNMENT;
	if (h->maxnextoffset != p->size - bs || h->nextoffset > p->size ||
	    h->nextoffset < POOL_OVERHEAD + 2 * bs || (h->nextoffset - POOL_OVERHEAD) % bs ||
	    h->count > (h->nextoffset - POOL_OVERHEAD) / bs)
		return false;
	if (h->freeblock) {
		uint64_t off = h->freeblock - p->addr;

		if (h->freeblock < p->addr || off < POOL_OVERHEAD || off >= h->nextoffset ||
		    (off - POOL_OVERHEAD) % bs)
			return false;
	}
	return true;
}

/* The free list walked in full in the pool's bytes, its blocks noted in
 * p->listed: every link a carved block, none twice (bounded by their
 * number), ending in NULL after exactly the carved blocks not in use. */
static bool free_list_walk(struct pool *p)
{
	uint32_t carved = (p->h.nextoffset - POOL_OVERHEAD) / p->bs;
	uint32_t want = carved - p->h.count, seen = 0;
	uint64_t at = p->h.freeblock;

	memset(p->listed, 0, sizeof(p->listed));
	while (at) {
		uint64_t o = at - p->addr;
		uint32_t i;

		if (at < p->addr || o < POOL_OVERHEAD || o >= p->h.nextoffset ||
		    (o - POOL_OVERHEAD) % p->bs || ++seen > want)
			return false;
		i = (uint32_t)(o - POOL_OVERHEAD) / p->bs;
		p->listed[i / 8] |= (uint8_t)(1u << (i % 8));
		memcpy(&at, p->bytes + o, sizeof(at));
	}
	return seen == want;
}

/* The pool of pool_bits holding addr, read whole. */
static int pool_read(struct target_mem *mem, uint64_t addr, uint32_t pool_bits, struct pool *p)
{
	int err;

	p->size = 1u << pool_bits;
	p->addr = addr & ~(uint64_t)(p->size - 1);
	p->state = POOL_UNKNOWN;
	err = target_mem_read(mem, p->addr, p->bytes, p->size);
	if (err == -ESRCH)
		return err;
	if (err) {
		if (err == -EIO)
			p->state = POOL_GONE; /* its arena given back */
		return 0;
	}
	memcpy(&p->h, p->bytes, sizeof(p->h));
	if (!header_valid(p))
		return 0;
	p->bs = (p->h.szidx + 1) * ALIGNMENT;
	p->list_ok = free_list_walk(p);
	p->state = POOL_READ;
	return 0;
}

/* Whether the pool's class can hold a block asked for with size bytes: its
 * own, or a larger one it stayed in when a realloc shrank it in place
 * (pymalloc keeps a block that shrinks to more than 3/4 of its class). */
static bool class_holds(uint32_t bs, uint64_t size)
{
	uint64_t own = ((size - 1) / ALIGNMENT + 1) * ALIGNMENT;

	return size <= bs && (own == bs || 4 * size > 3 * (uint64_t)bs);
}

static void judge(const struct pool *p, struct pymalloc_block *b)
{
	uint64_t off = b->addr - p->addr;
	uint32_t i;

	b->free = b->unknown = false;
	if (p->state == POOL_GONE) {
		b->free = true;
		return;
	}
	if (p->state != POOL_READ || b->size == 0 || b->size > NCLASSES * ALIGNMENT ||
	    off < POOL_OVERHEAD || off >= p->size) {
		b->unknown = true;
		return;
	}
	if (p->h.count == 0 || !class_holds(p->bs, b->size)) {
		b->free = true; /* empty, or set up since for another class */
		return;
	}
	if ((off - POOL_OVERHEAD) % p->bs) {
		b->unknown = true; /* not a block of this pool */
		return;
	}
	if (off >= p->h.nextoffset) {
		b->free = true; /* not handed out since the pool was set up */
		return;
	}
	if (!p->list_ok) {
		b->unknown = true; /* changing as it was read */
		return;
	}
	i = (uint32_t)(off - POOL_OVERHEAD) / p->bs;
	b->free = p->listed[i / 8] >> (i % 8) & 1;
}

static int by_addr(const void *a, const void *b)
{
	const struct pymalloc_block *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

long pymalloc_find_free(struct target_mem *mem, struct pymalloc_block *blocks, size_t n)
{
	struct pool *p = malloc(sizeof(*p));
	bool have = false;
	long nfree = 0;

	if (!p)
		return -ENOMEM;
	qsort(blocks, n, sizeof(*blocks), by_addr);
	for (size_t i = 0; i < n; i++) {
		struct pymalloc_block *b = &blocks[i];
		uint32_t bits = b->pool_bits;

		if (bits < 12 || bits > MAX_POOL_BITS) {
			b->free = false;
			b->unknown = true;
			continue;
		}
		if (!have || p->size != 1u << bits || b->addr < p->addr ||
		    b->addr - p->addr >= p->size) {
			if (pool_read(mem, b->addr, bits, p)) {
				for (size_t k = 0; k < n; k++)
					blocks[k].free = false;
				free(p);
				return -ESRCH;
			}
			have = true;
		}
		judge(p, b);
		nfree += b->free;
	}
	free(p);
	return nfree;
}
