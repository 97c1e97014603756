/* sdnotify.c - see sdnotify.h. */
#include "sdnotify.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

static int fd = -1;
static struct sockaddr_un addr;
static socklen_t addrlen;
static char path_text[sizeof(addr.sun_path) + 1];
static bool muted;

void sdnotify_mute(bool mute)
{
	muted = mute;
}

void sdnotify_init(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	size_t n;

	if (!path || (path[0] != '/' && path[0] != '@') || (n = strlen(path)) >= sizeof(addr.sun_path)) {
		unsetenv("NOTIFY_SOCKET");
		return;
	}
	addr.sun_family = AF_UNIX;
	memcpy(addr.sun_path, path, n);
	if (path[0] == '@')
		addr.sun_path[0] = '\0';
	addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	snprintf(path_text, sizeof(path_text), "%s", path);
	unsetenv("NOTIFY_SOCKET");
}

const char *sdnotify_path(void)
{
	return fd >= 0 ? path_text : NULL;
}

bool sdnotify_active(void)
{
	return fd >= 0;
}

void sdnotify_send(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	if (fd < 0 || muted)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n > 0)
		sendto(fd, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1,
		       MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&addr, addrlen);
}

int sdnotify_send_fd(int sfd, const char *fmt, ...)
{
	char msg[1024];
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov;
	struct msghdr mh = { .msg_name = &addr, .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *c;
	va_list ap;
	int n;

	if (fd < 0 || muted)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n <= 0 || (size_t)n >= sizeof(msg))
		return -1;
	iov.iov_base = msg;
	iov.iov_len = (size_t)n;
	mh.msg_namelen = addrlen;
	memset(ctl.buf, 0, sizeof(ctl.buf));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &sfd, sizeof(int));
	return sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 ? -1 : 0;
}
