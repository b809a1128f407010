/* Children that live less than one loop turn of the tracer: n children
 * forked one after another, child i allocating i + 1 blocks of i + 1 KiB
 * that it still holds when it exits, after one of 100 B it frees; the odd
 * ones exec themselves first ("shortlived child I"), so that their command
 * is their own. Then the parent keeps 3 blocks of 5000 B.
 *
 *   shortlived N [PAUSE_MS]   prints each child's pid ("child I PID"),
 *                             then "done"; each child first sleeps
 *                             PAUSE_MS (a tracer sees it before its exec)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void *keep[64]; /* not static: the stores (and mallocs) stay */

static void child(long i)
{
	keep[0] = malloc(100); /* SITE:temporary */
	free(keep[0]);
	for (long j = 0; j <= i; j++)
		keep[j] = malloc((size_t)(i + 1) * 1024); /* SITE:child */
	_exit(0);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 4;
	long pause_ms = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
	char arg[32], self[4096];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (argc > 2 && !strcmp(argv[1], "child"))
		child(strtol(argv[2], NULL, 10));
	if (n < 1 || n > 63 || pause_ms < 0 || pause_ms > 10000 || len < 0)
		return 2;
	self[len] = '\0';
	for (long i = 0; i < n; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			struct timespec pause = {pause_ms / 1000, pause_ms % 1000 * 1000000};

			nanosleep(&pause, NULL);
			if (i % 2) {
				snprintf(arg, sizeof(arg), "%ld", i);
				execl(self, "shortlived", "child", arg, (char *)NULL);
				_exit(1);
			}
			child(i);
		}
		if (pid < 0 || waitpid(pid, NULL, 0) < 0)
			return 1;
		printf("child %ld %d\n", i, (int)pid);
	}
	for (int j = 0; j < 3; j++)
		keep[j] = malloc(5000); /* SITE:parent */
	puts("done");
	return 0;
}
