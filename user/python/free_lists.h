/* What the tracer does with objects CPython takes from its free lists. */
#ifndef TRACER_PYTHON_FREE_LISTS_H
#define TRACER_PYTHON_FREE_LISTS_H

/* Whether objects CPython takes from its free lists move to the line that
 * takes them, as tracemalloc moves them (a probe hit per object made): by
 * default (where it cannot, said with -v), asked for (said in a warning),
 * or not (--no-python-free-lists). */
enum python_free_lists { PYTHON_FREE_LISTS_OFF, PYTHON_FREE_LISTS_ON, PYTHON_FREE_LISTS_ASKED };

#endif
