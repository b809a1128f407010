/* Native frames: return addresses of a process turned into source file,
 * line and function with libdw, resolved while the process lives and kept
 * usable after it exits (files are opened when their mapping is first seen).
 * Separate debug files are found by debuginfo.c. */
#ifndef TRACER_SYMBOLIZE_H
#define TRACER_SYMBOLIZE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct symbolizer;

/* An executable mapping of the process: addresses [start, limit) map the
 * file path from offset (pprof's Mapping). Strings are owned by the
 * symbolizer. */
struct symbolize_mapping {
	uint64_t start, limit, offset;
	const char *path;     /* as the target maps it; NULL: no mapping */
	const char *build_id; /* the file's GNU build-id in lowercase hex, or NULL */
	bool main;	      /* the process's executable */
};

struct symbolize_frame {
	const char *filename; /* source file, or "binary+0xOFFSET" without line info */
	uint32_t lineno;      /* 0 when unknown */
	const char *function; /* NULL when no symbol covers the address */
	/* where it is: the address resolved (the return address - 1, inside
	 * the call instruction), the return address's offset from the start of
	 * the function's symbol (0 unknown), the mapping holding pc */
	uint64_t pc;
	uint64_t function_offset;
	struct symbolize_mapping mapping;
};

int symbolize_open(pid_t pid, struct symbolizer **out);
void symbolize_close(struct symbolizer *s);
/* Re-reads the process's mappings if it lives; cheap when nothing changed. */
void symbolize_refresh(struct symbolizer *s);
/* Whether ip lies in an executable file mapping seen so far. */
bool symbolize_valid_ip(struct symbolizer *s, uint64_t ip);
/* The most frames one address expands to (inlined calls in one another). */
#define SYMBOLIZE_MAX_INLINE 64

/* Resolves a return address (the call instruction is just before it) into
 * its frames, innermost first: the functions inlined at the call, each at
 * its line (as addr2line -i shows them), then the function the code
 * belongs to, at the line of the outermost inlined call. Each frame has the
 * address's pc and mapping. *frames points at them; frames and strings are
 * owned by the symbolizer. Returns their number (>= 1), -ENOENT (ip
 * unknown) or -ENOMEM. */
int symbolize_return_address(struct symbolizer *s, uint64_t ip,
			     const struct symbolize_frame **frames);
/* The i-th executable file mapping seen so far (in address order): true
 * and *out filled, or false past the last. */
bool symbolize_mapping_at(struct symbolizer *s, size_t i, struct symbolize_mapping *out);

#endif
