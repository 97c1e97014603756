/* service_state.c - the state verbs: every state change goes through here.
 *
 * svc_set_state() is the one place a service's state changes once it
 * runs; it checks the change against the table below, which is the state
 * machine of SPEC section 3 written down. A change the table does not
 * allow is a bug in droverd: it is logged as an internal error and
 * counted (the tests fail on either), and made anyway, since refusing it
 * would leave the service in a state the code did not expect either.
 *
 * The verbs built on it: fail (back off, or end), end (for good), begin a
 * stop, and the reason texts shown in status. */
#include "service.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup.h"
#include "deps.h"
#include "health.h"
#include "log.h"
#include "pool.h"
#include "proc.h"
#include "scarce.h"
#include "schedule.h"
#include "value.h"

const char *svc_state_name(enum svc_state st)
{
	static const char *const names[] = {
		"stopped", "starting", "ready", "stopping", "backoff", "failed", "done", "waiting", "running",
	};

	return names[st];
}

#define S(x) (1u << (x))
#define ANY_END (S(ST_STOPPED) | S(ST_FAILED) | S(ST_STOPPING))
/* allowed[from]: the states it may change to. Every state may end (be
 * stopped, fail for good, begin stopping); what else each may become: */
static const unsigned allowed[] = {
	[ST_STOPPED] = ANY_END | S(ST_STARTING) | S(ST_READY) | S(ST_BACKOFF) | S(ST_WAITING),
	[ST_STARTING] = ANY_END | S(ST_READY) | S(ST_BACKOFF) | S(ST_DONE) | S(ST_WAITING),
	[ST_READY] = ANY_END | S(ST_STARTING) | S(ST_BACKOFF) | S(ST_DONE),
	[ST_STOPPING] = ANY_END | S(ST_BACKOFF),
	/* a pool leaves its own backoff as its workers come back */
	[ST_BACKOFF] = ANY_END | S(ST_STARTING) | S(ST_READY),
	[ST_FAILED] = ANY_END,
	[ST_DONE] = ANY_END,
	[ST_WAITING] = ANY_END | S(ST_STARTING) | S(ST_READY) | S(ST_BACKOFF) | S(ST_RUNNING),
	[ST_RUNNING] = ANY_END | S(ST_WAITING),
};

bool svc_transition_allowed(enum svc_state from, enum svc_state to)
{
	return from == to || (allowed[from] & S(to)) != 0;
}

unsigned long svc_state_changes;	/* every change */
unsigned long svc_bad_transitions;	/* changes the table does not allow */

void svc_set_state(struct service *s, enum svc_state st)
{
	if (s->state == st)
		return;
	if (!svc_transition_allowed(s->state, st)) {
		svc_bad_transitions++;
		log_error("internal error: %s: state %s -> %s is not in droverd's transition table",
			  s->conf->name, svc_state_name(s->state), svc_state_name(st));
	}
	log_debug("%s: %s -> %s", s->conf->name, svc_state_name(s->state), svc_state_name(st));
	s->state = st;
	svc_state_changes++;
	s->since = loop_now();
	svc_touch(s);
	deps_touch_neighbors(s);	/* what waits on this state looks again */
}

/* Taking over a service (upgrade, handover, an administrator's start):
 * its state is set, not reached; no rule applies. */
void svc_reset_state(struct service *s, enum svc_state st)
{
	s->state = st;
	s->since = loop_now();
}

/* Replace *slot by a copy of text, NULL when text is empty. On no memory
 * the old text stays: a stale reason beats none. */
static void set_text(char **slot, const char *text)
{
	char *copy = NULL;

	if (text[0] && !(copy = strdup(text)))
		return;
	free(*slot);
	*slot = copy;
}

void svc_set_reason(struct service *s, const char *fmt, ...)
{
	char text[SVC_REASON_MAX];
	va_list ap;

	/* Through a copy: an argument may be s->reason itself. */
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	set_text(&s->reason, text);
}

const char *svc_reason(const struct service *s)
{
	return s->reason ? s->reason : "";
}

void svc_clear_reason(struct service *s)
{
	free(s->reason);
	s->reason = NULL;
}

void svc_set_stop_cause(struct service *s, const char *why)
{
	char text[SVC_REASON_MAX];

	snprintf(text, sizeof(text), "%s", why);
	set_text(&s->stop_cause, text);
}

struct proc *svc_main_proc(struct service *s)
{
	for (struct proc *p = s->procs; p; p = p->next)
		if (!p->exited && p->gen == s->generation && !p->stopping)
			return p;
	return NULL;
}

bool svc_has_live_leader(const struct service *s)
{
	for (const struct proc *p = s->procs; p; p = p->next)
		if (!p->exited)
			return true;
	return false;
}

static void cancel_timers(struct service *s)
{
	health_stop(s);
	timer_cancel(&s->t_restart);
	timer_cancel(&s->t_ready);
	timer_cancel(&s->t_watchdog);
	timer_cancel(&s->t_sched);
}

static const struct svc_events *up;	/* set once by main.c */

void svc_set_events(const struct svc_events *ev)
{
	up = ev;
}

void svc_settled(void)
{
	up->settled();
}

/* Ends for good: not wanted any more, its dependents follow, and a critical
 * service takes droverd down with its exit status. */
void svc_end(struct service *s, enum svc_state st, const char *reason)
{
	char why[SVC_REASON_MAX];

	snprintf(why, sizeof(why), "%s", reason);	/* it may be s->reason itself */
	cancel_timers(s);
	svc_set_state(s, st);
	svc_set_reason(s, "%s", why);
	deps_push_down(s, NULL);
	if (s->conf->critical) {
		log_info("%s: critical service ended (%s): shutting down", s->conf->name, why);
		up->critical_ended(svc_exit_code(s->last_status));
	}
}

void svc_listen_failed(struct service *s, const char *err)
{
	bool again = scarce_errno(errno);

	s->listen_failed = !again;
	if (again) {
		svc_failed(s, err, false, 0);	/* it logs, with the delay */
		return;
	}
	log_error("%s: %s", s->conf->name, err);
	svc_end(s, ST_FAILED, err);
}

static void restart_due(struct timer *t)
{
	struct service *s = SVC_OF(t, t_restart);

	if (s->state != ST_BACKOFF || !s->want)
		return;
	s->restarts++;
	svc_set_state(s, ST_STOPPED);
}

void svc_arm_restart(struct service *s, int64_t at)
{
	timer_at(&s->t_restart, at, restart_due);
}

/* A start that failed, or a process that ended when it should not have:
 * back off and retry per `restart`, or stop for good. */
void svc_failed(struct service *s, const char *reason, bool clean, int64_t uptime)
{
	const struct svc_conf *c = s->conf;
	bool again = c->restart == RESTART_ALWAYS || (c->restart == RESTART_ON_FAILURE && !clean);
	char delay[32], why[SVC_REASON_MAX];
	int64_t d;

	snprintf(why, sizeof(why), "%s", reason);	/* it may be s->reason itself */
	if (uptime >= c->min_uptime)
		s->failures = 0;
	if (!again || !s->want) {
		log_warn("%s: %s; not restarting (restart = %s)", c->name, why,
			 c->restart == RESTART_NO ? "no" : "on-failure");
		svc_end(s, clean ? ST_STOPPED : ST_FAILED, why);
		return;
	}
	d = backoff_delay(c->restart_delay, c->restart_delay_max, s->failures);
	s->failures++;
	s->next_attempt = loop_now() + d;
	duration_format(d, delay, sizeof(delay));
	cancel_timers(s);
	svc_set_state(s, ST_BACKOFF);
	svc_set_reason(s, "%s; restarting in %s", why, delay);
	log_warn("%s: %s; restarting in %s", c->name, why, delay);
	svc_arm_restart(s, s->next_attempt);
}

void svc_begin_stop(struct service *s, const char *why)
{
	bool signalled;

	cancel_timers(s);
	pool_stop_accepting(s);
	/* Every process of its cgroup gets the signal once, its own included. */
	signalled = s->cg && cgroup_stop(s->cg, s->conf->stop_signal, s->conf->stop_timeout);
	for (struct proc *p = s->procs; p; p = p->next)
		if (!p->exited && signalled)
			proc_stop_signalled(p, s->conf->stop_timeout);
		else if (!p->exited)
			proc_stop(p, s->conf->stop_signal, s->conf->stop_timeout);
	if (svc_has_procs(s)) {
		svc_set_state(s, ST_STOPPING);
		svc_set_reason(s, "%s", why);
	}
}
