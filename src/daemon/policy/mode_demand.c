/* mode_demand.c - start = demand, around daemon or prefork.
 *
 * Its listeners are bound and watched; the first connection starts the
 * mode it wraps (pool.c sets started_by_demand). A daemon started so that
 * exits 0 goes back to waiting for the next connection; any other end is
 * the wrapped mode's (a failure backs off first). */
#include "mode.h"

#include "log.h"
#include "pool.h"
#include "service.h"

static void demand_start(struct service *s)
{
	if (!s->started_by_demand) {
		pool_wait_demand(s);
		return;
	}
	s->mode->inner->start(s);
}

static void demand_ended(struct service *s, struct proc *p, const char *what, bool clean, int64_t uptime)
{
	s->started_by_demand = false;
	if (!clean) {
		s->mode->inner->ended(s, p, what, clean, uptime);
		return;
	}
	log_info("%s: pid %d %s; waiting for the next connection", s->conf->name, (int)p->pid, what);
	s->failures = 0;
	svc_set_state(s, ST_STOPPED);
}

const struct mode_ops mode_demand_daemon = {
	.name = "daemon, start = demand",
	.inner = &mode_daemon,
	.start = demand_start,
	.exited = main_exited,
	.ended = demand_ended,
	.notify = main_notify,
	.healthy = main_healthy,
};

const struct mode_ops mode_demand_prefork = {
	.name = "prefork, start = demand",
	.inner = &mode_prefork,
	.start = demand_start,
	.exited = pool_proc_exited,
	.notify = pool_notify,
	.healthy = pool_healthy,
	.apply_live = pool_apply_live,
	.roll = pool_roll,
};

const struct mode_ops *mode_of(const struct svc_conf *c)
{
	static const struct mode_ops *const plain[] = {
		[MODE_DAEMON] = &mode_daemon, [MODE_ONESHOT] = &mode_oneshot, [MODE_TIMER] = &mode_timer,
		[MODE_PREFORK] = &mode_prefork, [MODE_ACCEPT] = &mode_accept,
	};

	if (c->start == START_DEMAND && c->mode == MODE_DAEMON)
		return &mode_demand_daemon;
	if (c->start == START_DEMAND && c->mode == MODE_PREFORK)
		return &mode_demand_prefork;
	return plain[c->mode];
}
