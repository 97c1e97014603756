/* health.h - what a service's health probes mean (SPEC 3a).
 *
 * Probing begins when a daemon's main process or a prefork pool starts and
 * ends when it stops; one probe every health_interval (the first at once),
 * run by probe.c. A passing probe makes the service healthy, and ready when
 * it waits for that (ready = health). After health_retries failures in a
 * row, not counting those within health_start_period of the start, a
 * service that was ready is unhealthy: a daemon is stopped and started
 * again with the backoff (a failed start), a prefork pool rolls to a new
 * generation; probing goes on. Before it is ready, its ready_timeout
 * decides, not its probes. */
#ifndef DROVER_HEALTH_H
#define DROVER_HEALTH_H

#include <stdbool.h>

#include "records.h"

void health_start(struct service *s);
void health_stop(struct service *s);
/* A reload changed its probe settings (or removed its probe). */
void health_configure(struct service *s);
/* The service is freed. */
void health_free(struct service *s);
/* A probe of s ended (probe.c's report, wired by main.c). */
void health_probe_done(struct service *s, bool ok, const char *why);
/* "healthy", "unhealthy", "starting", or "" without a probe. */
const char *health_name(enum svc_health h);

#endif
