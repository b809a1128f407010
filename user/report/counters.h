/* The snapshot's counters as reports show them: each is a loss (something
 * the report's figures miss: an allocation not traced, a traceback cut
 * short) or a note (an event worth knowing that costs no figure: a free of
 * a block from before the attach). Snapshot files keep the collector's
 * names ("allocs table full"); reports name them by a key that is an
 * identifier ("allocs_table_full") and say what they count in words. A name
 * this table does not know (a file from another tracer version) is a loss,
 * keyed by its name made an identifier. Knows nothing of BPF. */
#ifndef TRACER_COUNTERS_H
#define TRACER_COUNTERS_H

#include <stdbool.h>
#include <stddef.h>

enum counter_kind {
	COUNTER_LOSS,
	COUNTER_NOTE,
};

struct counter_info {
	enum counter_kind kind;
	char key[96];	/* [a-z0-9_]+ */
	char text[192]; /* what the count counts: "allocations not traced (...)" */
	/* the byte count that goes with another counter ("allocs table full
	 * (bytes)"): the text report shows it beside that one */
	bool bytes_of_previous;
};

/* What a counter named name is. */
void counter_describe(const char *name, struct counter_info *out);

/* The table counter_describe knows, for the documentation and tests: the
 * i-th collector name, or NULL past the end. */
const char *counter_known_name(size_t i);

#endif
