/* The traced process: its identity, its memory map, and launching a
 * command under the tracer. */
#ifndef TRACER_TARGET_H
#define TRACER_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
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

bool target_alive(pid_t pid);
/* The process (thread group) thread tid belongs to, or 0 when gone. */
pid_t target_tgid_of(pid_t tid);
/* Whether pid is a process that can be traced: 0, or -errno with why
 * saying what it is (no such process, a kernel thread, a zombie, a memory
 * map we may not read). */
int target_traceable(pid_t pid, char *why, size_t len);
/* The command line with arguments joined by spaces (comm if empty). */
int target_command(pid_t pid, char *buf, size_t len);
/* args (n bytes of a command line, each argument ended by a NUL) joined
 * by spaces in buf, which holds len bytes (len > 0): its length. */
size_t target_join_args(const char *args, size_t n, char *buf, size_t len);
/* Start time in seconds since the epoch, 0 if unknown. */
uint64_t target_start_time(pid_t pid);
/* A start time of ns on CLOCK_BOOTTIME in seconds since the epoch. */
uint64_t target_boot_to_epoch(uint64_t ns);
/* The kernel's short name (comm), NUL-terminated; 0 or -errno. */
int target_comm(pid_t pid, char *buf, size_t len);
/* Its pid in its own (innermost) pid namespace, and its parent's pid; 0
 * when unknown. */
pid_t target_ns_pid(pid_t pid);
pid_t target_parent(pid_t pid);
/* Whether pid is a process with a user address space (not a kernel
 * thread, not a zombie). */
bool target_user_process(pid_t pid);

int target_read_maps(pid_t pid, struct target_maps *out);
/* The text of /proc/PID/maps, NUL-terminated, *len its length; NULL (errno
 * set) when it cannot be read. The caller frees it. */
char *target_maps_text(pid_t pid, size_t *len);
/* Parses that text; lines that do not parse are skipped. 0 or -ENOMEM. */
int target_parse_maps(const char *text, size_t len, struct target_maps *out);
void target_maps_free(struct target_maps *maps);
/* The mapping containing addr, or NULL. */
const struct target_mapping *target_maps_find(const struct target_maps *maps, uint64_t addr);
/* A path, openable from our root, to the very file mapped at m (whose path
 * is not NULL; checked by device and inode): the path itself, or through
 * /proc/PID/root (another root), or /proc/PID/map_files (a file only the
 * target's mount namespace shows, a deleted or renamed one). */
void target_file_path(pid_t pid, const struct target_mapping *m, char *buf, size_t len);

/* The process's memory, through one /proc/PID/mem descriptor: reads, and
 * the one write the tracer ever makes (--hook-pymalloc's table slots),
 * asked for by name. No ptrace. */
struct target_mem {
	pid_t pid;
	int fd;	 /* read-only; -1 until opened */
	int wfd; /* opened for the first write only */
};
int target_mem_open(pid_t pid, struct target_mem *m);
void target_mem_close(struct target_mem *m);
/* Reads exactly len bytes at addr: 0, -EIO when fewer exist (nothing
 * mapped there: -EIO too), -ESRCH when the process has no memory left (it
 * is exiting), or -errno. */
int target_mem_read(struct target_mem *m, uint64_t addr, void *buf, size_t len);
/* One aligned 8-byte store. */
int target_mem_write_u64(struct target_mem *m, uint64_t addr, uint64_t v);

/* Whether the process's environment holds the entry "NAME=VALUE" exactly
 * (the first 64 KiB of it). */
bool target_environ_has(pid_t pid, const char *entry);

/* What a launched command will map, found before it runs: the executable
 * as execvp would find it (PATH, with "/usr/bin:/bin" when unset), and a
 * needed library as the dynamic linker would (RUNPATH with $ORIGIN,
 * LD_LIBRARY_PATH, the system's directories). 0 or -ENOENT. */
int target_find_executable(const char *name, char *buf, size_t len);
int target_find_library(const char *name, const char *runpath, const char *origin, char *buf,
			size_t len);

/* Launching: fork a child that waits; exec it with target_launch_go once
 * the probes are in place. err receives a message on failure. */
struct target_launch {
	pid_t pid;
	int go_fd;  /* write end: closing it lets the child exec */
	int err_fd; /* read end: exec errno arrives here, EOF on success */
	/* the command's signal mask (the tracer's own, from before it blocked
	 * any); its dispositions are the defaults */
	sigset_t mask;
};
int target_launch_prepare(char *const argv[], char *const envp_extra[], struct target_launch *l);
/* Returns 0 when exec succeeded, else -errno of the failed exec. */
int target_launch_go(struct target_launch *l);

/* Process pid's cgroup in the v2 hierarchy (/proc/PID/cgroup's "0::" line:
 * "/system.slice/x.service"), printable ASCII only, truncated to len; ""
 * and -errno when unknown, else 0. */
int target_cgroup(pid_t pid, char *out, size_t len);

#endif
