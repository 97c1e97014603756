/* pool.c - prefork, accept and demand start. Not implemented yet: such
 * services fail with a message saying so (replaced in the listeners work). */
#include "pool.h"

#include <stdio.h>

#include "log.h"


static void unsupported(struct service *s)
{
	log_error("%s: mode %s / start = demand is not supported by this build yet", s->conf->name,
		  conf_mode_name(s->conf->mode));
	s->want = false;
	s->state = ST_FAILED;
	snprintf(s->reason, sizeof(s->reason), "not supported by this build yet");
}

void pool_start(struct service *s) { unsupported(s); }
void pool_wait_demand(struct service *s) { unsupported(s); }
void pool_stop_accepting(struct service *s) { (void)s; }
void pool_release(struct service *s) { (void)s; }
void pool_proc_exited(struct service *s, struct proc *p, int status) { (void)s; (void)p; (void)status; }
void pool_notify(struct service *s, struct proc *p, const char *key, const char *value) { (void)s; (void)p; (void)key; (void)value; }
void pool_apply_live(struct service *s) { (void)s; }
void pool_roll(struct service *s) { (void)s; }
