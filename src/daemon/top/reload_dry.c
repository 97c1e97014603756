/* reload_dry.c - see reload_dry.h.
 *
 * Reads the running services (state, generation, live processes) and
 * writes records: it changes nothing. */
#include "reload_dry.h"

#include <stdio.h>

#include "service.h"

static const char *const lis_words[] = { "kept", "opened", "closed" };

void reload_dry_counts(const struct reload_plan *p, char *out, size_t len)
{
	snprintf(out, len, "%d added, %d removed, %d replaced, %d updated, %d unchanged",
		 p->count[PLAN_ADD], p->count[PLAN_REMOVE], p->count[PLAN_REPLACE], p->count[PLAN_LIVE],
		 p->count[PLAN_KEEP]);
}

static void keys_field(struct proto_writer *w, uint64_t keys)
{
	const char *names[64];
	int n = 0;

	for (int i = 0; i < 64; i++)
		if ((keys >> i & 1) && conf_diff_key(i))
			names[n++] = conf_diff_key(i);
	proto_list(w, "keys", names, n);
}

static void service_record(struct proto_writer *w, const struct reload_plan_svc *e, const struct service *s)
{
	const struct svc_conf *c = e->new ? e->new : e->old;
	bool running = s && svc_has_live_leader(s);

	proto_record(w);
	proto_str(w, "type", "service");
	proto_str(w, "name", e->name);
	proto_str(w, "change", reload_plan_word(e->action));
	proto_str(w, "mode", conf_mode_name(c->mode));
	keys_field(w, e->keys);
	proto_str(w, "state", s ? svc_state_name(s->state) : "");
	proto_int(w, "generation", s ? s->generation : 0);
	proto_int(w, "running", running);
	proto_int(w, "starts", e->pull_up);
	/* as svc_apply_conf() decides: a pool with a live leader rolls */
	proto_int(w, "rolls", e->rolls && running);
}

static void listener_record(struct proto_writer *w, const struct reload_plan_svc *e,
			    const struct reload_plan_listener *l)
{
	proto_record(w);
	proto_str(w, "type", "listener");
	proto_str(w, "service", e->name);
	proto_str(w, "address", l->conf->text);
	proto_str(w, "fd_name", l->conf->fdname ? l->conf->fdname : "");
	proto_str(w, "change", lis_words[l->what]);
	proto_str(w, "from", l->from ? l->from : "");
	proto_int(w, "relisten", l->relisten);
	proto_int(w, "backlog", l->conf->backlog);
}

static void global_record(struct proto_writer *w, const char *setting, const char *applies)
{
	proto_record(w);
	proto_str(w, "type", "global");
	proto_str(w, "setting", setting);
	proto_str(w, "applies", applies);
}

void reload_dry_records(struct proto_writer *w, const struct reload_prepared *r)
{
	const struct reload_plan *p = r->plan;

	for (int i = 0; i < p->nsvcs; i++) {
		const struct reload_plan_svc *e = &p->svcs[i];

		service_record(w, e, e->old_index >= 0 ? r->in_force.svc[e->old_index] : NULL);
		for (int j = e->lis; j < e->lis + e->nlis; j++)
			listener_record(w, e, &p->lis[j]);
	}
	if (p->log_changed)
		global_record(w, "log", "now");
	if (p->control_changed)
		global_record(w, "control", "at restart");
	if (p->control_group_changed)
		global_record(w, "control_group", "at restart");
}
