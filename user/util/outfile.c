#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/outfile.h"

struct outfile {
	int dirfd;
	int fd;
	FILE *f;
	bool unnamed; /* O_TMPFILE: no name until linked */
	char base[NAME_MAX + 1];
	char tmp[NAME_MAX + 1]; /* the hidden name, when not unnamed */
	char path[PATH_MAX];	/* for messages */
};

static int why_errno(char *why, size_t len, int err, const char *fmt, const char *arg)
{
	snprintf(why, len, fmt, arg, strerror(-err));
	return err;
}

/* The user the file is for: the one who ran sudo, else ourselves. */
static void invoking_user(uid_t *uid, gid_t *gid)
{
	const char *u = getenv("SUDO_UID"), *g = getenv("SUDO_GID");
	char *end;
	unsigned long v;

	*uid = geteuid();
	*gid = getegid();
	if (*uid != 0 || !u || !g)
		return;
	errno = 0;
	v = strtoul(u, &end, 10);
	if (errno || end == u || *end || v >= (unsigned long)(uid_t)-1)
		return;
	*uid = (uid_t)v;
	v = strtoul(g, &end, 10);
	if (errno || end == g || *end || v >= (unsigned long)(gid_t)-1) {
		*uid = 0;
		return;
	}
	*gid = (gid_t)v;
}

/* Splits path into its directory (opened) and last component. */
static int open_parent(const char *path, int *dirfd, char *base, char *why, size_t why_len)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
	size_t dlen = slash ? (size_t)(slash - path) : 0;

	if (!*name || !strcmp(name, ".") || !strcmp(name, "..")) {
		snprintf(why, why_len, "%s: not a file name", path);
		return -EISDIR;
	}
	if (strlen(name) > NAME_MAX || dlen >= sizeof(dir)) {
		snprintf(why, why_len, "%s: name too long", path);
		return -ENAMETOOLONG;
	}
	if (slash && dlen == 0)
		strcpy(dir, "/");
	else if (slash)
		memcpy(dir, path, dlen), dir[dlen] = '\0';
	else
		strcpy(dir, ".");
	strcpy(base, name);
	*dirfd = open(dir, O_DIRECTORY | O_CLOEXEC | O_PATH);
	if (*dirfd < 0)
		return why_errno(why, why_len, -errno, "directory %s: %s", dir);
	return 0;
}

/* What is at base in dirfd may be replaced (or nothing is there). */
static int check_name(int dirfd, const char *base, const char *path, char *why, size_t why_len)
{
	struct stat st, dst;
	uid_t uid;
	gid_t gid;

	if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW)) {
		if (errno == ENOENT)
			return 0;
		return why_errno(why, why_len, -errno, "%s: %s", path);
	}
	if (S_ISLNK(st.st_mode)) {
		snprintf(why, why_len, "%s is a symbolic link: not followed, not replaced", path);
		return -ELOOP;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, why_len, "%s is not a regular file: not replaced", path);
		return -EEXIST;
	}
	invoking_user(&uid, &gid);
	if (!fstat(dirfd, &dst) && (dst.st_mode & S_ISVTX) && (dst.st_mode & S_IWOTH) &&
	    st.st_uid != uid && st.st_uid != dst.st_uid) {
		snprintf(why, why_len,
			 "%s belongs to another user in a world-writable sticky directory: not "
			 "replaced",
			 path);
		return -EPERM;
	}
	return 0;
}

int outfile_check(const char *path, char *why, size_t why_len)
{
	char base[NAME_MAX + 1];
	int dirfd, err;

	err = open_parent(path, &dirfd, base, why, why_len);
	if (err)
		return err;
	err = check_name(dirfd, base, path, why, why_len);
	if (!err && faccessat(dirfd, ".", W_OK, AT_EACCESS))
		err = why_errno(why, why_len, -errno, "%s: %s", path);
	close(dirfd);
	return err;
}

static void free_outfile(struct outfile *o)
{
	if (o->f)
		fclose(o->f);
	else if (o->fd >= 0)
		close(o->fd);
	if (!o->unnamed && o->tmp[0])
		unlinkat(o->dirfd, o->tmp, 0);
	close(o->dirfd);
	free(o);
}

/* A fresh hidden name beside the file: ".NAME.XXXXXX". */
static void hidden_name(struct outfile *o, int attempt)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(o->tmp, sizeof(o->tmp), ".%.*s.%06lx", NAME_MAX - 16, o->base,
		 (unsigned long)(ts.tv_nsec ^ ((unsigned long)getpid() << 8) ^
				 (unsigned long)attempt * 7919) &
		     0xffffff);
}

/* For filesystems without O_TMPFILE: a file under a hidden name, created
 * exclusively (never an existing file or link). */
static int create_hidden(struct outfile *o)
{
	for (int attempt = 0; attempt < 100; attempt++) {
		hidden_name(o, attempt);
		o->fd = openat(o->dirfd, o->tmp,
			       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (o->fd >= 0 || errno != EEXIST)
			break;
	}
	if (o->fd < 0) {
		o->tmp[0] = '\0';
		return -errno;
	}
	return 0;
}

int outfile_create(const char *path, struct outfile **out, char *why, size_t why_len)
{
	struct outfile *o = calloc(1, sizeof(*o));
	uid_t uid;
	gid_t gid;
	int err;

	if (!o)
		return -ENOMEM;
	o->fd = -1;
	snprintf(o->path, sizeof(o->path), "%s", path);
	err = open_parent(path, &o->dirfd, o->base, why, why_len);
	if (err) {
		free(o);
		return err;
	}
	err = check_name(o->dirfd, o->base, path, why, why_len);
	if (err)
		goto fail;
	o->fd = openat(o->dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	o->unnamed = o->fd >= 0;
	if (o->fd < 0 && (err = create_hidden(o))) {
		why_errno(why, why_len, err, "%s: %s", path);
		goto fail;
	}
	invoking_user(&uid, &gid);
	if (fchmod(o->fd, 0600) || (geteuid() == 0 && uid != 0 && fchown(o->fd, uid, gid))) {
		err = why_errno(why, why_len, -errno, "%s: %s", path);
		goto fail;
	}
	o->f = fdopen(o->fd, "w");
	if (!o->f) {
		err = why_errno(why, why_len, -errno, "%s: %s", path);
		goto fail;
	}
	*out = o;
	return 0;
fail:
	free_outfile(o);
	return err;
}

FILE *outfile_stream(struct outfile *o)
{
	return o->f;
}

/* Links the unnamed file in as name. */
static int link_unnamed(struct outfile *o, const char *name)
{
	char proc[64];

	if (!linkat(o->fd, "", o->dirfd, name, AT_EMPTY_PATH))
		return 0;
	if (errno != ENOENT && errno != EPERM)
		return -errno;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", o->fd);
	return linkat(AT_FDCWD, proc, o->dirfd, name, AT_SYMLINK_FOLLOW) ? -errno : 0;
}

/* Names the unnamed file: directly when nothing has the name, else under a
 * hidden name (never an existing one) that is then renamed over it. */
static int name_unnamed(struct outfile *o)
{
	struct stat st;
	int err = -EEXIST;

	if (fstatat(o->dirfd, o->base, &st, AT_SYMLINK_NOFOLLOW) && errno == ENOENT)
		err = link_unnamed(o, o->base);
	if (err != -EEXIST)
		return err;
	for (int attempt = 0; attempt < 100 && err == -EEXIST; attempt++) {
		hidden_name(o, attempt);
		err = link_unnamed(o, o->tmp);
	}
	if (err) {
		o->tmp[0] = '\0';
		return err;
	}
	o->unnamed = false; /* it has a name now: removed if the rename fails */
	return 0;
}

int outfile_commit(struct outfile *o, char *why, size_t why_len)
{
	int err = 0;

	if (fflush(o->f) || ferror(o->f) || fsync(o->fd))
		err = why_errno(why, why_len, -(errno ? errno : EIO), "%s: %s", o->path);
	/* checked again: the name may have changed since the file was made */
	if (!err)
		err = check_name(o->dirfd, o->base, o->path, why, why_len);
	if (!err && o->unnamed) {
		err = name_unnamed(o);
		if (err)
			why_errno(why, why_len, err, "%s: %s", o->path);
	}
	if (!err && o->tmp[0]) {
		if (renameat(o->dirfd, o->tmp, o->dirfd, o->base))
			err = why_errno(why, why_len, -errno, "%s: %s", o->path);
		else
			o->tmp[0] = '\0';
	}
	free_outfile(o);
	return err;
}

void outfile_discard(struct outfile *o)
{
	if (o)
		free_outfile(o);
}

int outfile_write(const char *path, const void *buf, size_t len, char *why, size_t why_len)
{
	struct outfile *o;
	int err = outfile_create(path, &o, why, why_len);

	if (err)
		return err;
	if (len && fwrite(buf, 1, len, outfile_stream(o)) != len) {
		err = why_errno(why, why_len, -(errno ? errno : EIO), "%s: %s", path);
		outfile_discard(o);
		return err;
	}
	return outfile_commit(o, why, why_len);
}

int outfile_append(const char *path, FILE **out, char *why, size_t why_len)
{
	struct stat st;
	FILE *f;
	int fd, err;

	*out = NULL;
	err = outfile_check(path, why, why_len);
	if (err)
		return err;
	/* O_NONBLOCK: a FIFO put there since the check does not hang us */
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC |
				O_NONBLOCK,
		  0600);
	if (fd < 0) {
		err = -errno;
		snprintf(why, why_len, "%s: %s", path, strerror(errno));
		return err;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(why, why_len, "%s: not a regular file", path);
		return -EPERM;
	}
	fcntl(fd, F_SETFL, O_WRONLY | O_APPEND);
	f = fdopen(fd, "a");
	if (!f) {
		err = -errno;
		close(fd);
		snprintf(why, why_len, "%s: %s", path, strerror(-err));
		return err;
	}
	setvbuf(f, NULL, _IOLBF, 0);
	*out = f;
	return 0;
}
