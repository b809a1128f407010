/* A request-serving loop for --budget's measurement (make bench, and
 * tests/integration/test_budget.py): each request parses a made-up header
 * block into allocated strings, hashes them (the work), answers into an
 * allocated buffer and keeps some answers in a bounded cache (long-lived
 * blocks, freed when evicted); the rest is freed at the request's end.
 *
 *   requests SECONDS [WORK]
 *
 * Every second it prints to stderr "rate R" (requests per second of its
 * own CPU time, which the probes' cost is charged to), and at the end
 * "total N cpu S". WORK (default 400) is the hash rounds per request. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FIELDS 12
#define CACHE 512

static double clock_s(clockid_t id)
{
	struct timespec t;

	clock_gettime(id, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static uint64_t hash(const char *p, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
	return h;
}

static char *cache[CACHE];

static uint64_t serve(uint64_t id, int work)
{
	char *field[FIELDS], *answer;
	uint64_t h = 0xcbf29ce484222325ull;
	size_t len[FIELDS];

	for (int i = 0; i < FIELDS; i++) {
		len[i] = 16 + (size_t)((id * 7 + (uint64_t)i * 13) % 200);
		field[i] = malloc(len[i]);
		if (!field[i])
			abort();
		memset(field[i], 'a' + i, len[i]);
	}
	for (int r = 0; r < work; r++)
		for (int i = 0; i < FIELDS; i += 4)
			h = hash(field[i], len[i], h + (uint64_t)r);
	answer = malloc(256 + (size_t)(h % 512));
	if (!answer)
		abort();
	snprintf(answer, 256, "HTTP/1.1 200 OK\r\nX-Hash: %llx\r\n", (unsigned long long)h);
	for (int i = 0; i < FIELDS; i++)
		free(field[i]);
	if (id % 4 == 0) { /* kept: a cache of answers */
		size_t slot = (size_t)(id / 4 % CACHE);

		free(cache[slot]);
		cache[slot] = answer;
	} else {
		free(answer);
	}
	return h;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 10, end, next, cpu0, cpu_last;
	int work = argc > 2 ? atoi(argv[2]) : 400;
	uint64_t n = 0, last = 0, sink = 0;

	setvbuf(stderr, NULL, _IOLBF, 0);
	end = clock_s(CLOCK_MONOTONIC) + seconds;
	next = clock_s(CLOCK_MONOTONIC) + 1;
	cpu0 = cpu_last = clock_s(CLOCK_PROCESS_CPUTIME_ID);
	for (;;) {
		double t;

		sink += serve(n++, work);
		if (n % 64)
			continue;
		t = clock_s(CLOCK_MONOTONIC);
		if (t >= next) {
			double cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID);

			fprintf(stderr, "rate %.1f requests %llu cpu %.6f\n",
				(double)(n - last) / (cpu - cpu_last), (unsigned long long)(n - last),
				cpu - cpu_last);
			last = n;
			cpu_last = cpu;
			next += 1;
		}
		if (t >= end)
			break;
	}
	fprintf(stderr, "total %llu cpu %.6f sink %llu\n", (unsigned long long)n,
		clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0, (unsigned long long)(sink & 1));
	return 0;
}
