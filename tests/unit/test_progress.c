/* The progress line: on a terminal (a real pseudo-terminal here) it is
 * shown once the work has taken its delay, updated in place with \r, and
 * erased at the end; on a pipe nothing is ever written. */
#include <fcntl.h>
#include <pty.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/progress.h"

/* Everything readable on fd now. */
static size_t drain(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	ssize_t r;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	while (n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	return n;
}

static void test_terminal(void **state)
{
	int master, slave;
	struct termios raw;
	struct progress p;
	char buf[4096];
	FILE *out;

	assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
	cfmakeraw(&raw);
	tcsetattr(slave, TCSANOW, &raw); /* bytes as written */
	out = fdopen(slave, "w");
	assert_non_null(out);
	progress_begin(&p, out, "symbolizing live traces", 0);
	for (uint64_t i = 1; i <= 1024; i++)
		progress_step(&p, i);
	progress_end(&p);
	drain(master, buf, sizeof(buf));
	/* the first update at the 256th step; later ones within 0.2 s are not shown */
	assert_string_equal(buf, "\rtracer: symbolizing live traces: 256\033[K\r\033[K");
	fclose(out);
	close(master);
}

static void test_delay_and_pipe(void **state)
{
	int fds[2], master, slave;
	struct progress p;
	char buf[4096];
	FILE *out;

	/* on a terminal, work shorter than the delay shows nothing */
	assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
	out = fdopen(slave, "w");
	progress_begin(&p, out, "x", 60000);
	for (uint64_t i = 1; i <= 4096; i++)
		progress_step(&p, i);
	progress_end(&p);
	assert_int_equal(drain(master, buf, sizeof(buf)), 0);
	fclose(out);
	close(master);

	/* a pipe: nothing, even when asked to show */
	assert_int_equal(pipe(fds), 0);
	out = fdopen(fds[1], "w");
	progress_begin(&p, out, "x", 0);
	for (uint64_t i = 1; i <= 4096; i++)
		progress_step(&p, i);
	progress_show(&p, 7);
	progress_end(&p);
	fclose(out);
	assert_int_equal(read(fds[0], buf, sizeof(buf)), 0);
	close(fds[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_terminal),
	    cmocka_unit_test(test_delay_and_pipe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
