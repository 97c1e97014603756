/* deps.h - what `requires` and `after` mean at run time.
 *
 * Start: a service starts once everything it requires is up (ready, done,
 * or a waiting timer/demand service), and nothing it is ordered after is
 * still starting. Stop: a service stops only after every service that
 * depends on it (requires or after) and is also going down has stopped.
 * `drover start` pulls in what a service requires; `drover stop` pushes down
 * what requires it. */
#ifndef DROVER_DEPS_H
#define DROVER_DEPS_H

#include <stdbool.h>
#include <stddef.h>

#include "service.h"

bool deps_is_up(const struct service *s);
/* False with "waiting for NAME" in why when s cannot start yet. */
bool deps_can_start(const struct service *s, char *why, size_t len);
/* False with "waiting for NAME to stop" in why when s must wait. */
bool deps_can_stop(const struct service *s, char *why, size_t len);
/* Mark s and (transitively) what it requires as wanted. */
void deps_pull_up(struct service *s);
/* Mark s and (transitively) what requires it as not wanted; reason (if
 * not NULL) becomes s's reason, dependents get "stopped because ...". */
void deps_push_down(struct service *s, const char *reason);

/* Rebuild the reverse edges (service.c, with its name index). */
void deps_index(struct service *all);
/* Mark for evaluation what s requires, is after, and what depends on it. */
void deps_touch_neighbors(struct service *s);

#endif
