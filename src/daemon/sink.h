/* sink.h - a destination for log text that never blocks droverd.
 *
 * A sink writes what it can at once and queues the rest (up to a cap),
 * finishing when the descriptor is writable again. Past the cap, lines are
 * dropped and counted; the count is reported once the sink drains. Regular
 * files are written directly (the kernel does not block on them in a way
 * epoll could wait for); a full disk drops lines the same way. */
#ifndef DROVER_SINK_H
#define DROVER_SINK_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "loop.h"

struct sink {
	int fd;			/* -1: closed, everything is dropped */
	enum { SINK_STREAM, SINK_SOCKET, SINK_FILE } kind;
	struct buf queue;
	struct watch w;
	unsigned long dropped;	/* lines lost since the last report */
	int last_errno;		/* reported once, until a write succeeds */
	void (*report)(struct sink *s, const char *what);
};

/* Takes over fd (made non-blocking through its own open file description
 * where possible, so a shared terminal or pipe is not changed for others). */
void sink_attach(struct sink *s, int fd);
void sink_close(struct sink *s);
/* One complete record (ends in '\n'); all or nothing. */
bool sink_write(struct sink *s, const char *data, size_t len);

#endif
