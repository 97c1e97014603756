/* test_listen_addr.c - the `listen =` grammar (listen_addr.c), through
 * conf_load as a user reaches it: addresses, FDNAME=, options, the
 * canonical key, and every error with its exact text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf.h"

struct fx {
	char dir[64];
	int oldcwd;
	struct conf_errors errs;
	struct conf *c;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/drover-unit-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->oldcwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->oldcwd < 0 || chdir(f->dir) < 0)
		return -1;
	*state = f;
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	conf_free(f->c);
	conf_errors_free(&f->errs);
	if (fchdir(f->oldcwd) < 0)
		return -1;
	close(f->oldcwd);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Loads a service with `listen = line` at line 3. */
static struct conf *load_listen(struct fx *f, const char *line)
{
	char text[1024];
	int fd;
	size_t n;

	n = (size_t)snprintf(text, sizeof(text), "[service s]\ncommand = /bin/true\nlisten = %s\n", line);
	assert_true(n < sizeof(text));
	fd = open("drover.conf", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	close(fd);
	conf_free(f->c);
	conf_errors_free(&f->errs);
	f->c = conf_load("drover.conf", false, &f->errs);
	return f->c;
}

static const struct listen_conf *ok(struct fx *f, const char *line)
{
	if (!load_listen(f, line)) {
		for (int i = 0; i < f->errs.n; i++)
			print_message("  got: %s\n", f->errs.msg[i]);
		fail_msg("listen = %s refused", line);
	}
	assert_int_equal(f->c->svcs[0]->nlisten, 1);
	assert_int_equal(f->c->svcs[0]->listen[0].line, 3);
	return &f->c->svcs[0]->listen[0];
}

/* `value` is what is quoted in the message: the whole value as written. */
static void bad(struct fx *f, const char *line, const char *reason)
{
	char want[1024];

	snprintf(want, sizeof(want), "drover.conf:3: bad listen in [service s]: \"%s\" %s", line, reason);
	if (load_listen(f, line))
		fail_msg("listen = %s accepted", line);
	if (f->errs.n != 1 || strcmp(f->errs.msg[0], want) != 0) {
		for (int i = 0; i < f->errs.n; i++)
			print_message("  got: %s\n", f->errs.msg[i]);
		fail_msg("want: %s", want);
	}
}

static const struct sockaddr_in *in4(const struct listen_conf *l)
{
	return (const struct sockaddr_in *)&l->addr;
}

static const struct sockaddr_in6 *in6(const struct listen_conf *l)
{
	return (const struct sockaddr_in6 *)&l->addr;
}

static const struct sockaddr_un *un(const struct listen_conf *l)
{
	return (const struct sockaddr_un *)&l->addr;
}

static void expect_ipv4(const struct listen_conf *l, const char *addr, int port)
{
	char text[INET_ADDRSTRLEN];

	assert_int_equal(l->family, AF_INET);
	assert_int_equal(in4(l)->sin_family, AF_INET);
	assert_int_equal(l->addrlen, sizeof(struct sockaddr_in));
	assert_non_null(inet_ntop(AF_INET, &in4(l)->sin_addr, text, sizeof(text)));
	assert_string_equal(text, addr);
	assert_int_equal(ntohs(in4(l)->sin_port), port);
	assert_false(l->dualstack);
}

static void expect_ipv6(const struct listen_conf *l, const char *addr, int port, bool dualstack)
{
	char text[INET6_ADDRSTRLEN];

	assert_int_equal(l->family, AF_INET6);
	assert_int_equal(in6(l)->sin6_family, AF_INET6);
	assert_int_equal(l->addrlen, sizeof(struct sockaddr_in6));
	assert_non_null(inet_ntop(AF_INET6, &in6(l)->sin6_addr, text, sizeof(text)));
	assert_string_equal(text, addr);
	assert_int_equal(ntohs(in6(l)->sin6_port), port);
	assert_int_equal(l->dualstack, dualstack);
}

static void test_tcp_host_port(void **state)
{
	struct fx *f = *state;
	const struct listen_conf *l = ok(f, "tcp:127.0.0.1:8080");

	expect_ipv4(l, "127.0.0.1", 8080);
	assert_int_equal(l->socktype, SOCK_STREAM);
	assert_null(l->fdname);
	assert_string_equal(l->text, "tcp:127.0.0.1:8080");
	assert_string_equal(l->key, "tcp:127.0.0.1:8080");
	assert_int_equal(l->backlog, 0);
	assert_false(l->reuseport);
	assert_false(l->freebind);
	assert_false(l->has_mode);
	assert_false(l->has_owner);
	assert_false(l->has_group);

	expect_ipv4(ok(f, "tcp:*:80"), "0.0.0.0", 80);
	expect_ipv4(ok(f, "tcp:0.0.0.0:1"), "0.0.0.0", 1);
	expect_ipv4(ok(f, "tcp:localhost:443"), "127.0.0.1", 443);
	l = ok(f, "tcp:192.0.2.7:65535");
	expect_ipv4(l, "192.0.2.7", 65535);
	assert_string_equal(l->key, "tcp:192.0.2.7:65535");
}

static void test_tcp_port_dualstack(void **state)
{
	struct fx *f = *state;
	const struct listen_conf *l = ok(f, "tcp:8080");

	expect_ipv6(l, "::", 8080, true);
	assert_int_equal(l->socktype, SOCK_STREAM);
	assert_string_equal(l->key, "tcp:8080");
	assert_string_equal(l->text, "tcp:8080");
}

static void test_tcp6(void **state)
{
	struct fx *f = *state;
	const struct listen_conf *l = ok(f, "tcp6:[::1]:8080");

	expect_ipv6(l, "::1", 8080, false);
	assert_int_equal(l->socktype, SOCK_STREAM);
	assert_string_equal(l->key, "tcp6:[::1]:8080");
	expect_ipv6(ok(f, "tcp6:[::]:443"), "::", 443, false);
	expect_ipv6(ok(f, "tcp6:[2001:db8::42]:1"), "2001:db8::42", 1, false);
	expect_ipv6(ok(f, "tcp6:[::ffff:127.0.0.1]:80"), "::ffff:127.0.0.1", 80, false);
}

static void test_udp(void **state)
{
	struct fx *f = *state;
	const struct listen_conf *l = ok(f, "udp:127.0.0.1:53");

	expect_ipv4(l, "127.0.0.1", 53);
	assert_int_equal(l->socktype, SOCK_DGRAM);
	assert_string_equal(l->key, "udp:127.0.0.1:53");
	l = ok(f, "udp:514");
	expect_ipv6(l, "::", 514, true);
	assert_int_equal(l->socktype, SOCK_DGRAM);
	assert_string_equal(l->key, "udp:514");
	l = ok(f, "udp6:[::1]:5353");
	expect_ipv6(l, "::1", 5353, false);
	assert_int_equal(l->socktype, SOCK_DGRAM);
	assert_string_equal(l->key, "udp6:[::1]:5353");
}

static void test_unix_path(void **state)
{
	struct fx *f = *state;
	const struct listen_conf *l = ok(f, "unix:/run/drover/app.sock");

	assert_int_equal(l->family, AF_UNIX);
	assert_int_equal(un(l)->sun_family, AF_UNIX);
	assert_int_equal(l->socktype, SOCK_STREAM);
	assert_string_equal(un(l)->sun_path, "/run/drover/app.sock");
	assert_int_equal(l->addrlen, offsetof(struct sockaddr_un, sun_path) + strlen("/run/drover/app.sock") + 1);
	assert_string_equal(l->key, "unix:/run/drover/app.sock");
	/* Quotes are removed like in a command. */
	l = ok(f, "'unix:/run/my app.sock' mode=0600");
	assert_string_equal(un(l)->sun_path, "/run/my app.sock");
	assert_string_equal(l->key, "unix:/run/my app.sock mode=0600");
}

static void test_unix_abstract(void **state)
{
	struct fx *f = *state;
	const struct listen_conf *l = ok(f, "unix:@drover-test");

	assert_int_equal(l->family, AF_UNIX);
	assert_int_equal(l->socktype, SOCK_STREAM);
	assert_int_equal(un(l)->sun_path[0], '\0');
	assert_memory_equal(un(l)->sun_path + 1, "drover-test", 11);
	assert_int_equal(l->addrlen, offsetof(struct sockaddr_un, sun_path) + 1 + 11);
	assert_string_equal(l->key, "unix:@drover-test");
	assert_string_equal(l->text, "unix:@drover-test");
}

static void test_unix_lengths(void **state)
{
	struct fx *f = *state;
	char line[300];
	const struct listen_conf *l;

	/* 107 bytes of path and its NUL fill sun_path. */
	snprintf(line, sizeof(line), "unix:/%0106d", 0);
	l = ok(f, line);
	assert_int_equal(strlen(un(l)->sun_path), 107);
	snprintf(line, sizeof(line), "unix:/%0107d", 0);
	bad(f, line, "has a path longer than 107 bytes");
	/* Abstract: up to 107 bytes after the leading NUL. */
	snprintf(line, sizeof(line), "unix:@%0107d", 0);
	l = ok(f, line);
	assert_int_equal(l->addrlen, offsetof(struct sockaddr_un, sun_path) + 108);
	snprintf(line, sizeof(line), "unix:@%0108d", 0);
	bad(f, line, "has a bad abstract name (1 to 107 characters after @)");
	bad(f, "unix:@", "has a bad abstract name (1 to 107 characters after @)");
}

static void test_fdname(void **state)
{
	struct fx *f = *state;
	const struct listen_conf *l = ok(f, "http=tcp:127.0.0.1:80");
	char line[400];

	assert_string_equal(l->fdname, "http");
	assert_string_equal(l->text, "tcp:127.0.0.1:80");
	assert_string_equal(l->key, "tcp:127.0.0.1:80");
	expect_ipv4(l, "127.0.0.1", 80);
	l = ok(f, "ctl.v2=unix:/run/x=y.sock backlog=5");
	assert_string_equal(l->fdname, "ctl.v2");
	assert_string_equal(un(l)->sun_path, "/run/x=y.sock");
	assert_string_equal(l->key, "unix:/run/x=y.sock backlog=5");
	/* 255 characters at most. */
	memset(line, 'n', 255);
	snprintf(line + 255, sizeof(line) - 255, "=tcp:80");
	assert_int_equal(strlen(ok(f, line)->fdname), 255);
	memset(line, 'n', 256);
	snprintf(line + 256, sizeof(line) - 256, "=tcp:80");
	bad(f, line, "has a bad FDNAME (1 to 255 printable characters, no ':')");
	bad(f, "=tcp:80", "has a bad FDNAME (1 to 255 printable characters, no ':')");
}

static void test_options(void **state)
{
	struct fx *f = *state;
	const struct listen_conf *l = ok(f, "tcp:127.0.0.1:80 freebind reuseport backlog=128");
	struct passwd *pw;
	struct group *g;
	uid_t uid;
	gid_t gid;
	char want[200];

	assert_int_equal(l->backlog, 128);
	assert_true(l->reuseport);
	assert_true(l->freebind);
	assert_string_equal(l->key, "tcp:127.0.0.1:80 backlog=128 reuseport freebind");
	assert_string_equal(l->text, "tcp:127.0.0.1:80");
	/* The key does not depend on the order options are written in. */
	assert_string_equal(ok(f, "tcp:127.0.0.1:80 backlog=128 reuseport freebind")->key,
			    "tcp:127.0.0.1:80 backlog=128 reuseport freebind");
	assert_string_equal(ok(f, "tcp:127.0.0.1:80 reuseport backlog=128 freebind")->key,
			    "tcp:127.0.0.1:80 backlog=128 reuseport freebind");
	assert_int_equal(ok(f, "tcp:80 backlog=1048576")->backlog, 1048576);
	assert_int_equal(ok(f, "tcp:80 backlog=1")->backlog, 1);

	pw = getpwnam("daemon");
	if (!pw)
		skip();
	uid = pw->pw_uid;
	g = getgrnam("bin");
	if (!g)
		skip();
	gid = g->gr_gid;
	l = ok(f, "unix:/run/a.sock group=bin mode=660 owner=daemon");
	assert_true(l->has_mode);
	assert_int_equal(l->mode, 0660);
	assert_true(l->has_owner);
	assert_int_equal(l->owner, uid);
	assert_true(l->has_group);
	assert_int_equal(l->group, gid);
	snprintf(want, sizeof(want), "unix:/run/a.sock mode=0660 owner=%u group=%u", (unsigned)uid,
		 (unsigned)gid);
	assert_string_equal(l->key, want);
	assert_string_equal(ok(f, "unix:/run/a.sock mode=0660 owner=daemon group=bin")->key, want);
}

/* Two spellings of one address and options are one socket: the key, on
 * which a reload decides to keep an open socket, is the same. */
static void test_key_canonical_address(void **state)
{
	static const char *const same[][2] = {
		{ "tcp:localhost:8080", "tcp:127.0.0.1:8080" },
		{ "tcp:*:8080", "tcp:0.0.0.0:8080" },
		{ "tcp:127.0.0.1:080", "tcp:127.0.0.1:80" },
		{ "tcp6:[0:0::1]:80", "tcp6:[::1]:80" },
		{ "tcp6:[2001:DB8::1]:80", "tcp6:[2001:db8::1]:80" },
	};
	struct fx *f = *state;
	char a[256];

	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		snprintf(a, sizeof(a), "%s", ok(f, same[i][0])->key);
		if (strcmp(a, ok(f, same[i][1])->key) != 0)
			fail_msg("%s has key \"%s\", %s has \"%s\"", same[i][0], a, same[i][1],
				 f->c->svcs[0]->listen[0].key);
	}
}

static void test_several_listeners(void **state)
{
	struct fx *f = *state;
	struct svc_conf *s;
	int fd;
	static const char text[] =
		"[service s]\n"
		"command = /bin/true\n"
		"listen = a=tcp:127.0.0.1:81\n"
		"listen = b=tcp6:[::1]:82\n"
		"\n"
		"listen = unix:@c\n";

	fd = open("drover.conf", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	f->c = conf_load("drover.conf", false, &f->errs);
	assert_non_null(f->c);
	s = f->c->svcs[0];
	assert_int_equal(s->nlisten, 3);
	assert_string_equal(s->listen[0].fdname, "a");
	assert_int_equal(s->listen[0].line, 3);
	assert_string_equal(s->listen[1].fdname, "b");
	assert_int_equal(s->listen[1].line, 4);
	assert_null(s->listen[2].fdname);
	assert_int_equal(s->listen[2].line, 6);
	assert_string_equal(s->listen[2].key, "unix:@c");
}

static void test_bad_ports(void **state)
{
	struct fx *f = *state;
	static const char *const lines[] = {
		"tcp:127.0.0.1:0", "tcp:127.0.0.1:65536", "tcp:127.0.0.1:abc", "tcp:127.0.0.1:",
		"tcp:127.0.0.1:-1", "tcp:127.0.0.1:80x", "tcp:0", "tcp:", "tcp:99999999999999999999",
		"udp:1.2.3.4:0", "udp6:[::1]:65536", "tcp6:[::1]:", "tcp:127.0.0.1: 80",
	};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		/* A space splits the value into address and an option. */
		if (strchr(lines[i], ' '))
			continue;
		bad(f, lines[i], "has a bad port (use 1 to 65535)");
	}
}

static void test_bad_hosts(void **state)
{
	struct fx *f = *state;
	char line[200];

	bad(f, "tcp:example.com:80",
	    "has a host that is not an IPv4 address (names are not looked up; use tcp6:[ADDR]:PORT for IPv6)");
	bad(f, "tcp:[::1]:80",
	    "has a host that is not an IPv4 address (names are not looked up; use tcp6:[ADDR]:PORT for IPv6)");
	bad(f, "tcp:256.0.0.1:80",
	    "has a host that is not an IPv4 address (names are not looked up; use tcp6:[ADDR]:PORT for IPv6)");
	bad(f, "udp::53",
	    "has a host that is not an IPv4 address (names are not looked up; use tcp6:[ADDR]:PORT for IPv6)");
	memset(line, '1', 64 + 4);
	memcpy(line, "tcp:", 4);
	snprintf(line + 68, sizeof(line) - 68, ":80");
	bad(f, line, "has a bad host");
	bad(f, "tcp6:::1:80", "is not [ADDRESS]:PORT");
	bad(f, "tcp6:[::1]80", "is not [ADDRESS]:PORT");
	bad(f, "tcp6:[::1", "is not [ADDRESS]:PORT");
	bad(f, "tcp6:[nope]:80", "has a host that is not an IPv6 address");
	bad(f, "tcp6:[127.0.0.1]:80", "has a host that is not an IPv6 address");
	bad(f, "udp6:[]:53", "has a host that is not an IPv6 address");
}

static void test_bad_address_kind(void **state)
{
	struct fx *f = *state;
	const char *why = "is not an address (use tcp:HOST:PORT, tcp:PORT, tcp6:[ADDR]:PORT, "
			  "udp:HOST:PORT, udp6:[ADDR]:PORT, unix:/PATH or unix:@NAME)";

	bad(f, "sctp:1.2.3.4:80", why);
	bad(f, "TCP:127.0.0.1:80", why);
	bad(f, "127.0.0.1:80", why);
	bad(f, "/run/x.sock", why);
	bad(f, "unix:relative.sock", "is not an absolute path or @name");
	bad(f, "unix:", "is not an absolute path or @name");
}

static void test_bad_options(void **state)
{
	struct fx *f = *state;
	const char *unix_only = "has mode=, owner= or group=, which are only for unix:/PATH";

	bad(f, "tcp:127.0.0.1:80 mode=0660", unix_only);
	bad(f, "tcp:127.0.0.1:80 owner=daemon", unix_only);
	bad(f, "udp:53 group=bin", unix_only);
	bad(f, "tcp6:[::1]:80 mode=0600", unix_only);
	bad(f, "tcp:127.0.0.1:80 fast",
	    "has an unknown option \"fast\" (use backlog=N, reuseport, freebind, mode=, owner=, group=)");
	bad(f, "tcp:80 backlog",
	    "has an unknown option \"backlog\" (use backlog=N, reuseport, freebind, mode=, owner=, group=)");
	bad(f, "tcp:80 REUSEPORT",
	    "has an unknown option \"REUSEPORT\" (use backlog=N, reuseport, freebind, mode=, owner=, group=)");
	bad(f, "tcp:80 backlog=0", "has a bad backlog (a number from 1)");
	bad(f, "tcp:80 backlog=x", "has a bad backlog (a number from 1)");
	bad(f, "tcp:80 backlog=", "has a bad backlog (a number from 1)");
	bad(f, "tcp:80 backlog=1048577", "has a bad backlog (a number from 1)");
	bad(f, "unix:/run/a.sock mode=999", "has a bad mode (octal, like 0660)");
	bad(f, "unix:/run/a.sock mode=", "has a bad mode (octal, like 0660)");
	bad(f, "unix:/run/a.sock mode=01777", "has a bad mode (octal, like 0660)");
	bad(f, "unix:/run/a.sock owner=nosuchuser-drover-unit",
	    "has an owner that is not a user on this system");
	bad(f, "unix:/run/a.sock group=nosuchgroup-drover-unit",
	    "has a group that is not a group on this system");
}

static void test_bad_syntax(void **state)
{
	struct fx *f = *state;

	bad(f, "'tcp:80", "has an unterminated single quote");
	bad(f, "tcp:80 \"x", "has an unterminated double quote");
	/* An empty value: the message quotes it. */
	if (load_listen(f, ""))
		fail_msg("empty listen accepted");
	assert_int_equal(f->errs.n, 1);
	assert_string_equal(f->errs.msg[0], "drover.conf:3: bad listen in [service s]: \"\" is empty");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_tcp_host_port),
		T(test_tcp_port_dualstack),
		T(test_tcp6),
		T(test_udp),
		T(test_unix_path),
		T(test_unix_abstract),
		T(test_unix_lengths),
		T(test_fdname),
		T(test_options),
		T(test_key_canonical_address),
		T(test_several_listeners),
		T(test_bad_ports),
		T(test_bad_hosts),
		T(test_bad_address_kind),
		T(test_bad_options),
		T(test_bad_syntax),
	};

	return cmocka_run_group_tests_name("listen_addr", tests, NULL, NULL);
}
