/* mode.h - one table of operations per mode (SPEC section 3).
 *
 * What differs between daemon, oneshot, timer, prefork and accept is here,
 * and only here: the evaluator (service_eval.c) and the requests
 * (service.c) call s->mode->... and never test the mode. `start = demand`
 * is a table of its own that wraps daemon or prefork: it waits for the
 * first connection, then hands over to the mode it wraps.
 *
 *   mode_main.c    daemon, oneshot: one main process, readiness, watchdog
 *   mode_timer.c   timer: a run at each `every` / `at`
 *   mode_pool.c    prefork, accept: a pool of processes (pool.c)
 *   mode_demand.c  start = demand, around daemon or prefork */
#ifndef DROVER_MODE_H
#define DROVER_MODE_H

#include <stdbool.h>
#include <stdint.h>

#include "records.h"

struct mode_ops {
	const char *name;
	const struct mode_ops *inner;	/* start = demand: the mode it wraps */
	/* Wanted up, requirements met, cgroup ready: start it. */
	void (*start)(struct service *s);
	/* A process of s ended (leader reaped), of any generation. */
	void (*exited)(struct service *s, struct proc *p, int status);
	/* daemon, oneshot, timer: the main process ended while wanted (what:
	 * its wait status in words; clean: exit 0; uptime in ms). */
	void (*ended)(struct service *s, struct proc *p, const char *what, bool clean, int64_t uptime);
	/* A KEY=VALUE notification other than STATUS= from p. */
	void (*notify)(struct service *s, struct proc *p, const char *key, const char *value);
	/* Its probe passed (NULL: nothing more to do; ready = health). */
	void (*healthy)(struct service *s);
	/* A reload changed only supervision settings (NULL: nothing to do). */
	void (*apply_live)(struct service *s);
	/* Replace the running processes by a new generation without a stop
	 * (NULL: the mode cannot; they are stopped and started again). */
	void (*roll)(struct service *s);
};

extern const struct mode_ops mode_daemon, mode_oneshot, mode_timer, mode_prefork, mode_accept;
extern const struct mode_ops mode_demand_daemon, mode_demand_prefork;

/* The table for a configuration: its mode, wrapped for start = demand. */
const struct mode_ops *mode_of(const struct svc_conf *c);

/* mode_main.c: the main process of daemon, oneshot or a timer run
 * exited (their `exited`); unless it was being stopped, the mode's
 * `ended` says what that means. Their notifications. */
void main_exited(struct service *s, struct proc *p, int status);
void main_notify(struct service *s, struct proc *p, const char *key, const char *value);
void main_healthy(struct service *s);
/* mode_pool.c: a prefork pool starts (and its probes with it). */
void prefork_start(struct service *s);
/* Upgrade hand-over: re-arm what mode_main.c and mode_timer.c time. */
void main_arm_ready(struct service *s, int64_t at);
void main_arm_watchdog(struct service *s, int64_t at);
void timer_mode_arm(struct service *s);

#endif
