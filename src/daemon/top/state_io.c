/* state_io.c - droverd's state in and out of the running daemon: taken
 * from the services into a memfd (state_save), and, in the next image,
 * checked against the configuration and the descriptors it received, then
 * applied. The text itself is state.c's. See state.h. */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "current.h"
#include "buf.h"
#include "handover.h"
#include "listen.h"
#include "output.h"
#include "pool.h"
#include "proc.h"
#include "reap.h"
#include "service.h"
#include "svclog.h"

/* --- taking the state ------------------------------------------------------ */

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

/* The snapshot points into the running daemon (names, texts, facts): it
 * is encoded at once and its arrays freed, never its strings. */
static void take_service(struct state_service *v, struct service *s, bool with_procs)
{
	struct pool_saved ps;

	*v = (struct state_service){
		.name = (char *)s->conf->name, .gen = s->generation, .state = s->state, .want = s->want,
		.restarts = s->restarts, .failures = s->failures, .since = s->since,
		.next_attempt = s->next_attempt, .last_status = s->last_status,
		.demand = s->started_by_demand, .listen_failed = s->listen_failed,
		.fail_pending = s->fail_pending, .next_every = s->next_every, .last_every = s->last_every,
		.next_at = s->next_at, .restart_at = when(&s->t_restart), .ready_at = when(&s->t_ready),
		.watchdog_at = when(&s->t_watchdog), .sched = timer_armed(&s->t_sched),
		.held = !with_procs && handover_must_hold(s), .status = s->status_text,
		.reason = (char *)svc_reason(s),
	};
	if ((v->has_pool = pool_save(s, &ps))) {
		v->pool_served = (int64_t)ps.served;
		v->pool_failures = ps.failures;
		v->pool_throttle = ps.throttle_until;
		v->pool_dynamic = ps.dynamic;
		v->pool_rolling = ps.rolling;
		v->pool_serving_gen = ps.serving_gen;
	}
}

static bool take_proc(struct state *st, int svc, const struct proc *p)
{
	struct state_proc *v = realloc(st->procs, sizeof(*v) * (size_t)(st->nprocs + 1));

	if (!v)
		return false;
	st->procs = v;
	st->procs[st->nprocs++] = (struct state_proc){
		.svc = svc, .pid = p->pid, .pidfd = p->pidfd, .out = output_fd(p), .gen = p->gen,
		.slot = p->slot, .started = p->started, .ready = p->ready, .exited = p->exited,
		.stopping = p->stopping, .killed = p->killed, .kill_at = when(&p->t_kill),
		.wstate = p->wstate, .speaks = p->speaks, .served = p->served, .uses = p->uses,
		.idle_since = p->idle_since, .source = (int64_t)p->source,
	};
	keep_fd(p->pidfd);
	keep_fd(output_fd(p));
	return true;
}

struct log_take {
	struct state *st;
	int svc;
	bool failed;
};

static void take_log_entry(const struct log_entry *e, void *arg)
{
	struct log_take *lt = arg;
	struct state_log *v = realloc(lt->st->logs, sizeof(*v) * (size_t)(lt->st->nlogs + 1));

	if (!v) {
		lt->failed = true;
		return;
	}
	lt->st->logs = v;
	lt->st->logs[lt->st->nlogs++] = (struct state_log){
		.svc = lt->svc, .when = e->when, .pid = e->pid, .text = (char *)e->text,
		.len = e->len < RING_BYTES / 4 ? e->len : RING_BYTES / 4,
	};
}

static bool take_listeners(struct state *st, int svc, struct service *s)
{
	for (int i = 0; i < s->nlis; i++) {
		struct state_listener *v;

		if (s->lis[i].fd < 0)
			continue;
		if (!(v = realloc(st->lis, sizeof(*v) * (size_t)(st->nlis + 1))))
			return false;
		st->lis = v;
		st->lis[st->nlis++] = (struct state_listener){
			.svc = svc, .index = i, .fd = s->lis[i].fd, .dev = (int64_t)s->lis[i].dev,
			.ino = (int64_t)s->lis[i].ino, .key = (char *)s->lis[i].conf->key,
		};
		keep_fd(s->lis[i].fd);
	}
	return true;
}

static bool take(struct state *st, bool with_procs)
{
	struct conf *c = current_conf();
	int i = 0;

	if (with_procs) {
		st->conf_path = (char *)c->path;
		st->facts = c->facts;
		st->nfacts = c->nfacts;
	}
	if (!(st->svcs = calloc(svc_count() + 1, sizeof(*st->svcs))))
		return false;
	for (struct service *s = services; s; s = s->next, i++) {
		struct log_take lt = { st, i, false };

		take_service(&st->svcs[i], s, with_procs);
		st->nsvcs++;
		if (!take_listeners(st, i, s))
			return false;
		for (struct proc *p = s->procs; with_procs && p; p = p->next)
			if (!take_proc(st, i, p))
				return false;
		if (with_procs)
			svclog_tail(s, -1, take_log_entry, &lt);
		if (lt.failed)
			return false;
	}
	return true;
}

static int write_memfd(const struct buf *b, char *err, size_t len)
{
	int fd = memfd_create("drover-state", MFD_CLOEXEC);

	if (fd < 0) {
		snprintf(err, len, "memfd_create: %s", strerror(errno));
		return -1;
	}
	for (size_t off = 0; off < b->len;) {
		ssize_t w = write(fd, b->data + off, b->len - off);

		if (w <= 0) {
			snprintf(err, len, "writing the state: %s", strerror(errno));
			close(fd);
			return -1;
		}
		off += (size_t)w;
	}
	return fd;
}

int state_save(const struct state_globals *g, bool with_procs, char *err, size_t len)
{
	struct state st = { .g = *g };
	struct buf b = { .max = STATE_MAX };
	int fd = -1;

	keep_fd(g->control_fd);
	keep_fd(g->notify_fd);
	keep_fd(g->client_fd);
	if (!take(&st, with_procs) || state_encode(&st, &b) < 0)
		snprintf(err, len, "the state is too large or out of memory");
	else
		fd = write_memfd(&b, err, len);
	free(st.svcs);
	free(st.lis);
	free(st.procs);
	free(st.logs);
	buf_free(&b);
	if (fd < 0)
		state_abandon();
	return fd;
}

/* --- reading it back ------------------------------------------------------- */

int state_read(int fd, struct state *st, char *err, size_t len)
{
	struct buf b = { .max = STATE_MAX };
	char chunk[65536];
	ssize_t n;
	off_t off = 0;
	int rc;

	while ((n = pread(fd, chunk, sizeof(chunk), off)) > 0) {
		if (!buf_add(&b, chunk, (size_t)n)) {
			snprintf(err, len, "state: larger than %d bytes, or out of memory", STATE_MAX);
			buf_free(&b);
			return -1;
		}
		off += n;
	}
	if (n < 0) {
		snprintf(err, len, "state: cannot read it: %s", strerror(errno));
		buf_free(&b);
		return -1;
	}
	rc = state_decode(b.data ? b.data : "", b.len, st, err, len);
	buf_free(&b);
	return rc;
}

struct conf *state_conf(const struct state *st, char *err, size_t len)
{
	struct conf_errors errs = { 0 };
	struct conf *c;

	if (!st->conf_path) {
		snprintf(err, len, "state: no configuration came with it");
		return NULL;
	}
	if (!(c = conf_replay(st->conf_path, st->facts, st->nfacts, &errs)))
		snprintf(err, len, "the configuration in force, as the state carries it: %s",
			 errs.n ? errs.msg[0] : "out of memory");
	conf_errors_free(&errs);
	return c;
}

static const char *check_service(const struct state *st, int i, const struct svc_conf *sc)
{
	if (!sc)
		return "is not in the configuration";
	if (st->svcs[i].has_pool && sc->mode != MODE_PREFORK && sc->mode != MODE_ACCEPT)
		return "has a pool, but its mode has none";
	for (int j = 0; j < st->nlis; j++)
		if (st->lis[j].svc == i && (st->lis[j].index >= sc->nlisten ||
					    strcmp(st->lis[j].key, sc->listen[st->lis[j].index].key) != 0))
			return "has a listener that is not in the configuration";
	return NULL;
}

int state_check(const struct state *st, const struct conf *c, char *err, size_t len)
{
	const char *why;

	for (int i = 0; i < st->nsvcs; i++)
		if ((why = check_service(st, i, conf_find(c, st->svcs[i].name)))) {
			snprintf(err, len, "state: service %s %s", st->svcs[i].name, why);
			return -1;
		}
	if (st->nsvcs != c->nsvcs) {
		snprintf(err, len, "state: %d services, the configuration %d", st->nsvcs, c->nsvcs);
		return -1;
	}
	return 0;
}

/* fd is open here and of the type its record says. */
static bool fd_is(int fd, mode_t type)
{
	struct stat sb;

	return fstat(fd, &sb) == 0 && (type == 0 || (sb.st_mode & S_IFMT) == type);
}

int state_verify_fds(const struct state *st, char *err, size_t len)
{
	const char *what = NULL;
	int64_t fd = -1;

	if (!fd_is(st->g.control_fd, S_IFSOCK))
		what = "the control socket", fd = st->g.control_fd;
	else if (st->g.notify_fd >= 0 && !fd_is(st->g.notify_fd, S_IFSOCK))
		what = "the notification socket", fd = st->g.notify_fd;
	else if (st->g.client_fd >= 0 && !fd_is(st->g.client_fd, S_IFSOCK))
		what = "the client's connection", fd = st->g.client_fd;
	for (int i = 0; !what && i < st->nlis; i++)
		if (!fd_is((int)st->lis[i].fd, S_IFSOCK))
			what = "a listener", fd = st->lis[i].fd;
	for (int i = 0; !what && i < st->nprocs; i++)
		if (st->procs[i].pidfd >= 0 && !fd_is((int)st->procs[i].pidfd, 0))
			what = "a process descriptor", fd = st->procs[i].pidfd;
		else if (st->procs[i].out >= 0 && !fd_is((int)st->procs[i].out, S_IFIFO))
			what = "an output pipe", fd = st->procs[i].out;
	if (!what)
		return 0;
	snprintf(err, len, "state: %s (descriptor %lld) is not open here, or not what it should be", what,
		 (long long)fd);
	return -1;
}

/* --- applying it ------------------------------------------------------------- */

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

static void apply_service(const struct state_service *v, struct service *s)
{
	s->generation = (unsigned)v->gen;
	s->state = (enum svc_state)v->state;
	s->want = v->want;
	s->restarts = (unsigned)v->restarts;
	s->failures = (unsigned)v->failures;
	s->since = v->since;
	s->next_attempt = v->next_attempt;
	s->last_status = (int)v->last_status;
	s->started_by_demand = v->demand;
	s->listen_failed = v->listen_failed;
	s->fail_pending = v->fail_pending;
	s->next_every = v->next_every;
	s->last_every = v->last_every;
	s->next_at = (time_t)v->next_at;
	s->held = v->held;
	s->status_text = v->status[0] ? strdup(v->status) : NULL;
	svc_set_reason(s, "%s", v->reason);
	svc_restore_timers(s, v->restart_at, v->ready_at, v->watchdog_at, v->sched);
}

static const char *apply_pool(const struct state_service *v, struct service *s)
{
	struct pool_saved ps = {
		.served = (uint64_t)v->pool_served, .failures = (unsigned)v->pool_failures,
		.throttle_until = v->pool_throttle, .dynamic = v->pool_dynamic, .rolling = v->pool_rolling,
		.serving_gen = (unsigned)v->pool_serving_gen,
	};

	return pool_restore(s, &ps) ? NULL : "out of memory restoring a pool";
}

static const char *apply_proc(const struct state_proc *v, struct service *s)
{
	struct proc *p;

	if (!(p = proc_new(s, (pid_t)v->pid, (int)v->pidfd)))
		return "out of memory restoring a process";
	adopted((int)v->pidfd);
	adopted((int)v->out);
	p->gen = (unsigned)v->gen;
	p->slot = (int)v->slot;
	p->started = v->started;
	p->ready = v->ready;
	p->stopping = v->stopping;
	p->killed = v->killed;
	p->speaks = v->speaks;
	p->served = v->served;
	p->uses = (unsigned)v->uses;
	p->idle_since = v->idle_since;
	p->source = (uint64_t)v->source;
	if (v->out >= 0)
		output_attach(p, (int)v->out);
	if (v->kill_at >= 0)
		proc_arm_kill(p, v->kill_at);
	if (v->exited) {
		p->exited = true;
		proc_adopt_remnant(p);
	} else {
		reap_watch(p);
		pool_adopt_worker(s, p, (int)v->wstate);
	}
	return NULL;
}

static const char *apply_services(const struct state *st, struct service **by_index)
{
	const char *why = NULL;

	for (int i = 0; i < st->nsvcs && !why; i++) {
		if (!(by_index[i] = svc_find(st->svcs[i].name)))
			return "a service that is not in the configuration";
		apply_service(&st->svcs[i], by_index[i]);
		if (st->svcs[i].has_pool)
			why = apply_pool(&st->svcs[i], by_index[i]);
	}
	for (int i = 0; i < st->nlis && !why; i++) {
		const struct state_listener *l = &st->lis[i];

		adopted((int)l->fd);
		why = listen_adopt_fd(by_index[l->svc], (int)l->index, (int)l->fd, (dev_t)l->dev,
				      (ino_t)l->ino, l->key);
	}
	for (int i = 0; i < st->nprocs && !why; i++)
		why = apply_proc(&st->procs[i], by_index[st->procs[i].svc]);
	for (int i = 0; i < st->nsvcs && !why; i++)
		svc_taken_over(by_index[i]);
	for (int i = 0; i < st->nlogs && !why; i++) {
		const struct state_log *l = &st->logs[i];
		struct log_entry e = { l->when, (pid_t)l->pid, l->text, l->len };

		svclog_restore(by_index[l->svc], &e);
	}
	return why;
}

int state_apply(const struct state *st, char *err, size_t len)
{
	struct service **by_index = calloc((size_t)st->nsvcs + 1, sizeof(struct service *));
	const char *why = by_index ? apply_services(st, by_index) : "out of memory";

	free(by_index);
	if (why) {
		snprintf(err, len, "state: %s", why);
		return -1;
	}
	return 0;
}
