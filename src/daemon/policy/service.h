/* service.h - the service policy: what droverd does with each service.
 *
 * The state machine decides from (state, wanted, dependencies) what to do
 * next; the mechanisms report events to it (records.h has the records it
 * works on). */
#ifndef DROVER_SERVICE_H
#define DROVER_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "records.h"

/* What the policy reports to the daemon: set once, by main.c. */
struct svc_events {
	/* A critical service ended: droverd stops, with this exit code. */
	void (*critical_ended)(int code);
	/* An evaluation finished: every marked service has settled. */
	void (*settled)(void);
};
void svc_set_events(const struct svc_events *ev);

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

/* Events from the mechanisms (wired by main.c). */
void svc_proc_exited(struct proc *p, int status);
void svc_procs_gone(struct service *s);
void svc_note(struct service *s, const char *text);
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
extern unsigned long svc_bad_transitions;	/* changes its table does not allow */
/* The one way a running service's state changes (service_state.c). */
void svc_set_state(struct service *s, enum svc_state st);
bool svc_transition_allowed(enum svc_state from, enum svc_state to);
/* Taking a service over (upgrade, handover): its state is set, not reached. */
void svc_reset_state(struct service *s, enum svc_state st);
/* Any process of s whose leader has not been reaped yet? */
bool svc_has_live_leader(const struct service *s);
/* The backoff's restart, at monotonic ms `at`. */
void svc_arm_restart(struct service *s, int64_t at);
/* The evaluation is over: tell the daemon (service_eval.c). */
void svc_settled(void);
/* The service a timer or watch belongs to. */
#define SVC_OF(t, field) ((struct service *)((char *)(t) - offsetof(struct service, field)))
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
/* Upgrade hand-over: s has its processes back (after svc_restore_timers
 * and their records); what runs while they run (probes) goes on. */
void svc_taken_over(struct service *s);
/* Stop every process of s (stop_signal, then SIGKILL after stop_timeout). */
void svc_begin_stop(struct service *s, const char *why);
/* Drop a reference to a configuration; frees it with the last one. */
void conf_release(struct conf *c);

#endif
