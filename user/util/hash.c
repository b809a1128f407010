#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/hash.h"

uint64_t hash_mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdull;
}

uint64_t hash_u64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static int index_grow(struct hash_index *x)
{
	size_t cap = x->cap ? x->cap * 2 : 256, i;
	uint64_t *hash = calloc(cap, sizeof(*hash));
	uint32_t *slot = calloc(cap, sizeof(*slot));

	if (!hash || !slot) {
		free(hash);
		free(slot);
		return -ENOMEM;
	}
	for (i = 0; i < x->cap; i++) {
		size_t j;

		if (!x->slot[i])
			continue;
		for (j = x->hash[i] & (cap - 1); slot[j]; j = (j + 1) & (cap - 1))
			;
		hash[j] = x->hash[i];
		slot[j] = x->slot[i];
	}
	free(x->hash);
	free(x->slot);
	x->hash = hash;
	x->slot = slot;
	x->cap = cap;
	return 0;
}

int64_t hash_index_find(const struct hash_index *x, uint64_t h, hash_eq eq, const void *ctx,
			const void *key, size_t *pos)
{
	size_t j;

	for (j = h & (x->cap - 1); x->slot[j]; j = (j + 1) & (x->cap - 1))
		if (x->hash[j] == h && eq(ctx, x->slot[j] - 1, key))
			return x->slot[j] - 1;
	*pos = j;
	return -1;
}

int hash_index_reserve(struct hash_index *x)
{
	return (x->n + 1) * 4 >= x->cap * 3 ? index_grow(x) : 0;
}

void hash_index_put(struct hash_index *x, size_t pos, uint64_t h, uint32_t entry)
{
	x->hash[pos] = h;
	x->slot[pos] = entry + 1;
	x->n++;
}

void hash_index_free(struct hash_index *x)
{
	free(x->hash);
	free(x->slot);
	memset(x, 0, sizeof(*x));
}

int u64_map_init(struct u64_map *m, size_t val_size)
{
	memset(m, 0, sizeof(*m));
	m->val_size = val_size;
	m->cap = 64;
	m->keys = calloc(m->cap, sizeof(*m->keys));
	m->vals = calloc(m->cap, val_size);
	if (!m->keys || !m->vals) {
		u64_map_free(m);
		return -ENOMEM;
	}
	return 0;
}

void u64_map_free(struct u64_map *m)
{
	free(m->keys);
	free(m->vals);
	m->keys = NULL;
	m->vals = NULL;
	m->cap = m->n = 0;
}

static size_t map_slot(const struct u64_map *m, uint64_t key)
{
	size_t i = hash_u64(key) & (m->cap - 1);

	while (m->keys[i] && m->keys[i] != key)
		i = (i + 1) & (m->cap - 1);
	return i;
}

void *u64_map_get(const struct u64_map *m, uint64_t key)
{
	size_t i;

	if (!key || !m->cap)
		return NULL;
	i = map_slot(m, key);
	return m->keys[i] ? u64_map_value_at(m, i) : NULL;
}

static int map_grow(struct u64_map *m)
{
	struct u64_map old = *m;
	size_t i;

	m->cap = old.cap * 2;
	m->keys = calloc(m->cap, sizeof(*m->keys));
	m->vals = calloc(m->cap, m->val_size);
	if (!m->keys || !m->vals) {
		free(m->keys);
		free(m->vals);
		*m = old;
		return -ENOMEM;
	}
	for (i = 0; i < old.cap; i++) {
		size_t j;

		if (!old.keys[i])
			continue;
		j = map_slot(m, old.keys[i]);
		m->keys[j] = old.keys[i];
		memcpy(u64_map_value_at(m, j), u64_map_value_at(&old, i), m->val_size);
	}
	free(old.keys);
	free(old.vals);
	return 0;
}

void *u64_map_put(struct u64_map *m, uint64_t key, bool *added)
{
	size_t i;

	*added = false;
	if (!key || !m->cap)
		return NULL;
	i = map_slot(m, key);
	if (m->keys[i])
		return u64_map_value_at(m, i);
	if ((m->n + 1) * 2 > m->cap) {
		if (map_grow(m))
			return NULL;
		i = map_slot(m, key);
	}
	m->keys[i] = key;
	memset(u64_map_value_at(m, i), 0, m->val_size);
	m->n++;
	*added = true;
	return u64_map_value_at(m, i);
}

void u64_map_remove(struct u64_map *m, uint64_t key)
{
	size_t i, j, home;

	if (!key || !m->cap)
		return;
	i = map_slot(m, key);
	if (!m->keys[i])
		return;
	m->keys[i] = 0;
	m->n--;
	/* backward shift: an entry later in the run moves into the hole unless
	 * its home lies cyclically in (hole, its slot] */
	for (j = (i + 1) & (m->cap - 1); m->keys[j]; j = (j + 1) & (m->cap - 1)) {
		home = hash_u64(m->keys[j]) & (m->cap - 1);
		if (((j - home) & (m->cap - 1)) < ((j - i) & (m->cap - 1)))
			continue;
		m->keys[i] = m->keys[j];
		memcpy(u64_map_value_at(m, i), u64_map_value_at(m, j), m->val_size);
		m->keys[j] = 0;
		i = j;
	}
}
