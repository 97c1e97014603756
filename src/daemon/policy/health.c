/* health.c - see health.h. */
#include "health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mode.h"
#include "probe.h"
#include "service.h"

const char *health_name(enum svc_health h)
{
	static const char *const names[] = { "", "starting", "healthy", "unhealthy" };

	return names[h];
}

static void set_text(struct service *s, const char *why)
{
	char *copy = why && why[0] ? strdup(why) : NULL;

	if (why && why[0] && !copy)
		return;		/* no memory: the older text stays */
	free(s->health_text);
	s->health_text = copy;
}

static void probe_due(struct timer *t)
{
	struct service *s = SVC_OF(t, t_health);

	if (probe_running(s))
		log_debug("%s: the last probe is still running: this one is skipped", s->conf->name);
	else
		probe_start(s);
	timer_after(&s->t_health, s->conf->health.interval, probe_due);
}

void health_start(struct service *s)
{
	probe_cancel(s);
	timer_cancel(&s->t_health);
	s->health_failures = 0;
	if (s->conf->health.kind == HEALTH_NONE) {
		s->health = H_NONE;
		return;
	}
	s->health = H_STARTING;
	s->health_since = loop_now();
	set_text(s, NULL);
	timer_after(&s->t_health, 0, probe_due);
}

void health_stop(struct service *s)
{
	timer_cancel(&s->t_health);
	probe_cancel(s);
	/* Unhealthy stays shown until the next start (it is why it stopped);
	 * anything else starts again from `starting`. */
	if (s->health == H_HEALTHY)
		s->health = H_STARTING;
}

void health_free(struct service *s)
{
	health_stop(s);
	set_text(s, NULL);
}

void health_configure(struct service *s)
{
	bool probing = timer_armed(&s->t_health);

	if (s->conf->health.kind == HEALTH_NONE) {
		health_stop(s);
		s->health = H_NONE;
		set_text(s, NULL);
		return;
	}
	if (s->health == H_NONE)
		s->health = H_STARTING;
	if (!probing && !svc_has_live_leader(s))
		return;		/* not running: its next start begins probing */
	/* New settings from the next probe on; a probe running under the old
	 * ones is not waited for. */
	probe_cancel(s);
	s->health_failures = 0;
	timer_after(&s->t_health, probing ? s->conf->health.interval : 0, probe_due);
}

static void passed(struct service *s)
{
	enum svc_health was = s->health;

	s->health_failures = 0;
	s->health = H_HEALTHY;
	if (was != H_HEALTHY)
		log_info("%s: healthy", s->conf->name);
	if (s->mode->healthy)
		s->mode->healthy(s);
}

/* health_retries failures in a row, and it was ready: restart it. */
static void unhealthy(struct service *s, const char *why)
{
	char reason[SVC_REASON_MAX];

	s->health = H_UNHEALTHY;
	s->health_failures = 0;
	snprintf(reason, sizeof(reason), "unhealthy: %s", why);
	if (s->mode->roll && s->pool) {
		log_warn("%s: unhealthy (%u probes failed in a row, the last: %s): rolling to a new generation",
			 s->conf->name, s->conf->health.retries, why);
		s->restarts++;
		s->generation++;
		s->health_since = loop_now();	/* health_start_period again */
		s->mode->roll(s);
		return;
	}
	log_warn("%s: unhealthy (%u probes failed in a row, the last: %s): restarting it", s->conf->name,
		 s->conf->health.retries, why);
	svc_set_reason(s, "%s", reason);
	s->fail_pending = true;		/* a failed start: the backoff follows */
	svc_begin_stop(s, reason);
}

void health_probe_done(struct service *s, bool ok, const char *why)
{
	if (ok) {
		passed(s);
		return;
	}
	set_text(s, why);
	log_debug("%s: probe failed: %s", s->conf->name, why);
	if (loop_now() - s->health_since < s->conf->health.start_period)
		return;		/* within health_start_period: not counted */
	if (++s->health_failures < s->conf->health.retries)
		return;
	if (s->state != ST_READY) {
		/* Not ready yet (ready = health): ready_timeout decides. */
		s->health_failures = 0;
		return;
	}
	unhealthy(s, why);
}
