/* echo-worker - echoes what it reads, under droverd.
 *
 * With listeners (mode = daemon or prefork): accepts on the first one, one
 * connection at a time, and tells droverd when it is busy and idle.
 * Without (mode = accept, inetd style): the connection is standard input
 * and output. Uses libdrover; build: cc echo-worker.c -ldrover. */
#include <drover.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;
static int listen_fd = -1;

/* Closing the listener makes an accept() about to start fail at once:
 * a TERM that lands between the check of `stopping` and accept() is not
 * lost (close is async-signal-safe). */
static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
	if (listen_fd >= 0)
		close(listen_fd);
	listen_fd = -1;
}

static int echo(int in, int out)
{
	char buf[16384];
	ssize_t n;

	while ((n = read(in, buf, sizeof(buf))) > 0)
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));

			if (w < 0)
				return -1;
			off += w;
		}
	return n < 0 ? -1 : 0;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_term };
	int lfd;

	if (drover_listen_fds() < 1)
		return echo(0, 1) < 0;	/* inetd style */
	lfd = listen_fd = DROVER_LISTEN_FDS_START;
	sigaction(SIGTERM, &sa, NULL);	/* no SA_RESTART: accept returns */
	signal(SIGPIPE, SIG_IGN);	/* a client gone mid-echo: EPIPE, not death */
	drover_ready();
	while (!stopping) {
		int c = accept(lfd, NULL, NULL);

		if (c < 0) {
			if (errno == EINTR || (errno == EBADF && stopping))
				continue;
			perror("echo-worker: accept");
			return 1;
		}
		drover_busy();
		echo(c, c);
		close(c);
		drover_idle();
	}
	return 0;
}
