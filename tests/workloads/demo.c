/* The demo workload for `make demo`: a small "service" that caches
 * records, keeps a growing log buffer and leaks a little per request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct record {
	char key[32];
	char *value;
};

struct record *cache[2000];
char *log_buf;
char *leaked[2000];
static size_t log_len, log_cap;

__attribute__((noinline)) static void cache_put(int i)
{
	struct record *r = malloc(sizeof(*r));

	snprintf(r->key, sizeof(r->key), "key-%d", i);
	r->value = malloc(200 + (size_t)(i % 50));
	memset(r->value, 'x', 200);
	cache[i] = r;
}

__attribute__((noinline)) static void log_append(const char *msg)
{
	size_t n = strlen(msg);

	if (log_len + n + 1 > log_cap) {
		log_cap = log_cap ? log_cap * 2 : 256;
		log_buf = realloc(log_buf, log_cap);
	}
	memcpy(log_buf + log_len, msg, n + 1);
	log_len += n;
}

__attribute__((noinline)) static void handle_request(int i)
{
	char *scratch = calloc(1, 1024);
	char *leak = malloc(64);

	leaked[i] = leak; /* forgotten: one 64-byte block per request */

	snprintf(scratch, 1024, "request %d\n", i);
	log_append(scratch);
	free(scratch);
}

int main(void)
{
	for (int i = 0; i < 2000; i++) {
		cache_put(i);
		handle_request(i);
	}
	for (int i = 0; i < 2000; i += 4) {
		free(cache[i]->value);
		free(cache[i]);
	}
	printf("demo: served 2000 requests\n");
	return 0;
}
