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

#endif
