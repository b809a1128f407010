/* Small things every module may use; nothing here knows of BPF. */
#ifndef TRACER_UTIL_H
#define TRACER_UTIL_H

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
