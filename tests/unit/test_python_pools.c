/* python/pools.c on a real interpreter's pymalloc (Debian's 3.11, forky's
 * 3.14 where present): a CPython child makes small bytes objects (no GC
 * header: each object is its block) of two size classes few other objects
 * use, prints their addresses, drops every other one of the first class
 * and all of the second (whose pools then empty), and waits; the blocks it
 * keeps are found allocated, those it dropped free, also when asked about
 * with a smaller size (a realloc that shrank a block in place: pymalloc
 * keeps it in its class). Also: an address nothing is mapped at is free, a
 * block outside any pool (a large object libc holds) unknown, not free. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "python/pools.h"

#define N 600

/* Each bytes object of length len is a block of 33 + len bytes. */
static const char script[] =
    "import sys\n"
    "kept = [bytes([i % 251]) * 367 for i in range(600)]\n"
    "gone = [bytes([i % 251]) * 300 for i in range(600)]\n"
    "big = bytes(100000)\n"
    "print(' '.join(hex(id(b)) for b in kept))\n"
    "print(' '.join(hex(id(b)) for b in gone))\n"
    "print(hex(id(big)), flush=True)\n"
    "del kept[::2], gone[:]\n"
    "print('dropped', flush=True)\n"
    "sys.stdin.readline()\n";

struct child {
	pid_t pid;
	FILE *out;
	int in;
};

/* argv: the interpreter's command line (a chroot's), "-c" and the script
 * follow; file: what must exist for it to run. */
static bool spawn(const char *file, char *const *argv, struct child *c)
{
	char *args[8];
	int to[2], from[2], n = 0;

	while (argv[n] && n < 5) {
		args[n] = argv[n];
		n++;
	}
	args[n++] = "-c";
	args[n++] = (char *)script;
	args[n] = NULL;
	if (access(file, X_OK) || pipe(to) || pipe(from))
		return false;
	c->pid = fork();
	if (c->pid == 0) {
		dup2(to[0], 0);
		dup2(from[1], 1);
		close(to[1]);
		close(from[0]);
		execv(args[0], args);
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	c->in = to[1];
	c->out = fdopen(from[0], "r");
	return c->pid > 0 && c->out;
}

static size_t read_addresses(FILE *f, uint64_t *v, size_t max)
{
	char *line = NULL, *save = NULL;
	size_t cap = 0, n = 0;

	if (getline(&line, &cap, f) > 0)
		for (char *t = strtok_r(line, " \n", &save); t && n < max;
		     t = strtok_r(NULL, " \n", &save))
			v[n++] = strtoull(t, NULL, 16);
	free(line);
	return n;
}

static void check_pools(const char *file, char *const *argv)
{
	static uint64_t kept[N], gone[N], big;
	static struct pymalloc_block blocks[2 * N + 2];
	char *line = NULL;
	size_t cap = 0, n = 0;
	long nfree;
	struct target_mem mem;
	struct child c = {0};

	if (!spawn(file, argv, &c)) {
		fprintf(stderr, "skipped: %s is not here (scripts/install-deps.sh puts it there)\n",
			file);
		skip();
	}
	assert_int_equal(read_addresses(c.out, kept, N), N);
	assert_int_equal(read_addresses(c.out, gone, N), N);
	assert_int_equal(read_addresses(c.out, &big, 1), 1);
	assert_true(getline(&line, &cap, c.out) > 0 && !strcmp(line, "dropped\n"));
	free(line);
	assert_int_equal(target_mem_open(c.pid, &mem), 0);
	for (size_t i = 0; i < N; i++) {
		/* a block of 400 (its class's size) asked for with 400 bytes, or
		 * with 320 after shrinking in place (a class of its own: 320) */
		blocks[n++] = (struct pymalloc_block){
		    .addr = kept[i], .size = i % 3 ? 33 + 367 : 320, .pool_bits = 14};
		blocks[n++] =
		    (struct pymalloc_block){.addr = gone[i], .size = 33 + 300, .pool_bits = 14};
	}
	/* nothing mapped there: an arena given back */
	blocks[n++] = (struct pymalloc_block){.addr = 0x10000, .size = 64, .pool_bits = 14};
	/* libc's block: no pool header before it */
	blocks[n++] = (struct pymalloc_block){.addr = big, .size = 400, .pool_bits = 14};
	nfree = pymalloc_find_free(&mem, blocks, n);
	for (size_t i = 0; i < n; i++) {
		const struct pymalloc_block *b = &blocks[i];
		bool expect = b->addr == 0x10000;

		for (size_t k = 0; k < N; k++) {
			if (b->addr == gone[k])
				expect = true;
			if (b->addr == kept[k])
				expect = k % 2 == 0; /* del kept[::2] */
		}
		if (b->free != expect)
			fail_msg("block %#llx (%llu bytes): free %d, expected %d",
				 (unsigned long long)b->addr, (unsigned long long)b->size, b->free,
				 expect);
		assert_int_equal(b->unknown, b->addr == big);
	}
	assert_int_equal(nfree, N / 2 + N + 1);
	target_mem_close(&mem);
	close(c.in);
	waitpid(c.pid, NULL, 0);
	fclose(c.out);
}

static void test_debian_python311_pools(void **state)
{
	char *const argv[] = {"/usr/bin/python3.11", NULL};

	check_pools(argv[0], argv);
}

/* forky's python3.14 in its chroot (scripts/install-deps.sh makes it) */
static void test_forky_python314_pools(void **state)
{
	char *const argv[] = {"/usr/sbin/chroot", "/var/lib/tracer/forky", "/usr/bin/python3.14",
			      NULL};

	check_pools("/var/lib/tracer/forky/usr/bin/python3.14", argv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_debian_python311_pools),
	    cmocka_unit_test(test_forky_python314_pools),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
