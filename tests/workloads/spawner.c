/* Many short-lived children: N children forked one after another, each
 * allocating 10 blocks of 1000 B that it still holds when it exits; then
 * the parent keeps 5 blocks of 3000 B of its own. With "last", one more
 * child allocates 7 blocks of 4000 B, prints its pid and lives on (for 60 s
 * at most) after the parent exits.
 *
 *   spawner N [last]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	if (argc > 2 && !strcmp(argv[2], "last")) {
		int ready[2];
		char c;
		pid_t last;

		if (pipe(ready))
			return 1;
		last = fork();
		if (last == 0) {
			for (int j = 0; j < 7; j++)
				keep[j] = malloc(4000); /* SITE:last */
			alarm(60);
			if (write(ready[1], "x", 1) != 1)
				_exit(1);
			for (;;)
				pause();
		}
		if (last < 0 || read(ready[0], &c, 1) != 1)
			return 1;
		printf("last %d\n", (int)last);
	}
	printf("spawned %ld\n", n);
	return 0;
}
