/* cgroup.h - each service's processes in a cgroup v2 of their own (SPEC 4a).
 *
 * droverd finds the cgroup2 mount and its own cgroup (BASE). Where it may
 * write there, it moves itself into the leaf BASE/droverd and makes
 * BASE/services.PID (PID: droverd's) with one cgroup per service,
 * BASE/services.PID/NAME.service. It touches nothing outside BASE. A new
 * droverd started by a handover is in the leaf already and makes its own
 * services.PID beside the old one's; an in-place upgrade keeps the PID and
 * finds everything where it was. What droverd made is removed as it goes:
 * a service's cgroup with its service, the rest at exit. */
#ifndef DROVER_CGROUP_H
#define DROVER_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

struct cgroup;

/* Before the loop runs. 0: services get cgroups (or mode is `no`); -1:
 * they cannot, with the reason in err. */
int cgroup_init(enum cgroup_mode mode, char *err, size_t len);
bool cgroup_enabled(void);

/* The cgroup of service `name`, made or found (a takeover); emptied(arg)
 * is called from the loop when its last process has gone. NULL with the
 * reason in err. */
struct cgroup *cgroup_open(const char *name, void (*emptied)(void *arg), void *arg, char *err,
			   size_t len);
/* Removes it when empty (a service that goes away). */
void cgroup_close(struct cgroup *cg);

/* cgroup.procs, open for writing: what a child writes "0" to (spawn.h). */
int cgroup_procs_fd(const struct cgroup *cg);
bool cgroup_populated(const struct cgroup *cg);
/* Every cgroup of droverd's is empty. */
bool cgroup_all_empty(void);

/* sig (after SIGCONT) to every process in it, then SIGKILL to all of them
 * after timeout ms, until it is empty. Again while under way, or empty:
 * nothing. True when it signalled its processes now. */
bool cgroup_stop(struct cgroup *cg, int sig, int64_t timeout);
/* SIGKILL to every process in it now, until it is empty. */
void cgroup_kill(struct cgroup *cg);

/* The service's limits (memory_max, pids_max, cpu_weight, cpu_max); a
 * limit not set is reset. -1 with "cannot apply KEY: ..." in err. */
int cgroup_apply_limits(struct cgroup *c, const struct svc_conf *s, char *err, size_t len);

/* What the kernel counts for it; -1 when unknown (no controller). */
struct cgroup_stats {
	int64_t cpu_usec, memory_bytes, tasks;
};
void cgroup_read_stats(const struct cgroup *cg, struct cgroup_stats *st);

/* At exit: remove what this droverd made; when no other droverd is in
 * the leaf (none takes over), leave the leaf and remove it too. */
void cgroup_finish(void);

#endif
