/* service.h - what droverd knows about each service and each process.
 *
 * Plain structures: a service refers to its configuration, its processes,
 * its timers and its output; nothing else holds runtime state. The state
 * machine (service.c) decides from (state, wanted, dependencies) what to do
 * next; everything else reports events to it. */
#ifndef DROVER_SERVICE_H
#define DROVER_SERVICE_H

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

struct service {
	struct svc_conf *conf;
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
};

/* All services, in configuration order. */
extern struct service *services;

unsigned svc_count(void);	/* how many in the list (O(1)) */
struct service *svc_find(const char *name);
struct service *svc_new(struct svc_conf *conf, struct conf *owner);
void svc_free(struct service *s);
const char *svc_state_name(enum svc_state st);

/* Administrative requests. Each returns 0, or -1 with a message in err. */
int svc_start(struct service *s, char *err, size_t len);
int svc_stop(struct service *s, char *err, size_t len);
int svc_restart(struct service *s, char *err, size_t len);
void svc_signal_all(struct service *s, int sig);

/* Events from the rest of droverd. */
void svc_proc_exited(struct proc *p, int status);
void svc_notify(struct proc *p, const char *key, const char *value);
void svc_apply_conf(struct service *s, struct svc_conf *conf, struct conf *owner, bool replace);

/* Ask for an evaluation: of every service (start-up, reload, requests
 * that change what is wanted), or of one service that an event concerned;
 * a service whose state changes has its dependency neighbours evaluated
 * too. The loop evaluates after every batch of events. */
void svc_schedule(void);
void svc_touch(struct service *s);
void svc_evaluate_all(void);
/* The set of services or their dependencies changed: rebuild the index
 * (names, reverse dependency edges) before its next use. */
void svc_index_stale(void);
void svc_index(void);
/* Lookup while the index is being built (deps.c). */
struct service *svc_find_indexed(const char *name);

/* Shutdown: every service down in reverse dependency order. */
void svc_shutdown(bool fast);
bool svc_all_stopped(void);
/* Has it any process: a record of droverd's, or anything in its cgroup? */
bool svc_has_procs(const struct service *s);
/* Make or find its cgroup where cgroups are in use; -1 with why in err. */
int svc_open_cgroup(struct service *s, char *err, size_t len);
/* True when no `auto` service is still starting (READY=1 to systemd),
 * leaving out services held by a handover and what waits on them. */
bool svc_boot_settled(void);

/* The text of a wait status: "exited with status 1", "killed by signal 9 (KILL)". */
void svc_describe_status(int status, char *out, size_t len);
/* What droverd exits with when a critical service ends: its status, or
 * 128 + signal. */
int svc_exit_code(int status);
/* The current main process (daemon, oneshot, timer run), or NULL. */
struct proc *svc_main_proc(struct service *s);
/* A start failed or a process ended early: back off or stop for good.
 * clean: it exited 0; uptime: how long it ran (ms). */
void svc_failed(struct service *s, const char *why, bool clean, int64_t uptime);
/* Not restarting: state st (stopped, failed, done) for good; what requires
 * it stops too; a critical service takes droverd down. */
void svc_end(struct service *s, enum svc_state st, const char *why);
/* A listener could not be opened (err says why, errno the cause): a
 * resource that ran out (scarce.h) is a failed start, retried with the
 * backoff; anything else (address in use, bad path) fails the service
 * until a reload or a start. */
void svc_listen_failed(struct service *s, const char *err);
extern unsigned long svc_state_changes;	/* bumped by every svc_set_state() */
void svc_set_state(struct service *s, enum svc_state st);
void svc_set_reason(struct service *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The reason shown in status ("" for none); clear it; the stop cause. A
 * reason is at most SVC_REASON_MAX - 1 bytes, longer ones are cut. The
 * strings live on the heap only while set: most services have none. */
#define SVC_REASON_MAX 200
const char *svc_reason(const struct service *s);
void svc_clear_reason(struct service *s);
void svc_set_stop_cause(struct service *s, const char *why);
/* Upgrade hand-over: re-arm the timers a service had (-1: not armed). */
void svc_restore_timers(struct service *s, int64_t restart_at, int64_t ready_at, int64_t watchdog_at,
			bool sched);
/* Stop every process of s (stop_signal, then SIGKILL after stop_timeout). */
void svc_begin_stop(struct service *s, const char *why);
/* Drop a reference to a configuration; frees it with the last one. */
void conf_release(struct conf *c);

#endif
