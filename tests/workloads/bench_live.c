/* Benchmark workload for the tracer's memory: N small blocks allocated and
 * held, so that the tracer's memory per live allocation can be read while
 * they are live; then all freed.
 *
 *   bench_live N [HOLD_MS]
 *
 * Prints "bench_live live=N events=2N elapsed_ns=T" (T: allocating and
 * freeing, not the hold) after freeing. While holding it prints
 * "holding N" on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	unsigned long long t0, t1, t2, t3;
	long n, hold_ms = 0, i;
	struct timespec ts;
	char *end;
	void **blocks;

	n = argc >= 2 ? strtol(argv[1], &end, 10) : -1;
	if (argc < 2 || argc > 3 || *end || n <= 0 ||
	    (argc == 3 && ((hold_ms = strtol(argv[2], &end, 10)) < 0 || *end))) {
		fprintf(stderr, "usage: bench_live N [HOLD_MS] (N > 0 blocks, HOLD_MS >= 0)\n");
		return 2;
	}
	/* The pointer array comes from mmap-sized malloc: one event, not N. */
	blocks = malloc((size_t)n * sizeof(*blocks));
	if (!blocks) {
		perror("bench_live");
		return 1;
	}
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		blocks[i] = malloc(16);
		if (!blocks[i]) {
			perror("bench_live");
			return 1;
		}
	}
	t1 = now_ns();
	fprintf(stderr, "holding %ld\n", n);
	ts.tv_sec = hold_ms / 1000;
	ts.tv_nsec = (hold_ms % 1000) * 1000000L;
	nanosleep(&ts, NULL);
	t2 = now_ns();
	for (i = 0; i < n; i++)
		free(blocks[i]);
	t3 = now_ns();
	free(blocks);
	printf("bench_live live=%ld events=%ld elapsed_ns=%llu\n", n, 2 * n, (t1 - t0) + (t3 - t2));
	return 0;
}
