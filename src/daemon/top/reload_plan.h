/* reload_plan.h - what a reload does, decided from the two configurations
 * alone (SPEC section 5).
 *
 * Pure: no I/O, no global, nothing of the running daemon. reload.c applies
 * a plan; `drover reload --dry-run` prints one; the unit tests check one
 * (tests/unit/test_reload_plan.c). What depends on the running processes
 * (whether a pool runs and so rolls, a listener that failed to bind, a
 * service removed by an earlier reload that still drains and holds a
 * socket) is the daemon's to decide when it applies the plan.
 *
 * Services are matched by name. The plan lists them in the order a reload
 * acts on them: first the removed ones, in the order of the services in
 * force, then every service of the new configuration in its order. A plan
 * points into both configurations: free it before either. */
#ifndef DROVER_RELOAD_PLAN_H
#define DROVER_RELOAD_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"

enum plan_action {
	PLAN_ADD,		/* new: started unless start = manual */
	PLAN_REMOVE,		/* gone: stopped, then forgotten */
	PLAN_REPLACE,		/* a process key differs: new processes */
	PLAN_LIVE,		/* only supervision keys differ: applied now */
	PLAN_KEEP,		/* identical */
	PLAN_ACTIONS
};

enum plan_listen {
	PLAN_LISTEN_KEEP,	/* the open socket stays (perhaps another service's) */
	PLAN_LISTEN_OPEN,	/* bound anew */
	PLAN_LISTEN_CLOSE	/* closed (once no process that got it is left) */
};

struct reload_plan_listener {
	enum plan_listen what;
	const struct listen_conf *conf;	/* KEEP, OPEN: the new line; CLOSE: the old */
	const char *from;		/* KEEP: the removed service whose socket it takes, else NULL */
	bool relisten;			/* KEEP: listen() again for a new backlog */
};

struct reload_plan_svc {
	enum plan_action action;
	const char *name;
	struct svc_conf *old;		/* NULL when added */
	struct svc_conf *new;		/* NULL when removed */
	int old_index;			/* in the services in force given; -1 when added */
	uint64_t keys;			/* the keys that differ (conf_diff(), conf_diff_key()) */
	bool start_changed;		/* `start =` differs */
	bool pull_up;			/* wanted up now: added or start changed, start != manual */
	bool rolls;			/* replaced prefork: rolls to a new generation if it runs */
	int lis, nlis;			/* its listeners: plan->lis[lis] .. [lis + nlis - 1] */
};

struct reload_plan {
	struct reload_plan_svc *svcs;	/* in the order a reload acts on them */
	int nsvcs;
	struct reload_plan_listener *lis;	/* by service: the new listeners in the new
						 * order, then the old ones closed */
	int nlis;
	int count[PLAN_ACTIONS];	/* services per action */
	/* Global settings: a new log destination applies now; a new control
	 * socket path or control_group only when droverd restarts. */
	bool log_changed, control_changed, control_group_changed;
};

/* The plan from the configuration in force, `old` (its global settings),
 * and its services as droverd runs them, `cur` (droverd's list: after a
 * reload that added services, not old's order; from a configuration alone,
 * pass old->svcs, old->nsvcs), to `new`. NULL when out of memory. */
struct reload_plan *reload_plan_make(const struct conf *old, struct svc_conf *const *cur, int ncur,
				     const struct conf *new);
void reload_plan_free(struct reload_plan *p);
/* "added", "removed", "replaced", "updated", "unchanged": the words of
 * `drover reload`'s reply. */
const char *reload_plan_word(enum plan_action a);

#endif
