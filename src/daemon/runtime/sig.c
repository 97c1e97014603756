/* sig.c - see sig.h. */
#include "sig.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "loop.h"

static struct watch w = { .fd = -1 };
static void (*on_signal)(int sig);

static const int handled[] = { SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD };

int sig_fd(void)
{
	return w.fd;
}

static void readable(struct watch *wt, uint32_t events)
{
	struct signalfd_siginfo si[16];
	ssize_t n;

	(void)events;
	/* Fewer than asked for: that was all (a later signal wakes the loop
	 * again). */
	do {
		n = read(wt->fd, si, sizeof(si));
		for (size_t i = 0; n > 0 && i < (size_t)n / sizeof(si[0]); i++)
			on_signal((int)si[i].ssi_signo);
	} while (n == (ssize_t)sizeof(si));
}

/* A signal ignored by whoever started droverd would stay ignored in every
 * service (exec keeps SIG_IGN). Put each back to its default once, here,
 * so that a child has only SIGPIPE to reset. The two signals glibc keeps
 * for itself (32, 33) are not visible through sigaction(): they are read
 * and reset with the raw call. Its structure starts with the handler on
 * the architectures droverd is built for (on others the check never
 * matches and they are left alone); all zeros means SIG_DFL everywhere. */
static void reset_inherited(void)
{
	struct sigaction old, dfl = { .sa_handler = SIG_DFL };

	for (int s = 1; s < NSIG; s++) {
		unsigned long raw[8] = { 0 }, zero[8] = { 0 };

		if (s == SIGKILL || s == SIGSTOP)
			continue;
		if (sigaction(s, NULL, &old) == 0) {
			if (old.sa_handler == SIG_IGN)
				sigaction(s, &dfl, NULL);
		} else if (syscall(SYS_rt_sigaction, s, NULL, raw, (NSIG - 1) / 8) == 0 &&
			   raw[0] == (unsigned long)SIG_IGN) {
			syscall(SYS_rt_sigaction, s, zero, NULL, (NSIG - 1) / 8);
		}
	}
}

int sig_init(int fd, void (*handler)(int sig))
{
	sigset_t set;
	struct sigaction ign = { .sa_handler = SIG_IGN };

	on_signal = handler;
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
		sigaddset(&set, handled[i]);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	reset_inherited();
	sigaction(SIGPIPE, &ign, NULL);
	if (fd < 0)
		fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	else
		fd = signalfd(fd, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -1;
	return loop_add(&w, fd, EPOLLIN, readable);
}
