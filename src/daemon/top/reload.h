/* reload.h - reading the configuration again (SIGHUP, `drover reload`).
 *
 * The new configuration is read and validated completely first; on any
 * error nothing changes. Otherwise services are matched by name: added ones
 * start, removed ones stop (without blocking the loop) and go, changed ones
 * are replaced or updated live (conf_compare), unchanged ones are not
 * touched. What to do is decided from the two configurations alone
 * (reload_plan.h); this file applies the plan to the running services. */
#ifndef DROVER_RELOAD_H
#define DROVER_RELOAD_H

#include "conf.h"
#include "reload_plan.h"

struct service;

/* The services in force, in droverd's order, and their definitions. */
struct in_force {
	struct service **svc;
	struct svc_conf **conf;
	int n;
};

/* A reload worked out and not applied: the new configuration, read and
 * validated, and the plan from what is in force to it. */
struct reload_prepared {
	struct conf *conf;		/* one reference held */
	struct in_force in_force;	/* plan->svcs[i].old_index indexes it */
	struct reload_plan *plan;
};

struct reload_change {
	char name[SVC_NAME_MAX + 1];
	const char *change;		/* "added", "removed", "replaced", "updated" */
};

struct reload_result {
	struct reload_change *changes;	/* malloc'd; free() it */
	int n;
	char summary[200];
};

/* 0 with what changed in r; -1 with every problem in errs (nothing changed). */
int reload_run(struct reload_result *r, struct conf_errors *errs);
/* What reload_run() does before it changes anything, and all of it: the
 * same load, checks and plan. 0 with r filled (free it with
 * reload_prepared_free()); -1 the configuration is invalid, -2 no memory
 * to plan: every problem in errs. Changes and logs nothing. */
int reload_prepare(struct reload_prepared *r, struct conf_errors *errs);
void reload_prepared_free(struct reload_prepared *r);

#endif
