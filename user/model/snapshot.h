/* The snapshot model: every live trace of one moment, as tracemalloc's
 * Snapshot holds them, plus what tracer knows about the target and its own
 * losses. Strings, frames and tracebacks are interned in tables owned by the
 * snapshot; everything refers to them by index. Knows nothing of BPF. */
#ifndef TRACER_SNAPSHOT_H
#define TRACER_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Domains: 0 is tracemalloc's (Python allocators); PyTraceMalloc_Track may
 * use any other number; tracer's own domains sit at the top of the range,
 * from SNAPSHOT_DOMAIN_NATIVE up. */
#define SNAPSHOT_DOMAIN_PYTHON 0u
#define SNAPSHOT_DOMAIN_LIBC 0xfffffff0u
#define SNAPSHOT_DOMAIN_MMAP 0xfffffff1u /* anonymous memory mapped by the program itself */
#define SNAPSHOT_DOMAIN_NATIVE SNAPSHOT_DOMAIN_LIBC /* the lowest of tracer's own */

/* Classes of domains whose traced memory is kept apart: "python" is every
 * domain below SNAPSHOT_DOMAIN_NATIVE (0 and PyTraceMalloc_Track's), what
 * tracemalloc's get_traced_memory() counts; "native" is tracer's own
 * domains (libc today), which tracemalloc never sees. */
enum snapshot_domain_class {
	SNAPSHOT_CLASS_PYTHON,
	SNAPSHOT_CLASS_NATIVE,
	SNAPSHOT_NCLASSES,
};

/* Traced memory of one class: bytes live, and the highest that reached. */
struct snapshot_domain_memory {
	uint64_t current;
	uint64_t peak;
};

/* tracemalloc's limit for total_nframe */
#define SNAPSHOT_MAX_TOTAL_NFRAME 65535u

/* An executable mapping of a traced process: addresses [start, limit) map
 * the file path from file_offset (pprof's Mapping). path and build_id are
 * string indices; build_id is the file's GNU build-id in lowercase hex, or
 * SNAPSHOT_NO_STRING when it has none. start < limit. */
#define SNAPSHOT_NO_MAPPING UINT32_MAX
struct snapshot_mapping {
	uint64_t start, limit, file_offset;
	uint32_t path;
	uint32_t build_id;
};

/* One frame. filename/function are string indices; SNAPSHOT_NO_STRING for
 * "none". A native frame without line information has lineno 0 and a
 * filename of the form "/path/to/binary+0x1a2b" (the file offset).
 *
 * A native frame also says where it is: mapping (an index into mappings)
 * holds address, the instruction it was symbolized at in the process's
 * address space (its return address - 1: inside the call instruction, as
 * pprof's Location.address wants it); function_offset is the return
 * address's offset from the start of the function's symbol (what
 * "zmalloc_usable+0x19" says), 0 when unknown. A Python frame, and every
 * frame of a snapshot file written before tracer kept them, has mapping
 * SNAPSHOT_NO_MAPPING and address and function_offset 0. */
#define SNAPSHOT_NO_STRING UINT32_MAX
struct snapshot_frame {
	uint32_t filename;
	uint32_t lineno;
	uint32_t function;
	uint32_t mapping;
	uint64_t address;
	uint64_t function_offset;
};

/* A traceback: frames[first .. first+nframe) of the frame_ids array, most
 * recent first (tracemalloc's C order). total_nframe counts every frame the
 * stack had, saturated at 65535; nframe <= total_nframe. */
struct snapshot_traceback {
	uint32_t first;
	uint32_t nframe;
	uint32_t total_nframe;
};

/* age_ns: how long before the snapshot the block was allocated (to ~4 ms;
 * 0 when the snapshot has no ages, see snapshot.ages_known). */
struct snapshot_trace {
	uint64_t address;
	uint64_t size;
	uint32_t domain;
	uint32_t traceback;
	uint64_t age_ns;
	uint32_t process; /* index into processes; 0 when there are none */
};

/* A site over the run: per traceback and domain, what was allocated there
 * since tracing began (pprof's alloc_objects and alloc_space), how much of
 * it was temporary (freed by its thread before that thread's next
 * allocation: heaptrack's rule), and what was live there when its
 * process's traced memory was at its peak (the peak's live set; a reset of
 * the peak makes it the live set of that moment). */
struct snapshot_site {
	uint32_t traceback;
	uint32_t domain;
	uint32_t process; /* as snapshot_trace.process */
	uint64_t alloc_count, alloc_bytes;
	uint64_t temp_count, temp_bytes;
	uint64_t peak_count, peak_bytes;
};

/* A named loss or event counter ("allocs table full", "stack truncated" ...).
 * Names are static strings or owned by the snapshot's string table. */
struct snapshot_counter {
	uint32_t name; /* string index */
	uint64_t value;
};

struct snapshot_target {
	int32_t pid; /* 0: many processes (-a, several -p), each in processes */
	uint32_t command;    /* string index: the command line or comm */
	uint64_t start_time; /* target start, seconds since the epoch (0 unknown) */
	uint32_t host;	     /* string index: hostname */
	/* its cgroup v2 path ("/system.slice/x.service"), "" unknown; not kept
	 * in snapshot files */
	char cgroup[256];
};

/* --budget: traced in time windows (user/budget.c). Without it, on is
 * false and the figures cover all the time (coverage 1). */
struct snapshot_budget {
	bool on;
	double ratio;	  /* the budget: cost / each process's own CPU time */
	double coverage;  /* share of the time since tracing began with allocations traced */
	double overhead;  /* estimated cost / own CPU time so far (the highest of the processes) */
	double hit_cost_s; /* one probe hit, as calibrated */
	bool frees_windowed; /* even the frees in windows: the live set is the last window's */
	uint64_t windows;    /* windows opened so far */
};

/* A traced process of a snapshot that holds several (-a, --follow, -p
 * given more than once); a snapshot of one process has none, and its
 * target says which it is. Each figure is the process's own; the
 * snapshot's header figures are their sums. String fields are indices,
 * SNAPSHOT_NO_STRING when unknown. */
enum {
	SNAPSHOT_PROCESS_STARTED_AFTER = 1u, /* started after tracing began */
	/* probed only after it had run a while (found by -a after its exec):
	 * what it allocated before is not seen */
	SNAPSHOT_PROCESS_ATTACHED_LATE = 2u,
	SNAPSHOT_PROCESS_EXITED = 4u, /* gone; its figures are final */
	SNAPSHOT_PROCESS_FLAGS = 7u,  /* every flag known */
};

struct snapshot_process {
	int32_t pid;	  /* as the tracer sees it (the host's) */
	int32_t ns_pid;	  /* in its own pid namespace (a container's); 0 unknown */
	uint32_t command; /* the command line (or comm) */
	uint32_t comm;	  /* the kernel's short name */
	uint32_t cgroup;  /* cgroup v2 path, "/system.slice/x.service" */
	uint32_t runtime; /* "CPython 3.12.3", or none */
	uint32_t flags;	  /* SNAPSHOT_PROCESS_* */
	uint64_t start_time; /* seconds since the epoch, 0 unknown */
	uint64_t traced_current, traced_peak; /* every domain's */
	struct snapshot_domain_memory domain_memory[SNAPSHOT_NCLASSES];
	uint64_t alloc_events, free_events;
};

struct snapshot {
	/* header */
	struct snapshot_budget budget;
	uint32_t traceback_limit; /* nframe */
	uint64_t traced_current;  /* bytes live, every domain */
	uint64_t traced_peak;	  /* the highest traced_current reached */
	/* traced memory by class (indexed by enum snapshot_domain_class);
	 * domain_memory_known is false for a file written before tracer kept
	 * them (no domain memory section), and the figures are then 0 */
	bool domain_memory_known;
	struct snapshot_domain_memory domain_memory[SNAPSHOT_NCLASSES];
	uint64_t tracer_memory; /* bytes, get_tracemalloc_memory() */
	uint64_t taken_at;	/* seconds since the epoch */
	uint64_t duration_ns;	/* how long tracing ran */
	uint64_t alloc_events;
	uint64_t free_events;
	struct snapshot_target target;

	/* interned tables */
	char **strings;
	uint32_t nstrings, cap_strings;
	struct snapshot_frame *frames;
	uint32_t nframes, cap_frames;
	uint32_t *frame_ids;
	uint32_t nframe_ids, cap_frame_ids;
	struct snapshot_traceback *tracebacks;
	uint32_t ntracebacks, cap_tracebacks;
	/* the executable mappings of the traced process(es), the executable's
	 * first (pprof takes the first for the main binary); referenced by
	 * frames or not */
	struct snapshot_mapping *mappings;
	uint32_t nmappings, cap_mappings;

	struct snapshot_trace *traces;
	uint64_t ntraces;
	size_t cap_traces;
	/* whether traces carry their age; false for a file written before
	 * tracer kept them (no trace ages section) */
	bool ages_known;

	/* sites over the run, one per (traceback, domain), sorted by them;
	 * sites_known is false for a file written before tracer kept them (no
	 * sites section): then there are none */
	bool sites_known;
	struct snapshot_site *sites;
	uint32_t nsites, cap_sites;

	struct snapshot_counter *counters;
	uint32_t ncounters, cap_counters;

	/* the traced processes, when several (else none: the target is all);
	 * traces and sites refer to them by index */
	struct snapshot_process *processes;
	uint32_t nprocesses, cap_processes;

	/* hash indices for interning (private to snapshot.c) */
	void *intern;
};

/* What a snapshot traced within a budget covers, in one line for the
 * reports' headers and pprof's comment ("" without a budget). */
void snapshot_budget_line(const struct snapshot *s, char *out, size_t len);

/* Lifecycle. snapshot_new returns NULL on ENOMEM. */
struct snapshot *snapshot_new(void);
void snapshot_free(struct snapshot *s);

/* Interning; each returns an index, or a negative errno. Equal inputs give
 * equal indices. frames are most recent first. */
int64_t snapshot_intern_string(struct snapshot *s, const char *str);
int64_t snapshot_intern_frame(struct snapshot *s, const char *filename, uint32_t lineno,
			      const char *function);
/* A native frame, with where it is (struct snapshot_frame): mapping is
 * SNAPSHOT_NO_MAPPING (then address and function_offset must be 0) or a
 * mapping that holds address; else -EINVAL. */
int64_t snapshot_intern_native_frame(struct snapshot *s, const char *filename, uint32_t lineno,
				     const char *function, uint32_t mapping, uint64_t address,
				     uint64_t function_offset);
/* A mapping; build_id may be NULL. -EINVAL unless start < limit. */
int64_t snapshot_intern_mapping(struct snapshot *s, const char *path, const char *build_id,
				uint64_t start, uint64_t limit, uint64_t file_offset);
int64_t snapshot_intern_traceback(struct snapshot *s, const uint32_t *frame_ids, uint32_t nframe,
				  uint32_t total_nframe);

/* Adds a process; its index, or -ENOMEM. */
int64_t snapshot_add_process(struct snapshot *s, const struct snapshot_process *p);
/* The process of a trace or site, or NULL in a snapshot of one process. */
static inline const struct snapshot_process *snapshot_process_at(const struct snapshot *s,
								  uint32_t process)
{
	return process < s->nprocesses ? &s->processes[process] : NULL;
}

/* Adds t as it is (traceback and process checked; ages_known set when
 * ages is true); 0, -EINVAL or -ENOMEM. */
int snapshot_add_trace_of(struct snapshot *s, const struct snapshot_trace *t, bool ages);

/* Adds a trace (of unknown age, 0); returns 0 or a negative errno. */
int snapshot_add_trace(struct snapshot *s, uint64_t address, uint64_t size, uint32_t domain,
		       uint32_t traceback);
/* The same, with its age (set ages_known). */
int snapshot_add_aged_trace(struct snapshot *s, uint64_t address, uint64_t size, uint32_t domain,
			    uint32_t traceback, uint64_t age_ns);

/* Adds a site's figures (sets sites_known); a (traceback, domain,
 * process) already there adds up. Cheap in that order, a move of the sites
 * after it otherwise: many in any order go through snapshot_add_sites.
 * 0, -EINVAL for a traceback or process out of range, or -ENOMEM. */
int snapshot_add_site(struct snapshot *s, const struct snapshot_site *site);
/* Adds n sites in any order (sorted here first, so cheap for many). */
int snapshot_add_sites(struct snapshot *s, struct snapshot_site *sites, size_t n);
/* The site of (traceback, domain, process), or NULL. */
const struct snapshot_site *snapshot_find_site(const struct snapshot *s, uint32_t traceback,
					       uint32_t domain, uint32_t process);

/* For pprof's alloc_objects and alloc_space: per traceback (arrays of
 * s->ntracebacks, malloc'ed, the caller frees them) the allocations made
 * with it since tracing began, every domain's, counted and in bytes; all
 * 0 when the snapshot has no sites (!sites_known). 0 or -ENOMEM. */
int snapshot_alloc_totals(const struct snapshot *s, uint64_t **objects, uint64_t **bytes);

/* Sets (adds or replaces) a counter by name. */
int snapshot_set_counter(struct snapshot *s, const char *name, uint64_t value);

static inline const char *snapshot_string(const struct snapshot *s, uint32_t idx)
{
	return idx < s->nstrings ? s->strings[idx] : NULL;
}

static inline const struct snapshot_frame *
snapshot_frame_at(const struct snapshot *s, const struct snapshot_traceback *tb, uint32_t i)
{
	return &s->frames[s->frame_ids[tb->first + i]];
}

static inline const struct snapshot_mapping *snapshot_frame_mapping(const struct snapshot *s,
								    const struct snapshot_frame *f)
{
	return f->mapping < s->nmappings ? &s->mappings[f->mapping] : NULL;
}

/* The class of a domain. */
static inline enum snapshot_domain_class snapshot_domain_class(uint32_t domain)
{
	return domain >= SNAPSHOT_DOMAIN_NATIVE ? SNAPSHOT_CLASS_NATIVE : SNAPSHOT_CLASS_PYTHON;
}

/* "python" or "native"; NULL for a class out of range. */
const char *snapshot_class_name(enum snapshot_domain_class c);

/* Traced memory as tracemalloc's get_traced_memory() gives it: the python
 * class's figures when the snapshot knows them and Python-domain blocks
 * were traced (its current or peak is not 0), and then returns true; else
 * every domain's (traced_current, traced_peak), and returns false. */
bool snapshot_traced_memory(const struct snapshot *s, uint64_t *current, uint64_t *peak);

/* "python", "libc" or the decimal number; buf must hold 16 bytes. */
const char *snapshot_domain_name(uint32_t domain, char *buf);
/* Parses a domain name or number; returns 0 or -EINVAL. */
int snapshot_parse_domain(const char *name, uint32_t *domain);

#endif
