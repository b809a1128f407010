/* A C workload whose allocation sites and amounts are known exactly.
 * Each site is marked with a SITE:name comment that the tests look up.
 *   native            run every phase, then exit (blocks stay live)
 *   native wait       allocate the "before" blocks, print "ready", wait for a
 *                     line on stdin, run the phases, print "done", wait for
 *                     another line (or EOF), exit */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *keep_before[100], *keep_malloc[1000], *keep_calloc[200], *keep_realloc;
void *keep_memalign[100], *keep_freed[500], *keep_thread[8][100], *keep_deep[10];

__attribute__((noinline)) static void alloc_before(void)
{
	for (int i = 0; i < 100; i++)
		keep_before[i] = malloc(8192); /* SITE:before */
}

__attribute__((noinline)) static void alloc_malloc(void)
{
	for (int i = 0; i < 1000; i++)
		keep_malloc[i] = malloc(4096); /* SITE:malloc */
}

__attribute__((noinline)) static void alloc_calloc(void)
{
	for (int i = 0; i < 200; i++)
		keep_calloc[i] = calloc(10, 100); /* SITE:calloc */
}

__attribute__((noinline)) static void alloc_realloc(void)
{
	void *p = NULL;

	for (size_t size = 64; size <= 65536; size *= 2)
		p = realloc(p, size); /* SITE:realloc */
	keep_realloc = p;
}

__attribute__((noinline)) static void alloc_memalign(void)
{
	for (int i = 0; i < 100; i++)
		if (posix_memalign(&keep_memalign[i], 64, 1000)) /* SITE:memalign */
			abort();
}

__attribute__((noinline)) static void alloc_and_free(void)
{
	for (int i = 0; i < 500; i++)
		keep_freed[i] = malloc(300); /* SITE:freed */
	for (int i = 0; i < 500; i += 2) {
		free(keep_freed[i]);
		keep_freed[i] = NULL;
	}
}

__attribute__((noinline)) static void *thread_main(void *arg)
{
	long t = (long)arg;

	for (int i = 0; i < 100; i++)
		keep_thread[t][i] = malloc(512); /* SITE:thread */
	return NULL;
}

__attribute__((noinline)) static void alloc_threads(void)
{
	pthread_t th[8];

	for (long t = 0; t < 8; t++)
		pthread_create(&th[t], NULL, thread_main, (void *)t);
	for (int t = 0; t < 8; t++)
		pthread_join(th[t], NULL);
}

__attribute__((noinline)) static void deep_c(void)
{
	for (int i = 0; i < 10; i++)
		keep_deep[i] = malloc(2048); /* SITE:deep */
}

__attribute__((noinline)) static void deep_b(void)
{
	deep_c(); /* SITE:deep_b */
}

__attribute__((noinline)) static void deep_a(void)
{
	deep_b(); /* SITE:deep_a */
}

static void wait_line(void)
{
	char line[64];

	if (!fgets(line, sizeof(line), stdin))
		return;
}

int main(int argc, char **argv)
{
	int wait = argc > 1 && !strcmp(argv[1], "wait");

	if (wait) {
		alloc_before();
		printf("ready\n");
		fflush(stdout);
		wait_line();
	}
	alloc_malloc();
	alloc_calloc();
	alloc_realloc();
	alloc_memalign();
	alloc_and_free();
	alloc_threads();
	deep_a(); /* SITE:deep_main */
	if (wait) {
		printf("done\n");
		fflush(stdout);
		wait_line();
	}
	return 0;
}
