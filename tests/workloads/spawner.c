/* Many short-lived children: N children forked one after another, each
 * allocating 10 blocks of 1000 B that it still holds when it exits; then
 * the parent keeps 5 blocks of 3000 B of its own.
 *
 *   spawner N
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

void *keep[10]; /* not static: the stores (and mallocs) stay */

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100;

	for (long i = 0; i < n; i++) {
		pid_t child = fork();

		if (child == 0) {
			for (int j = 0; j < 10; j++)
				keep[j] = malloc(1000); /* SITE:child */
			_exit(0);
		}
		if (child < 0 || waitpid(child, NULL, 0) < 0)
			return 1;
	}
	for (int j = 0; j < 5; j++)
		keep[j] = malloc(3000); /* SITE:parent */
	printf("spawned %ld\n", n);
	return 0;
}
