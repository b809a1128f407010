/* A C workload that grows in steps driven from stdin, for snapshot series
 * and compare: each line "1" or "2" runs that phase and prints "done".
 *   phase 1: 100 blocks of 1000 B at the grow site, 50 of 4096 B at temp
 *   phase 2: 300 more at grow, frees every temp block, 20 blocks
 *            of 4096 B at late; "done" then gives the first late block's
 *            address */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* global, so that the compiler cannot drop the allocations */
void *grow[400], *temp[50], *late[20];
static int ngrow;

__attribute__((noinline)) static void add_grow(int n)
{
	for (int i = 0; i < n; i++)
		grow[ngrow++] = malloc(1000); /* SITE:grow */
}

__attribute__((noinline)) static void phase1(void)
{
	add_grow(100);
	for (int i = 0; i < 50; i++)
		temp[i] = malloc(4096); /* SITE:temp */
}

__attribute__((noinline)) static void phase2(void)
{
	add_grow(300); /* SITE:grow_call */
	for (int i = 0; i < 50; i++)
		free(temp[i]);
	for (int i = 0; i < 20; i++)
		late[i] = malloc(4096); /* SITE:late */
}

int main(void)
{
	char line[64];

	setvbuf(stdout, NULL, _IONBF, 0);
	printf("ready\n");
	while (fgets(line, sizeof(line), stdin)) {
		if (line[0] == '1')
			phase1();
		else if (line[0] == '2')
			phase2();
		else
			break;
		printf("done %p\n", late[0]);
	}
	return 0;
}
