/* launch.c - see launch.h.
 *
 * The environment is built fresh for every process: PATH, droverd's
 * variables, socket activation, readiness, then the service's `env` lines
 * (a later definition of a name replaces an earlier one). droverd's own
 * environment is passed only with env_inherit, and never its systemd
 * variables. */
#include "launch.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"
#include "listen.h"
#include "log.h"
#include "notify.h"
#include "output.h"
#include "proc.h"
#include "reap.h"
#include "spawn.h"

extern char **environ;

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static struct rlimit child_nofile;
static int dev_null = -1;

void launch_init(const struct rlimit *nofile, int devnull)
{
	child_nofile = *nofile;
	dev_null = devnull;
}

struct env {
	char **v;
	int n, cap;
	bool failed;
};

/* Adds or replaces NAME=VALUE (entry is "NAME=VALUE", copied). */
static void env_put(struct env *e, const char *entry)
{
	size_t klen = strcspn(entry, "=");
	char *copy;

	for (int i = 0; i < e->n; i++)
		if (strncmp(e->v[i], entry, klen) == 0 && e->v[i][klen] == '=') {
			if ((copy = strdup(entry))) {
				free(e->v[i]);
				e->v[i] = copy;
			} else {
				e->failed = true;
			}
			return;
		}
	if (e->n + 2 > e->cap) {
		int cap = e->cap ? e->cap * 2 : 32;
		char **v = realloc(e->v, sizeof(*v) * (size_t)cap);

		if (!v) {
			e->failed = true;
			return;
		}
		e->v = v;
		e->cap = cap;
	}
	if (!(e->v[e->n] = strdup(entry))) {
		e->failed = true;
		return;
	}
	e->v[++e->n] = NULL;
}

static void env_putf(struct env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void env_putf(struct env *e, const char *fmt, ...)
{
	char text[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	env_put(e, text);
}

static void env_free(struct env *e)
{
	for (int i = 0; i < e->n; i++)
		free(e->v[i]);
	free(e->v);
}

static bool is_droverd_own(const char *entry)
{
	static const char *const own[] = { "NOTIFY_SOCKET=", "LISTEN_FDS=", "LISTEN_PID=",
					   "LISTEN_FDNAMES=", "WATCHDOG_USEC=", "WATCHDOG_PID=",
					   "DROVER_STATE_FD=", NULL };

	for (int i = 0; own[i]; i++)
		if (strncmp(entry, own[i], strlen(own[i])) == 0)
			return true;
	return false;
}

static bool wants_notify(const struct svc_conf *c)
{
	return c->ready == READY_NOTIFY || c->watchdog || c->mode == MODE_PREFORK;
}

/* LISTEN_PID's value is written by the child itself (it is its own pid);
 * the entry is made long enough for any pid. */
static char *build_env(struct service *s, const struct launch_opts *o, int nlisten, struct env *e)
{
	const struct svc_conf *c = s->conf;
	char *pid_slot = NULL;

	if (c->env_inherit)
		for (char **p = environ; *p; p++)
			if (!is_droverd_own(*p))
				env_put(e, *p);
	env_put(e, DEFAULT_PATH);
	env_putf(e, "DROVER_SERVICE=%s", c->name);
	env_putf(e, "DROVER_GENERATION=%u", s->generation);
	if (o->slot >= 0)
		env_putf(e, "DROVER_WORKER=%d", o->slot);
	if (wants_notify(c) && notify_socket_name()[0])
		env_putf(e, "NOTIFY_SOCKET=%s", notify_socket_name());
	if (c->watchdog)
		env_putf(e, "WATCHDOG_USEC=%lld", (long long)c->watchdog * 1000);
	for (int i = 0; i < o->nextra; i++)
		env_put(e, o->extra_env[i]);
	if (nlisten) {
		env_putf(e, "LISTEN_FDS=%d", nlisten);
		env_put(e, "LISTEN_PID=0000000000000000");
		env_put(e, listen_fdnames(s));
	}
	for (int i = 0; i < c->nenv; i++)
		env_put(e, c->env[i]);
	for (int i = 0; nlisten && i < e->n; i++)
		if (strncmp(e->v[i], "LISTEN_PID=", 11) == 0)
			pid_slot = e->v[i] + 11;
	return pid_slot;
}

static void fill_credentials(const struct svc_conf *c, struct spawn_req *r)
{
	if (!c->has_user && !c->has_group)
		return;
	r->uid = c->has_user ? c->uid : geteuid();
	r->gid = c->gid;
	r->groups = c->has_user ? c->groups : NULL;
	r->ngroups = c->has_user ? c->ngroups : 0;
	/* Always, even when droverd "becomes" itself: the child must shed
	 * droverd's own groups and capabilities (spawn.h). What droverd may
	 * not change fails the start, which spawn reports. */
	r->set_creds = true;
}

static struct proc *record(struct service *s, const struct spawn_result *res, int out_r, bool unlisted)
{
	struct proc *p = unlisted ? proc_new_unlisted(s, res->pid, res->pidfd) : proc_new(s, res->pid, res->pidfd);

	if (!p) {
		/* Cannot supervise it: do not let it run unsupervised. */
		kill(-res->pid, SIGKILL);
		if (res->pidfd >= 0)
			close(res->pidfd);
		close(out_r);
		return NULL;
	}
	p->gen = s->generation;
	reap_watch(p);
	if (output_attach(p, out_r) < 0)
		log_warn("%s: cannot read the output of pid %d; it is lost", s->conf->name, (int)p->pid);
	return p;
}

/* At the exit the outcome is known: the kernel lets go of a child's hold
 * on droverd's memory (and says so) before it tells its exit. */
void launch_settle_exited(struct proc *p)
{
	char why[300];
	int r;

	if (!p->spawning)
		return;
	r = spawn_pending_outcome(p->spawning, why, sizeof(why));
	spawn_pending_free(p->spawning);
	p->spawning = NULL;
	if (r < 0 && p->svc && p->spawn_failed)
		p->spawn_failed(p->svc, why);
}

struct proc *launch_proc(struct service *s, const struct launch_opts *o, char *err, size_t len)
{
	const struct svc_conf *c = s->conf;
	int nlisten = o->no_listeners ? 0 : listen_count(s);
	int fds[3 + LISTEN_MAX], pipefd[2];
	struct env e = { 0 };
	struct spawn_req r = { .argv = o->argv ? o->argv : c->argv, .dir = c->chdir, .umask = c->umask,
			       .no_new_privs = c->no_new_privs };
	struct spawn_result res;
	struct spawn_pending *pd = NULL;
	struct proc *p = NULL;
	int rc, cause = ENOMEM;

	if (output_pipe(pipefd) < 0) {
		cause = errno;
		snprintf(err, len, "cannot create an output pipe: %s", strerror(errno));
		errno = cause;
		return NULL;
	}
	r.pid_slot = build_env(s, o, nlisten, &e);
	if (e.failed) {
		snprintf(err, len, "cannot build the environment: out of memory");
		goto out;
	}
	r.envp = e.v;
	fds[0] = o->conn_fd >= 0 ? o->conn_fd : dev_null;
	fds[1] = o->conn_fd >= 0 ? o->conn_fd : pipefd[1];
	fds[2] = pipefd[1];
	for (int i = 0; i < nlisten; i++)
		fds[3 + i] = listen_fd(s, i);
	r.fds = fds;
	r.nfds = 3 + nlisten;
	fill_credentials(c, &r);
	for (int i = 0; i < LIM_COUNT; i++)
		r.limit[i] = c->has_limit[i] ? &c->limit[i] : NULL;
	if (!r.limit[LIM_NOFILE])
		r.limit[LIM_NOFILE] = &child_nofile;
	if (s->cg) {
		r.in_cgroup = true;
		r.cgroup_fd = cgroup_procs_fd(s->cg);
	}
	rc = o->spawn_failed ? spawn_detached(&r, &res, &pd) : spawn_process(&r, &res);
	if (rc < 0) {
		spawn_describe_error(&r, &res, err, len);
		cause = res.err;
		goto out;
	}
	close(pipefd[1]);
	pipefd[1] = -1;
	p = record(s, &res, pipefd[0], o->unlisted);
	pipefd[0] = -1;
	if (p)
		p->no_notify = !(wants_notify(c) && notify_socket_name()[0]);
	if (p && pd) {
		p->spawning = pd;
		p->spawn_failed = o->spawn_failed;
	} else if (pd) {
		kill(res.pid, SIGKILL);	/* before its setsid, the group kill misses it */
		spawn_pending_free(pd);
	}
	if (!p)
		snprintf(err, len, "out of memory recording pid %d; it was killed", (int)res.pid);
out:
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	env_free(&e);
	if (!p)
		errno = cause;
	return p;
}
