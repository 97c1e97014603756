/* openloop - an open-loop HTTP/1.1 client for drover's soak test.
 *
 * Opens a NEW connection per request at a fixed rate (attempts are started
 * when they are due, whether or not earlier ones have finished), sends
 *   GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n
 * reads the whole response (until the server closes), and classifies each
 * attempt. One process, non-blocking sockets, one epoll set.
 *
 *   openloop --port P [--host 127.0.0.1] [--rate R] [--duration S] [--t0 NS]
 *            [--timeout S] [--warn-ms MS] [--body TEXT]
 *
 * Runs for --duration seconds (0: until SIGINT/SIGTERM), then stops starting
 * attempts, lets those in flight finish (each is bounded by --timeout), and
 * prints one JSON line with the count of every class.
 *
 * Classes (one per attempt, the first that applies):
 *   refused        connect failed with ECONNREFUSED
 *   reset          ECONNRESET or EPIPE at any point (also after a full response)
 *   eof            the server closed before a full response
 *   wrong_body     a full 2xx response whose body is not the expected text
 *   non_2xx        a full response whose status is not 2xx
 *   timeout        no full response (and close) within --timeout (default 10 s)
 *   error          any other failure (errno named in the failure log)
 *   slow_connect   succeeded, but connect took >= 1 s because a SYN was
 *                  retransmitted (TCP_INFO tcpi_total_retrans > 0 once
 *                  connected): a dropped SYN, hidden by the retransmit.
 *                  A connect of 1 s or more without any retransmission is
 *                  not a failure of the server: this client was not
 *                  running (see max_lag_ms); it is counted apart
 *                  (stalled_connect) with a "note" line.
 *   slow           succeeded, but took > 2 s from connect to close; not
 *                  counted when the time this client itself was not
 *                  running meanwhile (it overslept its epoll_wait by
 *                  more than 20 ms) explains the excess: counted apart
 *                  (stalled_slow) with a "note" line
 *   ok             everything else
 *
 * Standard output, besides the final JSON line:
 *   gen G T        the first response carrying "X-Generation: G" completed
 *                  at T seconds (CLOCK_MONOTONIC, relative to --t0 ns);
 *                  printed (and flushed) as it happens.
 * Standard error: one line per failed attempt, with its times (relative to
 * --t0), for correlation with droverd's log; and a "note" line for each
 * attempt that succeeded but took --warn-ms (500) or more (not a failure).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum cls {
	C_OK, C_REFUSED, C_RESET, C_EOF, C_WRONG_BODY, C_NON_2XX, C_TIMEOUT, C_ERROR,
	C_SLOW_CONNECT, C_SLOW, C_N
};
static const char *const cls_name[C_N] = {
	"ok", "refused", "reset", "eof", "wrong_body", "non_2xx", "timeout", "error",
	"slow_connect", "slow",
};

enum phase { P_FREE, P_CONNECTING, P_SENDING, P_READING };

#define RESP_MAX 4096
#define GEN_MAX 65536

struct conn {
	enum phase phase;
	int64_t t_start, t_connected;	/* ns, CLOCK_MONOTONIC */
	int64_t stall_at_start;		/* stall_ns when it started */
	unsigned syn_retrans;		/* segments retransmitted until connected */
	size_t sent;
	size_t len;
	bool complete;			/* a full response was parsed */
	int status;
	long gen;
	char buf[RESP_MAX];		/* last: not cleared between uses */
};

static const char request[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
static const char *body_expected = "Hello, world!\n";

static struct conn *conns;		/* indexed by fd */
static int conns_max;
static int epfd;
static struct sockaddr_in target;
static int64_t t0_ns, timeout_ns = 10LL * 1000000000, warn_ns = 500000000;
static uint64_t slow_ok, stalled_connect, stalled_slow;
/* Time this client was not running when it should have been: each
 * epoll_wait overslept beyond STALL_SLACK, added up. */
static int64_t stall_ns;
enum { STALL_SLACK_NS = 20000000 };
static uint64_t counts[C_N], attempts, inflight, inflight_max;
static int64_t max_lag_ns, max_ok_ns, max_connect_ns;
static int64_t gen_seen[GEN_MAX];	/* first completion time of each generation, 0: never */
static volatile sig_atomic_t stop_flag;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double rel(int64_t t)
{
	return (double)(t - t0_ns) / 1e9;
}

static void on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void finish(int fd, enum cls c, int err, const char *what)
{
	struct conn *k = &conns[fd];
	int64_t t = now_ns();

	if (c == C_OK) {
		bool slow_connect = k->t_connected - k->t_start >= 1000000000LL;

		if (slow_connect && !k->syn_retrans) {
			stalled_connect++;
			fprintf(stderr, "note stalled-connect start=%.6f connect_ms=%.3f (no SYN retransmitted)\n",
				rel(k->t_start), (double)(k->t_connected - k->t_start) / 1e6);
		}
		if (slow_connect && k->syn_retrans) {
			c = C_SLOW_CONNECT;
		} else if (t - k->t_start > 2000000000LL) {
			int64_t away = stall_ns - k->stall_at_start;

			if (t - k->t_start - away > 2000000000LL) {
				c = C_SLOW;
			} else {
				stalled_slow++;
				fprintf(stderr, "note stalled-slow start=%.6f total_ms=%.3f client_stalled_ms=%.3f\n",
					rel(k->t_start), (double)(t - k->t_start) / 1e6, (double)away / 1e6);
			}
		}
		else if (t - k->t_start > max_ok_ns)
			max_ok_ns = t - k->t_start;
		if (c == C_OK && t - k->t_start >= warn_ns) {
			/* Not a failure: a note, to find what made it slow. */
			slow_ok++;
			fprintf(stderr, "note ok-but-slow start=%.6f connect_ms=%.3f total_ms=%.3f gen=%ld\n",
				rel(k->t_start), (double)(k->t_connected - k->t_start) / 1e6,
				(double)(t - k->t_start) / 1e6, k->gen);
		}
	}
	counts[c]++;
	if (c != C_OK)
		fprintf(stderr, "fail %s start=%.6f connect_ms=%.3f total_ms=%.3f errno=%s what=%s "
			"bytes=%zu complete=%d status=%d gen=%ld\n",
			cls_name[c], rel(k->t_start),
			k->t_connected ? (double)(k->t_connected - k->t_start) / 1e6 : -1.0,
			(double)(t - k->t_start) / 1e6, err ? strerrorname_np(err) : "-", what, k->len,
			k->complete, k->status, k->gen);
	epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	k->phase = P_FREE;
	inflight--;
}

static enum cls errno_class(int err)
{
	if (err == ECONNREFUSED)
		return C_REFUSED;
	if (err == ECONNRESET || err == EPIPE)
		return C_RESET;
	return C_ERROR;
}

static void start_attempt(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct epoll_event ev = { .events = EPOLLOUT };
	struct conn *k;

	attempts++;
	if (fd < 0) {
		counts[C_ERROR]++;
		fprintf(stderr, "fail error start=%.6f errno=%s what=socket\n", rel(now_ns()),
			strerrorname_np(errno));
		return;
	}
	if (fd >= conns_max) {
		counts[C_ERROR]++;
		fprintf(stderr, "fail error start=%.6f what=too-many-in-flight fd=%d\n", rel(now_ns()), fd);
		close(fd);
		return;
	}
	k = &conns[fd];
	memset(k, 0, offsetof(struct conn, buf));
	k->gen = -1;
	k->t_start = now_ns();
	k->stall_at_start = stall_ns;
	k->phase = P_CONNECTING;
	inflight++;
	if (inflight > inflight_max)
		inflight_max = inflight;
	ev.data.fd = fd;
	epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
	if (connect(fd, (struct sockaddr *)&target, sizeof(target)) < 0 && errno != EINPROGRESS) {
		int err = errno;

		finish(fd, errno_class(err), err, "connect");
	}
	/* Connected at once or not: EPOLLOUT says so either way. */
}

/* Parses what was read: status, X-Generation, Content-Length, body. Sets
 * complete once the head and Content-Length bytes of body are in. */
static void parse(struct conn *k)
{
	char *end = memmem(k->buf, k->len, "\r\n\r\n", 4), *p;
	size_t head, clen = 0;
	bool have_len = false;

	if (!end)
		return;
	head = (size_t)(end - k->buf) + 4;
	if (k->len < 12 || memcmp(k->buf, "HTTP/1.", 7) != 0) {
		k->status = -1;
		k->complete = true;
		return;
	}
	k->status = atoi(k->buf + 9);
	for (p = k->buf; p < end;) {
		char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);

		if (!eol)
			break;
		if (eol - p > 15 && strncasecmp(p, "Content-Length:", 15) == 0) {
			clen = strtoul(p + 15, NULL, 10);
			have_len = true;
		} else if (eol - p > 13 && strncasecmp(p, "X-Generation:", 13) == 0) {
			k->gen = strtol(p + 13, NULL, 10);
		}
		p = eol + 2;
	}
	if (!have_len) {
		k->status = -2;		/* we only speak Content-Length */
		k->complete = true;
		return;
	}
	if (k->len >= head + clen)
		k->complete = true;
}

static void judge(int fd)
{
	struct conn *k = &conns[fd];
	char *body = memmem(k->buf, k->len, "\r\n\r\n", 4) + 4;
	size_t blen = k->len - (size_t)(body - k->buf);
	int64_t t = now_ns();

	if (k->gen >= 0 && k->gen < GEN_MAX && !gen_seen[k->gen]) {
		gen_seen[k->gen] = t;
		printf("gen %ld %.6f\n", k->gen, rel(t));
		fflush(stdout);
	}
	if (k->status < 0)
		finish(fd, C_ERROR, 0, k->status == -1 ? "not-http" : "no-content-length");
	else if (k->status < 200 || k->status > 299)
		finish(fd, C_NON_2XX, 0, "status");
	else if (blen != strlen(body_expected) || memcmp(body, body_expected, blen) != 0)
		finish(fd, C_WRONG_BODY, 0, "body");
	else
		finish(fd, C_OK, 0, "-");
}

static void on_event(int fd, uint32_t events)
{
	struct conn *k = &conns[fd];

	if (k->phase == P_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof(err);

		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err) {
			finish(fd, errno_class(err), err, "connect");
			return;
		}
		if (!(events & EPOLLOUT))
			return;
		k->t_connected = now_ns();
		{
			struct tcp_info ti;
			socklen_t tl = sizeof(ti);

			memset(&ti, 0, sizeof(ti));
			k->syn_retrans = getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 ?
					 ti.tcpi_total_retrans : 1;	/* unknown: assume the worst */
		}
		if (k->t_connected - k->t_start > max_connect_ns)
			max_connect_ns = k->t_connected - k->t_start;
		k->phase = P_SENDING;
	}
	if (k->phase == P_SENDING) {
		while (k->sent < sizeof(request) - 1) {
			ssize_t n = send(fd, request + k->sent, sizeof(request) - 1 - k->sent, MSG_NOSIGNAL);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				return;
			if (n < 0) {
				int err = errno;

				finish(fd, errno_class(err), err, "send");
				return;
			}
			k->sent += (size_t)n;
		}
		k->phase = P_READING;
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.fd = fd };
		epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
		/* fall through: the answer may be there already */
	}
	for (;;) {
		ssize_t n;

		if (k->len == RESP_MAX) {
			finish(fd, C_ERROR, 0, "response-too-large");
			return;
		}
		n = recv(fd, k->buf + k->len, RESP_MAX - k->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			int err = errno;

			/* A reset is a reset, even after a full response. */
			finish(fd, errno_class(err), err, k->complete ? "recv-after-response" : "recv");
			return;
		}
		if (n == 0) {
			if (!k->complete) {
				finish(fd, C_EOF, 0, k->len ? "eof-mid-response" : "eof-before-response");
				return;
			}
			judge(fd);
			return;
		}
		k->len += (size_t)n;
		if (!k->complete)
			parse(k);
	}
}

static void check_timeouts(int64_t now)
{
	for (int fd = 0; fd < conns_max; fd++)
		if (conns[fd].phase != P_FREE && now - conns[fd].t_start > timeout_ns)
			finish(fd, C_TIMEOUT, 0, conns[fd].phase == P_CONNECTING ? "connect" :
			       conns[fd].complete ? "no-close" : "response");
}

static void usage(void)
{
	fprintf(stderr, "usage: openloop --port P [--host ADDR] [--rate R] [--duration S] [--t0 NS] "
		"[--timeout S] [--warn-ms MS] [--body TEXT]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	double rate = 1000, duration = 10;
	const char *host = "127.0.0.1";
	int port = 0;
	struct rlimit rl;
	struct sigaction sa = { .sa_handler = on_stop };
	struct epoll_event evs[512];
	int64_t start, end, period, next, last_check, waited_from, waited_for = 0;
	uint64_t issued = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		if (strcmp(a, "--port") == 0)
			port = atoi(v);
		else if (strcmp(a, "--host") == 0)
			host = v;
		else if (strcmp(a, "--rate") == 0)
			rate = atof(v);
		else if (strcmp(a, "--duration") == 0)
			duration = atof(v);
		else if (strcmp(a, "--t0") == 0)
			t0_ns = strtoll(v, NULL, 10);
		else if (strcmp(a, "--timeout") == 0)
			timeout_ns = (int64_t)(atof(v) * 1e9);
		else if (strcmp(a, "--warn-ms") == 0)
			warn_ns = (int64_t)(atof(v) * 1e6);
		else if (strcmp(a, "--body") == 0)
			body_expected = v;
		else
			usage();
		i++;
	}
	if (port <= 0 || port > 65535 || rate <= 0)
		usage();
	target.sin_family = AF_INET;
	target.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &target.sin_addr) != 1)
		usage();
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	conns_max = rl.rlim_cur > 65536 ? 65536 : (int)rl.rlim_cur;
	if (!(conns = calloc((size_t)conns_max, sizeof(*conns)))) {
		perror("openloop: calloc");
		return 2;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stderr, NULL, _IOLBF, 0);
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		perror("openloop: epoll_create1");
		return 2;
	}
	start = now_ns();
	if (!t0_ns)
		t0_ns = start;
	end = duration > 0 ? start + (int64_t)(duration * 1e9) : INT64_MAX;
	period = (int64_t)(1e9 / rate);
	if (period < 1)
		period = 1;
	next = start;
	last_check = start;
	waited_from = start;
	for (;;) {
		int64_t now = now_ns(), wait_ns;
		int n, timeout_ms;
		bool issuing = !stop_flag && now < end;

		if (now - waited_from > waited_for + STALL_SLACK_NS)
			stall_ns += now - waited_from - waited_for - STALL_SLACK_NS;

		if (issuing) {
			/* Open loop: everything that is due goes now. */
			while (next <= now) {
				if (now - next > max_lag_ns)
					max_lag_ns = now - next;
				start_attempt();
				issued++;
				next = start + (int64_t)issued * period;
			}
		} else if (!inflight) {
			break;
		}
		if (now - last_check >= 50000000) {
			check_timeouts(now);
			last_check = now;
		}
		wait_ns = issuing ? next - now_ns() : 50000000;
		if (wait_ns > 50000000)
			wait_ns = 50000000;
		timeout_ms = wait_ns <= 0 ? 0 : (int)((wait_ns + 999999) / 1000000);
		waited_from = now_ns();
		waited_for = (int64_t)timeout_ms * 1000000;
		n = epoll_wait(epfd, evs, (int)(sizeof(evs) / sizeof(evs[0])), timeout_ms);
		if (n < 0 && errno != EINTR) {
			perror("openloop: epoll_wait");
			return 2;
		}
		for (int i = 0; i < n; i++)
			if (conns[evs[i].data.fd].phase != P_FREE)
				on_event(evs[i].data.fd, evs[i].events);
	}
	{
		uint64_t failed = 0;
		double secs = (double)(now_ns() - start) / 1e9;

		for (int c = 1; c < C_N; c++)
			failed += counts[c];
		printf("{\"attempts\": %llu, \"failed\": %llu", (unsigned long long)attempts,
		       (unsigned long long)failed);
		for (int c = 0; c < C_N; c++)
			printf(", \"%s\": %llu", cls_name[c], (unsigned long long)counts[c]);
		printf(", \"seconds\": %.3f, \"rate\": %.1f, \"max_lag_ms\": %.3f, \"max_ok_ms\": %.3f, "
		       "\"max_connect_ms\": %.3f, \"inflight_max\": %llu, \"ok_over_warn\": %llu, "
		       "\"stalled_connect\": %llu, \"stalled_slow\": %llu, \"warn_ms\": %.0f}\n",
		       secs, (double)attempts / secs, (double)max_lag_ns / 1e6, (double)max_ok_ns / 1e6,
		       (double)max_connect_ns / 1e6, (unsigned long long)inflight_max,
		       (unsigned long long)slow_ok, (unsigned long long)stalled_connect,
		       (unsigned long long)stalled_slow, (double)warn_ns / 1e6);
		fflush(stdout);
	}
	return 0;
}
