/* The hash tables of user space, in two shapes:
 *
 * - hash_index: 64-bit hash -> entry number of an array the caller owns,
 *   with the caller's equality; for content keys (interned strings, frames,
 *   tracebacks, a traceback cache keyed by several fields).
 * - u64_map: nonzero 64-bit key -> a fixed-size value stored in the table;
 *   for address-keyed caches (code objects, return addresses, stacks), with
 *   removal. A value pointer is valid until the next put or remove.
 *
 * Both are open-addressing with linear probing and power-of-two capacity;
 * nothing here knows of BPF. */
#ifndef TRACER_HASH_H
#define TRACER_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Hashing: a 64-bit step (boost's combine, then a multiply), a finalizer
 * (murmur3's, for keys with few changing bits such as addresses), FNV-1a. */
uint64_t hash_mix(uint64_t h, uint64_t v);
uint64_t hash_u64(uint64_t key);
uint64_t hash_str(const char *s);

struct hash_index {
	uint64_t *hash;
	uint32_t *slot; /* entry number + 1; 0: empty */
	size_t cap, n;
};

typedef bool (*hash_eq)(const void *ctx, uint32_t entry, const void *key);

/* The entry equal to key among those with hash h, or -1 with *pos set to
 * the free slot where it would go (for hash_index_put). The index must have
 * been reserved (capacity is never 0 after hash_index_reserve). */
int64_t hash_index_find(const struct hash_index *x, uint64_t h, hash_eq eq, const void *ctx,
			const void *key, size_t *pos);
/* Room for one more entry; call before find when a put may follow.
 * Returns 0 or -ENOMEM. */
int hash_index_reserve(struct hash_index *x);
void hash_index_put(struct hash_index *x, size_t pos, uint64_t h, uint32_t entry);
void hash_index_free(struct hash_index *x);

struct u64_map {
	uint64_t *keys; /* 0: empty */
	unsigned char *vals;
	size_t val_size, cap, n;
};

/* An empty map of values of val_size bytes. Returns 0 or -ENOMEM. */
int u64_map_init(struct u64_map *m, size_t val_size);
void u64_map_free(struct u64_map *m);
/* The value of key, or NULL. */
void *u64_map_get(const struct u64_map *m, uint64_t key);
/* The value of key, added zeroed if absent (*added says which); NULL when
 * out of memory or key is 0. */
void *u64_map_put(struct u64_map *m, uint64_t key, bool *added);
/* Removes key if present; the later entries of its run move up. */
void u64_map_remove(struct u64_map *m, uint64_t key);
/* Iteration: for (size_t i = 0; i < m->cap; i++) if (m->keys[i]) ... with
 * u64_map_value_at(m, i); removing during it may move an unvisited entry
 * to a visited slot, so collect keys first. */
static inline void *u64_map_value_at(const struct u64_map *m, size_t i)
{
	return m->vals + i * m->val_size;
}

#endif
