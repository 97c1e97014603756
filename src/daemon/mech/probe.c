/* probe.c - see probe.h.
 *
 * A network probe is a small state machine driven by the loop: connect,
 * (http) send the request, read up to the end of the status line, each
 * step waiting on epoll, the whole bounded by one timer. Nothing here
 * blocks: the socket is non-blocking from its creation, and what the
 * other side sends beyond the status line is never read. */
#include "probe.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "escape.h"
#include "launch.h"
#include "log.h"
#include "proc.h"
#include "value.h"

enum step { P_IDLE, P_CONNECT, P_SEND, P_READ, P_EXEC };

struct probe {
	struct service *svc;
	enum step step;
	struct watch w;		/* the socket */
	struct timer t_limit;	/* health_timeout */
	struct timer t_report;	/* a failure to start, told from the loop */
	char why[PROBE_WHY_MAX];
	struct proc *exec;	/* exec: its process, until it has exited */
	bool reported;		/* exec: timed out and told; its exit is not */
	bool not_run;		/* exec: it never ran its command (why says why) */
	char req[512];
	size_t reqlen, sent;
	char line[PROBE_LINE_MAX];
	size_t got;
};

#define PROBE_OF(ptr, field) ((struct probe *)((char *)(ptr) - offsetof(struct probe, field)))

static const struct probe_events *up;	/* set once by main.c */

void probe_set_events(const struct probe_events *ev)
{
	up = ev;
}

/* A service's probe record lives only while a probe is under way: a
 * thousand probed services do not each keep its buffers. */
bool probe_running(const struct service *s)
{
	return s->probe != NULL;
}

static void release(struct probe *pr)
{
	pr->svc->probe = NULL;
	free(pr);
}

static void close_socket(struct probe *pr)
{
	if (pr->w.fd >= 0) {
		loop_del(&pr->w);
		close(pr->w.fd);
		pr->w.fd = -1;
	}
}

/* The probe is over: passed, or failed with why. */
static void finish(struct probe *pr, bool ok, const char *why)
{
	struct service *s = pr->svc;
	char text[PROBE_WHY_MAX];

	snprintf(text, sizeof(text), "%s", ok ? "" : why);	/* why may be pr->why */
	timer_cancel(&pr->t_limit);
	close_socket(pr);
	pr->step = P_IDLE;
	if (!pr->exec)
		release(pr);	/* else: timed out, kept until its exit */
	up->done(s, ok, text);
}

static void fail(struct probe *pr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct probe *pr, const char *fmt, ...)
{
	char detail[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	snprintf(pr->why, sizeof(pr->why), "%s: %s", pr->svc->conf->health.text, detail);
	finish(pr, false, pr->why);
}

bool probe_status_line(const char *line, size_t len, int *code)
{
	if (len < 12 || memcmp(line, "HTTP/1.", 7) != 0 || line[7] < '0' || line[7] > '9' || line[8] != ' ')
		return false;
	for (int i = 9; i < 12; i++)
		if (line[i] < '0' || line[i] > '9')
			return false;
	if (len > 12 && line[12] != ' ')
		return false;
	*code = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
	return true;
}

/* The status line is whole (or the connection ended): the verdict. */
static void judge(struct probe *pr, bool eof)
{
	char shown[PROBE_LINE_MAX * 4 + 1];
	char *end = memchr(pr->line, '\n', pr->got);
	size_t len = end ? (size_t)(end - pr->line) : pr->got;
	int code;

	if (len && pr->line[len - 1] == '\r')
		len--;
	if (!end && eof && pr->got == 0) {
		fail(pr, "connection closed before a status line");
		return;
	}
	if (!probe_status_line(pr->line, len, &code)) {
		escape_text(shown, sizeof(shown), pr->line, len > 40 ? 40 : len, 0);
		fail(pr, "not an HTTP status line: \"%s%s\"", shown, len > 40 ? "..." : "");
		return;
	}
	if (code >= 200 && code < 400) {
		finish(pr, true, NULL);
		return;
	}
	escape_text(shown, sizeof(shown), pr->line + 9, len - 9, 0);
	fail(pr, "status %s", shown);
}

static void readable(struct probe *pr)
{
	for (;;) {
		ssize_t n = recv(pr->w.fd, pr->line + pr->got, sizeof(pr->line) - pr->got, MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			fail(pr, "cannot read: %s", strerror(errno));
			return;
		}
		pr->got += (size_t)n;
		if (n == 0 || memchr(pr->line, '\n', pr->got) || pr->got == sizeof(pr->line)) {
			judge(pr, n == 0);
			return;
		}
	}
}

static void writable(struct probe *pr)
{
	while (pr->sent < pr->reqlen) {
		ssize_t n = send(pr->w.fd, pr->req + pr->sent, pr->reqlen - pr->sent, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			fail(pr, "cannot send the request: %s", strerror(errno));
			return;
		}
		pr->sent += (size_t)n;
	}
	pr->step = P_READ;
	loop_mod(&pr->w, EPOLLIN);
}

static void connected(struct probe *pr)
{
	const struct health_conf *h = &pr->svc->conf->health;
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(pr->w.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		fail(pr, "cannot connect: %s", strerror(err));
		return;
	}
	if (h->kind == HEALTH_TCP) {
		finish(pr, true, NULL);
		return;
	}
	pr->reqlen = (size_t)snprintf(pr->req, sizeof(pr->req),
				      "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: droverd/%s\r\n"
				      "Connection: close\r\n\r\n", h->path, h->host, DROVER_VERSION);
	if (pr->reqlen >= sizeof(pr->req)) {
		fail(pr, "the request is too long");
		return;
	}
	pr->sent = 0;
	pr->step = P_SEND;
	writable(pr);
}

static void socket_event(struct watch *w, uint32_t events)
{
	struct probe *pr = PROBE_OF(w, w);

	if (pr->step == P_CONNECT)
		connected(pr);
	else if (pr->step == P_SEND)
		writable(pr);
	else if (pr->step == P_READ && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		readable(pr);
}

static void limit_due(struct timer *t)
{
	struct probe *pr = PROBE_OF(t, t_limit);
	char d[32];

	duration_format(pr->svc->conf->health.timeout, d, sizeof(d));
	if (pr->exec) {
		proc_kill(pr->exec);	/* its whole process group */
		pr->reported = true;
		pr->step = P_IDLE;
		fail(pr, "no exit within %s: killed", d);
		return;
	}
	fail(pr, pr->step == P_CONNECT ? "no connection within %s" : "no status line within %s", d);
}

static void report_due(struct timer *t)
{
	struct probe *pr = PROBE_OF(t, t_report);
	struct service *s = pr->svc;
	char why[PROBE_WHY_MAX];

	snprintf(why, sizeof(why), "%s", pr->why);
	release(pr);
	up->done(s, false, why);
}

/* Could not even start: told from the loop, never from inside the call. */
static void not_started(struct probe *pr, const char *what, int err)
{
	close_socket(pr);
	pr->step = P_IDLE;
	snprintf(pr->why, sizeof(pr->why), "%s: %s: %s", pr->svc->conf->health.text, what, strerror(err));
	timer_after(&pr->t_report, 0, report_due);
}

static void start_network(struct probe *pr)
{
	const struct health_conf *h = &pr->svc->conf->health;
	int fd = socket(h->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		not_started(pr, "cannot create a socket", errno);
		return;
	}
	pr->got = 0;
	if (connect(fd, (const struct sockaddr *)&h->addr, h->addrlen) < 0 && errno != EINPROGRESS) {
		int err = errno;

		close(fd);
		not_started(pr, "cannot connect", err);
		return;
	}
	if (loop_add(&pr->w, fd, EPOLLOUT, socket_event) < 0) {
		int err = errno;

		close(fd);
		not_started(pr, "cannot watch the connection", err);
		return;
	}
	pr->step = P_CONNECT;
	timer_after(&pr->t_limit, h->timeout, limit_due);
}

/* A detached start that never ran the command: told before its exit. */
static void exec_not_run(struct service *s, const char *why)
{
	struct probe *pr = s->probe;

	if (!pr)
		return;
	snprintf(pr->why, sizeof(pr->why), "%s: %s", s->conf->health.text, why);
	pr->not_run = true;
}

/* Detached (spawn.h): droverd does not wait for the exec, so a thousand
 * probes do not hold its loop in fork. */
static void start_exec(struct probe *pr)
{
	struct service *s = pr->svc;
	struct launch_opts o = { .slot = -1, .conn_fd = -1, .no_listeners = true, .unlisted = true,
				 .argv = s->conf->health.argv, .spawn_failed = exec_not_run };
	char err[300];
	struct proc *p = launch_proc(s, &o, err, sizeof(err));

	if (!p) {
		pr->step = P_IDLE;
		snprintf(pr->why, sizeof(pr->why), "%s: %s", s->conf->health.text, err);
		timer_after(&pr->t_report, 0, report_due);
		return;
	}
	p->probe = true;
	pr->exec = p;
	pr->reported = pr->not_run = false;
	pr->step = P_EXEC;
	timer_after(&pr->t_limit, s->conf->health.timeout, limit_due);
}

int probe_start(struct service *s)
{
	struct probe *pr;

	if (probe_running(s))
		return -1;
	if (!(pr = calloc(1, sizeof(*pr)))) {
		log_error("%s: cannot probe: out of memory", s->conf->name);
		return -1;
	}
	pr->svc = s;
	pr->w.fd = -1;
	s->probe = pr;
	if (s->conf->health.kind == HEALTH_EXEC)
		start_exec(pr);
	else
		start_network(pr);
	return 0;
}

void probe_exited(struct proc *p, int status)
{
	struct service *s = p->svc;
	struct probe *pr = s ? s->probe : NULL;

	if (!pr || pr->exec != p)
		return;
	pr->exec = NULL;
	if (pr->reported) {
		release(pr);	/* timed out: told already */
		return;
	}
	if (pr->not_run)
		finish(pr, false, pr->why);
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		finish(pr, true, NULL);
	else if (WIFEXITED(status))
		fail(pr, "exited with status %d", WEXITSTATUS(status));
	else
		fail(pr, "killed by signal %d (%s)", WTERMSIG(status), signal_name(WTERMSIG(status)));
}

void probe_cancel(struct service *s)
{
	struct probe *pr = s->probe;

	if (!pr)
		return;
	timer_cancel(&pr->t_limit);
	timer_cancel(&pr->t_report);
	close_socket(pr);
	if (pr->exec) {
		proc_kill(pr->exec);
		pr->exec->svc = NULL;	/* reaped later, told to no one */
		pr->exec = NULL;
	}
	release(pr);
}
