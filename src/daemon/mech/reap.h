/* reap.h - collecting exited children.
 *
 * Each process droverd starts is watched through its pidfd: its exit is an
 * event of its own, collected with waitid(P_PIDFD) at a cost that does not
 * depend on how many children droverd has. droverd is also a child
 * subreaper: processes a service leaves behind (their parent died) become
 * droverd's children; SIGCHLD schedules a sweep that reaps them (and any
 * child without a pidfd, on kernels before 5.3), so no zombie stays. */
#ifndef DROVER_REAP_H
#define DROVER_REAP_H

#include <stdint.h>

#include "records.h"

/* What the reaper reports upward: set once, by main.c. */
struct reap_events {
	/* The leader of p exited; its last datagrams and output are read. */
	void (*exited)(struct proc *p, int status);
	/* A child that is no record's exited: true when it was known to the
	 * top (an upgrade's or a handover's child), false for an orphan a
	 * service left behind. */
	bool (*stranger)(pid_t pid, int status);
};
void reap_set_events(const struct reap_events *ev);

/* Start watching p's exit (its pidfd; without one, SIGCHLD covers it). */
void reap_watch(struct proc *p);
/* SIGCHLD arrived. */
void reap_sigchld(void);
/* Reap every child that has exited (the sweep). */
void reap_children(void);
/* Children that are neither processes droverd started nor members of
 * their groups (what a dead new droverd left behind) get SIGTERM, and
 * SIGKILL after grace ms. */
void reap_stop_strangers(int64_t grace);
/* At exit: any child droverd still has (a helper that escaped its
 * service's process group) is killed and reaped, not left behind; but
 * not `spare` (the droverd taking over in a handover; 0: none). */
void reap_all_before_exit(pid_t spare);

#endif
