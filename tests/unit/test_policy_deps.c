/* test_policy_deps.c - `requires` and `after` at run time (deps.h) on fake
 * mechanisms (fake_mech.h): start order, waiting for readiness, reverse
 * stop on a request and at shutdown, a failed requirement. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <string.h>

#include "fake_mech.h"

/* Index of the stop request (any kind) of name's process pid, -1 none. */
static int stop_index(pid_t pid)
{
	for (int i = 0; i < fake_nevents(); i++) {
		const struct fake_event *e = fake_event_at(i);

		if (e->pid == pid && (e->kind == FK_STOP || e->kind == FK_STOP_SIGNALLED || e->kind == FK_KILL))
			return i;
	}
	return -1;
}

/* ---- start ---- */

/* a is defined first; b is what it requires: b starts first, and a only
 * once b is ready. */
static void test_requires_waits_for_ready(void **state)
{
	struct proc *b;

	(void)state;
	fake_boot("[service a]\ncommand = /bin/a\nrequires = b\n"
		  "[service b]\ncommand = /bin/b\nready = notify\n");
	assert_int_equal(fake_count(FK_LAUNCH, "b"), 1);
	assert_int_equal(fake_count(FK_LAUNCH, "a"), 0);
	fake_assert_state("a", ST_STARTING);
	fake_assert_reason("a", "waiting for b (starting)");
	fake_advance(5000);
	assert_int_equal(fake_count(FK_LAUNCH, "a"), 0);
	b = fake_proc("b");
	fake_notify(b, "READY", "1");
	fake_assert_state("b", ST_READY);
	assert_int_equal(fake_count(FK_LAUNCH, "a"), 1);
	assert_true(fake_find(FK_LAUNCH, "b", 0) < fake_find(FK_LAUNCH, "a", 0));
	fake_assert_state("a", ST_READY);
	fake_assert_no_bad_transition();
}

/* A chain, every link ready at once: one evaluation starts it in order. */
static void test_requires_chain_order(void **state)
{
	(void)state;
	fake_boot("[service top]\ncommand = /bin/x\nrequires = mid\n"
		  "[service mid]\ncommand = /bin/x\nrequires = base\n"
		  "[service base]\ncommand = /bin/x\n");
	assert_int_equal(fake_nevents(), 3);
	assert_string_equal(fake_event_at(0)->name, "base");
	assert_string_equal(fake_event_at(1)->name, "mid");
	assert_string_equal(fake_event_at(2)->name, "top");
	fake_assert_no_bad_transition();
}

/* A oneshot requirement is up once done, not while it runs. */
static void test_requires_oneshot_done(void **state)
{
	(void)state;
	fake_boot("[service app]\ncommand = /bin/app\nrequires = prepare\n"
		  "[service prepare]\nmode = oneshot\ncommand = /bin/prepare\n");
	assert_int_equal(fake_count(FK_LAUNCH, "app"), 0);
	fake_assert_reason("app", "waiting for prepare (starting)");
	fake_exit(fake_proc("prepare"), FAKE_EXITED(0));
	fake_assert_state("prepare", ST_DONE);
	assert_int_equal(fake_count(FK_LAUNCH, "app"), 1);
	fake_assert_no_bad_transition();
}

/* `after` orders only: a waits while b starts, and starts when b failed. */
static void test_after_orders_only(void **state)
{
	(void)state;
	fake_boot("[service a]\ncommand = /bin/a\nafter = b\nafter = c\n"
		  "[service b]\ncommand = /bin/b\nready = notify\nrestart = no\n"
		  "[service c]\ncommand = /bin/c\nready = notify\n");
	assert_int_equal(fake_count(FK_LAUNCH, "a"), 0);
	fake_assert_reason("a", "waiting for b to start");
	fake_notify(fake_proc("c"), "READY", "1");
	assert_int_equal(fake_count(FK_LAUNCH, "a"), 0);
	fake_exit(fake_proc("b"), FAKE_EXITED(1));
	fake_assert_state("b", ST_FAILED);
	assert_int_equal(fake_count(FK_LAUNCH, "a"), 1);
	fake_assert_state("a", ST_READY);
	fake_assert_no_bad_transition();
}

/* `drover start a` (both manual) pulls b in, and b starts first. */
static void test_start_pulls_requirements(void **state)
{
	char err[100];

	(void)state;
	fake_boot("[service a]\ncommand = /bin/a\nstart = manual\nrequires = b\n"
		  "[service b]\ncommand = /bin/b\nstart = manual\n"
		  "[service c]\ncommand = /bin/c\nstart = manual\n");
	assert_int_equal(fake_nevents(), 0);
	assert_int_equal(svc_start(fake_svc("a"), err, sizeof(err)), 0);
	fake_evaluate();
	assert_int_equal(fake_find(FK_LAUNCH, "b", 0), 0);
	assert_int_equal(fake_find(FK_LAUNCH, "a", 0), 1);
	assert_int_equal(fake_count(FK_LAUNCH, "c"), 0);
	fake_assert_no_bad_transition();
}

/* ---- stop ---- */

/* Stopping b stops a (which requires it) first; b is asked to stop only
 * once a has no process left. */
static void test_stop_in_reverse(void **state)
{
	struct proc *a, *b;
	char err[100];

	(void)state;
	fake_boot("[service a]\ncommand = /bin/a\nrequires = b\n[service b]\ncommand = /bin/b\n");
	a = fake_proc("a");
	b = fake_proc("b");
	assert_int_equal(svc_stop(fake_svc("b"), err, sizeof(err)), 0);
	fake_evaluate();
	assert_true(fake_signalled(a->pid, SIGTERM));
	assert_false(fake_stop_asked(b->pid));
	fake_assert_state("a", ST_STOPPING);
	fake_assert_reason("b", "waiting for a to stop");
	fake_advance(30000);
	assert_false(fake_stop_asked(b->pid));
	fake_exit(a, FAKE_KILLED(SIGTERM));
	fake_assert_state("a", ST_STOPPED);
	fake_assert_reason("a", "stopped because b stopped");
	assert_true(fake_signalled(b->pid, SIGTERM));
	fake_assert_state("b", ST_STOPPING);
	fake_exit(b, FAKE_KILLED(SIGTERM));
	fake_assert_state("b", ST_STOPPED);
	fake_assert_reason("b", "stopped by request");
	/* Stopped: neither comes back. */
	fake_advance(60000);
	assert_int_equal(fake_count(FK_LAUNCH, "a"), 1);
	assert_int_equal(fake_count(FK_LAUNCH, "b"), 1);
	fake_assert_no_bad_transition();
}

/* Shutdown: a chain by `requires` and one by `after` go down from the top. */
static void test_shutdown_in_reverse(void **state)
{
	struct proc *top, *mid, *base, *late, *early;
	pid_t pid[3];

	(void)state;
	fake_boot("[service top]\ncommand = /bin/x\nrequires = mid\n"
		  "[service mid]\ncommand = /bin/x\nrequires = base\n"
		  "[service base]\ncommand = /bin/x\n"
		  "[service late]\ncommand = /bin/x\nafter = early\n"
		  "[service early]\ncommand = /bin/x\n");
	top = fake_proc("top");
	mid = fake_proc("mid");
	base = fake_proc("base");
	late = fake_proc("late");
	early = fake_proc("early");
	pid[0] = top->pid;	/* the records go at their exits */
	pid[1] = mid->pid;
	pid[2] = base->pid;
	svc_shutdown(false);
	fake_evaluate();
	assert_true(fake_stop_asked(top->pid));
	assert_true(fake_stop_asked(late->pid));
	assert_false(fake_stop_asked(mid->pid));
	assert_false(fake_stop_asked(base->pid));
	assert_false(fake_stop_asked(early->pid));
	fake_exit(top, FAKE_KILLED(SIGTERM));
	assert_true(fake_stop_asked(mid->pid));
	assert_false(fake_stop_asked(base->pid));
	fake_exit(late, FAKE_KILLED(SIGTERM));
	assert_true(fake_stop_asked(early->pid));
	fake_exit(mid, FAKE_KILLED(SIGTERM));
	assert_true(fake_stop_asked(base->pid));
	assert_true(stop_index(pid[0]) < stop_index(pid[1]));
	assert_true(stop_index(pid[1]) < stop_index(pid[2]));
	assert_false(svc_all_stopped());
	fake_exit(base, FAKE_KILLED(SIGTERM));
	fake_exit(early, FAKE_KILLED(SIGTERM));
	assert_true(svc_all_stopped());
	for (struct service *s = services; s; s = s->next)
		assert_int_equal(s->state, ST_STOPPED);
	fake_assert_no_bad_transition();
}

/* Fast shutdown: everything is killed at once, whatever the order. */
static void test_shutdown_fast(void **state)
{
	(void)state;
	fake_boot("[service a]\ncommand = /bin/a\nrequires = b\n[service b]\ncommand = /bin/b\n");
	svc_shutdown(true);
	assert_int_equal(fake_count(FK_KILL, "a"), 1);
	assert_int_equal(fake_count(FK_KILL, "b"), 1);
	fake_assert_no_bad_transition();
}

/* A requirement that fails for good takes down what requires it; one that
 * backs off does not. */
static void test_failed_requirement(void **state)
{
	struct proc *a, *c;

	(void)state;
	fake_boot("[service a]\ncommand = /bin/a\nrequires = b\n"
		  "[service b]\ncommand = /bin/b\nrestart = no\n"
		  "[service c]\ncommand = /bin/c\nrequires = d\n"
		  "[service d]\ncommand = /bin/d\n");
	a = fake_proc("a");
	c = fake_proc("c");
	fake_exit(fake_proc("d"), FAKE_EXITED(1));
	fake_assert_state("d", ST_BACKOFF);
	assert_false(fake_stop_asked(c->pid));
	fake_assert_state("c", ST_READY);
	fake_exit(fake_proc("b"), FAKE_EXITED(1));
	fake_assert_state("b", ST_FAILED);
	assert_true(fake_stop_asked(a->pid));
	assert_false(fake_svc("a")->want);
	fake_assert_state("a", ST_STOPPING);
	fake_exit(a, FAKE_KILLED(SIGTERM));
	fake_assert_state("a", ST_STOPPED);
	fake_assert_reason("a", "stopped because b stopped");
	fake_advance(60000);
	assert_int_equal(fake_count(FK_LAUNCH, "a"), 1);
	fake_assert_no_bad_transition();
}

/* A requirement that fails before its dependent started: the dependent
 * never starts, and says why. */
static void test_requirement_fails_first(void **state)
{
	(void)state;
	fake_boot("[service a]\ncommand = /bin/a\nrequires = b\n"
		  "[service b]\ncommand = /bin/b\nready = notify\nrestart = no\n");
	fake_exit(fake_proc("b"), FAKE_EXITED(1));
	fake_assert_state("b", ST_FAILED);
	fake_assert_state("a", ST_STOPPED);
	fake_assert_reason("a", "stopped because b stopped");
	assert_int_equal(fake_count(FK_LAUNCH, "a"), 0);
	fake_assert_no_bad_transition();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_requires_waits_for_ready, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_requires_chain_order, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_requires_oneshot_done, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_after_orders_only, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_start_pulls_requirements, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_stop_in_reverse, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_in_reverse, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_fast, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_failed_requirement, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_requirement_fails_first, fake_test_setup, fake_test_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
