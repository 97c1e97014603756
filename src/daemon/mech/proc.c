/* proc.c - see proc.h.
 *
 * Every process droverd starts leads its own process group (setsid), so the
 * group id is the leader's pid. The kernel keeps that id reserved while any
 * member lives, even after the leader was reaped; droverd stops signalling a
 * group as soon as it finds it empty, which keeps the window in which the id
 * could be reused by an unrelated process as small as the kernel allows. */
#include "proc.h"

#include <errno.h>
#include <stddef.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "output.h"
#include "value.h"

enum { BUCKETS = 4096, RECHECK_MS = 100, DENIED_MAX_MS = 5000 };

static struct proc *table[BUCKETS];	/* leaders not yet reaped, by pid */
static struct proc *remnants;		/* reaped leaders whose group lives on */
static unsigned live;
static const struct proc_events *up;	/* set once by main.c */

void proc_set_events(const struct proc_events *ev)
{
	up = ev;
}

static unsigned bucket(pid_t pid)
{
	return (unsigned)pid % BUCKETS;
}

struct proc *proc_find(pid_t pid)
{
	for (struct proc *p = table[bucket(pid)]; p; p = p->hnext)
		if (p->pid == pid)
			return p;
	return NULL;
}

struct proc *proc_new_unlisted(struct service *s, pid_t pid, int pidfd)
{
	struct proc *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->pid = pid;
	p->pidfd = pidfd;
	p->svc = s;
	p->started = loop_now();
	p->hnext = table[bucket(pid)];
	table[bucket(pid)] = p;
	live++;
	return p;
}

struct proc *proc_new(struct service *s, pid_t pid, int pidfd)
{
	struct proc *p = proc_new_unlisted(s, pid, pidfd);

	if (!p)
		return NULL;
	p->next = s->procs;
	s->procs = p;
	s->nprocs++;
	return p;
}

static void unlink_table(struct proc *p)
{
	for (struct proc **pp = &table[bucket(p->pid)]; *pp; pp = &(*pp)->hnext)
		if (*pp == p) {
			*pp = p->hnext;
			return;
		}
}

static void unlink_service(struct proc *p)
{
	struct service *s = p->svc;

	if (!s)
		return;
	for (struct proc **pp = &s->procs; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			s->nprocs--;
			break;
		}
	p->svc = NULL;
}

static void proc_free(struct proc *p)
{
	struct service *s = p->svc;

	timer_cancel(&p->t_kill);
	loop_del(&p->w_exit);
	output_close(p);
	unlink_service(p);
	if (p->pidfd >= 0)
		close(p->pidfd);
	free(p);
	live--;
	if (s) {
		/* Its last process may just have gone: it, and whatever waits
		 * for it to stop, look again. */
		up->gone(s);
	}
}

unsigned proc_count(void)
{
	return live;
}

int proc_signal(struct proc *p, int sig)
{
	if (p->pidfd >= 0)
		return pidfd_send_signal(p->pidfd, sig, NULL, 0);
	return kill(p->pid, sig);
}

int proc_signal_group(struct proc *p, int sig)
{
	if (kill(-p->pid, sig) == 0)
		return 0;
	if (errno == ESRCH && p->pidfd >= 0)
		return proc_signal(p, sig);	/* not a group leader (yet): the process alone */
	return -1;
}

static bool group_alive(struct proc *p)
{
	return kill(-p->pid, 0) == 0 || errno == EPERM;
}

static void remnant_drop(struct proc *p)
{
	for (struct proc **pp = &remnants; *pp; pp = &(*pp)->hnext)
		if (*pp == p) {
			*pp = p->hnext;
			proc_free(p);
			return;
		}
}

static void kill_timeout(struct timer *t);

/* "uid 0", from the owner of /proc/PID (its effective uid; root when it
 * is not dumpable, as a setuid program is); "another user" if unknown. */
static void uid_of(pid_t pid, char *out, size_t len)
{
	char path[32];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	if (stat(path, &st) == 0)
		snprintf(out, len, "uid %u", (unsigned)st.st_uid);
	else
		snprintf(out, len, "another user");
}

/* The kernel refuses droverd's SIGKILL: nothing droverd can do ends the
 * process. Say so once, and look again ever less often until the group is
 * empty (it exits by itself, or root ends it). */
static void kill_denied(struct proc *p)
{
	const char *name = p->svc ? p->svc->conf->name : "?";
	char who[32], every[32];

	if (!p->kill_denied) {
		p->kill_denied = true;
		p->recheck = RECHECK_MS;
		uid_of(p->pid, who, sizeof(who));
		duration_format(DENIED_MAX_MS, every, sizeof(every));
		log_error("%s: cannot kill pid %d (process group %d): %s: droverd runs as uid %u and the "
			  "process as %s (a setuid program, or one that changed its uid); the service stays "
			  "stopping until it exits (checked every %s at most)",
			  name, (int)p->pid, (int)p->pid, strerror(EPERM), (unsigned)geteuid(), who, every);
		if (p->svc) {
			char why[200];

			snprintf(why, sizeof(why), "cannot kill pid %d (it runs as %s): %s; waiting for it to exit",
				 (int)p->pid, who, strerror(EPERM));
			up->note(p->svc, why);
		}
	}
	p->recheck = p->recheck * 2 > DENIED_MAX_MS ? DENIED_MAX_MS : p->recheck * 2;
	timer_after(&p->t_kill, p->recheck, kill_timeout);
}

static void kill_timeout(struct timer *t)
{
	struct proc *p = (struct proc *)((char *)t - offsetof(struct proc, t_kill));

	if (p->pidfd < 0 && !group_alive(p)) {
		remnant_drop(p);	/* emptied without a reap of ours */
		return;
	}
	if (!p->killed) {
		log_warn("%s: pid %d did not stop within %lldms: killing its process group",
			 p->svc ? p->svc->conf->name : "?", (int)p->pid,
			 (long long)(p->svc ? p->svc->conf->stop_timeout : 0));
		p->killed = true;
	}
	if (proc_signal_group(p, SIGKILL) < 0 && errno == EPERM) {
		kill_denied(p);
		return;
	}
	timer_after(&p->t_kill, RECHECK_MS, kill_timeout);
}

void proc_kill(struct proc *p)
{
	p->stopping = p->killed = true;
	proc_signal_group(p, SIGKILL);
	timer_after(&p->t_kill, RECHECK_MS, kill_timeout);
}

void proc_stop(struct proc *p, int sig, int64_t timeout)
{
	if (!p->stopping) {
		p->stopping = true;
		/* A stopped process must see the signal: continue it first.
		 * Not after: the signal may already have it exiting, and a
		 * SIGCONT then cancels the SIGSTOP of whatever the exit path
		 * does (a ptrace attach, as LeakSanitizer's), hanging it. */
		if (sig != SIGKILL && sig != SIGCONT)
			proc_signal_group(p, SIGCONT);
		proc_signal_group(p, sig);
		timer_after(&p->t_kill, timeout, kill_timeout);
	}
}

void proc_stop_signalled(struct proc *p, int64_t timeout)
{
	if (!p->stopping) {
		p->stopping = true;
		timer_after(&p->t_kill, timeout, kill_timeout);
	}
}

/* The leader is gone: remaining group members get the stop sequence now
 * (helpers never outlive their service). */
void proc_leader_exited(struct proc *p)
{
	unlink_table(p);
	loop_del(&p->w_exit);
	if (p->pidfd >= 0) {
		close(p->pidfd);
		p->pidfd = -1;
	}
	if (!group_alive(p)) {
		proc_free(p);
		return;
	}
	if (!p->stopping && p->svc)
		proc_stop(p, p->svc->conf->stop_signal, p->svc->conf->stop_timeout);
	else if (!p->stopping)
		proc_stop(p, SIGKILL, RECHECK_MS);
	p->hnext = remnants;
	remnants = p;
}

void proc_arm_kill(struct proc *p, int64_t when)
{
	timer_at(&p->t_kill, when, kill_timeout);
}

void proc_adopt_remnant(struct proc *p)
{
	unlink_table(p);
	p->hnext = remnants;
	remnants = p;
	if (!timer_armed(&p->t_kill))
		timer_after(&p->t_kill, RECHECK_MS, kill_timeout);
}

void proc_sweep(void)
{
	for (struct proc **pp = &remnants; *pp;) {
		struct proc *p = *pp;

		if (group_alive(p)) {
			pp = &p->hnext;
			continue;
		}
		*pp = p->hnext;
		proc_free(p);
	}
}

void proc_foreach_pid(pid_t pid, bool *found)
{
	if (proc_find(pid)) {
		*found = true;
		return;
	}
	for (struct proc *p = remnants; p; p = p->hnext)
		if (p->pid == pid) {
			*found = true;
			return;
		}
}

void proc_foreach(void (*fn)(struct proc *p, void *arg), void *arg)
{
	for (unsigned i = 0; i < BUCKETS; i++)
		for (struct proc *p = table[i]; p; p = p->hnext)
			fn(p, arg);
	for (struct proc *p = remnants; p; p = p->hnext)
		fn(p, arg);
}
