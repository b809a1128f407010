/* Native frames: return addresses of a process turned into source file,
 * line and function with libdw, resolved while the process lives and kept
 * usable after it exits (files are opened when their mapping is first seen). */
#ifndef TRACER_SYMBOLIZE_H
#define TRACER_SYMBOLIZE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct symbolizer;

struct symbolize_frame {
	const char *filename; /* source file, or "binary+0xOFFSET" without line info */
	uint32_t lineno;      /* 0 when unknown */
	const char *function; /* NULL when no symbol covers the address */
};

int symbolize_open(pid_t pid, struct symbolizer **out);
void symbolize_close(struct symbolizer *s);
/* Re-reads the process's mappings if it lives; cheap when nothing changed. */
void symbolize_refresh(struct symbolizer *s);
/* Whether ip lies in an executable file mapping seen so far. */
bool symbolize_valid_ip(struct symbolizer *s, uint64_t ip);
/* Resolves a return address (the call instruction is just before it).
 * Strings are owned by the symbolizer. Returns 0 or -ENOENT (ip unknown). */
int symbolize_return_address(struct symbolizer *s, uint64_t ip, struct symbolize_frame *out);

#endif
