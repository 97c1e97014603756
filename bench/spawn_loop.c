/* spawn_loop.c - the floor droverd's spawn rate is compared against.
 *
 * Starts PROGRAM (default /bin/true) and waits for it, over and over, for
 * SECONDS, with one of three ways of creating the process:
 *   posix_spawn  glibc's posix_spawn (clone(CLONE_VM|CLONE_VFORK) inside)
 *   vfork        vfork() + execve() in the child
 *   fork         fork() + execve() in the child: page tables are copied
 * With HEAP_MB > 0 the parent first allocates and touches that much memory,
 * which is what makes fork slow and leaves the other two unchanged. With
 * FDS > 0 it holds that many close-on-exec descriptors open (pipes), as a
 * supervisor does for its processes: every way of spawning copies the
 * descriptor table, and exec closes it again.
 *
 * Prints one line: "mode=M heap_mb=H spawns=N seconds=S rate=R" (R per
 * second). Exit 0, 2 on a usage error, 1 when a spawn or wait fails.
 *
 * This is a benchmark tool, not part of droverd: it does no more per spawn
 * than the kernel and libc need, so it shows the best a supervisor can do. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum mode { M_POSIX_SPAWN, M_VFORK, M_FORK };

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(void)
{
	fprintf(stderr, "usage: spawn_loop posix_spawn|vfork|fork SECONDS [HEAP_MB [FDS]]\n");
	return 2;
}

/* Touches every page so it is resident and has a page-table entry. */
static void *heap_touch(size_t mb)
{
	size_t len = mb << 20;
	char *p;

	if (!mb)
		return NULL;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("spawn_loop: mmap");
		exit(1);
	}
	for (size_t i = 0; i < len; i += 4096)
		p[i] = (char)i;
	return p;
}

/* n descriptors, close-on-exec, that stay open for the whole run. */
static int hold_fds(unsigned long n)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n + 64) {
		rl.rlim_cur = rl.rlim_max < n + 64 ? rl.rlim_max : n + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	for (unsigned long i = 0; i < n; i += 2) {
		int p[2];

		if (pipe2(p, O_CLOEXEC) < 0) {
			perror("spawn_loop: pipe2");
			return -1;
		}
	}
	return 0;
}

static pid_t spawn_one(enum mode m, char *const argv[])
{
	pid_t pid;
	int err;

	switch (m) {
	case M_POSIX_SPAWN:
		err = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
		if (err) {
			errno = err;
			return -1;
		}
		return pid;
	case M_VFORK:
		pid = vfork();
		if (pid == 0) {
			execve(argv[0], argv, environ);
			_exit(127);
		}
		return pid;
	case M_FORK:
		pid = fork();
		if (pid == 0) {
			execve(argv[0], argv, environ);
			_exit(127);
		}
		return pid;
	}
	return -1;
}

int main(int argc, char **argv)
{
	enum mode m;
	double secs, t0, t;
	size_t heap_mb = 0;
	char *prog_argv[2] = { "/bin/true", NULL };
	long n = 0;
	void *heap;

	if (argc < 3 || argc > 5)
		return usage();
	if (strcmp(argv[1], "posix_spawn") == 0)
		m = M_POSIX_SPAWN;
	else if (strcmp(argv[1], "vfork") == 0)
		m = M_VFORK;
	else if (strcmp(argv[1], "fork") == 0)
		m = M_FORK;
	else
		return usage();
	secs = atof(argv[2]);
	if (secs <= 0)
		return usage();
	if (argc >= 4)
		heap_mb = (size_t)strtoul(argv[3], NULL, 10);
	if (argc == 5 && hold_fds(strtoul(argv[4], NULL, 10)) < 0)
		return 1;
	heap = heap_touch(heap_mb);

	t0 = now();
	do {
		int status;
		pid_t pid = spawn_one(m, prog_argv);

		if (pid < 0) {
			perror("spawn_loop: spawn");
			return 1;
		}
		if (waitpid(pid, &status, 0) != pid) {
			perror("spawn_loop: waitpid");
			return 1;
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "spawn_loop: %s did not exit 0\n", prog_argv[0]);
			return 1;
		}
		n++;
	} while ((t = now()) - t0 < secs);

	printf("mode=%s heap_mb=%zu spawns=%ld seconds=%.3f rate=%.1f\n",
	       argv[1], heap_mb, n, t - t0, (double)n / (t - t0));
	if (heap)
		munmap(heap, heap_mb << 20);
	return 0;
}
