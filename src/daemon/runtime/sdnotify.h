/* sdnotify.h - droverd telling its own supervisor (systemd) how it is.
 *
 * Active only when droverd was started with NOTIFY_SOCKET; the variable is
 * then removed from droverd's environment so no service inherits it.
 * Datagrams are sent without blocking; a supervisor that does not read
 * them loses them, droverd does not wait. */
#ifndef DROVER_SDNOTIFY_H
#define DROVER_SDNOTIFY_H

#include <stdbool.h>

void sdnotify_init(void);
bool sdnotify_active(void);
/* A droverd that has not taken over yet says nothing to systemd. */
void sdnotify_mute(bool mute);
/* The socket droverd notifies ("@..." or a path), or NULL. */
const char *sdnotify_path(void);
void sdnotify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A message with one descriptor attached (FDSTORE=1). 0 or -1. */
int sdnotify_send_fd(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
