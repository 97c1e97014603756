/* sig.c - see sig.h. */
#include "sig.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
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
	while ((n = read(wt->fd, si, sizeof(si))) > 0)
		for (size_t i = 0; i < (size_t)n / sizeof(si[0]); i++)
			on_signal((int)si[i].ssi_signo);
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
	sigaction(SIGPIPE, &ign, NULL);
	if (fd < 0)
		fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	else
		fd = signalfd(fd, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -1;
	return loop_add(&w, fd, EPOLLIN, readable);
}
