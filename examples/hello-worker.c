/* hello-worker - a prefork HTTP/1.1 "hello" worker for droverd.
 *
 * Accepts on the first listener droverd passed, one connection at a time
 * (with keep-alive), and reports busy/idle so droverd can grow and shrink
 * the pool. On its stop signal (TERM) it stops accepting, finishes the
 * request in flight, answers the next request on an open keep-alive
 * connection with "Connection: close", and exits: no client sees a
 * connection reset or a truncated response.
 *
 * Without droverd: hello-worker --listen PORT [--procs N] binds 127.0.0.1:PORT
 * itself and forks N copies (the ceiling droverd is measured against).
 * Every response carries X-Generation: $DROVER_GENERATION. */
#include <drover.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;
static int listen_fd = -1;
static const char *generation = "0";

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

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Header and body in one write: no small second segment waiting for the
 * client's delayed ACK. */
static int respond(int c, bool close_after)
{
	static const char body[] = "Hello, world!\n";
	char msg[512];
	int n = snprintf(msg, sizeof(msg),
			 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
			 "X-Generation: %s\r\nConnection: %s\r\n\r\n%s",
			 sizeof(body) - 1, generation, close_after ? "close" : "keep-alive", body);

	return write_all(c, msg, (size_t)n);
}

static bool wants_close(const char *req, size_t len)
{
	return memmem(req, len, "Connection: close", 17) || memmem(req, len, "connection: close", 17) ||
	       (memmem(req, len, "HTTP/1.0", 8) && !memmem(req, len, "eep-Alive", 9));
}

/* Serves requests on one connection until the client closes it, asks to
 * close, or we are stopping (then the next answer says Connection: close). */
static void serve(int c)
{
	char buf[8192];
	size_t len = 0;

	for (;;) {
		char *end = memmem(buf, len, "\r\n\r\n", 4);
		ssize_t n;

		if (end) {
			size_t req = (size_t)(end - buf) + 4;
			bool close_after = stopping || wants_close(buf, req);

			if (respond(c, close_after) < 0 || close_after)
				return;
			memmove(buf, buf + req, len - req);
			len -= req;
			continue;
		}
		if (len == sizeof(buf))
			return;	/* request too large: drop it */
		n = read(c, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;	/* stopping: the next request is answered and closed */
		if (n <= 0)
			return;
		len += (size_t)n;
	}
}

static int worker(int lfd)
{
	struct sigaction sa = { .sa_handler = on_term };

	listen_fd = lfd;
	sigaction(SIGTERM, &sa, NULL);	/* no SA_RESTART: accept returns EINTR */
	signal(SIGPIPE, SIG_IGN);	/* a client gone mid-response: EPIPE, not death */
	if (getenv("DROVER_GENERATION"))
		generation = getenv("DROVER_GENERATION");
	drover_ready();
	while (!stopping) {
		int c = accept(lfd, NULL, NULL);

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED || (errno == EBADF && stopping))
				continue;
			perror("hello-worker: accept");
			return 1;
		}
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
		drover_busy();
		serve(c);
		close(c);
		drover_idle();
	}
	return 0;
}

static int standalone(int port, int procs)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4096) < 0) {
		perror("hello-worker: listen");
		return 1;
	}
	for (int i = 0; i < procs; i++)
		if (fork() == 0)
			return worker(lfd);
	signal(SIGTERM, SIG_IGN);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "--listen") == 0)
		return standalone(atoi(argv[2]), argc >= 5 && strcmp(argv[3], "--procs") == 0 ? atoi(argv[4]) : 1);
	if (drover_listen_fds() < 1) {
		fprintf(stderr, "hello-worker: no listener passed (run under droverd, or --listen PORT)\n");
		return 2;
	}
	return worker(DROVER_LISTEN_FDS_START);
}
