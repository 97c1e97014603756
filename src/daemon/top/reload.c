/* reload.c - see reload.h. */
#include "reload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "current.h"
#include "deps.h"
#include "listen.h"
#include "log.h"
#include "reload_plan.h"
#include "service.h"

static void note(struct reload_result *r, const char *name, const char *change)
{
	struct reload_change *v;

	if (!r)
		return;
	v = realloc(r->changes, sizeof(*v) * (size_t)(r->n + 1));
	if (!v)
		return;		/* the reply lists less; the reload itself is done */
	r->changes = v;
	snprintf(v[r->n].name, sizeof(v[r->n].name), "%s", name);
	v[r->n++].change = change;
}

static void apply_added(const struct reload_plan_svc *e, struct conf *c, struct reload_result *w, int *count)
{
	struct service *s = svc_new(e->new, c);

	if (!s) {
		log_error("%s: out of memory adding it", e->name);
		count[PLAN_ADD]--;
		return;
	}
	/* A removed service that still drains (perhaps this one under
	 * its old name) hands over the sockets the new one wants. */
	for (struct service *old = services; old; old = old->next)
		if (old != s && old->removed)
			listen_take(s, old);
	if (e->pull_up)
		deps_pull_up(s);
	log_info("%s: added", e->name);
	note(w, e->name, reload_plan_word(e->action));
}

static void apply_changed(struct service *s, const struct reload_plan_svc *e, struct conf *c,
			  struct reload_result *w)
{
	svc_apply_conf(s, e->new, c, e->action == PLAN_REPLACE);
	if (e->pull_up)
		deps_pull_up(s);
	if (s->listen_failed && s->state == ST_FAILED && e->new->start != START_MANUAL) {
		log_info("%s: trying its listeners again", e->name);
		svc_start(s, NULL, 0);
	}
	if (e->action == PLAN_REPLACE)
		log_info("%s: changed: replacing its processes (generation %u)", e->name, s->generation);
	else if (e->action == PLAN_LIVE)
		log_info("%s: changed: new settings apply now", e->name);
	if (e->action != PLAN_KEEP)
		note(w, e->name, reload_plan_word(e->action));
}

static void apply_removed(struct service *s, const struct reload_plan_svc *e, struct reload_result *w)
{
	log_info("%s: removed from the configuration: stopping it", e->name);
	note(w, e->name, reload_plan_word(e->action));
	deps_push_down(s, "removed from the configuration");
	s->removed = true;
	svc_index_stale();
}

/* In the plan's order: the removed services first, so that an added one
 * can take over their sockets. */
static void apply_services(const struct reload_plan *p, const struct in_force *f, struct conf *c,
			   struct reload_result *w, int *count)
{
	for (int i = 0; i < p->nsvcs; i++) {
		const struct reload_plan_svc *e = &p->svcs[i];

		if (e->action == PLAN_REMOVE)
			apply_removed(f->svc[e->old_index], e, w);
		else if (e->action == PLAN_ADD)
			apply_added(e, c, w, count);
		else
			apply_changed(f->svc[e->old_index], e, c, w);
	}
}

static void apply_globals(const struct reload_plan *p, struct conf *c)
{
	char err[300];

	if (p->log_changed && log_configure(c->log, c->log_path, err, sizeof(err)) < 0)
		log_error("log: %s; keeping the current destination", err);
	if (p->control_changed)
		log_warn("control: a new control socket path takes effect when droverd restarts");
	if (p->control_group_changed)
		log_warn("control: a new control_group takes effect when droverd restarts");
}

static void in_force_free(struct in_force *f)
{
	free(f->svc);
	free(f->conf);
}

static struct reload_plan *plan(struct conf *c, struct in_force *f)
{
	int n = 0;

	for (struct service *s = services; s; s = s->next)
		n += !s->removed;
	f->svc = calloc((size_t)n + 1, sizeof(struct service *));
	f->conf = calloc((size_t)n + 1, sizeof(struct svc_conf *));
	if (!f->svc || !f->conf)
		return NULL;
	for (struct service *s = services; s; s = s->next)
		if (!s->removed) {
			f->svc[f->n] = s;
			f->conf[f->n++] = s->conf;
		}
	return reload_plan_make(current_conf(), f->conf, f->n, c);
}

/* Nothing changed: say why as the one problem of the reload. */
static void plan_failed(struct conf_errors *errs)
{
	static const char why[] = "out of memory planning the reload";
	char **m = realloc(errs->msg, sizeof(*m) * (size_t)(errs->n + 1));
	long *where = m ? realloc(errs->where, sizeof(*where) * (size_t)(errs->n + 1)) : NULL;

	if (m)
		errs->msg = m;
	if (!where)
		return;
	errs->where = where;
	errs->cap = errs->n + 1;
	where[errs->n] = 0;
	if ((m[errs->n] = strdup(why)))
		errs->n++;
}

int reload_prepare(struct reload_prepared *r, struct conf_errors *errs)
{
	*r = (struct reload_prepared){ 0 };
	if (!(r->conf = conf_load(current_path(), geteuid() == 0, errs)))
		return -1;
	r->conf->refs++;	/* held until reload_prepared_free() */
	if (!(r->plan = plan(r->conf, &r->in_force))) {
		reload_prepared_free(r);
		plan_failed(errs);
		return -2;
	}
	return 0;
}

void reload_prepared_free(struct reload_prepared *r)
{
	reload_plan_free(r->plan);	/* it points into both configurations */
	in_force_free(&r->in_force);
	conf_release(r->conf);
	*r = (struct reload_prepared){ 0 };
}

int reload_run(struct reload_result *w, struct conf_errors *errs)
{
	struct reload_prepared r;
	struct conf *c;
	int t[PLAN_ACTIONS], rc = reload_prepare(&r, errs);

	if (rc == -2)
		log_error("reload: out of memory planning the reload; still running the old configuration");
	if (rc == -1) {
		log_error("reload: the new configuration has %d error%s; still running the old one:",
			  errs->n, errs->n == 1 ? "" : "s");
		for (int i = 0; i < errs->n; i++)
			log_error("  %s", errs->msg[i]);
	}
	if (rc < 0)
		return -1;
	memcpy(t, r.plan->count, sizeof(t));
	apply_globals(r.plan, r.conf);
	apply_services(r.plan, &r.in_force, r.conf, w, t);
	c = r.conf;
	c->refs++;
	reload_prepared_free(&r);	/* the plan points into the old configuration */
	current_set(c);
	conf_release(c);
	/* New requirements of services that are up are wanted too. */
	for (struct service *s = services; s; s = s->next)
		if (s->want)
			deps_pull_up(s);
	svc_schedule();
	snprintf(w->summary, sizeof(w->summary),
		 "reloaded: %d added, %d removed, %d replaced, %d updated, %d unchanged",
		 t[PLAN_ADD], t[PLAN_REMOVE], t[PLAN_REPLACE], t[PLAN_LIVE], t[PLAN_KEEP]);
	log_info("%s", w->summary);
	return 0;
}
