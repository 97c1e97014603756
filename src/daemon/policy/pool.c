/* pool.c - services whose processes follow connections.
 *
 * demand: a daemon with start = demand is not started until a connection
 * (or datagram) is pending on one of its listeners; the connection waits in
 * the backlog and is served by the daemon. When the daemon exits cleanly,
 * the service waits for the next one.
 *
 * prefork: `procs` workers share the listeners and accept for themselves;
 * droverd is never in the data path. Workers that use the status protocol
 * say when they are busy and idle. Only while no worker is idle (and none is
 * starting) does droverd watch the listeners, and a pending connection then
 * starts ONE more worker, up to max_procs: one per burst, as Postfix's
 * master does. Idle workers above `procs` retire after idle_timeout; a
 * worker retires after max_use connections. A worker that dies before it
 * served a connection is a failed start: the pool is throttled (backoff),
 * never refilled in a loop. Workers that never use the protocol run as a
 * pool of fixed size `procs`.
 *
 * accept: droverd accepts each connection and runs `command` with it as
 * standard input and output (inetd's nowait). At max_procs running, it
 * stops accepting and the backlog holds the rest; max_rate bounds new
 * connections per second the same way; per_source closes connections
 * beyond that many at once from one address (a table that grows with the
 * addresses that have a handler running: at most max_procs of them).
 * Out of descriptors, memory or processes (scarce.h), a connection is never
 * closed for it: accept fails and the connection stays in the backlog, or
 * a connection accepted whose handler cannot be started is kept (one, the
 * "held" connection) while nothing more is accepted, and its handler is
 * retried on a timer until it starts. */
#include "pool.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launch.h"
#include "listen.h"
#include "log.h"
#include "proc.h"
#include "scarce.h"
#include "schedule.h"
#include "value.h"

enum { SOURCES_FIRST = 16, ACCEPT_BATCH = 64 };

struct source {			/* accept: connections at once from one address */
	uint64_t key;
	unsigned count;		/* 0: a free slot */
};

struct pool {
	unsigned starting, idle, busy;	/* current generation's workers */
	unsigned running;		/* accept: handlers alive */
	uint64_t served;		/* connections taken */
	bool dynamic;			/* a worker used the status protocol */
	bool watching;
	bool stopping;
	unsigned failures;		/* workers dead before serving, in a row */
	int64_t throttle_until;
	struct timer t_retire, t_refill, t_rate;
	int64_t rate_window;		/* accept: start of this second */
	unsigned rate_count;
	unsigned char *slots;		/* prefork: DROVER_WORKER numbers in use */
	struct source *sources;		/* accept, with per_source: open addressing */
	unsigned src_cap, src_used;	/* slots (a power of 2), addresses in use */
	int held_fd;			/* accept: taken, waiting for a handler; -1 none */
	struct sockaddr_storage held_peer, held_local;
	struct scarce short_of;		/* accept: out of descriptors, memory, processes */
	int64_t last_spawn_error;
	unsigned serving_gen;		/* the last generation that was fully ready */
	bool rolling;			/* a newer generation is starting */
};

#define POOL_OF(t, field) ((struct pool *)((char *)(t) - offsetof(struct pool, field)))

static struct service *owner_of(struct pool *pl)
{
	for (struct service *s = services; s; s = s->next)
		if (s->pool == pl)
			return s;
	return NULL;
}

static unsigned workers(const struct pool *pl)
{
	return pl->starting + pl->idle + pl->busy;
}

/* Every change of a worker's state goes through here: the counters are
 * only ever adjusted in one place. */
static void worker_set(struct pool *pl, struct proc *p, int st)
{
	if (p->wstate == W_STARTING)
		pl->starting--;
	else if (p->wstate == W_IDLE)
		pl->idle--;
	else if (p->wstate == W_BUSY)
		pl->busy--;
	p->wstate = st;
	if (st == W_STARTING)
		pl->starting++;
	else if (st == W_IDLE)
		pl->idle++;
	else if (st == W_BUSY)
		pl->busy++;
}

/* --- listeners ----------------------------------------------------------- */

static void listener_event(struct watch *w, uint32_t events);

static void watch_listeners(struct service *s, bool on)
{
	struct pool *pl = s->pool;

	if (pl && pl->watching == on)
		return;
	for (int i = 0; i < s->nlis; i++) {
		struct listener *l = &s->lis[i];

		if (on && l->fd >= 0 && !l->w.active)
			loop_add(&l->w, l->fd, EPOLLIN, listener_event);
		else if (!on)
			loop_del(&l->w);
	}
	if (pl)
		pl->watching = on;
}

static bool open_listeners(struct service *s)
{
	char err[300];

	if (listen_open(s, err, sizeof(err)) == 0) {
		s->listen_failed = false;
		return true;
	}
	svc_listen_failed(s, err);
	return false;
}

static struct pool *pool_get(struct service *s)
{
	if (!s->pool && (s->pool = calloc(1, sizeof(*s->pool)))) {
		if (s->conf->mode == MODE_PREFORK)
			s->pool->slots = calloc(1, 4096);
		s->pool->held_fd = -1;
	}
	if (s->pool)
		s->pool->stopping = false;
	return s->pool;
}

/* --- demand start -------------------------------------------------------- */

void pool_wait_demand(struct service *s)
{
	if (!open_listeners(s))
		return;
	svc_set_state(s, ST_WAITING);
	svc_set_reason(s, "waiting for a first connection");
	watch_listeners(s, true);
}

/* --- prefork --------------------------------------------------------------- */

static int take_slot(struct pool *pl, unsigned max)
{
	for (unsigned i = 0; pl->slots && i < max && i < 4096; i++)
		if (!pl->slots[i]) {
			pl->slots[i] = 1;
			return (int)i;
		}
	return -1;
}

static void spawn_error(struct service *s, const char *err)
{
	struct pool *pl = s->pool;

	/* Under load this could repeat per connection: say it once a second. */
	if (loop_now() - pl->last_spawn_error >= 1000) {
		log_error("%s: %s", s->conf->name, err);
		pl->last_spawn_error = loop_now();
	}
	svc_set_reason(s, "%s", err);
}

static bool spawn_worker(struct service *s)
{
	struct pool *pl = s->pool;
	/* Up to max_procs are running, and as many may still be finishing
	 * (retired, or an older generation): slots go that far. */
	struct launch_opts o = { .slot = take_slot(pl, 2 * s->conf->max_procs + s->conf->procs), .conn_fd = -1 };
	char err[300];
	struct proc *p;

	if (!(p = launch_proc(s, &o, err, sizeof(err)))) {
		if (o.slot >= 0)
			pl->slots[o.slot] = 0;
		spawn_error(s, err);
		pl->failures++;
		pl->throttle_until = loop_now() + backoff_delay(s->conf->restart_delay,
								s->conf->restart_delay_max, pl->failures - 1);
		return false;
	}
	p->slot = o.slot;
	worker_set(pl, p, W_STARTING);
	log_debug("%s: worker %d started, pid %d", s->conf->name, o.slot, (int)p->pid);
	return true;
}

static bool throttled(const struct pool *pl)
{
	return pl->throttle_until > loop_now();
}

static void refill_timeout(struct timer *t);
static void retire_timeout(struct timer *t);
static void pool_state(struct service *s);

/* Brings the pool to what it should be: at least `procs` workers (unless
 * throttled), listeners watched only while a pending connection should grow
 * it, the retire timer armed while it is above `procs`. */
static void pool_adjust(struct service *s)
{
	struct pool *pl = s->pool;
	const struct svc_conf *c = s->conf;
	int64_t first_idle = -1;

	if (!pl || pl->stopping || c->mode != MODE_PREFORK)
		return;
	while (workers(pl) < c->procs && !throttled(pl))
		if (!spawn_worker(s))
			break;
	if (throttled(pl) && workers(pl) < c->procs)
		timer_at(&pl->t_refill, pl->throttle_until, refill_timeout);
	watch_listeners(s, pl->dynamic && pl->idle == 0 && pl->starting == 0 &&
			   workers(pl) < c->max_procs && !throttled(pl));
	if (workers(pl) > c->procs && pl->idle) {
		for (struct proc *p = s->procs; p; p = p->next)
			if (p->wstate == W_IDLE && p->gen == s->generation &&
			    (first_idle < 0 || p->idle_since < first_idle))
				first_idle = p->idle_since;
		timer_at(&pl->t_retire, first_idle + c->idle_timeout, retire_timeout);
	} else {
		timer_cancel(&pl->t_retire);
	}
}

static void refill_timeout(struct timer *t)
{
	struct service *s = owner_of(POOL_OF(t, t_refill));

	if (s) {
		pool_adjust(s);
		pool_state(s);	/* workers again: out of the throttle's backoff */
		svc_touch(s);
	}
}

static void retire(struct service *s, struct proc *p, const char *why)
{
	log_info("%s: retiring worker pid %d (%s)", s->conf->name, (int)p->pid, why);
	worker_set(s->pool, p, W_NONE);
	proc_stop(p, s->conf->stop_signal, s->conf->stop_timeout);
}

static void retire_timeout(struct timer *t)
{
	struct service *s = owner_of(POOL_OF(t, t_retire));
	int64_t now = loop_now();

	if (!s)
		return;
	for (struct proc *p = s->procs; p && workers(s->pool) > s->conf->procs; p = p->next)
		if (p->wstate == W_IDLE && p->gen == s->generation && now - p->idle_since >= s->conf->idle_timeout)
			retire(s, p, "idle above procs");
	pool_adjust(s);
}

/* Rolling: once the new generation has `procs` workers ready (or, for
 * workers that do not report, once they are started), the workers of older
 * generations are asked to finish. */
static void roll_check(struct service *s)
{
	struct pool *pl = s->pool;
	unsigned ready = pl->dynamic ? pl->idle + pl->busy : workers(pl);

	if (!pl->rolling || ready < s->conf->procs)
		return;
	for (struct proc *p = s->procs; p; p = p->next)
		if (!p->exited && p->gen != s->generation && !p->stopping)
			proc_stop(p, s->conf->stop_signal, s->conf->stop_timeout);
	pl->rolling = false;
	pl->serving_gen = s->generation;
	log_info("%s: generation %u is ready; the previous one finishes its work", s->conf->name,
		 s->generation);
	svc_touch(s);
}

/* The pool's state as a service: ready while it has workers, backoff while
 * throttled with none. */
static void pool_state(struct service *s)
{
	struct pool *pl = s->pool;

	if (!s->want || pl->stopping)
		return;
	if (workers(pl) == 0 && throttled(pl)) {
		s->next_attempt = pl->throttle_until;
		svc_set_state(s, ST_BACKOFF);
	} else if ((s->conf->ready == READY_NOTIFY && pl->idle + pl->busy == 0) ||
		   (s->conf->ready == READY_HEALTH && s->health != H_HEALTHY && s->health != H_UNHEALTHY &&
		    s->state != ST_READY)) {
		svc_set_state(s, ST_STARTING);
	} else if (workers(pl) > 0 || pl->rolling) {
		svc_set_state(s, ST_READY);
		if (!throttled(pl) && !pl->rolling)
			svc_clear_reason(s);
	}
}

/* --- accept mode ------------------------------------------------------------ */

static uint64_t address_key(const struct sockaddr_storage *ss)
{
	uint64_t h = 1469598103934665603ULL;
	const unsigned char *p;
	size_t n;

	if (ss->ss_family == AF_INET) {
		p = (const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr;
		n = 4;
	} else if (ss->ss_family == AF_INET6) {
		p = (const unsigned char *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
		n = 16;
	} else {
		return 0;	/* unix peers are all "local": one source */
	}
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h | 1;
}

static unsigned source_home(uint64_t key, unsigned cap)
{
	return (unsigned)((key * 0x9E3779B97F4A7C15ULL) >> 32) & (cap - 1);
}

static struct source *source_find(struct pool *pl, uint64_t key)
{
	for (unsigned i = pl->src_cap ? source_home(key, pl->src_cap) : 0; pl->src_cap && pl->sources[i].count;
	     i = (i + 1) & (pl->src_cap - 1))
		if (pl->sources[i].key == key)
			return &pl->sources[i];
	return NULL;
}

/* Twice the size, every address moved to its place in it. */
static bool sources_grow(struct pool *pl)
{
	unsigned cap = pl->src_cap ? pl->src_cap * 2 : SOURCES_FIRST;
	struct source *v = calloc(cap, sizeof(*v));

	if (!v)
		return false;
	for (unsigned i = 0; i < pl->src_cap; i++) {
		unsigned j = source_home(pl->sources[i].key, cap);

		if (!pl->sources[i].count)
			continue;
		while (v[j].count)
			j = (j + 1) & (cap - 1);
		v[j] = pl->sources[i];
	}
	free(pl->sources);
	pl->sources = v;
	pl->src_cap = cap;
	return true;
}

/* key's entry, or a free slot for it (count 0) that stays valid until the
 * next change to the table; NULL when there is no memory to grow it. The
 * table is kept at most half full. */
static struct source *source_get(struct pool *pl, uint64_t key)
{
	struct source *e = source_find(pl, key);
	unsigned i;

	if (e)
		return e;
	if ((pl->src_used + 1) * 2 > pl->src_cap && !sources_grow(pl))
		return NULL;
	for (i = source_home(key, pl->src_cap); pl->sources[i].count; i = (i + 1) & (pl->src_cap - 1))
		;
	pl->sources[i].key = key;
	return &pl->sources[i];
}

static void source_add(struct pool *pl, struct source *e)
{
	if (e->count++ == 0)
		pl->src_used++;
}

/* One connection of key's fewer; an address without any leaves the table
 * (linear probing: the entries after it that may move back, do). */
static void source_drop(struct pool *pl, uint64_t key)
{
	struct source *e = source_find(pl, key);
	unsigned mask = pl->src_cap - 1, i, j;

	if (!e || --e->count)
		return;
	pl->src_used--;
	for (i = j = (unsigned)(e - pl->sources);;) {
		unsigned home;

		j = (j + 1) & mask;
		if (!pl->sources[j].count)
			return;
		home = source_home(pl->sources[j].key, pl->src_cap);
		if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
			pl->sources[i] = pl->sources[j];
			pl->sources[j].count = 0;
			i = j;
		}
	}
}

/* REMOTE_ADDR/LOCAL_ADDR as inetd and systemd show them: an IPv4 client of
 * a dual-stack socket is its IPv4 address, a unix socket its path. */
static void address_env(const struct sockaddr_storage *ss, const char *prefix, char *addr,
			char *port, size_t len)
{
	char host[sizeof(((struct sockaddr_un *)0)->sun_path) + 1] = "";
	unsigned p = 0;

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, host, sizeof(host));
		p = ntohs(((const struct sockaddr_in *)ss)->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a))
			inet_ntop(AF_INET, &a->s6_addr[12], host, sizeof(host));
		else
			inet_ntop(AF_INET6, a, host, sizeof(host));
		p = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	} else if (ss->ss_family == AF_UNIX) {
		snprintf(host, sizeof(host), "%s", ((const struct sockaddr_un *)ss)->sun_path);
	}
	snprintf(addr, len, "%s_ADDR=%s", prefix, host);
	snprintf(port, len, "%s_PORT=%u", prefix, p);
}

/* accept: watch the listeners unless something says wait (max_procs
 * running, max_rate, a connection held, a retry pending). */
static void accept_rewatch(struct service *s)
{
	struct pool *pl = s->pool;

	watch_listeners(s, !pl->stopping && pl->running < s->conf->max_procs && pl->held_fd < 0 &&
			   !timer_armed(&pl->t_rate) && !timer_armed(&pl->short_of.t));
}

static void rate_timeout(struct timer *t)
{
	struct service *s = owner_of(POOL_OF(t, t_rate));

	if (s && !s->pool->stopping)
		accept_rewatch(s);
}

static bool rate_allows(struct service *s)
{
	struct pool *pl = s->pool;
	int64_t now = loop_now();

	if (!s->conf->max_rate)
		return true;
	if (now - pl->rate_window >= 1000) {
		pl->rate_window = now;
		pl->rate_count = 0;
	}
	if (pl->rate_count < s->conf->max_rate) {
		pl->rate_count++;
		return true;
	}
	timer_at(&pl->t_rate, pl->rate_window + 1000, rate_timeout);
	return false;
}

/* A handler that never reached its exec served nothing. The service may
 * have stopped accepting (and dropped its pool) meanwhile. */
static void handler_spawn_failed(struct service *s, const char *why)
{
	if (!s->pool) {
		log_error("%s: %s", s->conf->name, why);
		return;
	}
	if (s->pool->served)
		s->pool->served--;
	spawn_error(s, why);
}

/* A listener bound to one address and port accepts on that address: no
 * need to ask the kernel. A wildcard (or port 0) one: ask. */
static void local_address(const struct listener *l, int fd, struct sockaddr_storage *local)
{
	const struct listen_conf *c = l->conf;
	socklen_t sl = sizeof(*local);

	if (c->family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&c->addr;

		if (a->sin_addr.s_addr != htonl(INADDR_ANY) && a->sin_port) {
			*local = c->addr;
			return;
		}
	} else if (c->family == AF_INET6 && !c->dualstack) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&c->addr;

		if (!IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr) && a->sin6_port) {
			*local = c->addr;
			return;
		}
	}
	memset(local, 0, sizeof(*local));
	getsockname(fd, (struct sockaddr *)local, &sl);
}

/* A handler for the connection fd: 0 when fd is taken care of (a handler
 * has it, or it was closed: per_source, or a failure that will not go
 * away), or the errno of a resource that ran out, with why in err: the
 * caller still has fd. */
static int run_handler(struct service *s, int fd, const struct sockaddr_storage *peer,
		       const struct sockaddr_storage *local, char *err, size_t len)
{
	struct pool *pl = s->pool;
	char ra[160], rp[32], la[160], lp[32];
	const char *env[4] = { ra, rp, la, lp };
	/* Detached: the loop goes on accepting while the handler gets ready
	 * (a handler that cannot start is told to spawn_error later). */
	struct launch_opts o = { .slot = -1, .conn_fd = fd, .extra_env = env, .nextra = 4,
				 .no_listeners = true, .spawn_failed = handler_spawn_failed };
	uint64_t key = address_key(peer);
	struct source *src = NULL;
	struct proc *p;

	if (s->conf->per_source) {
		if (!(src = source_get(pl, key))) {
			snprintf(err, len, "cannot count connections per source: out of memory");
			return ENOMEM;
		}
		if (src->count >= s->conf->per_source) {
			log_debug("%s: per_source limit: closing a connection", s->conf->name);
			close(fd);
			return 0;
		}
	}
	address_env(peer, "REMOTE", ra, rp, sizeof(ra));
	address_env(local, "LOCAL", la, lp, sizeof(la));
	if (!(p = launch_proc(s, &o, err, len))) {
		int e = errno;

		if (scarce_errno(e))
			return e;
		close(fd);
		spawn_error(s, err);
		return 0;
	}
	close(fd);
	p->source = key;
	p->ready = p->served = true;
	if (src)
		source_add(pl, src);
	pl->running++;
	pl->served++;
	return 0;
}

static void handler_retry(struct timer *t);

/* Out of a resource: what was taken is kept (the client waits as it would
 * in the backlog), nothing more is accepted, and a retry is armed. */
static void accept_short(struct service *s, int fd, const struct sockaddr_storage *peer,
			 const struct sockaddr_storage *local, const char *why)
{
	struct pool *pl = s->pool;
	char what[160], reason[400];

	if (fd >= 0) {
		pl->held_fd = fd;
		pl->held_peer = *peer;
		pl->held_local = *local;
	}
	watch_listeners(s, false);
	snprintf(what, sizeof(what), "%s: cannot %s", s->conf->name,
		 fd >= 0 ? "start a connection handler" : "accept a connection");
	snprintf(reason, sizeof(reason), "%s; %s", why,
		 fd >= 0 ? "the connection is kept for it, new ones wait in the backlog"
			 : "connections wait in the backlog");
	scarce_fail(&pl->short_of, handler_retry, what, reason);
	svc_set_reason(s, "%s: %s", what + strlen(s->conf->name) + 2, why);
}

static void accept_recovered(struct service *s)
{
	char what[160];

	if (!scarce_on(&s->pool->short_of))
		return;
	snprintf(what, sizeof(what), "%s: accepting connections and starting handlers", s->conf->name);
	scarce_ok(&s->pool->short_of, what);
	svc_clear_reason(s);
}

static void handler_retry(struct timer *t)
{
	struct service *s = owner_of(POOL_OF(t, short_of.t));
	struct sockaddr_storage peer, local;
	char err[300];
	int fd;

	if (!s || s->pool->stopping)
		return;
	if ((fd = s->pool->held_fd) >= 0) {
		peer = s->pool->held_peer;
		local = s->pool->held_local;
		s->pool->held_fd = -1;
		if (run_handler(s, fd, &peer, &local, err, sizeof(err))) {
			accept_short(s, fd, &peer, &local, err);
			return;
		}
		accept_recovered(s);
	}
	accept_rewatch(s);
}

static void accept_ready(struct service *s, struct listener *l)
{
	struct pool *pl = s->pool;

	for (int i = 0; i < ACCEPT_BATCH && pl->held_fd < 0; i++) {
		struct sockaddr_storage peer, local;
		socklen_t pl_len = sizeof(peer);
		char err[300];
		int fd;

		if (pl->running >= s->conf->max_procs || !rate_allows(s)) {
			watch_listeners(s, false);
			return;
		}
		memset(&peer, 0, sizeof(peer));
		fd = accept4(l->fd, (struct sockaddr *)&peer, &pl_len, SOCK_CLOEXEC);
		if (fd < 0) {
			/* Out of descriptors: it stays in the backlog. */
			if (scarce_errno(errno) && errno != EAGAIN)
				accept_short(s, -1, NULL, NULL, strerror(errno));
			if (pl->rate_count)
				pl->rate_count--;	/* nothing was taken */
			return;
		}
		local_address(l, fd, &local);
		if (run_handler(s, fd, &peer, &local, err, sizeof(err))) {
			accept_short(s, fd, &peer, &local, err);
			return;
		}
		accept_recovered(s);
	}
}

/* --- events ------------------------------------------------------------------ */

static void listener_event(struct watch *w, uint32_t events)
{
	struct listener *l = (struct listener *)((char *)w - offsetof(struct listener, w));
	struct service *s = l->svc;

	(void)events;
	if (s->state == ST_WAITING) {
		/* start = demand: the first connection waits in the backlog for
		 * the process about to start. */
		watch_listeners(s, false);
		log_info("%s: connection pending: starting it", s->conf->name);
		s->started_by_demand = true;
		svc_set_state(s, ST_STOPPED);
		return;
	}
	switch (s->conf->mode) {
	case MODE_ACCEPT:
		accept_ready(s, l);
		return;
	case MODE_PREFORK:
		/* Nothing is idle and a connection waits: one more worker. */
		if (s->pool && workers(s->pool) < s->conf->max_procs) {
			log_debug("%s: connection pending and no worker idle: growing the pool", s->conf->name);
			spawn_worker(s);
		}
		pool_adjust(s);
		return;
	default:
		watch_listeners(s, false);
		return;
	}
}

void pool_start(struct service *s)
{
	struct pool *pl;

	if (!open_listeners(s))
		return;
	if (!(pl = pool_get(s))) {
		svc_failed(s, "out of memory", false, 0);
		return;
	}
	listen_set_nonblocking(s, s->conf->mode == MODE_ACCEPT);
	if (s->conf->mode == MODE_ACCEPT) {
		svc_set_state(s, ST_READY);
		svc_clear_reason(s);
		if (pl->held_fd >= 0)	/* kept through a replace: its turn first */
			timer_after(&pl->short_of.t, 0, handler_retry);
		else
			accept_rewatch(s);
		return;
	}
	svc_set_state(s, ST_STARTING);
	pl->serving_gen = s->generation;
	pool_adjust(s);
	pool_state(s);
}

void pool_healthy(struct service *s)
{
	if (s->pool && !s->pool->stopping)
		pool_state(s);
	if (s->state == ST_READY)
		timer_cancel(&s->t_ready);
}

void pool_stop_accepting(struct service *s)
{
	if (s->pool) {
		s->pool->stopping = true;
		timer_cancel(&s->pool->t_retire);
		timer_cancel(&s->pool->t_refill);
		timer_cancel(&s->pool->t_rate);
		timer_cancel(&s->pool->short_of.t);
	}
	watch_listeners(s, false);
}

void pool_release(struct service *s)
{
	struct pool *pl = s->pool;

	watch_listeners(s, false);
	if (!s->want)
		listen_close(s);
	if (!pl)
		return;
	timer_cancel(&pl->t_retire);
	timer_cancel(&pl->t_refill);
	timer_cancel(&pl->t_rate);
	scarce_cancel(&pl->short_of);
	if (pl->held_fd >= 0)
		close(pl->held_fd);	/* stopped: like those in the backlog */
	free(pl->slots);
	free(pl->sources);
	free(pl);
	s->pool = NULL;
}

static void handler_exited(struct service *s, struct proc *p, int status)
{
	struct pool *pl = s->pool;

	if (!pl)
		return;
	if (pl->running)
		pl->running--;
	source_drop(pl, p->source);
	if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		char what[128];

		svc_describe_status(status, what, sizeof(what));
		log_debug("%s: handler pid %d %s", s->conf->name, (int)p->pid, what);
	}
	if (pl->stopping || !s->want)
		return;
	/* What it held is free again: a held connection may start now. */
	if (pl->held_fd >= 0)
		timer_after(&pl->short_of.t, 0, handler_retry);
	accept_rewatch(s);
}

static void worker_exited(struct service *s, struct proc *p, int status)
{
	struct pool *pl = s->pool;
	int64_t uptime = loop_now() - p->started;
	char what[128];

	if (!pl)
		return;
	if (p->slot >= 0 && p->slot < 4096 && pl->slots)
		pl->slots[p->slot] = 0;
	worker_set(pl, p, W_NONE);
	if (p->stopping || pl->stopping || !s->want || p->gen != s->generation)
		return;
	svc_describe_status(status, what, sizeof(what));
	if (p->served || uptime >= s->conf->min_uptime) {
		pl->failures = 0;
		log_warn("%s: worker pid %d %s", s->conf->name, (int)p->pid, what);
	} else {
		int64_t d = backoff_delay(s->conf->restart_delay, s->conf->restart_delay_max, pl->failures);
		char delay[32];

		pl->failures++;
		pl->throttle_until = loop_now() + d;
		duration_format(d, delay, sizeof(delay));
		log_warn("%s: worker pid %d %s before serving a connection; throttling the pool for %s",
			 s->conf->name, (int)p->pid, what, delay);
		svc_set_reason(s, "worker %s before serving a connection; throttled for %s", what, delay);
		s->restarts++;
	}
	pool_adjust(s);
	roll_check(s);
	pool_state(s);
}

void pool_proc_exited(struct service *s, struct proc *p, int status)
{
	if (s->conf->mode == MODE_ACCEPT)
		handler_exited(s, p, status);
	else
		worker_exited(s, p, status);
}

void pool_notify(struct service *s, struct proc *p, const char *key, const char *value)
{
	struct pool *pl = s->pool;

	if (!pl || s->conf->mode != MODE_PREFORK || p->gen != s->generation || p->wstate == W_NONE)
		return;		/* stale generation, retiring, or not a worker */
	if (strcmp(key, "READY") == 0 && strcmp(value, "1") == 0) {
		p->ready = true;
		if (p->wstate == W_STARTING) {
			p->idle_since = loop_now();
			worker_set(pl, p, W_IDLE);
		}
	} else if (strcmp(key, "X_DROVER") == 0 && strcmp(value, "busy") == 0) {
		if (p->wstate != W_BUSY) {
			p->uses++;
			pl->served++;
		}
		p->served = p->ready = true;
		worker_set(pl, p, W_BUSY);
	} else if (strcmp(key, "X_DROVER") == 0 && strcmp(value, "idle") == 0) {
		p->ready = true;
		p->idle_since = loop_now();
		worker_set(pl, p, W_IDLE);
		if (s->conf->max_use && p->uses >= s->conf->max_use)
			retire(s, p, "max_use reached");
	} else {
		return;
	}
	pl->dynamic = p->speaks = true;
	pool_adjust(s);
	roll_check(s);
	pool_state(s);
}

void pool_apply_live(struct service *s)
{
	if (!s->pool || s->pool->stopping)
		return;
	if (s->conf->mode == MODE_ACCEPT)
		accept_rewatch(s);
	else
		pool_adjust(s);
}

/* s->generation was just raised. Workers of older generations keep
 * serving until the new one is ready (roll_check); a generation that was
 * still rolling in is superseded now, so at most two serve at once. */
void pool_roll(struct service *s)
{
	struct pool *pl = s->pool;

	if (!pl || pl->stopping) {
		svc_begin_stop(s, "replaced by a new definition");
		return;
	}
	for (struct proc *p = s->procs; p; p = p->next) {
		if (p->exited || p->gen == s->generation)
			continue;
		if (p->wstate != W_NONE)
			worker_set(pl, p, W_NONE);	/* counted no more */
		if (pl->rolling && p->gen != pl->serving_gen && !p->stopping)
			proc_stop(p, s->conf->stop_signal, s->conf->stop_timeout);
	}
	pl->rolling = true;
	pl->failures = 0;
	pl->throttle_until = 0;
	log_info("%s: starting generation %u beside the running one", s->conf->name, s->generation);
	svc_set_reason(s, "rolling to generation %u", s->generation);
	pool_adjust(s);
	roll_check(s);
}

bool pool_rolling(const struct service *s)
{
	return s->pool && s->pool->rolling;
}

bool pool_save(const struct service *s, struct pool_saved *out)
{
	if (!s->pool)
		return false;
	out->served = s->pool->served;
	out->failures = s->pool->failures;
	out->throttle_until = s->pool->throttle_until;
	out->dynamic = s->pool->dynamic;
	out->rolling = s->pool->rolling;
	out->serving_gen = s->pool->serving_gen;
	return true;
}

bool pool_restore(struct service *s, const struct pool_saved *in)
{
	struct pool *pl = pool_get(s);

	if (!pl)
		return false;
	pl->served = in->served;
	pl->failures = in->failures;
	pl->throttle_until = in->throttle_until;
	pl->dynamic = in->dynamic;
	pl->rolling = in->rolling;
	pl->serving_gen = in->serving_gen;
	return true;
}

void pool_adopt_worker(struct service *s, struct proc *p, int wstate)
{
	struct pool *pl = s->pool;

	if (!pl && (s->conf->mode == MODE_PREFORK || s->conf->mode == MODE_ACCEPT))
		pl = pool_get(s);
	if (!pl)
		return;
	if (s->conf->mode == MODE_ACCEPT) {
		struct source *src;

		pl->running++;
		if (s->conf->per_source && (src = source_get(pl, p->source)))
			source_add(pl, src);
		return;
	}
	if (p->slot >= 0 && p->slot < 4096 && pl->slots)
		pl->slots[p->slot] = 1;
	worker_set(pl, p, wstate);
}

void pool_describe(const struct service *s, unsigned *busy, unsigned *idle, unsigned *total,
		   uint64_t *served)
{
	const struct pool *pl = s->pool;

	*busy = pl ? (s->conf->mode == MODE_ACCEPT ? pl->running : pl->busy) : 0;
	*idle = pl ? pl->idle : 0;
	*total = pl ? (s->conf->mode == MODE_ACCEPT ? pl->running : workers(pl)) : 0;
	*served = pl ? pl->served : 0;
}
