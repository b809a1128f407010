/* Two call chains, five deep each, into one allocating function, built the
 * way distributions build (-O2, no frame pointers): only CFI tells one
 * chain from the other. Each function does work after its call, so that no
 * call becomes a jump (a tail call leaves no frame behind to unwind).
 *   nofp        run both chains, then exit (blocks stay live)
 *   nofp tree N K  N allocations, the i-th at the end of a chain of left()
 *                  and right() calls spelling i in binary (N distinct
 *                  stacks), each freed at once except every K-th; a pause
 *                  of 1 ms after every 100; prints "done" and waits for a
 *                  line on stdin */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static void *keep[4096];
static int nkeep;
volatile int sink;

NOINLINE void *alloc_block(size_t size)
{
	void *p = malloc(size); /* SITE:alloc */

	sink += (int)size;
	return p;
}

NOINLINE void *a5(size_t n) { void *p = alloc_block(n); sink++; return p; } /* SITE:a5 */
NOINLINE void *a4(size_t n) { void *p = a5(n); sink++; return p; }          /* SITE:a4 */
NOINLINE void *a3(size_t n) { void *p = a4(n); sink++; return p; }          /* SITE:a3 */
NOINLINE void *a2(size_t n) { void *p = a3(n); sink++; return p; }          /* SITE:a2 */
NOINLINE void *a1(size_t n) { void *p = a2(n); sink++; return p; }          /* SITE:a1 */

NOINLINE void *b5(size_t n) { void *p = alloc_block(n); sink++; return p; } /* SITE:b5 */
NOINLINE void *b4(size_t n) { void *p = b5(n); sink++; return p; }          /* SITE:b4 */
NOINLINE void *b3(size_t n) { void *p = b4(n); sink++; return p; }          /* SITE:b3 */
NOINLINE void *b2(size_t n) { void *p = b3(n); sink++; return p; }          /* SITE:b2 */
NOINLINE void *b1(size_t n) { void *p = b2(n); sink++; return p; }          /* SITE:b1 */

NOINLINE void *left(int level, unsigned path, size_t n);
NOINLINE void *right(int level, unsigned path, size_t n);

/* one bit of path per frame, lowest first; a frame of its own size */
NOINLINE void *left(int level, unsigned path, size_t n)
{
	volatile char pad[24];
	void *p;

	pad[0] = 1;
	p = !level ? alloc_block(n) : (path & 1) ? left(level - 1, path >> 1, n)
						  : right(level - 1, path >> 1, n);
	sink += pad[0];
	return p;
}

NOINLINE void *right(int level, unsigned path, size_t n)
{
	void *p = !level ? alloc_block(n) : (path & 1) ? left(level - 1, path >> 1, n)
						       : right(level - 1, path >> 1, n);
	sink++;
	return p;
}

int main(int argc, char **argv)
{
	if (argc > 3) { /* tree N K */
		long n = atol(argv[2]), k = atol(argv[3]);
		char line[16];

		for (long i = 0; i < n; i++) {
			void *p = right(16, (unsigned)i, 100);

			if (i % k == 0 && nkeep < 4096)
				keep[nkeep++] = p;
			else
				free(p);
			if (i % 100 == 99)
				usleep(1000);
		}
		printf("done\n");
		fflush(stdout);
		return !fgets(line, sizeof(line), stdin);
	}
	for (int i = 0; i < 100; i++)
		keep[nkeep++] = a1(1000); /* SITE:main_a */
	for (int i = 0; i < 30; i++)
		keep[nkeep++] = b1(3000); /* SITE:main_b */
	printf("%d\n", sink);
	return 0;
}
