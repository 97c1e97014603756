/* handover.h - `drover upgrade --handover`: a new droverd beside the old.
 *
 * The old droverd starts the new binary as a child with the listeners and
 * the control socket inherited and its state given to it (no processes).
 * The new one starts its own processes; what must not run twice (a daemon
 * without listeners, a oneshot still running) is held until the old one
 * has stopped it. When its services are up it says so over a socket pair;
 * the old one then answers the administrator, tells systemd MAINPID= of the
 * new one, hands over the control socket, asks its own processes to finish
 * their work, and exits when they have.
 *
 * If the new one exits or is not ready within upgrade_timeout, the old one
 * stops it and carries on as if nothing happened; if it dies while the old
 * one drains, the old one takes everything back. If the old one dies while
 * draining, the new one watches the old one's remaining processes (pidfds)
 * and ends them after their stop timeout: none is left unsupervised. */
#ifndef DROVER_HANDOVER_H
#define DROVER_HANDOVER_H

#include <stdbool.h>
#include <sys/types.h>

#include "service.h"

struct conn;

/* Must the new droverd wait for the old one to stop s before starting it? */
bool handover_must_hold(const struct service *s);

/* Old side: the new binary passed its check; start it. */
void handover_begin(struct conn *client);
bool handover_active(void);
bool handover_reaped(pid_t pid, int status);
void handover_forget_client(struct conn *c);
/* The droverd this one hands over to (old side), or 0. */
pid_t handover_peer(void);
/* Old side, at exit: tell the new one we are done. */
void handover_old_exiting(void);

/* New side: started by an old droverd? Then set up from its state. */
bool handover_takeover(const char *control_override);

/* Both sides, after every evaluation. */
void handover_after_evaluation(void);

#endif
