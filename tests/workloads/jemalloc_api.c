/* jemalloc's non-standard API, linked against libjemalloc: blocks from
 * mallocx kept; mallocx'd blocks freed by sdallocx and by dallocx; blocks
 * grown by rallocx (the trace moves to the rallocx line with its new size);
 * blocks resized in place by xallocx (the trace stays on its mallocx line,
 * with the size xallocx made it). */
#include <jemalloc/jemalloc.h>
#include <stdio.h>

static void *keep[100], *grown[20], *resized[10];

int main(void)
{
	for (int i = 0; i < 100; i++)
		keep[i] = mallocx(1000, 0); /* SITE:mallocx */
	for (int i = 0; i < 50; i++) {
		void *p = mallocx(3000, 0); /* SITE:sdallocx */

		sdallocx(p, 3000, 0);
	}
	for (int i = 0; i < 50; i++)
		dallocx(mallocx(7000, MALLOCX_ZERO), 0); /* SITE:dallocx */
	for (int i = 0; i < 20; i++) {
		grown[i] = mallocx(100, 0);
		grown[i] = rallocx(grown[i], 50000, 0); /* SITE:rallocx */
	}
	for (int i = 0; i < 10; i++) {
		resized[i] = mallocx(40000, 0); /* SITE:xallocx */
		/* a large block shrinks in place (to its 20 KiB size class); it
		 * cannot grow to 1 GiB in place: that one fails, and changes
		 * nothing */
		if (xallocx(resized[i], 20000, 0, 0) < 20000 ||
		    xallocx(resized[i], 1 << 30, 0, 0) >= (1 << 30))
			return 1;
	}
	printf("%p %p %p\n", keep[99], grown[19], resized[9]);
	return 0;
}
