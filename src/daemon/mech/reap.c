/* reap.c - see reap.h. */
#include "reap.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/wait.h>

#include "launch.h"
#include "log.h"
#include "notify.h"
#include "output.h"
#include "proc.h"

enum { SWEEP_DELAY_MS = 50 };

static struct timer t_sweep;
static const struct reap_events *up;	/* set once by main.c */

void reap_set_events(const struct reap_events *ev)
{
	up = ev;
}

/* One exit, however it was learnt. */
static void exited(struct proc *p, int status)
{
	/* A service may send READY=1 and exit at once: read its datagrams
	 * while it is still known by pid (if it was given the socket), and
	 * its last output lines first; and a start that failed before exec
	 * is told as such, first. */
	launch_settle_exited(p);
	if (!p->no_notify)
		notify_drain();
	loop_del(&p->w_exit);
	p->exited = true;
	output_drain(p);
	up->exited(p, status);
	proc_leader_exited(p);
}

/* siginfo of waitid() back into the wait status of waitpid(). */
static int wait_status(const siginfo_t *si)
{
	switch (si->si_code) {
	case CLD_EXITED:
		return (si->si_status & 0xff) << 8;
	case CLD_DUMPED:
		return (si->si_status & 0x7f) | 0x80;
	default:
		return si->si_status & 0x7f;
	}
}

static void pidfd_event(struct watch *w, uint32_t events)
{
	struct proc *p = (struct proc *)((char *)w - offsetof(struct proc, w_exit));
	siginfo_t si = { 0 };

	(void)events;
	if (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG) < 0) {
		if (errno == ECHILD)	/* reaped by the sweep meanwhile */
			loop_del(w);
		return;
	}
	if (si.si_pid)
		exited(p, wait_status(&si));
}

void reap_watch(struct proc *p)
{
	if (p->pidfd >= 0 && loop_add(&p->w_exit, p->pidfd, EPOLLIN, pidfd_event) < 0)
		log_warn("cannot watch pid %d through its pidfd; SIGCHLD will do", (int)p->pid);
}

void reap_children(void)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct proc *p = proc_find(pid);

		if (p)
			exited(p, status);
		else if (!up->stranger(pid, status))
			log_debug("reaped pid %d (left behind by a service)", (int)pid);
	}
	if (pid < 0 && errno != ECHILD)
		log_errno("waitpid");
	proc_sweep();
}

static int children(pid_t *out, int max)
{
	char path[64], buf[8192];
	int n = 0, fd;
	ssize_t len;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)getpid(), (int)getpid());
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return 0;
	buf[len] = '\0';
	for (char *p = buf, *end; n < max && (out[n] = (pid_t)strtol(p, &end, 10)) > 0; p = end)
		n++;
	return n;
}

static bool tracked_group(pid_t pgid)
{
	bool found = false;

	proc_foreach_pid(pgid, &found);
	return found;
}

static bool stranger(pid_t pid)
{
	pid_t pgid = getpgid(pid);

	return !proc_find(pid) && !(pgid > 0 && tracked_group(pgid));
}

static struct timer t_strangers;

static void strangers_timeout(struct timer *t)
{
	pid_t kids[512];
	int n = children(kids, 512);

	(void)t;
	for (int i = 0; i < n; i++)
		if (stranger(kids[i])) {
			log_warn("pid %d, left behind by the new droverd, did not stop: killing it", (int)kids[i]);
			kill(-kids[i], SIGKILL);
			kill(kids[i], SIGKILL);
		}
	reap_sigchld();
}

/* What a dead new droverd left behind became our children: ask them to
 * finish (they may be serving a request), kill them after `grace`. */
void reap_stop_strangers(int64_t grace)
{
	pid_t kids[512];
	int n = children(kids, 512), found = 0;

	for (int i = 0; i < n; i++) {
		if (!stranger(kids[i]))
			continue;
		log_info("stopping pid %d, left behind by the new droverd", (int)kids[i]);
		kill(kids[i], SIGCONT);	/* first: see proc_stop() */
		kill(kids[i], SIGTERM);
		found++;
	}
	if (found)
		timer_after(&t_strangers, grace, strangers_timeout);
	reap_sigchld();		/* their exits are collected by the sweep */
}

void reap_all_before_exit(pid_t spare)
{
	pid_t kids[512];
	int n;

	reap_children();
	for (int round = 0; round < 50 && (n = children(kids, 512)) > (spare > 0); round++) {
		for (int i = 0; i < n; i++) {
			if (kids[i] == spare)
				continue;	/* the droverd taking over: it carries on */
			log_warn("pid %d is still running at exit (it left its service's process group): killing it",
				 (int)kids[i]);
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);	/* SIGKILL: the wait is short */
		}
	}
}

static void sweep_timeout(struct timer *t)
{
	(void)t;
	reap_children();
}

/* Tracked children report through their pidfds; what SIGCHLD adds is
 * orphans, which can wait a moment. One sweep per interval, however many
 * signals: waitpid(-1) walks every child, which must not happen per exit. */
void reap_sigchld(void)
{
	if (!timer_armed(&t_sweep))
		timer_after(&t_sweep, SWEEP_DELAY_MS, sweep_timeout);
}
