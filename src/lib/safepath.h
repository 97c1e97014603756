/* safepath.h - is a file root's alone?
 *
 * Before droverd running as root reads a file that decides what it runs,
 * it makes sure that no one but root chose that file, as OpenSSH's
 * StrictModes does: every directory from / down to the file, and the file,
 * must be owned by root and writable by no one else. Writable by group 0
 * is accepted (that group is root's); a sticky directory such as /tmp is
 * writable by others and is refused, as sshd refuses it.
 *
 * Symbolic links are followed the way the kernel follows them, and the
 * rule holds for every directory the walk passes through: the one that
 * holds a link (its writers are who can make or change the link) and
 * every one on the way to its target. A link is thus accepted exactly when
 * root alone could have made it and root alone can change where it leads.
 *
 * The walk only reads (lstat, readlink); what it checked cannot change
 * under it afterwards, since only root can write there. The caller opens
 * sp->path with O_NOFOLLOW and compares the file with sp->st all the
 * same. */
#ifndef DROVER_SAFEPATH_H
#define DROVER_SAFEPATH_H

#include <limits.h>
#include <stdbool.h>
#include <sys/stat.h>

struct safepath {
	char path[PATH_MAX];	/* the file reached, every link resolved */
	struct stat st;		/* its lstat */
	char why[512];		/* when refused: the reason, for "cannot read X: " */
};

/* True when path names a regular file that is root's alone (sp->path and
 * sp->st filled); else false with the reason in sp->why (not a regular
 * file, the directory or file that others can write, or the system
 * error, as strerror says it). */
bool safepath_check(const char *path, struct safepath *sp);

#endif
