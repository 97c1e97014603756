/* service_run.c - the service state machine.
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
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "cgroup.h"
#include "deps.h"
#include "launch.h"
#include "listen.h"
#include "log.h"
#include "pool.h"
#include "proc.h"
#include "scarce.h"
#include "schedule.h"
#include "svclog.h"
#include "service.h"
#include "value.h"

static bool all_dirty;
static struct service *dirty;
static const struct svc_events *up;	/* set once by main.c */

void svc_set_events(const struct svc_events *ev)
{
	up = ev;
}

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

unsigned long svc_state_changes;

void svc_set_state(struct service *s, enum svc_state st)
{
	if (s->state == st)
		return;
	log_debug("%s: %s -> %s", s->conf->name, svc_state_name(s->state), svc_state_name(st));
	s->state = st;
	svc_state_changes++;
	s->since = loop_now();
	svc_touch(s);
	deps_touch_neighbors(s);	/* what waits on this state looks again */
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

#define SVC_OF(t, field) ((struct service *)((char *)(t) - offsetof(struct service, field)))

struct proc *svc_main_proc(struct service *s)
{
	for (struct proc *p = s->procs; p; p = p->next)
		if (!p->exited && p->gen == s->generation && !p->stopping)
			return p;
	return NULL;
}

static bool has_live_leader(const struct service *s)
{
	for (struct proc *p = s->procs; p; p = p->next)
		if (!p->exited)
			return true;
	return false;
}

static void cancel_timers(struct service *s)
{
	timer_cancel(&s->t_restart);
	timer_cancel(&s->t_ready);
	timer_cancel(&s->t_watchdog);
	timer_cancel(&s->t_sched);
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
	timer_at(&s->t_restart, s->next_attempt, restart_due);
}

static void ready_timeout(struct timer *t)
{
	struct service *s = SVC_OF(t, t_ready);
	char d[32];

	if (s->state != ST_STARTING)
		return;
	duration_format(s->conf->ready_timeout, d, sizeof(d));
	log_warn("%s: not ready within %s: stopping it", s->conf->name, d);
	svc_set_reason(s, "not ready within %s", d);
	s->fail_pending = true;
	svc_begin_stop(s, svc_reason(s));
}

static void watchdog_timeout(struct timer *t)
{
	struct service *s = SVC_OF(t, t_watchdog);
	struct proc *p = svc_main_proc(s);
	char d[32];

	if (!p)
		return;
	duration_format(s->conf->watchdog, d, sizeof(d));
	log_warn("%s: no WATCHDOG=1 from pid %d within %s: aborting it", s->conf->name, (int)p->pid, d);
	svc_set_reason(s, "watchdog: no sign of life within %s", d);
	s->fail_pending = true;
	proc_signal(p, SIGABRT);
	proc_stop(p, SIGABRT, s->conf->stop_timeout);
	svc_set_state(s, ST_STOPPING);
}

static void became_ready(struct service *s, struct proc *p)
{
	p->ready = true;
	timer_cancel(&s->t_ready);
	svc_set_state(s, ST_READY);
	svc_clear_reason(s);
	if (s->conf->watchdog)
		timer_after(&s->t_watchdog, s->conf->watchdog, watchdog_timeout);
}

/* daemon and oneshot: the one main process. */
static void start_main(struct service *s)
{
	struct launch_opts o = { .slot = -1, .conn_fd = -1 };
	char err[300];
	struct proc *p;

	if (listen_open(s, err, sizeof(err)) < 0) {
		svc_listen_failed(s, err);
		return;
	}
	s->listen_failed = false;
	listen_set_nonblocking(s, false);
	if (!(p = launch_proc(s, &o, err, sizeof(err)))) {
		log_error("%s: %s", s->conf->name, err);
		s->last_status = -1;
		svc_failed(s, err, false, 0);
		return;
	}
	log_info("%s: started, pid %d", s->conf->name, (int)p->pid);
	svc_clear_reason(s);
	if (s->conf->ready == READY_NONE) {
		became_ready(s, p);
		return;
	}
	svc_set_state(s, ST_STARTING);
	svc_set_reason(s, "%s", s->conf->ready == READY_NOTIFY ? "waiting for READY=1" : "running");
	timer_after(&s->t_ready, s->conf->ready_timeout, ready_timeout);
}

/* Timer mode: the next run is the earlier of `every` and `at`. */
static void sched_timeout(struct timer *t);

static void sched_arm(struct service *s)
{
	const struct svc_conf *c = s->conf;
	int64_t now = loop_now(), wait = -1;

	if (c->every) {
		if (s->next_every < 0)
			s->next_every = sched_next_every(c->every, s->last_every, now);
		wait = s->next_every - now;
	}
	if (c->nat) {
		time_t wall = time(NULL);
		int64_t until;

		if (!s->next_at || s->next_at <= wall - 1)
			s->next_at = sched_next_at(c->at, c->nat, wall);
		until = ((int64_t)s->next_at - wall) * 1000;
		/* The wall clock can jump: look again at least every minute. */
		if (until > 60000)
			until = 60000;
		if (wait < 0 || until < wait)
			wait = until;
	}
	timer_after(&s->t_sched, wait < 0 ? 0 : wait, sched_timeout);
}

static void timer_run(struct service *s)
{
	struct launch_opts o = { .slot = -1, .conn_fd = -1 };
	char err[300];
	struct proc *p;

	if (has_live_leader(s)) {
		log_warn("%s: previous run (pid %d) still going: this run is skipped", s->conf->name,
			 (int)s->procs->pid);
		return;
	}
	if (s->cg && cgroup_populated(s->cg)) {
		log_warn("%s: processes of the previous run are still stopping: this run is skipped",
			 s->conf->name);
		return;
	}
	if (!(p = launch_proc(s, &o, err, sizeof(err)))) {
		log_error("%s: %s", s->conf->name, err);
		svc_set_reason(s, "last run: %s", err);
		return;
	}
	log_info("%s: run started, pid %d", s->conf->name, (int)p->pid);
	p->ready = true;
	svc_set_state(s, ST_RUNNING);
}

static void sched_timeout(struct timer *t)
{
	struct service *s = SVC_OF(t, t_sched);
	int64_t now = loop_now();
	bool due = false;

	if (!s->want || (s->state != ST_WAITING && s->state != ST_RUNNING))
		return;
	if (s->conf->every && s->next_every >= 0 && s->next_every <= now) {
		s->last_every = s->next_every;
		s->next_every = sched_next_every(s->conf->every, s->last_every, now);
		due = true;
	}
	if (s->conf->nat && s->next_at && s->next_at <= time(NULL)) {
		s->next_at = 0;
		due = true;
	}
	if (due)
		timer_run(s);
	sched_arm(s);
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
	switch (s->conf->mode) {
	case MODE_DAEMON:
		if (s->conf->start == START_DEMAND && !s->started_by_demand) {
			pool_wait_demand(s);
			return;
		}
		start_main(s);
		return;
	case MODE_ONESHOT:
		start_main(s);
		return;
	case MODE_TIMER:
		svc_clear_reason(s);
		svc_set_state(s, ST_WAITING);
		sched_arm(s);
		return;
	case MODE_PREFORK:
		if (s->conf->start == START_DEMAND && !s->started_by_demand) {
			pool_wait_demand(s);
			return;
		}
		pool_start(s);
		return;
	case MODE_ACCEPT:
		pool_start(s);
		return;
	}
}

void svc_begin_stop(struct service *s, const char *why)
{
	bool signalled;

	timer_cancel(&s->t_ready);
	timer_cancel(&s->t_watchdog);
	timer_cancel(&s->t_sched);
	timer_cancel(&s->t_restart);
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
		if (!has_live_leader(s) && !s->pool)
			try_start(s);
		break;
	case ST_STOPPING:
		if (!svc_has_procs(s) && !s->fail_pending)
			svc_set_state(s, ST_STOPPED);
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
	if (!has_live_leader(s)) {
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
	up->settled();
}

/* The main process of a daemon, oneshot or timer run ended. */
static void main_exited(struct service *s, struct proc *p, int status)
{
	char what[128];
	bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	int64_t uptime = loop_now() - p->started;

	svc_describe_status(status, what, sizeof(what));
	timer_cancel(&s->t_ready);
	timer_cancel(&s->t_watchdog);
	if (p->stopping || !s->want) {
		log_info("%s: pid %d %s", s->conf->name, (int)p->pid, what);
		if (s->fail_pending) {
			s->fail_pending = false;
			svc_failed(s, svc_reason(s), false, uptime);
		}
		return;
	}
	if (s->conf->start == START_DEMAND) {
		/* Back to waiting for the next connection (a failure backs off
		 * first). */
		s->started_by_demand = false;
		if (clean) {
			log_info("%s: pid %d %s; waiting for the next connection", s->conf->name,
				 (int)p->pid, what);
			s->failures = 0;
			svc_set_state(s, ST_STOPPED);
			return;
		}
	}
	switch (s->conf->mode) {
	case MODE_ONESHOT:
		if (clean) {
			log_info("%s: finished", s->conf->name);
			s->failures = 0;
			svc_set_state(s, ST_DONE);
			svc_set_reason(s, "finished");
			if (s->conf->critical)
				svc_end(s, ST_DONE, "finished");
			return;
		}
		svc_failed(s, what, false, uptime);
		return;
	case MODE_TIMER:
		log_msg(clean ? LV_INFO : LV_WARN, "%s: run %s", s->conf->name, what);
		svc_set_reason(s, "last run %s", what);
		svc_set_state(s, ST_WAITING);
		return;
	default:
		svc_failed(s, what, clean, uptime);
		return;
	}
}

static void proc_exited(struct service *s, struct proc *p, int status)
{
	if (s->conf->mode == MODE_PREFORK || s->conf->mode == MODE_ACCEPT) {
		pool_proc_exited(s, p, status);
		return;
	}
	if (p->gen != s->generation) {
		char what[128];

		svc_describe_status(status, what, sizeof(what));
		log_info("%s: pid %d of generation %u %s", s->conf->name, (int)p->pid, p->gen, what);
		return;
	}
	main_exited(s, p, status);
}

void svc_proc_exited(struct proc *p, int status)
{
	struct service *s = p->svc;

	if (!s)
		return;
	s->last_status = status;
	svc_touch(s);
	proc_exited(s, p, status);
	/* Its last process is gone: what it left in its cgroup (helpers that
	 * left its process group) goes too. Not while a pool is wanted up: it
	 * starts workers and handlers into that cgroup at any time, and the
	 * stop's SIGKILL would take them too; its leftovers go when the
	 * service stops. */
	if (s->cg && !has_live_leader(s) && !(s->pool && s->want))
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
	} else if (s->conf->mode == MODE_PREFORK || s->conf->mode == MODE_ACCEPT) {
		pool_notify(s, p, key, value);
	} else if (strcmp(key, "READY") == 0 && strcmp(value, "1") == 0) {
		if (s->state == ST_STARTING && p == svc_main_proc(s) && s->conf->ready == READY_NOTIFY) {
			log_info("%s: ready", s->conf->name);
			became_ready(s, p);
		}
	} else if (strcmp(key, "WATCHDOG") == 0 && strcmp(value, "1") == 0) {
		if (timer_armed(&s->t_watchdog))
			timer_after(&s->t_watchdog, s->conf->watchdog, watchdog_timeout);
	} else if (strcmp(key, "STOPPING") == 0 && strcmp(value, "1") == 0) {
		svc_set_reason(s, "stopping (said the service)");
	}
}

/* Reload: the new definition takes effect. `replace`: processes are
 * replaced (stop, then start with the new definition); otherwise only
 * supervision settings changed and are used from now on. */
void svc_apply_conf(struct service *s, struct svc_conf *conf, struct conf *owner, bool replace)
{
	bool was_timer = s->conf->mode == MODE_TIMER;

	owner->refs++;
	conf_release(s->owner);
	s->conf = conf;
	s->owner = owner;
	svc_index_stale();	/* its dependencies may have changed */
	svc_touch(s);
	if (s->lis)
		listen_rebuild(s);
	svclog_configure(s);
	if (!replace) {
		if (was_timer && conf->mode == MODE_TIMER && timer_armed(&s->t_sched)) {
			s->next_every = -1;
			s->next_at = 0;
			sched_arm(s);
		}
		pool_apply_live(s);
		return;
	}
	s->generation++;
	s->failures = 0;
	if (s->state == ST_BACKOFF) {
		timer_cancel(&s->t_restart);
		svc_set_state(s, ST_STOPPED);
	}
	if (conf->mode == MODE_PREFORK && has_live_leader(s))
		pool_roll(s);
	else if (has_live_leader(s))
		svc_begin_stop(s, "replaced by a new definition");
}

void svc_restore_timers(struct service *s, int64_t restart_at, int64_t ready_at, int64_t watchdog_at,
			bool sched)
{
	if (restart_at >= 0)
		timer_at(&s->t_restart, restart_at, restart_due);
	if (ready_at >= 0)
		timer_at(&s->t_ready, ready_at, ready_timeout);
	if (watchdog_at >= 0)
		timer_at(&s->t_watchdog, watchdog_at, watchdog_timeout);
	if (sched)
		sched_arm(s);
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
