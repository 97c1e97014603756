/* spawn.h - start one process, exactly as described, or say why not.
 *
 * The child gets: its own session and process group; default signal
 * dispositions and an empty signal mask; descriptors 0..nfds-1 from fds[]
 * and no other; the given credentials, dropped with every step checked;
 * working directory, umask and resource limits; then execve. A step that
 * fails ends the child before exec (it never runs with more privilege than
 * asked) and is reported in spawn_result.
 *
 * Cost does not grow with droverd's memory: the child shares droverd's
 * address space until it execs (vfork semantics) instead of copying page
 * tables. */
#ifndef DROVER_SPAWN_H
#define DROVER_SPAWN_H

#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "conf.h"

struct spawn_req {
	char *const *argv;
	char *const *envp;
	const int *fds;		/* fds[i] becomes descriptor i */
	int nfds;		/* at least 3 */
	char *pid_slot;		/* if set, the child writes its pid here (LISTEN_PID) */
	bool set_creds;
	uid_t uid;
	gid_t gid;
	const gid_t *groups;
	int ngroups;
	const char *dir;	/* NULL: droverd's own working directory */
	mode_t umask;
	const struct rlimit *limit[LIM_COUNT];	/* NULL: inherit */
	const int *keep;	/* also passed on, at their own numbers (>= nfds) */
	int nkeep;
};

struct spawn_result {
	pid_t pid;
	int pidfd;		/* -1 where the kernel has no pidfd */
	int err;		/* errno of the failed step, 0 on success */
	const char *step;	/* "exec", "setuid", "chdir", ... */
};

/* 0 when the program runs; -1 with res->err/step set otherwise (a child
 * that failed before exec has been reaped already). */
int spawn_process(const struct spawn_req *r, struct spawn_result *res);
/* "cannot exec /x: No such file or directory" and the like. */
void spawn_describe_error(const struct spawn_req *r, const struct spawn_result *res,
			  char *out, size_t len);

#endif
