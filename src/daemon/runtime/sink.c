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
	s->err = 0;
	s->mid_line = false;
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

int sink_error(const struct sink *s)
{
	return s->err;
}

struct sink_losses sink_take_losses(struct sink *s)
{
	struct sink_losses l = s->lost;

	s->lost = (struct sink_losses){ 0 };
	return l;
}

/* Writing works (again): say what was lost before. What report() writes
 * comes back here through sink_write(); `reporting` keeps that from
 * reporting again, and a loss while reporting waits for the next success. */
static void sink_report(struct sink *s)
{
	if (s->reporting || !s->report || (!s->lost.dropped && !s->lost.failed))
		return;
	s->reporting = true;
	s->report(s, sink_take_losses(s));
	s->reporting = false;
}

static unsigned long lines_in(const char *p, size_t n)
{
	unsigned long lines = 0;
	const char *end = p + n, *nl;

	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p)))) {
		lines++;
		p = nl + 1;
	}
	return lines + (p < end);
}

/* A write failed: what is queued is lost and counted, except the rest of a
 * record already begun, kept so that a file does not get half a line with
 * the next one glued to it once it can be written again. */
static void sink_fail(struct sink *s, int err)
{
	size_t keep = 0;

	if (s->mid_line) {
		const char *nl = memchr(s->queue.data, '\n', s->queue.len);

		keep = nl ? (size_t)(nl - s->queue.data) + 1 : s->queue.len;
	}
	s->lost.failed += lines_in(s->queue.data + keep, s->queue.len - keep);
	if (!s->lost.err)
		s->lost.err = err;
	s->err = err;
	s->queue.len = keep;
	if (s->queue.data)
		s->queue.data[keep] = '\0';
}

static void sink_flush(struct sink *s);

static void sink_writable(struct watch *w, uint32_t events)
{
	struct sink *s = (struct sink *)((char *)w - offsetof(struct sink, w));

	(void)events;
	sink_flush(s);
}

/* Writes what the descriptor takes now; waits for EPOLLOUT for the rest,
 * but never on a descriptor in error (a pipe without reader is always
 * "ready" with EPOLLERR: waiting on it would spin). */
static void sink_flush(struct sink *s)
{
	bool wrote = false;

	while (s->queue.len) {
		ssize_t n = write(s->fd, s->queue.data, s->queue.len);

		if (n > 0) {
			s->mid_line = s->queue.data[n - 1] != '\n';
			buf_consume(&s->queue, (size_t)n);
			s->err = 0;
			wrote = true;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			s->err = 0;	/* it works, it is only full */
		else if (n < 0)
			sink_fail(s, errno);
		break;
	}
	if (s->queue.len == 0 || s->err) {
		loop_del(&s->w);
	} else if (!s->w.active && s->kind == SINK_STREAM &&
		   loop_add(&s->w, s->fd, EPOLLOUT, sink_writable) < 0) {
		s->lost.dropped += lines_in(s->queue.data, s->queue.len);	/* cannot wait on it */
		buf_reset(&s->queue);
	}
	if (wrote && s->queue.len == 0)
		sink_report(s);
}

/* A datagram goes whole or not at all; one the reader has no room for now
 * is dropped (queued ones would be sent glued together as one). */
static bool sink_send(struct sink *s, const char *data, size_t len)
{
	ssize_t n;

	do
		n = send(s->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n >= 0) {
		s->err = 0;
		sink_report(s);
		return true;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		s->lost.dropped++;
	} else {
		s->lost.failed++;
		if (!s->lost.err)
			s->lost.err = errno;
		s->err = errno;
	}
	return false;
}

bool sink_write(struct sink *s, const char *data, size_t len)
{
	if (s->fd < 0)
		return false;
	if (s->kind == SINK_SOCKET)
		return sink_send(s, data, len);
	if (!buf_add(&s->queue, data, len)) {
		s->lost.dropped++;
		return false;
	}
	if (!s->w.active)
		sink_flush(s);
	return true;
}
