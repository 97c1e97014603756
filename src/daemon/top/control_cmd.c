/* control_cmd.c - what each control request does.
 *
 * Requests arrive normalized by the client (see drover.1 and the table
 * below); each handler checks its arguments, resolves every service name
 * before acting (one unknown name fails the whole request and changes
 * nothing), then replies at once or waits (start, stop, restart, wait,
 * shutdown) or streams (logs -f). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "control_cmd.h"
#include "deps.h"
#include "health.h"
#include "droverd.h"
#include "listen.h"
#include "log.h"
#include "pool.h"
#include "reload.h"
#include "reload_dry.h"
#include "service.h"
#include "upgrade.h"
#include "value.h"

/* WAIT_UP (start, restart): a backoff is a failure to report now.
 * WAIT_READY (wait): a backoff may recover; only `failed` ends the wait. */
enum wait_kind { WAIT_UP, WAIT_READY, WAIT_DOWN, WAIT_SHUTDOWN };

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Resolves names; replies and returns false on the first unknown one. */
static bool resolve(struct conn *c, char **names, int n, struct service **out)
{
	for (int i = 0; i < n; i++) {
		if (!(out[i] = svc_find(names[i]))) {
			conn_reply(c, 1, "unknown service \"%s\"", names[i]);
			return false;
		}
	}
	return true;
}

static char **copy_names(char **names, int n)
{
	char **v = calloc((size_t)n + 1, sizeof(char *));

	for (int i = 0; v && i < n; i++)
		if (!(v[i] = strdup(names[i]))) {
			while (i--)
				free(v[i]);
			free(v);
			return NULL;
		}
	return v;
}

static int64_t next_event_ms(const struct service *s)
{
	int64_t now = loop_now();

	if (s->state == ST_BACKOFF)
		return s->next_attempt - now;
	if (timer_armed(&s->t_sched)) {
		int64_t best = -1;

		if (s->next_every >= 0)
			best = s->next_every - now;
		if (s->next_at) {
			int64_t at = ((int64_t)s->next_at - time(NULL)) * 1000;

			if (best < 0 || at < best)
				best = at;
		}
		return best < 0 ? 0 : best;
	}
	return -1;
}

static void status_record(struct proto_writer *w, const struct service *s)
{
	const char *pids[64];
	char pidtext[64][16], last[128], lis[512];
	int n = 0;

	for (struct proc *p = s->procs; p && n < 64; p = p->next) {
		if (p->exited)
			continue;
		snprintf(pidtext[n], sizeof(pidtext[n]), "%d", (int)p->pid);
		pids[n] = pidtext[n];
		n++;
	}
	svc_describe_status(s->last_status, last, sizeof(last));
	listen_describe(s, lis, sizeof(lis));
	proto_record(w);
	proto_str(w, "name", s->conf->name);
	proto_str(w, "mode", conf_mode_name(s->conf->mode));
	proto_str(w, "state", svc_state_name(s->state));
	proto_str(w, "want", s->want ? "up" : "down");
	proto_list(w, "pids", pids, n);
	proto_int(w, "uptime_ms", loop_now() - s->since);
	proto_int(w, "restarts", s->restarts);
	proto_str(w, "status", s->status_text);
	proto_str(w, "reason", svc_reason(s));
	proto_int(w, "next_ms", next_event_ms(s));
	proto_str(w, "last_exit", s->last_status < 0 ? "" : last);
	proto_int(w, "generation", s->generation);
	proto_str(w, "listen", lis);
	if (s->conf->health.kind != HEALTH_NONE) {
		proto_str(w, "health", health_name(s->health == H_NONE ? H_STARTING : s->health));
		proto_str(w, "health_text", s->health_text ? s->health_text : "");
	}
	if (s->cg) {
		struct cgroup_stats st;

		cgroup_read_stats(s->cg, &st);
		if (st.cpu_usec >= 0)
			proto_int(w, "cpu_usec", st.cpu_usec);
		if (st.memory_bytes >= 0)
			proto_int(w, "memory_bytes", st.memory_bytes);
		if (st.tasks >= 0)
			proto_int(w, "tasks", st.tasks);
	}
	if (s->conf->mode == MODE_PREFORK || s->conf->mode == MODE_ACCEPT) {
		unsigned busy, idle, total;
		uint64_t served;

		pool_describe(s, &busy, &idle, &total, &served);
		proto_int(w, "busy", busy);
		proto_int(w, "idle", idle);
		proto_int(w, "total", total);
		proto_int(w, "served", (int64_t)served);
	}
}

static void cmd_status(struct conn *c, int argc, char **argv)
{
	struct service *want[PROTO_ARGS_MAX];
	struct proto_writer w;

	if (!resolve(c, argv + 1, argc - 1, want))
		return;
	conn_begin(c, &w, PK_REPLY, 0, NULL);
	if (argc > 1) {
		for (int i = 0; i < argc - 1; i++)
			status_record(&w, want[i]);
	} else {
		for (struct service *s = services; s; s = s->next)
			if (!s->removed)
				status_record(&w, s);
	}
	conn_end(c, &w);
}

/* Has the start of s succeeded, failed, or is it still going? The message
 * says why it failed, following requirements that hold it up. */
static int start_outcome(const struct service *s, bool patient, char *why, size_t len, int depth)
{
	if (pool_rolling(s)) {
		snprintf(why, len, "%s is %s", s->conf->name, svc_reason(s));
		return 0;
	}
	if (deps_is_up(s))
		return 1;
	if (s->state == ST_FAILED || (s->state == ST_BACKOFF && !patient) ||
	    (!s->want && s->state == ST_STOPPED)) {
		snprintf(why, len, "%s is %s: %s", s->conf->name, svc_state_name(s->state),
			 s->reason ? s->reason : "stopped");
		return -1;
	}
	if (s->state == ST_STARTING && depth < 64)
		for (int i = 0; i < s->conf->nrequires; i++) {
			struct service *d = svc_find(s->conf->requires[i]);

			if (d && start_outcome(d, patient, why, len, depth + 1) < 0)
				return -1;
		}
	return 0;
}

static bool wait_done(struct conn *c, bool timed_out)
{
	char why[400] = "";
	int pending = 0;

	for (int i = 0; i < c->nwait; i++) {
		struct service *s = svc_find(c->wait_names[i]);
		int r;

		if (!s) {
			conn_reply(c, 1, "%s was removed", c->wait_names[i]);
			return true;
		}
		if (c->wait_kind == WAIT_DOWN) {
			if (svc_has_procs(s)) {
				pending++;
				snprintf(why, sizeof(why), "%s is %s", s->conf->name, svc_state_name(s->state));
			}
			continue;
		}
		r = start_outcome(s, c->wait_kind == WAIT_READY, why, sizeof(why), 0);
		if (r < 0) {
			conn_reply(c, 1, "%s", why);
			return true;
		}
		if (r == 0) {
			pending++;
			snprintf(why, sizeof(why), "%s is %s%s%s", s->conf->name, svc_state_name(s->state),
				 s->reason ? ": " : "", svc_reason(s));
		}
	}
	if (!pending) {
		conn_reply(c, 0, "%s", c->wait_kind == WAIT_DOWN ? "stopped" : "ready");
		return true;
	}
	if (timed_out) {
		conn_reply(c, 1, "timed out: %s", why);
		return true;
	}
	return false;
}

/* start/stop/restart [--no-wait] NAME... */
static void cmd_change(struct conn *c, int argc, char **argv)
{
	struct service *svc[PROTO_ARGS_MAX];
	bool wait = true;
	int first = 1;
	char err[200] = "";
	char **names;

	if (argc > 1 && strcmp(argv[1], "--no-wait") == 0) {
		wait = false;
		first = 2;
	}
	if (argc <= first) {
		conn_reply(c, 1, "bad request: usage: %s [--no-wait] NAME...", argv[0]);
		return;
	}
	if (!resolve(c, argv + first, argc - first, svc))
		return;
	if (droverd_shutting_down()) {
		conn_reply(c, 1, "droverd is shutting down");
		return;
	}
	for (int i = 0; i < argc - first; i++) {
		int rc = strcmp(argv[0], "start") == 0 ? svc_start(svc[i], err, sizeof(err))
		       : strcmp(argv[0], "stop") == 0 ? svc_stop(svc[i], err, sizeof(err))
						       : svc_restart(svc[i], err, sizeof(err));

		if (rc < 0) {
			conn_reply(c, 1, "%s: %s", svc[i]->conf->name, err);
			return;
		}
	}
	if (!wait) {
		conn_reply(c, 0, "requested");
		return;
	}
	if (!(names = copy_names(argv + first, argc - first))) {
		conn_reply(c, 1, "out of memory");
		return;
	}
	/* Decided after the next evaluation, not now: the request has not
	 * been acted on yet. */
	c->waiting = wait_done;
	c->wait_names = names;
	c->nwait = argc - first;
	c->wait_kind = strcmp(argv[0], "stop") == 0 ? WAIT_DOWN : WAIT_UP;
}

/* wait NAME TIMEOUT_MS */
static void cmd_wait(struct conn *c, int argc, char **argv)
{
	struct service *s;
	char **names;
	int64_t timeout;

	if (argc != 3 || value_duration(argv[2], &timeout)) {
		conn_reply(c, 1, "bad request: usage: wait NAME TIMEOUT");
		return;
	}
	if (!resolve(c, argv + 1, 1, &s))
		return;
	if (!s->want && !deps_is_up(s)) {
		conn_reply(c, 1, "%s is %s and not going to start (drover start %s)", s->conf->name,
			   svc_state_name(s->state), s->conf->name);
		return;
	}
	if (!(names = copy_names(argv + 1, 1))) {
		conn_reply(c, 1, "out of memory");
		return;
	}
	conn_wait(c, wait_done, names, 1, WAIT_READY, timeout);
}

static void reload_failed(struct conn *c, struct conf_errors *errs)
{
	struct buf msg = { 0 };

	buf_printf(&msg, "the configuration has %d error%s; still running the old one", errs->n,
		   errs->n == 1 ? "" : "s");
	for (int i = 0; i < errs->n; i++)
		buf_printf(&msg, "\n%s", errs->msg[i]);
	conn_reply(c, 1, "%s", msg.data ? msg.data : "the configuration is invalid");
	buf_free(&msg);
}

static void reload_service(struct conn *c, struct service *s)
{
	char err[200];

	if (s->conf->reload_signal) {
		svc_signal_all(s, s->conf->reload_signal);
		conn_reply(c, 0, "sent %s to %s", signal_name(s->conf->reload_signal), s->conf->name);
	} else if (svc_restart(s, err, sizeof(err)) < 0) {
		conn_reply(c, 1, "%s: %s", s->conf->name, err);
	} else {
		conn_reply(c, 0, "%s has no reload_signal: restarting it", s->conf->name);
	}
}

/* reload --dry-run: prepared exactly as a reload (reload_prepare()), told,
 * and dropped. One info line in droverd's log says who asked and what a
 * reload would have done; an invalid configuration is not logged as an
 * error: nothing failed, the administrator was checking. */
static void reload_dry_run(struct conn *c)
{
	struct conf_errors errs = { 0 };
	struct reload_prepared r;
	struct proto_writer w;
	char counts[160], summary[200];

	if (reload_prepare(&r, &errs) < 0) {
		log_info("reload --dry-run by uid %u (pid %d): the configuration has %d error%s; nothing was changed",
			 (unsigned)c->uid, (int)c->pid, errs.n, errs.n == 1 ? "" : "s");
		reload_failed(c, &errs);
		conf_errors_free(&errs);
		droverd_trim_memory();
		return;
	}
	reload_dry_counts(r.plan, counts, sizeof(counts));
	snprintf(summary, sizeof(summary), "dry run: %s; nothing was changed", counts);
	log_info("reload --dry-run by uid %u (pid %d): %s; nothing was changed", (unsigned)c->uid, (int)c->pid,
		 counts);
	conn_begin(c, &w, PK_REPLY, 0, summary);
	reload_dry_records(&w, &r);
	conn_end(c, &w);
	reload_prepared_free(&r);
	droverd_trim_memory();	/* the parser's working memory */
}

/* reload [NAME] | reload --dry-run */
static void cmd_reload(struct conn *c, int argc, char **argv)
{
	struct conf_errors errs = { 0 };
	struct reload_result r = { 0 };
	struct proto_writer w;
	struct service *s;
	int rc;

	if (argc > 2) {
		conn_reply(c, 1, "bad request: usage: reload [NAME | --dry-run]");
		return;
	}
	if (argc == 2 && strcmp(argv[1], "--dry-run") == 0) {
		reload_dry_run(c);
		return;
	}
	if (argc == 2) {
		if (resolve(c, argv + 1, 1, &s))
			reload_service(c, s);
		return;
	}
	droverd_reloading(true);
	rc = reload_run(&r, &errs);
	droverd_reloading(false);
	droverd_trim_memory();	/* the parser's working memory */
	if (rc < 0) {
		reload_failed(c, &errs);
		conf_errors_free(&errs);
		return;
	}
	conn_begin(c, &w, PK_REPLY, 0, r.summary);
	for (int i = 0; i < r.n; i++) {
		proto_record(&w);
		proto_str(&w, "name", r.changes[i].name);
		proto_str(&w, "change", r.changes[i].change);
	}
	conn_end(c, &w);
	free(r.changes);
}

static void cmd_signal(struct conn *c, int argc, char **argv)
{
	struct service *s;
	int sig;

	if (argc != 3) {
		conn_reply(c, 1, "bad request: usage: signal NAME SIGNAL");
		return;
	}
	if (!resolve(c, argv + 1, 1, &s))
		return;
	if (value_signal(argv[2], &sig)) {
		conn_reply(c, 1, "\"%s\" is not a signal (use a name like TERM, HUP, USR1, or a number)", argv[2]);
		return;
	}
	if (!s->procs) {
		conn_reply(c, 1, "%s has no running process", s->conf->name);
		return;
	}
	svc_signal_all(s, sig);
	conn_reply(c, 0, "sent %s to %s", signal_name(sig), s->conf->name);
}

struct tail_ctx {
	struct proto_writer *w;
};

static void tail_one(const struct log_entry *e, void *arg)
{
	struct tail_ctx *t = arg;

	proto_record(t->w);
	proto_int(t->w, "time", e->when);
	proto_int(t->w, "pid", e->pid);
	proto_strn(t->w, "line", e->text, e->len);
}

/* logs NAME LINES FOLLOW */
static void cmd_logs(struct conn *c, int argc, char **argv)
{
	struct service *s;
	struct proto_writer w;
	struct tail_ctx t = { &w };
	unsigned lines;
	bool follow;

	if (argc != 4 || value_uint(argv[2], 1000000, &lines) || value_bool(argv[3], &follow)) {
		conn_reply(c, 1, "bad request: usage: logs NAME LINES FOLLOW");
		return;
	}
	if (!resolve(c, argv + 1, 1, &s))
		return;
	conn_begin(c, &w, follow ? PK_PART : PK_REPLY, 0, s->conf->log == LOG_NULL ? "output discarded (log = null)" : NULL);
	svclog_tail(s, (int)lines, tail_one, &t);
	if (follow)
		conn_follow(c, s);
	conn_end(c, &w);
}

static void cmd_deps(struct conn *c, int argc, char **argv)
{
	struct proto_writer w;

	(void)argv;
	if (argc != 1) {
		conn_reply(c, 1, "bad request: usage: deps");
		return;
	}
	conn_begin(c, &w, PK_REPLY, 0, NULL);
	for (struct service *s = services; s; s = s->next) {
		if (s->removed)
			continue;
		proto_record(&w);
		proto_str(&w, "name", s->conf->name);
		proto_str(&w, "state", svc_state_name(s->state));
		proto_list(&w, "requires", s->conf->requires, s->conf->nrequires);
		proto_list(&w, "after", s->conf->after, s->conf->nafter);
	}
	conn_end(c, &w);
}

static bool shutdown_done(struct conn *c, bool timed_out)
{
	(void)timed_out;
	if (!svc_all_stopped())
		return false;
	conn_reply(c, 0, "droverd stopped every service and is exiting");
	return true;
}

static void cmd_shutdown(struct conn *c, int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		conn_reply(c, 1, "bad request: usage: shutdown");
		return;
	}
	log_info("shutdown requested by uid %u (pid %d)", (unsigned)c->uid, (int)c->pid);
	droverd_shutdown(false, 0);
	c->waiting = shutdown_done;
	c->wait_kind = WAIT_SHUTDOWN;
}

static void cmd_upgrade(struct conn *c, int argc, char **argv)
{
	bool handover = argc == 2 && strcmp(argv[1], "--handover") == 0;

	if (argc > 2 || (argc == 2 && !handover)) {
		conn_reply(c, 1, "bad request: usage: upgrade [--handover]");
		return;
	}
	log_info("upgrade%s requested by uid %u (pid %d)", handover ? " --handover" : "", (unsigned)c->uid,
		 (int)c->pid);
	upgrade_request(c, handover);
}

static void cmd_version(struct conn *c, int argc, char **argv)
{
	struct proto_writer w;

	(void)argc;
	(void)argv;
	char msg[64];

	snprintf(msg, sizeof(msg), "droverd %s (pid %d)", DROVER_VERSION, (int)getpid());
	conn_begin(c, &w, PK_REPLY, 0, msg);
	proto_record(&w);
	proto_str(&w, "version", DROVER_VERSION);
	proto_int(&w, "protocol", PROTO_VERSION);
	proto_int(&w, "pid", getpid());
	proto_int(&w, "time", wall_ms());
	conn_end(c, &w);
}

static const struct {
	const char *name;
	void (*fn)(struct conn *c, int argc, char **argv);
} commands[] = {
	{ "status", cmd_status }, { "start", cmd_change }, { "stop", cmd_change },
	{ "restart", cmd_change }, { "wait", cmd_wait }, { "reload", cmd_reload },
	{ "signal", cmd_signal }, { "logs", cmd_logs }, { "deps", cmd_deps },
	{ "shutdown", cmd_shutdown }, { "version", cmd_version }, { "upgrade", cmd_upgrade },
};

void control_dispatch(struct conn *c, int argc, char **argv)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[0], commands[i].name) == 0) {
			commands[i].fn(c, argc, argv);
			return;
		}
	conn_reply(c, 1, "unknown command \"%.64s\"", argv[0]);
}
