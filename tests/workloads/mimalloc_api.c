/* mimalloc's own API, linked against libmimalloc: blocks kept from
 * mi_malloc, mi_zalloc, mi_calloc, mi_malloc_aligned and mi_mallocn; blocks
 * freed by mi_free, mi_free_size and mi_free_aligned; blocks grown by
 * mi_realloc and mi_reallocn (the trace moves to that line, its new size). */
#include <mimalloc.h>
#include <stdio.h>

static void *keep[100], *zeroed[30], *counted[40], *aligned[25], *many[10], *grown[20],
	*grown_n[5];

int main(void)
{
	for (int i = 0; i < 100; i++)
		keep[i] = mi_malloc(1000); /* SITE:mi_malloc */
	for (int i = 0; i < 30; i++)
		zeroed[i] = mi_zalloc(200); /* SITE:mi_zalloc */
	for (int i = 0; i < 40; i++)
		counted[i] = mi_calloc(10, 30); /* SITE:mi_calloc */
	for (int i = 0; i < 25; i++)
		aligned[i] = mi_malloc_aligned(500, 64); /* SITE:mi_malloc_aligned */
	for (int i = 0; i < 10; i++)
		many[i] = mi_mallocn(8, 100); /* SITE:mi_mallocn */
	for (int i = 0; i < 50; i++)
		mi_free(mi_malloc(3000)); /* SITE:mi_free */
	for (int i = 0; i < 50; i++) {
		void *p = mi_malloc(5000); /* SITE:mi_free_size */

		mi_free_size(p, 5000);
	}
	for (int i = 0; i < 50; i++)
		mi_free_aligned(mi_malloc_aligned(700, 128), 128); /* SITE:mi_free_aligned */
	for (int i = 0; i < 20; i++) {
		grown[i] = mi_malloc(100);
		grown[i] = mi_realloc(grown[i], 50000); /* SITE:mi_realloc */
	}
	for (int i = 0; i < 5; i++) {
		grown_n[i] = mi_mallocn(2, 10);
		grown_n[i] = mi_reallocn(grown_n[i], 1000, 6); /* SITE:mi_reallocn */
	}
	printf("%p %p %p\n", keep[99], grown[19], grown_n[4]);
	return 0;
}
