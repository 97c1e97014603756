/* spawn.c - see spawn.h.
 *
 * WARNING: child_main() runs in droverd's address space, on its own stack:
 * either while droverd waits (CLONE_VM | CLONE_VFORK, spawn_process), or
 * while droverd goes on (CLONE_VM, spawn_detached). It may only make system
 * calls, read its request and write to its own stack, the pid_slot and its
 * report. No malloc, no stdio, no locks, and no glibc system call wrapper:
 * those write errno, and the thread-local storage errno lives in is
 * droverd's own. The child calls the kernel directly (sys()) and reports
 * the errno it got, never the global one. */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "log.h"

enum { SPAWN_STACK = 256 * 1024, DETACHED_STACK = 64 * 1024, FDS_MAX = 1024, GROUPS_CHECK = 256 };

/* Under AddressSanitizer the child's frames would be left poisoned on the
 * reused stack (the child never returns, it execs), and its no-return calls
 * print notices into the service's output: the child's code is not
 * instrumented (nor checked by UBSan, whose handlers are library code), and
 * its stack is unpoisoned before each clone. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define CHILD __attribute__((no_sanitize_address, no_sanitize_undefined))
#define UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define CHILD
#define UNPOISON(p, n) ((void)0)
#endif

/* The kernel, called directly: returns the result, or -errno. Where this
 * is not written for the processor, syscall(2) stands in; it writes errno,
 * which is harmless only while droverd waits, so there every spawn waits. */
#if defined(__x86_64__)
#define CAN_DETACH 1
CHILD static long sys(long n, long a, long b, long c, long d, long e)
{
	register long r10 __asm__("r10") = d, r8 __asm__("r8") = e;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return ret;
}
#elif defined(__aarch64__)
#define CAN_DETACH 1
CHILD static long sys(long n, long a, long b, long c, long d, long e)
{
	register long x8 __asm__("x8") = n, x0 __asm__("x0") = a, x1 __asm__("x1") = b,
		      x2 __asm__("x2") = c, x3 __asm__("x3") = d, x4 __asm__("x4") = e;

	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
	return x0;
}
#else
#define CAN_DETACH 0
CHILD static long sys(long n, long a, long b, long c, long d, long e)
{
	long r = syscall(n, a, b, c, d, e);

	return r < 0 ? -errno : r;
}
#endif
#define SYS0(n) sys((n), 0, 0, 0, 0, 0)
#define SYS1(n, a) sys((n), (long)(a), 0, 0, 0, 0)
#define SYS2(n, a, b) sys((n), (long)(a), (long)(b), 0, 0, 0)
#define SYS3(n, a, b, c) sys((n), (long)(a), (long)(b), (long)(c), 0, 0)
#define SYS4(n, a, b, c, d) sys((n), (long)(a), (long)(b), (long)(c), (long)(d), 0)

/* The steps that can fail, as spawn_result names them. */
enum step { S_SETSID, S_DUP, S_DUP2, S_KEEP, S_SETRLIMIT, S_SETGROUPS, S_GROUPS, S_SETGID, S_SETUID,
	    S_CAPS, S_CHDIR, S_SIGPROCMASK, S_NO_NEW_PRIVS, S_EXEC, S_CGROUP, S_COUNT };
static const char *const step_name[S_COUNT] = {
	[S_SETSID] = "setsid", [S_DUP] = "dup", [S_DUP2] = "dup2", [S_KEEP] = "keep",
	[S_SETRLIMIT] = "setrlimit", [S_SETGROUPS] = "setgroups", [S_GROUPS] = "groups",
	[S_SETGID] = "setgid", [S_SETUID] = "setuid", [S_CAPS] = "capabilities",
	[S_CHDIR] = "chdir", [S_SIGPROCMASK] = "sigprocmask", [S_NO_NEW_PRIVS] = "no_new_privs",
	[S_EXEC] = "exec", [S_CGROUP] = "cgroup",
};

static const int rlimit_resource[LIM_COUNT] = {
	[LIM_NOFILE] = RLIMIT_NOFILE, [LIM_NPROC] = RLIMIT_NPROC,
	[LIM_CORE] = RLIMIT_CORE, [LIM_AS] = RLIMIT_AS,
};

/* What the child reports when a step fails, then it exits 127. */
struct report {
	int err;
	int step;
};

struct child_ctx {
	const struct spawn_req *req;
	volatile struct report rep;	/* err 0: no step failed */
};

/* droverd reads the report once the child is gone from its memory (the
 * kernel's own write after the child's exit or exec says so): the fence
 * keeps the report ahead of it on processors that reorder stores. */
CHILD static _Noreturn void child_fail(struct child_ctx *c, enum step step, long err)
{
	c->rep.step = (int)step;
	c->rep.err = err < 0 ? (int)-err : EINVAL;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	for (;;)
		SYS1(SYS_exit_group, 127);
}

/* The kernel's struct sigaction for rt_sigaction: SIG_DFL needs no more. */
struct k_sigaction {
	void (*handler)(int);
	unsigned long flags;
	void (*restorer)(void);
	unsigned long mask;
};

/* execve resets every signal droverd catches; what it ignores would stay
 * ignored. droverd catches nothing (signalfd) and ignores only SIGPIPE. */
CHILD static void child_signals(void)
{
	struct k_sigaction dfl = { .handler = SIG_DFL };

	SYS4(SYS_rt_sigaction, SIGPIPE, &dfl, 0, sizeof(dfl.mask));
}

/* A source inside the target range 0..nfds-1 could be overwritten by the
 * dup of another slot: those move above the range first. Then each slot
 * gets its descriptor; dup3's copies are not close-on-exec, and a source
 * already in its own slot has the flag cleared instead. Everything else is
 * closed at exec (kernels before 5.11: closed here). */
CHILD static void child_fds(struct child_ctx *c)
{
	const struct spawn_req *r = c->req;
	int src[FDS_MAX];
	long rc;

	for (int i = 0; i < r->nfds; i++) {
		src[i] = r->fds[i];
		if (src[i] < r->nfds && src[i] != i) {
			if ((rc = SYS3(SYS_fcntl, src[i], F_DUPFD_CLOEXEC, r->nfds)) < 0)
				child_fail(c, S_DUP, rc);
			src[i] = (int)rc;
		}
	}
	for (int i = 0; i < r->nfds; i++)
		if ((rc = src[i] == i ? SYS3(SYS_fcntl, i, F_SETFD, 0) : SYS3(SYS_dup3, src[i], i, 0)) < 0)
			child_fail(c, S_DUP2, rc);
	/* Marking the rest close-on-exec costs a few bit operations; the
	 * kernel then closes them during execve, after droverd has resumed,
	 * instead of while it waits (droverd may hold thousands). */
	if (SYS3(SYS_close_range, r->nfds, ~0U, CLOSE_RANGE_CLOEXEC) == 0) {
		for (int i = 0; i < r->nkeep; i++)
			if ((rc = SYS3(SYS_fcntl, r->keep[i], F_SETFD, 0)) < 0)
				child_fail(c, S_KEEP, rc);
		return;
	}
	if (r->nkeep)
		child_fail(c, S_KEEP, -ENOSYS);	/* keeping needs CLOSE_RANGE_CLOEXEC (5.11) */
	if (SYS3(SYS_close_range, r->nfds, ~0U, 0) < 0) {
		unsigned long long rl[2] = { 1024, 1024 };	/* prlimit64: 64-bit values */

		SYS4(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, rl);
		for (long fd = r->nfds; fd < (long)(rl[0] < 1 << 20 ? rl[0] : 1 << 20); fd++)
			SYS1(SYS_close, fd);
	}
}

CHILD static void child_pid_slot(char *slot)
{
	char digits[16];
	int n = 0;
	long pid = SYS0(SYS_getpid);

	do
		digits[n++] = (char)('0' + pid % 10);
	while ((pid /= 10) && n < 15);
	while (n)
		*slot++ = digits[--n];
	*slot = '\0';
}

CHILD static void child_limits(struct child_ctx *c)
{
	for (int i = 0; i < LIM_COUNT; i++) {
		const struct rlimit *l = c->req->limit[i];
		/* prlimit64 takes 64-bit values on every processor */
		unsigned long long v[2];
		long rc;

		if (!l)
			continue;
		v[0] = l->rlim_cur == RLIM_INFINITY ? ~0ULL : l->rlim_cur;
		v[1] = l->rlim_max == RLIM_INFINITY ? ~0ULL : l->rlim_max;
		if ((rc = SYS4(SYS_prlimit64, 0, rlimit_resource[i], v, 0)) < 0)
			child_fail(c, S_SETRLIMIT, rc);
	}
}

CHILD static bool child_has_group(const gid_t *list, long n, gid_t g)
{
	for (long i = 0; i < n; i++)
		if (list[i] == g)
			return true;
	return false;
}

/* The supplementary groups asked for. Where droverd may not set them (it
 * lacks CAP_SETGID, or a user namespace denies setgroups), the child goes
 * on only when it has exactly those already (the same set): it never runs
 * with droverd's own groups instead. More than GROUPS_CHECK of them cannot
 * be compared on this stack, and count as different. */
CHILD static void child_groups(struct child_ctx *c)
{
	const struct spawn_req *r = c->req;
	gid_t now[GROUPS_CHECK];
	long rc = SYS2(SYS_setgroups, r->ngroups, r->groups), n;

	if (rc == 0)
		return;
	if (rc != -EPERM)
		child_fail(c, S_SETGROUPS, rc);
	if ((n = SYS2(SYS_getgroups, GROUPS_CHECK, now)) < 0)
		child_fail(c, S_GROUPS, -EPERM);
	/* The kernel filled now[0..n-1]; the analyzer cannot see it do so. */
	for (long i = 0; i < n; i++)
		if (!child_has_group(r->groups, r->ngroups, now[i]))	/* NOLINT(clang-analyzer-core.CallAndMessage) */
			child_fail(c, S_GROUPS, -EPERM);
	for (int i = 0; i < r->ngroups; i++)
		if (!child_has_group(now, n, r->groups[i]))
			child_fail(c, S_GROUPS, -EPERM);
}

/* A uid other than 0 keeps no capability. The kernel clears the permitted
 * and effective sets only on a change away from uid 0 (and not under
 * SECBIT_NO_SETUID_FIXUP), never the inheritable set: a droverd running as
 * a plain user with capabilities (systemd's AmbientCapabilities=) would
 * pass them all on. So all three are emptied, then read back. The ambient
 * set is cleared already, and by the kernel's invariant (ambient within
 * permitted and inheritable) stays empty with them. The bounding set is
 * left alone: it only limits what a program with file capabilities may
 * gain at exec, which any user's process may run; dropping it needs
 * CAP_SETPCAP, which droverd may well not have; no_new_privs is the way to
 * refuse such gains. */
CHILD static void child_drop_capabilities(struct child_ctx *c)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3] = { { 0, 0, 0 }, { 0, 0, 0 } };
	long rc;

	if ((rc = SYS2(SYS_capset, &h, d)) < 0)
		child_fail(c, S_CAPS, rc);
	if ((rc = SYS2(SYS_capget, &h, d)) < 0)
		child_fail(c, S_CAPS, rc);
	for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		if (d[i].effective | d[i].permitted | d[i].inheritable)
			child_fail(c, S_CAPS, -EPERM);
}

/* Ambient capabilities, then groups, gid and uid, then (uid other than 0)
 * every capability; each checked, and the result read back. Ambient
 * capabilities would survive exec into any program, whatever the uid; a
 * kernel without them (before 4.3) says EINVAL, and there is nothing to
 * clear. */
CHILD static void child_credentials(struct child_ctx *c)
{
	const struct spawn_req *r = c->req;
	uid_t ru = (uid_t)-1, eu = ru, su = ru;	/* what no check accepts */
	gid_t rg = (gid_t)-1, eg = rg, sg = rg;
	long rc;

	if (!r->set_creds)
		return;
	rc = SYS4(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0);
	if (rc < 0 && rc != -EINVAL)
		child_fail(c, S_CAPS, rc);
	child_groups(c);
	if ((rc = SYS3(SYS_setresgid, r->gid, r->gid, r->gid)) < 0)
		child_fail(c, S_SETGID, rc);
	if ((rc = SYS3(SYS_setresuid, r->uid, r->uid, r->uid)) < 0)
		child_fail(c, S_SETUID, rc);
	if (SYS3(SYS_getresuid, &ru, &eu, &su) < 0 || ru != r->uid || eu != r->uid || su != r->uid)
		child_fail(c, S_SETUID, -EPERM);
	if (SYS3(SYS_getresgid, &rg, &eg, &sg) < 0 || rg != r->gid || eg != r->gid || sg != r->gid)
		child_fail(c, S_SETGID, -EPERM);
	if (r->uid != 0)
		child_drop_capabilities(c);
}

/* No string functions of libc in the child: under a sanitizer they are
 * intercepted, and the interceptors keep state of droverd's. */
CHILD static size_t child_strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

CHILD static const char *env_path(char *const *envp)
{
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

	for (; *envp; envp++) {
		const char *e = *envp;

		if (e[0] == 'P' && e[1] == 'A' && e[2] == 'T' && e[3] == 'H' && e[4] == '=')
			path = e + 5;
	}
	return path;
}

/* execve, searching the service's own PATH for a bare name. */
CHILD static void child_exec(struct child_ctx *c)
{
	const struct spawn_req *r = c->req;
	const char *file = r->argv[0], *p;
	size_t fl = child_strlen(file);
	char full[PATH_MAX];
	bool denied = false;
	long rc;

	for (size_t i = 0; i < fl; i++)
		if (file[i] == '/')
			child_fail(c, S_EXEC, SYS3(SYS_execve, file, r->argv, r->envp));
	for (p = env_path(r->envp);; p++) {
		const char *end = p;
		size_t dl;

		while (*end && *end != ':')
			end++;
		dl = (size_t)(end - p);
		if (dl + fl + 2 <= sizeof(full)) {
			for (size_t i = 0; i < dl; i++)
				full[i] = p[i];
			full[dl] = '/';
			for (size_t i = 0; i <= fl; i++)
				full[dl + 1 + i] = file[i];
			rc = SYS3(SYS_execve, dl ? full : file, r->argv, r->envp);
			if (rc == -EACCES)
				denied = true;
			else if (rc != -ENOENT && rc != -ENOTDIR)
				child_fail(c, S_EXEC, rc);
		}
		if (!*end)
			break;
		p = end;
	}
	child_fail(c, S_EXEC, denied ? -EACCES : -ENOENT);
}

/* Into the service's cgroup before anything else: a process that could
 * not be put there never runs (it would escape the service's stop). */
CHILD static void child_cgroup(struct child_ctx *c)
{
	long rc;

	if (!c->req->in_cgroup)
		return;
	if ((rc = SYS3(SYS_write, c->req->cgroup_fd, "0", 1)) != 1)
		child_fail(c, S_CGROUP, rc < 0 ? rc : -EIO);
}

CHILD static int child_main(void *arg)
{
	struct child_ctx *c = arg;
	const struct spawn_req *r = c->req;
	unsigned long none = 0;
	long rc;

	child_cgroup(c);
	child_signals();
	if ((rc = SYS0(SYS_setsid)) < 0)
		child_fail(c, S_SETSID, rc);
	child_fds(c);
	if (r->pid_slot)
		child_pid_slot(r->pid_slot);
	child_limits(c);
	child_credentials(c);
	if (r->dir && (rc = SYS1(SYS_chdir, r->dir)) < 0)
		child_fail(c, S_CHDIR, rc);
	SYS1(SYS_umask, r->umask);
	if ((rc = SYS4(SYS_rt_sigprocmask, SIG_SETMASK, &none, 0, sizeof(none))) < 0)
		child_fail(c, S_SIGPROCMASK, rc);
	if (r->no_new_privs && (rc = SYS4(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0)) < 0)
		child_fail(c, S_NO_NEW_PRIVS, rc);
	child_exec(c);
	return 127;
}

/* The child's report, as spawn_result says it. */
static void take_report(struct spawn_result *res, const volatile struct report *rep)
{
	res->err = rep->err;
	res->step = rep->step >= 0 && rep->step < S_COUNT ? step_name[rep->step] : "?";
}

static bool request_ok(const struct spawn_req *r, struct spawn_result *res)
{
	res->pid = -1;
	res->pidfd = -1;
	res->err = 0;
	res->step = NULL;
	if (r->nfds < 3 || r->nfds > FDS_MAX) {
		res->err = EINVAL;
		res->step = step_name[S_DUP];
		return false;
	}
	return true;
}

/* clone with CLONE_PIDFD where the kernel has it (5.2). With
 * CLONE_CHILD_CLEARTID, the kernel sets *ctid to 0 once the child has left
 * droverd's address space (at its exec or exit). */
static pid_t clone_child(void *stack_top, int flags, struct child_ctx *c, int *pidfd, pid_t *ctid)
{
	pid_t pid = clone(child_main, stack_top, flags | CLONE_PIDFD, c, pidfd, NULL, ctid);

	if (pid < 0 && errno == EINVAL) {
		*pidfd = -1;
		pid = clone(child_main, stack_top, flags, c, NULL, NULL, ctid);
	}
	return pid;
}

static _Alignas(16) char spawn_stack[SPAWN_STACK];

int spawn_process(const struct spawn_req *r, struct spawn_result *res)
{
	struct child_ctx c = { .req = r };
	int pidfd = -1;
	pid_t pid;

	if (!request_ok(r, res))
		return -1;
	UNPOISON(spawn_stack, sizeof(spawn_stack));
	pid = clone_child(spawn_stack + sizeof(spawn_stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &c, &pidfd, NULL);
	if (pid < 0) {
		res->err = errno;
		res->step = "fork";
		return -1;
	}
	res->pid = pid;
	if (c.rep.err) {
		/* The child has called _exit already: collect it now, as
		 * posix_spawn does; the wait ends within its exit path. */
		waitpid(pid, NULL, 0);
		if (pidfd >= 0)
			close(pidfd);
		take_report(res, &c.rep);
		return -1;
	}
	/* Either way close-on-exec: the kernel sets it on every pidfd. */
	res->pidfd = pidfd >= 0 ? pidfd : pidfd_open(pid, 0);
	return 0;
}

/* --- detached ------------------------------------------------------------- */

/* A detached child's memory, one mapping: its stack, then a copy of its
 * request (droverd goes on and may free or reuse the original), then the
 * strings. The kernel says when the child is done with it: started with
 * CLONE_CHILD_CLEARTID, the child has `busy` set to 0 by the kernel when
 * it lets go of droverd's address space, at exec or at exit (the same
 * mechanism that tells a thread library a thread is gone). Until then the
 * child may run on it; after, the block is kept for the next child (up to
 * BLOCKS_KEEP of them) rather than unmapped: unmapping memory that another
 * processor has just used makes the kernel interrupt that processor to
 * flush its TLB, which cost more than all the rest of a spawn. */
struct block {
	void *map;
	size_t len;
	pid_t busy;			/* nonzero while the child may use the block */
	struct spawn_pending *owner;	/* NULL once its owner has let go */
	struct block *next;		/* in the list of busy, or of free blocks */
	struct child_ctx ctx;
	struct spawn_req req;
	/* then: argv and envp pointer arrays, fds, keep, groups, limits, strings */
};

/* What the caller holds: the outcome, once known. */
struct spawn_pending {
	struct block *blk;	/* NULL once the child has left it */
	int outcome;		/* 1 not known yet, 0 runs the program, -1 failed */
	char *why;		/* outcome -1: "cannot exec ..." */
};

/* Kept: enough for a burst of handlers starting at once; each holds a
 * few pages once used (its stack's top, the copy). */
enum { BLOCK_ROUND = 16 * 1024, BLOCKS_KEEP = 32 };

static struct block *busy_blocks, *free_blocks;
static int nfree;

/* Bump allocation inside the mapping; the sizes were counted before. */
struct area {
	char *p;
};

static void *take(struct area *a, size_t n)
{
	void *p = a->p;

	a->p += (n + 15) & ~(size_t)15;
	return p;
}

static size_t vec_size(char *const *v, size_t *strings)
{
	size_t n = 0;

	for (; v[n]; n++)
		*strings += strlen(v[n]) + 1;
	return (n + 1) * sizeof(char *) + 16;
}

static char **vec_copy(struct area *a, char *const *v, char **strings, const char *slot,
		       char **slot_copy)
{
	size_t n = 0;
	char **out;

	while (v[n])
		n++;
	out = take(a, (n + 1) * sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(v[i]) + 1;

		out[i] = memcpy(*strings, v[i], len);
		if (slot && (uintptr_t)slot - (uintptr_t)v[i] < len)
			*slot_copy = out[i] + ((uintptr_t)slot - (uintptr_t)v[i]);
		*strings += len;
	}
	out[n] = NULL;
	return out;
}

/* Everything but the strings, which come right after (the copy then
 * spans as few pages as it can). */
static size_t block_size(const struct spawn_req *r, size_t *strings)
{
	size_t n = DETACHED_STACK + sizeof(struct block) + 16;

	n += vec_size(r->argv, strings) + vec_size(r->envp, strings);
	n += ((size_t)r->nfds + (size_t)r->nkeep) * sizeof(int) + 32;
	n += (size_t)r->ngroups * sizeof(gid_t) + 16;
	n += LIM_COUNT * (sizeof(struct rlimit) + 16);
	if (r->dir)
		*strings += strlen(r->dir) + 1;
	return n;
}

static void block_unmap(struct block *b)
{
	munmap(b->map, b->len);
}

/* A free block of at least len bytes, or a new one. */
static struct block *block_get(size_t len)
{
	struct block **bp, *b;
	void *map;

	for (bp = &free_blocks; (b = *bp); bp = &b->next)
		if (b->len >= len) {
			*bp = b->next;
			nfree--;
			return b;
		}
	len = (len + BLOCK_ROUND - 1) / BLOCK_ROUND * BLOCK_ROUND;
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (map == MAP_FAILED)
		return NULL;
	/* The stack at the bottom: it grows down, away from the copy. */
	b = (struct block *)((char *)map + DETACHED_STACK);
	b->map = map;
	b->len = len;
	return b;
}

static void block_put(struct block *b)
{
	if (nfree >= BLOCKS_KEEP) {
		block_unmap(b);
		return;
	}
	b->next = free_blocks;
	free_blocks = b;
	nfree++;
}

/* Fill b with a copy of r that lives as long as the block; the strings
 * start at offset `at`. */
static void block_fill(struct block *b, const struct spawn_req *r, size_t at)
{
	struct spawn_req *q = &b->req;
	struct area a = { (char *)(b + 1) };
	char *str = (char *)b->map + at;
	int *ints;

	*q = *r;
	q->argv = vec_copy(&a, r->argv, &str, NULL, NULL);
	q->pid_slot = NULL;	/* only ever inside an environment string */
	q->envp = vec_copy(&a, r->envp, &str, r->pid_slot, &q->pid_slot);
	ints = take(&a, ((size_t)r->nfds + (size_t)r->nkeep) * sizeof(int));
	memcpy(ints, r->fds, (size_t)r->nfds * sizeof(int));
	if (r->nkeep)
		memcpy(ints + r->nfds, r->keep, (size_t)r->nkeep * sizeof(int));
	q->fds = ints;
	q->keep = r->nkeep ? ints + r->nfds : NULL;
	if (r->ngroups)
		q->groups = memcpy(take(&a, (size_t)r->ngroups * sizeof(gid_t)), r->groups,
				   (size_t)r->ngroups * sizeof(gid_t));
	for (int i = 0; i < LIM_COUNT; i++)
		if (r->limit[i])
			q->limit[i] = memcpy(take(&a, sizeof(struct rlimit)), r->limit[i], sizeof(struct rlimit));
	if (r->dir)
		q->dir = memcpy(str, r->dir, strlen(r->dir) + 1);
	b->ctx.req = q;
	b->ctx.rep.err = 0;
	b->ctx.rep.step = 0;
}

/* The child has left b: its owner learns the outcome, and b is free. */
static void block_settle(struct block *b)
{
	struct spawn_pending *pd = b->owner;

	if (pd) {
		pd->outcome = 0;
		if (b->ctx.rep.err) {
			struct spawn_result res = { 0 };
			char why[300];

			take_report(&res, &b->ctx.rep);
			spawn_describe_error(&b->req, &res, why, sizeof(why));
			pd->outcome = -1;
			pd->why = strdup(why);
		}
		pd->blk = NULL;
	}
	block_put(b);
}

/* Settles every block whose child has left it. The list holds only the
 * children that had not exec'd at the last look: a few at most. */
static void reclaim(void)
{
	struct block **bp = &busy_blocks, *b;

	while ((b = *bp))
		if (__atomic_load_n(&b->busy, __ATOMIC_ACQUIRE) == 0) {
			*bp = b->next;
			block_settle(b);
		} else {
			bp = &b->next;
		}
}

int spawn_detached(const struct spawn_req *r, struct spawn_result *res, struct spawn_pending **pend)
{
	struct spawn_pending *pd;
	size_t strings = 0, at;
	struct block *b;
	int pidfd = -1;
	pid_t pid;

	*pend = NULL;
	if (!CAN_DETACH)
		return spawn_process(r, res);
	if (!request_ok(r, res))
		return -1;
	reclaim();
	at = block_size(r, &strings);
	if (!(pd = calloc(1, sizeof(*pd))) || !(b = block_get(at + strings))) {
		res->err = errno;
		res->step = "fork";
		free(pd);
		return -1;
	}
	block_fill(b, r, at);
	b->busy = 1;
	UNPOISON(b->map, DETACHED_STACK);
	pid = clone_child(b, CLONE_VM | CLONE_CHILD_CLEARTID | SIGCHLD, &b->ctx, &pidfd, &b->busy);
	if (pid < 0) {
		res->err = errno;
		res->step = "fork";
		block_put(b);
		free(pd);
		return -1;
	}
	b->owner = pd;
	b->next = busy_blocks;
	busy_blocks = b;
	pd->blk = b;
	pd->outcome = 1;
	res->pid = pid;
	res->pidfd = pidfd >= 0 ? pidfd : pidfd_open(pid, 0);
	*pend = pd;
	return 0;
}

int spawn_pending_outcome(struct spawn_pending *pd, char *why, size_t len)
{
	if (pd->blk)
		reclaim();
	if (pd->outcome < 0)
		snprintf(why, len, "%s", pd->why ? pd->why : "cannot start (out of memory to say why)");
	return pd->outcome;
}

void spawn_pending_free(struct spawn_pending *pd)
{
	if (pd->blk)
		pd->blk->owner = NULL;	/* still in use: the next reclaim frees it */
	free(pd->why);
	free(pd);
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
	else if (strcmp(step, "groups") == 0)
		snprintf(out, len, "cannot switch to uid %u gid %u: droverd may not set supplementary "
			 "groups (it lacks CAP_SETGID) and its own are not the ones wanted",
			 (unsigned)r->uid, (unsigned)r->gid);
	else if (strcmp(step, "setuid") == 0 || strcmp(step, "setgid") == 0 ||
		 strcmp(step, "setgroups") == 0 || strcmp(step, "capabilities") == 0)
		snprintf(out, len, "cannot switch to uid %u gid %u (%s): %s", (unsigned)r->uid,
			 (unsigned)r->gid, step, why);
	else if (strcmp(step, "fork") == 0)
		snprintf(out, len, "cannot create a process: %s", why);
	else if (strcmp(step, "cgroup") == 0)
		snprintf(out, len, "cannot enter its cgroup: %s", why);
	else
		snprintf(out, len, "cannot start (%s): %s", step, why);
}
