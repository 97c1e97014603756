/* droverd.c - the daemon as a whole: the configuration in force, the
 * signals it acts on, shutdown, and what it tells systemd.
 *
 * droverd exits on request (TERM, INT, QUIT, `drover shutdown`) or when a
 * critical service ends, and only once every process it started is gone. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "control.h"
#include "current.h"
#include "deps.h"
#include "launch.h"
#include "listen.h"
#include "notify.h"
#include "sig.h"
#include "state.h"
#include "droverd.h"
#include "log.h"
#include "reap.h"
#include "reload.h"
#include "sdnotify.h"
#include "service.h"
#include "svclog.h"
#include "value.h"
#include "handover.h"
#include "upgrade.h"

static bool stopping, stopping_fast, told_ready;
static int exit_code;
static struct timer t_shutdown;	/* shutdown_timeout */

bool droverd_shutting_down(void)
{
	return stopping;
}

static void shutdown_due(struct timer *t)
{
	char d[32];

	(void)t;
	duration_format(current_conf()->shutdown_timeout, d, sizeof(d));
	log_warn("shutdown: services still running after shutdown_timeout (%s): killing what is left", d);
	droverd_shutdown(true, exit_code);
}

void droverd_shutdown(bool fast, int code)
{
	if (stopping && (!fast || stopping_fast))
		return;
	if (!stopping) {
		exit_code = code;
		sdnotify_send("STOPPING=1\nSTATUS=stopping every service");
		if (!fast && current_conf()->shutdown_timeout > 0)
			timer_after(&t_shutdown, current_conf()->shutdown_timeout, shutdown_due);
	}
	stopping = true;
	stopping_fast = fast;
	log_info("shutting down%s", fast ? " fast: killing every process" : ": stopping every service");
	svc_shutdown(fast);
}

void droverd_drain(void)
{
	stopping = true;
	exit_code = 0;
	log_info("stopping every service for the handover");
	svc_shutdown(false);
}

void droverd_cancel_shutdown(void)
{
	stopping = stopping_fast = false;
	exit_code = 0;
	timer_cancel(&t_shutdown);
	log_info("shutdown cancelled");
}

void droverd_reloading(bool begin)
{
	struct timespec ts;

	if (!begin) {
		sdnotify_send("READY=1");
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sdnotify_send("RELOADING=1\nMONOTONIC_USEC=%llu",
		      (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
}

static void tell_status(void)
{
	static char last[160];
	static unsigned long seen_changes = -1UL;
	static unsigned seen_count;
	char now[160];
	int n = 0, ready = 0, failed = 0;

	/* This runs after every event: count only when something changed. */
	if (seen_changes == svc_state_changes && seen_count == svc_count())
		return;
	seen_changes = svc_state_changes;
	seen_count = svc_count();
	for (struct service *s = services; s; s = s->next) {
		n++;
		ready += s->state == ST_READY || s->state == ST_DONE || s->state == ST_WAITING ||
			 s->state == ST_RUNNING;
		failed += s->state == ST_FAILED || s->state == ST_BACKOFF;
	}
	snprintf(now, sizeof(now), "%d services: %d up, %d failing", n, ready, failed);
	if (strcmp(now, last) != 0) {
		snprintf(last, sizeof(last), "%s", now);
		sdnotify_send("STATUS=%s", now);
	}
}

void droverd_after_evaluation(void)
{
	control_poll_waiters();
	handover_after_evaluation();
	if (stopping && svc_all_stopped()) {
		loop_quit();
		return;
	}
	if (!told_ready && !stopping && svc_boot_settled()) {
		told_ready = true;
		log_info("every auto service has started");
		sdnotify_send("READY=1");
	}
	if (sdnotify_active())
		tell_status();
}

static void reload_on_signal(void)
{
	struct conf_errors errs = { 0 };
	struct reload_result r = { 0 };

	log_info("SIGHUP: reloading %s", current_path());
	droverd_reloading(true);
	reload_run(&r, &errs);
	droverd_reloading(false);
	conf_errors_free(&errs);
	free(r.changes);
	droverd_trim_memory();	/* the parser's working memory */
}

void droverd_on_signal(int sig)
{
	switch (sig) {
	case SIGCHLD:
		reap_sigchld();
		break;
	case SIGHUP:
		reload_on_signal();
		break;
	case SIGTERM:
	case SIGINT:
		if (stopping)
			log_info("%s again: stopping fast", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		droverd_shutdown(stopping, 0);
		break;
	case SIGQUIT:
		droverd_shutdown(true, 0);
		break;
	case SIGUSR1:
		log_reopen();
		svclog_reopen_all(services);
		break;
	case SIGUSR2:
		log_info("SIGUSR2: upgrading droverd in place");
		upgrade_request(NULL, false);
		break;
	default:
		break;
	}
}

int droverd_exit_code(void)
{
	return exit_code;
}

static const char *default_control(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (geteuid() == 0)
		return "/run/drover/control.sock";
	if (xdg && xdg[0] == '/') {
		snprintf(buf, len, "%s/drover/control.sock", xdg);
		return buf;
	}
	fatal("no control socket: give -S SOCKET or `control =`, or set XDG_RUNTIME_DIR");
}

/* droverd may hold many descriptors (pipes, pidfds, listeners): raise its
 * own soft limit to the hard one; its children get the original back. */
static struct rlimit raise_nofile(void)
{
	struct rlimit orig, raised;

	getrlimit(RLIMIT_NOFILE, &orig);
	raised = orig;
	raised.rlim_cur = orig.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &raised) < 0)
		log_warn("cannot raise the open files limit: %s", strerror(errno));
	return orig;
}

/* Everything droverd needs before its loop runs. g: a state being taken
 * over (its control and notify sockets are adopted, not made), or NULL. */
static void setup(const char *control_override, const struct state_globals *g)
{
	struct conf *c = current_conf();
	char err[512], def[256];
	struct rlimit nofile;
	const char *control;
	int devnull;

	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("cannot become a child subreaper: %s; orphans of services go to init",
			 strerror(errno));
	nofile = raise_nofile();
	if ((devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
		fatal("cannot open /dev/null: %s", strerror(errno));
	launch_init(&nofile, devnull);
	if (loop_init() < 0 || sig_init(-1, droverd_on_signal) < 0)
		fatal("cannot set up the event loop: %s", strerror(errno));
	if (log_configure(c->log, c->log_path, err, sizeof(err)) < 0)
		fatal("%s", err);
	if (cgroup_init(c->cgroup, err, sizeof(err)) < 0) {
		if (c->cgroup == CGROUP_YES)
			fatal("cgroup = yes, but services cannot be tracked in cgroups: %s", err);
		log_warn("services are not tracked in cgroups (cgroup = auto): %s", err);
	}
	if (notify_open(g ? g->notify_fd : -1) < 0)
		fatal("cannot create the notification socket: %s", strerror(errno));
	control = g ? g->control_path : control_override ? control_override
		: c->control ? c->control : default_control(def, sizeof(def));
	if (control_open(control, c->control_group != NULL, c->control_gid,
			 g ? g->control_fd : -1, err, sizeof(err)) < 0)
		fatal("%s", err);
	if (g && g->sdnotify[0])
		setenv("NOTIFY_SOCKET", g->sdnotify, 1);
	sdnotify_init();
}

static void start_services(bool fresh)
{
	struct conf *c = current_conf();

	for (int i = 0; i < c->nsvcs; i++)
		if (!svc_new(c->svcs[i], c))
			fatal("out of memory");
	if (fresh)
		listen_adopt_passed(services);
	/* Taking a state over, what is wanted comes with the state. */
	for (struct service *s = services; fresh && s; s = s->next)
		if (s->conf->start != START_MANUAL)	/* demand: armed, waiting */
			deps_pull_up(s);
	svc_schedule();
}

void droverd_start(const char *control_override, const struct state_globals *g)
{
	setup(control_override, g);
	start_services(g == NULL);
}

/* malloc keeps freed memory inside the heap for reuse, and gives back only
 * a large free top. droverd's steady state is small; what it frees after a
 * configuration read or a status reply of a thousand services would stay
 * resident for its whole life. */
void droverd_trim_memory(void)
{
	malloc_trim(0);
}
