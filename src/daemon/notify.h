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

/* Create (or adopt fd >= 0) and start reading. 0 or -1. */
int notify_open(int fd);
void notify_drain(void);
int notify_fd(void);

/* Parse one datagram: calls fn for each KEY=VALUE line. Pure; exported for
 * tests. Returns the number of lines handed on, -1 if malformed. */
int notify_parse(char *msg, size_t len, void (*fn)(const char *key, const char *value, void *arg),
		 void *arg);

#endif
