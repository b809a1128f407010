#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "target.h"

/* Reads /proc/PID/NAME into buf (NUL-terminated); returns its length or -errno. */
static ssize_t read_proc(pid_t pid, const char *name, char *buf, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0)
		n = -errno;
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

int target_traceable(pid_t pid, char *why, size_t len)
{
	char path[64], buf[1024], *p;
	unsigned long flags = 0;
	char state = 0;
	ssize_t n;
	int fd;

	if (pid <= 0) {
		snprintf(why, len, "no such process: %d", pid);
		return -EINVAL;
	}
	n = read_proc(pid, "stat", buf, sizeof(buf));
	p = n > 0 ? strrchr(buf, ')') : NULL;
	/* after the command: state (field 3), then fields 4-8, flags (field 9) */
	if (!p || sscanf(p + 1, " %c %*d %*d %*d %*d %*d %lu", &state, &flags) != 2) {
		snprintf(why, len, "no such process: %d", pid);
		return -ESRCH;
	}
	if (flags & 0x00200000) { /* PF_KTHREAD */
		snprintf(why, len, "process %d is a kernel thread: it has no allocator to trace",
			 pid);
		return -EINVAL;
	}
	if (state == 'Z' || state == 'X') {
		snprintf(why, len, "process %d has exited (a zombie): nothing to trace", pid);
		return -ESRCH;
	}
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, buf, 1) < 0) {
		int err = -errno;

		if (fd >= 0)
			close(fd);
		snprintf(why, len,
			 "cannot read process %d's memory map: %s (a process of another user "
			 "namespace, or a ptrace restriction)",
			 pid, strerror(-err));
		return err;
	}
	close(fd);
	return 0;
}


bool target_alive(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	bool alive = false;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f)) {
		p = strrchr(buf, ')');
		alive = p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
	}
	fclose(f);
	return alive;
}

size_t target_join_args(const char *args, size_t n, char *buf, size_t len)
{
	size_t i;

	if (n >= len)
		n = len - 1;
	while (n > 0 && args[n - 1] == '\0')
		n--;
	for (i = 0; i < n; i++)
		buf[i] = args[i] ? args[i] : ' ';
	buf[n] = '\0';
	return n;
}

int target_command(pid_t pid, char *buf, size_t len)
{
	ssize_t n = read_proc(pid, "cmdline", buf, len);

	if (n < 0)
		return (int)n;
	n = (ssize_t)target_join_args(buf, (size_t)n, buf, len);
	if (n == 0) { /* a kernel thread or a zombie: its comm */
		n = read_proc(pid, "comm", buf, len);
		if (n < 0)
			return (int)n;
		while (n > 0 && buf[n - 1] == '\n')
			buf[--n] = '\0';
	}
	return 0;
}

int target_comm(pid_t pid, char *buf, size_t len)
{
	ssize_t n = read_proc(pid, "comm", buf, len);

	if (n < 0)
		return (int)n;
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	return 0;
}

/* A "Name:\tvalue..." field of /proc/PID/status: its last number. */
static pid_t status_last_number(pid_t pid, const char *name)
{
	char path[64], buf[512];
	size_t nlen = strlen(name);
	pid_t v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(buf, sizeof(buf), f)) {
		char *p, *end;

		if (strncmp(buf, name, nlen) || buf[nlen] != ':')
			continue;
		for (p = buf + nlen + 1; *p;) {
			long x = strtol(p, &end, 10);

			if (end == p)
				break;
			v = x > 0 && x <= INT32_MAX ? (pid_t)x : 0;
			p = end;
		}
		break;
	}
	fclose(f);
	return v;
}

pid_t target_tgid_of(pid_t tid)
{
	return status_last_number(tid, "Tgid");
}

pid_t target_ns_pid(pid_t pid)
{
	return status_last_number(pid, "NSpid");
}

pid_t target_parent(pid_t pid)
{
	return status_last_number(pid, "PPid");
}

bool target_user_process(pid_t pid)
{
	char path[64], buf[8];

	/* a kernel thread has no executable; nor has a zombie */
	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	return readlink(path, buf, sizeof(buf)) > 0 && target_alive(pid);
}

uint64_t target_start_time(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ticks = 0;
	FILE *f;
	int i;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	fclose(f);
	if (!p)
		return 0;
	/* field 22 (starttime); p points at the end of field 2 */
	for (i = 2; i < 22 && p; i++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%llu", &ticks) != 1)
		return 0;
	return target_boot_to_epoch(ticks * (1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK)));
}

uint64_t target_boot_to_epoch(uint64_t ns)
{
	struct timespec now, up;

	clock_gettime(CLOCK_REALTIME, &now);
	clock_gettime(CLOCK_BOOTTIME, &up);
	return (uint64_t)(now.tv_sec - up.tv_sec) + ns / 1000000000ull;
}

char *target_maps_text(pid_t pid, size_t *len)
{
	char path[64], *buf = NULL;
	size_t cap = 0, n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return NULL;
	for (;;) {
		size_t r;

		if (cap - n < 4096) {
			char *p = realloc(buf, cap = cap ? cap * 2 : 65536);

			if (!p) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = p;
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		if (!r)
			break;
		n += r;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

int target_parse_maps(const char *text, size_t len, struct target_maps *out)
{
	const char *line = text, *end = text + len;
	size_t cap = 0;

	memset(out, 0, sizeof(*out));
	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t llen = nl ? (size_t)(nl - line) : (size_t)(end - line);
		unsigned long long start, stop, off, ino;
		unsigned int dmaj, dmin;
		char perms[8], buf[PATH_MAX + 128];
		int pos = 0;
		struct target_mapping *m;
		char *name;

		if (llen < sizeof(buf)) {
			memcpy(buf, line, llen);
			buf[llen] = '\0';
		} else {
			buf[0] = '\0'; /* longer than any path: not a file we can open */
		}
		line += llen + 1;
		if (sscanf(buf, "%llx-%llx %7s %llx %x:%x %llu%n", &start, &stop, perms, &off,
			   &dmaj, &dmin, &ino, &pos) < 7)
			continue;
		if (out->n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			void *p = realloc(out->m, ncap * sizeof(*out->m));

			if (!p) {
				target_maps_free(out);
				return -ENOMEM;
			}
			out->m = p;
			cap = ncap;
		}
		m = &out->m[out->n++];
		m->start = start;
		m->end = stop;
		m->offset = off;
		m->exec = perms[2] == 'x';
		m->dev = makedev(dmaj, dmin);
		m->ino = ino;
		name = buf + pos;
		while (*name == ' ')
			name++;
		m->path = *name == '/' ? strdup(name) : NULL;
	}
	return 0;
}

int target_read_maps(pid_t pid, struct target_maps *out)
{
	size_t len;
	char *text = target_maps_text(pid, &len);
	int err;

	if (!text) {
		memset(out, 0, sizeof(*out));
		return errno ? -errno : -ENOMEM;
	}
	err = target_parse_maps(text, len, out);
	free(text);
	return err;
}

void target_maps_free(struct target_maps *maps)
{
	size_t i;

	for (i = 0; i < maps->n; i++)
		free(maps->m[i].path);
	free(maps->m);
	maps->m = NULL;
	maps->n = 0;
}

const struct target_mapping *target_maps_find(const struct target_maps *maps, uint64_t addr)
{
	size_t lo = 0, hi = maps->n;

	while (lo < hi) { /* /proc/PID/maps is sorted by address */
		size_t mid = (lo + hi) / 2;

		if (addr < maps->m[mid].start)
			hi = mid;
		else if (addr >= maps->m[mid].end)
			lo = mid + 1;
		else
			return &maps->m[mid];
	}
	return NULL;
}

static bool is_file(const char *path, const struct target_mapping *m)
{
	struct stat st;

	return stat(path, &st) == 0 && st.st_dev == m->dev && st.st_ino == m->ino;
}

void target_file_path(pid_t pid, const struct target_mapping *m, char *buf, size_t len)
{
	char other[PATH_MAX + 64];

	/* The path as the kernel printed it, where it is that very file (the
	 * usual case, and a chroot of ours: messages stay readable); else as
	 * the target's root sees it (another mount namespace's root); else
	 * the mapping itself, which names the file whatever namespace, mount
	 * or name (a newline in it, a deleted file) it has. */
	if (is_file(m->path, m)) {
		snprintf(buf, len, "%s", m->path);
		return;
	}
	snprintf(other, sizeof(other), "/proc/%d/root%s", pid, m->path);
	if (pid > 0 && is_file(other, m)) {
		snprintf(buf, len, "%s", other);
		return;
	}
	snprintf(other, sizeof(other), "/proc/%d/map_files/%llx-%llx", pid,
		 (unsigned long long)m->start, (unsigned long long)m->end);
	if (pid > 0 && is_file(other, m)) {
		snprintf(buf, len, "%s", other);
		return;
	}
	snprintf(buf, len, "%s", m->path); /* gone: said where it is opened */
}

int target_mem_open(pid_t pid, struct target_mem *m)
{
	char path[64];

	m->pid = pid;
	m->wfd = -1;
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	m->fd = open(path, O_RDONLY | O_CLOEXEC);
	return m->fd < 0 ? -errno : 0;
}

void target_mem_close(struct target_mem *m)
{
	if (m->fd >= 0)
		close(m->fd);
	if (m->wfd >= 0)
		close(m->wfd);
	m->fd = m->wfd = -1;
}

int target_mem_read(struct target_mem *m, uint64_t addr, void *buf, size_t len)
{
	ssize_t n;

	if (m->fd < 0)
		return -EBADF;
	if (addr > (uint64_t)INT64_MAX - len)
		return -EFAULT;
	n = pread(m->fd, buf, len, (off_t)addr);
	if (n < 0)
		return -errno;
	if (n == 0 && len)
		return -ESRCH; /* no memory at all: the process is exiting */
	return (size_t)n == len ? 0 : -EIO;
}

int target_mem_write_u64(struct target_mem *m, uint64_t addr, uint64_t v)
{
	char path[64];
	ssize_t n;

	if (addr % 8 || addr > (uint64_t)INT64_MAX - 8)
		return -EFAULT;
	if (m->wfd < 0) {
		snprintf(path, sizeof(path), "/proc/%d/mem", m->pid);
		m->wfd = open(path, O_WRONLY | O_CLOEXEC);
		if (m->wfd < 0)
			return -errno;
	}
	n = pwrite(m->wfd, &v, sizeof(v), (off_t)addr);
	if (n < 0)
		return -errno;
	return n == sizeof(v) ? 0 : -EIO;
}

bool target_environ_has(pid_t pid, const char *entry)
{
	static char env[65536];
	ssize_t n = read_proc(pid, "environ", env, sizeof(env));

	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(env + i) + 1)
		if (!strcmp(env + i, entry))
			return true;
	return false;
}

int target_find_executable(const char *name, char *buf, size_t len)
{
	const char *path = getenv("PATH");
	char *dup, *save = NULL, *dir;
	int err = -ENOENT;

	if (strchr(name, '/')) {
		snprintf(buf, len, "%s", name);
		return 0;
	}
	dup = strdup(path ? path : "/usr/bin:/bin");
	if (!dup)
		return -ENOMEM;
	for (dir = strtok_r(dup, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		snprintf(buf, len, "%s/%s", dir, name);
		if (access(buf, X_OK) == 0) {
			err = 0;
			break;
		}
	}
	free(dup);
	if (err)
		buf[0] = '\0';
	return err;
}

/* The system's library directories on this architecture (Debian's
 * multiarch layout first). */
#if defined(__x86_64__)
#define MULTIARCH "x86_64-linux-gnu"
#elif defined(__aarch64__)
#define MULTIARCH "aarch64-linux-gnu"
#else
#define MULTIARCH ""
#endif
static const char system_dirs[] =
    "/lib/" MULTIARCH ":/usr/lib/" MULTIARCH ":/lib64:/usr/lib64:/lib:/usr/lib";

int target_find_library(const char *name, const char *runpath, const char *origin, char *buf,
			size_t len)
{
	const char *llp = getenv("LD_LIBRARY_PATH");
	char dirs[8192] = "", *save = NULL, *dir;
	size_t used;

	if (strchr(name, '/'))
		return -ENOENT;
	if (runpath && !strncmp(runpath, "$ORIGIN", 7))
		snprintf(dirs, sizeof(dirs), "%s%s:", origin, runpath + 7);
	else if (runpath && runpath[0])
		snprintf(dirs, sizeof(dirs), "%s:", runpath);
	used = strlen(dirs);
	snprintf(dirs + used, sizeof(dirs) - used, "%s%s%s", llp ? llp : "", llp ? ":" : "",
		 system_dirs);
	for (dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		snprintf(buf, len, "%s/%s", dir, name);
		if (access(buf, R_OK) == 0)
			return 0;
	}
	buf[0] = '\0';
	return -ENOENT;
}

int target_launch_prepare(char *const argv[], char *const envp_extra[], struct target_launch *l)
{
	int go[2], errp[2];
	pid_t pid;

	if (pipe2(go, O_CLOEXEC) || pipe2(errp, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		char c;
		int e;

		close(go[1]);
		close(errp[0]);
		/* wait until the tracer has its probes in place */
		while (read(go[0], &c, 1) < 0 && errno == EINTR)
			;
		for (; envp_extra && *envp_extra; envp_extra++)
			putenv(*envp_extra);
		/* as the tracer was started, not as it runs: no handler survives
		 * exec, but an ignored SIGPIPE and a blocked SIGCHLD would */
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		sigprocmask(SIG_SETMASK, &l->mask, NULL);
		execvp(argv[0], argv);
		e = errno;
		if (write(errp[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	close(go[0]);
	close(errp[1]);
	l->pid = pid;
	l->go_fd = go[1];
	l->err_fd = errp[0];
	return 0;
}

int target_launch_go(struct target_launch *l)
{
	ssize_t n;
	int e = 0;

	close(l->go_fd);
	l->go_fd = -1;
	do
		n = read(l->err_fd, &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(l->err_fd);
	l->err_fd = -1;
	return n == sizeof(e) ? -e : 0;
}

int target_cgroup(pid_t pid, char *out, size_t len)
{
	char path[64], line[4200];
	int err = -ENOENT;
	FILE *f;

	if (!len)
		return -EINVAL;
	out[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		size_t n = 0;

		if (strncmp(line, "0::", 3))
			continue;
		/* the target names its cgroups: nothing but printable ASCII */
		for (const char *p = line + 3; *p && *p != '\n' && n + 1 < len; p++)
			out[n++] = *p >= ' ' && *p < 0x7f ? *p : '?';
		out[n] = '\0';
		err = 0;
		break;
	}
	fclose(f);
	return err;
}
