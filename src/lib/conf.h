/* conf.h - drover's configuration: the data model and how to get one.
 *
 * conf_load() reads a file and the files it includes, validates everything
 * (syntax, values, users and groups, dependency references and cycles) and
 * returns either a complete configuration or the full list of problems, each
 * "FILE:LINE: message". It never exits and never prints: droverd uses it at
 * start and at every reload, drover for `drover check`.
 *
 * Everything a configuration holds lives in its arena and goes away with
 * conf_free(). Nothing in it refers to runtime state. */
#ifndef DROVER_CONF_H
#define DROVER_CONF_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "arena.h"

#define CONF_DEFAULT_PATH "/etc/drover/drover.conf"
#define SVC_NAME_MAX 64
#define LISTEN_MAX 64		/* listeners a service may have */
#define CONF_FILE_MAX (1 << 20)	/* bytes of one configuration file */

enum svc_mode { MODE_DAEMON, MODE_PREFORK, MODE_ACCEPT, MODE_ONESHOT, MODE_TIMER };
enum svc_start { START_AUTO, START_DEMAND, START_MANUAL };
enum svc_restart { RESTART_ALWAYS, RESTART_ON_FAILURE, RESTART_NO };
enum svc_ready { READY_NONE, READY_NOTIFY, READY_EXIT, READY_HEALTH };
enum health_kind { HEALTH_NONE, HEALTH_EXEC, HEALTH_TCP, HEALTH_HTTP };
/* Where output goes. LOG_STDERR and LOG_SYSLOG are for droverd's own log;
 * LOG_INHERIT and LOG_NULL for a service's. LOG_FILE for both. */
enum log_kind { LOG_STDERR, LOG_SYSLOG, LOG_FILE, LOG_INHERIT, LOG_NULL };
enum cgroup_mode { CGROUP_AUTO, CGROUP_YES, CGROUP_NO };
enum { LIM_NOFILE, LIM_NPROC, LIM_CORE, LIM_AS, LIM_COUNT };

/* One `listen =` line. The socket address is resolved at parse time; no name
 * is ever looked up in DNS. `key` is a canonical text of address and options:
 * two listeners with equal keys are interchangeable (reload keeps the open
 * socket). */
struct listen_conf {
	const char *fdname;
	const char *text;		/* the address as written, for messages */
	const char *key;
	int family, socktype;		/* AF_INET/AF_INET6/AF_UNIX, SOCK_STREAM/DGRAM */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	bool dualstack;			/* tcp:PORT: [::] accepting IPv4 too */
	int backlog;
	bool reuseport, freebind;
	bool has_mode, has_owner, has_group;
	mode_t mode;
	uid_t owner;
	gid_t group;
	int line;
};

/* The same address (family, type, sockaddr): the same socket to bind. */
bool listen_conf_same_address(const struct listen_conf *a, const struct listen_conf *b);
/* Differ at most in backlog, which listen() can change on the open socket:
 * a reload keeps the one for the other (listen.c, reload_plan.c). */
bool listen_conf_interchangeable(const struct listen_conf *a, const struct listen_conf *b);

/* `health =` and its settings (SPEC 3a). An address is resolved at parse
 * time, like a listener's: no name is looked up in DNS. */
#define HEALTH_PATH_MAX 512	/* bytes of an http probe's path */
#define HEALTH_HOST_MAX 80	/* bytes of its Host header, less than */
struct health_conf {
	enum health_kind kind;		/* HEALTH_NONE: not probed */
	const char *text;		/* the probe as written, for messages */
	char **argv;			/* exec: NULL-terminated, split like `command` */
	struct sockaddr_storage addr;	/* tcp, http: where to connect */
	socklen_t addrlen;
	const char *host;		/* http: the Host header (HOST[:PORT] as written) */
	const char *path;		/* http: "/..." as written, at least "/" */
	int64_t interval, timeout;	/* ms: health_interval, health_timeout */
	int64_t start_period;		/* ms: health_start_period */
	unsigned retries;		/* health_retries, >= 1 */
};

struct conf_hash {			/* a `config_files` path and its content */
	const char *path;
	uint64_t hash;			/* FNV-1a of the content; 0 if unreadable */
	int err;			/* errno when unreadable */
};

struct svc_conf {
	const char *name;
	const char *file;		/* where the [service] header is */
	int line;
	uint64_t keys_set;		/* bit per key index (conf_keys.c) */

	enum svc_mode mode;
	const char *command;		/* as written */
	char **argv;			/* NULL-terminated */
	struct listen_conf *listen;
	int nlisten;
	enum svc_start start;
	unsigned procs, max_procs, max_use, max_rate, per_source;
	int64_t idle_timeout;		/* all durations in milliseconds */
	enum svc_restart restart;
	int64_t restart_delay, restart_delay_max, min_uptime;
	int stop_signal, reload_signal;	/* reload_signal 0: none */
	int64_t stop_timeout;
	enum svc_ready ready;
	int64_t ready_timeout, watchdog;
	const char **requires, **after;
	int nrequires, nafter;
	int *requires_line, *after_line;	/* where each name was given */
	int64_t every;
	short *at;			/* minutes after midnight, sorted */
	int nat;
	bool has_user, has_group;
	const char *user, *group;
	uid_t uid;
	gid_t gid, user_gid;		/* user_gid: the user's primary group */
	gid_t *groups;			/* supplementary, from the user's entry */
	int ngroups;
	const char *chdir;
	mode_t umask;
	const char **env;		/* KEY=VALUE */
	int nenv;
	bool env_inherit;
	bool has_limit[LIM_COUNT];
	struct rlimit limit[LIM_COUNT];
	enum log_kind log;
	const char *log_path;
	uint64_t log_max_size;
	unsigned log_keep;
	struct conf_hash *config_files;
	int nconfig_files;
	bool critical;
	/* cgroup limits (SPEC 4a); 0: not set */
	uint64_t memory_max;		/* bytes */
	unsigned pids_max;
	unsigned cpu_weight;		/* 1-10000 */
	unsigned cpu_max;		/* percent of one CPU */
	bool no_new_privs;		/* PR_SET_NO_NEW_PRIVS before exec */
	struct health_conf health;	/* probe; kind HEALTH_NONE without one */

	/* The keys given, as written, for the reload diff and for messages:
	 * only those set (a service sets few of the keys), see conf_raw(). */
	struct conf_raw *raw;
};

/* One key given in a [service] section: its text (a repeatable key's
 * values joined by '\n') and the line where it was first set. */
struct conf_raw {
	struct conf_raw *next;
	int idx;		/* key index, as conf_key_find() gives */
	int line;
	const char *text;
};

/* The key with index idx of s as written, or NULL when it was not given. */
const struct conf_raw *conf_raw(const struct svc_conf *s, int idx);

/* One answer the system gave while a configuration was read (conf_sys.c):
 * with the files' text, these make the configuration, so that
 * conf_replay() can read it again exactly, without the system. */
enum conf_fact_kind {
	FACT_FILE,	/* key: path; v0 1 read (data: the text, v1 dev, v2 inode), 0 not (data: why) */
	FACT_GLOB,	/* key: pattern; v0 glob()'s result; data: the matches, each ended by '\0',
			 * or (GLOB_ABORTED) the directory it could not read, v1 its errno */
	FACT_USER,	/* key: name; v0 found, v1 uid, v2 primary gid */
	FACT_UID,	/* key: uid in decimal; v0 found, v2 primary gid, data: the name */
	FACT_GROUP,	/* key: name; v0 found, v1 gid */
	FACT_GROUPS,	/* key: user, v1 gid; v0 known, data: the groups, decimal, space-separated */
	FACT_HASH,	/* key: path; v0 errno (0: read), v1 hash of the content */
	FACT_EXEC,	/* key: a program as written; v0 errno (0: it can be run) */
	FACT_KINDS
};

struct conf_fact {
	int kind;
	const char *key;
	const char *data;
	size_t len;		/* of data, which is also '\0'-terminated */
	int64_t v[3];
};

struct conf {
	struct arena arena;
	int refs;			/* droverd: services pointing into it */
	const char *path;
	const char *control;		/* NULL: the default of SPEC section 1 */
	const char *control_group;
	gid_t control_gid;
	enum log_kind log;
	const char *log_path;
	int64_t upgrade_timeout;
	bool fdstore;			/* store listeners with systemd */
	enum cgroup_mode cgroup;	/* track services in cgroups (SPEC 4a) */
	int64_t shutdown_timeout;	/* graceful shutdown bound */
	struct svc_conf **svcs;		/* in the order they were defined */
	int nsvcs;
	struct conf_fact *facts;	/* what the system said, in the order asked */
	int nfacts;
};

/* The problems found, sorted by file (in the order files were read) and
 * line. `where` is private to the parser. */
struct conf_errors {
	char **msg;
	long *where;
	int n, cap;
};

/* Load and validate. Returns NULL when there is any error (all of them in
 * errs). `as_root` turns on the refusal of files writable by others; pass
 * geteuid() == 0. */
struct conf *conf_load(const char *path, bool as_root, struct conf_errors *errs);
/* The same configuration as the load that recorded facts (c->facts) made,
 * read from them alone: no file, user database or directory is looked at.
 * A question the facts do not answer is an error. */
struct conf *conf_replay(const char *path, const struct conf_fact *facts, int nfacts,
			 struct conf_errors *errs);
void conf_free(struct conf *c);
void conf_errors_free(struct conf_errors *e);

struct svc_conf *conf_find(const struct conf *c, const char *name);
bool conf_name_valid(const char *name);

/* Reload diff (SPEC section 5). conf_diff: the keys of a service whose
 * text differs between two loads, bit i for service key i (named by
 * conf_diff_key(i)); a new uid, gid or supplementary groups count as a
 * change of "user" (or of "group" when one is given), a config_files
 * file's new content as one of "config_files". conf_change_of: what such
 * a change means (REPLACE: a process key is among them); conf_compare:
 * both at once. */
enum conf_change { CHANGE_NONE, CHANGE_LIVE, CHANGE_REPLACE };
uint64_t conf_diff(const struct svc_conf *old, const struct svc_conf *new);
enum conf_change conf_change_of(uint64_t keys);
enum conf_change conf_compare(const struct svc_conf *old, const struct svc_conf *new);
/* The name of service key idx, or NULL when there is none. */
const char *conf_diff_key(int idx);

const char *conf_mode_name(enum svc_mode m);

#endif
