#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "live/view.h"
#include "model/snapshot.h"
#include "model/stats.h"
#include "report/format.h"
#include "util/util.h"

enum live_sort { SORT_SIZE, SORT_GROWTH, SORT_COUNT, NSORTS };

#define TRACER_LIVE_MAX_FRAMES 16

static const char *const sort_names[NSORTS] = {"size", "growth", "count"};

struct live_view {
	struct live_view_options o;
	enum stats_key key;
	enum live_sort sort;
	uint32_t frames; /* frames shown per traceback statistic */
	bool paused, quit, active;
	struct snapshot *cur, *prev;
	double next_refresh;
	uint64_t refreshes;
};

/* The view restores the terminal even when the tracer leaves another way
 * than through live_view_close (exit() on an error path). */
static struct live_view *open_view;

static void restore_at_exit(void)
{
	if (open_view)
		live_view_close(open_view);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct live_view *live_view_open(const struct live_view_options *o, char *why, size_t len)
{
	struct live_view *v;

	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		snprintf(why, len, "tracer top needs a terminal (its standard input and output)");
		return NULL;
	}
	v = calloc(1, sizeof(*v));
	if (!v) {
		snprintf(why, len, "out of memory");
		return NULL;
	}
	v->o = *o;
	v->key = o->key;
	v->frames = 1;
	if (!initscr()) {
		free(v);
		snprintf(why, len, "cannot start the terminal view (TERM=%s)",
			 getenv("TERM") ? getenv("TERM") : "");
		return NULL;
	}
	v->active = true;
	open_view = v;
	atexit(restore_at_exit);
	cbreak();
	noecho();
	nodelay(stdscr, TRUE);
	keypad(stdscr, TRUE);
	curs_set(0);
	mvprintw(0, 0, "tracer top: attaching ...");
	refresh();
	return v;
}

/* The statistics to show: against the snapshot before (growth), sorted
 * by the chosen order. */
static int by_size(const void *a, const void *b)
{
	const struct stats_entry *x = a, *y = b;

	return x->size != y->size ? (x->size < y->size ? 1 : -1)
				  : (x->count < y->count) - (x->count > y->count);
}

static int by_growth(const void *a, const void *b)
{
	const struct stats_entry *x = a, *y = b;

	return x->size_diff != y->size_diff ? (x->size_diff < y->size_diff ? 1 : -1)
					    : by_size(a, b);
}

static int by_count(const void *a, const void *b)
{
	const struct stats_entry *x = a, *y = b;

	return x->count != y->count ? (x->count < y->count ? 1 : -1) : by_size(a, b);
}

/* One frame as the text report prints it, cut to the screen. */
static void put_frame(int row, int col, const struct stats_frame *f)
{
	char *text = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&text, &n);

	if (!m)
		return;
	format_frame(m, f);
	fclose(m);
	if (text && col < COLS)
		mvaddnstr(row, col, text, COLS - col);
	free(text);
}

static void draw(struct live_view *v)
{
	const struct snapshot *s = v->cur;
	struct stats_list list = {0};
	char a[32], b[32], c[32];
	double dt;
	int row = 0, err;

	erase();
	if (!s) {
		mvprintw(0, 0, "tracer top: no snapshot could be made (out of memory)");
		refresh();
		return;
	}
	mvprintw(row++, 0, "tracer top - pid %d (%s)%s", s->target.pid,
		 snapshot_string(s, s->target.command) ? snapshot_string(s, s->target.command) : "?",
		 v->paused ? "   [paused]" : "");
	mvprintw(row++, 0, "traced memory: current %s, peak %s; %llu live blocks; tracer %s",
		 format_size(a, sizeof(a), (double)s->traced_current, false),
		 format_size(b, sizeof(b), (double)s->traced_peak, false),
		 (unsigned long long)s->ntraces,
		 format_size(c, sizeof(c), (double)s->tracer_memory, false));
	dt = v->prev ? (double)(s->duration_ns - v->prev->duration_ns) / 1e9 : 0;
	if (v->prev && dt > 0)
		mvprintw(row++, 0, "allocations %.0f/s, frees %.0f/s (refresh %llu)",
			 (double)(s->alloc_events - v->prev->alloc_events) / dt,
			 (double)(s->free_events - v->prev->free_events) / dt,
			 (unsigned long long)v->refreshes);
	else
		mvprintw(row++, 0, "allocations %llu, frees %llu (refresh %llu)",
			 (unsigned long long)s->alloc_events, (unsigned long long)s->free_events,
			 (unsigned long long)v->refreshes);
	mvprintw(row++, 0, "group by %s (g)  sort by %s (s)  frames %u (+/-)  pause (p)  quit (q)",
		 stats_key_name(v->key), sort_names[v->sort], v->frames);
	row++;
	attron(A_BOLD);
	mvprintw(row++, 0, "%10s %11s %9s  %s", "SIZE", "GROWTH", "COUNT", "WHERE");
	attroff(A_BOLD);
	err = v->prev ? stats_compare(s, v->prev, v->key, false, &list)
		      : stats_compute(s, v->key, false, &list);
	if (err) {
		mvprintw(row, 0, "cannot compute the statistics");
		refresh();
		return;
	}
	qsort(list.entries, list.n, sizeof(list.entries[0]),
	      v->sort == SORT_GROWTH ? by_growth : v->sort == SORT_COUNT ? by_count : by_size);
	for (size_t i = 0; i < list.n && row < LINES; i++) {
		const struct stats_entry *e = &list.entries[i];
		uint32_t shown = v->key == STATS_KEY_TRACEBACK ? v->frames : 1;

		if (v->o.top && i >= v->o.top)
			break;
		if (!e->size && !e->size_diff)
			continue; /* gone since the snapshot before */
		mvprintw(row, 0, "%10s %11s %9llu  ", format_size(a, sizeof(a), (double)e->size, false),
			 format_size(b, sizeof(b), (double)e->size_diff, true),
			 (unsigned long long)e->count);
		for (uint32_t k = 0; k < e->nkey && k < shown && row < LINES; k++)
			put_frame(row++, k ? 36 : 34, &e->key[k]);
		if (!e->nkey)
			row++;
	}
	stats_list_free(&list);
	refresh();
}

bool live_view_wants(struct live_view *v)
{
	bool redraw = false;
	int ch;

	while ((ch = getch()) != ERR) {
		switch (ch) {
		case 'q':
		case 'Q':
			v->quit = true;
			break;
		case 'g':
			v->key = v->key == STATS_KEY_LINENO	? STATS_KEY_FILENAME
				 : v->key == STATS_KEY_FILENAME ? STATS_KEY_TRACEBACK
								: STATS_KEY_LINENO;
			redraw = true;
			break;
		case 's':
			v->sort = (v->sort + 1) % NSORTS;
			redraw = true;
			break;
		case '+':
			if (v->frames < TRACER_LIVE_MAX_FRAMES)
				v->frames++;
			redraw = true;
			break;
		case '-':
			if (v->frames > 1)
				v->frames--;
			redraw = true;
			break;
		case 'p':
			v->paused = !v->paused;
			redraw = true;
			break;
		case KEY_RESIZE:
			redraw = true;
			break;
		}
	}
	if (redraw && v->cur)
		draw(v); /* from the snapshots held: no new one needed */
	if (v->paused || v->quit || now_s() < v->next_refresh)
		return false;
	v->next_refresh = now_s() + v->o.refresh;
	return true;
}

void live_view_show(struct live_view *v, struct snapshot *snap, double build_seconds)
{
	(void)build_seconds;
	if (v->prev)
		snapshot_free(v->prev);
	v->prev = v->cur;
	v->cur = snap;
	v->refreshes++;
	draw(v);
}

bool live_view_quit(const struct live_view *v)
{
	return v->quit;
}

void live_view_close(struct live_view *v)
{
	if (!v || !v->active)
		return;
	v->active = false;
	endwin();
	open_view = NULL;
	snapshot_free(v->cur);
	snapshot_free(v->prev);
	v->cur = v->prev = NULL;
}
