/* spawn.c - see spawn.h.
 *
 * WARNING: child_main() runs in droverd's address space, on its own stack,
 * while droverd is suspended (CLONE_VM | CLONE_VFORK). It may only make
 * system calls and write to its own stack, the result record and the
 * pid_slot. No malloc, no stdio, no locks, no glibc wrapper that touches
 * shared state: credentials are changed with raw system calls, because the
 * glibc wrappers synchronise every thread of the process through memory the
 * child shares with droverd. */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "log.h"

enum { SPAWN_STACK = 256 * 1024, FDS_MAX = 1024 };

/* Under AddressSanitizer the child's frames would be left poisoned on the
 * reused stack (the child never returns, it execs), and its no-return calls
 * print notices into the service's output: the child's code is not
 * instrumented, and the stack is unpoisoned before each clone. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define CHILD __attribute__((no_sanitize_address))
#define UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define CHILD
#define UNPOISON(p, n) ((void)0)
#endif

static const int rlimit_resource[LIM_COUNT] = {
	[LIM_NOFILE] = RLIMIT_NOFILE, [LIM_NPROC] = RLIMIT_NPROC,
	[LIM_CORE] = RLIMIT_CORE, [LIM_AS] = RLIMIT_AS,
};

struct child_ctx {
	const struct spawn_req *req;
	volatile int err;
	const char *volatile step;
};

CHILD static _Noreturn void child_fail(struct child_ctx *c, const char *step)
{
	c->step = step;
	c->err = errno ? errno : EINVAL;
	_exit(127);
}

/* execve resets every signal droverd catches; what it ignores would stay
 * ignored. droverd catches nothing (signalfd) and ignores only SIGPIPE. */
CHILD static void child_signals(void)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };

	sigaction(SIGPIPE, &dfl, NULL);
}

/* A source inside the target range 0..nfds-1 could be overwritten by the
 * dup2 of another slot: those move above the range first. Then each slot
 * gets its descriptor; dup2's copies are not close-on-exec, and a source
 * already in its own slot has the flag cleared instead. Everything else is
 * closed at exec (kernels before 5.11: closed here). */
CHILD static void child_fds(struct child_ctx *c)
{
	const struct spawn_req *r = c->req;
	int src[FDS_MAX];

	for (int i = 0; i < r->nfds; i++) {
		src[i] = r->fds[i];
		if (src[i] < r->nfds && src[i] != i &&
		    (src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, r->nfds)) < 0)
			child_fail(c, "dup");
	}
	for (int i = 0; i < r->nfds; i++)
		if (src[i] == i ? fcntl(i, F_SETFD, 0) < 0 : dup2(src[i], i) < 0)
			child_fail(c, "dup2");
	/* Marking the rest close-on-exec costs a few bit operations; the
	 * kernel then closes them during execve, after droverd has resumed,
	 * instead of while it waits (droverd may hold thousands). */
	if (close_range((unsigned)r->nfds, ~0U, CLOSE_RANGE_CLOEXEC) == 0) {
		for (int i = 0; i < r->nkeep; i++)
			if (fcntl(r->keep[i], F_SETFD, 0) < 0)
				child_fail(c, "keep");
		return;
	}
	if (r->nkeep) {
		errno = ENOSYS;	/* keeping needs CLOSE_RANGE_CLOEXEC (5.11) */
		child_fail(c, "keep");
	}
	if (close_range((unsigned)r->nfds, ~0U, 0) < 0) {
		struct rlimit rl;

		getrlimit(RLIMIT_NOFILE, &rl);
		for (long fd = r->nfds; fd < (long)rl.rlim_cur && fd < 1 << 20; fd++)
			close((int)fd);
	}
}

CHILD static void child_pid_slot(char *slot)
{
	char digits[16];
	int n = 0;
	long pid = syscall(SYS_getpid);

	do
		digits[n++] = (char)('0' + pid % 10);
	while ((pid /= 10) && n < 15);
	while (n)
		*slot++ = digits[--n];
	*slot = '\0';
}

CHILD static void child_limits(struct child_ctx *c)
{
	for (int i = 0; i < LIM_COUNT; i++)
		if (c->req->limit[i] && setrlimit(rlimit_resource[i], c->req->limit[i]) < 0)
			child_fail(c, "setrlimit");
}

/* Groups, then gid, then uid; each checked, and the result read back. */
CHILD static void child_credentials(struct child_ctx *c)
{
	const struct spawn_req *r = c->req;
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (!r->set_creds)
		return;
	if (syscall(SYS_geteuid) == 0 &&
	    syscall(SYS_setgroups, (size_t)r->ngroups, r->groups) < 0)
		child_fail(c, "setgroups");
	if (syscall(SYS_setresgid, r->gid, r->gid, r->gid) < 0)
		child_fail(c, "setgid");
	if (syscall(SYS_setresuid, r->uid, r->uid, r->uid) < 0)
		child_fail(c, "setuid");
	if (syscall(SYS_getresuid, &ru, &eu, &su) < 0 || ru != r->uid || eu != r->uid || su != r->uid) {
		errno = EPERM;
		child_fail(c, "setuid");
	}
	if (syscall(SYS_getresgid, &rg, &eg, &sg) < 0 || rg != r->gid || eg != r->gid || sg != r->gid) {
		errno = EPERM;
		child_fail(c, "setgid");
	}
}

CHILD static const char *env_path(char *const *envp)
{
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

	for (; *envp; envp++)
		if (strncmp(*envp, "PATH=", 5) == 0)
			path = *envp + 5;
	return path;
}

/* execve, searching the service's own PATH for a bare name. */
CHILD static void child_exec(struct child_ctx *c)
{
	const struct spawn_req *r = c->req;
	const char *file = r->argv[0], *p;
	char full[PATH_MAX];
	bool denied = false;

	if (strchr(file, '/')) {
		execve(file, r->argv, r->envp);
		child_fail(c, "exec");
	}
	for (p = env_path(r->envp); ; p++) {
		const char *end = strchrnul(p, ':');
		size_t dl = (size_t)(end - p), fl = strlen(file);

		if (dl + fl + 2 <= sizeof(full)) {
			memcpy(full, p, dl);
			full[dl] = '/';
			memcpy(full + dl + 1, file, fl + 1);
			execve(dl ? full : file, r->argv, r->envp);
			if (errno == EACCES)
				denied = true;
			else if (errno != ENOENT && errno != ENOTDIR)
				child_fail(c, "exec");
		}
		if (!*end)
			break;
		p = end;
	}
	errno = denied ? EACCES : ENOENT;
	child_fail(c, "exec");
}

CHILD static int child_main(void *arg)
{
	struct child_ctx *c = arg;
	const struct spawn_req *r = c->req;
	sigset_t none;

	errno = 0;
	child_signals();
	if (setsid() < 0)
		child_fail(c, "setsid");
	child_fds(c);
	if (r->pid_slot)
		child_pid_slot(r->pid_slot);
	child_limits(c);
	child_credentials(c);
	if (r->dir && chdir(r->dir) < 0)
		child_fail(c, "chdir");
	umask(r->umask);
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		child_fail(c, "sigprocmask");
	child_exec(c);
	return 127;
}

static _Alignas(16) char spawn_stack[SPAWN_STACK];

int spawn_process(const struct spawn_req *r, struct spawn_result *res)
{
	struct child_ctx c = { .req = r };
	int flags = CLONE_VM | CLONE_VFORK | SIGCHLD;
	int pidfd = -1;
	pid_t pid;

	res->pid = -1;
	res->pidfd = -1;
	res->err = 0;
	res->step = NULL;
	if (r->nfds < 3 || r->nfds > FDS_MAX) {
		res->err = EINVAL;
		res->step = "dup";
		return -1;
	}
	UNPOISON(spawn_stack, sizeof(spawn_stack));
	pid = clone(child_main, spawn_stack + sizeof(spawn_stack), flags | CLONE_PIDFD, &c, &pidfd);
	if (pid < 0 && errno == EINVAL)		/* kernel before 5.2: no CLONE_PIDFD */
		pid = clone(child_main, spawn_stack + sizeof(spawn_stack), flags, &c);
	if (pid < 0) {
		res->err = errno;
		res->step = "fork";
		return -1;
	}
	res->pid = pid;
	if (c.err) {
		/* The child has called _exit already: collect it now, as
		 * posix_spawn does; the wait ends within its exit path. */
		waitpid(pid, NULL, 0);
		if (pidfd >= 0)
			close(pidfd);
		res->err = c.err;
		res->step = c.step;
		return -1;
	}
	/* Either way close-on-exec: the kernel sets it on every pidfd. */
	res->pidfd = pidfd >= 0 ? pidfd : pidfd_open(pid, 0);
	return 0;
}

void spawn_describe_error(const struct spawn_req *r, const struct spawn_result *res,
			  char *out, size_t len)
{
	const char *why = strerror(res->err), *step = res->step ? res->step : "?";

	if (strcmp(step, "exec") == 0)
		snprintf(out, len, "cannot exec %s: %s%s", r->argv[0], why,
			 strchr(r->argv[0], '/') ? "" : " (searched PATH)");
	else if (strcmp(step, "chdir") == 0)
		snprintf(out, len, "cannot change directory to %s: %s", r->dir, why);
	else if (strcmp(step, "setuid") == 0 || strcmp(step, "setgid") == 0 ||
		 strcmp(step, "setgroups") == 0)
		snprintf(out, len, "cannot switch to uid %u gid %u (%s): %s", (unsigned)r->uid,
			 (unsigned)r->gid, step, why);
	else if (strcmp(step, "fork") == 0)
		snprintf(out, len, "cannot create a process: %s", why);
	else
		snprintf(out, len, "cannot start (%s): %s", step, why);
}
