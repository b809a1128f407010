/* tracer top's screen (ncurses): the header figures of the latest
 * snapshot, then its top statistics with their growth since the snapshot
 * before, refreshed each second; keys change the grouping, the order, the
 * frames shown, pause and quit. Knows snapshots and statistics, not BPF. */
#ifndef TRACER_LIVE_VIEW_H
#define TRACER_LIVE_VIEW_H

#include <stdbool.h>
#include <stdint.h>

#include "model/stats.h"

struct snapshot;
struct live_view;

struct live_view_options {
	enum stats_key key; /* the grouping at start */
	uint32_t top;	    /* statistics shown at most (0: as many as fit) */
	double refresh;	    /* seconds between refreshes */
};

/* Takes the terminal (alternate screen, no echo, keys unbuffered); NULL
 * when stdin or stdout is not a terminal or ncurses cannot start, with one
 * line in why. */
struct live_view *live_view_open(const struct live_view_options *o, char *why, size_t len);
/* Reads the keys typed since the last call; true when a new snapshot is
 * due (a refresh, or a key that changes what is shown). */
bool live_view_wants(struct live_view *v);
/* Shows snap (owned from here on; NULL: none could be made). */
void live_view_show(struct live_view *v, struct snapshot *snap, double build_seconds);
/* The user asked to quit (q). */
bool live_view_quit(const struct live_view *v);
/* Gives the terminal back as it was; safe to call twice. */
void live_view_close(struct live_view *v);

#endif
