/* fsafe.c - see fsafe.h. */
#include "fsafe.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { HOPS_MAX = 40 };		/* links followed in one walk: the kernel's own bound */

struct walk {
	int dfd;		/* the directory reached so far */
	char rest[PATH_MAX];	/* what is left to walk (consumed in place) */
	char where[PATH_MAX];	/* the path of dfd, for messages */
	int hops;
	bool make;
	char *why;
};

static bool ours(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

/* A link that nobody less privileged than droverd can have made or swapped. */
static bool trusted_link(int dfd, const struct stat *link)
{
	struct stat dir;

	return ours(link->st_uid) && fstat(dfd, &dir) == 0 && ours(dir.st_uid) &&
	       !(dir.st_mode & (S_IWGRP | S_IWOTH));
}

static void where_add(struct walk *w, const char *name)
{
	size_t n = strlen(w->where);
	const char *sep = n == 0 || w->where[n - 1] == '/' ? "" : "/";

	snprintf(w->where + n, sizeof(w->where) - n, "%s%s", sep, name);
}

/* A trusted link: its target takes its place in what is left to walk. */
static int follow(struct walk *w, const char *name, const char *after)
{
	char target[PATH_MAX], joined[PATH_MAX];
	ssize_t n = readlinkat(w->dfd, name, target, sizeof(target) - 1);
	int root;

	if (n < 0)
		return -1;
	target[n] = '\0';
	if (++w->hops > HOPS_MAX)
		return errno = ELOOP, -1;
	if (snprintf(joined, sizeof(joined), "%s/%s", target, after) >= (int)sizeof(joined))
		return errno = ENAMETOOLONG, -1;
	if (target[0] == '/') {
		if ((root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
			return -1;
		close(w->dfd);
		w->dfd = root;
		snprintf(w->where, sizeof(w->where), "/");
	}
	memcpy(w->rest, joined, strlen(joined) + 1);
	return 1;
}

static int enter_dir(struct walk *w, const char *name)
{
	struct stat st;
	int fd = openat(w->dfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode))) {
		close(fd);	/* swapped for a link since we looked */
		return errno = ENOTDIR, -1;
	}
	if (fd < 0)
		return -1;
	close(w->dfd);
	w->dfd = fd;
	where_add(w, name);
	return 0;
}

/* One component that is not the last: 0 entered, 1 a trusted link was
 * spliced into w->rest, -1 failed (w->why set when refused). */
static int enter(struct walk *w, const char *name, const char *after)
{
	struct stat st;

	if (fstatat(w->dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT || !w->make || (mkdirat(w->dfd, name, 0755) < 0 && errno != EEXIST) ||
		    fstatat(w->dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return -1;
	}
	if (!S_ISLNK(st.st_mode))
		return enter_dir(w, name);
	if (trusted_link(w->dfd, &st))
		return follow(w, name, after);
	where_add(w, name);
	snprintf(w->why, FSAFE_WHY, "%s is a symbolic link", w->where);
	return -1;
}

static int walk(struct walk *w, const char *path)
{
	char *p = w->rest, *slash;
	int rc;

	if (snprintf(w->rest, sizeof(w->rest), "%s", path) >= (int)sizeof(w->rest))
		return errno = ENAMETOOLONG, -1;
	snprintf(w->where, sizeof(w->where), "%s", path[0] == '/' ? "/" : "");
	if ((w->dfd = open(path[0] == '/' ? "/" : ".", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	for (;;) {
		while (*p == '/')
			p++;
		if (!(slash = strchr(p, '/')))
			return (int)(p - w->rest);	/* the last component */
		*slash = '\0';
		rc = strcmp(p, ".") == 0 ? 0 : enter(w, p, slash + 1);
		if (rc < 0) {
			close(w->dfd);
			return -1;
		}
		p = rc == 1 ? w->rest : slash + 1;
	}
}

int fsafe_open_dir(const char *path, bool make, char *base, size_t baselen, char *why)
{
	struct walk w = { .dfd = -1, .make = make, .why = why };
	int last;
	const char *name;

	why[0] = '\0';
	if ((last = walk(&w, path)) < 0)
		return -1;
	name = w.rest + last;
	if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strlen(name) >= baselen) {
		close(w.dfd);
		return errno = *name && strlen(name) >= baselen ? ENAMETOOLONG : EISDIR, -1;
	}
	memcpy(base, name, strlen(name) + 1);
	return w.dfd;
}

/* unlinkat() takes away whatever is at the name then: look just before,
 * so that only the socket file that was looked at goes. */
static void unlink_if_same(int dfd, const char *name, dev_t dev, ino_t ino)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == dev &&
	    st.st_ino == ino)
		unlinkat(dfd, name, 0);
}

enum fsafe_sock fsafe_clear_socket(int dfd, const char *name, const struct sockaddr_un *sa, socklen_t salen)
{
	struct stat st;
	int probe, rc;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return FSAFE_FREE;	/* nothing there, or bind() will say why not */
	if (!S_ISSOCK(st.st_mode))
		return FSAFE_NOT_SOCKET;
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return FSAFE_FREE;
	rc = connect(probe, (const struct sockaddr *)sa, salen);
	close(probe);
	if (rc == 0 || errno == EAGAIN)
		return FSAFE_LIVE;
	if (errno == ECONNREFUSED)
		unlink_if_same(dfd, name, st.st_dev, st.st_ino);
	return FSAFE_FREE;
}

static const char *not_ours(const struct stat *st, char *why)
{
	if (S_ISLNK(st->st_mode))
		return "a symbolic link took the socket file's place";
	if (!S_ISSOCK(st->st_mode))
		return "a file that is not a socket took the socket file's place";
	if (st->st_uid != geteuid()) {
		snprintf(why, FSAFE_WHY, "the socket file is owned by uid %u, not by droverd", (unsigned)st->st_uid);
		return why;
	}
	return NULL;
}

int fsafe_own_socket(int dfd, const char *name, uid_t uid, gid_t gid, dev_t *dev, ino_t *ino, char *why)
{
	struct stat st;
	const char *bad;
	int fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	why[0] = '\0';
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(why, FSAFE_WHY, "cannot find the socket file it bound: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if ((bad = not_ours(&st, why))) {
		if (bad != why)
			snprintf(why, FSAFE_WHY, "%s", bad);
		close(fd);
		return -1;
	}
	*dev = st.st_dev;
	*ino = st.st_ino;
	/* On the very inode looked at: an O_PATH descriptor never follows. */
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchownat(fd, "", uid, gid, AT_EMPTY_PATH) < 0) {
		snprintf(why, FSAFE_WHY, "chown: %s", strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

void fsafe_unlink_socket(const char *path, dev_t dev, ino_t ino)
{
	char base[NAME_MAX + 1], why[FSAFE_WHY];
	int dfd = fsafe_open_dir(path, false, base, sizeof(base), why);

	if (dfd < 0)
		return;
	unlink_if_same(dfd, base, dev, ino);
	close(dfd);
}
