/* handover.c - see handover.h.
 *
 * Messages, one per line, on a socket pair:
 *   new -> old   ready                    its services are up
 *   old -> new   go                       take the control socket
 *   old -> new   draining PID PID ...     the old one's processes
 *   old -> new   stopped NAME             release a held service
 *   old -> new   done                     the old one exits normally
 * End of stream without "done" means the other side died. */
#include "handover.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "current.h"
#include "control.h"
#include "deps.h"
#include "droverd.h"
#include "listen.h"
#include "log.h"
#include "proc.h"
#include "reap.h"
#include "sdnotify.h"
#include "spawn.h"
#include "state.h"
#include "self.h"

enum { QUIT_GRACE_MS = 5000, ORPHANS_MAX = 4096 };

enum phase { IDLE, STARTING, DRAINING, NEW_WAITING, NEW_RUNNING };

static struct {
	enum phase phase;
	struct conn *client;
	pid_t peer;		/* old side: the new droverd; new side: the old one */
	int pidfd;
	struct watch w_exit, w_msg;
	struct buf in;
	struct timer t_timeout;
	char **wanted;		/* old side: services wanted before the drain */
	int nwanted;
	pid_t *draining;	/* new side: the old one's processes */
	int ndraining;
	bool got_done;
	bool ready_sent;
} h = { .pidfd = -1, .w_msg = { .fd = -1 } };

static void new_side_message(char *line);
static void peer_silent(void);

/* Adopted processes of an old droverd that died while draining. */
struct orphan {
	int pidfd;
	pid_t pid;
	struct watch w;
	struct timer t;
};

pid_t handover_peer(void)
{
	return h.phase == DRAINING ? h.peer : 0;
}

bool handover_active(void)
{
	return h.phase == STARTING || h.phase == DRAINING;
}

bool handover_must_hold(const struct service *s)
{
	bool live = false;

	for (struct proc *p = s->procs; p; p = p->next)
		live |= !p->exited;
	if (!live)
		return false;
	return (s->conf->mode == MODE_DAEMON && s->conf->nlisten == 0) || s->conf->mode == MODE_ONESHOT;
}

static void send_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void send_line(const char *fmt, ...)
{
	char line[8192];
	va_list ap;
	int n;

	if (h.w_msg.fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(line) - 1)
		return;
	line[n++] = '\n';
	/* Short lines on a socket pair with room: this does not block in
	 * practice; if the peer is gone, it fails at once. */
	send(h.w_msg.fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void close_channel(void)
{
	if (h.w_msg.fd >= 0) {
		loop_del(&h.w_msg);
		close(h.w_msg.fd);
	}
	h.w_msg.fd = -1;
	buf_free(&h.in);
}

static void forget_peer(void)
{
	loop_del(&h.w_exit);
	if (h.pidfd >= 0)
		close(h.pidfd);
	h.pidfd = -1;
	h.peer = 0;
	timer_cancel(&h.t_timeout);
}

static void reply(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(status ? LV_ERROR : LV_INFO, "handover: %s", msg);
	if (h.client)
		conn_reply(h.client, status, "%s", msg);
	h.client = NULL;
}

void handover_forget_client(struct conn *c)
{
	if (h.client == c)
		h.client = NULL;
}

/* --- old side ------------------------------------------------------------------ */

static void remember_wanted(void)
{
	for (struct service *s = services; s; s = s->next) {
		char **v;

		if (!s->want || !(v = realloc(h.wanted, sizeof(*v) * (size_t)(h.nwanted + 1))))
			continue;
		h.wanted = v;
		if ((v[h.nwanted] = strdup(s->conf->name)))
			h.nwanted++;
	}
}

static void forget_wanted(void)
{
	for (int i = 0; i < h.nwanted; i++)
		free(h.wanted[i]);
	free(h.wanted);
	h.wanted = NULL;
	h.nwanted = 0;
}

static int64_t longest_stop_timeout(void)
{
	int64_t t = 0;

	for (struct service *s = services; s; s = s->next)
		if (s->conf->stop_timeout > t)
			t = s->conf->stop_timeout;
	return t;
}

/* The new droverd is gone (or being stopped): what it left behind became
 * our children (we are their subreaper) and must not run on. */
static void after_peer_gone(void)
{
	close_channel();
	forget_peer();
	reap_stop_strangers(longest_stop_timeout());
}

static void abort_starting(const char *why)
{
	reply(1, "%s; nothing changed, this droverd (pid %d) carries on", why, (int)getpid());
	after_peer_gone();
	h.phase = IDLE;
}

/* The new droverd died while we drained: take everything back. */
static void take_back(const char *why)
{
	log_error("handover: %s while this droverd was stopping its processes: taking everything back", why);
	after_peer_gone();
	droverd_cancel_shutdown();
	control_keep_file(false);
	listen_keep_files(false);
	control_pause(false);
	for (int i = 0; i < h.nwanted; i++) {
		struct service *s = svc_find(h.wanted[i]);

		if (s)
			svc_start(s, NULL, 0);
	}
	forget_wanted();
	sdnotify_send("MAINPID=%d\nREADY=1\nSTATUS=handover failed: running as before", (int)getpid());
	h.phase = IDLE;
}

static void peer_exited(int status)
{
	char what[128];

	svc_describe_status(status, what, sizeof(what));
	if (h.phase == STARTING) {
		char why[200];

		snprintf(why, sizeof(why), "the new droverd (pid %d) %s before it was ready", (int)h.peer, what);
		abort_starting(why);
	} else if (h.phase == DRAINING) {
		char why[200];

		snprintf(why, sizeof(why), "the new droverd (pid %d) %s", (int)h.peer, what);
		take_back(why);
	} else if (h.peer) {
		log_info("handover: the new droverd (pid %d) %s", (int)h.peer, what);
		after_peer_gone();	/* stopped after a timeout */
	}
}

static void peer_exit_event(struct watch *w, uint32_t events)
{
	siginfo_t si = { 0 };

	(void)w;
	(void)events;
	if (waitid((idtype_t)P_PIDFD, (id_t)h.pidfd, &si, WEXITED | WNOHANG) < 0 || !si.si_pid)
		return;
	peer_exited(si.si_code == CLD_EXITED ? si.si_status << 8 : si.si_status);
}

bool handover_reaped(pid_t pid, int status)
{
	if (!h.peer || pid != h.peer || h.phase == NEW_WAITING || h.phase == NEW_RUNNING)
		return false;
	peer_exited(status);
	return true;
}

static void quit_timeout(struct timer *t)
{
	(void)t;
	if (h.peer > 0)
		kill(h.peer, SIGKILL);
}

static void ready_timeout(struct timer *t)
{
	(void)t;
	log_error("handover: the new droverd (pid %d) is not ready within upgrade_timeout: stopping it",
		  (int)h.peer);
	/* Gracefully: its workers may hold connections already. SIGKILL if
	 * it has not gone by the longest stop timeout, and a bit. */
	kill(h.peer, SIGTERM);
	timer_after(&h.t_timeout, longest_stop_timeout() + QUIT_GRACE_MS, quit_timeout);
	reply(1, "the new droverd (pid %d) was not ready within %llds; nothing changed, this droverd "
	      "(pid %d) carries on", (int)h.peer, (long long)current_conf()->upgrade_timeout / 1000,
	      (int)getpid());
	/* Its exit (peer_exited) finds phase IDLE and only cleans up. */
	h.phase = IDLE;
}

static void send_draining(void)
{
	char line[8000];
	size_t n = (size_t)snprintf(line, sizeof(line), "draining");

	for (struct service *s = services; s; s = s->next)
		for (struct proc *p = s->procs; p && n < sizeof(line) - 16; p = p->next)
			n += (size_t)snprintf(line + n, sizeof(line) - n, " %d", (int)p->pid);
	send_line("%s", line);
}

static void on_ready(void)
{
	pid_t peer = h.peer;

	h.phase = DRAINING;
	timer_cancel(&h.t_timeout);
	reply(0, "the new droverd (pid %d) runs now; this one (pid %d) lets its processes finish and exits",
	      (int)peer, (int)getpid());
	sdnotify_send("MAINPID=%d\nSTATUS=handed over to pid %d", (int)peer, (int)peer);
	control_pause(true);
	control_keep_file(true);
	listen_keep_files(true);
	send_line("go");
	send_draining();
	remember_wanted();
	droverd_drain();
}

static void take_line(char *line)
{
	if (h.phase == STARTING && strcmp(line, "ready") == 0)
		on_ready();
	else if (h.phase == NEW_WAITING || h.phase == NEW_RUNNING)
		new_side_message(line);
	else
		log_warn("handover: unexpected message \"%.60s\"", line);
}

static void message_event(struct watch *w, uint32_t events)
{
	char chunk[4096];
	ssize_t n = recv(w->fd, chunk, sizeof(chunk), MSG_DONTWAIT);
	char *nl;

	(void)events;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		peer_silent();
		return;
	}
	if (!buf_add(&h.in, chunk, (size_t)n)) {
		log_error("handover: the other droverd sends too much");
		peer_silent();
		return;
	}
	while (h.in.data && (nl = memchr(h.in.data, '\n', h.in.len))) {
		*nl = '\0';
		take_line(h.in.data);
		if (!h.in.data)
			return;		/* the channel closed meanwhile */
		buf_consume(&h.in, (size_t)(nl - h.in.data) + 1);
	}
}

static int spawn_new(int state_fd, int channel, char *err, size_t len)
{
	char var_state[48], var_chan[48];
	const char *extra[2] = { var_state, var_chan };
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC), fds[3], keep[LISTEN_MAX * 256 + 8];
	int nkeep = 0;
	char **env;
	struct spawn_req r = { .argv = self_exec_argv(), .umask = 022 };
	struct spawn_result res;

	snprintf(var_state, sizeof(var_state), "DROVER_STATE_FD=%d", state_fd);
	snprintf(var_chan, sizeof(var_chan), "DROVER_HANDOVER_FD=%d", channel);
	keep[nkeep++] = state_fd;
	keep[nkeep++] = channel;
	keep[nkeep++] = control_fd();
	for (struct service *s = services; s; s = s->next)
		for (int i = 0; i < s->nlis && nkeep < (int)(sizeof(keep) / sizeof(keep[0])); i++)
			if (s->lis[i].fd >= 0)
				keep[nkeep++] = s->lis[i].fd;
	fds[0] = devnull;
	fds[1] = fds[2] = 2;	/* the new droverd logs where droverd was started to */
	r.fds = fds;
	r.nfds = 3;
	r.keep = keep;
	r.nkeep = nkeep;
	if (!(env = self_environment(extra, 2))) {
		snprintf(err, len, "out of memory");
		close(devnull);
		return -1;
	}
	r.envp = env;
	if (spawn_process(&r, &res) < 0) {
		spawn_describe_error(&r, &res, err, len);
		free(env);
		close(devnull);
		return -1;
	}
	free(env);
	close(devnull);
	h.peer = res.pid;
	h.pidfd = res.pidfd;
	if (h.pidfd >= 0)
		loop_add(&h.w_exit, h.pidfd, EPOLLIN, peer_exit_event);
	return 0;
}

void handover_begin(struct conn *client)
{
	struct state_globals g = { .control_fd = control_fd(), .notify_fd = -1, .client_fd = -1 };
	const char *sd = sdnotify_path();
	int pair[2], state_fd;
	char err[512];

	h.client = client;
	snprintf(g.control_path, sizeof(g.control_path), "%s", control_path());
	snprintf(g.sdnotify, sizeof(g.sdnotify), "%s", sd ? sd : "");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
		reply(1, "cannot create the handover channel: %s; nothing changed", strerror(errno));
		return;
	}
	/* The state names our descriptors; the child keeps them at the same
	 * numbers (spawn's keep list), so ours stay close-on-exec. */
	state_fd = state_save(&g, false, err, sizeof(err));
	state_abandon();
	if (state_fd < 0) {
		close(pair[0]);
		close(pair[1]);
		reply(1, "cannot save droverd's state: %s; nothing changed", err);
		return;
	}
	if (spawn_new(state_fd, pair[1], err, sizeof(err)) < 0) {
		close(pair[0]);
		close(pair[1]);
		close(state_fd);
		reply(1, "cannot start the new droverd: %s; nothing changed", err);
		return;
	}
	close(pair[1]);
	close(state_fd);
	loop_add(&h.w_msg, pair[0], EPOLLIN, message_event);
	h.phase = STARTING;
	h.got_done = false;
	timer_after(&h.t_timeout, current_conf()->upgrade_timeout, ready_timeout);
	log_info("handover: started the new droverd, pid %d; waiting until its services are up", (int)h.peer);
}

static void report_stopped(void)
{
	for (struct service *s = services; s; s = s->next)
		if (!svc_has_procs(s) && !s->handover_reported) {
			s->handover_reported = true;
			send_line("stopped %s", s->conf->name);
		}
}

void handover_old_exiting(void)
{
	if (h.phase != DRAINING)
		return;
	report_stopped();
	send_line("done");
	close_channel();
	log_info("handover: every process of this droverd has stopped; pid %d carries on", (int)h.peer);
}

/* --- new side ------------------------------------------------------------------ */

static void release_all(void)
{
	for (struct service *s = services; s; s = s->next)
		if (s->held) {
			s->held = false;
			svc_touch(s);
		}
}

static void orphan_gone(struct orphan *o)
{
	loop_del(&o->w);
	timer_cancel(&o->t);
	close(o->pidfd);
	free(o);
}

static void orphan_exit(struct watch *w, uint32_t events)
{
	(void)events;
	orphan_gone((struct orphan *)((char *)w - offsetof(struct orphan, w)));
}

static void orphan_timeout(struct timer *t)
{
	struct orphan *o = (struct orphan *)((char *)t - offsetof(struct orphan, t));

	log_warn("handover: pid %d of the previous droverd did not finish: killing its process group",
		 (int)o->pid);
	if (kill(-o->pid, SIGKILL) < 0)
		pidfd_send_signal(o->pidfd, SIGKILL, NULL, 0);
	timer_after(&o->t, 1000, orphan_timeout);
}

/* The old droverd died while draining: its processes are nobody's now.
 * Watch them through pidfds and end them after the longest stop timeout
 * (they were told to stop already). */
static void adopt_orphans(void)
{
	int64_t grace = longest_stop_timeout();

	for (int i = 0; i < h.ndraining; i++) {
		struct orphan *o = calloc(1, sizeof(*o));

		if (!o || (o->pidfd = pidfd_open(h.draining[i], 0)) < 0) {
			free(o);
			continue;
		}
		o->pid = h.draining[i];
		if (loop_add(&o->w, o->pidfd, EPOLLIN, orphan_exit) < 0) {
			close(o->pidfd);
			free(o);
			continue;
		}
		timer_after(&o->t, grace, orphan_timeout);
		log_warn("handover: watching pid %d of the previous droverd until it stops", (int)o->pid);
	}
	free(h.draining);
	h.draining = NULL;
	h.ndraining = 0;
}

/* The old droverd let go (or died): the control socket, the socket files
 * and systemd's attention are this droverd's now. */
static void take_ownership(void)
{
	control_pause(false);
	control_keep_file(false);
	listen_keep_files(false);
	sdnotify_mute(false);
	sdnotify_send("READY=1\nSTATUS=droverd %s (pid %d) took over", DROVER_VERSION, (int)getpid());
}

static void new_side_message(char *line)
{
	if (strcmp(line, "go") == 0) {
		log_info("handover: the previous droverd lets go; taking control connections");
		take_ownership();
		h.phase = NEW_RUNNING;
	} else if (strncmp(line, "draining", 8) == 0) {
		for (char *p = line + 8, *end; *p; p = end) {
			long pid = strtol(p, &end, 10);
			pid_t *v;

			if (end == p)
				break;
			if (pid > 0 && (v = realloc(h.draining, sizeof(*v) * (size_t)(h.ndraining + 1)))) {
				h.draining = v;
				v[h.ndraining++] = (pid_t)pid;
			}
		}
	} else if (strncmp(line, "stopped ", 8) == 0) {
		struct service *s = svc_find(line + 8);

		if (s && s->held) {
			log_info("handover: %s stopped in the previous droverd: starting it", s->conf->name);
			s->held = false;
			svc_touch(s);
		}
	} else if (strcmp(line, "done") == 0) {
		h.got_done = true;
		release_all();
		free(h.draining);
		h.draining = NULL;
		h.ndraining = 0;
	}
}

/* End of the channel: normal after "done"; otherwise a side died. */
static void peer_silent(void)
{
	close_channel();
	if (h.phase == STARTING) {
		return;		/* its exit will be reaped and handled */
	}
	if (h.phase != NEW_WAITING && h.phase != NEW_RUNNING)
		return;
	if (!h.got_done) {
		log_error("handover: the previous droverd (pid %d) is gone without finishing", (int)h.peer);
		release_all();
		adopt_orphans();
		take_ownership();
		sdnotify_send("MAINPID=%d", (int)getpid());
	}
	h.phase = IDLE;
}

bool handover_takeover(const char *control_override)
{
	const char *v = getenv("DROVER_HANDOVER_FD"), *sv = getenv("DROVER_STATE_FD");
	struct conf_errors errs = { 0 };
	struct state st;
	struct conf *c;
	int state_fd, channel;
	char err[512];

	if (!v || !sv)
		return false;
	channel = atoi(v);
	state_fd = atoi(sv);
	unsetenv("DROVER_HANDOVER_FD");
	unsetenv("DROVER_STATE_FD");
	if (state_read(state_fd, &st, err, sizeof(err)) < 0)
		fatal("handover: %s", err);
	/* Unlike an upgrade in place, the new droverd reads the configuration
	 * on disk (it starts its own processes): the old one checked that it
	 * is the one running; one changed since, so that it no longer reads
	 * or names other services, ends the handover here, and the old
	 * droverd carries on. */
	if (!(c = conf_load(current_path(), geteuid() == 0, &errs)))
		fatal("handover: the configuration: %s", errs.n ? errs.msg[0] : "cannot be read");
	if (state_check(&st, c, err, sizeof(err)) < 0 || state_verify_fds(&st, err, sizeof(err)) < 0)
		fatal("handover: %s", err);
	current_set(c);
	st.g.notify_fd = -1;	/* a socket of our own for our processes */
	/* Until the old one lets go, systemd hears nothing from us, and the
	 * socket files we share are not ours to remove. */
	sdnotify_mute(true);
	control_keep_file(true);
	listen_keep_files(true);
	droverd_start(control_override, &st.g);
	control_pause(true);
	if (state_apply(&st, err, sizeof(err)) < 0)
		fatal("handover: %s", err);
	state_seal(&st.g);
	state_free(&st);
	close(state_fd);
	h.peer = getppid();
	/* Its processes are its own: ours start afresh, a new generation;
	 * a finished oneshot stays finished. */
	for (struct service *s = services; s; s = s->next) {
		svc_restore_timers(s, -1, -1, -1, false);
		timer_cancel(&s->t_restart);
		timer_cancel(&s->t_ready);
		timer_cancel(&s->t_watchdog);
		svc_reset_state(s, s->state == ST_DONE ? ST_DONE : ST_STOPPED);
		if (s->state != ST_DONE)
			s->generation++;
	}
	fcntl(channel, F_SETFD, FD_CLOEXEC);
	fcntl(channel, F_SETFL, O_NONBLOCK);
	loop_add(&h.w_msg, channel, EPOLLIN, message_event);
	h.phase = NEW_WAITING;
	svc_schedule();
	log_info("droverd %s (pid %d) taking over from pid %d", DROVER_VERSION, (int)getpid(), (int)h.peer);
	return true;
}

void handover_after_evaluation(void)
{
	if (h.phase == DRAINING)
		report_stopped();
	if (h.phase == NEW_WAITING && !h.ready_sent && svc_boot_settled()) {
		h.ready_sent = true;
		log_info("handover: every service is up; telling the previous droverd (pid %d)", (int)h.peer);
		send_line("ready");
	}
}
