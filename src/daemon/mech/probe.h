/* probe.h - running one health probe of a service (SPEC 3a).
 *
 * tcp: a non-blocking connect, which passes when it is accepted. http: the
 * same, then `GET PATH HTTP/1.0` and the status line only (at most
 * PROBE_LINE_MAX bytes are read, then the connection is closed): 2xx and
 * 3xx pass. exec: the probe's command is started like the service's own
 * processes (credentials, environment, cgroup; launch.h) and passes when
 * it exits 0. Every probe is bounded by health_timeout (an exec probe's
 * whole process group is killed then) and never blocks droverd, whatever
 * the other side does. One probe of a service at a time. */
#ifndef DROVER_PROBE_H
#define DROVER_PROBE_H

#include <stdbool.h>

#include "records.h"

enum { PROBE_LINE_MAX = 128, PROBE_WHY_MAX = 512 };

/* What a probe reports upward: set once, by main.c. */
struct probe_events {
	/* The probe of s ended: passed, or failed with why (for a person). */
	void (*done)(struct service *s, bool ok, const char *why);
};
void probe_set_events(const struct probe_events *ev);

/* Start a probe of s now, by s->conf->health. 0; -1 when one is still
 * running (nothing started). A probe that cannot even start (no socket,
 * no process) is reported failed, later, through done(). */
int probe_start(struct service *s);
bool probe_running(const struct service *s);
/* Stop s's probe without a report (its service stops, or is freed). */
void probe_cancel(struct service *s);
/* An exec probe's process exited (the reaper found a probe record). */
void probe_exited(struct proc *p, int status);

/* Pure, for tests: a status line's verdict. True with the status code in
 * *code when line (len bytes, no CR LF) is "HTTP/1.x NNN ..."; false
 * when it is not a status line. */
bool probe_status_line(const char *line, size_t len, int *code);

#endif
