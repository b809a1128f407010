/* Small things every module may use; nothing here knows of BPF. */
#ifndef TRACER_UTIL_H
#define TRACER_UTIL_H

#include <stddef.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Makes room for need elements of elem bytes in the array *arr of *cap
 * elements, doubling it (from 64): 0, or -ENOMEM with *arr unchanged. */
int array_reserve(void **arr, size_t *cap, size_t elem, size_t need);

/* Length of the valid UTF-8 sequence at s (NUL-terminated), or 0 when it
 * is not one (truncated, overlong, a surrogate, beyond U+10FFFF). */
int utf8_sequence(const unsigned char *s);

#endif
