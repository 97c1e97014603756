/* sink.h - a destination for log text that never blocks droverd.
 *
 * A sink writes what it can at once and queues the rest (up to a cap),
 * finishing when the descriptor is writable again. Past the cap, lines are
 * dropped and counted. Regular files are written directly (the kernel does
 * not block on them in a way epoll could wait for). A datagram socket
 * (syslog) takes each record whole or not at all: one it cannot take now is
 * dropped and counted the same way.
 *
 * A write that fails (a full disk, a pipe whose reader is gone, a syslog
 * daemon that went away) drops what is queued and counts its lines; it is
 * not reported then, through the destination that just failed. The counts
 * go to report() once a later write succeeds. report() may write to the
 * sink: what it writes is never reported again from inside it, so the log
 * cannot re-enter itself however the destination fails. */
#ifndef DROVER_SINK_H
#define DROVER_SINK_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "loop.h"

/* What was lost since the last report. */
struct sink_losses {
	unsigned long dropped;	/* the destination did not keep up */
	unsigned long failed;	/* a write failed ... */
	int err;		/* ... and this is why (the first reason) */
};

struct sink {
	int fd;			/* -1: closed, everything is dropped */
	enum { SINK_STREAM, SINK_SOCKET, SINK_FILE } kind;
	struct buf queue;
	struct watch w;
	struct sink_losses lost;
	int err;		/* of the last write; 0 once one succeeds */
	bool mid_line;		/* the last write ended inside a record */
	bool reporting;		/* inside report(): do not call it again */
	void (*report)(struct sink *s, struct sink_losses lost);
};

/* Takes over fd (made non-blocking through its own open file description
 * where possible, so a shared terminal or pipe is not changed for others).
 * The loss counts carry over from the descriptor it had before. */
void sink_attach(struct sink *s, int fd);
void sink_close(struct sink *s);
/* One complete record (ends in '\n', or one datagram); all or nothing. */
bool sink_write(struct sink *s, const char *data, size_t len);
/* Why the last write failed, 0 if it did not. */
int sink_error(const struct sink *s);
/* The counts not reported yet, zeroed (a destination being replaced hands
 * them to its successor's report). */
struct sink_losses sink_take_losses(struct sink *s);

#endif
