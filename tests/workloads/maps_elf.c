/* A program that maps a file to read it, as a debugger or a tracer reading
 * an interpreter's ELF does, without running it: the tracer must not take
 * it for that interpreter.
 *
 *   maps_elf FILE    map FILE read-only, print "ready", wait for a line,
 *                    allocate 10 blocks of 1000 B, print "done", wait for a
 *                    line
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void *keep[10];

static void wait_line(void)
{
	char line[64];

	if (!fgets(line, sizeof(line), stdin))
		exit(0);
}

int main(int argc, char **argv)
{
	struct stat st;
	int fd = argc > 1 ? open(argv[1], O_RDONLY) : -1;
	void *file;

	if (fd < 0 || fstat(fd, &st) || st.st_size == 0)
		return 2;
	file = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (file == MAP_FAILED)
		return 2;
	printf("ready\n");
	fflush(stdout);
	wait_line();
	for (int i = 0; i < 10; i++)
		keep[i] = malloc(1000); /* SITE:after */
	printf("done\n");
	fflush(stdout);
	wait_line();
	munmap(file, (size_t)st.st_size);
	return 0;
}
