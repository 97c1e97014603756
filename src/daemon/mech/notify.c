/* notify.c - see notify.h. */
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"

enum { DGRAM_MAX = 4096, PER_EVENT = 64 };

static struct watch w = { .fd = -1 };
static char socket_name[128];
static int64_t warned_at;
static unsigned long suppressed;

const char *notify_socket_name(void)
{
	return socket_name;
}

int notify_fd(void)
{
	return w.fd;
}

/* At most one warning a second; the count of the others goes with it. */
static void warn_ignored(const char *fmt, long arg)
{
	int64_t now = loop_now();
	char text[200];

	if (warned_at && now - warned_at < 1000) {
		suppressed++;
		return;
	}
	snprintf(text, sizeof(text), fmt, arg);
	if (suppressed)
		log_warn("notify: %s (and %lu more ignored)", text, suppressed);
	else
		log_warn("notify: %s", text);
	warned_at = now;
	suppressed = 0;
}

int notify_parse(char *msg, size_t len, void (*fn)(const char *key, const char *value, void *arg),
		 void *arg)
{
	int n = 0;
	char *line, *next;

	if (memchr(msg, '\0', len))
		return -1;
	msg[len] = '\0';
	/* All or nothing: check every line before acting on any. */
	for (line = msg; line && *line; line = next) {
		size_t l;

		next = strchr(line, '\n');
		l = next ? (size_t)(next++ - line) : strlen(line);
		if (l && (!memchr(line, '=', l) || line[0] == '='))
			return -1;
	}
	for (line = msg; line && *line; line = next) {
		char *eq;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (!*line)
			continue;
		eq = strchr(line, '=');
		*eq = '\0';
		fn(line, eq + 1, arg);
		n++;
	}
	return n;
}

static const struct notify_events *up;	/* set once by main.c */

void notify_set_events(const struct notify_events *ev)
{
	up = ev;
}

static void deliver(const char *key, const char *value, void *arg)
{
	up->message(arg, key, value);
}

static void close_passed_fds(struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int fds[64];

		memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)(n < 64 ? n : 64));
		for (int i = 0; i < n && i < 64; i++)
			close(fds[i]);
	}
}

static struct ucred *creds_of(struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
			return (struct ucred *)CMSG_DATA(c);
	return NULL;
}

/* Reads one datagram; false when there is none. */
static bool read_one(void)
{
	char msg[DGRAM_MAX + 1];
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * 64)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { msg, DGRAM_MAX };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	ssize_t n = recvmsg(w.fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
	struct ucred *cred;
	struct proc *p;

	if (n < 0)
		return errno == EINTR;
	close_passed_fds(&mh);
	cred = creds_of(&mh);
	if ((size_t)n > DGRAM_MAX) {
		warn_ignored("datagram of %ld bytes is too large (4096 at most): ignored", (long)n);
		return true;
	}
	if (!cred || !(p = proc_find(cred->pid)) || p->exited) {
		warn_ignored("message from pid %ld, which is not a process droverd started: ignored",
			     cred ? (long)cred->pid : -1L);
		return true;
	}
	if (notify_parse(msg, (size_t)n, deliver, p) < 0)
		warn_ignored("malformed message from pid %ld (not KEY=VALUE lines): ignored", (long)cred->pid);
	return true;
}

void notify_drain(void)
{
	for (int i = 0; i < PER_EVENT && read_one(); i++)
		;
}

static void readable(struct watch *wt, uint32_t events)
{
	(void)wt;
	(void)events;
	notify_drain();
}

static int bind_abstract(int fd, char *name, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	unsigned r = 0;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (unsigned)clock_ms();
	snprintf(name, len, "@drover/%d/%08x/notify", (int)getpid(), r);
	memcpy(sa.sun_path + 1, name + 1, strlen(name) - 1);
	return bind(fd, (struct sockaddr *)&sa,
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name)));
}

static void adopted_name(int fd, char *name, size_t len)
{
	struct sockaddr_un sa = { 0 };
	socklen_t sl = sizeof(sa);
	size_t n;

	if (getsockname(fd, (struct sockaddr *)&sa, &sl) < 0 || sl <= offsetof(struct sockaddr_un, sun_path)) {
		name[0] = '\0';
		return;
	}
	n = sl - offsetof(struct sockaddr_un, sun_path);
	if (n >= len)
		n = len - 1;
	memcpy(name, sa.sun_path, n);
	name[n] = '\0';
	if (sa.sun_path[0] == '\0')
		name[0] = '@';
}

int notify_open(int fd)
{
	char name[108];
	int one = 1;

	if (fd < 0) {
		fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0 || bind_abstract(fd, name, sizeof(name)) < 0) {
			if (fd >= 0)
				close(fd);
			return -1;
		}
	} else {
		adopted_name(fd, name, sizeof(name));
	}
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0 ||
	    loop_add(&w, fd, EPOLLIN, readable) < 0) {
		close(fd);
		return -1;
	}
	snprintf(socket_name, sizeof(socket_name), "%s", name);
	return 0;
}
