/* mode_pool.c - prefork and accept: a pool of processes (pool.c).
 *
 * prefork: workers share the listeners and report busy and idle; the pool
 * grows and shrinks between min_procs and max_procs, and rolls to a new
 * generation without a refused connection. accept: droverd accepts and
 * starts one handler per connection (inetd). */
#include "mode.h"

#include "health.h"
#include "pool.h"

/* A pool is probed from its start (SPEC 3a; health.c). */
void prefork_start(struct service *s)
{
	pool_start(s);
	if (s->state != ST_STARTING && s->state != ST_READY)
		return;
	health_start(s);
	/* ready = health: ready_timeout bounds the wait for a passing probe;
	 * its end is a failed start of the pool (service_eval.c). */
	if (s->conf->ready == READY_HEALTH && s->state == ST_STARTING)
		main_arm_ready(s, loop_now() + s->conf->ready_timeout);
}

const struct mode_ops mode_prefork = {
	.name = "prefork",
	.start = prefork_start,
	.exited = pool_proc_exited,
	.notify = pool_notify,
	.healthy = pool_healthy,
	.apply_live = pool_apply_live,
	.roll = pool_roll,
};

const struct mode_ops mode_accept = {
	.name = "accept",
	.start = pool_start,
	.exited = pool_proc_exited,
	.notify = pool_notify,
	.apply_live = pool_apply_live,
};
