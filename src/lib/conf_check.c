/* conf_check.c - the rules that involve more than one value.
 *
 * Run once every file is read: defaults that depend on the mode, keys that
 * do not apply to a service's mode, credentials, references between
 * services, dependency cycles (named in full), and listeners claimed twice.
 * Each problem is reported at the line of the key concerned. */
#include "conf_int.h"

#include <grp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "value.h"

#define M(x) (1u << (x))
#define ALL_MODES (M(MODE_DAEMON) | M(MODE_PREFORK) | M(MODE_ACCEPT) | M(MODE_ONESHOT) | M(MODE_TIMER))

static const struct {
	const char *key;
	unsigned modes;
} mode_keys[] = {
	{ "listen", M(MODE_DAEMON) | M(MODE_PREFORK) | M(MODE_ACCEPT) },
	{ "procs", M(MODE_PREFORK) },
	{ "max_procs", M(MODE_PREFORK) | M(MODE_ACCEPT) },
	{ "idle_timeout", M(MODE_PREFORK) },
	{ "max_use", M(MODE_PREFORK) },
	{ "max_rate", M(MODE_ACCEPT) },
	{ "per_source", M(MODE_ACCEPT) },
	{ "every", M(MODE_TIMER) },
	{ "at", M(MODE_TIMER) },
	{ "restart", ALL_MODES & ~M(MODE_TIMER) & ~M(MODE_ACCEPT) },
	{ "restart_delay", ALL_MODES & ~M(MODE_TIMER) & ~M(MODE_ACCEPT) },
	{ "restart_delay_max", ALL_MODES & ~M(MODE_TIMER) & ~M(MODE_ACCEPT) },
	{ "min_uptime", ALL_MODES & ~M(MODE_TIMER) & ~M(MODE_ACCEPT) },
	{ "ready", ALL_MODES & ~M(MODE_TIMER) & ~M(MODE_ACCEPT) },
	{ "ready_timeout", ALL_MODES & ~M(MODE_TIMER) & ~M(MODE_ACCEPT) },
	{ "watchdog", M(MODE_DAEMON) | M(MODE_PREFORK) },
	{ "health", M(MODE_DAEMON) | M(MODE_PREFORK) },
	{ "health_interval", M(MODE_DAEMON) | M(MODE_PREFORK) },
	{ "health_timeout", M(MODE_DAEMON) | M(MODE_PREFORK) },
	{ "health_retries", M(MODE_DAEMON) | M(MODE_PREFORK) },
	{ "health_start_period", M(MODE_DAEMON) | M(MODE_PREFORK) },
};

static int key_index(const char *name)
{
	int idx = -1;

	conf_key_find(name, SCOPE_SERVICE, &idx);
	return idx;
}

static bool key_set(const struct svc_conf *s, const char *name)
{
	return s->keys_set & (1ULL << key_index(name));
}

/* Reports "TEXT in [service NAME]HINT" at `line` of s's file. */
static void svc_error_at(struct parse *p, const struct svc_conf *s, int line, const char *hint,
			 const char *fmt, va_list ap)
{
	char text[600];

	vsnprintf(text, sizeof(text), fmt, ap);
	conf_error_at(p, s->file, line, "%s in [service %s]%s", text, s->name, hint ? hint : "");
}

/* As above, at the line of `key` in s (its header line if not set). */
static void svc_error(struct parse *p, const struct svc_conf *s, const char *key,
		      const char *hint, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void svc_error(struct parse *p, const struct svc_conf *s, const char *key,
		      const char *hint, const char *fmt, ...)
{
	const struct conf_raw *r = key ? conf_raw(s, key_index(key)) : NULL;
	va_list ap;

	va_start(ap, fmt);
	svc_error_at(p, s, r ? r->line : s->line, hint, fmt, ap);
	va_end(ap);
}

static void svc_error_line(struct parse *p, const struct svc_conf *s, int line,
			   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void svc_error_line(struct parse *p, const struct svc_conf *s, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	svc_error_at(p, s, line, NULL, fmt, ap);
	va_end(ap);
}

static void check_mode_keys(struct parse *p, struct svc_conf *s)
{
	char hint[100];
	size_t n;

	for (size_t i = 0; i < sizeof(mode_keys) / sizeof(mode_keys[0]); i++) {
		if (!key_set(s, mode_keys[i].key) || (mode_keys[i].modes & M(s->mode)))
			continue;
		n = (size_t)snprintf(hint, sizeof(hint), " (it is for mode ");
		for (int m = MODE_DAEMON; m <= MODE_TIMER; m++)
			if (mode_keys[i].modes & M(m))
				n += (size_t)snprintf(hint + n, sizeof(hint) - n, "%s%s",
						      hint[n - 1] == ' ' ? "" : ", ", conf_mode_name(m));
		snprintf(hint + n, sizeof(hint) - n, ")");
		svc_error(p, s, mode_keys[i].key, hint, "%s does not apply to mode %s",
			  mode_keys[i].key, conf_mode_name(s->mode));
	}
}

static void apply_mode_defaults(struct svc_conf *s)
{
	if (s->mode == MODE_ONESHOT && !key_set(s, "restart"))
		s->restart = RESTART_NO;
	if (s->mode == MODE_ONESHOT && !key_set(s, "ready"))
		s->ready = READY_EXIT;
	if (s->mode == MODE_TIMER || s->mode == MODE_ACCEPT)
		s->restart = RESTART_NO;
	if (!key_set(s, "max_procs"))
		s->max_procs = s->mode == MODE_ACCEPT ? 64 : s->procs;
	/* The default timeout never outlasts a shorter interval. */
	if (!key_set(s, "health_timeout") && s->health.timeout > s->health.interval)
		s->health.timeout = s->health.interval;
}

static void check_mode_rules(struct parse *p, struct svc_conf *s)
{
	if (s->mode == MODE_TIMER && !key_set(s, "every") && !key_set(s, "at"))
		svc_error(p, s, "mode", NULL, "mode timer needs \"every\" or \"at\"");
	if (s->mode == MODE_PREFORK && s->nlisten == 0)
		svc_error(p, s, "mode", NULL, "mode prefork needs at least one \"listen\"");
	if (s->mode == MODE_ACCEPT && s->nlisten == 0)
		svc_error(p, s, "mode", NULL, "mode accept needs at least one \"listen\"");
	for (int i = 0; s->mode == MODE_ACCEPT && i < s->nlisten; i++)
		if (s->listen[i].socktype != SOCK_STREAM)
			conf_error_at(p, s->file, s->listen[i].line,
				      "mode accept cannot use datagram listener %s in [service %s] "
				      "(accept needs a stream: tcp or unix)", s->listen[i].text, s->name);
	if (s->nlisten > LISTEN_MAX)
		svc_error(p, s, "listen", NULL, "more than %d listen lines", LISTEN_MAX);
	if (s->mode == MODE_PREFORK && s->procs > s->max_procs) {
		char a[16], b[16];

		snprintf(a, sizeof(a), "%u", s->procs);
		snprintf(b, sizeof(b), "%u", s->max_procs);
		svc_error(p, s, "procs", NULL, "procs (%s) is above max_procs (%s)", a, b);
	}
	if (s->start == START_DEMAND && s->nlisten == 0)
		svc_error(p, s, "start", NULL, "start = demand needs a \"listen\" to wait on");
	if (s->start == START_DEMAND && (s->mode == MODE_ONESHOT || s->mode == MODE_TIMER))
		svc_error(p, s, "start", NULL, "start = demand does not apply to mode %s", conf_mode_name(s->mode));
	if (s->ready == READY_EXIT && s->mode != MODE_ONESHOT)
		svc_error(p, s, "ready", NULL, "ready = exit is only for mode oneshot");
	if (s->watchdog && s->ready != READY_NOTIFY)
		svc_error(p, s, "watchdog", NULL, "watchdog needs ready = notify");
	if (s->restart_delay > s->restart_delay_max)
		svc_error(p, s, "restart_delay", NULL, "restart_delay is above restart_delay_max");
}

/* A probe's settings need the probe; the timeout fits in the interval,
 * since one probe of a service runs at a time. */
/* A service that sets its own PATH finds its programs there: droverd does
 * not guess where. */
static bool sets_path(const struct svc_conf *s)
{
	for (int i = 0; i < s->nenv; i++)
		if (strncmp(s->env[i], "PATH=", 5) == 0)
			return true;
	return false;
}

static void check_health(struct parse *p, struct svc_conf *s)
{
	static const char *const settings[] = {
		"health_interval", "health_timeout", "health_retries", "health_start_period",
	};
	bool can = s->mode == MODE_DAEMON || s->mode == MODE_PREFORK;

	if (s->ready == READY_HEALTH && s->mode == MODE_ONESHOT)	/* others: "ready does not apply" */
		svc_error(p, s, "ready", NULL, "ready = health does not apply to mode %s", conf_mode_name(s->mode));
	else if (s->ready == READY_HEALTH && can && !key_set(s, "health"))
		svc_error(p, s, "ready", NULL, "ready = health needs a \"health\" probe");
	for (size_t i = 0; can && !key_set(s, "health") && i < sizeof(settings) / sizeof(settings[0]); i++)
		if (key_set(s, settings[i]))
			svc_error(p, s, settings[i], NULL, "%s needs a \"health\" probe", settings[i]);
	if (can && s->health.kind == HEALTH_EXEC && s->health.argv && s->health.argv[0] && !sets_path(s)) {
		int err = conf_sys_exec(p, s->health.argv[0]);

		if (err)
			svc_error(p, s, "health", NULL, "the health probe's program \"%s\" cannot run: %s",
				  s->health.argv[0], strerror(err));
	}
}

/* The user's primary group unless `group` says otherwise; supplementary
 * groups from the user's entry. `group` alone keeps droverd's user but
 * drops every supplementary group. */
static void resolve_credentials(struct parse *p, struct svc_conf *s)
{
	gid_t *list;
	int n;

	if (!s->has_user)
		return;
	if (!s->has_group) {
		if (s->user_gid == (gid_t)-1) {
			svc_error(p, s, "user", NULL, "user %s has no entry in the user database: "
				  "give \"group\" as well", s->user);
			return;
		}
		s->gid = s->user_gid;
	}
	if (s->user_gid == (gid_t)-1)
		return;		/* numeric id: no entry, no supplementary groups */
	if ((n = conf_sys_groups(p, s->user, s->gid, &list)) >= 0) {
		s->groups = list;
		s->ngroups = n;
	}
}

static void check_references(struct parse *p, struct svc_conf *s)
{
	for (int i = 0; i < s->nrequires; i++) {
		if (strcmp(s->requires[i], s->name) == 0)
			svc_error_line(p, s, s->requires_line[i], "service cannot require itself");
		else if (!conf_find(p->c, s->requires[i]))
			svc_error_line(p, s, s->requires_line[i], "requires \"%s\", which is not defined",
				       s->requires[i]);
	}
	for (int i = 0; i < s->nafter; i++) {
		if (strcmp(s->after[i], s->name) == 0)
			svc_error_line(p, s, s->after_line[i], "service cannot be ordered after itself");
		else if (!conf_find(p->c, s->after[i]))
			svc_error_line(p, s, s->after_line[i], "after \"%s\", which is not defined", s->after[i]);
	}
}

/* Depth-first search over requires+after. A back edge is a cycle; it is
 * reported once, from the service where the search met it, with the whole
 * loop spelt out. */
struct dfs {
	struct parse *p;
	int *color;		/* 0 new, 1 on stack, 2 done */
	int *stack, depth;
};

static int svc_index(const struct conf *c, const char *name)
{
	for (int i = 0; i < c->nsvcs; i++)
		if (strcmp(c->svcs[i]->name, name) == 0)
			return i;
	return -1;
}

/* The line of the requires or after that names `to` (the edge closing a
 * cycle). */
static int edge_line(const struct svc_conf *s, const char *to)
{
	for (int i = 0; i < s->nrequires; i++)
		if (strcmp(s->requires[i], to) == 0)
			return s->requires_line[i];
	for (int i = 0; i < s->nafter; i++)
		if (strcmp(s->after[i], to) == 0)
			return s->after_line[i];
	return s->line;
}

static void report_cycle(struct dfs *d, int to)
{
	struct conf *c = d->p->c;
	char text[900];
	size_t n = 0;
	int start = d->depth - 1;
	struct svc_conf *first;

	while (start > 0 && d->stack[start] != to)
		start--;
	for (int i = start; i < d->depth && n < sizeof(text) - 80; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s -> ", c->svcs[d->stack[i]]->name);
	snprintf(text + n, sizeof(text) - n, "%s", c->svcs[to]->name);
	first = c->svcs[d->stack[d->depth - 1]];
	svc_error_line(d->p, first, edge_line(first, c->svcs[to]->name), "dependency cycle: %s", text);
}

static void dfs_visit(struct dfs *d, int v);

static void dfs_edge(struct dfs *d, const char *name)
{
	int w = svc_index(d->p->c, name);

	if (w < 0)
		return;
	if (d->color[w] == 1)
		report_cycle(d, w);
	else if (d->color[w] == 0)
		dfs_visit(d, w);
}

static void dfs_visit(struct dfs *d, int v)
{
	struct svc_conf *s = d->p->c->svcs[v];

	d->color[v] = 1;
	d->stack[d->depth++] = v;
	for (int i = 0; i < s->nrequires; i++)
		if (strcmp(s->requires[i], s->name) != 0)
			dfs_edge(d, s->requires[i]);
	for (int i = 0; i < s->nafter; i++)
		if (strcmp(s->after[i], s->name) != 0)
			dfs_edge(d, s->after[i]);
	d->depth--;
	d->color[v] = 2;
}

static void check_cycles(struct parse *p)
{
	struct conf *c = p->c;
	struct dfs d = { p, calloc((size_t)c->nsvcs + 1, sizeof(int)),
			 calloc((size_t)c->nsvcs + 1, sizeof(int)), 0 };

	if (d.color && d.stack)
		for (int i = 0; i < c->nsvcs; i++)
			if (d.color[i] == 0)
				dfs_visit(&d, i);
	free(d.color);
	free(d.stack);
}

/* Two listen lines for one address would fail at bind time; say so now. */
static void check_listeners(struct parse *p)
{
	struct conf *c = p->c;

	for (int i = 0; i < c->nsvcs; i++) {
		struct svc_conf *s = c->svcs[i];

		for (int j = 0; j < s->nlisten; j++) {
			for (int k = 0; k <= i; k++) {
				struct svc_conf *o = c->svcs[k];
				int lim = k == i ? j : o->nlisten;

				for (int m = 0; m < lim; m++) {
					if (o->listen[m].socktype != s->listen[j].socktype ||
					    memcmp(&o->listen[m].addr, &s->listen[j].addr, sizeof(s->listen[j].addr)) != 0)
						continue;
					if (o->listen[m].reuseport && s->listen[j].reuseport && o != s)
						continue;
					conf_error_at(p, s->file, s->listen[j].line,
						      "listen %s in [service %s] is already used by [service %s] at %s:%d",
						      s->listen[j].text, s->name, o->name, o->file, o->listen[m].line);
					goto next;
				}
			}
next:;
		}
	}
}

void conf_check(struct parse *p)
{
	struct conf *c = p->c;

	for (int i = 0; i < c->nsvcs; i++) {
		struct svc_conf *s = c->svcs[i];

		if (!s->argv && !key_set(s, "command"))
			svc_error(p, s, NULL, NULL, "no command given");
		apply_mode_defaults(s);
		check_mode_keys(p, s);
		check_mode_rules(p, s);
		check_health(p, s);
		resolve_credentials(p, s);
		check_references(p, s);
	}
	check_cycles(p);
	check_listeners(p);
}
