/* pool.h - services whose processes come and go with connections:
 * prefork pools, accept mode, and daemons started on demand. */
#ifndef DROVER_POOL_H
#define DROVER_POOL_H

#include <stdint.h>

#include "service.h"

void pool_start(struct service *s);
void pool_wait_demand(struct service *s);
void pool_stop_accepting(struct service *s);
void pool_release(struct service *s);
void pool_proc_exited(struct service *s, struct proc *p, int status);
void pool_notify(struct service *s, struct proc *p, const char *key, const char *value);
void pool_apply_live(struct service *s);
void pool_roll(struct service *s);
/* Its probe passed: ready now, if it waited for that. */
void pool_healthy(struct service *s);
/* A newer generation is starting beside the serving one. */
bool pool_rolling(const struct service *s);
/* For the upgrade hand-over. */
struct pool_saved {
	uint64_t served;
	unsigned failures;
	int64_t throttle_until;
	bool dynamic;
	bool rolling;
	unsigned serving_gen;
};
bool pool_save(const struct service *s, struct pool_saved *out);
bool pool_restore(struct service *s, const struct pool_saved *in);
/* A restored process of a pool: counted as a worker in state wstate. */
void pool_adopt_worker(struct service *s, struct proc *p, int wstate);
/* For status: busy, idle, total workers (accept: handlers running), and
 * connections served. */
void pool_describe(const struct service *s, unsigned *busy, unsigned *idle, unsigned *total,
		   uint64_t *served);

#endif
