/* mode_timer.c - timer: a run at each `every` and at each `at` time.
 *
 * Between runs the service is `waiting`; during one, `running`. A run
 * that is due while the last one still goes (or while what it left in
 * its cgroup still stops) is skipped, with a warning: runs never pile
 * up. */
#include "mode.h"

#include <time.h>

#include "cgroup.h"
#include "launch.h"
#include "log.h"
#include "schedule.h"
#include "service.h"

static void sched_timeout(struct timer *t);

/* The next run is the earlier of `every` and `at`. */
void timer_mode_arm(struct service *s)
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

static void run(struct service *s)
{
	struct launch_opts o = { .slot = -1, .conn_fd = -1 };
	char err[300];
	struct proc *p;

	for (const struct proc *q = s->procs; q; q = q->next)
		if (!q->exited) {
			log_warn("%s: previous run (pid %d) still going: this run is skipped", s->conf->name,
				 (int)q->pid);
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
		run(s);
	timer_mode_arm(s);
}

static void timer_start(struct service *s)
{
	svc_clear_reason(s);
	svc_set_state(s, ST_WAITING);
	timer_mode_arm(s);
}

static void timer_ended(struct service *s, struct proc *p, const char *what, bool clean, int64_t uptime)
{
	(void)p;
	(void)uptime;
	log_msg(clean ? LV_INFO : LV_WARN, "%s: run %s", s->conf->name, what);
	svc_set_reason(s, "last run %s", what);
	svc_set_state(s, ST_WAITING);
}

/* New `every` or `at` times: the next run is computed again. */
static void timer_apply_live(struct service *s)
{
	if (!timer_armed(&s->t_sched))
		return;
	s->next_every = -1;
	s->next_at = 0;
	timer_mode_arm(s);
}

const struct mode_ops mode_timer = {
	.name = "timer",
	.start = timer_start,
	.exited = main_exited,
	.ended = timer_ended,
	.notify = main_notify,
	.apply_live = timer_apply_live,
};
