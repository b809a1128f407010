/* The cgroup v2 hierarchy, seen from the host: a cgroup's id (the inode of
 * its directory, which is what BPF's bpf_get_current_cgroup_id() gives)
 * from its path, and its path from its id. */
#ifndef TRACER_CGROUP_H
#define TRACER_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A cgroup path ("/system.slice/x.service") -> its id and level (its
 * depth below the root). 0, or -ENOTSUP (no cgroup v2 file system) or
 * -ENOENT with why said in why. */
int cgroup_id(const char *path, uint64_t *id, uint32_t *level, char *why, size_t len);

/* Paths of ids met before: a process gone (a short-lived one's exit
 * note) has no /proc/PID/cgroup left to read. */
#define CGROUP_NAMES_CACHED 64
struct cgroup_names {
	struct cgroup_name {
		uint64_t id;
		bool found;
		char path[256];
	} cached[CGROUP_NAMES_CACHED];
	size_t next;
	/* walks made in the second from window (CLOCK_MONOTONIC seconds) */
	double window;
	unsigned walks;
};

/* The path of cgroup id into out (of len > 0 bytes; printable ASCII, cut
 * to fit): known (a path read before, may be NULL) when it still is id's,
 * else walking the hierarchy when names has not met id, at most
 * CGROUP_WALKS_PER_SECOND times a second (processes in cgroups made and
 * removed as fast as they run would have the tracer walk without end): 0,
 * -ENOENT (no such cgroup: it went with its last process) or -EAGAIN (not
 * met, and too many walks this second, or a walk cut short). */
#define CGROUP_WALKS_PER_SECOND 4
int cgroup_path(struct cgroup_names *names, uint64_t id, const char *known, char *out,
		size_t len);

#endif
