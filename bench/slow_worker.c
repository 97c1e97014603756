/* slow_worker.c - a prefork worker that takes its time, for bench/serve.py's
 * pool-growth measurement.
 *
 * Under droverd (mode = prefork): accepts on the first listener, one
 * connection at a time; says READY=1 at start, X_DROVER=busy when it took a
 * connection and X_DROVER=idle when it is done with it (libdrover). Each
 * request is answered after MS milliseconds (argument 1, default 200) with
 * an HTTP/1.0 response whose body is the worker's pid, so the client can
 * tell how many different workers served a burst. SIGTERM (droverd retiring
 * an idle worker) ends it at once: the default disposition.
 *
 * Build: cc -I src/libdrover slow_worker.c BUILD/libdrover.a */
#define _GNU_SOURCE
#include <drover.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void serve(int c, long ms)
{
	char buf[4096], resp[160], body[32];
	size_t len = 0;
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	int n;

	while (len < sizeof(buf)) {
		ssize_t r = read(c, buf + len, sizeof(buf) - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (memmem(buf, len, "\r\n\r\n", 4))
			break;
	}
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	snprintf(body, sizeof(body), "%d\n", (int)getpid());
	n = snprintf(resp, sizeof(resp), "HTTP/1.0 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
		     strlen(body), body);
	for (char *p = resp; n > 0;) {
		ssize_t w = write(c, p, (size_t)n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		p += w;
		n -= (int)w;
	}
}

int main(int argc, char **argv)
{
	long ms = argc > 1 ? atol(argv[1]) : 200;

	if (drover_listen_fds() < 1) {
		fprintf(stderr, "slow_worker: no listener passed (run it under droverd, mode = prefork)\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);	/* a client gone: EPIPE, not death */
	drover_ready();
	for (;;) {
		int c = accept(DROVER_LISTEN_FDS_START, NULL, NULL);

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("slow_worker: accept");
			return 1;
		}
		drover_busy();
		serve(c, ms);
		close(c);
		drover_idle();
	}
}
