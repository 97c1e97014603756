/* safepath.c - see safepath.h. */
#include "safepath.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { LINKS_MAX = 40 };	/* as the kernel's MAXSYMLINKS */

static const char OTHERS[] = "writable by a user other than root (owner uid %u, mode %04o); "
			     "droverd running as root refuses it";

/* Owned by root; writable by the owner and group 0 only. */
static bool root_alone(const struct stat *st)
{
	return st->st_uid == 0 && !(st->st_mode & S_IWOTH) &&
	       !((st->st_mode & S_IWGRP) && st->st_gid != 0);
}

static bool refuse(struct safepath *sp, const char *what, const char *name, const struct stat *st)
{
	int n = snprintf(sp->why, sizeof(sp->why), what, name);

	if (n < 0 || (size_t)n >= sizeof(sp->why))
		n = 0;
	snprintf(sp->why + n, sizeof(sp->why) - (size_t)n, OTHERS, (unsigned)st->st_uid,
		 (unsigned)(st->st_mode & 07777));
	return false;
}

static bool fail(struct safepath *sp, int err)
{
	snprintf(sp->why, sizeof(sp->why), "%s", strerror(err));
	return false;
}

/* rest := head "/" rest: a link's target goes before what is left. */
static bool prepend(char *rest, size_t size, const char *head, size_t hlen)
{
	size_t rlen = strlen(rest);

	if (hlen + 1 + rlen + 1 > size)
		return false;
	memmove(rest + hlen + 1, rest, rlen + 1);
	memcpy(rest, head, hlen);
	rest[hlen] = '/';
	return true;
}

/* Takes the next component off rest into comp; false when none is left. */
static bool next_component(char *rest, char *comp, size_t size)
{
	char *s = rest + strspn(rest, "/");
	size_t n = strcspn(s, "/");

	if (n == 0)
		return false;
	if (n >= size)
		n = size - 1;	/* longer than NAME_MAX: lstat will say so */
	memcpy(comp, s, n);
	comp[n] = '\0';
	memmove(rest, s + n, strlen(s + n) + 1);
	return true;
}

/* cur, a resolved absolute directory, becomes its parent ("/" stays). */
static void parent(char *cur)
{
	char *slash = strrchr(cur, '/');

	slash[slash == cur] = '\0';
}

/* One step: cur (a resolved directory) gets comp. A link puts its target
 * in front of rest and, when absolute, starts again from /. */
static bool step(struct safepath *sp, char *rest, size_t rsize, const char *comp, int *links,
		 bool *linked)
{
	char *cur = sp->path, target[PATH_MAX];
	size_t dirlen = strlen(cur);
	bool last = rest[strspn(rest, "/")] == '\0';
	ssize_t n;

	if (strcmp(comp, ".") == 0)
		return true;
	if (strcmp(comp, "..") == 0) {
		parent(cur);
		return true;
	}
	if (dirlen + 1 + strlen(comp) + 1 > sizeof(sp->path))
		return fail(sp, ENAMETOOLONG);
	memcpy(cur + dirlen + (dirlen > 1), comp, strlen(comp) + 1);
	if (dirlen > 1)
		cur[dirlen] = '/';
	if (lstat(cur, &sp->st) < 0)
		return fail(sp, errno);
	if (S_ISLNK(sp->st.st_mode)) {
		if (++*links > LINKS_MAX)
			return fail(sp, ELOOP);
		if ((n = readlink(cur, target, sizeof(target))) < 0)
			return fail(sp, errno);
		if ((size_t)n == sizeof(target) || !prepend(rest, rsize, target, (size_t)n))
			return fail(sp, ENAMETOOLONG);
		cur[dirlen] = '\0';	/* "/" stays "/" */
		if (target[0] == '/')
			snprintf(cur, sizeof(sp->path), "/");
		*linked = true;
		return true;
	}
	if (!last && !S_ISDIR(sp->st.st_mode))
		return fail(sp, ENOTDIR);
	if (!last && !root_alone(&sp->st))
		return refuse(sp, "directory %s is ", cur, &sp->st);
	return true;
}

bool safepath_check(const char *path, struct safepath *sp)
{
	char rest[2 * PATH_MAX], comp[PATH_MAX], cwd[PATH_MAX];
	int links = 0, n;
	bool linked = false;

	if (path[0] == '/') {
		n = snprintf(rest, sizeof(rest), "%s", path);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return fail(sp, errno);
		n = snprintf(rest, sizeof(rest), "%s/%s", cwd, path);
	}
	if (n < 0 || (size_t)n >= sizeof(rest))
		return fail(sp, ENAMETOOLONG);
	snprintf(sp->path, sizeof(sp->path), "/");
	if (lstat("/", &sp->st) < 0)
		return fail(sp, errno);
	if (!root_alone(&sp->st))
		return refuse(sp, "directory %s is ", "/", &sp->st);
	while (next_component(rest, comp, sizeof(comp)))
		if (!step(sp, rest, sizeof(rest), comp, &links, &linked))
			return false;
	if (!S_ISREG(sp->st.st_mode)) {
		snprintf(sp->why, sizeof(sp->why), "not a regular file");
		return false;
	}
	if (!root_alone(&sp->st))
		return linked ? refuse(sp, "it leads to %s, which is ", sp->path, &sp->st)
			      : refuse(sp, "%s", "", &sp->st);
	return true;
}
