/* test_fsafe.c - the directory walk of fsafe.h: which symbolic links it
 * follows (root's, in a directory only root may write) and which it
 * refuses, directories it makes, and the socket helpers' refusals. Works
 * in a fresh directory under /tmp; the cases about other users' links need
 * root (they lchown a link to uid 65534) and are skipped otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsafe.h"

static char top[64];

static const char *at(const char *rel)
{
	static char buf[4][PATH_MAX];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", top, rel);
	return buf[i];
}

static int setup(void **state)
{
	(void)state;
	snprintf(top, sizeof(top), "/tmp/test_fsafe.XXXXXX");
	if (!mkdtemp(top))
		return -1;
	return mkdir(at("a"), 0755) || mkdir(at("a/b"), 0755) || mkdir(at("w"), 0777) || chmod(at("w"), 0777);
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	return system(cmd) == 0 ? 0 : -1;
}

/* The directory fd and the one at rel are the same. */
static void assert_is(int fd, const char *rel)
{
	struct stat a, b;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &a), 0);
	assert_int_equal(stat(at(rel), &b), 0);
	assert_true(a.st_dev == b.st_dev && a.st_ino == b.st_ino);
	close(fd);
}

static void plain_path(void **state)
{
	char base[NAME_MAX + 1], why[FSAFE_WHY];

	(void)state;
	assert_is(fsafe_open_dir(at("a//b/./f.log"), false, base, sizeof(base), why), "a/b");
	assert_string_equal(base, "f.log");
	assert_string_equal(why, "");
}

static void missing_directory_is_an_errno(void **state)
{
	char base[NAME_MAX + 1], why[FSAFE_WHY];

	(void)state;
	errno = 0;
	assert_int_equal(fsafe_open_dir(at("a/nope/f"), false, base, sizeof(base), why), -1);
	assert_int_equal(errno, ENOENT);
	assert_string_equal(why, "");
}

static void make_creates_directories(void **state)
{
	char base[NAME_MAX + 1], why[FSAFE_WHY];

	(void)state;
	assert_is(fsafe_open_dir(at("m/n/o/ctl.sock"), true, base, sizeof(base), why), "m/n/o");
	assert_string_equal(base, "ctl.sock");
}

static void no_file_name(void **state)
{
	char base[NAME_MAX + 1], why[FSAFE_WHY];

	(void)state;
	assert_int_equal(fsafe_open_dir(at("a/b/"), false, base, sizeof(base), why), -1);
	assert_int_equal(errno, EISDIR);
	assert_int_equal(fsafe_open_dir(at("a/b/.."), false, base, sizeof(base), why), -1);
	assert_int_equal(errno, EISDIR);
}

/* Root's link in a directory only root may write: like /var/run -> /run. */
static void trusted_links_are_followed(void **state)
{
	char base[NAME_MAX + 1], why[FSAFE_WHY];

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_int_equal(symlink("a/b", at("rel")), 0);
	assert_int_equal(symlink(at("a"), at("abs")), 0);
	assert_is(fsafe_open_dir(at("rel/f"), false, base, sizeof(base), why), "a/b");
	assert_is(fsafe_open_dir(at("abs/b/f"), false, base, sizeof(base), why), "a/b");
	assert_string_equal(base, "f");
}

static void others_links_are_refused(void **state)
{
	char base[NAME_MAX + 1], why[FSAFE_WHY], want[FSAFE_WHY];

	(void)state;
	if (geteuid() != 0)
		skip();
	/* A user's link in root's directory. */
	assert_int_equal(symlink("a", at("users")), 0);
	assert_int_equal(lchown(at("users"), 65534, 65534), 0);
	assert_int_equal(fsafe_open_dir(at("users/b/f"), false, base, sizeof(base), why), -1);
	snprintf(want, sizeof(want), "%s is a symbolic link", at("users"));
	assert_string_equal(why, want);
	/* Root's link, in a directory anyone may write (it may have been
	 * swapped for one that looks the same). */
	assert_int_equal(symlink(at("a"), at("w/l")), 0);
	assert_int_equal(fsafe_open_dir(at("w/l/f"), false, base, sizeof(base), why), -1);
	snprintf(want, sizeof(want), "%s is a symbolic link", at("w/l"));
	assert_string_equal(why, want);
}

static void link_loop(void **state)
{
	char base[NAME_MAX + 1], why[FSAFE_WHY];

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_int_equal(symlink("loop2", at("loop1")), 0);
	assert_int_equal(symlink("loop1", at("loop2")), 0);
	assert_int_equal(fsafe_open_dir(at("loop1/f"), false, base, sizeof(base), why), -1);
	assert_int_equal(errno, ELOOP);
	assert_string_equal(why, "");
}

static void socket_helpers_leave_what_is_not_a_socket(void **state)
{
	char base[NAME_MAX + 1], why[FSAFE_WHY];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	dev_t dev = 0;
	ino_t ino = 0;
	int dfd, fd;

	(void)state;
	fd = open(at("a/b/file"), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(symlink(at("a/b/file"), at("a/b/link")), 0);
	dfd = fsafe_open_dir(at("a/b/file"), false, base, sizeof(base), why);
	assert_true(dfd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", at("a/b/file"));
	assert_int_equal(fsafe_clear_socket(dfd, "file", &sa, sizeof(sa)), FSAFE_NOT_SOCKET);
	assert_int_equal(fsafe_clear_socket(dfd, "link", &sa, sizeof(sa)), FSAFE_NOT_SOCKET);
	assert_int_equal(fsafe_clear_socket(dfd, "none", &sa, sizeof(sa)), FSAFE_FREE);
	assert_int_equal(fsafe_own_socket(dfd, "link", 65534, 65534, &dev, &ino, why), -1);
	assert_string_equal(why, "a symbolic link took the socket file's place");
	assert_int_equal(fsafe_own_socket(dfd, "file", 65534, 65534, &dev, &ino, why), -1);
	assert_string_equal(why, "a file that is not a socket took the socket file's place");
	assert_true(dev == 0 && ino == 0);
	close(dfd);
	assert_int_equal(access(at("a/b/file"), F_OK), 0);
	assert_int_equal(access(at("a/b/link"), F_OK), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(plain_path, setup, teardown),
		cmocka_unit_test_setup_teardown(missing_directory_is_an_errno, setup, teardown),
		cmocka_unit_test_setup_teardown(make_creates_directories, setup, teardown),
		cmocka_unit_test_setup_teardown(no_file_name, setup, teardown),
		cmocka_unit_test_setup_teardown(trusted_links_are_followed, setup, teardown),
		cmocka_unit_test_setup_teardown(others_links_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(link_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(socket_helpers_leave_what_is_not_a_socket, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
