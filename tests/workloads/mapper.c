/* A program that maps memory itself: its anonymous mappings are the mmap
 * domain's blocks, exactly; a file's mapping and the stacks of its
 * threads (libc's own mmap calls) are not.
 *   mapper wait   print "ready", wait for a line, map, print "done",
 *                 wait for another line (or EOF), exit */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void *keep[8];

static void *idle(void *arg)
{
	return arg;
}

__attribute__((noinline)) static void map_buffers(void)
{
	for (int i = 0; i < 4; i++) /* SITE:mapped */
		keep[i] = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 4; i < 8; i++) { /* SITE:unmapped */
		keep[i] = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		munmap(keep[i], 65536);
	}
}

int main(int argc, char **argv)
{
	char line[16];
	pthread_t t[4];
	int fd = open("/proc/self/exe", O_RDONLY);
	void *file;

	if (argc > 1 && !strcmp(argv[1], "wait")) {
		puts("ready");
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin))
			return 1;
	}
	map_buffers();
	file = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0); /* a file: not a block */
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, idle, NULL); /* stacks: libc's own */
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	if (argc > 1) {
		puts("done");
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin))
			return 0;
	}
	return file == MAP_FAILED;
}
