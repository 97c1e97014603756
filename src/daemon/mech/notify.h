/* notify.h - readiness and status datagrams from services (sd_notify).
 *
 * One datagram socket in the abstract namespace, passed to services as
 * NOTIFY_SOCKET. The sender is identified by the kernel's credentials
 * (SCM_CREDENTIALS), never by what it writes; a datagram from a process
 * droverd did not start, an oversized one, or one with descriptors attached
 * is ignored (the descriptors are closed). Warnings about ignored datagrams
 * are rate-limited, so a flood costs a bounded amount of log. */
#ifndef DROVER_NOTIFY_H
#define DROVER_NOTIFY_H

#include <stddef.h>

struct proc;

/* What the socket reports upward: set once, before notify_open. */
struct notify_events {
	/* A KEY=VALUE line from process p (identified by the kernel). */
	void (*message)(struct proc *p, const char *key, const char *value);
};
void notify_set_events(const struct notify_events *ev);

/* Create (or adopt fd >= 0) and start reading. 0 or -1. */
int notify_open(int fd);
void notify_drain(void);
int notify_fd(void);
/* Its name in the abstract namespace ("" before notify_open). */
const char *notify_socket_name(void);

/* Parse one datagram: calls fn for each KEY=VALUE line. Pure; exported for
 * tests. Returns the number of lines handed on, -1 if malformed. */
int notify_parse(char *msg, size_t len, void (*fn)(const char *key, const char *value, void *arg),
		 void *arg);

#endif
