/* svclog.h - where a service's output lines go.
 *
 * Every line goes to the service's in-memory ring (for `drover logs`), to
 * anyone following it (`drover logs -f`), and to its destination: droverd's
 * own log as "NAME[PID]: line" (log = inherit), a file with size rotation
 * (log = file:PATH, log_max_size, log_keep), or nowhere (log = null, which
 * also keeps nothing in the ring). The ring is allocated on the first line,
 * so a quiet service costs nothing. A file that cannot be written (full
 * disk, removed directory) drops lines and says so once; it never blocks.
 * A file a less privileged user could have planted (a link, a hard link,
 * someone else's file) is refused until the next reopen: see svclog.c. */
#ifndef DROVER_SVCLOG_H
#define DROVER_SVCLOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "records.h"

enum { RING_BYTES = 16384 };

struct log_entry {
	int64_t when;		/* wall clock, ms since the epoch */
	pid_t pid;
	const char *text;
	size_t len;
};

struct follower {
	struct follower *next;
	void (*fn)(struct follower *f, struct service *s, const struct log_entry *e);
	void (*gone)(struct follower *f, struct service *s);	/* the service is freed */
};

void svclog_line(struct service *s, pid_t pid, const char *line, size_t len);
/* The last n entries, oldest first. */
void svclog_tail(struct service *s, int n, void (*fn)(const struct log_entry *e, void *arg), void *arg);
/* Upgrade hand-over: put a saved entry back in the ring (nowhere else). */
void svclog_restore(struct service *s, const struct log_entry *e);
void svclog_follow(struct service *s, struct follower *f);
void svclog_unfollow(struct service *s, struct follower *f);
/* Apply the service's (new) log settings: open, switch or close its file. */
void svclog_configure(struct service *s);
void svclog_reopen_all(struct service *all);	/* SIGUSR1: every file of the list */
void svclog_free(struct service *s);

#endif
