/* mode_main.c - daemon and oneshot: one main process.
 *
 * A daemon is started, becomes ready (at once, when its main process says
 * READY=1, or never: ready_timeout), is watched (WATCHDOG=1), and is
 * restarted with the backoff when it ends. A oneshot runs to completion:
 * exit 0 is `done`. The timer mode's runs share how an exit is read. */
#include "mode.h"

#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/wait.h>

#include "health.h"
#include "launch.h"
#include "listen.h"
#include "log.h"
#include "proc.h"
#include "service.h"
#include "value.h"

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
	proc_stop(p, SIGABRT, s->conf->stop_timeout);	/* its group, once */
	svc_set_state(s, ST_STOPPING);
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

void main_arm_ready(struct service *s, int64_t at)
{
	timer_at(&s->t_ready, at, ready_timeout);
}

void main_arm_watchdog(struct service *s, int64_t at)
{
	timer_at(&s->t_watchdog, at, watchdog_timeout);
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
	health_start(s);
	svc_clear_reason(s);
	if (s->conf->ready == READY_NONE) {
		became_ready(s, p);
		return;
	}
	svc_set_state(s, ST_STARTING);
	svc_set_reason(s, "%s", s->conf->ready == READY_NOTIFY   ? "waiting for READY=1"
				: s->conf->ready == READY_HEALTH ? "waiting for a passing probe"
								 : "running");
	timer_after(&s->t_ready, s->conf->ready_timeout, ready_timeout);
}

void main_exited(struct service *s, struct proc *p, int status)
{
	char what[128];
	bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	int64_t uptime = loop_now() - p->started;

	svc_describe_status(status, what, sizeof(what));
	if (p->gen != s->generation) {
		log_info("%s: pid %d of generation %u %s", s->conf->name, (int)p->pid, p->gen, what);
		return;
	}
	timer_cancel(&s->t_ready);
	timer_cancel(&s->t_watchdog);
	health_stop(s);		/* nothing left to probe */
	if (p->stopping || !s->want) {
		log_info("%s: pid %d %s", s->conf->name, (int)p->pid, what);
		if (s->fail_pending) {
			s->fail_pending = false;
			svc_failed(s, svc_reason(s), false, uptime);
		}
		return;
	}
	s->mode->ended(s, p, what, clean, uptime);
}

static void daemon_ended(struct service *s, struct proc *p, const char *what, bool clean, int64_t uptime)
{
	(void)p;
	svc_failed(s, what, clean, uptime);
}

static void oneshot_ended(struct service *s, struct proc *p, const char *what, bool clean, int64_t uptime)
{
	(void)p;
	if (!clean) {
		svc_failed(s, what, false, uptime);
		return;
	}
	log_info("%s: finished", s->conf->name);
	s->failures = 0;
	svc_set_state(s, ST_DONE);
	svc_set_reason(s, "finished");
	if (s->conf->critical)
		svc_end(s, ST_DONE, "finished");
}

void main_notify(struct service *s, struct proc *p, const char *key, const char *value)
{
	if (strcmp(key, "READY") == 0 && strcmp(value, "1") == 0) {
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

void main_healthy(struct service *s)
{
	struct proc *p = svc_main_proc(s);

	if (s->state == ST_STARTING && s->conf->ready == READY_HEALTH && p) {
		log_info("%s: ready (its probe passed)", s->conf->name);
		became_ready(s, p);
	}
}

const struct mode_ops mode_daemon = {
	.name = "daemon",
	.start = start_main,
	.exited = main_exited,
	.ended = daemon_ended,
	.notify = main_notify,
	.healthy = main_healthy,
};

const struct mode_ops mode_oneshot = {
	.name = "oneshot",
	.start = start_main,
	.exited = main_exited,
	.ended = oneshot_ended,
	.notify = main_notify,
};
