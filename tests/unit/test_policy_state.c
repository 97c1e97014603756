/* test_policy_state.c - the state machine of one service (SPEC section 3)
 * on fake mechanisms (fake_mech.h): the transition table, the restart
 * backoff and its reset, `restart`, readiness and ready_timeout, oneshot,
 * critical, timer runs and the watchdog.
 *
 * Times are those of the fake clock, which starts at 1000 ms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "fake_mech.h"

/* ---- the transition table ---- */

static void test_table(void **state)
{
	static const enum svc_state ok[][2] = {
		{ ST_STOPPED, ST_STARTING }, { ST_STARTING, ST_READY }, { ST_READY, ST_BACKOFF },
		{ ST_BACKOFF, ST_STOPPED }, { ST_WAITING, ST_RUNNING }, { ST_RUNNING, ST_WAITING },
		{ ST_STARTING, ST_DONE }, { ST_DONE, ST_STOPPED }, { ST_FAILED, ST_STOPPED },
		{ ST_READY, ST_STOPPING }, { ST_STOPPING, ST_BACKOFF }, { ST_DONE, ST_DONE },
	};
	static const enum svc_state refused[][2] = {
		{ ST_DONE, ST_RUNNING }, { ST_FAILED, ST_READY }, { ST_FAILED, ST_STARTING },
		{ ST_STOPPING, ST_READY }, { ST_STOPPING, ST_STARTING }, { ST_RUNNING, ST_READY },
		{ ST_STOPPED, ST_RUNNING }, { ST_DONE, ST_READY }, { ST_BACKOFF, ST_DONE },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (!svc_transition_allowed(ok[i][0], ok[i][1]))
			fail_msg("%s -> %s refused", svc_state_name(ok[i][0]), svc_state_name(ok[i][1]));
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (svc_transition_allowed(refused[i][0], refused[i][1]))
			fail_msg("%s -> %s allowed", svc_state_name(refused[i][0]), svc_state_name(refused[i][1]));
}

/* A change outside the table is made, but logged and counted. */
static void test_bad_transition_reported(void **state)
{
	struct service *s;

	(void)state;
	fake_boot("[service job]\nmode = oneshot\ncommand = /bin/true\n");
	fake_exit(fake_proc("job"), FAKE_EXITED(0));
	s = fake_svc("job");
	fake_assert_state("job", ST_DONE);
	fake_assert_no_bad_transition();
	svc_set_state(s, ST_RUNNING);
	assert_int_equal(svc_bad_transitions, 1);
	assert_true(fake_log_has("E: internal error: job: state done -> running is not in droverd's "
				 "transition table"));
	assert_int_equal(s->state, ST_RUNNING);
	svc_bad_transitions = 0;
}

/* ---- backoff ---- */

static const char flaky[] = "[service d]\ncommand = /bin/false\nrestart_delay = 1s\n"
			    "restart_delay_max = 5s\nmin_uptime = 10s\n";

/* d fails at once n times; each restart's delay is checked against want. */
static void fail_fast(const int64_t *want, int n, int first)
{
	for (int i = 0; i < n; i++) {
		int64_t died = fake_now;
		int launch = first + i + 1;

		fake_exit(fake_proc("d"), FAKE_EXITED(1));
		fake_assert_state("d", ST_BACKOFF);
		assert_int_equal(fake_svc("d")->next_attempt, died + want[i]);
		assert_int_equal(fake_count(FK_LAUNCH, "d"), launch);	/* not before its time */
		fake_advance(want[i] - 1);
		assert_int_equal(fake_count(FK_LAUNCH, "d"), launch);
		fake_advance(1);
		assert_int_equal(fake_count(FK_LAUNCH, "d"), launch + 1);
		assert_int_equal(fake_launch_time("d", launch), died + want[i]);
	}
}

static void test_backoff_doubles_to_cap(void **state)
{
	static const int64_t want[] = { 1000, 2000, 4000, 5000, 5000 };

	(void)state;
	fake_boot(flaky);
	assert_int_equal(fake_launch_time("d", 0), 1000);
	fake_assert_state("d", ST_READY);
	fail_fast(want, 5, 0);
	assert_true(fake_log_has("W: d: exited with status 1; restarting in 1s"));
	assert_true(fake_log_has("W: d: exited with status 1; restarting in 4s"));
	assert_int_equal(fake_svc("d")->restarts, 5);
	fake_assert_no_bad_transition();
}

static void test_backoff_reason(void **state)
{
	(void)state;
	fake_boot(flaky);
	fake_exit(fake_proc("d"), FAKE_KILLED(SIGSEGV));
	fake_assert_state("d", ST_BACKOFF);
	fake_assert_reason("d", "killed by signal 11 (SEGV); restarting in 1s");
	fake_assert_no_bad_transition();
}

/* A run of min_uptime resets the exponent; one just short of it does not. */
static void test_backoff_resets_after_min_uptime(void **state)
{
	static const int64_t first[] = { 1000, 2000, 4000 };
	static const int64_t again[] = { 1000, 2000 };

	(void)state;
	fake_boot(flaky);
	fail_fast(first, 3, 0);
	/* Up 9.999 s: still a failure in a row. */
	fake_advance(9999);
	fake_exit(fake_proc("d"), FAKE_EXITED(1));
	assert_int_equal(fake_svc("d")->next_attempt, fake_now + 5000);
	fake_advance(5000);
	assert_int_equal(fake_count(FK_LAUNCH, "d"), 5);
	/* Up 10 s: the next delay is restart_delay again. */
	fake_advance(10000);
	fail_fast(again, 2, 4);
	fake_assert_no_bad_transition();
}

/* ---- restart = ---- */

static void test_restart_no(void **state)
{
	(void)state;
	fake_boot("[service d]\ncommand = /bin/false\nrestart = no\n");
	fake_exit(fake_proc("d"), FAKE_EXITED(1));
	fake_assert_state("d", ST_FAILED);
	fake_assert_reason("d", "exited with status 1");
	assert_true(fake_log_has("W: d: exited with status 1; not restarting (restart = no)"));
	fake_advance(60000);
	assert_int_equal(fake_count(FK_LAUNCH, "d"), 1);
	assert_false(fake_svc("d")->want);
	fake_assert_no_bad_transition();
}

static void test_restart_on_failure(void **state)
{
	(void)state;
	fake_boot("[service clean]\ncommand = /bin/true\nrestart = on-failure\n"
		  "[service dirty]\ncommand = /bin/false\nrestart = on-failure\n"
		  "[service always]\ncommand = /bin/true\n");
	fake_exit(fake_proc("clean"), FAKE_EXITED(0));
	fake_exit(fake_proc("dirty"), FAKE_EXITED(2));
	fake_exit(fake_proc("always"), FAKE_EXITED(0));
	fake_assert_state("clean", ST_STOPPED);
	fake_assert_reason("clean", "exited with status 0");
	assert_true(fake_log_has("W: clean: exited with status 0; not restarting (restart = on-failure)"));
	fake_assert_state("dirty", ST_BACKOFF);
	fake_assert_state("always", ST_BACKOFF);
	fake_advance(100);	/* restart_delay's default */
	assert_int_equal(fake_count(FK_LAUNCH, "clean"), 1);
	assert_int_equal(fake_count(FK_LAUNCH, "dirty"), 2);
	assert_int_equal(fake_count(FK_LAUNCH, "always"), 2);
	fake_assert_no_bad_transition();
}

/* A start that fails (the exec, a resource) backs off like an exit. */
static void test_launch_failure_backs_off(void **state)
{
	(void)state;
	fake_fail_launches(1, 2, "cannot run /nonexistent: No such file or directory");
	fake_boot("[service d]\ncommand = /nonexistent\n");
	assert_int_equal(fake_count(FK_LAUNCH_FAILED, "d"), 1);
	fake_assert_state("d", ST_BACKOFF);
	fake_assert_reason("d", "cannot run /nonexistent: No such file or directory; restarting in 100ms");
	fake_advance(100);
	assert_int_equal(fake_count(FK_LAUNCH, "d"), 1);
	fake_assert_state("d", ST_READY);
	fake_assert_no_bad_transition();
}

/* ---- readiness ---- */

static void test_ready_notify_waits_for_ready(void **state)
{
	struct proc *p;

	(void)state;
	fake_boot("[service d]\ncommand = /bin/d\nready = notify\n");
	p = fake_proc("d");
	assert_non_null(p);
	fake_assert_state("d", ST_STARTING);
	fake_assert_reason("d", "waiting for READY=1");
	fake_advance(20000);
	fake_notify(p, "STATUS", "warming up");
	fake_notify(p, "READY", "0");
	fake_assert_state("d", ST_STARTING);
	assert_string_equal(fake_svc("d")->status_text, "warming up");
	fake_notify(p, "READY", "1");
	fake_assert_state("d", ST_READY);
	fake_assert_reason("d", "");
	assert_true(p->ready);
	fake_advance(60000);	/* ready_timeout no longer armed */
	assert_false(fake_stop_asked(p->pid));
	fake_assert_no_bad_transition();
}

static void test_ready_none_at_once(void **state)
{
	(void)state;
	fake_boot("[service d]\ncommand = /bin/d\n");
	assert_non_null(fake_proc("d"));
	fake_assert_state("d", ST_READY);
	fake_assert_no_bad_transition();
}

/* ready_timeout: stopped with its stop_signal, then the backoff. */
static void test_ready_timeout(void **state)
{
	struct proc *p;

	(void)state;
	fake_boot("[service d]\ncommand = /bin/d\nready = notify\nready_timeout = 2s\n"
		  "stop_signal = INT\nrestart_delay = 1s\n");
	p = fake_proc("d");
	fake_advance(1999);
	assert_false(fake_stop_asked(p->pid));
	fake_advance(1);
	assert_true(fake_signalled(p->pid, SIGINT));
	fake_assert_state("d", ST_STOPPING);
	fake_assert_reason("d", "not ready within 2s");
	assert_true(fake_log_has("W: d: not ready within 2s: stopping it"));
	/* READY=1 now comes too late. */
	fake_notify(p, "READY", "1");
	fake_assert_state("d", ST_STOPPING);
	fake_advance(5000);
	assert_int_equal(fake_count(FK_LAUNCH, "d"), 1);
	fake_exit(p, FAKE_KILLED(SIGINT));
	fake_assert_state("d", ST_BACKOFF);
	fake_assert_reason("d", "not ready within 2s; restarting in 1s");
	fake_advance(1000);
	assert_int_equal(fake_count(FK_LAUNCH, "d"), 2);
	fake_assert_state("d", ST_STARTING);
	fake_assert_no_bad_transition();
}

/* ---- oneshot ---- */

static void test_oneshot_done(void **state)
{
	(void)state;
	fake_boot("[service job]\nmode = oneshot\ncommand = /bin/true\n");
	fake_assert_state("job", ST_STARTING);
	fake_assert_reason("job", "running");
	fake_exit(fake_proc("job"), FAKE_EXITED(0));
	fake_assert_state("job", ST_DONE);
	fake_assert_reason("job", "finished");
	fake_advance(60000);
	assert_int_equal(fake_count(FK_LAUNCH, "job"), 1);
	fake_assert_state("job", ST_DONE);
	fake_assert_no_bad_transition();
}

static void test_oneshot_failure(void **state)
{
	(void)state;
	fake_boot("[service once]\nmode = oneshot\ncommand = /bin/false\n"
		  "[service retried]\nmode = oneshot\ncommand = /bin/false\nrestart = on-failure\n");
	fake_exit(fake_proc("once"), FAKE_EXITED(1));
	fake_exit(fake_proc("retried"), FAKE_EXITED(1));
	fake_assert_state("once", ST_FAILED);	/* restart = no is the oneshot default */
	fake_assert_state("retried", ST_BACKOFF);
	fake_advance(100);
	assert_int_equal(fake_count(FK_LAUNCH, "once"), 1);
	assert_int_equal(fake_count(FK_LAUNCH, "retried"), 2);
	fake_exit(fake_proc("retried"), FAKE_EXITED(0));
	fake_assert_state("retried", ST_DONE);
	fake_assert_no_bad_transition();
}

/* ---- critical ---- */

static void test_critical_ends_droverd(void **state)
{
	(void)state;
	fake_boot("[service main]\ncommand = /bin/main\ncritical = yes\nrestart = no\n"
		  "[service other]\ncommand = /bin/other\n");
	assert_int_equal(fake_critical_calls, 0);
	fake_exit(fake_proc("other"), FAKE_EXITED(7));
	assert_int_equal(fake_critical_calls, 0);
	fake_exit(fake_proc("main"), FAKE_EXITED(3));
	assert_int_equal(fake_critical_calls, 1);
	assert_int_equal(fake_critical_code, 3);
	assert_true(fake_log_has("main: critical service ended (exited with status 3): shutting down"));
	fake_assert_no_bad_transition();
}

static void test_critical_signal_and_oneshot(void **state)
{
	(void)state;
	fake_boot("[service killed]\ncommand = /bin/x\ncritical = yes\nrestart = on-failure\n"
		  "[service job]\nmode = oneshot\ncommand = /bin/true\ncritical = yes\n");
	fake_exit(fake_proc("job"), FAKE_EXITED(0));
	assert_int_equal(fake_critical_calls, 1);
	assert_int_equal(fake_critical_code, 0);
	/* restart = on-failure: a failure is restarted, not an end. */
	fake_exit(fake_proc("killed"), FAKE_KILLED(SIGKILL));
	assert_int_equal(fake_critical_calls, 1);
	fake_assert_state("killed", ST_BACKOFF);
	fake_assert_no_bad_transition();
}

/* ---- timer ---- */

static void test_timer_every(void **state)
{
	(void)state;
	fake_boot("[service t]\nmode = timer\ncommand = /bin/tick\nevery = 10s\n");
	fake_assert_state("t", ST_WAITING);
	assert_int_equal(fake_count(FK_LAUNCH, "t"), 0);
	fake_advance(9999);
	assert_int_equal(fake_count(FK_LAUNCH, "t"), 0);
	fake_advance(1);
	assert_int_equal(fake_launch_time("t", 0), 11000);
	fake_assert_state("t", ST_RUNNING);
	fake_advance(500);
	fake_exit(fake_proc("t"), FAKE_EXITED(0));
	fake_assert_state("t", ST_WAITING);
	fake_assert_reason("t", "last run exited with status 0");
	fake_advance(9500);
	assert_int_equal(fake_launch_time("t", 1), 21000);
	fake_exit(fake_proc("t"), FAKE_EXITED(4));
	fake_assert_state("t", ST_WAITING);	/* a failed run is not a failed service */
	assert_true(fake_log_has("W: t: run exited with status 4"));
	fake_advance(10000);
	assert_int_equal(fake_launch_time("t", 2), 31000);
	fake_assert_no_bad_transition();
}

/* A run the loop fires late does not shift the schedule: the next is
 * still a multiple of `every` from the first. */
static void test_timer_late_run_keeps_schedule(void **state)
{
	(void)state;
	fake_boot("[service t]\nmode = timer\ncommand = /bin/tick\nevery = 10s\n");
	fake_late(10700);	/* due at 11000, fired at 11700 */
	assert_int_equal(fake_launch_time("t", 0), 11700);
	fake_exit(fake_proc("t"), FAKE_EXITED(0));
	fake_advance(9299);
	assert_int_equal(fake_count(FK_LAUNCH, "t"), 1);
	fake_advance(1);
	assert_int_equal(fake_launch_time("t", 1), 21000);
	fake_assert_no_bad_transition();
}

static void test_timer_skips_overlapping_run(void **state)
{
	struct proc *p;

	(void)state;
	fake_boot("[service t]\nmode = timer\ncommand = /bin/slow\nevery = 10s\n");
	fake_advance(10000);
	p = fake_proc("t");
	assert_non_null(p);
	fake_advance(10000);	/* 21000: due, and the 11000 run still goes */
	assert_int_equal(fake_count(FK_LAUNCH, "t"), 1);
	{
		char want[100];

		snprintf(want, sizeof(want), "W: t: previous run (pid %d) still going: this run is skipped",
			 (int)p->pid);
		assert_true(fake_log_has(want));
	}
	fake_assert_state("t", ST_RUNNING);
	fake_advance(5000);
	fake_exit(p, FAKE_EXITED(0));
	fake_assert_state("t", ST_WAITING);
	fake_advance(4999);
	assert_int_equal(fake_count(FK_LAUNCH, "t"), 1);
	fake_advance(1);	/* 31000: on the schedule, not 10 s after the end */
	assert_int_equal(fake_launch_time("t", 1), 31000);
	fake_assert_no_bad_transition();
}

/* ---- watchdog ---- */

static void test_watchdog(void **state)
{
	struct proc *p;

	(void)state;
	fake_boot("[service d]\ncommand = /bin/d\nready = notify\nwatchdog = 2s\nrestart_delay = 1s\n");
	p = fake_proc("d");
	fake_advance(5000);	/* not ready yet: no watchdog */
	assert_false(fake_signalled(p->pid, SIGABRT));
	fake_notify(p, "READY", "1");
	fake_advance(1500);
	fake_notify(p, "WATCHDOG", "1");
	fake_advance(1999);
	assert_false(fake_signalled(p->pid, SIGABRT));
	fake_advance(1);
	assert_true(fake_signalled(p->pid, SIGABRT));
	assert_true(fake_stop_asked(p->pid));
	/* Once, to its process group: a second SIGABRT would run the
	 * program's handler twice. */
	assert_int_equal(fake_count(FK_SIGNAL, "d"), 0);
	assert_int_equal(fake_count(FK_STOP, "d"), 1);
	fake_assert_state("d", ST_STOPPING);
	fake_assert_reason("d", "watchdog: no sign of life within 2s");
	fake_exit(p, FAKE_KILLED(SIGABRT));
	fake_assert_state("d", ST_BACKOFF);
	fake_assert_reason("d", "watchdog: no sign of life within 2s; restarting in 1s");
	fake_advance(1000);
	assert_int_equal(fake_count(FK_LAUNCH, "d"), 2);
	fake_assert_no_bad_transition();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test_setup_teardown(test_bad_transition_reported, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_backoff_doubles_to_cap, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_backoff_reason, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_backoff_resets_after_min_uptime, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_restart_no, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_restart_on_failure, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_launch_failure_backs_off, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_ready_notify_waits_for_ready, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_ready_none_at_once, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_ready_timeout, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_oneshot_done, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_oneshot_failure, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_critical_ends_droverd, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_critical_signal_and_oneshot, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_timer_every, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_timer_late_run_keeps_schedule, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_timer_skips_overlapping_run, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_watchdog, fake_test_setup, fake_test_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
