/* util/hash: the u64 map against a plain array kept beside it through
 * random puts and removes (removal's backward shift is the subtle part),
 * and the hash index with a caller's equality. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/hash.h"

#define KEYS 5000

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void test_u64_map_matches_a_reference(void **state)
{
	static uint64_t keys[KEYS], vals[KEYS];
	static bool present[KEYS];
	struct u64_map m;
	size_t live = 0;

	assert_int_equal(u64_map_init(&m, sizeof(uint64_t)), 0);
	for (int i = 0; i < KEYS; i++)
		/* few distinct low bits, as addresses have: clusters in the table */
		keys[i] = 0x7f0000000000ull + (uint64_t)(i / 7) * 0x1000 + (uint64_t)(i % 7) * 16;
	for (int round = 0; round < 200000; round++) {
		int i = (int)(next() % KEYS);
		bool added;

		if (next() % 3) {
			uint64_t *v = u64_map_put(&m, keys[i], &added);

			assert_non_null(v);
			assert_int_equal(added, !present[i]);
			if (added) {
				*v = vals[i] = next();
				present[i] = true;
				live++;
			} else {
				assert_int_equal(*v, vals[i]);
			}
		} else {
			u64_map_remove(&m, keys[i]);
			live -= present[i];
			present[i] = false;
		}
		if (round % 10000 == 0)
			for (int j = 0; j < KEYS; j++) {
				uint64_t *v = u64_map_get(&m, keys[j]);

				assert_int_equal(v != NULL, present[j]);
				if (v)
					assert_int_equal(*v, vals[j]);
			}
		assert_int_equal(m.n, live);
	}
	assert_null(u64_map_get(&m, 0)); /* 0 is never a key */
	assert_null(u64_map_put(&m, 0, &(bool){false}));
	u64_map_free(&m);
}

static const char *const words[] = {"alpha", "beta", "gamma", "delta", "alpha2", "beta"};

static bool word_eq(const void *ctx, uint32_t entry, const void *key)
{
	return !strcmp(((const char *const *)ctx)[entry], key);
}

static void test_hash_index_with_equality(void **state)
{
	struct hash_index x = {0};
	const char *table[8];
	uint32_t n = 0;

	for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
		uint64_t h = 42; /* every entry collides: equality decides */
		size_t pos;
		int64_t found;

		assert_int_equal(hash_index_reserve(&x), 0);
		found = hash_index_find(&x, h, word_eq, table, words[w], &pos);
		if (w == 5) {
			assert_int_equal(found, 1); /* "beta" again */
			continue;
		}
		assert_int_equal(found, -1);
		table[n] = words[w];
		hash_index_put(&x, pos, h, n++);
	}
	assert_int_equal(x.n, 5);
	assert_true(hash_str("alpha") != hash_str("alpha2"));
	assert_true(hash_u64(1) != hash_u64(2));
	hash_index_free(&x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_u64_map_matches_a_reference),
	    cmocka_unit_test(test_hash_index_with_equality),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
