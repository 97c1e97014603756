/* records.h - what droverd knows about each service, process and listener.
 *
 * Data only: plain structures that every layer reads and the mechanisms
 * (processes, reaping, output, listeners, logs, cgroups) fill in. A
 * service refers to its configuration, its processes, its timers and its
 * output; nothing else holds runtime state, so the whole of it can be
 * written out for the next droverd (state.c). Who decides what a service
 * does next is the policy layer (service.h); the mechanisms only report
 * to it, through their events tables. */
#ifndef DROVER_RECORDS_H
#define DROVER_RECORDS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "conf.h"
#include "loop.h"

enum svc_state {
	ST_STOPPED,	/* no process, not wanted */
	ST_STARTING,	/* wanted: waiting for requirements, or started and not ready */
	ST_READY,
	ST_STOPPING,	/* asked to stop, processes still running */
	ST_BACKOFF,	/* failed, restart scheduled at next_attempt */
	ST_FAILED,	/* failed and not restarted automatically; `reason` says why */
	ST_DONE,	/* oneshot finished successfully */
	ST_WAITING,	/* timer between runs; start = demand before a connection */
	ST_RUNNING,	/* timer: a run is in progress */
};

struct service;
struct output;
struct pool;
struct spawn_pending;
struct probe;

/* What its probe says of a service (SPEC 3a); H_NONE without a probe. */
enum svc_health { H_NONE, H_STARTING, H_HEALTHY, H_UNHEALTHY };

/* One bound listening socket of a service, in `listen` order. */
struct listener {
	int fd;			/* -1 until bound */
	dev_t dev;		/* unix path: the socket file we made, removed */
	ino_t ino;		/* on close only if it is still that file */
	bool stored;		/* kept by systemd too (fdstore) */
	const struct listen_conf *conf;
	struct service *svc;
	struct watch w;		/* demand start, prefork growth, accept mode */
};

struct proc {
	pid_t pid;
	int pidfd;		/* -1 without kernel support */
	struct service *svc;	/* NULL once its service is gone (still reaped) */
	struct proc *next;	/* in svc->procs */
	struct proc *hnext;	/* in the pid table */
	unsigned gen;		/* service generation it was started for */
	int slot;		/* prefork worker slot */
	int64_t started;
	bool ready;
	bool exited;		/* leader reaped; the record waits for its group */
	bool stopping;		/* stop signal sent */
	bool killed;		/* SIGKILL sent */
	bool kill_denied;	/* SIGKILL refused (EPERM): said once, checked less often */
	int64_t recheck;	/* the next wait after a refused SIGKILL (ms) */
	bool no_notify;		/* started without NOTIFY_SOCKET */
	bool probe;		/* an exec probe's process, not in svc->procs */
	struct output *out;	/* its stdout/stderr pipe */
	struct watch w_exit;	/* its pidfd, readable when it exits */
	struct timer t_kill;	/* stop_timeout, then SIGKILL */
	/* prefork workers and accept handlers (pool.c) */
	enum { W_NONE, W_STARTING, W_IDLE, W_BUSY } wstate;
	bool speaks;		/* it has used the status protocol */
	bool served;		/* it took at least one connection */
	unsigned uses;		/* connections taken */
	int64_t idle_since;
	uint64_t source;	/* accept: hash of the client address, for per_source */
	/* Started without waiting for its exec (launch_opts.spawn_failed):
	 * its outcome, learnt at its exit, and how to report a failed start
	 * (launch.c). */
	struct spawn_pending *spawning;
	void (*spawn_failed)(struct service *s, const char *why);
};

struct mode_ops;

struct service {
	struct svc_conf *conf;
	const struct mode_ops *mode;	/* what its mode does (mode.h) */
	struct conf *owner;	/* the configuration conf points into */
	struct service *next;	/* all services, in configuration order */
	enum svc_state state;
	bool want;		/* administrative target: up or down */
	bool removed;		/* gone from the configuration: free when stopped */
	bool restart_queued;	/* start again once stopped (restart, replace) */
	bool was_up;		/* started since droverd began (for "for good") */
	unsigned generation;
	unsigned restarts;	/* restarts done, shown in status */
	unsigned failures;	/* failed starts in a row: the backoff exponent */
	int64_t since;		/* monotonic ms when the state began */
	int64_t next_attempt;	/* backoff: when */
	int last_status;	/* wait status of the last exit, -1 none */
	char *status_text;	/* STATUS= from the service */
	char *reason;		/* why it failed / waits / stopped; NULL: none */
	char *stop_cause;	/* why it was asked to stop, shown once stopped */
	struct proc *procs;
	int nprocs;
	struct timer t_restart;	/* backoff */
	struct timer t_ready;	/* ready_timeout */
	struct timer t_watchdog;
	struct timer t_sched;	/* timer mode: next run */
	struct svc_log *log;	/* ring and file for its output; NULL until needed */
	struct listener *lis;	/* conf->nlisten entries, or NULL */
	int nlis;
	struct listener *retired;	/* removed by a reload, still used by older */
	int nretired;			/* generations: closed when they are gone */
	struct pool *pool;	/* prefork and accept: workers, counters, limits */
	struct cgroup *cg;	/* its cgroup (SPEC 4a), NULL without */
	bool fail_pending;	/* a stop we began because it failed: back off after */
	bool started_by_demand;	/* start = demand: a connection is pending */
	bool listen_failed;	/* failed binding a listener: a reload retries it */
	bool held;		/* handover: the previous droverd still runs it */
	bool handover_reported;	/* handover: its stop was told to the new droverd */
	unsigned pull_stamp, push_stamp;	/* deps.c */
	struct service **dependents;	/* services that require or are after this one */
	int ndependents;
	bool dirty;			/* waiting to be evaluated */
	struct service *dirty_next;
	int64_t next_every;	/* timer: monotonic ms of the next `every` run, -1 none */
	time_t next_at;		/* timer: wall clock of the next `at` run, 0 none */
	int64_t last_every;	/* timer: when the last `every` run was due, -1 none */
	/* Health probes (probe.c runs one, health.c decides). */
	struct probe *probe;	/* the probe running or last run; NULL none */
	enum svc_health health;
	unsigned health_failures;	/* failed probes in a row that count */
	char *health_text;	/* the last failure, shown in status; NULL none */
	int64_t health_since;	/* when probing began (health_start_period) */
	struct timer t_health;	/* the next probe */
};

#endif
