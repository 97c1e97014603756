/* proc.h - the processes droverd started, by pid, and how they are stopped.
 *
 * A process record lives from spawn until its leader has been reaped AND its
 * process group is empty: helpers a service forked are stopped with it
 * (stop signal to the group, SIGKILL to the group after stop_timeout), and
 * the service counts as stopped only when none is left. */
#ifndef DROVER_PROC_H
#define DROVER_PROC_H

#include "records.h"

/* What the process table reports upward: set once, by main.c. */
struct proc_events {
	/* A record of s was freed (its leader reaped and its group empty):
	 * whether s has any process left may have changed. */
	void (*gone)(struct service *s);
	/* Something about s an administrator should see as its reason. */
	void (*note)(struct service *s, const char *text);
};
void proc_set_events(const struct proc_events *ev);

struct proc *proc_new(struct service *s, pid_t pid, int pidfd);
/* A process of s that is not one of its processes (an exec probe): reaped
 * and stopped like the others, but not in s->procs. */
struct proc *proc_new_unlisted(struct service *s, pid_t pid, int pidfd);
struct proc *proc_find(pid_t pid);
/* The leader was reaped: forget the pid, finish off its group. */
void proc_leader_exited(struct proc *p);
/* Signal the leader only (pidfd where possible). */
int proc_signal(struct proc *p, int sig);
/* Signal the whole process group: 0, or -1 with errno (EPERM: none of
 * it may be signalled by droverd). */
int proc_signal_group(struct proc *p, int sig);
/* Graceful stop: sig (and SIGCONT) to the group, SIGKILL after timeout,
 * repeated until the group is empty. A droverd that is not root may find
 * the SIGKILL refused (the process runs as another user now: a setuid
 * program, or one that changed its uid): that is logged once, with the
 * pid and its uid, and checked again ever less often (up to every
 * DENIED_MAX_MS); the record, and its service, stay stopping until the
 * group is empty. */
void proc_stop(struct proc *p, int sig, int64_t timeout);
/* The same, for a process the caller has just sent the signal another way
 * (to every process of its service's cgroup): a second signal would run a
 * program's handler twice. */
void proc_stop_signalled(struct proc *p, int64_t timeout);
/* SIGKILL to the group now, even if a graceful stop is under way. */
void proc_kill(struct proc *p);
/* Upgrade hand-over: arm p's SIGKILL deadline; take over a remnant. */
void proc_arm_kill(struct proc *p, int64_t when);
void proc_adopt_remnant(struct proc *p);
/* After any reap: free records whose group has emptied. */
void proc_sweep(void);
/* Count of live records (leaders not yet reaped, or groups not empty). */
unsigned proc_count(void);
/* Is pid a record's pid (a leader or a remnant's group)? Sets *found. */
void proc_foreach_pid(pid_t pid, bool *found);
/* Call fn for every record (the upgrade hand-over walks them). */
void proc_foreach(void (*fn)(struct proc *p, void *arg), void *arg);

#endif
