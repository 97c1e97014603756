/* fake_mech.h - fake mechanisms under droverd's service policy, for unit
 * tests of the policy (tests/unit/test_policy_*.c).
 *
 * The policy (service*.c, deps.c, pool.c, mode_*.c) is linked with these
 * link-time fakes instead of libdaemon.a: a clock the test moves
 * (fake_advance), timers kept in a list and fired in deadline order, each
 * at its own time, with an evaluation after each batch as droverd's loop
 * does; process starts that make records like proc.c's and are recorded
 * (what started, when, in what order); stop and signal requests recorded;
 * listeners that "open" without a socket; droverd's log captured.
 *
 * A test loads a configuration text (fake_boot), which makes the services
 * as droverd does at start-up (svc_new, `start = auto`/`demand` wanted),
 * then drives them: fake_advance, fake_exit, svc_notify, svc_stop... and
 * looks at the records and at the services. fake_teardown frees it all. */
#ifndef DROVER_FAKE_MECH_H
#define DROVER_FAKE_MECH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "service.h"

/* What the fakes were asked to do, in order. */
enum fake_kind {
	FK_LAUNCH,		/* launch_proc succeeded */
	FK_LAUNCH_FAILED,	/* launch_proc was told to fail */
	FK_SIGNAL,		/* proc_signal(p, sig) */
	FK_STOP,		/* proc_stop(p, sig, timeout): the first one for p */
	FK_STOP_SIGNALLED,	/* proc_stop_signalled(p, timeout) */
	FK_KILL,		/* proc_kill(p) */
	FK_PROBE,		/* probe_start(s) */
};

struct fake_event {
	enum fake_kind kind;
	char name[SVC_NAME_MAX + 1];	/* the service */
	pid_t pid;			/* 0 for a failed launch */
	int sig;
	int64_t at;			/* fake clock */
	unsigned gen;
	int slot;			/* launch: the prefork slot, -1 none */
};

extern int64_t fake_now;	/* what loop_now() returns */

/* Fresh fakes: clock at 1000 ms, no timer, no record, empty log. */
void fake_setup(void);
/* Frees every service and process record and the configuration. */
void fake_teardown(void);

/* Loads text as drover.conf and makes its services as droverd does at
 * start-up, then evaluates. Fails the test if the text is refused. */
struct conf *fake_boot(const char *text);
/* The service called name (fails the test if there is none). */
struct service *fake_svc(const char *name);

/* Moves the clock ms forward, firing the timers that fall due on the way,
 * each at its deadline, and evaluating after each batch. */
void fake_advance(int64_t ms);
/* The loop was busy: the clock jumps ms forward at once, and only then
 * does what fell due on the way fire, late, at the new time. */
void fake_late(int64_t ms);
/* Moves the clock to the next armed timer's deadline and fires what is
 * due then; false if no timer is armed. */
bool fake_step(void);
/* The idle hook: svc_evaluate_all(). */
void fake_evaluate(void);

/* The leader of p exited with wait status status: what reap.c and proc.c
 * do (the exit is told, the record freed, its service told the record is
 * gone), then an evaluation. */
void fake_exit(struct proc *p, int status);
/* Exit status helpers (wait statuses). */
#define FAKE_EXITED(code) (((code) & 0xff) << 8)
#define FAKE_KILLED(sig) ((sig) & 0x7f)
/* The newest process record of service name that has not exited, or NULL. */
struct proc *fake_proc(const char *name);
/* svc_notify(p, key, value), then an evaluation (as notify.c + the loop). */
void fake_notify(struct proc *p, const char *key, const char *value);

/* The next n launches (of any service) fail with errno err and text why. */
void fake_fail_launches(int n, int err, const char *why);
/* The next listen_open fails with errno err and text why. */
void fake_fail_listen(int err, const char *why);
/* A connection is pending on service name's listeners: the watch fires
 * (only if the policy watches them). Returns whether a watch was on. */
bool fake_connection(const char *name);
/* Is the policy watching any listener of name? */
bool fake_watching(const char *name);

/* The recorded events. */
int fake_nevents(void);
const struct fake_event *fake_event_at(int i);
/* Index of the n-th (0-based) event of kind for name, -1 if none. */
int fake_find(enum fake_kind kind, const char *name, int n);
/* How many events of kind for name. */
int fake_count(enum fake_kind kind, const char *name);
/* Launch times of name, in order: the n-th (0-based), or -1. */
int64_t fake_launch_time(const char *name, int n);
/* Was pid asked to stop (proc_stop, proc_stop_signalled or proc_kill)?
 * Was it sent sig (proc_signal or proc_stop with sig)? */
bool fake_stop_asked(pid_t pid);
bool fake_signalled(pid_t pid, int sig);

/* droverd's log: does any line contain needle? How many do? */
bool fake_log_has(const char *needle);
int fake_log_count(const char *needle);
/* The whole log, one line per message, each prefixed with its level. */
const char *fake_log(void);

/* The events the policy reported upward. */
extern int fake_critical_calls;	/* critical_ended() calls */
extern int fake_critical_code;	/* its last argument */

/* Health probes: probe_start() only records (FK_PROBE) and marks s's probe
 * running; the test ends it with fake_probe_done(), as probe.c would. */
void fake_probe_done(const char *name, bool ok, const char *why);
bool fake_probe_running(const char *name);

/* What every policy test shares: cmocka's setup and teardown (fake_setup,
 * fake_teardown), and assertions that say what differs. */
int fake_test_setup(void **state);
int fake_test_teardown(void **state);
void fake_assert_state(const char *name, enum svc_state st);
void fake_assert_reason(const char *name, const char *want);
/* No state change outside the transition table happened. */
void fake_assert_no_bad_transition(void);

#endif
