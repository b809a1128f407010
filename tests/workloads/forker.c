/* A process and its forked child allocate the same blocks: after fork the
 * two heaps are copies, so every address repeats in both processes. With
 * --follow each must keep its own 100 blocks. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

void *keep[100];

int main(void)
{
	pid_t child = fork();

	for (int i = 0; i < 100; i++)
		keep[i] = malloc(2048); /* SITE:forked */
	if (child == 0)
		return 0; /* exits with its blocks live */
	if (child > 0)
		waitpid(child, NULL, 0);
	return 0;
}
