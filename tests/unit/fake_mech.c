/* fake_mech.c - see fake_mech.h.
 *
 * Each function below stands in, at link time, for the mechanism of the
 * same name that the policy calls (loop.c, proc.c, launch.c, listen.c,
 * cgroup.c, scarce.c, svclog.c, log.c). They do the part of the real one
 * the policy can see (a process record, stopping = true, a listener with a
 * descriptor) and nothing of the system. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "cgroup.h"
#include "deps.h"
#include "fake_mech.h"
#include "health.h"
#include "probe.h"
#include "launch.h"
#include "listen.h"
#include "log.h"
#include "loop.h"
#include "proc.h"
#include "scarce.h"
#include "svclog.h"

int64_t fake_now;
int fake_critical_calls;
int fake_critical_code;

/* ---- the clock and the timers -------------------------------------------- */

/* realloc, or the test fails. */
static void *grow(void *v, size_t n, size_t size)
{
	void *w = realloc(v, n * size);

	assert_non_null(w);
	return w;
}

static struct timer **timers;	/* armed timers; t->idx is position + 1 */
static unsigned long *seqs;	/* arming order, for equal deadlines */
static unsigned ntimers, cap_timers;
static unsigned long seq;

int64_t loop_now(void)
{
	return fake_now;
}

void timer_cancel(struct timer *t)
{
	unsigned i;

	if (!t->idx)
		return;
	i = t->idx - 1;
	t->idx = 0;
	if (i != --ntimers) {
		timers[i] = timers[ntimers];
		seqs[i] = seqs[ntimers];
		timers[i]->idx = i + 1;
	}
}

void timer_at(struct timer *t, int64_t when, timer_fn *fn)
{
	timer_cancel(t);
	if (ntimers == cap_timers) {
		cap_timers = cap_timers ? 2 * cap_timers : 64;
		timers = grow(timers, cap_timers, sizeof(struct timer *));
		seqs = grow(seqs, cap_timers, sizeof(*seqs));
	}
	t->when = when;
	t->fn = fn;
	timers[ntimers] = t;
	seqs[ntimers] = seq++;
	t->idx = ++ntimers;
}

void timer_after(struct timer *t, int64_t delay, timer_fn *fn)
{
	timer_at(t, fake_now + delay, fn);
}

/* The armed timer due first (earliest deadline, then earliest armed). */
static struct timer *first_timer(void)
{
	unsigned best = 0;

	if (!ntimers)
		return NULL;
	for (unsigned i = 1; i < ntimers; i++)
		if (timers[i]->when < timers[best]->when ||
		    (timers[i]->when == timers[best]->when && seqs[i] < seqs[best]))
			best = i;
	return timers[best];
}

/* One iteration of the loop at the deadline of the first timer: every
 * timer due by then fires, then the idle hook. */
static void fire_batch(void)
{
	struct timer *t = first_timer();
	int guard = 0;

	if (t->when > fake_now)
		fake_now = t->when;
	while ((t = first_timer()) && t->when <= fake_now) {
		if (++guard > 100000)
			fail_msg("timers keep firing at %lld ms", (long long)fake_now);
		timer_cancel(t);
		t->fn(t);
	}
	fake_evaluate();
}

void fake_advance(int64_t ms)
{
	int64_t until = fake_now + ms;
	struct timer *t;
	int guard = 0;

	while ((t = first_timer()) && t->when <= until) {
		if (++guard > 100000)
			fail_msg("timers keep firing before %lld ms", (long long)until);
		fire_batch();
	}
	fake_now = until;
}

void fake_late(int64_t ms)
{
	struct timer *t = first_timer();

	fake_now += ms;
	if (t && t->when <= fake_now)
		fire_batch();
}

bool fake_step(void)
{
	if (!first_timer())
		return false;
	fire_batch();
	return true;
}

void fake_evaluate(void)
{
	svc_evaluate_all();
}

/* ---- descriptors ----------------------------------------------------------- */

int loop_add(struct watch *w, int fd, uint32_t events, watch_fn *fn)
{
	w->fd = fd;
	w->events = events;
	w->fn = fn;
	w->active = true;
	return 0;
}

void loop_del(struct watch *w)
{
	w->active = false;
}

/* ---- what was asked ----------------------------------------------------------- */

static struct fake_event *events;
static int nevents, cap_events;

static struct fake_event *record(enum fake_kind kind, const struct service *s, pid_t pid, int sig)
{
	struct fake_event *e;

	if (nevents == cap_events) {
		cap_events = cap_events ? 2 * cap_events : 64;
		events = grow(events, (size_t)cap_events, sizeof(*events));
	}
	e = &events[nevents++];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	snprintf(e->name, sizeof(e->name), "%s", s ? s->conf->name : "?");
	e->pid = pid;
	e->sig = sig;
	e->at = fake_now;
	e->gen = s ? s->generation : 0;
	e->slot = -1;
	return e;
}

int fake_nevents(void)
{
	return nevents;
}

const struct fake_event *fake_event_at(int i)
{
	return i >= 0 && i < nevents ? &events[i] : NULL;
}

int fake_find(enum fake_kind kind, const char *name, int n)
{
	for (int i = 0; i < nevents; i++)
		if (events[i].kind == kind && strcmp(events[i].name, name) == 0 && n-- == 0)
			return i;
	return -1;
}

int fake_count(enum fake_kind kind, const char *name)
{
	int n = 0;

	for (int i = 0; i < nevents; i++)
		n += events[i].kind == kind && strcmp(events[i].name, name) == 0;
	return n;
}

int64_t fake_launch_time(const char *name, int n)
{
	int i = fake_find(FK_LAUNCH, name, n);

	return i < 0 ? -1 : events[i].at;
}

bool fake_stop_asked(pid_t pid)
{
	for (int i = 0; i < nevents; i++)
		if (events[i].pid == pid &&
		    (events[i].kind == FK_STOP || events[i].kind == FK_STOP_SIGNALLED || events[i].kind == FK_KILL))
			return true;
	return false;
}

bool fake_signalled(pid_t pid, int sig)
{
	for (int i = 0; i < nevents; i++)
		if (events[i].pid == pid && events[i].sig == sig &&
		    (events[i].kind == FK_SIGNAL || events[i].kind == FK_STOP))
			return true;
	return false;
}

/* ---- processes ------------------------------------------------------------- */

static unsigned live;
static pid_t next_pid = 100;
static int fail_launches, fail_launch_errno;
static char fail_launch_why[200];

void fake_fail_launches(int n, int err, const char *why)
{
	fail_launches = n;
	fail_launch_errno = err;
	snprintf(fail_launch_why, sizeof(fail_launch_why), "%s", why);
}

struct proc *launch_proc(struct service *s, const struct launch_opts *o, char *err, size_t len)
{
	struct proc *p;

	if (fail_launches > 0) {
		fail_launches--;
		record(FK_LAUNCH_FAILED, s, 0, 0);
		snprintf(err, len, "%s", fail_launch_why);
		errno = fail_launch_errno;
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	assert_non_null(p);
	p->pid = next_pid++;
	p->pidfd = -1;
	p->svc = s;
	p->started = fake_now;
	p->next = s->procs;
	s->procs = p;
	s->nprocs++;
	p->gen = s->generation;
	live++;
	record(FK_LAUNCH, s, p->pid, 0)->slot = o->slot;
	return p;
}

unsigned proc_count(void)
{
	return live;
}

int proc_signal(struct proc *p, int sig)
{
	record(FK_SIGNAL, p->svc, p->pid, sig);
	return 0;
}

void proc_stop(struct proc *p, int sig, int64_t timeout)
{
	(void)timeout;
	if (!p->stopping) {
		p->stopping = true;
		record(FK_STOP, p->svc, p->pid, sig);
	}
}

void proc_stop_signalled(struct proc *p, int64_t timeout)
{
	(void)timeout;
	if (!p->stopping) {
		p->stopping = true;
		record(FK_STOP_SIGNALLED, p->svc, p->pid, 0);
	}
}

void proc_kill(struct proc *p)
{
	p->stopping = p->killed = true;
	record(FK_KILL, p->svc, p->pid, 9);
}

/* The record leaves its service's list (proc.c's unlink_service). */
static void proc_unlink(struct proc *p)
{
	struct service *s = p->svc;

	for (struct proc **pp = &s->procs; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			s->nprocs--;
			break;
		}
	free(p);
	live--;
}

void fake_exit(struct proc *p, int status)
{
	struct service *s = p->svc;

	assert_non_null(s);
	assert_false(p->exited);
	p->exited = true;
	svc_proc_exited(p, status);
	proc_unlink(p);
	svc_procs_gone(s);
	fake_evaluate();
}

struct proc *fake_proc(const char *name)
{
	struct service *s = fake_svc(name);

	for (struct proc *p = s->procs; p; p = p->next)	/* newest first */
		if (!p->exited)
			return p;
	return NULL;
}

void fake_notify(struct proc *p, const char *key, const char *value)
{
	svc_notify(p, key, value);
	fake_evaluate();
}

/* ---- listeners --------------------------------------------------------------- */

static int fail_listen_errno;
static char fail_listen_why[200];
static int next_fd = 10000;	/* never a real descriptor: nothing uses it */

void fake_fail_listen(int err, const char *why)
{
	fail_listen_errno = err;
	snprintf(fail_listen_why, sizeof(fail_listen_why), "%s", why);
}

int listen_open(struct service *s, char *err, size_t len)
{
	if (fail_listen_errno) {
		snprintf(err, len, "%s", fail_listen_why);
		errno = fail_listen_errno;
		fail_listen_errno = 0;
		return -1;
	}
	if (!s->lis && s->conf->nlisten) {
		s->lis = calloc((size_t)s->conf->nlisten, sizeof(*s->lis));
		assert_non_null(s->lis);
		s->nlis = s->conf->nlisten;
		for (int i = 0; i < s->nlis; i++) {
			s->lis[i].fd = -1;
			s->lis[i].w.fd = -1;
			s->lis[i].conf = &s->conf->listen[i];
			s->lis[i].svc = s;
		}
	}
	for (int i = 0; s->lis && i < s->nlis; i++)
		if (s->lis[i].fd < 0)
			s->lis[i].fd = next_fd++;
	return 0;
}

void listen_close(struct service *s)
{
	free(s->lis);
	s->lis = NULL;
	s->nlis = 0;
	free(s->retired);
	s->retired = NULL;
	s->nretired = 0;
}

void listen_close_retired(struct service *s)
{
	(void)s;
}

void listen_rebuild(struct service *s)
{
	(void)s;
}

void listen_set_nonblocking(struct service *s, bool on)
{
	(void)s;
	(void)on;
}

bool fake_watching(const char *name)
{
	struct service *s = fake_svc(name);

	for (int i = 0; i < s->nlis; i++)
		if (s->lis[i].w.active)
			return true;
	return false;
}

bool fake_connection(const char *name)
{
	struct service *s = fake_svc(name);

	for (int i = 0; i < s->nlis; i++) {
		struct watch *w = &s->lis[i].w;

		if (w->active) {
			w->fn(w, EPOLLIN);
			fake_evaluate();
			return true;
		}
	}
	return false;
}

/* ---- cgroups: not in use -------------------------------------------------------- */

bool cgroup_enabled(void)
{
	return false;
}

struct cgroup *cgroup_open(const char *name, void (*emptied)(void *arg), void *arg, char *err, size_t len)
{
	(void)name;
	(void)emptied;
	(void)arg;
	snprintf(err, len, "cgroups are not in use");
	return NULL;
}

void cgroup_close(struct cgroup *cg)
{
	(void)cg;
}

bool cgroup_populated(const struct cgroup *cg)
{
	(void)cg;
	return false;
}

bool cgroup_all_empty(void)
{
	return true;
}

bool cgroup_stop(struct cgroup *cg, int sig, int64_t timeout)
{
	(void)cg;
	(void)sig;
	(void)timeout;
	return false;
}

void cgroup_kill(struct cgroup *cg)
{
	(void)cg;
}

int cgroup_apply_limits(struct cgroup *c, const struct svc_conf *s, char *err, size_t len)
{
	(void)c;
	(void)s;
	(void)err;
	(void)len;
	return 0;
}

/* ---- scarce resources: scarce.c's rules, without its log lines -------------- */

bool scarce_errno(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOMEM || err == ENOBUFS || err == EAGAIN;
}

void scarce_fail(struct scarce *sc, timer_fn *fn, const char *what, const char *reason)
{
	log_msg(LV_WARN, "%s: %s", what, reason);
	if (!sc->since) {
		sc->since = fake_now;
		sc->delay = SCARCE_FIRST_MS;
	}
	sc->failures++;
	timer_after(&sc->t, sc->delay, fn);
}

void scarce_ok(struct scarce *sc, const char *what)
{
	log_msg(LV_INFO, "%s", what);
	scarce_cancel(sc);
}

void scarce_cancel(struct scarce *sc)
{
	timer_cancel(&sc->t);
	sc->since = 0;
	sc->failures = 0;
}

/* ---- health probes: recorded, ended by the test ------------------------------------ */

/* A probe "runs" while s->probe is this marker (probe.c's struct stays
 * opaque here). */
static char probe_marker;
#define RUNNING ((struct probe *)(void *)&probe_marker)

int probe_start(struct service *s)
{
	if (s->probe)
		return -1;
	record(FK_PROBE, s, 0, 0);
	s->probe = RUNNING;
	return 0;
}

bool probe_running(const struct service *s)
{
	return s->probe != NULL;
}

void probe_cancel(struct service *s)
{
	s->probe = NULL;
}

void probe_exited(struct proc *p, int status)
{
	(void)p;
	(void)status;
}

bool fake_probe_running(const char *name)
{
	return probe_running(fake_svc(name));
}

void fake_probe_done(const char *name, bool ok, const char *why)
{
	struct service *s = fake_svc(name);

	assert_non_null(s->probe);
	s->probe = NULL;
	health_probe_done(s, ok, why);
	svc_evaluate_all();
}

/* ---- service logs: none ----------------------------------------------------------- */

void svclog_configure(struct service *s)
{
	(void)s;
}

void svclog_free(struct service *s)
{
	(void)s;
}

/* ---- droverd's log, captured ---------------------------------------------------------- */

static char *logbuf;
static size_t loglen, logcap;

void log_msg(enum log_level lv, const char *fmt, ...)
{
	static const char lvl[] = "EWID";
	char line[1024];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (getenv("FAKE_LOG"))
		fprintf(stderr, "  [%6lld] %c: %s\n", (long long)fake_now, lvl[lv], line);
	n = strlen(line) + 4;
	if (loglen + n + 1 > logcap) {
		logcap = 2 * (loglen + n + 1);
		logbuf = grow(logbuf, logcap, 1);
	}
	snprintf(logbuf + loglen, logcap - loglen, "%c: %s\n", lvl[lv], line);
	loglen += n;
}

const char *fake_log(void)
{
	return logbuf ? logbuf : "";
}

bool fake_log_has(const char *needle)
{
	return strstr(fake_log(), needle) != NULL;
}

int fake_log_count(const char *needle)
{
	int n = 0;

	for (const char *p = fake_log(); (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* ---- set-up ---------------------------------------------------------------------------------- */

static void critical_ended(int code)
{
	fake_critical_calls++;
	fake_critical_code = code;
}

static void settled(void)
{
}

static const struct svc_events up = { .critical_ended = critical_ended, .settled = settled };
static struct conf *booted;

void fake_setup(void)
{
	fake_now = 1000;
	ntimers = 0;
	nevents = 0;
	loglen = 0;
	if (logbuf)
		logbuf[0] = '\0';
	fail_launches = 0;
	fail_listen_errno = 0;
	fake_critical_calls = 0;
	fake_critical_code = -1;
	svc_bad_transitions = 0;
	svc_set_events(&up);
}

struct conf *fake_boot(const char *text)
{
	char path[] = "/tmp/drover-policy-XXXXXX";
	struct conf_errors errs = { 0 };
	size_t n = strlen(text);
	int fd = mkstemp(path);
	struct conf *c;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	close(fd);
	c = conf_load(path, false, &errs);
	unlink(path);
	for (int i = 0; i < errs.n; i++)
		print_message("  configuration: %s\n", errs.msg[i]);
	conf_errors_free(&errs);
	if (!c) {
		fail_msg("configuration refused");
		return NULL;
	}
	c->refs++;		/* ours, until fake_teardown */
	booted = c;
	/* As droverd's start_services: every service, then what is not
	 * manual is wanted (with what it requires), then one evaluation. */
	for (int i = 0; i < c->nsvcs; i++)
		assert_non_null(svc_new(c->svcs[i], c));
	for (struct service *s = services; s; s = s->next)
		if (s->conf->start != START_MANUAL)
			deps_pull_up(s);
	svc_schedule();
	fake_evaluate();
	return c;
}

struct service *fake_svc(const char *name)
{
	struct service *s = svc_find(name);

	if (!s)
		fail_msg("no service %s", name);
	return s;
}

/* Every record goes without a word to the policy; then the services go as
 * a reload removes them (not wanted, no process: freed by the evaluator),
 * which also empties its list of services to evaluate. */
void fake_teardown(void)
{
	for (struct service *s = services; s; s = s->next) {
		while (s->procs)
			proc_unlink(s->procs);
		s->want = false;
		s->removed = true;
	}
	svc_schedule();
	svc_evaluate_all();
	assert_null(services);
	conf_release(booted);
	booted = NULL;
	ntimers = 0;
}

/* ---- what every policy test shares ---------------------------------------------- */

int fake_test_setup(void **state)
{
	(void)state;
	fake_setup();
	return 0;
}

int fake_test_teardown(void **state)
{
	(void)state;
	fake_teardown();
	return 0;
}

void fake_assert_state(const char *name, enum svc_state st)
{
	struct service *s = fake_svc(name);

	if (s->state != st)
		fail_msg("%s is %s, expected %s (reason: %s)\n%s", name, svc_state_name(s->state),
			 svc_state_name(st), svc_reason(s), fake_log());
}

void fake_assert_reason(const char *name, const char *want)
{
	const char *got = svc_reason(fake_svc(name));

	if (strcmp(got, want) != 0)
		fail_msg("%s: reason \"%s\", expected \"%s\"", name, got, want);
}

void fake_assert_no_bad_transition(void)
{
	if (svc_bad_transitions || fake_log_has("internal error"))
		fail_msg("a transition outside the table:\n%s", fake_log());
}
