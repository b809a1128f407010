/* A one-line progress report of long work (symbolizing a large process,
 * writing a big snapshot) on a terminal: "\rtracer: WHAT: N", updated in
 * place at most 5 times a second, shown only once the work has taken
 * after_ms, only when the stream is a terminal (never in a file or a
 * pipe: tests and scripts see nothing), and erased at the end. */
#ifndef TRACER_PROGRESS_H
#define TRACER_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct progress {
	FILE *out;
	const char *what; /* "symbolizing traces" */
	uint64_t start_ns, last_ns, after_ns;
	unsigned tick;
	bool tty, shown;
};

#define PROGRESS_AFTER_MS 500

void progress_begin(struct progress *p, FILE *out, const char *what, unsigned after_ms);
/* done: how much of the work is done so far (traces, bytes ...). */
void progress_step(struct progress *p, uint64_t done);
/* Shows the line now (work about to block, such as one big write), if the
 * stream is a terminal. */
void progress_show(struct progress *p, uint64_t done);
/* Erases the line if it was shown. */
void progress_end(struct progress *p);

#endif
