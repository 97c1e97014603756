/* svclog.c - see svclog.h.
 *
 * The ring holds records [header][text] back to back in a circular byte
 * array; the oldest records are dropped to make room. */
#include "svclog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsafe.h"
#include "log.h"

struct rec_header {
	int64_t when;
	int32_t pid;
	uint32_t len;
};

struct logfile {
	char *path;
	int fd;
	int dfd;		/* the directory it is in (O_PATH), see file_open() */
	char name[NAME_MAX + 1];	/* its name there */
	uint64_t size;
	int last_errno;		/* -1: refused */
	bool refused;		/* wait for a reopen, do not retry each line */
	unsigned long dropped;
};

struct svc_log {
	char *ring;
	size_t head, used;
	unsigned nrec;
	struct logfile file;
	struct follower *followers;
};

static struct svc_log *get_log(struct service *s)
{
	if (!s->log && (s->log = calloc(1, sizeof(*s->log))))
		s->log->file.fd = s->log->file.dfd = -1;
	return s->log;
}

static void ring_copy_in(struct svc_log *l, size_t off, const void *src, size_t n)
{
	size_t first = RING_BYTES - off < n ? RING_BYTES - off : n;

	memcpy(l->ring + off, src, first);
	memcpy(l->ring, (const char *)src + first, n - first);
}

static void ring_copy_out(const struct svc_log *l, size_t off, void *dst, size_t n)
{
	size_t first = RING_BYTES - off < n ? RING_BYTES - off : n;

	memcpy(dst, l->ring + off, first);
	memcpy((char *)dst + first, l->ring, n - first);
}

static void ring_drop_oldest(struct svc_log *l)
{
	struct rec_header h;
	size_t size;

	ring_copy_out(l, l->head, &h, sizeof(h));
	size = sizeof(h) + h.len;
	l->head = (l->head + size) % RING_BYTES;
	l->used -= size;
	l->nrec--;
}

static void ring_push(struct svc_log *l, const struct log_entry *e)
{
	struct rec_header h = { e->when, e->pid, (uint32_t)e->len };
	size_t need;

	if (!l->ring && !(l->ring = malloc(RING_BYTES)))
		return;
	if (h.len > RING_BYTES / 4)
		h.len = RING_BYTES / 4;
	need = sizeof(h) + h.len;
	while (RING_BYTES - l->used < need)
		ring_drop_oldest(l);
	ring_copy_in(l, (l->head + l->used) % RING_BYTES, &h, sizeof(h));
	ring_copy_in(l, (l->head + l->used + sizeof(h)) % RING_BYTES, e->text, h.len);
	l->used += need;
	l->nrec++;
}

void svclog_tail(struct service *s, int n, void (*fn)(const struct log_entry *e, void *arg), void *arg)
{
	struct svc_log *l = s->log;
	size_t off;
	char text[RING_BYTES / 4];

	if (!l || !l->ring)
		return;
	off = l->head;
	for (unsigned i = 0; i < l->nrec; i++) {
		struct rec_header h;
		struct log_entry e;

		ring_copy_out(l, off, &h, sizeof(h));
		if (n < 0 || i + (unsigned)n >= l->nrec) {
			ring_copy_out(l, (off + sizeof(h)) % RING_BYTES, text, h.len);
			e = (struct log_entry){ h.when, h.pid, text, h.len };
			fn(&e, arg);
		}
		off = (off + sizeof(h) + h.len) % RING_BYTES;
	}
}

/* File destination, rotated by size: PATH -> PATH.1 -> ... -> PATH.keep.
 *
 * droverd writes it as root, often in a directory the service's user owns
 * (/var/log/app), so that user may plant links there. The directory is
 * reached by fsafe_open_dir() and kept open; the file is opened, rotated
 * and created relative to it, never through a link, and must be a regular
 * file with one link, owned by droverd's uid or the service's user (a new
 * one is created for the service's user and group, mode 0640). A file
 * refused for that is not retried line by line, only when its log is
 * opened again: SIGUSR1, a reload, a rotation. */
static void file_report(struct service *s, struct logfile *f, int err)
{
	if (err == f->last_errno)
		return;
	f->last_errno = err;
	if (err)
		log_error("%s: cannot write log file %s: %s; dropping its output until it can",
			  s->conf->name, f->path, strerror(err));
	else
		log_info("%s: writing log file %s again (%lu lines were dropped)", s->conf->name,
			 f->path, f->dropped);
	if (!err)
		f->dropped = 0;
}

static void file_refuse(struct service *s, struct logfile *f, const char *why)
{
	f->refused = true;
	f->last_errno = -1;	/* the next good write says so */
	log_error("%s: log file %s: refusing: %s; dropping its output until it is reopened "
		  "(SIGUSR1 or drover reload)", s->conf->name, f->path, why);
}

/* Who may own the file droverd appends to: droverd's uid (root, who made
 * it) or the service's own user (whose directory it is). Anyone else's
 * file is not droverd's to write into. */
static const char *check_file(const struct stat *st, const struct svc_conf *c, char *why)
{
	uid_t me = geteuid();
	char self[32];

	if (!S_ISREG(st->st_mode))
		return "is not a regular file";
	if (st->st_nlink != 1) {
		snprintf(why, FSAFE_WHY, "has %lu links", (unsigned long)st->st_nlink);
		return why;
	}
	if (st->st_uid == me || (c->has_user && st->st_uid == c->uid))
		return NULL;
	if (me == 0)
		snprintf(self, sizeof(self), "root");
	else
		snprintf(self, sizeof(self), "uid %u", (unsigned)me);
	if (c->has_user && c->uid != me)
		snprintf(why, FSAFE_WHY, "owned by uid %u, expected %s or %s", (unsigned)st->st_uid, self, c->user);
	else
		snprintf(why, FSAFE_WHY, "owned by uid %u, expected %s", (unsigned)st->st_uid, self);
	return why;
}

/* The file `name` in dfd, never through a link; a new one is the
 * service's. -1 with why[0] set (refused) or errno. */
static int open_in(int dfd, const char *name, const struct svc_conf *c, struct stat *st, char *why)
{
	const int flags = O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
	const char *bad = NULL;
	int fd = -1;

	why[0] = '\0';
	/* O_EXCL tells a file made now from one found: a few tries, as
	 * someone may create or remove it in between. */
	for (int i = 0; i < 3 && fd < 0; i++) {
		if ((fd = openat(dfd, name, flags)) >= 0 || errno != ENOENT)
			break;
		if ((fd = openat(dfd, name, flags | O_CREAT | O_EXCL, 0640)) >= 0) {
			if ((c->has_user || c->has_group) &&
			    fchown(fd, c->has_user ? c->uid : (uid_t)-1, c->gid) < 0)
				log_warn("%s: cannot give its new log file %s to uid %u gid %u: %s", c->name,
					 c->log_path, (unsigned)c->uid, (unsigned)c->gid, strerror(errno));
		} else if (errno != EEXIST) {
			break;
		}
	}
	if (fd < 0) {
		if (errno == ELOOP)
			snprintf(why, FSAFE_WHY, "is a symbolic link");
		return -1;
	}
	if (fstat(fd, st) < 0 || (bad = check_file(st, c, why))) {
		if (why[0] == '\0' || bad != why)
			snprintf(why, FSAFE_WHY, "%s", bad ? bad : strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Opens the file in the directory already held (after a rotation). */
static void file_open_in(struct service *s, struct logfile *f)
{
	char why[FSAFE_WHY];
	struct stat st;

	if ((f->fd = open_in(f->dfd, f->name, s->conf, &st, why)) < 0) {
		if (why[0])
			file_refuse(s, f, why);
		else
			file_report(s, f, errno);
		return;
	}
	f->refused = false;
	f->size = (uint64_t)st.st_size;
}

static void file_shut(struct logfile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->dfd >= 0)
		close(f->dfd);
	f->fd = f->dfd = -1;
}

/* Reaches the directory again from the path, then opens the file. */
static void file_open(struct service *s, struct logfile *f)
{
	char why[FSAFE_WHY];

	file_shut(f);
	f->refused = false;
	if (!f->path)
		return;		/* no memory for its name: nowhere to write */
	f->dfd = fsafe_open_dir(f->path, false, f->name, sizeof(f->name), why);
	if (f->dfd < 0) {
		if (why[0])
			file_refuse(s, f, why);
		else
			file_report(s, f, errno);
		return;
	}
	file_open_in(s, f);
}

/* Renames within the directory held: renameat() moves a link planted at
 * PATH.N itself, never what it points to. */
static void file_rotate(struct service *s, struct logfile *f)
{
	unsigned keep = s->conf->log_keep;
	char from[sizeof(f->name) + 16], to[sizeof(f->name) + 16];

	for (unsigned i = keep; i > 1; i--) {
		snprintf(from, sizeof(from), "%s.%u", f->name, i - 1);
		snprintf(to, sizeof(to), "%s.%u", f->name, i);
		renameat(f->dfd, from, f->dfd, to);
	}
	snprintf(to, sizeof(to), "%s.1", f->name);
	if (keep)
		renameat(f->dfd, f->name, f->dfd, to);
	else
		unlinkat(f->dfd, f->name, 0);
	close(f->fd);
	f->fd = -1;
	file_open_in(s, f);
}

static void file_write(struct service *s, struct logfile *f, const struct log_entry *e)
{
	char line[4096 + 256], stamp[40];
	int n;
	ssize_t w;

	if (f->fd < 0 && !f->refused)
		file_open(s, f);
	if (f->fd < 0) {
		f->dropped++;
		return;
	}
	log_timestamp(stamp, sizeof(stamp));
	n = snprintf(line, sizeof(line), "%s %s[%d]: %.*s\n", stamp, s->conf->name, (int)e->pid,
		     (int)e->len, e->text);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = (int)sizeof(line) - 1, line[n - 1] = '\n';
	if (s->conf->log_max_size && f->size + (uint64_t)n > s->conf->log_max_size && f->size > 0)
		file_rotate(s, f);
	if (f->fd < 0 || (w = write(f->fd, line, (size_t)n)) < 0) {
		f->dropped++;
		if (f->fd >= 0)
			file_report(s, f, errno);
		return;
	}
	f->size += (uint64_t)w;
	if (f->last_errno)
		file_report(s, f, 0);
}

void svclog_line(struct service *s, pid_t pid, const char *text, size_t len)
{
	struct timespec ts;
	struct log_entry e;
	struct svc_log *l;

	if (s->conf->log == LOG_NULL)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	e = (struct log_entry){ (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, pid, text, len };
	if (!(l = get_log(s)))
		return;
	ring_push(l, &e);
	if (s->conf->log == LOG_FILE)
		file_write(s, &l->file, &e);
	else
		log_output(s->conf->name, pid, text, len);
	for (struct follower *f = l->followers, *next; f; f = next) {
		next = f->next;
		f->fn(f, s, &e);
	}
}

void svclog_restore(struct service *s, const struct log_entry *e)
{
	struct svc_log *l = get_log(s);

	if (l)
		ring_push(l, e);
}

void svclog_follow(struct service *s, struct follower *f)
{
	struct svc_log *l = get_log(s);

	if (l) {
		f->next = l->followers;
		l->followers = f;
	}
}

void svclog_unfollow(struct service *s, struct follower *f)
{
	if (!s->log)
		return;
	for (struct follower **pp = &s->log->followers; *pp; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			return;
		}
}

static void file_close(struct logfile *f)
{
	file_shut(f);
	free(f->path);
	f->path = NULL;
}

void svclog_configure(struct service *s)
{
	struct svc_log *l = s->log;
	const char *want = s->conf->log == LOG_FILE ? s->conf->log_path : NULL;

	if (!want) {
		if (l)
			file_close(&l->file);
		return;
	}
	if (!(l = get_log(s)))
		return;
	if (l->file.path && strcmp(l->file.path, want) == 0) {
		if (l->file.fd < 0)
			file_open(s, &l->file);	/* a reload retries a refused file */
		return;
	}
	file_close(&l->file);
	l->file.path = strdup(want);
	l->file.last_errno = 0;
	if (l->file.path)
		file_open(s, &l->file);
}

void svclog_reopen_all(struct service *all)
{
	for (struct service *s = all; s; s = s->next) {
		struct logfile *f = s->log ? &s->log->file : NULL;

		if (f && f->path)
			file_open(s, f);
	}
}

void svclog_free(struct service *s)
{
	if (!s->log)
		return;
	while (s->log->followers) {
		struct follower *f = s->log->followers;

		s->log->followers = f->next;
		f->gone(f, s);
	}
	file_close(&s->log->file);
	free(s->log->ring);
	free(s->log);
	s->log = NULL;
}
