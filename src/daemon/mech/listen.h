/* listen.h - the listening sockets droverd owns for its services.
 *
 * droverd binds every listener itself, before any process of its service
 * starts, so unprivileged workers can serve privileged ports. Sockets
 * passed to services stay blocking (programs expect that of inherited
 * listeners); droverd only watches them for readiness, except in accept
 * mode, where it alone accepts. A listener whose address and options did
 * not change across a reload is the same open socket afterwards. */
#ifndef DROVER_LISTEN_H
#define DROVER_LISTEN_H

#include <stddef.h>

#include "records.h"

/* Bind what is not bound yet. 0, or -1 with "cannot listen on ADDR: why". */
int listen_open(struct service *s, char *err, size_t len);
void listen_close(struct service *s);
/* Handover: sockets now belong to the new droverd too; closing ours must
 * not remove their files. */
void listen_keep_files(bool keep);
/* After s->conf changed: listeners follow the new definition; a socket
 * whose address and options are unchanged stays the same open socket,
 * the others are closed. */
void listen_rebuild(struct service *s);
/* Close retired sockets once no older generation's process is left. */
void listen_close_retired(struct service *s);
/* A service added while a removed one drains (the same service, or one it
 * was renamed from) takes over the sockets it wants. */
void listen_take(struct service *s, struct service *from);
/* Accept mode: droverd alone accepts, so its listeners are non-blocking.
 * Any other mode passes them on, and programs expect them blocking. */
void listen_set_nonblocking(struct service *s, bool on);
/* Upgrade hand-over: fd is listener `index` of s, bound for `key` (which
 * must be what the configuration says). NULL, or why not. */
const char *listen_adopt_fd(struct service *s, int index, int fd, dev_t dev, ino_t ino, const char *key);
/* At a fresh start: sockets systemd passed droverd (LISTEN_FDS) go to the
 * listen lines of the services in list `all` they match (stored name,
 * FDNAME, or address). */
void listen_adopt_passed(struct service *all);
/* fdstore = yes: listeners are stored with systemd as they are bound. */
void listen_use_fdstore(bool on);
int listen_count(const struct service *s);
int listen_fd(const struct service *s, int i);
/* "LISTEN_FDNAMES=a:b" (static buffer). */
const char *listen_fdnames(const struct service *s);
/* "tcp:0.0.0.0:80, unix:/run/x.sock" for status. */
void listen_describe(const struct service *s, char *out, size_t len);

#endif
