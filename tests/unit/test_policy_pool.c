/* test_policy_pool.c - prefork pools and start = demand (pool.c,
 * mode_pool.c, mode_demand.c) on fake mechanisms (fake_mech.h): the pool
 * starts at procs, grows by one per pending connection while no worker is
 * idle, retires idle workers above procs after idle_timeout and workers at
 * max_use, replaces a dead worker, and is throttled when workers die
 * before serving. A listener "connection" is the policy's own watch
 * callback, fired by fake_connection(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <string.h>

#include "fake_mech.h"

static const char web[] = "[service web]\nmode = prefork\ncommand = /bin/w\nlisten = tcp:127.0.0.1:8080\n"
			  "procs = 2\nmax_procs = 4\nidle_timeout = 5s\nrestart_delay = 1s\n";

/* The workers of web not asked to stop, oldest first, into w (at most
 * n); how many. */
static int workers(struct proc **w, int n)
{
	int k = 0;

	for (struct proc *p = fake_svc("web")->procs; p; p = p->next)	/* newest first */
		if (!p->exited && !p->stopping) {
			assert_true(k < n);
			w[k++] = p;
		}
	for (int i = 0; i < k / 2; i++) {
		struct proc *t = w[i];

		w[i] = w[k - 1 - i];
		w[k - 1 - i] = t;
	}
	return k;
}

static int count_workers(void)
{
	struct proc *w[16];

	return workers(w, 16);
}

static void busy(struct proc *p)
{
	fake_notify(p, "X_DROVER", "busy");
}

static void idle(struct proc *p)
{
	fake_notify(p, "X_DROVER", "idle");
}

static void test_starts_procs_workers(void **state)
{
	(void)state;
	fake_boot(web);
	assert_int_equal(fake_count(FK_LAUNCH, "web"), 2);
	assert_int_equal(fake_event_at(fake_find(FK_LAUNCH, "web", 0))->slot, 0);
	assert_int_equal(fake_event_at(fake_find(FK_LAUNCH, "web", 1))->slot, 1);
	fake_assert_state("web", ST_READY);
	/* Workers that never spoke the status protocol: a fixed pool. */
	assert_false(fake_watching("web"));
	assert_false(fake_connection("web"));
	fake_assert_no_bad_transition();
}

/* With ready = notify the pool is starting until a worker is ready. */
static void test_ready_notify(void **state)
{
	(void)state;
	fake_boot("[service web]\nmode = prefork\ncommand = /bin/w\nlisten = tcp:127.0.0.1:8080\n"
		  "procs = 2\nready = notify\n");
	fake_assert_state("web", ST_STARTING);
	fake_notify(fake_proc("web"), "READY", "1");
	fake_assert_state("web", ST_READY);
	fake_assert_no_bad_transition();
}

/* One more worker per pending connection, only while none is idle or
 * starting, never above max_procs. */
static void test_grows_one_per_connection(void **state)
{
	struct proc *w[8];

	(void)state;
	fake_boot(web);
	assert_int_equal(workers(w, 8), 2);
	fake_notify(w[0], "READY", "1");
	fake_notify(w[1], "READY", "1");
	assert_false(fake_watching("web"));	/* two idle */
	busy(w[0]);
	assert_false(fake_watching("web"));	/* one idle */
	busy(w[1]);
	assert_true(fake_watching("web"));	/* none idle: a connection grows it */
	assert_true(fake_connection("web"));
	assert_int_equal(fake_count(FK_LAUNCH, "web"), 3);
	assert_false(fake_watching("web"));	/* one starting: wait for it */
	assert_false(fake_connection("web"));
	w[2] = fake_proc("web");
	fake_notify(w[2], "READY", "1");
	assert_false(fake_watching("web"));
	busy(w[2]);
	assert_true(fake_connection("web"));
	assert_int_equal(fake_count(FK_LAUNCH, "web"), 4);
	w[3] = fake_proc("web");
	busy(w[3]);
	assert_false(fake_watching("web"));	/* max_procs */
	assert_int_equal(fake_count(FK_LAUNCH, "web"), 4);
	fake_assert_no_bad_transition();
}

/* web grown to max_procs, every worker busy; w gets them, oldest first. */
static void grow_to_four(struct proc **w)
{
	assert_int_equal(workers(w, 8), 2);
	busy(w[0]);
	busy(w[1]);
	assert_true(fake_connection("web"));
	w[2] = fake_proc("web");
	busy(w[2]);
	assert_true(fake_connection("web"));
	w[3] = fake_proc("web");
	assert_int_equal(count_workers(), 4);
}

/* Idle workers above procs retire after idle_timeout, the longest idle
 * first, never below procs; a retired worker's exit is no failure, even
 * one that never served and lived less than min_uptime. */
static void test_retires_idle_above_procs(void **state)
{
	struct proc *w[8];
	pid_t pid[4];
	int64_t t0;

	(void)state;
	fake_boot(web);
	grow_to_four(w);
	for (int i = 0; i < 4; i++)
		pid[i] = w[i]->pid;
	t0 = fake_now;
	fake_notify(w[3], "READY", "1");	/* idle, never served */
	fake_advance(1000);
	idle(w[2]);
	fake_advance(1000);
	idle(w[0]);
	fake_advance(1000);
	idle(w[1]);
	fake_advance(1999);	/* t0 + 4999 */
	for (int i = 0; i < 4; i++)
		assert_false(fake_stop_asked(pid[i]));
	fake_advance(1);	/* w[3] idle for 5 s */
	assert_int_equal(fake_now, t0 + 5000);
	assert_true(fake_signalled(pid[3], SIGTERM));
	assert_false(fake_stop_asked(pid[2]));
	assert_true(fake_log_has("I: web: retiring worker pid"));
	fake_exit(w[3], FAKE_KILLED(SIGTERM));	/* up 5 s, served nothing */
	assert_false(fake_log_has("throttling"));
	assert_false(fake_log_has("W: web: worker pid"));
	fake_advance(1000);	/* w[2] idle for 5 s: down to procs */
	assert_true(fake_stop_asked(pid[2]));
	fake_advance(60000);
	assert_false(fake_stop_asked(pid[0]));
	assert_false(fake_stop_asked(pid[1]));
	assert_int_equal(count_workers(), 2);
	fake_exit(w[2], FAKE_KILLED(SIGTERM));
	assert_int_equal(fake_count(FK_LAUNCH, "web"), 4);
	assert_int_equal(fake_svc("web")->restarts, 0);
	fake_assert_state("web", ST_READY);
	fake_assert_no_bad_transition();
}

/* All idle at once: only those above procs retire. */
static void test_retires_down_to_procs_only(void **state)
{
	struct proc *w[8];
	int stopped = 0;

	(void)state;
	fake_boot(web);
	grow_to_four(w);
	busy(w[3]);
	for (int i = 0; i < 4; i++)
		idle(w[i]);
	fake_advance(5000);
	for (int i = 0; i < 4; i++)
		stopped += fake_stop_asked(w[i]->pid);
	assert_int_equal(stopped, 2);
	assert_int_equal(count_workers(), 2);
	assert_int_equal(fake_count(FK_LAUNCH, "web"), 4);
	fake_assert_no_bad_transition();
}

/* A worker is retired after max_use connections, and replaced. */
static void test_max_use(void **state)
{
	struct proc *w;
	pid_t pid;

	(void)state;
	fake_boot("[service web]\nmode = prefork\ncommand = /bin/w\nlisten = tcp:127.0.0.1:8080\n"
		  "procs = 1\nmax_use = 2\n");
	w = fake_proc("web");
	pid = w->pid;
	busy(w);
	idle(w);
	assert_false(fake_stop_asked(pid));
	busy(w);
	idle(w);
	assert_true(fake_stop_asked(pid));
	assert_true(fake_log_has("(max_use reached)"));
	assert_int_equal(fake_count(FK_LAUNCH, "web"), 2);
	fake_exit(w, FAKE_EXITED(0));
	assert_int_equal(fake_count(FK_LAUNCH, "web"), 2);
	fake_assert_no_bad_transition();
}

/* A worker that served and dies is replaced at once. */
static void test_dead_worker_replaced(void **state)
{
	struct proc *w[8];

	(void)state;
	fake_boot(web);
	assert_int_equal(workers(w, 8), 2);
	busy(w[0]);
	fake_exit(w[0], FAKE_KILLED(SIGSEGV));
	assert_int_equal(fake_count(FK_LAUNCH, "web"), 3);
	assert_int_equal(fake_launch_time("web", 2), fake_now);
	assert_true(fake_log_has("W: web: worker pid"));
	assert_false(fake_log_has("throttling"));
	fake_assert_state("web", ST_READY);
	/* One that lived min_uptime without serving counts as served too. */
	fake_advance(10000);
	fake_exit(w[1], FAKE_EXITED(1));
	assert_int_equal(fake_count(FK_LAUNCH, "web"), 4);
	assert_false(fake_log_has("throttling"));
	fake_assert_no_bad_transition();
}

/* Workers dying before serving throttle the pool with the backoff: no
 * refill until it is over, then procs workers again. */
static void test_throttled(void **state)
{
	struct proc *w[8];
	int64_t t0;

	(void)state;
	fake_boot(web);
	assert_int_equal(workers(w, 8), 2);
	t0 = fake_now;
	fake_exit(w[0], FAKE_EXITED(1));
	assert_true(fake_log_has("before serving a connection; throttling the pool for 1s"));
	assert_int_equal(fake_count(FK_LAUNCH, "web"), 2);
	fake_assert_state("web", ST_READY);	/* one worker left */
	fake_exit(w[1], FAKE_EXITED(1));
	assert_true(fake_log_has("throttling the pool for 2s"));
	fake_assert_state("web", ST_BACKOFF);
	assert_int_equal(fake_svc("web")->next_attempt, t0 + 2000);
	fake_advance(1999);
	assert_int_equal(fake_count(FK_LAUNCH, "web"), 2);
	fake_advance(1);
	assert_int_equal(fake_count(FK_LAUNCH, "web"), 4);
	assert_int_equal(fake_launch_time("web", 2), t0 + 2000);
	assert_int_equal(fake_svc("web")->restarts, 2);
	/* Workers that speak the protocol: ready again at their READY=1. */
	assert_int_equal(workers(w, 8), 2);
	fake_notify(w[0], "READY", "1");
	fake_assert_state("web", ST_READY);
	fake_assert_no_bad_transition();
}

/* Once the throttle is over and the pool has its workers again, a pool
 * whose workers never speak the status protocol is ready again. It used
 * to stay `backoff`, with the throttle's reason, until one of them exited
 * (refill_timeout() refilled the pool but did not work out its state), and
 * a service that required it waited meanwhile. */
static void test_throttle_over_silent_pool_is_ready(void **state)
{
	struct proc *w[8];

	(void)state;
	fake_boot(web);
	assert_int_equal(workers(w, 8), 2);
	fake_exit(w[0], FAKE_EXITED(1));
	fake_exit(w[1], FAKE_EXITED(1));
	fake_assert_state("web", ST_BACKOFF);
	fake_advance(2000);
	assert_int_equal(count_workers(), 2);
	fake_assert_state("web", ST_READY);
	fake_assert_no_bad_transition();
}

/* Stopping a pool stops every worker; it is stopped once all are gone. */
static void test_stop(void **state)
{
	struct proc *w[8];
	char err[100];

	(void)state;
	fake_boot(web);
	assert_int_equal(workers(w, 8), 2);
	assert_int_equal(svc_stop(fake_svc("web"), err, sizeof(err)), 0);
	fake_evaluate();
	assert_true(fake_stop_asked(w[0]->pid));
	assert_true(fake_stop_asked(w[1]->pid));
	fake_assert_state("web", ST_STOPPING);
	fake_exit(w[0], FAKE_KILLED(SIGTERM));
	fake_assert_state("web", ST_STOPPING);
	assert_int_equal(fake_count(FK_LAUNCH, "web"), 2);	/* not replaced */
	fake_exit(w[1], FAKE_KILLED(SIGTERM));
	fake_assert_state("web", ST_STOPPED);
	assert_null(fake_svc("web")->pool);
	fake_assert_no_bad_transition();
}

/* start = demand: nothing runs before a connection; the first one starts
 * the daemon; a clean exit waits for the next. */
static void test_demand_daemon(void **state)
{
	(void)state;
	fake_boot("[service d]\ncommand = /bin/d\nlisten = tcp:127.0.0.1:8081\nstart = demand\n"
		  "restart_delay = 1s\n");
	fake_assert_state("d", ST_WAITING);
	assert_string_equal(svc_reason(fake_svc("d")), "waiting for a first connection");
	assert_int_equal(fake_count(FK_LAUNCH, "d"), 0);
	assert_true(fake_connection("d"));
	assert_int_equal(fake_count(FK_LAUNCH, "d"), 1);
	fake_assert_state("d", ST_READY);
	assert_false(fake_watching("d"));
	fake_exit(fake_proc("d"), FAKE_EXITED(0));
	fake_assert_state("d", ST_WAITING);
	assert_true(fake_watching("d"));
	assert_int_equal(fake_count(FK_LAUNCH, "d"), 1);
	assert_true(fake_connection("d"));
	assert_int_equal(fake_count(FK_LAUNCH, "d"), 2);
	fake_exit(fake_proc("d"), FAKE_EXITED(1));
	fake_assert_state("d", ST_BACKOFF);
	fake_advance(1000);
	assert_int_equal(fake_count(FK_LAUNCH, "d"), 2);	/* back to waiting, not started */
	fake_assert_state("d", ST_WAITING);
	fake_assert_no_bad_transition();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_starts_procs_workers, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_ready_notify, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_grows_one_per_connection, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_retires_idle_above_procs, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_retires_down_to_procs_only, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_max_use, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_dead_worker_replaced, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_throttled, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_throttle_over_silent_pool_is_ready, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_stop, fake_test_setup, fake_test_teardown),
		cmocka_unit_test_setup_teardown(test_demand_daemon, fake_test_setup, fake_test_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
