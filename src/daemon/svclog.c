/* svclog.c - see svclog.h.
 *
 * The ring holds records [header][text] back to back in a circular byte
 * array; the oldest records are dropped to make room. */
#include "svclog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct rec_header {
	int64_t when;
	int32_t pid;
	uint32_t len;
};

struct logfile {
	char *path;
	int fd;
	uint64_t size;
	int last_errno;
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
		s->log->file.fd = -1;
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

/* File destination, rotated by size: PATH -> PATH.1 -> ... -> PATH.keep. */
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

static void file_open(struct service *s, struct logfile *f)
{
	struct stat st;

	if (!f->path)
		return;		/* no memory for its name: nowhere to write */
	f->fd = open(f->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0640);
	if (f->fd < 0) {
		file_report(s, f, errno);
		return;
	}
	f->size = fstat(f->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static void file_rotate(struct service *s, struct logfile *f)
{
	unsigned keep = s->conf->log_keep;
	size_t n = strlen(f->path) + 16;
	char *from = malloc(n), *to = malloc(n);

	if (from && to) {
		for (unsigned i = keep; i > 1; i--) {
			snprintf(from, n, "%s.%u", f->path, i - 1);
			snprintf(to, n, "%s.%u", f->path, i);
			rename(from, to);
		}
		snprintf(to, n, "%s.1", f->path);
		if (keep)
			rename(f->path, to);
		else
			unlink(f->path);
	}
	free(from);
	free(to);
	close(f->fd);
	file_open(s, f);
}

static void file_write(struct service *s, struct logfile *f, const struct log_entry *e)
{
	char line[4096 + 256], stamp[40];
	int n;
	ssize_t w;

	if (f->fd < 0)
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
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
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
	if (l->file.path && strcmp(l->file.path, want) == 0)
		return;
	file_close(&l->file);
	l->file.path = strdup(want);
	l->file.last_errno = 0;
	if (l->file.path)
		file_open(s, &l->file);
}

void svclog_reopen_all(void)
{
	for (struct service *s = services; s; s = s->next) {
		struct logfile *f = s->log ? &s->log->file : NULL;

		if (f && f->path) {
			if (f->fd >= 0)
				close(f->fd);
			file_open(s, f);
		}
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
