/* upgrade.h - replacing droverd's own binary without stopping anything.
 *
 * In place (`drover upgrade`, SIGUSR2): the binary now at droverd's path is
 * first run in a child as `droverd -t` against the current configuration
 * and a copy of the state; only if that passes does droverd exec it, same
 * PID, handing over its state (state.h) and keeping every listener, every
 * service process and every timer. If the new image cannot take the state
 * over, it executes the old image again (kept open as a descriptor) with
 * the same state. One upgrade at a time. */
#ifndef DROVER_UPGRADE_H
#define DROVER_UPGRADE_H

#include <stdbool.h>
#include <sys/types.h>

struct conn;

/* Start an upgrade; c is the requesting connection or NULL (SIGUSR2). */
void upgrade_request(struct conn *c, bool handover);
/* The reaper found pid unknown to the process table: ours? */
bool upgrade_reaped(pid_t pid, int status);
/* A connection is going away: do not answer it later. */
void upgrade_forget_client(struct conn *c);

/* In a new image: was it started to take a state over? Then do so (or fall
 * back to the old image, which does not return). Returns false when there
 * is no state: an ordinary start. */
bool upgrade_takeover(const char *control_override);
/* After the takeover: answer the client that asked (if any). */
void upgrade_report(void);
#endif
