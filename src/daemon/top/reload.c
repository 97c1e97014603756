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
#include "service.h"

struct tally {
	int added, removed, replaced, live, unchanged;
};

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

static void apply_one(struct svc_conf *nc, struct conf *c, struct reload_result *w, struct tally *t)
{
	struct service *s = svc_find(nc->name);
	enum conf_change ch;
	bool start_changed;

	if (!s) {
		if (!(s = svc_new(nc, c))) {
			log_error("%s: out of memory adding it", nc->name);
			return;
		}
		/* A removed service that still drains (perhaps this one under
		 * its old name) hands over the sockets the new one wants. */
		for (struct service *old = services; old; old = old->next)
			if (old != s && old->removed)
				listen_take(s, old);
		if (nc->start != START_MANUAL)
			deps_pull_up(s);
		log_info("%s: added", nc->name);
		note(w, nc->name, "added");
		t->added++;
		return;
	}
	ch = conf_compare(s->conf, nc);
	start_changed = s->conf->start != nc->start;
	svc_apply_conf(s, nc, c, ch == CHANGE_REPLACE);
	if (start_changed && nc->start != START_MANUAL)
		deps_pull_up(s);
	if (s->listen_failed && s->state == ST_FAILED && nc->start != START_MANUAL) {
		log_info("%s: trying its listeners again", nc->name);
		svc_start(s, NULL, 0);
	}
	if (ch == CHANGE_REPLACE) {
		log_info("%s: changed: replacing its processes (generation %u)", nc->name, s->generation);
		note(w, nc->name, "replaced");
		t->replaced++;
	} else if (ch == CHANGE_LIVE) {
		log_info("%s: changed: new settings apply now", nc->name);
		note(w, nc->name, "updated");
		t->live++;
	} else {
		t->unchanged++;
	}
}

static void remove_missing(struct conf *c, struct reload_result *w, struct tally *t)
{
	for (struct service *s = services; s; s = s->next) {
		if (s->removed || conf_find(c, s->conf->name))
			continue;
		log_info("%s: removed from the configuration: stopping it", s->conf->name);
		note(w, s->conf->name, "removed");
		deps_push_down(s, "removed from the configuration");
		s->removed = true;
		svc_index_stale();
		t->removed++;
	}
}

static void apply_globals(struct conf *c)
{
	struct conf *old = current_conf();
	char err[300];

	if (old->log != c->log || (c->log == LOG_FILE && strcmp(old->log_path, c->log_path) != 0)) {
		if (log_configure(c->log, c->log_path, err, sizeof(err)) < 0)
			log_error("log: %s; keeping the current destination", err);
	}
	if ((old->control && (!c->control || strcmp(old->control, c->control) != 0)) ||
	    (!old->control && c->control))
		log_warn("control: a new control socket path takes effect when droverd restarts");
	if ((old->control_group == NULL) != (c->control_group == NULL) || old->control_gid != c->control_gid)
		log_warn("control: a new control_group takes effect when droverd restarts");
}

int reload_run(struct reload_result *w, struct conf_errors *errs)
{
	struct conf *c = conf_load(current_path(), geteuid() == 0, errs);
	struct tally t = { 0 };

	if (!c) {
		log_error("reload: the new configuration has %d error%s; still running the old one:",
			  errs->n, errs->n == 1 ? "" : "s");
		for (int i = 0; i < errs->n; i++)
			log_error("  %s", errs->msg[i]);
		return -1;
	}
	c->refs++;		/* held while this function runs */
	apply_globals(c);
	remove_missing(c, w, &t);
	for (int i = 0; i < c->nsvcs; i++)
		apply_one(c->svcs[i], c, w, &t);
	current_set(c);
	conf_release(c);
	/* New requirements of services that are up are wanted too. */
	for (struct service *s = services; s; s = s->next)
		if (s->want)
			deps_pull_up(s);
	svc_schedule();
	snprintf(w->summary, sizeof(w->summary),
		 "reloaded: %d added, %d removed, %d replaced, %d updated, %d unchanged",
		 t.added, t.removed, t.replaced, t.live, t.unchanged);
	log_info("%s", w->summary);
	return 0;
}
