/* test_policy_health.c - what health probes mean (SPEC 3a, health.c) on
 * fake mechanisms: the cadence, failures in a row and health_retries,
 * health_start_period, a daemon restarted with the backoff, a prefork pool
 * rolled, ready = health gating what requires it, and ready_timeout.
 *
 * fake_mech.c's probe_start() only records the probe; the test says how
 * it ended (fake_probe_done), as probe.c would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "fake_mech.h"

/* The state, and no change outside the table on the way. */
static void check_state(const char *name, enum svc_state st)
{
	fake_assert_state(name, st);
	fake_assert_no_bad_transition();
}

static const char tcp_daemon[] = "[service d]\ncommand = /bin/d\nhealth = tcp:127.0.0.1:9\n"
				 "health_interval = 1s\nhealth_timeout = 500ms\nhealth_retries = 3\n"
				 "restart_delay = 2s\n";

/* The first probe at once, then one per health_interval; a pass is healthy. */
static void test_cadence(void **state)
{
	(void)state;
	fake_boot(tcp_daemon);
	fake_advance(0);
	assert_int_equal(fake_count(FK_PROBE, "d"), 1);
	assert_int_equal(fake_svc("d")->health, H_STARTING);
	fake_probe_done("d", true, "");
	assert_int_equal(fake_svc("d")->health, H_HEALTHY);
	assert_true(fake_log_has("d: healthy"));
	fake_advance(999);
	assert_int_equal(fake_count(FK_PROBE, "d"), 1);
	fake_advance(1);
	assert_int_equal(fake_count(FK_PROBE, "d"), 2);
	/* Still running at the next interval: that probe is skipped. */
	fake_advance(1000);
	assert_int_equal(fake_count(FK_PROBE, "d"), 2);
	fake_probe_done("d", true, "");
	fake_advance(1000);
	assert_int_equal(fake_count(FK_PROBE, "d"), 3);
}

/* health_retries failures in a row: stopped, then started again with the
 * backoff, counted in restarts; a pass in between starts the count over. */
static void test_unhealthy_daemon_restarts(void **state)
{
	struct proc *p;

	(void)state;
	fake_boot(tcp_daemon);
	p = fake_proc("d");
	fake_advance(0);
	fake_probe_done("d", false, "x: cannot connect: Connection refused");
	fake_advance(1000);
	fake_probe_done("d", false, "x: cannot connect: Connection refused");
	fake_advance(1000);
	fake_probe_done("d", true, "");	/* the count starts over */
	for (int i = 0; i < 2; i++) {
		fake_advance(1000);
		fake_probe_done("d", false, "x: no status line within 500ms");
	}
	check_state("d", ST_READY);
	assert_false(fake_stop_asked(p->pid));
	assert_string_equal(fake_svc("d")->health_text, "x: no status line within 500ms");
	fake_advance(1000);
	fake_probe_done("d", false, "x: no status line within 500ms");
	assert_true(fake_stop_asked(p->pid));
	check_state("d", ST_STOPPING);
	assert_int_equal(fake_svc("d")->health, H_UNHEALTHY);
	assert_true(fake_log_has("unhealthy (3 probes failed in a row, the last: x: no status line within "
				 "500ms): restarting it"));
	/* No probe while it stops. */
	fake_advance(5000);
	assert_int_equal(fake_count(FK_PROBE, "d"), 6);
	fake_exit(p, FAKE_KILLED(SIGTERM));
	check_state("d", ST_BACKOFF);
	assert_string_equal(svc_reason(fake_svc("d")),
			    "unhealthy: x: no status line within 500ms; restarting in 2s");
	fake_advance(2000);
	assert_int_equal(fake_count(FK_LAUNCH, "d"), 2);
	assert_int_equal(fake_svc("d")->restarts, 1);
	/* The new process is probed again, from `starting`. */
	fake_advance(0);
	assert_int_equal(fake_count(FK_PROBE, "d"), 7);
	assert_int_equal(fake_svc("d")->health, H_STARTING);
}

/* Failures within health_start_period of the start do not count. */
static void test_start_period(void **state)
{
	struct proc *p;

	(void)state;
	fake_boot("[service d]\ncommand = /bin/d\nhealth = tcp:127.0.0.1:9\nhealth_interval = 1s\n"
		  "health_timeout = 500ms\nhealth_retries = 2\nhealth_start_period = 5s\n");
	p = fake_proc("d");
	fake_advance(0);
	for (int i = 0; i < 5; i++) {
		fake_probe_done("d", false, "x: refused");
		fake_advance(1000);
	}
	assert_false(fake_stop_asked(p->pid));
	assert_int_equal(fake_svc("d")->health_failures, 0);
	fake_probe_done("d", false, "x: refused");	/* at 5 s: counts */
	assert_false(fake_stop_asked(p->pid));
	fake_advance(1000);
	fake_probe_done("d", false, "x: refused");
	assert_true(fake_stop_asked(p->pid));
}

/* ready = health: what requires it waits for the first passing probe;
 * failures before that restart nothing. */
static void test_ready_health_gates(void **state)
{
	(void)state;
	fake_boot("[service db]\ncommand = /bin/db\nhealth = tcp:127.0.0.1:9\nready = health\n"
		  "health_interval = 1s\nhealth_timeout = 500ms\nhealth_retries = 1\nready_timeout = 1m\n"
		  "[service app]\ncommand = /bin/app\nrequires = db\n");
	fake_advance(0);
	check_state("db", ST_STARTING);
	assert_string_equal(svc_reason(fake_svc("db")), "waiting for a passing probe");
	assert_int_equal(fake_count(FK_LAUNCH, "app"), 0);
	for (int i = 0; i < 3; i++) {
		fake_probe_done("db", false, "x: refused");
		fake_advance(1000);
	}
	assert_false(fake_stop_asked(fake_proc("db")->pid));
	assert_int_equal(fake_count(FK_LAUNCH, "app"), 0);
	fake_probe_done("db", true, "");
	check_state("db", ST_READY);
	assert_true(fake_log_has("db: ready (its probe passed)"));
	assert_int_equal(fake_count(FK_LAUNCH, "app"), 1);
}

/* ready = health and a probe that never passes: ready_timeout fails the start. */
static void test_ready_health_timeout(void **state)
{
	struct proc *p;

	(void)state;
	fake_boot("[service db]\ncommand = /bin/db\nhealth = tcp:127.0.0.1:9\nready = health\n"
		  "health_interval = 1s\nhealth_timeout = 500ms\nready_timeout = 3s\nrestart_delay = 1s\n");
	p = fake_proc("db");
	for (int i = 0; i < 3; i++) {
		fake_advance(i ? 1000 : 0);
		if (fake_probe_running("db"))
			fake_probe_done("db", false, "x: refused");
	}
	fake_advance(1000);
	assert_true(fake_stop_asked(p->pid));
	fake_exit(p, FAKE_KILLED(SIGTERM));
	check_state("db", ST_BACKOFF);
	assert_string_equal(svc_reason(fake_svc("db")), "not ready within 3s; restarting in 1s");
}

/* A prefork pool that is unhealthy rolls to a new generation. */
static void test_prefork_rolls(void **state)
{
	struct service *s;
	unsigned gen;

	(void)state;
	fake_boot("[service web]\nmode = prefork\ncommand = /bin/w\nlisten = tcp:127.0.0.1:8080\nprocs = 2\n"
		  "health = http://127.0.0.1:8080/\nhealth_interval = 1s\nhealth_timeout = 500ms\n"
		  "health_retries = 2\n");
	s = fake_svc("web");
	gen = s->generation;
	fake_advance(0);
	assert_int_equal(fake_count(FK_LAUNCH, "web"), 2);
	fake_probe_done("web", false, "x: status 500 Internal Server Error");
	fake_advance(1000);
	fake_probe_done("web", false, "x: status 500 Internal Server Error");
	assert_int_equal(s->generation, gen + 1);
	assert_int_equal(s->restarts, 1);
	assert_true(fake_log_has("web: unhealthy (2 probes failed in a row, the last: x: status 500 Internal "
				 "Server Error): rolling to a new generation"));
	/* The new generation's workers start beside the old ones. */
	assert_int_equal(fake_count(FK_LAUNCH, "web"), 4);
	/* Probing goes on. */
	fake_advance(1000);
	assert_true(fake_probe_running("web"));
}

/* A prefork pool with ready = health: ready_timeout fails its start too;
 * its workers stop, it backs off, and starts again. */
static void test_prefork_ready_timeout(void **state)
{
	struct proc *w[2] = { NULL, NULL };
	int n = 0;

	(void)state;
	fake_boot("[service web]\nmode = prefork\ncommand = /bin/w\nlisten = tcp:127.0.0.1:8080\nprocs = 2\n"
		  "health = http://127.0.0.1:8080/\nhealth_interval = 1s\nhealth_timeout = 500ms\n"
		  "ready = health\nready_timeout = 3s\nrestart_delay = 1s\n");
	check_state("web", ST_STARTING);
	for (struct proc *p = fake_svc("web")->procs; p && n < 2; p = p->next)
		w[n++] = p;
	assert_int_equal(n, 2);
	for (int i = 0; i < 3; i++) {
		fake_advance(i ? 1000 : 0);
		if (fake_probe_running("web"))
			fake_probe_done("web", false, "x: status 503 Service Unavailable");
	}
	assert_false(fake_stop_asked(w[0]->pid));
	fake_advance(1000);
	assert_true(fake_stop_asked(w[0]->pid));
	assert_true(fake_stop_asked(w[1]->pid));
	check_state("web", ST_STOPPING);
	fake_exit(w[0], FAKE_KILLED(SIGTERM));
	fake_exit(w[1], FAKE_KILLED(SIGTERM));
	check_state("web", ST_BACKOFF);
	assert_string_equal(svc_reason(fake_svc("web")), "not ready within 3s; restarting in 1s");
	fake_advance(1000);
	assert_int_equal(fake_count(FK_LAUNCH, "web"), 4);
	check_state("web", ST_STARTING);
	fake_advance(0);
	assert_true(fake_probe_running("web"));
	fake_probe_done("web", true, "");
	check_state("web", ST_READY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cadence, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_unhealthy_daemon_restarts, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_start_period, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_ready_health_gates, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_ready_health_timeout, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_prefork_rolls, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_prefork_ready_timeout, fake_test_setup, fake_test_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
