/* Benchmark workload with a realistic allocation mix: a chained hash table of
 * strings is built (malloc for keys and nodes, realloc as the bucket array and
 * some values grow, calloc for the table) and torn down, R rounds of N keys.
 *
 *   bench_mix N [ROUNDS]
 *
 * Prints one line: "bench_mix keys=N rounds=R events=E elapsed_ns=T", E being
 * the allocator calls made (malloc, calloc, realloc, free). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct node {
	struct node *next;
	char *key;
	char *val;
	size_t val_len;
};

struct table {
	struct node **buckets;
	size_t nbuckets;
	size_t count;
};

static unsigned long long events;

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (!p) {
		perror("bench_mix");
		exit(1);
	}
	events++;
	return p;
}

static void *xrealloc(void *old, size_t n)
{
	void *p = realloc(old, n);

	if (!p) {
		perror("bench_mix");
		exit(1);
	}
	events++;
	return p;
}

static void xfree(void *p)
{
	free(p);
	events++;
}

static size_t hash(const char *s)
{
	size_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

/* Doubling the bucket array: a fresh calloc, the old array freed. */
static void grow(struct table *t)
{
	size_t n = t->nbuckets ? 2 * t->nbuckets : 8, i;
	struct node **b = calloc(n, sizeof(*b));

	if (!b) {
		perror("bench_mix");
		exit(1);
	}
	events++;
	for (i = 0; i < t->nbuckets; i++) {
		struct node *e = t->buckets[i], *next;

		for (; e; e = next) {
			size_t h = hash(e->key) & (n - 1);

			next = e->next;
			e->next = b[h];
			b[h] = e;
		}
	}
	if (t->buckets)
		xfree(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

static void put(struct table *t, const char *key, const char *val)
{
	size_t h, len = strlen(val);
	struct node *e;

	if (t->count + 1 > t->nbuckets)
		grow(t);
	h = hash(key) & (t->nbuckets - 1);
	for (e = t->buckets[h]; e; e = e->next) {
		if (!strcmp(e->key, key)) {
			/* Appending to a value: realloc growth. */
			e->val = xrealloc(e->val, e->val_len + len + 1);
			memcpy(e->val + e->val_len, val, len + 1);
			e->val_len += len;
			return;
		}
	}
	e = xmalloc(sizeof(*e));
	e->key = xmalloc(strlen(key) + 1);
	strcpy(e->key, key);
	e->val = xmalloc(len + 1);
	memcpy(e->val, val, len + 1);
	e->val_len = len;
	e->next = t->buckets[h];
	t->buckets[h] = e;
	t->count++;
}

static void destroy(struct table *t)
{
	size_t i;

	for (i = 0; i < t->nbuckets; i++) {
		struct node *e = t->buckets[i], *next;

		for (; e; e = next) {
			next = e->next;
			xfree(e->key);
			xfree(e->val);
			xfree(e);
		}
	}
	xfree(t->buckets);
	memset(t, 0, sizeof(*t));
}

int main(int argc, char **argv)
{
	long n, rounds = 1, r, i;
	unsigned long long t0, t1;
	char key[32], val[32], *end;

	n = argc >= 2 ? strtol(argv[1], &end, 10) : -1;
	if (argc < 2 || argc > 3 || *end || n <= 0 ||
	    (argc == 3 && ((rounds = strtol(argv[2], &end, 10)) <= 0 || *end))) {
		fprintf(stderr, "usage: bench_mix N [ROUNDS] (N > 0 keys, ROUNDS > 0)\n");
		return 2;
	}
	t0 = now_ns();
	for (r = 0; r < rounds; r++) {
		struct table t = {0};

		for (i = 0; i < n; i++) {
			snprintf(key, sizeof(key), "key-%ld", i);
			snprintf(val, sizeof(val), "value-%ld", i * 7);
			put(&t, key, val);
		}
		/* Every fourth key again: the values grow through realloc. */
		for (i = 0; i < n; i += 4) {
			snprintf(key, sizeof(key), "key-%ld", i);
			put(&t, key, "-more");
		}
		destroy(&t);
	}
	t1 = now_ns();
	printf("bench_mix keys=%ld rounds=%ld events=%llu elapsed_ns=%llu\n", n, rounds, events,
	       t1 - t0);
	return 0;
}
