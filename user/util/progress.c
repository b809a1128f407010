#include <inttypes.h>
#include <time.h>
#include <unistd.h>

#include "util/progress.h"

#define REFRESH_NS 200000000ull

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void progress_begin(struct progress *p, FILE *out, const char *what, unsigned after_ms)
{
	*p = (struct progress){.out = out, .what = what, .after_ns = after_ms * 1000000ull};
	p->tty = out && isatty(fileno(out));
	if (p->tty)
		p->start_ns = now_ns();
}

void progress_show(struct progress *p, uint64_t done)
{
	if (!p->tty)
		return;
	fprintf(p->out, "\rtracer: %s: %" PRIu64 "\033[K", p->what, done);
	fflush(p->out);
	p->shown = true;
	p->last_ns = now_ns();
}

void progress_step(struct progress *p, uint64_t done)
{
	uint64_t t;

	/* the clock only every 256 steps: steps are cheap work */
	if (!p->tty || (++p->tick & 255))
		return;
	t = now_ns();
	if (t - p->start_ns < p->after_ns || (p->shown && t - p->last_ns < REFRESH_NS))
		return;
	progress_show(p, done);
}

void progress_end(struct progress *p)
{
	if (p->shown) {
		fputs("\r\033[K", p->out);
		fflush(p->out);
	}
	p->shown = false;
}
