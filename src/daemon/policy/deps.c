/* deps.c - see deps.h. */
#include "deps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool deps_is_up(const struct service *s)
{
	switch (s->state) {
	case ST_READY:
	case ST_DONE:
		return true;
	case ST_WAITING:
	case ST_RUNNING:
		return s->conf->mode == MODE_TIMER || s->conf->start == START_DEMAND;
	default:
		return false;
	}
}

/* Ordered after d: wait while d is on its way up (its start has not
 * succeeded or failed yet). */
static bool still_starting(const struct service *d)
{
	return d->want && (d->state == ST_STARTING || d->state == ST_STOPPED ||
			   (d->state == ST_STOPPING && d->want));
}

bool deps_can_start(const struct service *s, char *why, size_t len)
{
	const struct svc_conf *c = s->conf;

	for (int i = 0; i < c->nrequires; i++) {
		struct service *d = svc_find(c->requires[i]);

		if (d && !deps_is_up(d)) {
			snprintf(why, len, "waiting for %s (%s)", d->conf->name, svc_state_name(d->state));
			return false;
		}
	}
	for (int i = 0; i < c->nafter; i++) {
		struct service *d = svc_find(c->after[i]);

		if (d && still_starting(d)) {
			snprintf(why, len, "waiting for %s to start", d->conf->name);
			return false;
		}
	}
	return true;
}

static bool names(const char **list, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(list[i], name) == 0)
			return true;
	return false;
}

static bool depends_on(const struct service *d, const struct service *s)
{
	return names(d->conf->requires, d->conf->nrequires, s->conf->name) ||
	       names(d->conf->after, d->conf->nafter, s->conf->name);
}

bool deps_can_stop(const struct service *s, char *why, size_t len)
{
	svc_index();
	for (int i = 0; i < s->ndependents; i++) {
		struct service *d = s->dependents[i];

		if (d == s || d->want || !d->procs || !depends_on(d, s))
			continue;
		snprintf(why, len, "waiting for %s to stop", d->conf->name);
		return false;
	}
	return true;
}

/* Visits each service once per pull (a stamp, not a flag to clear). */
static void pull(struct service *s, unsigned stamp)
{
	if (s->pull_stamp == stamp)
		return;
	s->pull_stamp = stamp;
	s->want = true;
	for (int i = 0; i < s->conf->nrequires; i++) {
		struct service *d = svc_find(s->conf->requires[i]);

		if (d)
			pull(d, stamp);
	}
}

void deps_pull_up(struct service *s)
{
	static unsigned stamp;

	pull(s, ++stamp ? stamp : ++stamp);
}

static void push(struct service *s, const char *reason, unsigned stamp)
{
	char why[200];

	if (s->push_stamp == stamp)
		return;
	s->push_stamp = stamp;
	s->want = false;
	if (reason) {
		svc_set_reason(s, "%s", reason);
		svc_set_stop_cause(s, reason);
	}
	snprintf(why, sizeof(why), "stopped because %s stopped", s->conf->name);
	svc_index();
	for (int i = 0; i < s->ndependents; i++) {
		struct service *d = s->dependents[i];

		if (d->want && names(d->conf->requires, d->conf->nrequires, s->conf->name))
			push(d, why, stamp);
	}
}

void deps_push_down(struct service *s, const char *reason)
{
	static unsigned stamp;

	push(s, reason, ++stamp ? stamp : ++stamp);
}

static void add_dependent(struct service *of, struct service *d)
{
	struct service **v;

	for (int i = 0; i < of->ndependents; i++)
		if (of->dependents[i] == d)
			return;
	if (!(v = realloc(of->dependents, sizeof(struct service *) * (size_t)(of->ndependents + 1))))
		return;
	of->dependents = v;
	v[of->ndependents++] = d;
}

/* Called by the service index with the name table already built. */
void deps_index(struct service *all)
{
	for (struct service *s = all; s; s = s->next)
		s->ndependents = 0;
	for (struct service *s = all; s; s = s->next) {
		if (s->removed)
			continue;
		for (int i = 0; i < s->conf->nrequires; i++) {
			struct service *d = svc_find_indexed(s->conf->requires[i]);

			if (d)
				add_dependent(d, s);
		}
		for (int i = 0; i < s->conf->nafter; i++) {
			struct service *d = svc_find_indexed(s->conf->after[i]);

			if (d)
				add_dependent(d, s);
		}
	}
}

void deps_touch_neighbors(struct service *s)
{
	svc_index();
	for (int i = 0; i < s->conf->nrequires; i++)
		svc_touch(svc_find(s->conf->requires[i]));
	for (int i = 0; i < s->conf->nafter; i++)
		svc_touch(svc_find(s->conf->after[i]));
	for (int i = 0; i < s->ndependents; i++)
		svc_touch(s->dependents[i]);
}
