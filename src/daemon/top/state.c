/* state.c - the state's text: state_encode() and state_decode(), both pure
 * (no descriptor, no global, no system call), so that unit tests and a
 * fuzzer can drive them. See state.h for the format.
 *
 * The decoder reads the state as an attacker would write it: every count,
 * index, length, string and descriptor number is checked, every field must
 * be given exactly once, and a byte left over is an error. */
#include "state.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "service.h"
#include "svclog.h"

/* Monotonic and wall-clock milliseconds: room left for adding delays. */
#define TIME_MAX (INT64_MAX / 4)
#define FD_MAX ((int64_t)STATE_FDS_MAX - 1)

enum { STATUS_MAX = 1023, KEY_MAX = 4096, LOG_TEXT_MAX = RING_BYTES / 4, FACT_DATA_MAX = 16 << 20,
       SLOTS_MAX = 4096 };

/* --- encoding --------------------------------------------------------------- */

static bool plain(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("_.@:/,+-[]*", c));
}

static void put_bytes(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	if (!n)
		buf_addc(b, '%');	/* "%" alone: the empty string */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (plain(c)) {
			buf_addc(b, (char)c);
		} else {
			buf_addc(b, '%');
			buf_addc(b, hex[c >> 4]);
			buf_addc(b, hex[c & 15]);
		}
	}
}

static void put_name(struct buf *b, const char *type, const char *name)
{
	buf_adds(b, type);
	if (name) {
		buf_addc(b, ' ');
		put_bytes(b, name, strlen(name));
	}
}

static void put_str(struct buf *b, const char *key, const char *value)
{
	buf_printf(b, " %s=", key);
	put_bytes(b, value ? value : "", value ? strlen(value) : 0);
}

static void put_int(struct buf *b, const char *key, int64_t v)
{
	buf_printf(b, " %s=%lld", key, (long long)v);
}

static void encode_conf(const struct state *st, struct buf *b)
{
	put_name(b, "conf", NULL);
	put_str(b, "path", st->conf_path);
	put_int(b, "facts", st->nfacts);
	buf_addc(b, '\n');
	for (int i = 0; i < st->nfacts; i++) {
		const struct conf_fact *f = &st->facts[i];

		put_name(b, "fact", NULL);
		put_int(b, "kind", f->kind);
		put_str(b, "key", f->key);
		buf_adds(b, " data=");
		put_bytes(b, f->data ? f->data : "", f->data ? f->len : 0);
		put_int(b, "v0", f->v[0]);
		put_int(b, "v1", f->v[1]);
		put_int(b, "v2", f->v[2]);
		buf_addc(b, '\n');
	}
}

static void encode_service(const struct state_service *v, struct buf *b)
{
	put_name(b, "service", v->name);
	put_int(b, "gen", v->gen);
	put_int(b, "state", v->state);
	put_int(b, "want", v->want);
	put_int(b, "restarts", v->restarts);
	put_int(b, "failures", v->failures);
	put_int(b, "since", v->since);
	put_int(b, "next_attempt", v->next_attempt);
	put_int(b, "last_status", v->last_status);
	put_int(b, "demand", v->demand);
	put_int(b, "listen_failed", v->listen_failed);
	put_int(b, "fail_pending", v->fail_pending);
	put_int(b, "next_every", v->next_every);
	put_int(b, "last_every", v->last_every);
	put_int(b, "next_at", v->next_at);
	put_int(b, "restart_at", v->restart_at);
	put_int(b, "ready_at", v->ready_at);
	put_int(b, "watchdog_at", v->watchdog_at);
	put_int(b, "sched", v->sched);
	put_int(b, "held", v->held);
	put_str(b, "status", v->status);
	put_str(b, "reason", v->reason);
	buf_addc(b, '\n');
	if (!v->has_pool)
		return;
	put_name(b, "pool", v->name);
	put_int(b, "served", v->pool_served);
	put_int(b, "failures", v->pool_failures);
	put_int(b, "throttle", v->pool_throttle);
	put_int(b, "dynamic", v->pool_dynamic);
	put_int(b, "rolling", v->pool_rolling);
	put_int(b, "serving_gen", v->pool_serving_gen);
	buf_addc(b, '\n');
}

static void encode_listener(const struct state *st, const struct state_listener *l, struct buf *b)
{
	put_name(b, "listener", st->svcs[l->svc].name);
	put_int(b, "index", l->index);
	put_int(b, "fd", l->fd);
	put_int(b, "dev", l->dev);
	put_int(b, "ino", l->ino);
	put_str(b, "key", l->key);
	buf_addc(b, '\n');
}

static void encode_proc(const struct state *st, const struct state_proc *p, struct buf *b)
{
	put_name(b, "proc", st->svcs[p->svc].name);
	put_int(b, "pid", p->pid);
	put_int(b, "pidfd", p->pidfd);
	put_int(b, "out", p->out);
	put_int(b, "gen", p->gen);
	put_int(b, "slot", p->slot);
	put_int(b, "started", p->started);
	put_int(b, "ready", p->ready);
	put_int(b, "exited", p->exited);
	put_int(b, "stopping", p->stopping);
	put_int(b, "killed", p->killed);
	put_int(b, "kill_at", p->kill_at);
	put_int(b, "wstate", p->wstate);
	put_int(b, "speaks", p->speaks);
	put_int(b, "served", p->served);
	put_int(b, "uses", p->uses);
	put_int(b, "idle_since", p->idle_since);
	put_int(b, "source", p->source);
	buf_addc(b, '\n');
}

static void encode_log(const struct state *st, const struct state_log *l, struct buf *b)
{
	put_name(b, "log", st->svcs[l->svc].name);
	put_int(b, "when", l->when);
	put_int(b, "pid", l->pid);
	buf_adds(b, " text=");
	put_bytes(b, l->text ? l->text : "", l->text ? l->len : 0);
	buf_addc(b, '\n');
}

/* Service records come first, each with its listeners and pool; then
 * processes and logs (they refer to services by name). */
int state_encode(const struct state *st, struct buf *b)
{
	buf_printf(b, "drover-state %d\n", STATE_VERSION);
	put_name(b, "global", NULL);
	put_int(b, "control", st->g.control_fd);
	put_str(b, "control_path", st->g.control_path);
	put_int(b, "notify", st->g.notify_fd);
	put_int(b, "client", st->g.client_fd);
	put_str(b, "sdnotify", st->g.sdnotify);
	buf_addc(b, '\n');
	if (st->conf_path)
		encode_conf(st, b);
	for (int i = 0; i < st->nsvcs; i++) {
		encode_service(&st->svcs[i], b);
		for (int j = 0; j < st->nlis; j++)
			if (st->lis[j].svc == i)
				encode_listener(st, &st->lis[j], b);
	}
	for (int i = 0; i < st->nprocs; i++)
		encode_proc(st, &st->procs[i], b);
	for (int i = 0; i < st->nlogs; i++)
		encode_log(st, &st->logs[i], b);
	return buf_adds(b, "end\n") ? 0 : -1;
}

/* --- decoding ----------------------------------------------------------------- */

struct record {
	char *type, *name;
	char *key[40], *value[40];
	int n;
};

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
		: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* In place; *len: the bytes (a "%00" is a NUL byte among them). Only
 * what the encoder writes is accepted: "%" alone, plain characters, %XX. */
static bool unescape(char *s, size_t *len)
{
	char *start = s, *out = s;

	*len = 0;
	if (strcmp(s, "%") == 0) {
		*s = '\0';
		return true;
	}
	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s != '%') {
			if (!plain((unsigned char)*s))
				return false;
			*out++ = *s;
			continue;
		}
		if (hexval(s[1]) < 0 || hexval(s[2]) < 0)
			return false;
		*out++ = (char)(hexval(s[1]) << 4 | hexval(s[2]));
		s += 2;
	}
	*out = '\0';
	*len = (size_t)(out - start);
	return true;
}

/* "type [NAME] k=v k=v": single spaces, no empty token. The name stays
 * escaped: it is unescaped with its length checked by the caller. */
static const char *split_record(char *line, struct record *r)
{
	char *tok = line;

	memset(r, 0, sizeof(*r));
	for (int i = 0; tok; i++) {
		char *sp = strchr(tok, ' '), *eq;

		if (sp)
			*sp = '\0';
		if (!*tok)
			return "an empty field (two spaces, or one at the end)";
		eq = strchr(tok, '=');
		if (i == 0) {
			r->type = tok;
		} else if (!eq && i == 1) {
			r->name = tok;
		} else if (!eq || eq == tok) {
			return "a field that is not KEY=VALUE";
		} else if (r->n == (int)(sizeof(r->key) / sizeof(r->key[0]))) {
			return "too many fields";
		} else {
			*eq = '\0';
			r->key[r->n] = tok;
			r->value[r->n++] = eq + 1;
		}
		tok = sp ? sp + 1 : NULL;
	}
	return NULL;
}

enum ftype { F_INT, F_STR, F_BYTES };

struct field {
	const char *key;
	enum ftype type;
	int64_t min, max;	/* F_INT: the range; F_STR, F_BYTES: max is the length */
	void *dst;		/* int64_t *, or char ** (malloc'd) */
	size_t *len;		/* F_BYTES: its length */
};

struct decoder {
	char *err;
	size_t errlen;
	int line;
};

static int fail(struct decoder *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct decoder *d, const char *fmt, ...)
{
	char why[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (d->line)
		snprintf(d->err, d->errlen, "state line %d: %s", d->line, why);
	else
		snprintf(d->err, d->errlen, "state: %s", why);
	return -1;
}

static int take_int(struct decoder *d, const struct field *f, const char *v)
{
	char *end;
	long long n;

	if (!*v || (*v != '-' && (*v < '0' || *v > '9')))
		return fail(d, "field %s: \"%.40s\" is not a number", f->key, v);
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || *end || end == v)
		return fail(d, "field %s: \"%.40s\" is not a number", f->key, v);
	if (n < f->min || n > f->max)
		return fail(d, "field %s: %lld is out of range (%lld to %lld)", f->key, n, (long long)f->min,
			    (long long)f->max);
	*(int64_t *)f->dst = n;
	return 0;
}

/* F_STR: a C string (no NUL byte); F_BYTES: any bytes, and their length.
 * Both NUL-terminated, malloc'd. */
static int take_str(struct decoder *d, const struct field *f, char *v)
{
	size_t n;
	char *copy;

	if (!unescape(v, &n))
		return fail(d, "field %s: bad escape or character", f->key);
	if (f->type == F_STR && memchr(v, '\0', n))
		return fail(d, "field %s: a NUL byte in a string", f->key);
	if (n > (size_t)f->max)
		return fail(d, "field %s: %zu bytes, more than %lld", f->key, n, (long long)f->max);
	if (!(copy = malloc(n + 1)))
		return fail(d, "out of memory");
	memcpy(copy, v, n);
	copy[n] = '\0';
	*(char **)f->dst = copy;
	if (f->len)
		*f->len = n;
	return 0;
}

/* Every field of the record is one of f, given once, in range; every one
 * of f is given. */
static int take_fields(struct decoder *d, struct record *r, const struct field *f, int nf)
{
	unsigned long long seen = 0;

	for (int i = 0; i < r->n; i++) {
		int j;

		for (j = 0; j < nf && strcmp(f[j].key, r->key[i]) != 0; j++)
			;
		if (j == nf)
			return fail(d, "unknown field \"%.40s\" in a %s record", r->key[i], r->type);
		if (seen & (1ULL << j))
			return fail(d, "field %s given twice", f[j].key);
		seen |= 1ULL << j;
		if (f[j].type == F_INT ? take_int(d, &f[j], r->value[i]) : take_str(d, &f[j], r->value[i]))
			return -1;
	}
	for (int j = 0; j < nf; j++)
		if (!(seen & (1ULL << j)))
			return fail(d, "field %s missing from a %s record", f[j].key, r->type);
	return 0;
}

#define NUM(k, lo, hi, p) { k, F_INT, lo, hi, p, NULL }
#define STR(k, max, p) { k, F_STR, 0, max, p, NULL }
#define BYTES(k, max, p, lenp) { k, F_BYTES, 0, max, p, lenp }
#define NF(f) ((int)(sizeof(f) / sizeof((f)[0])))
#define U32 ((int64_t)UINT32_MAX)

/* A new zeroed element at the end of *arr; NULL (and err) when out of memory. */
static void *grow(struct decoder *d, void *arrp, int *n, size_t size)
{
	char **arr = arrp, *v;

	if (*n == 0 || (*n & (*n - 1)) == 0) {
		if (*n >= INT_MAX / 2 || !(v = realloc(*arr, size * (size_t)(*n ? 2 * *n : 1)))) {
			fail(d, "out of memory");
			return NULL;
		}
		*arr = v;
	}
	v = *arr + size * (size_t)(*n)++;
	memset(v, 0, size);
	return v;
}

static int decode_global(struct decoder *d, struct record *r, struct state *st)
{
	int64_t control = -1, notify = -1, client = -1;
	char *path = NULL, *sd = NULL;
	struct field f[] = {
		NUM("control", -1, FD_MAX, &control), STR("control_path", sizeof(st->g.control_path) - 1, &path),
		NUM("notify", -1, FD_MAX, &notify), NUM("client", -1, FD_MAX, &client),
		STR("sdnotify", sizeof(st->g.sdnotify) - 1, &sd),
	};
	int rc = r->name || strcmp(r->type, "global") != 0 ? fail(d, "the global record must come first")
		: take_fields(d, r, f, NF(f));

	if (rc == 0) {
		st->g.control_fd = (int)control;
		st->g.notify_fd = (int)notify;
		st->g.client_fd = (int)client;
		snprintf(st->g.control_path, sizeof(st->g.control_path), "%s", path);
		snprintf(st->g.sdnotify, sizeof(st->g.sdnotify), "%s", sd);
	}
	free(path);
	free(sd);
	return rc;
}

static int decode_conf(struct decoder *d, struct record *r, struct state *st, int64_t *nfacts)
{
	struct field f[] = { STR("path", KEY_MAX, &st->conf_path), NUM("facts", 0, STATE_FACTS_MAX, nfacts) };

	if (r->name)
		return fail(d, "a conf record has no name");
	if (take_fields(d, r, f, NF(f)))
		return -1;
	return st->conf_path && st->conf_path[0] ? 0 : fail(d, "the configuration's path is empty");
}

/* What each kind of fact may hold (conf.h): ranges of v0..v2, whether it
 * has data, and whether that data may hold NUL bytes. */
static const struct {
	int64_t lo[3], hi[3];
	bool data, nul;
} fact_rules[FACT_KINDS] = {
	[FACT_FILE] = { { 0, INT64_MIN, INT64_MIN }, { 1, INT64_MAX, INT64_MAX }, true, true },
	[FACT_GLOB] = { { 0, 0, 0 }, { GLOB_NOMATCH > GLOB_ABORTED ? GLOB_NOMATCH : GLOB_ABORTED, INT_MAX, 0 },
			true, true },
	[FACT_USER] = { { 0, 0, 0 }, { 1, U32, U32 }, false, false },
	[FACT_UID] = { { 0, 0, 0 }, { 1, 0, U32 }, true, false },
	[FACT_GROUP] = { { 0, 0, 0 }, { 1, U32, 0 }, false, false },
	[FACT_GROUPS] = { { 0, 0, 0 }, { 1, U32, 0 }, true, false },
	[FACT_HASH] = { { 0, INT64_MIN, 0 }, { INT_MAX, INT64_MAX, 0 }, false, false },
	[FACT_EXEC] = { { 0, 0, 0 }, { INT_MAX, 0, 0 }, false, false },
};

/* A glob's matches: non-empty names, each ended by a NUL byte. */
static bool matches_valid(const char *m, size_t len)
{
	if (len && m[len - 1] != '\0')
		return false;
	for (size_t i = 0; i < len; i++)
		if (m[i] == '\0' && (i == 0 || m[i - 1] == '\0'))
			return false;
	return true;
}

static const char *fact_invalid(const struct conf_fact *f)
{
	for (int i = 0; i < 3; i++)
		if (f->v[i] < fact_rules[f->kind].lo[i] || f->v[i] > fact_rules[f->kind].hi[i])
			return "a value out of range";
	if (!f->key[0])
		return "an empty key";
	if (f->len && !fact_rules[f->kind].data)
		return "data it cannot have";
	if (!fact_rules[f->kind].nul && memchr(f->data, '\0', f->len))
		return "a NUL byte in its data";
	if (f->kind == FACT_FILE && f->v[0] && f->len > CONF_FILE_MAX)
		return "a file larger than a configuration file may be";
	if (f->kind == FACT_GLOB && f->v[0] != 0 && f->v[0] != GLOB_NOMATCH && f->v[0] != GLOB_ABORTED &&
	    f->v[0] != GLOB_NOSPACE)
		return "an unknown glob result";
	if (f->kind == FACT_GLOB && (f->v[0] == 0 ? !f->len || !matches_valid(f->data, f->len)
				     : f->v[0] != GLOB_ABORTED && f->len))
		return "bad glob matches";
	if (f->kind == FACT_UID && strspn(f->key, "0123456789") != strlen(f->key))
		return "a uid that is not a number";
	if (f->kind == FACT_GROUPS && strspn(f->data, "0123456789 ") != f->len)
		return "a group list that is not numbers";
	return NULL;
}

static int decode_fact(struct decoder *d, struct record *r, struct state *st)
{
	int64_t kind = 0;
	struct conf_fact *f;
	const char *why;

	if (r->name || strcmp(r->type, "fact") != 0)
		return fail(d, "a fact record expected (the conf record announced more)");
	if (!(f = grow(d, &st->facts, &st->nfacts, sizeof(*f))))
		return -1;
	{
		struct field fs[] = {
			NUM("kind", 0, FACT_KINDS - 1, &kind), STR("key", KEY_MAX, &f->key),
			BYTES("data", FACT_DATA_MAX, &f->data, &f->len),
			NUM("v0", INT64_MIN, INT64_MAX, &f->v[0]), NUM("v1", INT64_MIN, INT64_MAX, &f->v[1]),
			NUM("v2", INT64_MIN, INT64_MAX, &f->v[2]),
		};

		if (take_fields(d, r, fs, NF(fs)))
			return -1;
	}
	f->kind = (int)kind;
	return (why = fact_invalid(f)) ? fail(d, "a fact with %s", why) : 0;
}

/* The service a record names, decoded already. */
static int service_of(struct decoder *d, const struct record *r, const struct state *st)
{
	for (int i = st->nsvcs - 1; r->name && i >= 0; i--)
		if (st->svcs[i].name && strcmp(st->svcs[i].name, r->name) == 0)
			return i;
	fail(d, "a %s record of service \"%.80s\", which has no service record before it", r->type, r->name);
	return -1;
}

/* The record's name, unescaped: a valid service name. */
static int take_name(struct decoder *d, struct record *r)
{
	size_t n;

	if (!r->name)
		return fail(d, "a %s record without a name", r->type);
	if (!unescape(r->name, &n) || n != strlen(r->name) || !conf_name_valid(r->name))
		return fail(d, "a %s record with a bad service name", r->type);
	return 0;
}

static int decode_service(struct decoder *d, struct record *r, struct state *st)
{
	struct state_service *v;

	if (!r->name)
		return fail(d, "a service record without a name");
	for (int i = 0; i < st->nsvcs; i++)
		if (st->svcs[i].name && strcmp(st->svcs[i].name, r->name) == 0)
			return fail(d, "service %s given twice", r->name);
	if (!(v = grow(d, &st->svcs, &st->nsvcs, sizeof(*v))) || !(v->name = strdup(r->name)))
		return v ? fail(d, "out of memory") : -1;
	{
		struct field f[] = {
			NUM("gen", 0, U32, &v->gen), NUM("state", ST_STOPPED, ST_RUNNING, &v->state),
			NUM("want", 0, 1, &v->want), NUM("restarts", 0, U32, &v->restarts),
			NUM("failures", 0, U32, &v->failures), NUM("since", -TIME_MAX, TIME_MAX, &v->since),
			NUM("next_attempt", -TIME_MAX, TIME_MAX, &v->next_attempt),
			NUM("last_status", INT_MIN, INT_MAX, &v->last_status), NUM("demand", 0, 1, &v->demand),
			NUM("listen_failed", 0, 1, &v->listen_failed), NUM("fail_pending", 0, 1, &v->fail_pending),
			NUM("next_every", -TIME_MAX, TIME_MAX, &v->next_every),
			NUM("last_every", -TIME_MAX, TIME_MAX, &v->last_every),
			NUM("next_at", -TIME_MAX, TIME_MAX, &v->next_at),
			NUM("restart_at", -1, TIME_MAX, &v->restart_at), NUM("ready_at", -1, TIME_MAX, &v->ready_at),
			NUM("watchdog_at", -1, TIME_MAX, &v->watchdog_at), NUM("sched", 0, 1, &v->sched),
			NUM("held", 0, 1, &v->held), STR("status", STATUS_MAX, &v->status),
			STR("reason", SVC_REASON_MAX - 1, &v->reason),
		};

		return take_fields(d, r, f, NF(f));
	}
}

static int decode_listener(struct decoder *d, struct record *r, struct state *st, int svc)
{
	struct state_listener *l;

	if (!(l = grow(d, &st->lis, &st->nlis, sizeof(*l))))
		return -1;
	l->svc = svc;
	{
		struct field f[] = {
			NUM("index", 0, LISTEN_MAX - 1, &l->index), NUM("fd", 0, FD_MAX, &l->fd),
			NUM("dev", INT64_MIN, INT64_MAX, &l->dev), NUM("ino", INT64_MIN, INT64_MAX, &l->ino),
			STR("key", KEY_MAX, &l->key),
		};

		if (take_fields(d, r, f, NF(f)))
			return -1;
	}
	for (int i = 0; i < st->nlis - 1; i++)
		if (st->lis[i].svc == svc && st->lis[i].index == l->index)
			return fail(d, "listener %lld of service %s given twice", (long long)l->index, r->name);
	return 0;
}

static int decode_pool(struct decoder *d, struct record *r, struct state *st, int svc)
{
	struct state_service *v = &st->svcs[svc];
	struct field f[] = {
		NUM("served", 0, INT64_MAX, &v->pool_served), NUM("failures", 0, U32, &v->pool_failures),
		NUM("throttle", -TIME_MAX, TIME_MAX, &v->pool_throttle), NUM("dynamic", 0, 1, &v->pool_dynamic),
		NUM("rolling", 0, 1, &v->pool_rolling), NUM("serving_gen", 0, U32, &v->pool_serving_gen),
	};

	if (v->has_pool)
		return fail(d, "pool of service %s given twice", r->name);
	v->has_pool = true;
	return take_fields(d, r, f, NF(f));
}

static int decode_proc(struct decoder *d, struct record *r, struct state *st, int svc)
{
	struct state_proc *p;

	if (!(p = grow(d, &st->procs, &st->nprocs, sizeof(*p))))
		return -1;
	p->svc = svc;
	{
		struct field f[] = {
			NUM("pid", 1, INT_MAX, &p->pid), NUM("pidfd", -1, FD_MAX, &p->pidfd),
			NUM("out", -1, FD_MAX, &p->out), NUM("gen", 0, U32, &p->gen),
			NUM("slot", -1, SLOTS_MAX - 1, &p->slot), NUM("started", -TIME_MAX, TIME_MAX, &p->started),
			NUM("ready", 0, 1, &p->ready), NUM("exited", 0, 1, &p->exited),
			NUM("stopping", 0, 1, &p->stopping), NUM("killed", 0, 1, &p->killed),
			NUM("kill_at", -1, TIME_MAX, &p->kill_at), NUM("wstate", W_NONE, W_BUSY, &p->wstate),
			NUM("speaks", 0, 1, &p->speaks), NUM("served", 0, 1, &p->served),
			NUM("uses", 0, U32, &p->uses), NUM("idle_since", -TIME_MAX, TIME_MAX, &p->idle_since),
			NUM("source", INT64_MIN, INT64_MAX, &p->source),
		};

		if (take_fields(d, r, f, NF(f)))
			return -1;
	}
	for (int i = 0; i < st->nprocs - 1; i++)
		if (st->procs[i].pid == p->pid)
			return fail(d, "process %lld given twice", (long long)p->pid);
	return 0;
}

static int decode_log(struct decoder *d, struct record *r, struct state *st, int svc)
{
	struct state_log *l;

	if (!(l = grow(d, &st->logs, &st->nlogs, sizeof(*l))))
		return -1;
	l->svc = svc;
	{
		struct field f[] = {
			NUM("when", -TIME_MAX, TIME_MAX, &l->when), NUM("pid", 0, INT_MAX, &l->pid),
			BYTES("text", LOG_TEXT_MAX, &l->text, &l->len),
		};

		return take_fields(d, r, f, NF(f));
	}
}

/* Records after the global one, and the conf record with its facts. */
static int decode_record(struct decoder *d, struct record *r, struct state *st, int64_t *facts_left)
{
	int svc;

	if (*facts_left > 0) {
		--*facts_left;
		return decode_fact(d, r, st);
	}
	if (strcmp(r->type, "conf") == 0)
		return st->conf_path || st->nsvcs ? fail(d, "a conf record after the services, or twice")
			: decode_conf(d, r, st, facts_left);
	if (strcmp(r->type, "fact") == 0)
		return fail(d, "a fact record that the conf record did not announce");
	if (strcmp(r->type, "service") != 0 && strcmp(r->type, "listener") != 0 && strcmp(r->type, "pool") != 0 &&
	    strcmp(r->type, "proc") != 0 && strcmp(r->type, "log") != 0)
		return fail(d, "unknown record \"%.40s\"", r->type);
	if (take_name(d, r))
		return -1;
	if (strcmp(r->type, "service") == 0)
		return decode_service(d, r, st);
	if ((svc = service_of(d, r, st)) < 0)
		return -1;
	if (strcmp(r->type, "listener") == 0)
		return decode_listener(d, r, st, svc);
	if (strcmp(r->type, "pool") == 0)
		return decode_pool(d, r, st, svc);
	if (strcmp(r->type, "proc") == 0)
		return decode_proc(d, r, st, svc);
	return decode_log(d, r, st, svc);
}

static int cmp_int64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* No descriptor may be two things at once. */
static int fds_distinct(struct decoder *d, const struct state *st)
{
	size_t n = 0, cap = 3 + (size_t)st->nlis + 2 * (size_t)st->nprocs;
	int64_t *v = malloc(sizeof(*v) * cap);
	int rc = 0;

	if (!v)
		return fail(d, "out of memory");
	if (st->g.control_fd >= 0)
		v[n++] = st->g.control_fd;
	if (st->g.notify_fd >= 0)
		v[n++] = st->g.notify_fd;
	if (st->g.client_fd >= 0)
		v[n++] = st->g.client_fd;
	for (int i = 0; i < st->nlis; i++)
		v[n++] = st->lis[i].fd;
	for (int i = 0; i < st->nprocs; i++) {
		if (st->procs[i].pidfd >= 0)
			v[n++] = st->procs[i].pidfd;
		if (st->procs[i].out >= 0)
			v[n++] = st->procs[i].out;
	}
	qsort(v, n, sizeof(*v), cmp_int64);
	for (size_t i = 1; i < n && !rc; i++)
		if (v[i] == v[i - 1])
			rc = fail(d, "descriptor %lld is named twice", (long long)v[i]);
	free(v);
	return rc;
}

static int decode_header(struct decoder *d, const char *line)
{
	char want[32];

	snprintf(want, sizeof(want), "drover-state %d", STATE_VERSION);
	if (strcmp(line, want) == 0)
		return 0;
	if (strncmp(line, "drover-state ", 13) == 0)
		return fail(d, "state version \"%.20s\" (this droverd reads %d)", line + 13, STATE_VERSION);
	return fail(d, "not a drover state");
}

static int decode_lines(struct decoder *d, char *text, size_t len, struct state *st)
{
	int64_t facts_left = 0;
	char *line = text, *nl;
	struct record r;
	const char *why;

	for (d->line = 1; line < text + len; line = nl + 1, d->line++) {
		if (!(nl = strchr(line, '\n')))
			return fail(d, "truncated: the last line has no end");
		*nl = '\0';
		if (d->line == 1) {
			if (decode_header(d, line))
				return -1;
			continue;
		}
		if (strcmp(line, "end") == 0) {
			if (nl + 1 != text + len)
				return fail(d, "%zu bytes after the end record", (size_t)(text + len - nl - 1));
			if (facts_left)
				return fail(d, "%lld facts of the configuration missing", (long long)facts_left);
			if (d->line == 2)
				return fail(d, "no global record");
			return 0;
		}
		if ((why = split_record(line, &r)))
			return fail(d, "%s", why);
		if (d->line == 2 ? decode_global(d, &r, st) : decode_record(d, &r, st, &facts_left))
			return -1;
	}
	return fail(d, "truncated: no end record");
}

int state_decode(const void *buf, size_t len, struct state *out, char *err, size_t errlen)
{
	struct decoder d = { err, errlen, 0 };
	const char *nul;
	char *text;
	int rc;

	memset(out, 0, sizeof(*out));
	out->g.control_fd = out->g.notify_fd = out->g.client_fd = -1;
	if (len > STATE_MAX)
		return fail(&d, "larger than %d bytes", STATE_MAX);
	if (len && (nul = memchr(buf, '\0', len)))
		return fail(&d, "a NUL byte at offset %zu", (size_t)(nul - (const char *)buf));
	if (!(text = malloc(len + 1)))
		return fail(&d, "out of memory");
	if (len)
		memcpy(text, buf, len);
	text[len] = '\0';
	rc = len ? decode_lines(&d, text, len, out) : fail(&d, "empty");
	free(text);
	if (rc == 0) {
		d.line = 0;
		rc = fds_distinct(&d, out);
	}
	if (rc)
		state_free(out);
	return rc;
}

void state_free(struct state *st)
{
	for (int i = 0; i < st->nfacts; i++) {
		free((char *)st->facts[i].key);
		free((char *)st->facts[i].data);
	}
	for (int i = 0; i < st->nsvcs; i++) {
		free(st->svcs[i].name);
		free(st->svcs[i].status);
		free(st->svcs[i].reason);
	}
	for (int i = 0; i < st->nlis; i++)
		free(st->lis[i].key);
	for (int i = 0; i < st->nlogs; i++)
		free(st->logs[i].text);
	free(st->conf_path);
	free(st->facts);
	free(st->svcs);
	free(st->lis);
	free(st->procs);
	free(st->logs);
	memset(st, 0, sizeof(*st));
	st->g.control_fd = st->g.notify_fd = st->g.client_fd = -1;
}

bool state_names_fd(const struct state *st, int fd)
{
	if (fd < 0)
		return false;
	if (st->g.control_fd == fd || st->g.notify_fd == fd || st->g.client_fd == fd)
		return true;
	for (int i = 0; i < st->nlis; i++)
		if (st->lis[i].fd == fd)
			return true;
	for (int i = 0; i < st->nprocs; i++)
		if (st->procs[i].pidfd == fd || st->procs[i].out == fd)
			return true;
	return false;
}
