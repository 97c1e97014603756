/* spawn.h - start one process, exactly as described, or say why not.
 *
 * The child gets: its own session and process group; default signal
 * dispositions and an empty signal mask; descriptors 0..nfds-1 from fds[]
 * and no other; with set_creds, exactly the given uid, gid and
 * supplementary groups, no ambient capability, and for a uid other than 0
 * no capability at all (every step checked, the result read back);
 * working directory, umask and resource limits; then execve. A step that
 * fails ends the child before exec (it never runs with more privilege than
 * asked) and is reported in spawn_result.
 *
 * Cost does not grow with droverd's memory: the child shares droverd's
 * address space until it execs instead of copying page tables. */
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
	/* in_cgroup: the child first moves itself into the cgroup whose
	 * cgroup.procs droverd opened as cgroup_fd (step "cgroup"). */
	bool in_cgroup;
	int cgroup_fd;
	bool no_new_privs;	/* PR_SET_NO_NEW_PRIVS right before exec */
};

struct spawn_result {
	pid_t pid;
	int pidfd;		/* -1 where the kernel has no pidfd */
	int err;		/* errno of the failed step, 0 on success */
	const char *step;	/* "exec", "setuid", "chdir", ... */
};

/* 0 when the program runs; -1 with res->err/step set otherwise (a child
 * that failed before exec has been reaped already). droverd waits while
 * the child gets ready, until its exec: on a busy machine, for as long as
 * the scheduler makes the child wait (its setsid puts it in a new
 * scheduling group where the kernel has autogroup). */
int spawn_process(const struct spawn_req *r, struct spawn_result *res);

/* The same without waiting: 0 once the child exists (res->pid, pidfd),
 * -1 when it could not be created. Whether it reached exec is learnt
 * later, without a descriptor: spawn_pending_outcome() says 0 it runs the
 * program, -1 a step failed (why gets "cannot exec ..."; the child exits
 * 127), 1 not known yet. Once the child's exit is known, so is the
 * outcome. spawn_pending_free() may come at any time: memory the child
 * still runs on is kept until it is done with it. Where the child cannot be
 * written without libc's errno (processors other than x86-64 and aarch64),
 * this waits like spawn_process and *pend is NULL. */
struct spawn_pending;
int spawn_detached(const struct spawn_req *r, struct spawn_result *res, struct spawn_pending **pend);
int spawn_pending_outcome(struct spawn_pending *pd, char *why, size_t len);
void spawn_pending_free(struct spawn_pending *pd);
/* "cannot exec /x: No such file or directory" and the like. */
void spawn_describe_error(const struct spawn_req *r, const struct spawn_result *res,
			  char *out, size_t len);

#endif
