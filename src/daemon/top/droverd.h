/* droverd.h - the daemon as a whole: what any part may ask of it. */
#ifndef DROVER_DROVERD_H
#define DROVER_DROVERD_H

#include <stdbool.h>

#include "conf.h"

/* Begin shutdown (graceful, or fast: SIGKILL); droverd exits with code once
 * every process is gone. The first request's code wins. */
void droverd_shutdown(bool fast, int code);
/* Stop every service for a handover: like a graceful shutdown, but systemd
 * is not told droverd is stopping (the new one carries on). */
void droverd_drain(void);
bool droverd_shutting_down(void);
/* A handover that failed while this droverd drained: carry on. */
void droverd_cancel_shutdown(void);
/* After each evaluation: finish shutdown, tell systemd we are ready. */
void droverd_after_evaluation(void);
/* Around a reload: tells systemd (RELOADING=1 ... READY=1). */
void droverd_reloading(bool begin);
/* After a burst of short-lived memory (a configuration read, a large
 * control reply): hand the freed pages back to the kernel. */
void droverd_trim_memory(void);
/* What the signalfd delivers (sig.h). */
void droverd_on_signal(int sig);
int droverd_exit_code(void);
struct state_globals;
/* Set up (sockets, signals, loop) and create the services; g: a state
 * being taken over, or NULL for a fresh start. Fatal on failure. */
void droverd_start(const char *control_override, const struct state_globals *g);

#endif
