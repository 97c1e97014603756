/* service_eval.c - the evaluator: what each service should do next.
 *
 * Events (a process exited, a notification arrived, a timer fired, an
 * administrator asked) change a service's state or what is wanted of it and
 * mark it for evaluation. After each batch of events the loop calls
 * svc_evaluate_all(), which brings each marked service toward what is
 * wanted; a service whose state changes marks its dependency neighbours,
 * until nothing changes. Keeping every decision in one place is what keeps
 * the rules (dependencies, backoff, reverse-order stop) consistent with
 * each other; evaluating only what an event can affect keeps it cheap with
 * thousands of services. */
#include "service.h"

#include <stdlib.h>
#include <string.h>

#include "cgroup.h"
#include "deps.h"
#include "health.h"
#include "listen.h"
#include "log.h"
#include "mode.h"
#include "pool.h"
#include "probe.h"
#include "proc.h"
#include "svclog.h"

static bool all_dirty;
static struct service *dirty;

void svc_schedule(void)
{
	all_dirty = true;
}

void svc_touch(struct service *s)
{
	if (s && !s->dirty) {
		s->dirty = true;
		s->dirty_next = dirty;
		dirty = s;
	}
}

/* Its cgroup, its limits, and nothing left of its last run in it (a new
 * process must not share the SIGKILL meant for those); false when the
 * start cannot go on now. */
static bool cgroup_ready(struct service *s)
{
	char err[400];

	if (svc_open_cgroup(s, err, sizeof(err)) < 0 ||
	    (s->cg && cgroup_apply_limits(s->cg, s->conf, err, sizeof(err)) < 0)) {
		log_error("%s: %s", s->conf->name, err);
		svc_end(s, ST_FAILED, err);
		return false;
	}
	if (s->cg && cgroup_populated(s->cg)) {
		cgroup_stop(s->cg, s->conf->stop_signal, s->conf->stop_timeout);
		svc_set_state(s, ST_STARTING);
		svc_set_reason(s, "waiting for the processes left by its last run to end");
		return false;
	}
	return true;
}

/* Wanted up, nothing running: start once the requirements allow. */
static void try_start(struct service *s)
{
	char why[200];

	if (!deps_can_start(s, why, sizeof(why))) {
		svc_set_state(s, ST_STARTING);
		svc_set_reason(s, "%s", why);
		return;
	}
	if (!cgroup_ready(s))
		return;
	s->mode->start(s);
}

static void eval_up(struct service *s)
{
	if (s->held) {
		svc_set_state(s, ST_STARTING);
		svc_set_reason(s, "the previous droverd is still stopping it");
		return;
	}
	switch (s->state) {
	case ST_STOPPED:
		try_start(s);
		break;
	case ST_STARTING:
		/* Waiting for requirements (a pool not started yet, or no
		 * process): try again. A pool whose workers have not reported
		 * ready yet is left alone. */
		if (!svc_has_live_leader(s) && !s->pool)
			try_start(s);
		break;
	case ST_STOPPING:
		if (!svc_has_procs(s) && s->fail_pending && s->pool) {
			/* A pool's failed start (ready_timeout): its workers are
			 * gone; it backs off like any failed start. */
			s->fail_pending = false;
			svc_failed(s, svc_reason(s), false, 0);
		} else if (!svc_has_procs(s) && !s->fail_pending) {
			svc_set_state(s, ST_STOPPED);
		}
		break;
	default:
		break;
	}
}

/* Down and without processes: the reason is again why it was stopped
 * (it said what it waited for while stopping). */
static void stopped(struct service *s)
{
	svc_set_state(s, ST_STOPPED);
	if (s->stop_cause)
		svc_set_reason(s, "%s", s->stop_cause);
	pool_release(s);
}

static void eval_down(struct service *s)
{
	char why[200];

	switch (s->state) {
	case ST_STOPPED:
	case ST_FAILED:
		return;
	case ST_STOPPING:
		if (!svc_has_procs(s))
			stopped(s);
		return;
	default:
		break;
	}
	timer_cancel(&s->t_restart);
	timer_cancel(&s->t_sched);
	if (!svc_has_live_leader(s)) {
		timer_cancel(&s->t_ready);
		if (s->cg)
			cgroup_stop(s->cg, s->conf->stop_signal, s->conf->stop_timeout);
		if (svc_has_procs(s))
			svc_set_state(s, ST_STOPPING);
		else
			stopped(s);
		return;
	}
	if (!deps_can_stop(s, why, sizeof(why))) {
		svc_set_reason(s, "%s", why);
		return;
	}
	svc_begin_stop(s, s->reason ? s->reason : "stopping");
}

/* Evaluates one service; true when what its neighbours can see changed
 * (state, wish, whether it has processes). */
static bool evaluate(struct service *s)
{
	enum svc_state before = s->state;
	bool want = s->want, procs = svc_has_procs(s);

	if (s->removed && !s->want && !procs) {
		log_info("%s: removed", s->conf->name);
		deps_touch_neighbors(s);
		health_free(s);
		svc_free(s);
		return false;
	}
	if (s->nretired)
		listen_close_retired(s);
	if (s->want)
		eval_up(s);
	else
		eval_down(s);
	return s->state != before || s->want != want || svc_has_procs(s) != procs;
}

void svc_evaluate_all(void)
{
	unsigned budget;

	if (all_dirty) {
		all_dirty = false;
		for (struct service *s = services; s; s = s->next)
			svc_touch(s);
	}
	/* Each step settles a service or passes the change on to a neighbour;
	 * the budget only guards against a rule that would flip forever. No
	 * walk of every service here: this runs after every event. */
	budget = 64 * (svc_count() + 1);
	while (dirty && budget--) {
		struct service *s = dirty;

		dirty = s->dirty_next;
		s->dirty = false;
		if (evaluate(s)) {
			deps_touch_neighbors(s);
			svc_touch(s);
		}
	}
	if (dirty) {
		log_error("service evaluation did not settle; continuing on the next event");
		while (dirty) {
			dirty->dirty = false;
			dirty = dirty->dirty_next;
		}
	}
	svc_settled();
}

void svc_proc_exited(struct proc *p, int status)
{
	struct service *s = p->svc;

	if (!s)
		return;
	if (p->probe) {
		probe_exited(p, status);	/* an exec probe, not the service */
		return;
	}
	s->last_status = status;
	svc_touch(s);
	s->mode->exited(s, p, status);
	/* Its last process is gone: what it left in its cgroup (helpers that
	 * left its process group) goes too. Not while a pool is wanted up: it
	 * starts workers and handlers into that cgroup at any time, and the
	 * stop's SIGKILL would take them too; its leftovers go when the
	 * service stops. */
	if (s->cg && !svc_has_live_leader(s) && !(s->pool && s->want))
		cgroup_stop(s->cg, s->conf->stop_signal, s->conf->stop_timeout);
}

void svc_procs_gone(struct service *s)
{
	svc_touch(s);
	deps_touch_neighbors(s);
}

void svc_note(struct service *s, const char *text)
{
	svc_set_reason(s, "%s", text);
}

void svc_notify(struct proc *p, const char *key, const char *value)
{
	struct service *s = p->svc;

	if (!s)
		return;
	if (strcmp(key, "STATUS") == 0) {
		free(s->status_text);
		s->status_text = strdup(value);
	} else {
		s->mode->notify(s, p, key, value);
	}
}

/* Reload: the new definition takes effect. `replace`: processes are
 * replaced (stop, then start with the new definition); otherwise only
 * supervision settings changed and are used from now on. */
void svc_apply_conf(struct service *s, struct svc_conf *conf, struct conf *owner, bool replace)
{
	owner->refs++;
	conf_release(s->owner);
	s->conf = conf;
	s->owner = owner;
	s->mode = mode_of(conf);	/* start = demand may come or go */
	svc_index_stale();	/* its dependencies may have changed */
	svc_touch(s);
	if (s->lis)
		listen_rebuild(s);
	svclog_configure(s);
	if (!replace) {
		health_configure(s);
		if (s->mode->apply_live)
			s->mode->apply_live(s);
		return;
	}
	s->generation++;
	s->failures = 0;
	if (s->state == ST_BACKOFF) {
		timer_cancel(&s->t_restart);
		svc_set_state(s, ST_STOPPED);
	}
	if (s->mode->roll && svc_has_live_leader(s))
		s->mode->roll(s);
	else if (svc_has_live_leader(s))
		svc_begin_stop(s, "replaced by a new definition");
}

void svc_restore_timers(struct service *s, int64_t restart_at, int64_t ready_at, int64_t watchdog_at,
			bool sched)
{
	if (restart_at >= 0)
		svc_arm_restart(s, restart_at);
	if (ready_at >= 0)
		main_arm_ready(s, ready_at);
	if (watchdog_at >= 0)
		main_arm_watchdog(s, watchdog_at);
	if (sched)
		timer_mode_arm(s);
}

void svc_taken_over(struct service *s)
{
	/* Probing goes on in the new image, from `starting`: what the last
	 * probes said is not handed over. */
	if (s->conf->health.kind != HEALTH_NONE && svc_has_live_leader(s) &&
	    (s->state == ST_STARTING || s->state == ST_READY))
		health_start(s);
}

void svc_shutdown(bool fast)
{
	for (struct service *s = services; s; s = s->next) {
		s->want = false;
		if (fast)
			for (struct proc *p = s->procs; p; p = p->next)
				proc_kill(p);
		if (fast && s->cg)
			cgroup_kill(s->cg);
	}
	svc_schedule();
}

bool svc_all_stopped(void)
{
	return proc_count() == 0 && cgroup_all_empty();
}

/* Held by a handover, or waiting (through requires) on one that is. */
static bool on_hold(const struct service *s, int depth)
{
	if (s->held)
		return true;
	for (int i = 0; depth < 64 && i < s->conf->nrequires; i++) {
		struct service *d = svc_find(s->conf->requires[i]);

		if (d && on_hold(d, depth + 1))
			return true;
	}
	return false;
}

bool svc_boot_settled(void)
{
	for (struct service *s = services; s; s = s->next)
		if (s->want && s->conf->start == START_AUTO && s->state == ST_STARTING && !on_hold(s, 0))
			return false;
	return true;
}
