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

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
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
	lfd = DROVER_LISTEN_FDS_START;
	sigaction(SIGTERM, &sa, NULL);	/* no SA_RESTART: accept returns */
	signal(SIGPIPE, SIG_IGN);	/* a client gone mid-echo: EPIPE, not death */
	drover_ready();
	while (!stopping) {
		int c = accept(lfd, NULL, NULL);

		if (c < 0) {
			if (errno == EINTR)
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
