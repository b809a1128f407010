/* Inlined allocation sites, built -O2 -g with frame pointers (the Makefile's
 * inline-O2): new_node() is a static inline function inlined into its two
 * callers, so a call site's return address lies in inlined code and expands
 * into two frames, new_node's line then its caller's. Blocks stay live.
 *   make_lists   300 nodes of 48 B through new_node, 100 of 200 B in make_trees
 *   (the counts and sizes the test expects) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node {
	struct node *next;
	size_t size;
	char data[];
};

static struct node *lists, *trees;

static inline __attribute__((always_inline)) struct node *new_node(size_t size, struct node *next)
{
	struct node *n = malloc(sizeof(*n) + size); /* SITE:inline_alloc */

	if (!n)
		abort();
	n->next = next;
	n->size = size;
	memset(n->data, 0x5a, size);
	return n;
}

__attribute__((noinline)) static void make_lists(int count)
{
	for (int i = 0; i < count; i++)
		lists = new_node(32, lists); /* SITE:inline_lists */
}

__attribute__((noinline)) static void make_trees(int count)
{
	for (int i = 0; i < count; i++)
		trees = new_node(184, trees); /* SITE:inline_trees */
}

int main(int argc, char **argv)
{
	make_lists(argc > 5 ? 1 : 300); /* SITE:inline_main_lists */
	make_trees(argc > 5 ? 1 : 100); /* SITE:inline_main_trees */
	printf("%p %p\n", (void *)lists, (void *)trees);
	return 0;
}
