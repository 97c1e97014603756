/* log.h - droverd's own log, and the lines of services that inherit it.
 *
 * Destinations: stderr (default), syslog (datagrams to /dev/log), or a file
 * (reopened on SIGUSR1; opened only as a regular file, never through a
 * link). Writes never block, and a destination that fails does not stop
 * droverd: its lost lines are counted and reported once it works again
 * (see sink.h); syslog is reconnected after a restart. Messages state
 * what, where and why; log_errno adds the system's reason. Before the loop
 * runs, fatal() ends droverd with a message and exit status 1. */
#ifndef DROVER_LOG_H
#define DROVER_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "conf.h"

enum log_level { LV_ERROR, LV_WARN, LV_INFO, LV_DEBUG };

void log_init(void);
/* Switch destination; on failure the current one stays and err says why. */
int log_configure(enum log_kind kind, const char *path, char *err, size_t errlen);
void log_reopen(void);
/* For -t: a log file that exists but would be refused (a link, not a
 * regular file); err says why. A missing one is fine (it is created). */
int log_check(enum log_kind kind, const char *path, char *err, size_t errlen);
void log_set_verbose(bool on);

void log_msg(enum log_level lv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LV_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LV_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LV_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LV_DEBUG, __VA_ARGS__)
void log_errno(const char *what);
/* One line of a service's output: "NAME[PID]: line", its control
 * characters and invalid UTF-8 escaped. */
void log_output(const char *name, pid_t pid, const char *line, size_t len);

_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* While an upgrade takes a state over: fn(message) instead of the exit
 * (it must not return); NULL again once it has. */
void log_on_fatal(void (*fn)(const char *msg));

/* "2026-11-22T10:01:02.345+0100" into out (>= 32 bytes). */
void log_timestamp(char *out, size_t len);

#endif
