/* Threads allocating and freeing at the same moment, for the allocation
 * table's concurrency: 4 threads each run ROUNDS rounds of BATCH blocks
 * from their own line and free every round but the last; a fifth thread's
 * blocks are freed by the main thread after it ends. Exits holding the 4
 * last rounds. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define ROUNDS 100
#define BATCH 500

static void *alloc0(void) { return malloc(1000); } /* SITE:a0 */
static void *alloc1(void) { return malloc(1100); } /* SITE:a1 */
static void *alloc2(void) { return malloc(1200); } /* SITE:a2 */
static void *alloc3(void) { return malloc(1300); } /* SITE:a3 */
static void *alloc4(void) { return malloc(1400); } /* SITE:a4 */

static void *(*const allocs[5])(void) = {alloc0, alloc1, alloc2, alloc3, alloc4};
static void *blocks[5][BATCH];
static pthread_barrier_t start;

static void *run(void *arg)
{
	long k = (long)arg;
	int rounds = k < 4 ? ROUNDS : 1;

	pthread_barrier_wait(&start);
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < BATCH; i++)
			blocks[k][i] = allocs[k]();
		if (r < rounds - 1)
			for (int i = 0; i < BATCH; i++)
				free(blocks[k][i]);
	}
	return NULL;
}

int main(void)
{
	pthread_t t[5];

	pthread_barrier_init(&start, NULL, 5);
	for (long k = 0; k < 5; k++)
		pthread_create(&t[k], NULL, run, (void *)k);
	for (int k = 0; k < 5; k++)
		pthread_join(t[k], NULL);
	for (int i = 0; i < BATCH; i++)
		free(blocks[4][i]); /* freed by another thread than its own */
	printf("threads: done\n");
	return 0;
}
