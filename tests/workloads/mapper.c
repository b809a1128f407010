/* A program that maps memory itself: its anonymous mappings are the mmap
 * domain's blocks, exactly, as munmap cuts them and mremap moves them; a
 * file's mapping, the stacks of its threads and glibc's realloc of a large
 * block (libc's own mmap and mremap calls) are not.
 *   mapper        map, unmap and remap, then exit
 *   mapper wait   print "ready", wait for a line, do the same, print
 *                 "done", wait for another line (or EOF), exit
 *   mapper blocks the same, with a "block ADDR LEN" line before "done" for
 *                 every range it keeps mapped */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define P 4096ul
#define RW (PROT_READ | PROT_WRITE)
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)

static struct {
	char *addr;
	size_t len;
} kept[32];
static int nkept;
static void *big;

static void keep(void *addr, size_t len)
{
	kept[nkept].addr = addr;
	kept[nkept++].len = len;
}

static void *idle(void *arg)
{
	return arg;
}

__attribute__((noinline)) static void map_buffers(void)
{
	void *gone;

	for (int i = 0; i < 4; i++) {
		void *b = mmap(NULL, 1 << 20, RW, ANON, -1, 0); /* SITE:mapped */

		keep(b, 1 << 20);
	}
	for (int i = 4; i < 8; i++) {
		gone = mmap(NULL, 65536, RW, ANON, -1, 0); /* SITE:unmapped */
		munmap(gone, 65536);
	}
}

/* munmap of a part: the head, the tail, a hole in the middle */
__attribute__((noinline)) static void cut_buffers(void)
{
	char *head = mmap(NULL, 64 * P, RW, ANON, -1, 0); /* SITE:head */
	char *tail = mmap(NULL, 64 * P, RW, ANON, -1, 0); /* SITE:tail */
	char *hole = mmap(NULL, 64 * P, RW, ANON, -1, 0); /* SITE:hole */

	munmap(head, 16 * P);
	keep(head + 16 * P, 48 * P);
	munmap(tail + 48 * P, 16 * P);
	keep(tail, 48 * P);
	munmap(hole + 16 * P, 16 * P);
	keep(hole, 16 * P);
	keep(hole + 32 * P, 32 * P);
}

/* mremap: grown (moved or in place), shrunk in place, moved onto a
 * mapping (MREMAP_FIXED), copied away (MREMAP_DONTUNMAP), and a part of
 * a block moved out of its middle */
__attribute__((noinline)) static void remap_buffers(void)
{
	char *grown = mmap(NULL, 16 * P, RW, ANON, -1, 0);	 /* SITE:grown */
	char *shrunk = mmap(NULL, 128 * P, RW, ANON, -1, 0);	 /* SITE:shrunk */
	char *target = mmap(NULL, 256 * P, RW, ANON, -1, 0);	 /* SITE:fixed_target */
	char *src = mmap(NULL, 16 * P, RW, ANON, -1, 0);	 /* SITE:fixed_src */
	char *du = mmap(NULL, 16 * P, RW, ANON, -1, 0);		 /* SITE:dontunmap_src */
	char *partial = mmap(NULL, 64 * P, RW, ANON, -1, 0);	 /* SITE:partial */
	char *copy, *piece;

	grown = mremap(grown, 16 * P, 128 * P, MREMAP_MAYMOVE);
	keep(grown, 128 * P);
	shrunk = mremap(shrunk, 128 * P, 32 * P, 0);
	keep(shrunk, 32 * P);
	mremap(src, 16 * P, 64 * P, MREMAP_MAYMOVE | MREMAP_FIXED, target);
	keep(target, 64 * P);
	keep(target + 64 * P, 192 * P);
	copy = mremap(du, 16 * P, 16 * P, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
	keep(du, 16 * P);
	keep(copy, 16 * P);
	piece = mremap(partial + 16 * P, 16 * P, 32 * P, MREMAP_MAYMOVE);
	keep(partial, 16 * P);
	keep(partial + 32 * P, 32 * P);
	keep(piece, 32 * P);
}

/* mapped over: an anonymous MAP_FIXED mapping in a block's middle (a
 * hole, and a block of its own), and a file's page moved onto a block's
 * head with MREMAP_FIXED (not a block) */
__attribute__((noinline)) static void map_over(int fd)
{
	char *over = mmap(NULL, 64 * P, RW, ANON, -1, 0);	/* SITE:overmapped */
	char *target = mmap(NULL, 32 * P, RW, ANON, -1, 0); /* SITE:file_target */
	char *file = mmap(NULL, P, PROT_READ, MAP_PRIVATE, fd, 0);

	mmap(over + 16 * P, 16 * P, RW, ANON | MAP_FIXED, -1, 0); /* SITE:fixed_map */
	keep(over, 16 * P);
	keep(over + 16 * P, 16 * P);
	keep(over + 32 * P, 32 * P);
	mremap(file, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, target);
	keep(target + P, 31 * P);
}

/* glibc's realloc of a block it mapped: its own mremap, a libc block */
__attribute__((noinline)) static void realloc_big(void)
{
	char *p = malloc(1 << 20);

	big = realloc(p, 4 << 20); /* SITE:realloc_big */
}

int main(int argc, char **argv)
{
	char line[16];
	pthread_t t[4];
	int fd = open("/proc/self/exe", O_RDONLY);
	void *file;

	if (argc > 1) {
		puts("ready");
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin))
			return 1;
	}
	map_buffers();
	cut_buffers();
	remap_buffers();
	map_over(fd);
	realloc_big();
	file = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0); /* a file: not a block */
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, idle, NULL); /* stacks: libc's own */
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	if (argc > 1) {
		for (int i = 0; i < nkept && !strcmp(argv[1], "blocks"); i++)
			printf("block %lx %zu\n", (unsigned long)kept[i].addr, kept[i].len);
		puts("done");
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin))
			return 0;
	}
	return file == MAP_FAILED || !big;
}
