/* listen.c - see listen.h. */
#include "listen.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fsafe.h"
#include "log.h"
#include "sdnotify.h"

static bool ensure_array(struct service *s)
{
	int n = s->conf->nlisten;

	if (s->lis || n == 0)
		return true;
	if (!(s->lis = calloc((size_t)n, sizeof(*s->lis))))
		return false;
	s->nlis = n;
	for (int i = 0; i < n; i++) {
		s->lis[i].fd = -1;
		s->lis[i].conf = &s->conf->listen[i];
		s->lis[i].svc = s;
	}
	return true;
}

static int setopt(int fd, int level, int name, int value)
{
	return setsockopt(fd, level, name, &value, sizeof(value));
}

static const char *prepare(int fd, const struct listen_conf *l)
{
	if (l->family != AF_UNIX && l->socktype == SOCK_STREAM && setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0)
		return "setsockopt SO_REUSEADDR";
	if (l->family == AF_INET6 && setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, l->dualstack ? 0 : 1) < 0)
		return "setsockopt IPV6_V6ONLY";
	if (l->reuseport && setopt(fd, SOL_SOCKET, SO_REUSEPORT, 1) < 0)
		return "setsockopt SO_REUSEPORT";
	if (l->freebind && l->family == AF_INET && setopt(fd, IPPROTO_IP, IP_FREEBIND, 1) < 0)
		return "setsockopt IP_FREEBIND";
	if (l->freebind && l->family == AF_INET6 && setopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, 1) < 0)
		return "setsockopt IPV6_FREEBIND";
	return NULL;
}

static bool unix_path(const struct listen_conf *l)
{
	return l->family == AF_UNIX && ((const struct sockaddr_un *)&l->addr)->sun_path[0] != '\0';
}

static const char *bind_at(int fd, const struct listen_conf *l)
{
	mode_t old = umask(0777 & ~(l->has_mode ? l->mode : 0666));
	int rc = bind(fd, (const struct sockaddr *)&l->addr, l->addrlen);

	umask(old);
	return rc < 0 ? strerror(errno) : NULL;
}

/* A unix path: its directory is reached without following a link that a
 * user could have planted (fsafe.h), and what is at the path is looked at
 * through it. A socket file left by a previous run is replaced; anything
 * else (a live socket, a regular file, a link) is not touched. The file
 * gets its mode at bind time (the umask is droverd's alone: it is
 * single-threaded), then its owner, on the socket file checked to be the
 * one bound: never a moment with looser access, never a chown through a
 * link. Returns why not, in why, or NULL. */
static const char *bind_unix(int fd, const struct listen_conf *l, struct listener *out, char *why)
{
	const struct sockaddr_un *un = (const struct sockaddr_un *)&l->addr;
	char name[NAME_MAX + 1], reason[FSAFE_WHY];
	int dfd = fsafe_open_dir(un->sun_path, false, name, sizeof(name), reason);
	const char *bad = NULL;
	int e;

	/* errno says what kind of failure each is: a refusal is not a
	 * shortage to retry (svc_listen_failed). */
	if (dfd < 0) {
		/* A missing directory: what bind() would say. */
		snprintf(why, FSAFE_WHY, reason[0] ? "refusing: %s" : "bind: %s", reason[0] ? reason : strerror(errno));
		if (reason[0])
			errno = ELOOP;
		return why;
	}
	switch (fsafe_clear_socket(dfd, name, un, l->addrlen)) {
	case FSAFE_NOT_SOCKET:
		bad = "the path exists and is not a socket (not removed)";
		errno = EEXIST;
		break;
	case FSAFE_LIVE:
		bad = "another process is listening on it";
		errno = EADDRINUSE;
		break;
	case FSAFE_FREE:
		break;
	}
	if (!bad && (bad = bind_at(fd, l)))
		snprintf(why, FSAFE_WHY, "bind: %s", bad), bad = why;
	if (!bad && fsafe_own_socket(dfd, name, l->has_owner ? l->owner : (uid_t)-1,
				     l->has_group ? l->group : (gid_t)-1, &out->dev, &out->ino, reason) < 0)
		snprintf(why, FSAFE_WHY, "%s", reason), bad = why, errno = EPERM;
	e = errno;
	close(dfd);
	errno = e;
	return bad;
}

static int open_one(const struct listen_conf *l, struct listener *out, char *err, size_t len)
{
	int fd = socket(l->family, l->socktype | SOCK_CLOEXEC, 0);
	const char *step = NULL;
	char why[FSAFE_WHY];

	if (fd < 0) {
		snprintf(err, len, "cannot listen on %s: socket: %s", l->text, strerror(errno));
		return -1;	/* errno: the cause (the caller may retry EMFILE) */
	}
	if (!(step = prepare(fd, l))) {
		if (unix_path(l) && (step = bind_unix(fd, l, out, why))) {
			int e = errno;

			snprintf(err, len, "cannot listen on %s: %s", l->text, step);
			close(fd);
			errno = e;
			return -1;
		}
		if (!unix_path(l) && bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) < 0)
			step = "bind";
	}
	if (!step && l->socktype == SOCK_STREAM && listen(fd, l->backlog ? l->backlog : 4096) < 0)
		step = "listen";
	if (step) {
		int e = errno;

		snprintf(err, len, "cannot listen on %s: %s: %s", l->text, step, strerror(e));
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* fdstore = yes: systemd keeps a copy of every listener, named
 * SERVICE.INDEX, and passes it back if droverd has to start again. */
static bool fdstore;

void listen_use_fdstore(bool on)
{
	fdstore = on;
}

static void store(struct service *s, int i)
{
	if (!fdstore || !sdnotify_active() || s->lis[i].stored)
		return;
	if (sdnotify_send_fd(s->lis[i].fd, "FDSTORE=1\nFDNAME=%s.%d", s->conf->name, i) == 0)
		s->lis[i].stored = true;
	else
		log_warn("%s: cannot store listener %s with systemd", s->conf->name, s->lis[i].conf->text);
}

static void unstore(struct listener *l)
{
	if (l->stored && l->svc)
		sdnotify_send("FDSTOREREMOVE=1\nFDNAME=%s.%d", l->svc->conf->name, (int)(l - l->svc->lis));
	l->stored = false;
}

int listen_open(struct service *s, char *err, size_t len)
{
	if (!ensure_array(s)) {
		snprintf(err, len, "cannot listen: out of memory");
		errno = ENOMEM;
		return -1;
	}
	for (int i = 0; i < s->nlis; i++) {
		if (s->lis[i].fd >= 0)
			continue;
		if ((s->lis[i].fd = open_one(s->lis[i].conf, &s->lis[i], err, len)) < 0)
			return -1;
		log_info("%s: listening on %s", s->conf->name, s->lis[i].conf->text);
		store(s, i);
	}
	return 0;
}

static bool keep_files;

void listen_keep_files(bool keep)
{
	keep_files = keep;
}

static void close_one(struct listener *l)
{
	const struct sockaddr_un *un = (const struct sockaddr_un *)&l->conf->addr;

	loop_del(&l->w);
	if (l->fd < 0)
		return;
	if (!keep_files)
		unstore(l);
	close(l->fd);
	l->fd = -1;
	if (!keep_files && unix_path(l->conf))
		fsafe_unlink_socket(un->sun_path, l->dev, l->ino);
}

/* A retired socket outlives the configuration its line is in: the service
 * points into the new one, and the old one is freed when the last service
 * that uses it goes. It keeps its own copy of what closing it needs. */
static const struct listen_conf *detach(const struct listen_conf *c)
{
	struct listen_conf *d = malloc(sizeof(*d));

	if (!d)
		return NULL;
	*d = *c;
	d->fdname = d->text = d->key = NULL;	/* in the old configuration */
	return d;
}

static void free_retired(struct service *s)
{
	for (int i = 0; i < s->nretired; i++) {
		close_one(&s->retired[i]);
		free((void *)s->retired[i].conf);	/* detach()'s copy */
	}
	free(s->retired);
	s->retired = NULL;
	s->nretired = 0;
}

void listen_close(struct service *s)
{
	for (int i = 0; i < s->nlis; i++)
		close_one(&s->lis[i]);
	free(s->lis);
	s->lis = NULL;
	s->nlis = 0;
	free_retired(s);
}

/* One socket from an old record to a new one, still watched if it was (a
 * pool waiting for a connection, accept mode, a demand start). */
static void move(struct listener *to, struct listener *from)
{
	bool watched = from->w.active;
	uint32_t events = from->w.events;
	watch_fn *fn = from->w.fn;

	loop_del(&from->w);
	to->fd = from->fd;
	to->dev = from->dev;
	to->ino = from->ino;
	to->stored = from->stored;
	from->fd = -1;
	if (watched)
		loop_add(&to->w, to->fd, events, fn);
}

/* Moves the open sockets of from[] that s still wants into s: the same key,
 * or the same address and options but the backlog (then re-listened). */
static void take_matching(struct service *s, struct listener *from, int nfrom)
{
	for (int i = 0; s->lis && i < s->nlis; i++)
		for (int j = 0; j < nfrom; j++) {
			if (s->lis[i].fd >= 0 || from[j].fd < 0 || !listen_conf_interchangeable(from[j].conf, s->lis[i].conf))
				continue;
			if (strcmp(from[j].conf->key, s->lis[i].conf->key) != 0 && s->lis[i].conf->socktype == SOCK_STREAM)
				listen(from[j].fd, s->lis[i].conf->backlog ? s->lis[i].conf->backlog : 4096);
			move(&s->lis[i], &from[j]);
			break;
		}
}

static bool has_processes(const struct service *s)
{
	for (const struct proc *p = s->procs; p; p = p->next)
		if (!p->exited)
			return true;
	return false;
}

/* Sockets a reload removed stay open while processes that got them may
 * still use them (a unix socket's file would vanish under them). */
static void retire(struct service *s, struct listener *old, int nold)
{
	struct listener *v;
	int keep = 0;

	/* One whose address the new definition binds must go now, or the new
	 * one could not bind (options other than backlog changed). */
	for (int j = 0; j < nold; j++)
		for (int i = 0; old[j].fd >= 0 && i < s->nlis; i++)
			if (listen_conf_same_address(old[j].conf, s->lis[i].conf))
				close_one(&old[j]);
	for (int j = 0; j < nold; j++)
		keep += old[j].fd >= 0;
	if (!keep || !has_processes(s) ||
	    !(v = realloc(s->retired, sizeof(*v) * (size_t)(s->nretired + keep)))) {
		for (int j = 0; j < nold; j++)
			close_one(&old[j]);
		free(old);
		return;
	}
	s->retired = v;
	for (int j = 0; j < nold; j++) {
		const struct listen_conf *copy = old[j].fd >= 0 ? detach(old[j].conf) : NULL;

		if (!copy) {
			close_one(&old[j]);
			continue;
		}
		loop_del(&old[j].w);
		old[j].conf = copy;
		v[s->nretired++] = old[j];
	}
	free(old);
}

void listen_close_retired(struct service *s)
{
	for (const struct proc *p = s->procs; p; p = p->next)
		if (p->gen != s->generation)
			return;		/* an older generation still runs */
	free_retired(s);
}

void listen_rebuild(struct service *s)
{
	struct listener *old = s->lis;
	int nold = s->nlis;

	s->lis = NULL;
	s->nlis = 0;
	if (!ensure_array(s)) {
		log_error("%s: out of memory rebuilding its listeners; they are closed", s->conf->name);
		s->lis = NULL;
	}
	take_matching(s, old, nold);
	retire(s, old, nold);
}

void listen_take(struct service *s, struct service *from)
{
	if (from->lis && ensure_array(s))
		take_matching(s, from->lis, from->nlis);
}

void listen_set_nonblocking(struct service *s, bool on)
{
	for (int i = 0; i < s->nlis; i++) {
		int fl = s->lis[i].fd >= 0 ? fcntl(s->lis[i].fd, F_GETFL) : -1;

		if (fl >= 0)
			fcntl(s->lis[i].fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
	}
}

const char *listen_adopt_fd(struct service *s, int index, int fd, dev_t dev, ino_t ino, const char *key)
{
	if (!ensure_array(s))
		return "out of memory restoring a listener";
	if (index < 0 || index >= s->nlis || strcmp(s->lis[index].conf->key, key) != 0)
		return "a listener that is not in the configuration";
	s->lis[index].fd = fd;
	s->lis[index].dev = dev;
	s->lis[index].ino = ino;
	return NULL;
}

int listen_count(const struct service *s)
{
	return s->lis ? s->nlis : 0;
}

int listen_fd(const struct service *s, int i)
{
	return s->lis[i].fd;
}

const char *listen_fdnames(const struct service *s)
{
	static char buf[LISTEN_MAX * 256 + 32];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "LISTEN_FDNAMES=");

	for (int i = 0; i < listen_count(s) && n < sizeof(buf); i++) {
		const char *name = s->lis[i].conf->fdname ? s->lis[i].conf->fdname : s->conf->name;

		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? ":" : "", name);
	}
	return buf;
}

void listen_describe(const struct service *s, char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	for (int i = 0; i < s->conf->nlisten && n < len; i++)
		n += (size_t)snprintf(out + n, len - n, "%s%s", i ? " " : "", s->conf->listen[i].text);
}

/* --- listeners passed to droverd itself (systemd) ----------------------------- */

static bool bound_to(int fd, const struct listen_conf *l)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int type = 0;
	socklen_t tl = sizeof(type);

	memset(&ss, 0, sizeof(ss));
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0)
		return false;
	return type == l->socktype && ss.ss_family == l->family && len == l->addrlen &&
	       memcmp(&ss, &l->addr, len) == 0;
}

/* A stored name "SERVICE.INDEX", a listen line's FDNAME, or else any
 * listen line bound to the same address: the first free one that fits. */
static struct listener *match_passed(struct service *all, int fd, const char *name)
{
	for (struct service *s = all; s; s = s->next) {
		if (!ensure_array(s))
			continue;
		for (int i = 0; i < s->nlis; i++) {
			struct listener *l = &s->lis[i];
			char stored[SVC_NAME_MAX + 16];

			if (l->fd >= 0 || !bound_to(fd, l->conf))
				continue;
			snprintf(stored, sizeof(stored), "%s.%d", s->conf->name, i);
			if (!*name || strcmp(name, stored) == 0 ||
			    (l->conf->fdname && strcmp(name, l->conf->fdname) == 0))
				return l;
		}
	}
	return NULL;
}

static struct listener *match_by_address(struct service *all, int fd)
{
	for (struct service *s = all; s; s = s->next)
		for (int i = 0; s->lis && i < s->nlis; i++)
			if (s->lis[i].fd < 0 && bound_to(fd, s->lis[i].conf))
				return &s->lis[i];
	return NULL;
}

void listen_adopt_passed(struct service *all)
{
	const char *pid = getenv("LISTEN_PID"), *nfds = getenv("LISTEN_FDS"), *names = getenv("LISTEN_FDNAMES");
	int n = nfds ? atoi(nfds) : 0;
	const char *p = names ? names : "";

	if (!pid || atol(pid) != (long)getpid() || n <= 0 || n > 4096)
		n = 0;
	for (int i = 0; i < n; i++) {
		int fd = 3 + i;
		char name[256] = "";
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		struct listener *l;
		struct stat st;

		if (len < sizeof(name))
			memcpy(name, p, len), name[len] = '\0';
		p = end ? end + 1 : p + len;
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		if (!(l = match_passed(all, fd, name)) && !(l = match_by_address(all, fd))) {
			log_warn("systemd passed descriptor %d (%s) that no listen line wants: closing it", fd,
				 *name ? name : "unnamed");
			close(fd);
			continue;
		}
		l->fd = fd;
		l->stored = strchr(name, '.') != NULL;	/* it came from the store */
		if (l->conf->family == AF_UNIX && ((const struct sockaddr_un *)&l->conf->addr)->sun_path[0] &&
		    lstat(((const struct sockaddr_un *)&l->conf->addr)->sun_path, &st) == 0) {
			l->dev = st.st_dev;
			l->ino = st.st_ino;
		}
		log_info("%s: listening on %s (passed by systemd)", l->svc->conf->name, l->conf->text);
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}
