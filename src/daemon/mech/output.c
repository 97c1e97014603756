/* output.c - see output.h. */
#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "log.h"
#include "svclog.h"

enum { READ_CHUNK = 16384, READS_PER_EVENT = 4 };

struct output {
	struct watch w;
	struct proc *p;
	pid_t pid;
	size_t plen;
	char *partial;		/* allocated the first time a line is split */
	bool cut;		/* the last line was emitted at full length */
};

int output_pipe(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	return 0;
}

static void emit_line(struct output *o, const char *line, size_t len)
{
	if (o->p && o->p->svc)
		svclog_line(o->p->svc, o->pid, line, len);
}

/* Splits a chunk into lines. Whole lines go out straight from the chunk;
 * only an unfinished tail is kept, in a buffer allocated on first need (most
 * services never need one: 1000 quiet services cost no line buffers). */
static void take(struct output *o, const char *data, size_t n)
{
	/* A line cut at OUTPUT_LINE_MAX whose newline comes in this chunk
	 * ended there: the newline is not an empty line of its own. */
	if (n && o->cut && *data == '\n') {
		data++;
		n--;
	}
	o->cut = false;
	while (n) {
		const char *nl = memchr(data, '\n', n);
		size_t len = nl ? (size_t)(nl - data) : n, room;

		if (o->plen == 0 && nl && len <= OUTPUT_LINE_MAX) {
			emit_line(o, data, len);
			data += len + 1;
			n -= len + 1;
			continue;
		}
		if (!o->partial && !(o->partial = malloc(OUTPUT_LINE_MAX))) {
			emit_line(o, data, len < OUTPUT_LINE_MAX ? len : OUTPUT_LINE_MAX);
			return;		/* no memory: the rest of this chunk is lost */
		}
		room = OUTPUT_LINE_MAX - o->plen;
		if (len > room)
			len = room;
		memcpy(o->partial + o->plen, data, len);
		o->plen += len;
		data += len;
		n -= len;
		if (nl && data == nl) {
			data++;
			n--;
		} else if (o->plen < OUTPUT_LINE_MAX) {
			break;		/* line not finished yet */
		} else {
			o->cut = n == 0;	/* its newline may come next */
		}
		emit_line(o, o->partial, o->plen);
		o->plen = 0;
	}
}

/* NUL bytes become spaces: a line is text to every consumer (the ring,
 * files, the control protocol, which carries no NUL). */
static void sanitize(char *p, size_t n)
{
	for (char *end = p + n; p < end && (p = memchr(p, '\0', (size_t)(end - p))); p++)
		*p = ' ';
}

/* Returns false at end of file or error. */
static bool drain(struct output *o, int rounds)
{
	char chunk[READ_CHUNK];

	while (rounds--) {
		ssize_t n = read(o->w.fd, chunk, sizeof(chunk));

		if (n > 0) {
			sanitize(chunk, (size_t)n);
			take(o, chunk, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
	}
	return true;
}

static void finish(struct output *o)
{
	if (o->plen)
		emit_line(o, o->partial, o->plen);
	loop_del(&o->w);
	close(o->w.fd);
	if (o->p)
		o->p->out = NULL;
	free(o->partial);
	free(o);
}

static void readable(struct watch *w, uint32_t events)
{
	struct output *o = (struct output *)((char *)w - offsetof(struct output, w));

	(void)events;
	/* A few reads per event, so one chatty service cannot starve the rest. */
	if (!drain(o, READS_PER_EVENT))
		finish(o);
}

int output_attach(struct proc *p, int rfd)
{
	struct output *o = calloc(1, sizeof(*o));

	if (!o) {
		close(rfd);
		return -1;
	}
	o->p = p;
	o->pid = p->pid;
	if (loop_add(&o->w, rfd, EPOLLIN, readable) < 0) {
		close(rfd);
		free(o);
		return -1;
	}
	p->out = o;
	return 0;
}

void output_drain(struct proc *p)
{
	if (p->out && !drain(p->out, 64))
		finish(p->out);
}

int output_fd(const struct proc *p)
{
	return p->out ? p->out->w.fd : -1;
}

void output_close(struct proc *p)
{
	struct output *o = p->out;

	if (!o)
		return;
	drain(o, 64);
	finish(o);
}
