/* The traced process: its identity, its memory map, and launching a
 * command under the tracer. */
#ifndef TRACER_TARGET_H
#define TRACER_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct target_mapping {
	uint64_t start, end, offset;
	bool exec;
	dev_t dev; /* the mapped file's identity */
	ino_t ino;
	char *path; /* NULL for anonymous mappings */
};

struct target_maps {
	struct target_mapping *m;
	size_t n;
};

/* 0 if the process exists, -ESRCH otherwise, -EINVAL for pid <= 0. */
int target_check(pid_t pid);
bool target_alive(pid_t pid);
/* The command line with arguments joined by spaces (comm if empty). */
int target_command(pid_t pid, char *buf, size_t len);
/* Start time in seconds since the epoch, 0 if unknown. */
uint64_t target_start_time(pid_t pid);

int target_read_maps(pid_t pid, struct target_maps *out);
void target_maps_free(struct target_maps *maps);
/* The mapping containing addr, or NULL. */
const struct target_mapping *target_maps_find(const struct target_maps *maps, uint64_t addr);
/* A path, openable from our root, to the file mapped at m (whose path is
 * not NULL): through /proc/PID/root for another mount namespace, as is in
 * a chroot of ours. */
void target_file_path(pid_t pid, const struct target_mapping *m, char *buf, size_t len);

/* Launching: fork a child that waits; exec it with target_launch_go once
 * the probes are in place. err receives a message on failure. */
struct target_launch {
	pid_t pid;
	int go_fd;  /* write end: closing it lets the child exec */
	int err_fd; /* read end: exec errno arrives here, EOF on success */
};
int target_launch_prepare(char *const argv[], char *const envp_extra[], struct target_launch *l);
/* Returns 0 when exec succeeded, else -errno of the failed exec. */
int target_launch_go(struct target_launch *l);

#endif
