/* reload_plan.c - see reload_plan.h.
 *
 * Listeners follow the rule of listen.c (listen_rebuild, listen_take): a
 * new listen line takes the first open socket it is interchangeable with
 * (listen_conf_interchangeable): a service changed in place takes from its
 * own old sockets, an added one from those of the services this reload
 * removes, in their order. The plan assumes every socket in force is
 * open. */
#include "reload_plan.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Where each new listen line's socket comes from while planning. */
struct lis_match {
	int *src_svc, *src_j;		/* per new line (by newoff): plan entry, old line; -1 */
	bool *taken;			/* per old line (by oldoff) */
	int *newoff, *oldoff;		/* per plan entry */
};

static const char *const words[PLAN_ACTIONS] = { "added", "removed", "replaced", "updated", "unchanged" };

const char *reload_plan_word(enum plan_action a)
{
	return a >= 0 && a < PLAN_ACTIONS ? words[a] : "?";
}

static void plan_globals(struct reload_plan *p, const struct conf *old, const struct conf *c)
{
	p->log_changed = old->log != c->log || (c->log == LOG_FILE && strcmp(old->log_path, c->log_path) != 0);
	p->control_changed = (old->control && (!c->control || strcmp(old->control, c->control) != 0)) ||
			     (!old->control && c->control);
	p->control_group_changed = (old->control_group == NULL) != (c->control_group == NULL) ||
				   old->control_gid != c->control_gid;
}

static int find_cur(struct svc_conf *const *cur, int ncur, const char *name)
{
	for (int i = 0; i < ncur; i++)
		if (strcmp(cur[i]->name, name) == 0)
			return i;
	return -1;
}

static void plan_existing(struct reload_plan_svc *e, const struct svc_conf *old, const struct svc_conf *nc)
{
	enum conf_change ch;

	e->keys = conf_diff(old, nc);
	ch = conf_change_of(e->keys);
	e->action = ch == CHANGE_REPLACE ? PLAN_REPLACE : ch == CHANGE_LIVE ? PLAN_LIVE : PLAN_KEEP;
	e->start_changed = old->start != nc->start;
	e->pull_up = e->start_changed && nc->start != START_MANUAL;
	e->rolls = ch == CHANGE_REPLACE && nc->mode == MODE_PREFORK;
}

static void plan_services(struct reload_plan *p, struct svc_conf *const *cur, int ncur, const struct conf *c)
{
	for (int i = 0; i < ncur; i++) {
		if (conf_find(c, cur[i]->name))
			continue;
		p->svcs[p->nsvcs++] = (struct reload_plan_svc){ .action = PLAN_REMOVE, .name = cur[i]->name,
								.old = cur[i], .old_index = i };
	}
	for (int i = 0; i < c->nsvcs; i++) {
		struct reload_plan_svc *e = &p->svcs[p->nsvcs++];
		int j = find_cur(cur, ncur, c->svcs[i]->name);

		*e = (struct reload_plan_svc){ .action = PLAN_ADD, .name = c->svcs[i]->name,
					       .new = c->svcs[i], .old_index = j };
		if (j < 0)
			e->pull_up = c->svcs[i]->start != START_MANUAL;
		else
			plan_existing(e, e->old = cur[j], c->svcs[i]);
	}
	for (int i = 0; i < p->nsvcs; i++)
		p->count[p->svcs[i].action]++;
}

/* New line i of entry e takes the first free interchangeable line of
 * entry from's old definition. */
static void take(const struct reload_plan *p, struct lis_match *m, int e, int i, int from)
{
	const struct svc_conf *o = p->svcs[from].old;
	int k = m->newoff[e] + i;

	for (int j = 0; m->src_svc[k] < 0 && j < o->nlisten; j++) {
		if (m->taken[m->oldoff[from] + j] || !listen_conf_interchangeable(&o->listen[j], &p->svcs[e].new->listen[i]))
			continue;
		m->taken[m->oldoff[from] + j] = true;
		m->src_svc[k] = from;
		m->src_j[k] = j;
	}
}

static void match_listeners(const struct reload_plan *p, struct lis_match *m)
{
	for (int e = 0; e < p->nsvcs; e++) {
		const struct reload_plan_svc *s = &p->svcs[e];

		if (s->action == PLAN_REMOVE)
			continue;
		if (s->action != PLAN_ADD) {
			for (int i = 0; i < s->new->nlisten; i++)
				take(p, m, e, i, e);
			continue;
		}
		for (int r = 0; r < p->nsvcs; r++)
			for (int i = 0; p->svcs[r].action == PLAN_REMOVE && i < s->new->nlisten; i++)
				take(p, m, e, i, r);
	}
}

static void emit_listeners(struct reload_plan *p, const struct lis_match *m)
{
	for (int e = 0; e < p->nsvcs; e++) {
		struct reload_plan_svc *s = &p->svcs[e];

		s->lis = p->nlis;
		for (int i = 0; s->new && i < s->new->nlisten; i++) {
			struct reload_plan_listener *l = &p->lis[p->nlis++];
			int k = m->newoff[e] + i, from = m->src_svc[k];

			*l = (struct reload_plan_listener){ .what = PLAN_LISTEN_OPEN, .conf = &s->new->listen[i] };
			if (from < 0)
				continue;
			l->what = PLAN_LISTEN_KEEP;
			l->from = from != e ? p->svcs[from].name : NULL;
			l->relisten = strcmp(p->svcs[from].old->listen[m->src_j[k]].key, l->conf->key) != 0 &&
				      l->conf->socktype == SOCK_STREAM;
		}
		for (int j = 0; s->old && j < s->old->nlisten; j++)
			if (!m->taken[m->oldoff[e] + j])
				p->lis[p->nlis++] = (struct reload_plan_listener){ .what = PLAN_LISTEN_CLOSE,
										   .conf = &s->old->listen[j] };
		s->nlis = p->nlis - s->lis;
	}
}

static int plan_listeners(struct reload_plan *p)
{
	struct lis_match m = { 0 };
	int nnew = 0, nold = 0, rc = -1;

	m.newoff = malloc(sizeof(int) * (size_t)(p->nsvcs + 1));
	m.oldoff = malloc(sizeof(int) * (size_t)(p->nsvcs + 1));
	if (!m.newoff || !m.oldoff)
		goto out;
	for (int e = 0; e < p->nsvcs; e++) {
		m.newoff[e] = nnew;
		m.oldoff[e] = nold;
		nnew += p->svcs[e].new ? p->svcs[e].new->nlisten : 0;
		nold += p->svcs[e].old ? p->svcs[e].old->nlisten : 0;
	}
	m.src_svc = malloc(sizeof(int) * (size_t)(nnew + 1));
	m.src_j = malloc(sizeof(int) * (size_t)(nnew + 1));
	m.taken = calloc((size_t)nold + 1, sizeof(bool));
	p->lis = malloc(sizeof(*p->lis) * (size_t)(nnew + nold + 1));
	if (!m.src_svc || !m.src_j || !m.taken || !p->lis)
		goto out;
	for (int k = 0; k < nnew; k++)
		m.src_svc[k] = m.src_j[k] = -1;
	match_listeners(p, &m);
	emit_listeners(p, &m);
	rc = 0;
out:
	free(m.newoff);
	free(m.oldoff);
	free(m.src_svc);
	free(m.src_j);
	free(m.taken);
	return rc;
}

struct reload_plan *reload_plan_make(const struct conf *old, struct svc_conf *const *cur, int ncur,
				     const struct conf *c)
{
	struct reload_plan *p = calloc(1, sizeof(*p));

	if (!p || !(p->svcs = malloc(sizeof(*p->svcs) * (size_t)(ncur + c->nsvcs + 1)))) {
		free(p);
		return NULL;
	}
	plan_globals(p, old, c);
	plan_services(p, cur, ncur, c);
	if (plan_listeners(p) < 0) {
		reload_plan_free(p);
		return NULL;
	}
	return p;
}

void reload_plan_free(struct reload_plan *p)
{
	if (!p)
		return;
	free(p->svcs);
	free(p->lis);
	free(p);
}
