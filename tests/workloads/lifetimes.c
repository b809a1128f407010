/* A C workload with known lifetimes, for the peak, the allocations over the
 * run, temporaries and block ages (tests/integration/test_sites.py). Run
 * with an argument SEC (default 2):
 *   old:   5 blocks of 3000 B, kept to the end, then SEC seconds pass
 *   peak:  100 blocks of 10000 B (the peak: 1000000 B), all freed, the
 *          last allocated first (so 1 of them is temporary: freed before
 *          the thread's next allocation)
 *   after: 20 blocks of 5000 B, kept to the end (less than the peak)
 *   temp:  1000 blocks of 64 B, each freed at once (1000 temporaries)
 * then it prints "done" and waits for the end of its input. No allocation
 * of its own comes between these steps. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* global, so that the compiler cannot drop the allocations */
void *old[5], *peak[100], *after[20];
void *volatile temp;

__attribute__((noinline)) static void alloc_old(void)
{
	for (int i = 0; i < 5; i++)
		old[i] = malloc(3000); /* SITE:old */
}

__attribute__((noinline)) static void alloc_peak(void)
{
	for (int i = 0; i < 100; i++)
		peak[i] = malloc(10000); /* SITE:peak */
	for (int i = 99; i >= 0; i--)
		free(peak[i]);
}

__attribute__((noinline)) static void alloc_after(void)
{
	for (int i = 0; i < 20; i++)
		after[i] = malloc(5000); /* SITE:after */
}

__attribute__((noinline)) static void alloc_temp(void)
{
	for (int i = 0; i < 1000; i++) {
		temp = malloc(64); /* SITE:temp */
		free(temp);
	}
}

int main(int argc, char **argv)
{
	double sec = argc > 1 ? atof(argv[1]) : 2;
	char line[64];

	setvbuf(stdout, NULL, _IONBF, 0);
	printf("ready\n");
	alloc_old();
	usleep((useconds_t)(sec * 1e6));
	alloc_peak();
	alloc_after();
	alloc_temp();
	printf("done\n");
	while (fgets(line, sizeof(line), stdin))
		;
	return 0;
}
