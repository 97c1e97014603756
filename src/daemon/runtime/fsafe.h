/* fsafe.h - files in directories a less privileged user may write.
 *
 * droverd runs as root and creates, appends to, renames, chowns and removes
 * files in directories its services' users often own (/var/log/app,
 * /run/app). Such a user can plant a symbolic link or a hard link where
 * droverd is about to work, and make it write, create or chown a file of
 * that user's choosing. So droverd never works on such a path as a string:
 * fsafe_open_dir() reaches the directory one component at a time, and the
 * caller then works on the last component relative to that descriptor
 * (openat, renameat, unlinkat with O_NOFOLLOW or its equivalent).
 *
 * A symbolic link on the way is followed only when nobody but root (or
 * droverd's own uid) can have made it: the link and the directory holding
 * it belong to root or droverd's uid, and no one else may write that
 * directory (Debian's /var/run -> /run). Any other link is refused. The
 * last component is never followed. Paths are walked, not resolved by
 * openat2(RESOLVE_NO_SYMLINKS), because that would refuse /var/run too. */
#ifndef DROVER_FSAFE_H
#define DROVER_FSAFE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

enum { FSAFE_WHY = PATH_MAX + 64 };	/* a path and a few words */

/* The directory holding path's last component, as an O_PATH descriptor
 * (close-on-exec); that component into base. `make`: create missing
 * directories (mode 0755). -1 on failure: why[0] says why droverd refuses
 * ("/srv/app/logs is a symbolic link"), or is "" and errno is set. */
int fsafe_open_dir(const char *path, bool make, char *base, size_t baselen, char *why);

/* What fsafe_clear_socket() found at a unix socket's path. */
enum fsafe_sock { FSAFE_FREE, FSAFE_NOT_SOCKET, FSAFE_LIVE };
/* A socket file `name` in dfd left by a process that is gone is removed;
 * anything else (a live socket, a regular file, a link) is left alone.
 * sa: the path's address, to probe the socket. */
enum fsafe_sock fsafe_clear_socket(int dfd, const char *name, const struct sockaddr_un *sa, socklen_t salen);

/* The socket file `name` in dfd that droverd has just bound: checked to be
 * a socket owned by droverd's uid (not a link or a file planted in its
 * place), its identity into dev/ino (as soon as it is known to be that
 * file), and given uid/gid ((uid_t)-1 and (gid_t)-1 leave one as it is).
 * 0, or -1 with why. */
int fsafe_own_socket(int dfd, const char *name, uid_t uid, gid_t gid, dev_t *dev, ino_t *ino, char *why);

/* Removes the socket file at path if it is still the one with dev/ino
 * (another droverd may have taken the path since). */
void fsafe_unlink_socket(const char *path, dev_t dev, ino_t ino);

#endif
