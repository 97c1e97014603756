/* reload_dry.h - `drover reload --dry-run`: a prepared reload
 * (reload_prepare()) told as a reply, and nothing done.
 *
 * The reply's message is "dry run: COUNTS; nothing was changed"; its records, in the plan's order
 * (each listener record after its service's):
 *   type "service":  name, change (reload_plan_word()), mode, keys (list:
 *                    the keys that differ, conf_diff_key()), state (now;
 *                    "" when added), generation (now; 0 when added),
 *                    running (1: a live main process or pool), starts (1:
 *                    pulled up), rolls (1: a pool that rolls to a new
 *                    generation)
 *   type "listener": service, address (as written), fd_name, change
 *                    ("kept", "opened", "closed"), from (the removed
 *                    service whose socket it takes, else ""), relisten (1:
 *                    listen() again), backlog
 *   type "global":   setting ("log", "control", "control_group"), applies
 *                    ("now", "at restart") */
#ifndef DROVER_RELOAD_DRY_H
#define DROVER_RELOAD_DRY_H

#include <stddef.h>

#include "proto.h"
#include "reload.h"

/* "1 added, 0 removed, 2 replaced, 0 updated, 3 unchanged" */
void reload_dry_counts(const struct reload_plan *p, char *out, size_t len);
void reload_dry_records(struct proto_writer *w, const struct reload_prepared *r);

#endif
