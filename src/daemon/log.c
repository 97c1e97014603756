/* log.c - see log.h. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sink.h"

enum { LINE_MAX_LOG = 4096 };

static struct sink out = { .fd = -1 };
static enum log_kind kind = LOG_STDERR;
static char *file_path;
static bool verbose;

static void sink_report(struct sink *s, const char *what)
{
	(void)s;
	log_warn("log destination: %s", what);
}

void log_init(void)
{
	int fd = fcntl(2, F_DUPFD_CLOEXEC, 3);

	sink_attach(&out, fd >= 0 ? fd : 2);
	out.report = sink_report;
}

void log_set_verbose(bool on)
{
	verbose = on;
}

int log_current_fd(void)
{
	return out.fd;
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

static int open_file(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);

	if (fd < 0)
		snprintf(err, errlen, "cannot open log file %s: %s", path, strerror(errno));
	return fd;
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
	sink_close(&out);
	sink_attach(&out, fd);
	kind = k;
	free(file_path);
	file_path = k == LOG_FILE ? strdup(path) : NULL;
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
	sink_close(&out);
	sink_attach(&out, fd);
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

/* Frames one line for the destination and hands it to the sink. */
static void emit(int prio, const char *ident, pid_t pid, const char *text, size_t len)
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

void log_output(const char *name, pid_t pid, const char *line, size_t len)
{
	emit(6, name, pid, line, len);
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
