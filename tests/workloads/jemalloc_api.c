/* jemalloc's non-standard API, linked against libjemalloc: blocks from
 * mallocx kept; mallocx'd blocks freed by sdallocx and by dallocx; blocks
 * grown by rallocx (the trace moves to the rallocx line with its new size). */
#include <jemalloc/jemalloc.h>
#include <stdio.h>

static void *keep[100], *grown[20];

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
	printf("%p %p\n", keep[99], grown[19]);
	return 0;
}
