/* Small things every module may use; nothing here knows of BPF. */
#ifndef TRACER_UTIL_H
#define TRACER_UTIL_H

#include <stddef.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Makes room for need elements of elem bytes in the array *arr of *cap
 * elements, doubling it (from 64): 0, or -ENOMEM with *arr unchanged. */
int array_reserve(void **arr, size_t *cap, size_t elem, size_t need);

#endif
