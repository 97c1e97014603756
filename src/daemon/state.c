/* state.c - see state.h. */
#include "state.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "buf.h"
#include "handover.h"
#include "listen.h"
#include "log.h"
#include "output.h"
#include "pool.h"
#include "proc.h"
#include "reap.h"
#include "service.h"
#include "svclog.h"

enum { STATE_MAX = 64 << 20, FDS_MAX = 65536 };

/* --- encoding ------------------------------------------------------------- */

static void put_escaped(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	if (!*s)
		buf_addc(b, '%');	/* "%" alone: the empty string */
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || strchr("_.@:/,+-[]*", c)) {
			buf_addc(b, (char)c);
		} else {
			buf_addc(b, '%');
			buf_addc(b, hex[c >> 4]);
			buf_addc(b, hex[c & 15]);
		}
	}
}

static void put_str(struct buf *b, const char *key, const char *value)
{
	buf_printf(b, " %s=", key);
	put_escaped(b, value ? value : "");
}

static void put_int(struct buf *b, const char *key, long long v)
{
	buf_printf(b, " %s=%lld", key, v);
}

/* Descriptors named in the state lose close-on-exec; remembered so that
 * an exec that does not happen can put it back. */
static int *unflagged;
static int nunflagged;

static void keep_fd(int fd)
{
	int *v;

	if (fd < 0 || fcntl(fd, F_SETFD, 0) < 0)
		return;
	if ((v = realloc(unflagged, sizeof(*v) * (size_t)(nunflagged + 1)))) {
		unflagged = v;
		v[nunflagged++] = fd;
	}
}

void state_abandon(void)
{
	for (int i = 0; i < nunflagged; i++)
		fcntl(unflagged[i], F_SETFD, FD_CLOEXEC);
	free(unflagged);
	unflagged = NULL;
	nunflagged = 0;
}

static int64_t when(const struct timer *t)
{
	return timer_armed(t) ? t->when : -1;
}

static void save_service(struct buf *b, struct service *s, bool with_procs)
{
	struct pool_saved ps;

	buf_adds(b, "service ");
	put_escaped(b, s->conf->name);
	put_int(b, "gen", s->generation);
	put_int(b, "state", s->state);
	put_int(b, "want", s->want);
	put_int(b, "restarts", s->restarts);
	put_int(b, "failures", s->failures);
	put_int(b, "since", s->since);
	put_int(b, "next_attempt", s->next_attempt);
	put_int(b, "last_status", s->last_status);
	put_int(b, "demand", s->started_by_demand);
	put_int(b, "listen_failed", s->listen_failed);
	put_int(b, "fail_pending", s->fail_pending);
	put_int(b, "next_every", s->next_every);
	put_int(b, "last_every", s->last_every);
	put_int(b, "next_at", (long long)s->next_at);
	put_int(b, "restart_at", when(&s->t_restart));
	put_int(b, "ready_at", when(&s->t_ready));
	put_int(b, "watchdog_at", when(&s->t_watchdog));
	put_int(b, "sched", timer_armed(&s->t_sched));
	put_int(b, "held", !with_procs && handover_must_hold(s));
	put_str(b, "status", s->status_text);
	put_str(b, "reason", svc_reason(s));
	buf_addc(b, '\n');
	for (int i = 0; i < s->nlis; i++) {
		if (s->lis[i].fd < 0)
			continue;
		buf_adds(b, "listener ");
		put_escaped(b, s->conf->name);
		put_int(b, "index", i);
		put_int(b, "fd", s->lis[i].fd);
		put_int(b, "dev", (long long)s->lis[i].dev);
		put_int(b, "ino", (long long)s->lis[i].ino);
		put_str(b, "key", s->lis[i].conf->key);
		buf_addc(b, '\n');
		keep_fd(s->lis[i].fd);
	}
	if (pool_save(s, &ps)) {
		buf_adds(b, "pool ");
		put_escaped(b, s->conf->name);
		put_int(b, "served", (long long)ps.served);
		put_int(b, "failures", ps.failures);
		put_int(b, "throttle", ps.throttle_until);
		put_int(b, "dynamic", ps.dynamic);
		put_int(b, "rolling", ps.rolling);
		put_int(b, "serving_gen", ps.serving_gen);
		buf_addc(b, '\n');
	}
}

struct log_save {
	struct buf *b;
	const char *name;
};

static void save_log_entry(const struct log_entry *e, void *arg)
{
	struct log_save *ls = arg;
	char text[RING_BYTES / 4 + 1];
	size_t n = e->len < sizeof(text) - 1 ? e->len : sizeof(text) - 1;

	memcpy(text, e->text, n);
	text[n] = '\0';
	buf_adds(ls->b, "log ");
	put_escaped(ls->b, ls->name);
	put_int(ls->b, "when", e->when);
	put_int(ls->b, "pid", e->pid);
	put_str(ls->b, "text", text);
	buf_addc(ls->b, '\n');
}

static void save_proc(struct buf *b, struct proc *p)
{
	buf_adds(b, "proc ");
	put_escaped(b, p->svc->conf->name);
	put_int(b, "pid", p->pid);
	put_int(b, "pidfd", p->pidfd);
	put_int(b, "out", output_fd(p));
	put_int(b, "gen", p->gen);
	put_int(b, "slot", p->slot);
	put_int(b, "started", p->started);
	put_int(b, "ready", p->ready);
	put_int(b, "exited", p->exited);
	put_int(b, "stopping", p->stopping);
	put_int(b, "killed", p->killed);
	put_int(b, "kill_at", when(&p->t_kill));
	put_int(b, "wstate", p->wstate);
	put_int(b, "speaks", p->speaks);
	put_int(b, "served", p->served);
	put_int(b, "uses", p->uses);
	put_int(b, "idle_since", p->idle_since);
	put_int(b, "source", (long long)p->source);
	buf_addc(b, '\n');
	keep_fd(p->pidfd);
	keep_fd(output_fd(p));
}

int state_save(const struct state_globals *g, bool with_procs, char *err, size_t len)
{
	struct buf b = { .max = STATE_MAX };
	int fd;

	buf_printf(&b, "drover-state %d\nglobal", STATE_VERSION);
	put_int(&b, "control", g->control_fd);
	put_str(&b, "control_path", g->control_path);
	put_int(&b, "notify", g->notify_fd);
	put_int(&b, "client", g->client_fd);
	put_str(&b, "sdnotify", g->sdnotify);
	buf_addc(&b, '\n');
	keep_fd(g->control_fd);
	keep_fd(g->notify_fd);
	keep_fd(g->client_fd);
	for (struct service *s = services; s; s = s->next)
		save_service(&b, s, with_procs);
	for (struct service *s = services; with_procs && s; s = s->next) {
		struct log_save ls = { &b, s->conf->name };

		for (struct proc *p = s->procs; p; p = p->next)
			save_proc(&b, p);
		svclog_tail(s, -1, save_log_entry, &ls);
	}
	if (!buf_adds(&b, "end\n")) {
		snprintf(err, len, "the state is too large or out of memory");
		goto fail;
	}
	if ((fd = memfd_create("drover-state", MFD_CLOEXEC)) < 0) {
		snprintf(err, len, "memfd_create: %s", strerror(errno));
		goto fail;
	}
	for (size_t off = 0; off < b.len;) {
		ssize_t w = write(fd, b.data + off, b.len - off);

		if (w <= 0) {
			snprintf(err, len, "writing the state: %s", strerror(errno));
			close(fd);
			goto fail;
		}
		off += (size_t)w;
	}
	buf_free(&b);
	return fd;
fail:
	buf_free(&b);
	state_abandon();
	return -1;
}

/* --- decoding -------------------------------------------------------------- */

/* Descriptors taken over keep close-on-exec cleared until the whole state
 * applied: if it does not, the old image is executed again and needs them. */
static int *taken;
static int ntaken;

static void adopted(int fd)
{
	int *v;

	if (fd >= 0 && (v = realloc(taken, sizeof(*v) * (size_t)(ntaken + 1)))) {
		taken = v;
		v[ntaken++] = fd;
	}
}

void state_seal(const struct state_globals *g)
{
	int own[] = { g->control_fd, g->notify_fd, g->client_fd };

	for (int i = 0; i < 3; i++)
		if (own[i] >= 0)
			fcntl(own[i], F_SETFD, FD_CLOEXEC);
	for (int i = 0; i < ntaken; i++)
		fcntl(taken[i], F_SETFD, FD_CLOEXEC);
	free(taken);
	taken = NULL;
	ntaken = 0;
}

struct record {
	char *type, *name;
	char *key[32], *value[32];
	int n;
};

static bool unescape(char *s)
{
	char *out = s;

	if (strcmp(s, "%") == 0) {
		*s = '\0';
		return true;
	}
	for (; *s; s++) {
		if (*s != '%') {
			*out++ = *s;
			continue;
		}
		if (!isxdigit((unsigned char)s[1]) || !isxdigit((unsigned char)s[2]))
			return false;
		char hex[3] = { s[1], s[2], 0 };

		*out++ = (char)strtol(hex, NULL, 16);
		s += 2;
	}
	*out = '\0';
	return true;
}

/* Splits "type NAME k=v k=v" (or "type k=v ..." for global). */
static bool parse_record(char *line, struct record *r)
{
	char *tok, *save;

	memset(r, 0, sizeof(*r));
	if (!(r->type = strtok_r(line, " ", &save)))
		return false;
	while ((tok = strtok_r(NULL, " ", &save))) {
		char *eq = strchr(tok, '=');

		if (!eq) {
			if (r->name || r->n || !unescape(tok))
				return false;
			r->name = tok;
			continue;
		}
		if (r->n == 32)
			return false;
		*eq = '\0';
		if (!unescape(eq + 1))
			return false;
		r->key[r->n] = tok;
		r->value[r->n++] = eq + 1;
	}
	return true;
}

/* Every key of a record must be one the reader knows. */
struct field {
	const char *key;
	long long *num;
	char *str;
	size_t strlen;
};

static const char *take_fields(const struct record *r, struct field *f, int nf)
{
	for (int i = 0; i < r->n; i++) {
		int j;

		for (j = 0; j < nf && strcmp(f[j].key, r->key[i]) != 0; j++)
			;
		if (j == nf)
			return "unknown field";
		if (f[j].num) {
			char *end;

			errno = 0;
			*f[j].num = strtoll(r->value[i], &end, 10);
			if (errno || *end || end == r->value[i])
				return "bad number";
		} else {
			snprintf(f[j].str, f[j].strlen, "%s", r->value[i]);
		}
	}
	return NULL;
}

/* The whole state, as lines, checked for header and trailer. */
static char *load(int fd, char *err, size_t len)
{
	struct buf b = { .max = STATE_MAX };
	char chunk[65536];
	ssize_t n;
	off_t off = 0;

	while ((n = pread(fd, chunk, sizeof(chunk), off)) > 0) {
		if (!buf_add(&b, chunk, (size_t)n)) {
			snprintf(err, len, "the state is too large");
			buf_free(&b);
			return NULL;
		}
		off += n;
	}
	if (n < 0 || !b.data || strncmp(b.data, "drover-state ", 13) != 0) {
		snprintf(err, len, "not a drover state%s%s", n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
		buf_free(&b);
		return NULL;
	}
	if (atoi(b.data + 13) != STATE_VERSION || b.len < 4 || strcmp(b.data + b.len - 4, "end\n") != 0) {
		snprintf(err, len, "state version %d (this droverd reads %d) or truncated state",
			 atoi(b.data + 13), STATE_VERSION);
		buf_free(&b);
		return NULL;
	}
	return b.data;
}

int state_read_globals(int fd, struct state_globals *g, char *err, size_t len)
{
	char *data = load(fd, err, len), *line, *save;
	long long control = -1, notify = -1, client = -1;
	struct field f[] = {
		{ "control", &control, NULL, 0 }, { "control_path", NULL, g->control_path, sizeof(g->control_path) },
		{ "notify", &notify, NULL, 0 }, { "client", &client, NULL, 0 },
		{ "sdnotify", NULL, g->sdnotify, sizeof(g->sdnotify) },
	};
	struct record r;
	const char *why = "no global record";

	if (!data)
		return -1;
	strtok_r(data, "\n", &save);
	if ((line = strtok_r(NULL, "\n", &save)) && parse_record(line, &r) && strcmp(r.type, "global") == 0)
		why = take_fields(&r, f, (int)(sizeof(f) / sizeof(f[0])));
	free(data);
	if (why) {
		snprintf(err, len, "state: %s", why);
		return -1;
	}
	g->control_fd = (int)control;
	g->notify_fd = (int)notify;
	g->client_fd = (int)client;
	return 0;
}

struct saved_service {
	long long gen, state, want, restarts, failures, since, next_attempt, last_status, demand,
		listen_failed, fail_pending, next_every, last_every, next_at, restart_at, ready_at,
		watchdog_at, sched, held;
	char status[1024], reason[SVC_REASON_MAX];
};

static const char *apply_service(const struct record *r, struct service *s, bool dry)
{
	struct saved_service v = { 0 };
	struct field f[] = {
		{ "gen", &v.gen, NULL, 0 }, { "state", &v.state, NULL, 0 }, { "want", &v.want, NULL, 0 },
		{ "restarts", &v.restarts, NULL, 0 }, { "failures", &v.failures, NULL, 0 },
		{ "since", &v.since, NULL, 0 }, { "next_attempt", &v.next_attempt, NULL, 0 },
		{ "last_status", &v.last_status, NULL, 0 }, { "demand", &v.demand, NULL, 0 },
		{ "listen_failed", &v.listen_failed, NULL, 0 }, { "fail_pending", &v.fail_pending, NULL, 0 },
		{ "next_every", &v.next_every, NULL, 0 }, { "last_every", &v.last_every, NULL, 0 },
		{ "next_at", &v.next_at, NULL, 0 }, { "restart_at", &v.restart_at, NULL, 0 },
		{ "ready_at", &v.ready_at, NULL, 0 }, { "watchdog_at", &v.watchdog_at, NULL, 0 },
		{ "sched", &v.sched, NULL, 0 }, { "held", &v.held, NULL, 0 },
		{ "status", NULL, v.status, sizeof(v.status) }, { "reason", NULL, v.reason, sizeof(v.reason) },
	};
	const char *why = take_fields(r, f, (int)(sizeof(f) / sizeof(f[0])));

	if (why || dry)
		return why;
	if (v.state < ST_STOPPED || v.state > ST_RUNNING)
		return "bad service state";
	s->generation = (unsigned)v.gen;
	s->state = (enum svc_state)v.state;
	s->want = v.want;
	s->restarts = (unsigned)v.restarts;
	s->failures = (unsigned)v.failures;
	s->since = v.since;
	s->next_attempt = v.next_attempt;
	s->last_status = (int)v.last_status;
	s->started_by_demand = v.demand;
	s->listen_failed = v.listen_failed;
	s->fail_pending = v.fail_pending;
	s->next_every = v.next_every;
	s->last_every = v.last_every;
	s->next_at = (time_t)v.next_at;
	s->held = v.held;
	s->status_text = v.status[0] ? strdup(v.status) : NULL;
	svc_set_reason(s, "%s", v.reason);
	svc_restore_timers(s, v.restart_at, v.ready_at, v.watchdog_at, v.sched);
	return NULL;
}

static const char *apply_listener(const struct record *r, struct service *s, bool dry)
{
	long long index = -1, fd = -1, dev = 0, ino = 0;
	char key[512] = "";
	struct field f[] = {
		{ "index", &index, NULL, 0 }, { "fd", &fd, NULL, 0 }, { "dev", &dev, NULL, 0 },
		{ "ino", &ino, NULL, 0 }, { "key", NULL, key, sizeof(key) },
	};
	const char *why = take_fields(r, f, (int)(sizeof(f) / sizeof(f[0])));

	if (why || dry)
		return why;
	if (fd < 0 || fd >= FDS_MAX || fcntl((int)fd, F_GETFD) < 0)
		return "listener descriptor not open";
	adopted((int)fd);
	return listen_adopt_fd(s, (int)index, (int)fd, (dev_t)dev, (ino_t)ino, key);
}

static const char *apply_pool(const struct record *r, struct service *s, bool dry)
{
	long long served = 0, failures = 0, throttle = 0, dynamic = 0, rolling = 0, serving_gen = 0;
	struct field f[] = {
		{ "served", &served, NULL, 0 }, { "failures", &failures, NULL, 0 },
		{ "throttle", &throttle, NULL, 0 }, { "dynamic", &dynamic, NULL, 0 },
		{ "rolling", &rolling, NULL, 0 }, { "serving_gen", &serving_gen, NULL, 0 },
	};
	const char *why = take_fields(r, f, (int)(sizeof(f) / sizeof(f[0])));
	struct pool_saved ps;

	if (why || dry)
		return why;
	ps.served = (uint64_t)served;
	ps.failures = (unsigned)failures;
	ps.throttle_until = throttle;
	ps.dynamic = dynamic;
	ps.rolling = rolling;
	ps.serving_gen = (unsigned)serving_gen;
	return pool_restore(s, &ps) ? NULL : "out of memory restoring a pool";
}

static const char *apply_log(const struct record *r, struct service *s, bool dry)
{
	long long when = 0, pid = 0;
	char text[RING_BYTES / 4 + 1] = "";
	struct field f[] = {
		{ "when", &when, NULL, 0 }, { "pid", &pid, NULL, 0 }, { "text", NULL, text, sizeof(text) },
	};
	const char *why = take_fields(r, f, (int)(sizeof(f) / sizeof(f[0])));
	struct log_entry e = { when, (pid_t)pid, text, strlen(text) };

	if (why || dry)
		return why;
	svclog_restore(s, &e);
	return NULL;
}

static const char *apply_proc(const struct record *r, struct service *s, bool dry)
{
	long long pid = 0, pidfd = -1, out = -1, gen = 0, slot = -1, started = 0, ready = 0, exited = 0,
		  stopping = 0, killed = 0, kill_at = -1, wstate = 0, speaks = 0, served = 0, uses = 0,
		  idle_since = 0, source = 0;
	struct field f[] = {
		{ "pid", &pid, NULL, 0 }, { "pidfd", &pidfd, NULL, 0 }, { "out", &out, NULL, 0 },
		{ "gen", &gen, NULL, 0 }, { "slot", &slot, NULL, 0 }, { "started", &started, NULL, 0 },
		{ "ready", &ready, NULL, 0 }, { "exited", &exited, NULL, 0 },
		{ "stopping", &stopping, NULL, 0 }, { "killed", &killed, NULL, 0 },
		{ "kill_at", &kill_at, NULL, 0 }, { "wstate", &wstate, NULL, 0 },
		{ "speaks", &speaks, NULL, 0 }, { "served", &served, NULL, 0 }, { "uses", &uses, NULL, 0 },
		{ "idle_since", &idle_since, NULL, 0 }, { "source", &source, NULL, 0 },
	};
	const char *why = take_fields(r, f, (int)(sizeof(f) / sizeof(f[0])));
	struct proc *p;

	if (why || dry)
		return why;
	if (pid <= 0 || wstate < W_NONE || wstate > W_BUSY)
		return "bad process record";
	if (!(p = proc_new(s, (pid_t)pid, (int)pidfd)))
		return "out of memory restoring a process";
	adopted((int)pidfd);
	adopted((int)out);
	p->gen = (unsigned)gen;
	p->slot = (int)slot;
	p->started = started;
	p->ready = ready;
	p->stopping = stopping;
	p->killed = killed;
	p->speaks = speaks;
	p->served = served;
	p->uses = (unsigned)uses;
	p->idle_since = idle_since;
	p->source = (uint64_t)source;
	if (out >= 0)
		output_attach(p, (int)out);
	if (kill_at >= 0)
		proc_arm_kill(p, kill_at);
	if (exited) {
		p->exited = true;
		proc_adopt_remnant(p);
	} else {
		reap_watch(p);
		pool_adopt_worker(s, p, (int)wstate);
	}
	return NULL;
}

/* Runs every record after the global one. With dry_conf: only parse them
 * and match their names against that configuration (no services exist). */
static int walk(int fd, const struct conf *dry_conf, char *err, size_t len)
{
	bool dry = dry_conf != NULL;
	char *data = load(fd, err, len), *line, *save;
	const char *why = NULL;
	int lineno = 1;

	if (!data)
		return -1;
	strtok_r(data, "\n", &save);
	strtok_r(NULL, "\n", &save);	/* global */
	lineno++;
	while (!why && (line = strtok_r(NULL, "\n", &save))) {
		struct record r;
		struct service *s;

		lineno++;
		if (strcmp(line, "end") == 0)
			break;
		if (!parse_record(line, &r) || !r.name) {
			why = "malformed record";
			break;
		}
		s = dry ? NULL : svc_find(r.name);
		if (dry ? !conf_find(dry_conf, r.name) : !s) {
			why = "a service that is not in the configuration";
			break;
		}
		if (strcmp(r.type, "service") == 0)
			why = apply_service(&r, s, dry);
		else if (strcmp(r.type, "listener") == 0)
			why = apply_listener(&r, s, dry);
		else if (strcmp(r.type, "pool") == 0)
			why = apply_pool(&r, s, dry);
		else if (strcmp(r.type, "proc") == 0)
			why = apply_proc(&r, s, dry);
		else if (strcmp(r.type, "log") == 0)
			why = apply_log(&r, s, dry);
		else
			why = "unknown record";
	}
	free(data);
	if (why) {
		snprintf(err, len, "state line %d: %s", lineno, why);
		return -1;
	}
	return 0;
}

int state_apply(int fd, char *err, size_t len)
{
	return walk(fd, NULL, err, len);
}

int state_check(int fd, const struct conf *c, char *err, size_t len)
{
	return walk(fd, c, err, len);
}
