/* sdnotify.c - see sdnotify.h. */
#include "sdnotify.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int fd = -1;
static struct sockaddr_un addr;
static socklen_t addrlen;
static char path_text[sizeof(addr.sun_path) + 1];

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

	if (fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n > 0)
		sendto(fd, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1,
		       MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&addr, addrlen);
}
