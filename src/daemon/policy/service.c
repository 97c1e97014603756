/* service.c - the list of services and what an administrator can ask of one.
 *
 * Requests only change what is wanted; service_eval.c works out what to do
 * about it on the next evaluation. */
#include "service.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "cgroup.h"
#include "deps.h"
#include "listen.h"
#include "log.h"
#include "mode.h"
#include "pool.h"
#include "proc.h"
#include "svclog.h"
#include "value.h"

struct service *services;

/* Name index (open addressing) and reverse dependency edges, rebuilt when
 * services come, go or change their dependencies: lookups stay O(1) with
 * thousands of services. */
static struct service **table;
static unsigned table_cap;
static bool stale = true;
static struct service *tail;

void svc_index_stale(void)
{
	stale = true;
}

static unsigned name_hash(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static unsigned count;		/* services in the list, removed ones included */

static void index_build(void)
{
	unsigned n = 0, cap = 16;

	for (struct service *s = services; s; s = s->next)
		n++;
	count = n;
	while (cap < 2 * n)
		cap *= 2;
	free(table);
	table_cap = 0;
	if (!(table = calloc(cap, sizeof(struct service *))))
		return;		/* svc_find falls back to a scan */
	table_cap = cap;
	for (struct service *s = services; s; s = s->next) {
		unsigned i = name_hash(s->conf->name) & (cap - 1);

		if (s->removed)
			continue;
		while (table[i])
			i = (i + 1) & (cap - 1);
		table[i] = s;
	}
	deps_index(services);
	stale = false;
}

void svc_index(void)
{
	if (stale)
		index_build();
}

unsigned svc_count(void)
{
	svc_index();
	return count;
}

struct service *svc_find(const char *name)
{
	svc_index();
	return svc_find_indexed(name);
}

struct service *svc_find_indexed(const char *name)
{
	if (!table_cap) {
		for (struct service *s = services; s; s = s->next)
			if (!s->removed && strcmp(s->conf->name, name) == 0)
				return s;
		return NULL;
	}
	for (unsigned i = name_hash(name) & (table_cap - 1); table[i]; i = (i + 1) & (table_cap - 1))
		if (strcmp(table[i]->conf->name, name) == 0)
			return table[i];
	return NULL;
}

/* Its cgroup emptied: it, and whatever waits for it to stop, look again. */
static void cgroup_emptied(void *arg)
{
	struct service *s = arg;

	svc_touch(s);
	deps_touch_neighbors(s);
}

int svc_open_cgroup(struct service *s, char *err, size_t len)
{
	if (!cgroup_enabled() || s->cg)
		return 0;
	s->cg = cgroup_open(s->conf->name, cgroup_emptied, s, err, len);
	return s->cg ? 0 : -1;
}

bool svc_has_procs(const struct service *s)
{
	return s->procs || (s->cg && cgroup_populated(s->cg));
}

struct service *svc_new(struct svc_conf *conf, struct conf *owner)
{
	char err[300];

	struct service *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->conf = conf;
	s->owner = owner;
	owner->refs++;
	s->mode = mode_of(conf);
	s->state = ST_STOPPED;
	s->since = loop_now();
	s->last_status = -1;
	s->generation = 1;
	s->next_every = -1;
	s->last_every = -1;
	if (tail)
		tail->next = s;
	else
		services = s;
	tail = s;
	stale = true;
	svclog_configure(s);
	if (svc_open_cgroup(s, err, sizeof(err)) < 0)
		log_warn("%s: %s", conf->name, err);	/* its start says so again */
	svc_touch(s);
	return s;
}

void conf_release(struct conf *c)
{
	if (c && --c->refs == 0)
		conf_free(c);
}

void svc_free(struct service *s)
{
	struct service *prev = NULL;

	for (struct service **pp = &services; *pp; prev = *pp, pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	if (tail == s)
		tail = prev;
	stale = true;
	free(s->dependents);
	timer_cancel(&s->t_restart);
	timer_cancel(&s->t_ready);
	timer_cancel(&s->t_watchdog);
	timer_cancel(&s->t_sched);
	pool_release(s);	/* a failed pool is not released when it fails */
	listen_close(s);
	cgroup_close(s->cg);
	svclog_free(s);
	free(s->status_text);
	free(s->reason);
	free(s->stop_cause);
	conf_release(s->owner);
	free(s);
}

int svc_start(struct service *s, char *err, size_t len)
{
	(void)err;
	(void)len;
	/* An explicit start retries at once, and runs a finished oneshot again. */
	if (s->state == ST_FAILED || s->state == ST_DONE || s->state == ST_BACKOFF) {
		timer_cancel(&s->t_restart);
		svc_set_state(s, ST_STOPPED);
	}
	deps_pull_up(s);
	svc_set_stop_cause(s, "");
	/* Pulled-in requirements that failed get their retry too. */
	for (struct service *d = services; d; d = d->next)
		if (d->want && (d->state == ST_FAILED || d->state == ST_BACKOFF)) {
			timer_cancel(&d->t_restart);
			svc_set_state(d, ST_STOPPED);
		}
	svc_schedule();
	return 0;
}

int svc_stop(struct service *s, char *err, size_t len)
{
	(void)err;
	(void)len;
	deps_push_down(s, "stopped by request");
	svc_schedule();
	return 0;
}

int svc_restart(struct service *s, char *err, size_t len)
{
	bool running = false;

	for (struct proc *p = s->procs; p; p = p->next)
		running |= !p->exited;
	if (!running)
		return svc_start(s, err, len);
	deps_pull_up(s);
	s->restarts++;
	if (s->mode->roll && s->pool) {
		s->generation++;	/* generation by generation */
		pool_roll(s);
		return 0;
	}
	svc_begin_stop(s, "restarting");
	svc_schedule();
	return 0;
}

void svc_signal_all(struct service *s, int sig)
{
	for (struct proc *p = s->procs; p; p = p->next)
		if (!p->exited)
			proc_signal(p, sig);
}

void svc_describe_status(int status, char *out, size_t len)
{
	if (status < 0)
		snprintf(out, len, "did not run");
	else if (WIFEXITED(status))
		snprintf(out, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, len, "%s by signal %d (%s)", WCOREDUMP(status) ? "dumped core, killed" : "killed",
			 WTERMSIG(status), signal_name(WTERMSIG(status)));
	else
		snprintf(out, len, "ended with wait status %#x", (unsigned)status);
}

int svc_exit_code(int status)
{
	if (status < 0)
		return 1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}
