/* conf_keys.c - every key drover.conf knows, and how its value is read.
 *
 * One table: name, section, whether it repeats, whether changing it replaces
 * a service's processes (K_PROC, used by the reload diff), and the setter.
 * Setters check the value alone; rules that involve several keys or the
 * system (modes, users, references) are in conf_check.c. */
#include "conf_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "value.h"

#define SVC (p->svc)
#define A (&p->c->arena)

/* Paths in the configuration may be relative to the file that holds them. */
static const char *conf_path(struct parse *p, const char *value, const char **out)
{
	char dir[4096];
	const char *d;
	size_t n;
	char *s;

	if (!*value)
		return "is empty";
	if (value[0] == '/') {
		*out = arena_strdup(A, value);
		return NULL;
	}
	snprintf(dir, sizeof(dir), "%s", p->file);
	d = dirname(dir);	/* may return a static "." instead of editing dir */
	n = strlen(d) + strlen(value) + 2;
	if (!(s = arena_alloc(A, n)))
		return "cannot be stored: out of memory";
	if (strcmp(d, ".") == 0)
		snprintf(s, n, "%s", value);
	else
		snprintf(s, n, "%s/%s", d, value);
	*out = s;
	return NULL;
}

static const char *absolute(struct parse *p, const char *value, const char **out)
{
	if (value[0] != '/')
		return "is not an absolute path";
	*out = arena_strdup(A, value);
	return NULL;
}

static int enum_lookup(const char *value, const char *const *names)
{
	for (int i = 0; names[i]; i++)
		if (strcmp(value, names[i]) == 0)
			return i;
	return -1;
}

#define ENUM_SETTER(fn, field, type, bad, ...)					\
	static const char *fn(struct parse *p, const char *v)			\
	{									\
		static const char *const names[] = { __VA_ARGS__, NULL };	\
		int m = enum_lookup(v, names);					\
										\
		if (m < 0)							\
			return bad;						\
		SVC->field = (type)m;						\
		return NULL;							\
	}

ENUM_SETTER(set_mode, mode, enum svc_mode,
	    "is not a mode (use daemon, prefork, accept, oneshot or timer)",
	    "daemon", "prefork", "accept", "oneshot", "timer")
ENUM_SETTER(set_start, start, enum svc_start,
	    "is not a start policy (use auto, demand or manual)", "auto", "demand", "manual")
ENUM_SETTER(set_restart, restart, enum svc_restart,
	    "is not a restart policy (use always, on-failure or no)", "always", "on-failure", "no")
ENUM_SETTER(set_ready, ready, enum svc_ready,
	    "is not a readiness kind (use none, notify, exit or health)",
	    "none", "notify", "exit", "health")

const char *conf_mode_name(enum svc_mode m)
{
	static const char *const names[] = { "daemon", "prefork", "accept", "oneshot", "timer" };

	return names[m];
}

static const char *set_command(struct parse *p, const char *v)
{
	int argc;

	SVC->command = arena_strdup(A, v);
	return value_split(A, v, &SVC->argv, &argc);
}

static const char *set_listen(struct parse *p, const char *v)
{
	struct listen_conf *l = conf_push(p, &SVC->listen, &SVC->nlisten, sizeof(*l));
	const char *err;

	if (!l)
		return "cannot be stored: out of memory";
	l->line = p->line;
	if ((err = listen_parse(p, v, l)))
		SVC->nlisten--;		/* reported here; not checked again later */
	return err;
}

/* A name listed twice is kept once (the first line counts). */
static const char *push_name(struct parse *p, const char *v, const char ***arr, int **lines, int *n)
{
	const char **slot;
	int *line, count;

	if (!conf_name_valid(v))
		return "is not a service name";
	for (int i = 0; i < *n; i++)
		if (strcmp((*arr)[i], v) == 0)
			return NULL;
	count = *n;
	if (!(line = conf_push(p, lines, &count, sizeof(*line))) ||
	    !(slot = conf_push(p, arr, n, sizeof(*slot))))
		return "cannot be stored: out of memory";
	*line = p->line;
	*slot = arena_strdup(A, v);
	return NULL;
}

static const char *set_requires(struct parse *p, const char *v)
{
	return push_name(p, v, &SVC->requires, &SVC->requires_line, &SVC->nrequires);
}

static const char *set_after(struct parse *p, const char *v)
{
	return push_name(p, v, &SVC->after, &SVC->after_line, &SVC->nafter);
}

static const char *set_procs(struct parse *p, const char *v)
{
	const char *err = value_uint(v, 4096, &SVC->procs);

	return err ? err : SVC->procs == 0 ? "must be at least 1" : NULL;
}

static const char *set_max_procs(struct parse *p, const char *v)
{
	const char *err = value_uint(v, 4096, &SVC->max_procs);

	return err ? err : SVC->max_procs == 0 ? "must be at least 1" : NULL;
}

static const char *set_max_use(struct parse *p, const char *v)
{
	return value_uint(v, UINT_MAX, &SVC->max_use);
}

static const char *set_max_rate(struct parse *p, const char *v)
{
	return value_uint(v, 1000000, &SVC->max_rate);
}

static const char *set_per_source(struct parse *p, const char *v)
{
	return value_uint(v, 4096, &SVC->per_source);
}

static const char *set_log_keep(struct parse *p, const char *v)
{
	return value_uint(v, 1000, &SVC->log_keep);
}

static const char *duration(const char *v, int64_t *out, bool positive)
{
	const char *err = value_duration(v, out);

	return err ? err : positive && *out == 0 ? "must be more than zero" : NULL;
}

static const char *set_idle_timeout(struct parse *p, const char *v) { return duration(v, &SVC->idle_timeout, true); }
static const char *set_restart_delay(struct parse *p, const char *v) { return duration(v, &SVC->restart_delay, false); }
static const char *set_restart_delay_max(struct parse *p, const char *v) { return duration(v, &SVC->restart_delay_max, false); }
static const char *set_min_uptime(struct parse *p, const char *v) { return duration(v, &SVC->min_uptime, false); }
static const char *set_stop_timeout(struct parse *p, const char *v) { return duration(v, &SVC->stop_timeout, false); }
static const char *set_ready_timeout(struct parse *p, const char *v) { return duration(v, &SVC->ready_timeout, true); }
static const char *set_watchdog(struct parse *p, const char *v) { return duration(v, &SVC->watchdog, false); }
static const char *set_every(struct parse *p, const char *v) { return duration(v, &SVC->every, true); }
/* 0 when bad, so that conf_check.c does not compare it with the other. */
static const char *probe_duration(const char *v, int64_t *out)
{
	const char *err = duration(v, out, true);

	if (err)
		*out = 0;
	return err;
}

static const char *set_health_interval(struct parse *p, const char *v) { return probe_duration(v, &SVC->health.interval); }
static const char *set_health_timeout(struct parse *p, const char *v) { return probe_duration(v, &SVC->health.timeout); }
static const char *set_health_start_period(struct parse *p, const char *v) { return duration(v, &SVC->health.start_period, false); }
static const char *set_upgrade_timeout(struct parse *p, const char *v) { return duration(v, &p->c->upgrade_timeout, true); }
static const char *set_shutdown_timeout(struct parse *p, const char *v) { return duration(v, &p->c->shutdown_timeout, false); }

static const char *set_health_retries(struct parse *p, const char *v)
{
	const char *err = value_uint(v, 1000, &SVC->health.retries);

	return err ? err : SVC->health.retries == 0 ? "must be at least 1" : NULL;
}

static const char *set_health(struct parse *p, const char *v)
{
	return health_parse(p, v, &SVC->health);
}

static const char *set_stop_signal(struct parse *p, const char *v)
{
	return value_signal(v, &SVC->stop_signal);
}

static const char *set_reload_signal(struct parse *p, const char *v)
{
	return value_signal(v, &SVC->reload_signal);
}

static const char *set_at(struct parse *p, const char *v)
{
	return value_at(A, v, &SVC->at, &SVC->nat);
}

/* Names are looked up when the configuration is read, so an unknown user is
 * a configuration error and the spawn path needs no NSS call. A number that
 * names no entry is taken as an id. */
static const char *set_user(struct parse *p, const char *v)
{
	const char *name;
	unsigned n;
	gid_t gid;

	if (conf_sys_user(p, v, &SVC->uid, &SVC->user_gid)) {
		/* found */
	} else if (value_uint(v, INT_MAX - 1, &n) == NULL) {
		bool found = conf_sys_uid(p, (uid_t)n, &gid, &name);

		SVC->uid = (uid_t)n;
		SVC->user_gid = found ? gid : (gid_t)-1;
		v = found ? name : v;	/* for its supplementary groups */
	} else {
		return "is not a user on this system";
	}
	SVC->has_user = true;
	SVC->user = arena_strdup(A, v);
	return NULL;
}

static const char *set_group(struct parse *p, const char *v)
{
	unsigned n;

	if (conf_sys_group(p, v, &SVC->gid))
		;
	else if (value_uint(v, INT_MAX - 1, &n) == NULL)
		SVC->gid = (gid_t)n;
	else
		return "is not a group on this system";
	SVC->has_group = true;
	SVC->group = arena_strdup(A, v);
	return NULL;
}

static const char *set_chdir(struct parse *p, const char *v)
{
	return absolute(p, v, &SVC->chdir);
}

static const char *set_umask(struct parse *p, const char *v)
{
	unsigned m;
	const char *err = value_octal(v, 0777, &m);

	SVC->umask = (mode_t)m;
	return err;
}

static const char *set_env(struct parse *p, const char *v)
{
	const char *eq = strchr(v, '=');
	const char **slot;

	if (!eq || eq == v)
		return "is not KEY=VALUE";
	for (const char *k = v; k < eq; k++)
		if (!(isalnum((unsigned char)*k) || *k == '_') || (k == v && isdigit((unsigned char)*k)))
			return "has a bad variable name (use letters, digits and _)";
	if (!strncmp(v, "LISTEN_FDS=", 11) || !strncmp(v, "LISTEN_PID=", 11) || !strncmp(v, "LISTEN_FDNAMES=", 15))
		return "sets a variable of socket activation, which droverd sets itself";
	if (!(slot = conf_push(p, &SVC->env, &SVC->nenv, sizeof(*slot))))
		return "cannot be stored: out of memory";
	*slot = arena_strdup(A, v);
	return NULL;
}

static const char *set_env_inherit(struct parse *p, const char *v)
{
	return value_bool(v, &SVC->env_inherit);
}

static const char *set_critical(struct parse *p, const char *v)
{
	return value_bool(v, &SVC->critical);
}

static const char *set_no_new_privs(struct parse *p, const char *v)
{
	return value_bool(v, &SVC->no_new_privs);
}

/* "N", "infinity", or "SOFT:HARD"; sizes for core and as. */
static const char *limit_value(const char *v, bool size, rlim_t *out)
{
	uint64_t n;
	unsigned u;
	const char *err;

	if (strcmp(v, "infinity") == 0 || strcmp(v, "unlimited") == 0) {
		*out = RLIM_INFINITY;
		return NULL;
	}
	if (size) {
		err = value_size(v, &n);
	} else {
		err = value_uint(v, UINT_MAX, &u);
		n = u;
	}
	*out = (rlim_t)n;
	return err;
}

static const char *set_limit(struct parse *p, const char *v, int which, bool size)
{
	char soft[64], *colon;
	const char *err;
	struct rlimit *r = &SVC->limit[which];

	if (strlen(v) >= sizeof(soft))
		return "is too long";
	snprintf(soft, sizeof(soft), "%s", v);
	colon = strchr(soft, ':');
	if (colon)
		*colon = '\0';
	if ((err = limit_value(soft, size, &r->rlim_cur)))
		return err;
	r->rlim_max = r->rlim_cur;
	if (colon && (err = limit_value(colon + 1, size, &r->rlim_max)))
		return err;
	if (r->rlim_cur > r->rlim_max)
		return "has a soft limit above its hard limit";
	SVC->has_limit[which] = true;
	return NULL;
}

static const char *set_memory_max(struct parse *p, const char *v)
{
	const char *err = value_size(v, &SVC->memory_max);

	return err ? err : SVC->memory_max == 0 ? "must be more than zero" : NULL;
}

static const char *set_pids_max(struct parse *p, const char *v)
{
	const char *err = value_uint(v, INT_MAX, &SVC->pids_max);

	return err ? err : SVC->pids_max == 0 ? "must be at least 1" : NULL;
}

static const char *set_cpu_weight(struct parse *p, const char *v)
{
	const char *err = value_uint(v, 10000, &SVC->cpu_weight);

	return err ? err : SVC->cpu_weight == 0 ? "must be from 1 to 10000" : NULL;
}

/* A percentage of one CPU: "50%", "150%". */
static const char *set_cpu_max(struct parse *p, const char *v)
{
	char num[16];
	size_t n = strlen(v);

	if (n < 2 || n >= sizeof(num) || v[n - 1] != '%')
		return "is not a percentage of one CPU (like 50% or 150%)";
	memcpy(num, v, n - 1);
	num[n - 1] = '\0';
	if (value_uint(num, 100000, &SVC->cpu_max) || SVC->cpu_max == 0)
		return "is not a percentage of one CPU from 1% to 100000%";
	return NULL;
}

static const char *set_limit_nofile(struct parse *p, const char *v) { return set_limit(p, v, LIM_NOFILE, false); }
static const char *set_limit_nproc(struct parse *p, const char *v) { return set_limit(p, v, LIM_NPROC, false); }
static const char *set_limit_core(struct parse *p, const char *v) { return set_limit(p, v, LIM_CORE, true); }
static const char *set_limit_as(struct parse *p, const char *v) { return set_limit(p, v, LIM_AS, true); }

static const char *log_value(struct parse *p, const char *v, bool global, enum log_kind *kind,
			     const char **path)
{
	if (strncmp(v, "file:", 5) == 0) {
		*kind = LOG_FILE;
		return absolute(p, v + 5, path);
	}
	if (global && strcmp(v, "stderr") == 0)
		*kind = LOG_STDERR;
	else if (global && strcmp(v, "syslog") == 0)
		*kind = LOG_SYSLOG;
	else if (!global && strcmp(v, "inherit") == 0)
		*kind = LOG_INHERIT;
	else if (!global && strcmp(v, "null") == 0)
		*kind = LOG_NULL;
	else
		return global ? "is not a log destination (use stderr, syslog or file:/PATH)"
			      : "is not a log destination (use inherit, null or file:/PATH)";
	return NULL;
}

static const char *set_svc_log(struct parse *p, const char *v)
{
	return log_value(p, v, false, &SVC->log, &SVC->log_path);
}

static const char *set_log_max_size(struct parse *p, const char *v)
{
	return value_size(v, &SVC->log_max_size);
}

/* The content's hash is taken when the configuration is loaded (conf_sys.c);
 * a file that cannot be read is remembered as such (its errno), which also
 * counts as a change when that changes. */
static const char *set_config_files(struct parse *p, const char *v)
{
	struct conf_hash *h = conf_push(p, &SVC->config_files, &SVC->nconfig_files, sizeof(*h));
	const char *err;

	if (!h)
		return "cannot be stored: out of memory";
	if ((err = conf_path(p, v, &h->path)))
		return err;
	return conf_sys_hash(p, h->path, &h->hash, &h->err);
}

static const char *set_control(struct parse *p, const char *v)
{
	return conf_path(p, v, &p->c->control);
}

static const char *set_control_group(struct parse *p, const char *v)
{
	unsigned n;

	if (conf_sys_group(p, v, &p->c->control_gid)) {
		/* found */
	} else if (value_uint(v, INT_MAX, &n) == NULL) {
		p->c->control_gid = (gid_t)n;
	} else {
		return "is not a group on this system";
	}
	p->c->control_group = arena_strdup(A, v);
	return NULL;
}

static const char *set_global_log(struct parse *p, const char *v)
{
	return log_value(p, v, true, &p->c->log, &p->c->log_path);
}

static const char *set_fdstore(struct parse *p, const char *v)
{
	return value_bool(v, &p->c->fdstore);
}

static const char *set_cgroup(struct parse *p, const char *v)
{
	static const char *const names[] = { "auto", "yes", "no", NULL };
	int m = enum_lookup(v, names);

	if (m < 0)
		return "is not a cgroup policy (use auto, yes or no)";
	p->c->cgroup = (enum cgroup_mode)m;
	return NULL;
}

static const char *set_include(struct parse *p, const char *v)
{
	return conf_include(p, v);
}

/* Service keys first: their index is the bit in svc_conf.keys_set. */
const struct keydef conf_keys[] = {
	{ "mode", SCOPE_SERVICE, K_PROC, set_mode },
	{ "command", SCOPE_SERVICE, K_PROC, set_command },
	{ "listen", SCOPE_SERVICE, K_PROC | K_REPEAT, set_listen },
	{ "start", SCOPE_SERVICE, 0, set_start },
	{ "procs", SCOPE_SERVICE, 0, set_procs },
	{ "max_procs", SCOPE_SERVICE, 0, set_max_procs },
	{ "idle_timeout", SCOPE_SERVICE, 0, set_idle_timeout },
	{ "max_use", SCOPE_SERVICE, 0, set_max_use },
	{ "max_rate", SCOPE_SERVICE, 0, set_max_rate },
	{ "per_source", SCOPE_SERVICE, 0, set_per_source },
	{ "restart", SCOPE_SERVICE, 0, set_restart },
	{ "restart_delay", SCOPE_SERVICE, 0, set_restart_delay },
	{ "restart_delay_max", SCOPE_SERVICE, 0, set_restart_delay_max },
	{ "min_uptime", SCOPE_SERVICE, 0, set_min_uptime },
	{ "stop_signal", SCOPE_SERVICE, 0, set_stop_signal },
	{ "stop_timeout", SCOPE_SERVICE, 0, set_stop_timeout },
	{ "reload_signal", SCOPE_SERVICE, 0, set_reload_signal },
	/* ready and watchdog decide NOTIFY_SOCKET and WATCHDOG_USEC. */
	{ "ready", SCOPE_SERVICE, K_PROC, set_ready },
	{ "ready_timeout", SCOPE_SERVICE, 0, set_ready_timeout },
	{ "watchdog", SCOPE_SERVICE, K_PROC, set_watchdog },
	{ "requires", SCOPE_SERVICE, K_REPEAT, set_requires },
	{ "after", SCOPE_SERVICE, K_REPEAT, set_after },
	{ "every", SCOPE_SERVICE, 0, set_every },
	{ "at", SCOPE_SERVICE, 0, set_at },
	{ "user", SCOPE_SERVICE, K_PROC, set_user },
	{ "group", SCOPE_SERVICE, K_PROC, set_group },
	{ "chdir", SCOPE_SERVICE, K_PROC, set_chdir },
	{ "umask", SCOPE_SERVICE, K_PROC, set_umask },
	{ "env", SCOPE_SERVICE, K_PROC | K_REPEAT, set_env },
	{ "env_inherit", SCOPE_SERVICE, K_PROC, set_env_inherit },
	{ "limit_nofile", SCOPE_SERVICE, K_PROC, set_limit_nofile },
	{ "limit_nproc", SCOPE_SERVICE, K_PROC, set_limit_nproc },
	{ "limit_core", SCOPE_SERVICE, K_PROC, set_limit_core },
	{ "limit_as", SCOPE_SERVICE, K_PROC, set_limit_as },
	{ "log", SCOPE_SERVICE, 0, set_svc_log },
	{ "log_max_size", SCOPE_SERVICE, 0, set_log_max_size },
	{ "log_keep", SCOPE_SERVICE, 0, set_log_keep },
	{ "config_files", SCOPE_SERVICE, K_PROC | K_REPEAT, set_config_files },
	{ "critical", SCOPE_SERVICE, 0, set_critical },
	{ "memory_max", SCOPE_SERVICE, K_PROC, set_memory_max },
	{ "pids_max", SCOPE_SERVICE, K_PROC, set_pids_max },
	{ "cpu_weight", SCOPE_SERVICE, K_PROC, set_cpu_weight },
	{ "cpu_max", SCOPE_SERVICE, K_PROC, set_cpu_max },
	{ "no_new_privs", SCOPE_SERVICE, K_PROC, set_no_new_privs },
	/* Probes are supervision: a reload applies them to what runs. */
	{ "health", SCOPE_SERVICE, 0, set_health },
	{ "health_interval", SCOPE_SERVICE, 0, set_health_interval },
	{ "health_timeout", SCOPE_SERVICE, 0, set_health_timeout },
	{ "health_retries", SCOPE_SERVICE, 0, set_health_retries },
	{ "health_start_period", SCOPE_SERVICE, 0, set_health_start_period },

	{ "control", SCOPE_GLOBAL, 0, set_control },
	{ "control_group", SCOPE_GLOBAL, 0, set_control_group },
	{ "log", SCOPE_GLOBAL, 0, set_global_log },
	{ "include", SCOPE_GLOBAL, K_REPEAT, set_include },
	{ "upgrade_timeout", SCOPE_GLOBAL, 0, set_upgrade_timeout },
	{ "fdstore", SCOPE_GLOBAL, 0, set_fdstore },
	{ "cgroup", SCOPE_GLOBAL, 0, set_cgroup },
	{ "shutdown_timeout", SCOPE_GLOBAL, 0, set_shutdown_timeout },
};
const int conf_nkeys = (int)(sizeof(conf_keys) / sizeof(conf_keys[0]));

const struct keydef *conf_key_find(const char *name, enum key_scope scope, int *index)
{
	int n = 0;

	for (int i = 0; i < conf_nkeys; i++) {
		if (conf_keys[i].scope != scope)
			continue;
		if (strcmp(conf_keys[i].name, name) == 0) {
			if (index)
				*index = n;
			return &conf_keys[i];
		}
		n++;
	}
	return NULL;
}

const char *const *conf_key_names(enum key_scope scope)
{
	static const char *names[2][64];

	if (!names[scope][0]) {
		int n = 0;

		for (int i = 0; i < conf_nkeys; i++)
			if (conf_keys[i].scope == scope)
				names[scope][n++] = conf_keys[i].name;
	}
	return names[scope];
}

void conf_key_apply_defaults(struct svc_conf *s)
{
	s->mode = MODE_DAEMON;
	s->start = START_AUTO;
	s->procs = 1;
	s->idle_timeout = 60000;
	s->restart = RESTART_ALWAYS;
	s->restart_delay = 100;
	s->restart_delay_max = 30000;
	s->min_uptime = 10000;
	s->stop_signal = SIGTERM;
	s->stop_timeout = 10000;
	s->ready = READY_NONE;
	s->ready_timeout = 30000;
	s->chdir = "/";
	s->umask = 022;
	s->log = LOG_INHERIT;
	s->log_max_size = 10 << 20;
	s->log_keep = 5;
	s->health.interval = 10000;
	s->health.timeout = 2000;	/* at most health_interval: conf_check.c */
	s->health.retries = 3;
}
