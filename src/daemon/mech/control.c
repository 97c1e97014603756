/* control.c - see control.h. */
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fsafe.h"
#include "log.h"
#include "scarce.h"

enum {
	CONN_MAX = 1024,		/* authorized clients only; followers stay */
	IDLE_MS = 10000,
	OUT_MAX = 32 << 20,
	FOLLOW_OUT_MAX = 1 << 20,
	CONN_TRIM_BYTES = 16 << 10,	/* buffers this big: give the memory back after */
};

static struct watch listener = { .fd = -1 };
static bool paused;		/* by a handover */
static struct scarce short_of;	/* accept failed for want of a resource */
static struct conn *conns;
static int nconns;
static const struct control_events *up;	/* set once by main.c */

void control_set_events(const struct control_events *ev)
{
	up = ev;
}
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static bool group_set;
static gid_t group_id;
static dev_t sock_dev;		/* the file we bound: removed at exit only if */
static ino_t sock_ino;		/* it is still ours */

int control_fd(void)
{
	return listener.fd;
}

const char *control_path(void)
{
	return sock_path;
}

static void conn_free(struct conn *c)
{
	bool big = c->in.cap + c->out.cap > CONN_TRIM_BYTES;

	up->closed(c);
	for (struct conn **pp = &conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	nconns--;
	if (c->following)
		svclog_unfollow(c->following, &c->follow);
	for (int i = 0; i < c->nwait; i++)
		free(c->wait_names[i]);
	free(c->wait_names);
	timer_cancel(&c->t_timeout);
	loop_del(&c->w);
	close(c->w.fd);
	buf_free(&c->in);
	buf_free(&c->out);
	free(c);
	if (big)
		up->released();
}

/* Writes what the socket takes; the rest waits for EPOLLOUT. */
static void conn_flush(struct conn *c)
{
	while (c->out.len) {
		ssize_t n = send(c->w.fd, c->out.data, c->out.len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n > 0) {
			buf_consume(&c->out, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		conn_free(c);	/* the client went away */
		return;
	}
	if (!c->out.len && c->closing) {
		conn_free(c);
		return;
	}
	loop_mod(&c->w, c->out.len ? EPOLLIN | EPOLLOUT : (c->closing ? EPOLLOUT : EPOLLIN));
}

void conn_begin(struct conn *c, struct proto_writer *w, enum proto_kind kind, int status, const char *msg)
{
	proto_reply_begin(w, &c->out, kind, status, msg);
}

void conn_end(struct conn *c, struct proto_writer *w)
{
	if (!proto_reply_end(w)) {
		struct proto_writer e;

		proto_reply_begin(&e, &c->out, PK_REPLY, 1, "reply too large or out of memory in droverd");
		proto_reply_end(&e);
		c->closing = true;
	}
	if (w->b->len && ((const uint8_t *)w->b->data)[5] == PK_REPLY && !c->following)
		c->closing = true;
	conn_flush(c);
}

void conn_reply(struct conn *c, int status, const char *fmt, ...)
{
	struct proto_writer w;
	char msg[4096];
	va_list ap;

	if (c->closing)
		return;		/* answered already */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conn_begin(c, &w, PK_REPLY, status, msg);
	c->closing = true;
	conn_end(c, &w);
}

static void conn_timeout(struct timer *t)
{
	struct conn *c = (struct conn *)((char *)t - offsetof(struct conn, t_timeout));

	if (c->waiting) {
		conn_wait_fn *fn = c->waiting;

		c->waiting = NULL;
		fn(c, true);
		return;
	}
	if (!c->closing)
		conn_reply(c, 1, "no complete request within %d seconds", IDLE_MS / 1000);
}

void conn_wait(struct conn *c, conn_wait_fn *fn, char **names, int n, int kind, int64_t timeout)
{
	c->wait_names = names;
	c->nwait = n;
	c->wait_kind = kind;
	if (timeout > 0)
		timer_after(&c->t_timeout, timeout, conn_timeout);
	/* fn may answer, and the answer may free c: set c->waiting only if
	 * it did not. */
	if (!fn(c, false))
		c->waiting = fn;
}

void control_poll_waiters(void)
{
	for (struct conn *c = conns, *next; c; c = next) {
		conn_wait_fn *fn = c->waiting;

		next = c->next;
		if (!fn)
			continue;
		/* fn may answer, and the answer may free c: clear first, put
		 * back only if it did not answer. */
		c->waiting = NULL;
		if (!fn(c, false))
			c->waiting = fn;
	}
}

static void follow_line(struct follower *f, struct service *s, const struct log_entry *e)
{
	struct conn *c = (struct conn *)((char *)f - offsetof(struct conn, follow));
	struct proto_writer w;

	(void)s;
	if (c->out.len > FOLLOW_OUT_MAX) {
		c->follow_dropped++;
		return;
	}
	conn_begin(c, &w, PK_PART, 0, NULL);
	if (c->follow_dropped) {
		char note[96];

		snprintf(note, sizeof(note), "(%lu lines dropped: the client reads too slowly)",
			 c->follow_dropped);
		proto_record(&w);
		proto_int(&w, "time", e->when);
		proto_int(&w, "pid", 0);
		proto_str(&w, "line", note);
		c->follow_dropped = 0;
	}
	proto_record(&w);
	proto_int(&w, "time", e->when);
	proto_int(&w, "pid", e->pid);
	proto_strn(&w, "line", e->text, e->len);
	conn_end(c, &w);
}

/* The followed service was removed and is gone: say so and close. */
static void follow_gone(struct follower *f, struct service *s)
{
	struct conn *c = (struct conn *)((char *)f - offsetof(struct conn, follow));

	c->following = NULL;
	conn_reply(c, 0, "%s was removed", s->conf->name);
}

void conn_follow(struct conn *c, struct service *s)
{
	c->following = s;
	c->follow.fn = follow_line;
	c->follow.gone = follow_gone;
	svclog_follow(s, &c->follow);
}

static void handle_request(struct conn *c, size_t size)
{
	struct arena a = { 0 };
	char **argv;
	int argc;
	const char *err = proto_decode_request(c->in.data, size, &a, &argv, &argc);

	buf_consume(&c->in, size);
	timer_cancel(&c->t_timeout);
	if (err)
		conn_reply(c, 1, "bad request: %s", err);
	else
		up->request(c, argc, argv);
	arena_free(&a);
}

static void conn_readable(struct conn *c)
{
	char chunk[8192];
	ssize_t n;
	long size;

	while ((n = recv(c->w.fd, chunk, sizeof(chunk), MSG_DONTWAIT)) > 0) {
		if (c->waiting || c->following || c->closing)
			continue;	/* one request per connection: ignore more */
		if (!buf_add(&c->in, chunk, (size_t)n)) {
			conn_reply(c, 1, "bad request: larger than %d bytes", PROTO_REQUEST_MAX);
			return;
		}
		size = proto_frame_size(c->in.data, c->in.len, PROTO_REQUEST_MAX);
		if (size < 0) {
			conn_reply(c, 1, "bad request: bad frame length");
			return;
		}
		if (size > 0 && c->in.len >= (size_t)size) {
			if (c->in.len > (size_t)size) {
				conn_reply(c, 1, "bad request: trailing bytes after the request");
				return;
			}
			handle_request(c, (size_t)size);
			return;
		}
	}
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		conn_free(c);	/* the client hung up (or a follower quit) */
}

static void conn_event(struct watch *w, uint32_t events)
{
	struct conn *c = (struct conn *)((char *)w - offsetof(struct conn, w));

	if (events & EPOLLOUT) {
		conn_flush(c);
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		conn_readable(c);
}

/* The peer's supplementary groups: most fit the small array; for more,
 * the kernel says how many bytes it needs (ERANGE), and they go on the
 * heap (up to NGROUPS_MAX, 256 KB, which is no stack frame to make). */
static bool in_group(int fd, gid_t gid, gid_t primary)
{
	gid_t small[64], *groups = small;
	socklen_t len = sizeof(small);
	bool found = false;

	if (primary == gid)
		return true;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0 &&
	    (errno != ERANGE || !(groups = malloc(len)) ||
	     getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0))
		len = 0;
	for (size_t i = 0; i < len / sizeof(gid_t) && !found; i++)
		found = groups[i] == gid;
	if (groups != small)
		free(groups);
	return found;
}

static bool authorized(struct conn *c, const struct ucred *cr)
{
	return cr->uid == 0 || cr->uid == geteuid() || (group_set && in_group(c->w.fd, group_id, cr->gid));
}

/* A connection record for fd, watched for requests; NULL (fd closed) when
 * that cannot be done. */
static struct conn *conn_new(int fd)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c) {
		close(fd);
		return NULL;
	}
	c->in.max = PROTO_REQUEST_MAX + 4;
	c->out.max = OUT_MAX;
	c->next = conns;
	conns = c;
	nconns++;
	if (loop_add(&c->w, fd, EPOLLIN, conn_event) < 0) {
		c->w.fd = fd;
		conn_free(c);
		return NULL;
	}
	return c;
}

static void accept_one(int fd)
{
	struct conn *c = conn_new(fd);
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (!c)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		conn_reply(c, 1, "permission denied: cannot read your credentials");
		return;
	}
	c->uid = cr.uid;
	c->pid = cr.pid;
	if (!authorized(c, &cr)) {
		log_warn("control: uid %u (pid %d) was refused", (unsigned)cr.uid, (int)cr.pid);
		conn_reply(c, 1, "permission denied: uid %u may not control droverd (root, uid %u%s%s%s may)",
			   (unsigned)cr.uid, (unsigned)geteuid(), group_set ? " and members of group " : "",
			   group_set && getgrgid(group_id) ? getgrgid(group_id)->gr_name : "",
			   group_set && !getgrgid(group_id) ? "(gid)" : "");
		return;
	}
	if (nconns > CONN_MAX) {
		conn_reply(c, 1, "droverd is busy: more than %d control connections", CONN_MAX);
		return;
	}
	timer_after(&c->t_timeout, IDLE_MS, conn_timeout);
}

static void listener_event(struct watch *w, uint32_t events);

static void listener_retry(struct timer *t)
{
	(void)t;
	if (!paused && listener.fd >= 0 && !listener.active)
		loop_add(&listener, listener.fd, EPOLLIN, listener_event);
}

/* Out of descriptors or memory: the connection stays in the backlog, and
 * the listener is not watched until the retry (a level-triggered listener
 * with a pending connection would wake the loop at once, for ever). */
static void listener_short(int err)
{
	char why[128];

	snprintf(why, sizeof(why), "%s; clients wait in the backlog", strerror(err));
	loop_del(&listener);
	scarce_fail(&short_of, listener_retry, "control: cannot accept a connection", why);
}

static void listener_event(struct watch *w, uint32_t events)
{
	(void)events;
	for (int i = 0; i < 16; i++) {
		int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && scarce_errno(errno))
				listener_short(errno);	/* EAGAIN: none pending */
			return;
		}
		scarce_ok(&short_of, "control: accepting connections");
		accept_one(fd);
	}
}

static int bind_at(const char *path, const struct sockaddr_un *sa, char *err, size_t len)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	mode_t old = umask(group_set ? 0117 : 0177);

	if (fd < 0 || bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 || listen(fd, 64) < 0) {
		umask(old);
		snprintf(err, len, "cannot listen on control socket %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	umask(old);
	return fd;
}

/* The directory is reached (and made) without following a link a user
 * could have planted, the socket file is looked at, replaced and given its
 * group through it (fsafe.h): control_group never lands on a file that a
 * link or a swap put there. */
static int bind_control(const char *path, char *err, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char name[NAME_MAX + 1], why[FSAFE_WHY];
	int fd = -1, dfd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, len, "control socket path %s is too long", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path));
	if ((dfd = fsafe_open_dir(path, true, name, sizeof(name), why)) < 0) {
		if (why[0])
			snprintf(err, len, "control socket %s: refusing: %s", path, why);
		else
			snprintf(err, len, "cannot create the directory of %s: %s", path, strerror(errno));
		return -1;
	}
	switch (fsafe_clear_socket(dfd, name, &sa, sizeof(sa))) {
	case FSAFE_NOT_SOCKET:
		snprintf(err, len, "%s exists and is not a socket", path);
		break;
	case FSAFE_LIVE:
		snprintf(err, len, "another droverd is already listening on %s", path);
		break;
	case FSAFE_FREE:
		fd = bind_at(path, &sa, err, len);
		break;
	}
	if (fd >= 0 && fsafe_own_socket(dfd, name, (uid_t)-1, group_set ? group_id : (gid_t)-1, &sock_dev,
					&sock_ino, why) < 0) {
		snprintf(err, len, "control socket %s: %s", path, why);
		close(fd);
		fd = -1;
		fsafe_unlink_socket(path, sock_dev, sock_ino);	/* if it was ours */
	}
	close(dfd);
	return fd;
}

int control_open(const char *path, bool has_group, gid_t group, int adopt_fd, char *err, size_t len)
{
	struct stat st;
	int fd;

	group_set = has_group;
	group_id = group;
	snprintf(sock_path, sizeof(sock_path), "%s", path);
	fd = adopt_fd >= 0 ? adopt_fd : bind_control(path, err, len);
	if (fd < 0)
		return -1;
	if (adopt_fd >= 0 && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		/* Handed over: the file at the path is the one to remove at
		 * exit, as if this droverd had made it. */
		sock_dev = st.st_dev;
		sock_ino = st.st_ino;
	}
	if (loop_add(&listener, fd, EPOLLIN, listener_event) < 0) {
		snprintf(err, len, "cannot watch the control socket: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return 0;
}

int conn_fd(const struct conn *c)
{
	return c->w.fd;
}

void control_answer_fd(int fd, int status, const char *fmt, ...)
{
	struct conn *c;
	char msg[1024];
	va_list ap;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	if (!(c = conn_new(fd)))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conn_reply(c, status, "%s", msg);
}

static bool keep_file;

void control_keep_file(bool keep)
{
	keep_file = keep;
}

void control_pause(bool pause)
{
	paused = pause;
	if (listener.fd < 0)
		return;
	if (pause)
		loop_del(&listener);
	else if (!listener.active)
		loop_add(&listener, listener.fd, EPOLLIN, listener_event);
}

void control_close(void)
{
	scarce_cancel(&short_of);
	if (listener.fd < 0)
		return;
	loop_del(&listener);
	close(listener.fd);
	listener.fd = -1;
	/* Another droverd may have taken the path since: leave its socket. */
	if (!keep_file)
		fsafe_unlink_socket(sock_path, sock_dev, sock_ino);
}

void control_flush_all(void)
{
	while (conns) {
		struct conn *c = conns;

		if (c->out.len)
			send(c->w.fd, c->out.data, c->out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
		conn_free(c);
	}
}
