/* test_sink.c - the log sink (sink.h): a write that fails is counted, not
 * reported through the sink that failed; the count goes to report() once a
 * write succeeds, and what report() writes never calls it again, even when
 * that write fails too. Datagrams go whole or are dropped and counted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sink.h"

static int reports;
static struct sink_losses last;
static int broken_fd = -1;	/* report() puts this in place before it writes */

static void count_report(struct sink *s, struct sink_losses l)
{
	reports++;
	last = l;
	if (broken_fd >= 0)
		dup2(broken_fd, s->fd);
	sink_write(s, "report\n", 7);
}

/* A pipe whose reader is gone: its write end. */
static int broken_pipe(void)
{
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	return p[1];
}

static int setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	reports = 0;
	last = (struct sink_losses){ 0 };
	broken_fd = -1;
	return 0;
}

static void read_exactly(int fd, const char *want)
{
	char got[256];
	ssize_t n = read(fd, got, sizeof(got) - 1);

	assert_true(n >= 0);
	got[n] = '\0';
	assert_string_equal(got, want);
}

static void test_failed_writes_are_reported_once_writing_works(void **state)
{
	struct sink s = { .fd = -1, .report = count_report };
	int p[2];

	(void)state;
	sink_attach(&s, broken_pipe());
	for (int i = 0; i < 3; i++)
		sink_write(&s, "lost\n", 5);
	assert_int_equal(reports, 0);
	assert_int_equal(sink_error(&s), EPIPE);
	/* The reader is back (a new pipe in the same descriptor). */
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	dup2(p[1], s.fd);
	close(p[1]);
	assert_true(sink_write(&s, "ok\n", 3));
	assert_int_equal(reports, 1);
	assert_int_equal(last.failed, 3);
	assert_int_equal(last.err, EPIPE);
	assert_int_equal(last.dropped, 0);
	assert_int_equal(sink_error(&s), 0);
	read_exactly(p[0], "ok\nreport\n");
	sink_write(&s, "more\n", 5);
	assert_int_equal(reports, 1);
	read_exactly(p[0], "more\n");
	close(p[0]);
	sink_close(&s);
}

static void test_report_that_fails_does_not_recurse(void **state)
{
	struct sink s = { .fd = -1, .report = count_report };
	int p[2];

	(void)state;
	sink_attach(&s, broken_pipe());
	sink_write(&s, "lost\n", 5);
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	dup2(p[1], s.fd);
	broken_fd = broken_pipe();
	/* Works; its report fails: counted for the next report, not reported
	 * from inside this one. */
	sink_write(&s, "ok\n", 3);
	assert_int_equal(reports, 1);
	assert_int_equal(last.failed, 1);
	for (int i = 0; i < 1000; i++)
		sink_write(&s, "lost\n", 5);
	assert_int_equal(reports, 1);
	close(broken_fd);
	broken_fd = -1;
	dup2(p[1], s.fd);
	sink_write(&s, "ok\n", 3);
	assert_int_equal(reports, 2);
	assert_int_equal(last.failed, 1001);
	read_exactly(p[0], "ok\nok\nreport\n");
	close(p[0]);
	close(p[1]);
	sink_close(&s);
}

static void test_losses_carry_over_to_the_next_descriptor(void **state)
{
	struct sink s = { .fd = -1, .report = count_report };
	struct sink_losses l;
	int p[2];

	(void)state;
	sink_attach(&s, broken_pipe());
	sink_write(&s, "lost\n", 5);
	sink_close(&s);
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	sink_attach(&s, p[1]);
	assert_int_equal(sink_error(&s), 0);
	sink_write(&s, "ok\n", 3);
	assert_int_equal(reports, 1);
	assert_int_equal(last.failed, 1);
	read_exactly(p[0], "ok\nreport\n");
	close(p[0]);
	sink_close(&s);
	/* Taken out (by a destination being replaced): not reported here. */
	sink_attach(&s, broken_pipe());
	sink_write(&s, "lost\n", 5);
	l = sink_take_losses(&s);
	assert_int_equal(l.failed, 1);
	assert_int_equal(l.err, EPIPE);
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	dup2(p[1], s.fd);
	close(p[1]);
	sink_write(&s, "ok\n", 3);
	assert_int_equal(reports, 1);
	read_exactly(p[0], "ok\n");
	close(p[0]);
	sink_close(&s);
}

static void test_datagrams_are_whole_or_dropped(void **state)
{
	struct sink s = { .fd = -1, .report = count_report };
	int sv[2], sent = 0, got = 0;
	char buf[64];
	ssize_t n;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
	sink_attach(&s, sv[0]);
	assert_int_equal(s.kind, SINK_SOCKET);
	/* Nobody reads: the peer's queue fills up. */
	for (int i = 0; i < 2000; i++)
		sent += sink_write(&s, "<30>one datagram", 16);
	assert_true(sent < 2000);
	assert_int_equal(reports, 0);
	while ((n = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		assert_int_equal(n, 16);
		got++;
	}
	assert_int_equal(got, sent);
	assert_true(sink_write(&s, "<30>again", 9));
	assert_int_equal(reports, 1);
	assert_int_equal(last.dropped, 2000 - sent);
	assert_int_equal(last.failed, 0);
	assert_int_equal(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT), 9);
	assert_int_equal(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT), 7);	/* "report\n" */
	/* The reader is gone: a failure, counted. */
	close(sv[1]);
	assert_false(sink_write(&s, "<30>lost", 8));
	assert_int_equal(last.failed, 0);
	assert_true(sink_error(&s) != 0);
	sink_close(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_failed_writes_are_reported_once_writing_works, setup),
		cmocka_unit_test_setup(test_report_that_fails_does_not_recurse, setup),
		cmocka_unit_test_setup(test_losses_carry_over_to_the_next_descriptor, setup),
		cmocka_unit_test_setup(test_datagrams_are_whole_or_dropped, setup),
	};

	return cmocka_run_group_tests_name("sink", tests, NULL, NULL);
}
