/* upgrade.c - see upgrade.h.
 *
 * The old image: check, then exec. Everything droverd must keep is named in
 * the state and has its close-on-exec flag cleared just before execve; if
 * execve fails, the flags are put back and droverd carries on.
 *
 * The new image: upgrade_takeover() runs before anything else is set up. It
 * reads the state, loads the configuration, adopts the sockets and the
 * processes. Any failure executes the old image (a descriptor of it came
 * with the state) with the same state and the reason, and the old image
 * tells the administrator the upgrade failed. */
#include "upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "current.h"
#include "control.h"
#include "droverd.h"
#include "handover.h"
#include "log.h"
#include "notify.h"
#include "output.h"
#include "sdnotify.h"
#include "service.h"
#include "spawn.h"
#include "self.h"
#include "state.h"

enum { CHECK_TIMEOUT_MS = 15000, CHECK_OUTPUT_MAX = 8192 };


/* The check of a new binary, running in a child. */
static struct {
	bool active;
	bool handover;
	struct conn *client;
	pid_t pid;
	int pidfd;
	struct watch w_exit, w_out;
	struct buf out;
	struct timer t_timeout;
} job = { .pidfd = -1 };

/* Set by the takeover, answered once the loop runs. */
static int report_fd = -1;
static char report_msg[512];
static int report_status;

static void finish(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void finish(int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (status)
		log_error("upgrade: %s", msg);
	else
		log_info("upgrade: %s", msg);
	if (job.client)
		conn_reply(job.client, status, "%s", msg);
	job.client = NULL;
	job.active = false;
}

void upgrade_forget_client(struct conn *c)
{
	if (job.client == c)
		job.client = NULL;
}

/* A service removed by a reload and still stopping has no place in the
 * configuration in force, which is what the next image takes. */
static const char *removed_still_stopping(char *why, size_t len)
{
	for (struct service *s = services; s; s = s->next)
		if (s->removed) {
			snprintf(why, len, "service %s was removed and is still stopping; try again when it has",
				 s->conf->name);
			return why;
		}
	return NULL;
}

/* A handover's new droverd reads the configuration on disk (it starts
 * processes of its own): that must be the one running, so that it finds
 * exactly the services the state names. An upgrade in place takes the
 * configuration in force with the state, and does not look at the disk. */
static const char *same_configuration(char *why, size_t len)
{
	struct conf_errors errs = { 0 };
	struct conf *now = current_conf(), *disk;
	const char *bad = NULL;

	if (removed_still_stopping(why, len))
		return why;
	if (!(disk = conf_load(current_path(), geteuid() == 0, &errs))) {
		snprintf(why, len, "the configuration on disk is invalid (%s); fix it first",
			 errs.n ? errs.msg[0] : "?");
		conf_errors_free(&errs);
		return why;
	}
	for (struct service *s = services; s && !bad; s = s->next) {
		struct svc_conf *d = conf_find(disk, s->conf->name);

		if (!d || conf_compare(s->conf, d) != CHANGE_NONE) {
			snprintf(why, len, "the configuration on disk differs from the running one "
				 "(service %s); run `drover reload` first", s->conf->name);
			bad = why;
		}
	}
	if (!bad && disk->nsvcs != now->nsvcs) {
		snprintf(why, len, "the configuration on disk differs from the running one; "
			 "run `drover reload` first");
		bad = why;
	}
	conf_free(disk);
	return bad;
}

static void exec_new_image(void)
{
	struct state_globals g = { .control_fd = control_fd(), .notify_fd = notify_fd(), .client_fd = -1 };
	char var_state[48], var_exe[48], err[300];
	const char *extra[2] = { var_state, var_exe };
	const char *sd = sdnotify_path();
	int state_fd, old_exe;
	char **env;

	snprintf(g.control_path, sizeof(g.control_path), "%s", control_path());
	snprintf(g.sdnotify, sizeof(g.sdnotify), "%s", sd ? sd : "");
	if (job.client)
		g.client_fd = conn_fd(job.client);
	/* A descriptor of the image running now: if the new one cannot take
	 * the state over, it executes this one again. */
	if ((old_exe = open("/proc/self/exe", O_PATH | O_CLOEXEC)) < 0) {
		finish(1, "cannot keep a handle on the running binary: %s", strerror(errno));
		return;
	}
	if ((state_fd = state_save(&g, true, err, sizeof(err))) < 0) {
		close(old_exe);
		finish(1, "cannot save droverd's state: %s", err);
		return;
	}
	fcntl(old_exe, F_SETFD, 0);
	fcntl(state_fd, F_SETFD, 0);
	snprintf(var_state, sizeof(var_state), "DROVER_STATE_FD=%d", state_fd);
	snprintf(var_exe, sizeof(var_exe), "DROVER_OLD_EXE_FD=%d", old_exe);
	log_info("upgrade: executing %s", self_exe());
	sdnotify_send("RELOADING=1\nSTATUS=upgrading droverd");
	if ((env = self_environment(extra, 2)))
		execve(self_exe(), self_argv(), env);
	/* Still here: nothing changed. */
	snprintf(err, sizeof(err), "%s", strerror(env ? errno : ENOMEM));
	free(env);
	state_abandon();
	close(state_fd);
	close(old_exe);
	sdnotify_send("READY=1");
	finish(1, "cannot exec %s: %s", self_exe(), err);
}

static void check_done(int status)
{
	char what[128];

	loop_del(&job.w_exit);
	loop_del(&job.w_out);
	timer_cancel(&job.t_timeout);
	if (job.pidfd >= 0)
		close(job.pidfd);
	job.pidfd = -1;
	if (job.w_out.fd >= 0)
		close(job.w_out.fd);
	job.w_out.fd = -1;
	job.pid = 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		buf_free(&job.out);
		if (job.handover) {
			struct conn *c = job.client;

			job.client = NULL;
			job.active = false;
			handover_begin(c);
		} else {
			exec_new_image();
		}
		return;
	}
	svc_describe_status(status, what, sizeof(what));
	while (job.out.len && job.out.data[job.out.len - 1] == '\n')
		job.out.data[--job.out.len] = '\0';
	finish(1, "the new binary %s failed its check (%s)%s%s; nothing changed", self_exe(), what,
	       job.out.len ? ": " : "", buf_cstr(&job.out));
	buf_free(&job.out);
}

static void check_exit(struct watch *w, uint32_t events)
{
	siginfo_t si = { 0 };

	(void)w;
	(void)events;
	if (waitid((idtype_t)P_PIDFD, (id_t)job.pidfd, &si, WEXITED | WNOHANG) < 0 || !si.si_pid)
		return;
	check_done(si.si_code == CLD_EXITED ? si.si_status << 8 : si.si_status);
}

static void check_output(struct watch *w, uint32_t events)
{
	char chunk[4096];
	ssize_t n = read(w->fd, chunk, sizeof(chunk));

	(void)events;
	if (n > 0)
		buf_add(&job.out, chunk, (size_t)n);	/* past the cap: dropped */
	else if (n == 0 || (errno != EAGAIN && errno != EINTR))
		loop_del(w);
}

static void check_timeout(struct timer *t)
{
	(void)t;
	if (job.pid > 0)
		kill(-job.pid, SIGKILL);	/* its group: what it started too */
	buf_printf(&job.out, "%sno answer within %d seconds", job.out.len ? "; " : "",
		   CHECK_TIMEOUT_MS / 1000);
}

bool upgrade_reaped(pid_t pid, int status)
{
	if (!job.active || pid != job.pid)
		return false;
	check_done(status);
	return true;
}

/* Runs `NEW -t -c CONF` with a copy of the state on descriptor 3. */
static bool start_check(char *err, size_t len)
{
	struct state_globals g = { .control_fd = -1, .notify_fd = -1, .client_fd = -1 };
	char *argv[] = { (char *)self_exe(), "-t", "-c", (char *)current_path(), NULL };
	const char *extra[] = { "DROVER_CHECK_STATE_FD=3" };
	int pipefd[2], devnull = open("/dev/null", O_RDWR | O_CLOEXEC), state_fd;
	struct spawn_req r = { .argv = argv, .umask = 022 };
	struct spawn_result res;
	char **env;
	int fds[4];

	/* The copy names descriptors, but the check only parses it. */
	if ((state_fd = state_save(&g, !job.handover, err, len)) < 0)
		return false;
	state_abandon();
	if (devnull < 0 || output_pipe(pipefd) < 0) {
		snprintf(err, len, "cannot set up the check: %s", strerror(errno));
		if (devnull >= 0)
			close(devnull);
		close(state_fd);
		return false;
	}
	fds[0] = devnull;
	fds[1] = fds[2] = pipefd[1];
	fds[3] = state_fd;
	r.fds = fds;
	r.nfds = 4;
	r.envp = env = self_environment(extra, 1);
	if (!env || spawn_process(&r, &res) < 0) {
		if (env)
			spawn_describe_error(&r, &res, err, len);
		else
			snprintf(err, len, "out of memory");
		free(env);
		close(devnull);
		close(state_fd);
		close(pipefd[0]);
		close(pipefd[1]);
		return false;
	}
	free(env);
	close(devnull);
	close(state_fd);
	close(pipefd[1]);
	job.pid = res.pid;
	job.pidfd = res.pidfd;
	job.out = (struct buf){ .max = CHECK_OUTPUT_MAX };
	loop_add(&job.w_out, pipefd[0], EPOLLIN, check_output);
	if (job.pidfd >= 0)
		loop_add(&job.w_exit, job.pidfd, EPOLLIN, check_exit);
	timer_after(&job.t_timeout, CHECK_TIMEOUT_MS, check_timeout);
	return true;
}

void upgrade_request(struct conn *c, bool handover)
{
	char why[600];

	if (job.active || handover_active()) {
		if (c)
			conn_reply(c, 1, "an upgrade is already in progress");
		else
			log_warn("upgrade: one is already in progress; this request is ignored");
		return;
	}
	if (droverd_shutting_down()) {
		if (c)
			conn_reply(c, 1, "droverd is shutting down");
		return;
	}
	job.client = c;
	job.active = true;
	job.handover = handover;
	if (!self_exe()[0]) {
		finish(1, "cannot tell which binary droverd runs (/proc/self/exe)");
		return;
	}
	if (handover ? same_configuration(why, sizeof(why)) : removed_still_stopping(why, sizeof(why))) {
		finish(1, "%s", why);
		return;
	}
	if (handover)
		log_info("upgrade: checking %s against %s", self_exe(), current_path());
	else
		log_info("upgrade: checking %s against the configuration in force", self_exe());
	if (!start_check(why, sizeof(why)))
		finish(1, "cannot check the new binary: %s", why);
}

/* --- the new image ----------------------------------------------------------- */

static _Noreturn void fall_back(int state_fd, int old_exe, const char *reason)
{
	char var_state[48], var_err[600];
	const char *extra[2] = { var_state, var_err };
	char **env;

	if (old_exe < 0) {
		/* We are the old image already, and cannot take our own state
		 * back: nothing is left to try. Services keep running. */
		fprintf(stderr, "droverd: cannot take the state over: %s\n", reason);
		exit(1);
	}
	fprintf(stderr, "droverd: the new image cannot take the state over: %s; running the old one again\n",
		reason);
	snprintf(var_state, sizeof(var_state), "DROVER_STATE_FD=%d", state_fd);
	snprintf(var_err, sizeof(var_err), "DROVER_UPGRADE_ERROR=%s", reason);
	if ((env = self_environment(extra, 2)))
		execveat(old_exe, "", self_argv(), env, AT_EMPTY_PATH);
	fprintf(stderr, "droverd: cannot run the old image again: %s\n", strerror(errno));
	exit(1);
}

static int env_fd(const char *name)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (!v)
		return -1;
	n = strtol(v, &end, 10);
	return *end || n < 0 || n > INT_MAX ? -1 : (int)n;
}

/* Once the state is read, any fatal error before the loop runs (a log
 * file that cannot be opened, no memory for the loop) falls back too. */
static int fatal_state_fd = -1, fatal_old_exe = -1;

static void fatal_during_takeover(const char *msg)
{
	fall_back(fatal_state_fd, fatal_old_exe, msg);
}

/* Everything is checked before anything is set up: the state decodes, it
 * names neither of the two descriptors that came beside it, the
 * configuration it carries reads again, the two agree, and every
 * descriptor it names is open and of the right type. */
static struct conf *takeover_check(int state_fd, int old_exe, struct state *st, char *err, size_t len)
{
	struct conf *c = NULL;

	if (state_read(state_fd, st, err, len) < 0)
		return NULL;
	if (state_names_fd(st, state_fd) || state_names_fd(st, old_exe))
		snprintf(err, len, "state: it names a descriptor that is not one of its own");
	else if ((c = state_conf(st, err, len)) &&
		 (state_check(st, c, err, len) == 0 && state_verify_fds(st, err, len) == 0))
		return c;
	conf_free(c);
	state_free(st);
	return NULL;
}

bool upgrade_takeover(const char *control_override)
{
	int state_fd = env_fd("DROVER_STATE_FD"), old_exe = env_fd("DROVER_OLD_EXE_FD");
	const char *failed = getenv("DROVER_UPGRADE_ERROR");
	struct state st;
	struct conf *c;
	char err[512];

	if (state_fd < 0)
		return false;
	snprintf(report_msg, sizeof(report_msg), "%s", failed ? failed : "");
	report_status = failed ? 1 : 0;
	unsetenv("DROVER_STATE_FD");
	unsetenv("DROVER_OLD_EXE_FD");
	unsetenv("DROVER_UPGRADE_ERROR");
	if (!(c = takeover_check(state_fd, old_exe, &st, err, sizeof(err))))
		fall_back(state_fd, old_exe, err);
	fatal_state_fd = state_fd;
	fatal_old_exe = old_exe;
	log_on_fatal(fatal_during_takeover);
	current_set(c);
	droverd_start(control_override, &st.g);
	if (state_apply(&st, err, sizeof(err)) < 0) {
		state_free(&st);
		fall_back(state_fd, old_exe, err);
	}
	log_on_fatal(NULL);
	state_seal(&st.g);
	report_fd = st.g.client_fd;
	state_free(&st);
	close(state_fd);
	if (old_exe >= 0)
		close(old_exe);
	return true;
}

void upgrade_report(void)
{
	if (report_status)
		log_error("upgrade failed: the new binary could not take over (%s); still running droverd %s",
			  report_msg, DROVER_VERSION);
	else
		log_info("upgrade complete: running droverd %s (pid %d)", DROVER_VERSION, (int)getpid());
	sdnotify_send("READY=1\nSTATUS=droverd %s", DROVER_VERSION);
	if (report_fd < 0)
		return;
	if (report_status)
		control_answer_fd(report_fd, 1, "the new binary could not take over (%s); still running droverd %s",
				  report_msg, DROVER_VERSION);
	else
		control_answer_fd(report_fd, 0, "upgraded: running droverd %s (pid %d)", DROVER_VERSION,
				  (int)getpid());
	report_fd = -1;
}
