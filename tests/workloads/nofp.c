/* Two call chains, five deep each, into one allocating function, built the
 * way distributions build (-O2, no frame pointers): only CFI tells one
 * chain from the other. Each function does work after its call, so that no
 * call becomes a jump (a tail call leaves no frame behind to unwind).
 *   nofp        run both chains, then exit (blocks stay live)
 *   nofp deep N allocate once at each recursion depth 0..N-1, N times over */
#include <stdio.h>
#include <stdlib.h>

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

/* a stack frame of its own, with a variable-sized array: CFA from rbp */
NOINLINE void *recurse(int depth, size_t n)
{
	volatile char pad[16 + depth % 7];
	void *p;

	pad[0] = 1;
	p = depth ? recurse(depth - 1, n) : alloc_block(n); /* SITE:recurse */
	sink += pad[0];
	return p;
}

int main(int argc, char **argv)
{
	if (argc > 2) { /* deep N */
		int n = atoi(argv[2]);

		for (int round = 0; round < n; round++)
			for (int d = 0; d < n; d++) {
				void *p = recurse(d, 100);

				if (nkeep < 4096 && round == 0)
					keep[nkeep++] = p;
				else
					free(p);
			}
		return 0;
	}
	for (int i = 0; i < 100; i++)
		keep[nkeep++] = a1(1000); /* SITE:main_a */
	for (int i = 0; i < 30; i++)
		keep[nkeep++] = b1(3000); /* SITE:main_b */
	printf("%d\n", sink);
	return 0;
}
