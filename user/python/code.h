/* CPython code objects read from outside: (code object, instruction) ->
 * file, line and function, as PyFrame_GetLineNumber computes them, for every
 * supported version, with the code layout of python/layout.c. Reads the
 * target's memory; never writes. */
#ifndef TRACER_PYTHON_CODE_H
#define TRACER_PYTHON_CODE_H

#include <stdint.h>
#include <sys/types.h>

#include "python/find.h"

struct python_code;

/* A cache of t's code objects, read through t->mem (which must stay open
 * until python_code_close). 0, -EPROTONOSUPPORT or -ENOMEM. */
int python_code_open(const struct python_target *t, struct python_code **out);
void python_code_close(struct python_code *c);

/* Resolves one frame captured with identity ident (co_filename ^ co_name<<1
 * at capture); strings are owned by the cache. Returns 0, -ESTALE when the
 * object at that address is no longer the captured code object, or -errno
 * when it cannot be read. */
int python_code_frame(struct python_code *c, uint64_t code, int64_t instr, uint64_t ident,
		      const char **filename, uint32_t *lineno, const char **function);

/* Reads through mem from now on (another process of the same interpreter:
 * a forked child); returns the memory read through until now. */
struct target_mem *python_code_use_mem(struct python_code *c, struct target_mem *mem);

/* Re-reads the identity of every cached code object and forgets those
 * whose memory now holds something else (freed and reused). */
void python_code_revalidate(struct python_code *c);

/* The line of instruction instr given a version's line table (exposed for
 * unit tests). minor selects the format: lnotab (<= 9), 3.10 linetable,
 * 3.11+ location table. instr is f_lasti for <= 10, a code unit index after. */
int python_code_line(int minor, const uint8_t *table, size_t len, int firstlineno, int64_t instr);

#endif
