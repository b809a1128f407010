/* An allocator that arrives after start: dlopen(LIBRARY), then 100 blocks of
 * 777 B from that library's malloc (dlsym), kept; with "wait", first prints
 * "ready" and waits for a line on stdin (to be attached to), and between
 * the dlopen and the allocations sleeps 1 s (the tracer of an attached
 * process probes what it loads soon after, not before it runs).
 *
 *   dlopen_alloc LIBRARY [wait]
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void *keep[100];

int main(int argc, char **argv)
{
	int wait = argc > 2 && !strcmp(argv[2], "wait");
	void *(*lib_malloc)(size_t);
	char line[16];
	void *h;

	if (argc < 2)
		return 2;
	if (wait) {
		printf("ready\n");
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin))
			return 1;
	}
	h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "dlopen_alloc: %s\n", dlerror());
		return 1;
	}
	lib_malloc = (void *(*)(size_t))dlsym(h, "malloc");
	if (!lib_malloc)
		return 1;
	if (wait)
		sleep(1);
	for (int i = 0; i < 100; i++)
		keep[i] = lib_malloc(777); /* SITE:dl */
	printf("done\n");
	fflush(stdout);
	if (wait && !fgets(line, sizeof(line), stdin))
		return 0;
	return 0;
}
