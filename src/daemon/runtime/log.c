/* log.c - see log.h.
 *
 * The log never re-enters itself: a write that fails is counted by the
 * sink, not reported through the destination that just failed, and the
 * count is reported (by the sink, once) when a later write succeeds. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "escape.h"
#include "loop.h"
#include "sink.h"

enum { LINE_MAX_LOG = 4096, SYSLOG_RETRY_MS = 1000 };

static struct sink out = { .fd = -1 };
static enum log_kind kind = LOG_STDERR;
static char *file_path;
static bool verbose;

/* The destination, for the report of lines lost on it. */
static void describe(enum log_kind k, const char *path, char *buf, size_t len)
{
	if (k == LOG_SYSLOG)
		snprintf(buf, len, "syslog at /dev/log");
	else if (k == LOG_FILE)
		snprintf(buf, len, "file %s", path);
	else
		snprintf(buf, len, "standard error");
}

static void say_losses(const char *where, struct sink_losses l)
{
	if (l.failed)
		log_warn("%lu log line%s could not be written to %s (%s)", l.failed,
			 l.failed == 1 ? "" : "s", where, strerror(l.err));
	if (l.dropped)
		log_warn("log destination: %lu lines dropped", l.dropped);
}

/* Called by the sink once it writes again; what this logs cannot come
 * back here (see sink.h). */
static void sink_report(struct sink *s, struct sink_losses l)
{
	char where[PATH_MAX + 32];

	(void)s;
	describe(kind, file_path, where, sizeof(where));
	say_losses(where, l);
}

void log_init(void)
{
	int fd = fcntl(2, F_DUPFD_CLOEXEC, 3);

	/* Until sig_init() runs, a line to a pipe without reader would kill
	 * droverd: EPIPE is a lost line, never a signal. */
	signal(SIGPIPE, SIG_IGN);
	sink_attach(&out, fd >= 0 ? fd : 2);
	out.report = sink_report;
}

void log_set_verbose(bool on)
{
	verbose = on;
}

static int open_syslog(char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	snprintf(err, errlen, "cannot connect to /dev/log: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* Why droverd does not write its log at a path whose last component is
 * st; NULL: it does. */
static const char *refusal(const struct stat *st)
{
	if (S_ISREG(st->st_mode))
		return NULL;
	if (S_ISLNK(st->st_mode))
		return "it is a symbolic link (droverd does not follow links for its own log: "
		       "give the path of the file itself)";
	if (S_ISFIFO(st->st_mode))
		return "it is a FIFO, not a regular file";
	if (S_ISDIR(st->st_mode))
		return "it is a directory, not a regular file";
	if (S_ISSOCK(st->st_mode))
		return "it is a socket, not a regular file";
	return "it is a device, not a regular file";
}

/* Non-blocking (a FIFO without reader must not hang droverd), never
 * through a link, and only a regular file. */
static int open_file(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK,
		      0640);
	const char *why = NULL;
	struct stat st;
	int e = errno;

	if (fd >= 0 && fstat(fd, &st) == 0 && (why = refusal(&st)) == NULL)
		return fd;
	if (fd >= 0) {
		e = errno;
		close(fd);
	} else if (lstat(path, &st) == 0) {
		why = refusal(&st);
	}
	if (!why)
		why = strerror(e);
	snprintf(err, errlen, "cannot open log file %s: %s", path, why);
	return -1;
}

int log_check(enum log_kind k, const char *path, char *err, size_t errlen)
{
	struct stat st;
	const char *why;

	if (k != LOG_FILE || lstat(path, &st) < 0 || (why = refusal(&st)) == NULL)
		return 0;
	snprintf(err, errlen, "cannot open log file %s: %s", path, why);
	return -1;
}

/* Puts fd in place of the current descriptor. Lines lost on the old
 * destination are reported on the new one, naming the old. */
static void replace(int fd, enum log_kind k, const char *path)
{
	char where[PATH_MAX + 32];
	struct sink_losses l;

	describe(kind, file_path, where, sizeof(where));
	l = sink_take_losses(&out);
	sink_close(&out);
	sink_attach(&out, fd);
	if (file_path != path) {
		free(file_path);
		file_path = k == LOG_FILE ? strdup(path) : NULL;
	}
	kind = k;
	say_losses(where, l);
}

int log_configure(enum log_kind k, const char *path, char *err, size_t errlen)
{
	int fd;

	if (k == kind && (k != LOG_FILE || (file_path && strcmp(path, file_path) == 0)))
		return 0;
	if (k == LOG_SYSLOG)
		fd = open_syslog(err, errlen);
	else if (k == LOG_FILE)
		fd = open_file(path, err, errlen);
	else
		fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -1;
	replace(fd, k, path);
	return 0;
}

void log_reopen(void)
{
	char err[256];
	int fd;

	if (kind == LOG_STDERR)
		return;
	fd = kind == LOG_FILE ? open_file(file_path, err, sizeof(err)) : open_syslog(err, sizeof(err));
	if (fd < 0) {
		log_error("reopening the log: %s; keeping the old one", err);
		return;
	}
	replace(fd, kind, file_path);
	log_info("log reopened");
}

void log_timestamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	char zone[8];

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(zone, sizeof(zone), "%z", &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ld%s", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, zone);
}

/* The syslog daemon restarted: its new socket at /dev/log is not the one
 * droverd is connected to. Connect again, at most once a second while it
 * keeps failing. Lines lost meanwhile stay counted, for the new socket. */
static void syslog_retry(void)
{
	static int64_t last = -SYSLOG_RETRY_MS;
	int64_t now = clock_ms();
	char err[128];
	int fd;

	if (sink_error(&out) == 0 || now - last < SYSLOG_RETRY_MS)
		return;
	last = now;
	if ((fd = open_syslog(err, sizeof(err))) < 0)
		return;
	sink_close(&out);
	sink_attach(&out, fd);
}

/* Frames one line for the destination and hands it to the sink. */
static void frame(int prio, const char *ident, pid_t pid, const char *text, size_t len)
{
	char line[LINE_MAX_LOG + 256], stamp[40];
	int n;

	if (len > LINE_MAX_LOG)
		len = LINE_MAX_LOG;
	if (kind == LOG_SYSLOG) {
		time_t t = time(NULL);
		struct tm tm;

		localtime_r(&t, &tm);
		strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
		n = snprintf(line, sizeof(line), "<%d>%s %s[%d]: %.*s", (3 << 3) | prio, stamp, ident,
			     (int)pid, (int)len, text);
		/* Datagrams: one message each, no newline. */
		syslog_retry();
		sink_write(&out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
		return;
	}
	stamp[0] = '\0';
	if (kind == LOG_FILE) {
		size_t used;

		log_timestamp(stamp, sizeof(stamp) - 1);
		used = strlen(stamp);
		snprintf(stamp + used, sizeof(stamp) - used, " ");
	}
	if (pid)
		n = snprintf(line, sizeof(line), "%s%s[%d]: %.*s\n", stamp, ident, (int)pid, (int)len, text);
	else
		n = snprintf(line, sizeof(line), "%s%s: %.*s\n", stamp, ident, (int)len, text);
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	sink_write(&out, line, (size_t)n);
}

/* A line may be written while the sink reports (one level down); never
 * deeper. The sink already keeps its report from re-entering; this is the
 * backstop that keeps any path from recursing until the stack runs out. */
static void emit(int prio, const char *ident, pid_t pid, const char *text, size_t len)
{
	static int depth;

	if (depth > 1)
		return;
	depth++;
	frame(prio, ident, pid, text, len);
	depth--;
}

void log_msg(enum log_level lv, const char *fmt, ...)
{
	static const int prio[] = { 3, 4, 6, 7 };
	static const char *const tag[] = { "error: ", "warning: ", "", "" };
	char text[LINE_MAX_LOG];
	int n;
	va_list ap;

	if (lv == LV_DEBUG && !verbose)
		return;
	n = snprintf(text, sizeof(text), "%s", kind == LOG_SYSLOG ? "" : tag[lv]);
	va_start(ap, fmt);
	vsnprintf(text + n, sizeof(text) - (size_t)n, fmt, ap);
	va_end(ap);
	emit(prio[lv], "droverd", kind == LOG_SYSLOG ? getpid() : 0, text, strlen(text));
}

void log_errno(const char *what)
{
	log_error("%s: %s", what, strerror(errno));
}

/* A service's bytes share droverd's log with every other service and with
 * droverd's own messages, and reach a terminal or a journal: escape
 * sequences and invalid UTF-8 are made visible and inert (escape.h). A
 * service's own file (log = file:) gets its bytes as they are. */
void log_output(const char *name, pid_t pid, const char *line, size_t len)
{
	char text[LINE_MAX_LOG + 1];	/* cut, like any line, at LINE_MAX_LOG */
	size_t n;

	if (len > LINE_MAX_LOG)
		len = LINE_MAX_LOG;
	n = escape_text(text, sizeof(text), line, len, ESCAPE_KEEP_TAB);
	emit(6, name, pid, text, n < sizeof(text) ? n : sizeof(text) - 1);
}

static void (*on_fatal)(const char *msg);

void log_on_fatal(void (*fn)(const char *msg))
{
	on_fatal = fn;
}

void fatal(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (on_fatal)
		on_fatal(msg);	/* does not return: an upgrade falls back */
	fprintf(stderr, "droverd: %s\n", msg);
	exit(1);
}
