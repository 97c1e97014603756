/* drover.c - libdrover: socket activation and readiness for workers.
 *
 * Follows the conventions of sd_listen_fds(3) and sd_notify(3) so that a
 * program is the same under droverd and under systemd. */
#include "drover.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static long env_number(const char *name)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (!v || !*v)
		return -1;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || *end || n < 0)
		return -1;
	return n;
}

int drover_listen_fds(void)
{
	long pid = env_number("LISTEN_PID"), n = env_number("LISTEN_FDS");

	if (pid != (long)getpid() || n <= 0 || n > INT_MAX - DROVER_LISTEN_FDS_START)
		return 0;
	for (long fd = DROVER_LISTEN_FDS_START; fd < DROVER_LISTEN_FDS_START + n; fd++) {
		int flags = fcntl((int)fd, F_GETFD);

		if (flags >= 0 && !(flags & FD_CLOEXEC))
			fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC);
	}
	return (int)n;
}

int drover_listen_fd(const char *name)
{
	const char *names = getenv("LISTEN_FDNAMES"), *p;
	int n = drover_listen_fds();
	size_t len = strlen(name);

	if (n <= 0 || !names)
		return -1;
	p = names;
	for (int i = 0; i < n; i++) {
		const char *end = strchr(p, ':');
		size_t plen = end ? (size_t)(end - p) : strlen(p);

		if (plen == len && strncmp(p, name, len) == 0)
			return DROVER_LISTEN_FDS_START + i;
		if (!end)
			break;
		p = end + 1;
	}
	return -1;
}

static int notify_send(const char *msg, size_t len)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t plen;
	socklen_t salen;
	int fd, saved;
	ssize_t n;

	if (!path || !*path)
		return 0;
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, plen);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';	/* abstract namespace */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '/'));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	n = sendto(fd, msg, len, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
	saved = errno;
	close(fd);
	return n < 0 ? -saved : 1;
}

int drover_notify(const char *fmt, ...)
{
	char msg[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return -EMSGSIZE;
	return notify_send(msg, (size_t)n);
}

int drover_ready(void)
{
	return notify_send("READY=1", 7);
}

int drover_busy(void)
{
	return notify_send("X_DROVER=busy", 13);
}

int drover_idle(void)
{
	return notify_send("X_DROVER=idle", 13);
}
