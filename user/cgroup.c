/* The cgroup v2 hierarchy (cgroup.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"

#define CGROUP2_MAGIC 0x63677270 /* CGROUP2_SUPER_MAGIC */
/* bounds of a walk: whoever may make cgroups (a delegated user) controls
 * how many and how deep */
#define CGROUP_WALK_DEPTH 32
#define CGROUP_WALK_DIRS 16384

/* Where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup, or in a hybrid
 * setup (v1 controllers beside it) /sys/fs/cgroup/unified, as the mount
 * table says. */
static void cgroup2_root(char *buf, size_t len)
{
	char dev[256], dir[PATH_MAX], type[64];
	FILE *f = fopen("/proc/self/mounts", "re");

	snprintf(buf, len, "/sys/fs/cgroup");
	if (!f)
		return;
	while (fscanf(f, "%255s %4095s %63s %*[^\n]", dev, dir, type) == 3)
		if (!strcmp(type, "cgroup2") && !strchr(dir, '\\')) {
			snprintf(buf, len, "%s", dir);
			break;
		}
	fclose(f);
}

int cgroup_id(const char *path, uint64_t *id, uint32_t *level, char *why, size_t len)
{
	char root[PATH_MAX], dir[2 * PATH_MAX];
	struct statfs fs;
	struct stat st;
	const char *p;

	cgroup2_root(root, sizeof(root));
	if (statfs(root, &fs) || fs.f_type != CGROUP2_MAGIC) {
		snprintf(why, len, "no cgroup v2 file system mounted (%s is not one)", root);
		return -ENOTSUP;
	}
	snprintf(dir, sizeof(dir), "%s%s", root, path);
	if (lstat(dir, &st) || !S_ISDIR(st.st_mode)) {
		snprintf(why, len, "no cgroup %s (%s)", path, strerror(errno ? errno : ENOTDIR));
		return -ENOENT;
	}
	*id = st.st_ino;
	*level = 0;
	for (p = path; *p; p++)
		if (*p == '/' && p[1] && p[1] != '/')
			++*level;
	return 0;
}

struct walk {
	uint64_t id;
	size_t dirs;
	bool cut; /* a directory not looked into: not found is not gone */
	char path[PATH_MAX]; /* below the root, "" for the root itself */
};

/* Looks below the directory dfd (w->path) for w->id: 1 found (w->path is
 * its path), 0 not. Consumes dfd. */
static int walk_below(int dfd, struct walk *w, int depth)
{
	DIR *d = fdopendir(dfd);
	struct dirent *e;
	size_t base = strlen(w->path);
	int found = 0;

	if (!d) {
		close(dfd);
		w->cut = true;
		return 0;
	}
	while (!found && (e = readdir(d))) {
		struct stat st;
		int sub;

		if (e->d_type != DT_DIR || !strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (w->dirs >= CGROUP_WALK_DIRS) {
			w->cut = true;
			break;
		}
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISDIR(st.st_mode))
			continue;
		w->dirs++;
		if (base + 1 + strlen(e->d_name) >= sizeof(w->path)) {
			w->cut = true;
			continue;
		}
		snprintf(w->path + base, sizeof(w->path) - base, "/%s", e->d_name);
		if ((uint64_t)st.st_ino == w->id) {
			found = 1;
			break;
		}
		if (depth >= CGROUP_WALK_DEPTH) {
			w->cut = true;
		} else if ((sub = openat(dirfd(d), e->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >= 0) {
			found = walk_below(sub, w, depth + 1);
		} else {
			w->cut = true;
		}
		if (!found)
			w->path[base] = '\0';
	}
	closedir(d);
	return found;
}

/* out = path, with nothing but printable ASCII (whoever names a cgroup
 * controls its bytes), cut to fit. */
static void copy_printable(char *out, size_t len, const char *path)
{
	size_t n = 0;

	for (const char *p = path; *p && n + 1 < len; p++)
		out[n++] = *p >= ' ' && *p < 0x7f ? *p : '?';
	out[n] = '\0';
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int cgroup_path(struct cgroup_names *names, uint64_t id, const char *known, char *out,
		size_t len)
{
	char root[PATH_MAX];
	struct walk w = {.id = id};
	struct cgroup_name *slot;
	struct statfs fs;
	struct stat st;
	double t = now_s();
	int dfd, found;

	if (!id)
		return -ENOENT;
	cgroup2_root(root, sizeof(root));
	if (statfs(root, &fs) || fs.f_type != CGROUP2_MAGIC)
		return -ENOENT; /* a v1 hierarchy's inodes are not v2 ids */
	dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -ENOENT;
	/* the path read while it lived, if it is still the cgroup's */
	found = known && known[0] == '/' &&
		!fstatat(dfd, known[1] ? known + 1 : ".", &st, AT_SYMLINK_NOFOLLOW) &&
		S_ISDIR(st.st_mode) && (uint64_t)st.st_ino == id;
	close(dfd);
	if (found) {
		copy_printable(out, len, known);
		return 0;
	}
	for (size_t i = 0; i < CGROUP_NAMES_CACHED; i++)
		if (names->cached[i].id == id) {
			if (!names->cached[i].found)
				return -ENOENT;
			copy_printable(out, len, names->cached[i].path);
			return 0;
		}
	if (t - names->window >= 1) {
		names->window = t;
		names->walks = 0;
	}
	if (names->walks >= CGROUP_WALKS_PER_SECOND)
		return -EAGAIN;
	names->walks++;
	dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -EAGAIN;
	if (!fstat(dfd, &st) && (uint64_t)st.st_ino == id) {
		close(dfd);
		found = 1;
	} else {
		found = walk_below(dfd, &w, 1);
	}
	if (!found && w.cut)
		return -EAGAIN; /* not all looked at: maybe later */
	/* a cgroup not found by a whole walk is remembered too: it is gone */
	slot = &names->cached[names->next];
	names->next = (names->next + 1) % CGROUP_NAMES_CACHED;
	slot->id = id;
	slot->found = found;
	copy_printable(slot->path, sizeof(slot->path), w.path[0] ? w.path : "/");
	if (!found)
		return -ENOENT;
	copy_printable(out, len, slot->path);
	return 0;
}
