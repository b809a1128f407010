/* Benchmark workload: N small malloc/free pairs, as fast as the allocator
 * goes; the highest event rate the tracer has to keep up with.
 *
 *   bench_malloc N
 *
 * Prints one line: "bench_malloc pairs=N events=2N elapsed_ns=T". The time
 * covers the loop only, so a tracer's attach time is not counted. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Keeps the compiler from pairing and removing malloc/free. */
void *volatile bench_sink;

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	unsigned long long t0, t1;
	char *end;
	long n, i;

	n = argc == 2 ? strtol(argv[1], &end, 10) : -1;
	if (argc != 2 || *end || n <= 0) {
		fprintf(stderr, "usage: bench_malloc N (N > 0 malloc/free pairs)\n");
		return 2;
	}
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		void *p = malloc(16 + (size_t)(i & 63)); /* 16..79 bytes: tcache sizes */

		if (!p) {
			perror("bench_malloc: malloc");
			return 1;
		}
		bench_sink = p;
		free(p);
	}
	t1 = now_ns();
	printf("bench_malloc pairs=%ld events=%ld elapsed_ns=%llu\n", n, 2 * n, t1 - t0);
	return 0;
}
