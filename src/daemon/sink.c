/* sink.c - see sink.h. */
#include "sink.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

enum { SINK_QUEUE_MAX = 256 * 1024 };

/* A pipe, FIFO or terminal reached through /proc/self/fd/N opens a new file
 * description: O_NONBLOCK on it does not leak into the shell or the
 * supervisor that shares the original one. */
static int private_nonblocking(int fd)
{
	char path[64];
	int nfd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	nfd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | O_APPEND);
	if (nfd < 0)
		return -1;
	close(fd);
	return nfd;
}

void sink_attach(struct sink *s, int fd)
{
	struct stat st;

	s->fd = fd;
	s->queue.max = SINK_QUEUE_MAX;
	s->kind = SINK_STREAM;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		s->kind = SINK_FILE;
	} else if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
		s->kind = SINK_SOCKET;
	} else {
		int nfd = private_nonblocking(fd);

		if (nfd >= 0)
			s->fd = nfd;
	}
	fcntl(s->fd, F_SETFD, FD_CLOEXEC);
}

void sink_close(struct sink *s)
{
	loop_del(&s->w);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	buf_free(&s->queue);
}

static ssize_t sink_raw_write(struct sink *s, const char *p, size_t n)
{
	if (s->kind == SINK_SOCKET)
		return send(s->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	return write(s->fd, p, n);
}

static void sink_failed(struct sink *s, int err)
{
	if (err != s->last_errno && s->report) {
		s->last_errno = err;
		s->report(s, strerror(err));
	}
}

static void sink_flush(struct sink *s);

static void sink_writable(struct watch *w, uint32_t events)
{
	struct sink *s = (struct sink *)((char *)w - offsetof(struct sink, w));

	(void)events;
	sink_flush(s);
}

/* Writes what the descriptor takes now; waits for EPOLLOUT for the rest. */
static void sink_flush(struct sink *s)
{
	while (s->queue.len) {
		ssize_t n = sink_raw_write(s, s->queue.data, s->queue.len);

		if (n > 0) {
			buf_consume(&s->queue, (size_t)n);
			s->last_errno = 0;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			sink_failed(s, errno);
			s->dropped++;
			buf_reset(&s->queue);
		}
		break;
	}
	if (s->queue.len == 0) {
		loop_del(&s->w);
		if (s->dropped && s->report) {
			char what[64];

			snprintf(what, sizeof(what), "%lu lines dropped", s->dropped);
			s->dropped = 0;
			s->report(s, what);
		}
	} else if (!s->w.active && s->kind != SINK_FILE) {
		if (loop_add(&s->w, s->fd, EPOLLOUT, sink_writable) < 0)
			buf_reset(&s->queue);	/* cannot wait on it: drop */
	}
}

bool sink_write(struct sink *s, const char *data, size_t len)
{
	if (s->fd < 0)
		return false;
	if (!buf_add(&s->queue, data, len)) {
		s->dropped++;
		return false;
	}
	if (!s->w.active)
		sink_flush(s);
	return true;
}
