/* launch.h - start one process of a service, as SPEC section 4 describes.
 *
 * Builds what the process gets (environment, descriptors, credentials,
 * limits) from the service's configuration and runtime, spawns it, and
 * records it. Used by every mode: the main process of daemon/oneshot/timer,
 * prefork workers, and accept-mode connection handlers. */
#ifndef DROVER_LAUNCH_H
#define DROVER_LAUNCH_H

#include <stddef.h>
#include <sys/resource.h>

#include "records.h"

struct launch_opts {
	int slot;			/* prefork: DROVER_WORKER; -1 none */
	int conn_fd;			/* accept: the connection as stdin/stdout; -1 none */
	const char *const *extra_env;	/* accept: REMOTE_ADDR=... */
	int nextra;
	bool no_listeners;		/* accept: the handler gets the connection only */
	char *const *argv;		/* NULL: the service's command (exec probe: its own) */
	/* An exec probe: its record is in the pid table (it is reaped) but not
	 * in the service's processes (it is not the service). */
	bool unlisted;
	/* Do not wait for the exec (spawn_detached): a step that fails is
	 * told to spawn_failed later, before the process's exit is. */
	void (*spawn_failed)(struct service *s, const char *why);
};

/* The process, recorded in s->procs; NULL with a reason in err and the
 * cause in errno (EMFILE, EAGAIN, ENOMEM... for what may work later: see
 * scarce.h). */
struct proc *launch_proc(struct service *s, const struct launch_opts *o, char *err, size_t len);

/* A detached start's outcome: frees what it held and reports a failure.
 * The reaper calls it before handling an exit, when the outcome is always
 * known. */
void launch_settle_exited(struct proc *p);

/* Set once at start-up. */
void launch_init(const struct rlimit *nofile_for_children, int devnull);

#endif
