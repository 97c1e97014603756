/* droverd.c - the daemon as a whole: the configuration in force, the
 * signals it acts on, shutdown, and what it tells systemd.
 *
 * droverd exits on request (TERM, INT, QUIT, `drover shutdown`) or when a
 * critical service ends, and only once every process it started is gone. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control.h"
#include "droverd.h"
#include "log.h"
#include "reap.h"
#include "reload.h"
#include "sdnotify.h"
#include "service.h"
#include "svclog.h"

static struct conf *current;
static const char *conf_path = CONF_DEFAULT_PATH;
static bool stopping, stopping_fast, told_ready;
static int exit_code;

struct conf *droverd_conf(void)
{
	return current;
}

void droverd_set_conf(struct conf *c)
{
	c->refs++;
	if (current)
		conf_release(current);
	current = c;
}

const char *droverd_conf_path(void)
{
	return conf_path;
}

bool droverd_shutting_down(void)
{
	return stopping;
}

void droverd_shutdown(bool fast, int code)
{
	if (stopping && (!fast || stopping_fast))
		return;
	if (!stopping) {
		exit_code = code;
		sdnotify_send("STOPPING=1\nSTATUS=stopping every service");
	}
	stopping = true;
	stopping_fast = fast;
	log_info("shutting down%s", fast ? " fast: killing every process" : ": stopping every service");
	svc_shutdown(fast);
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
	char now[160];
	int n = 0, ready = 0, failed = 0;

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

	log_info("SIGHUP: reloading %s", conf_path);
	droverd_reloading(true);
	reload_run(&r, &errs);
	droverd_reloading(false);
	conf_errors_free(&errs);
	free(r.changes);
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
		svclog_reopen_all();
		break;
	case SIGUSR2:
		log_warn("SIGUSR2: in-place upgrade is not available in this version");
		break;
	default:
		break;
	}
}

void droverd_set_conf_path(const char *path)
{
	conf_path = path;
}

int droverd_exit_code(void)
{
	return exit_code;
}
