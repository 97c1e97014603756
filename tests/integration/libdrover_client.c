/* libdrover_client - drives libdrover for test_libdrover.py.
 *
 *   fds NAME...       drover_listen_fds(), the close-on-exec flag of each
 *                     passed descriptor before and after, drover_listen_fd()
 *                     of each NAME
 *   notify TEXT       drover_notify("%s", TEXT)
 *   big               drover_notify() of a 5000-byte message
 *   ready|busy|idle   drover_ready() / drover_busy() / drover_idle()
 *   status TEXT       drover_notify("STATUS=%s", TEXT) then drover_ready(),
 *                     then waits for a signal (a service with ready = notify)
 *
 * Prints one "key=value" line per result, then "open-fds-delta=N": how many
 * more descriptors are open than before the calls (none may be kept). */
#include <drover.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static int cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	return fl < 0 ? -1 : !!(fl & FD_CLOEXEC);
}

static void print_cloexec(const char *label, int n)
{
	printf("%s=", label);
	for (int fd = 3; fd < 3 + n; fd++)
		printf("%s%d", fd > 3 ? "," : "", cloexec(fd));
	printf("\n");
}

int main(int argc, char **argv)
{
	int before = open_fds();
	const char *env_n;
	int n;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		return 2;
	if (strcmp(argv[1], "fds") == 0) {
		env_n = getenv("LISTEN_FDS");
		n = env_n ? atoi(env_n) : 0;
		print_cloexec("cloexec-before", n);
		printf("fds=%d\n", drover_listen_fds());
		print_cloexec("cloexec-after", n);
		for (int i = 2; i < argc; i++)
			printf("fd[%s]=%d\n", argv[i], drover_listen_fd(argv[i]));
	} else if (strcmp(argv[1], "notify") == 0 && argc == 3) {
		printf("notify=%d\n", drover_notify("%s", argv[2]));
	} else if (strcmp(argv[1], "big") == 0) {
		char big[5001];

		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		printf("notify=%d\n", drover_notify("STATUS=%s", big));
	} else if (strcmp(argv[1], "ready") == 0) {
		printf("ready=%d\n", drover_ready());
	} else if (strcmp(argv[1], "busy") == 0) {
		printf("busy=%d\n", drover_busy());
	} else if (strcmp(argv[1], "idle") == 0) {
		printf("idle=%d\n", drover_idle());
	} else if (strcmp(argv[1], "status") == 0 && argc == 3) {
		printf("notify=%d\n", drover_notify("STATUS=%s", argv[2]));
		printf("ready=%d\n", drover_ready());
	} else {
		return 2;
	}
	printf("open-fds-delta=%d\n", open_fds() - before);
	if (strcmp(argv[1], "status") == 0)
		pause();
	return 0;
}
