/* bare_inetd.c - the least a master can do per connection, as a third
 * server in bench/serve.py's accept-mode section: how fast droverd and
 * xinetd could be at best on this machine, with this handler.
 *
 * usage: bare_inetd PORT PROGRAM
 *
 * Listens on 127.0.0.1:PORT; for each connection, posix_spawn()s PROGRAM
 * with the connection as standard input and output (standard error
 * inherited), closes its copy and reaps whatever handlers have exited. No
 * limits, no environment, no accounting, no logging: nothing a real master
 * needs. Runs until a signal ends it (the benchmark sends SIGTERM by PID).
 *
 * A benchmark tool, not part of drover. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int listen_on(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4096) < 0) {
		perror("bare_inetd: listen");
		exit(1);
	}
	return fd;
}

int main(int argc, char **argv)
{
	char *args[2] = { NULL, NULL };
	int lfd;

	if (argc != 3 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
		fprintf(stderr, "usage: bare_inetd PORT PROGRAM\n");
		return 2;
	}
	args[0] = argv[2];
	lfd = listen_on(atoi(argv[1]));
	for (;;) {
		posix_spawn_file_actions_t fa;
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), err;
		pid_t pid;

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("bare_inetd: accept");
			return 1;
		}
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, c, 0);
		posix_spawn_file_actions_adddup2(&fa, c, 1);
		err = posix_spawn(&pid, args[0], &fa, NULL, args, environ);
		posix_spawn_file_actions_destroy(&fa);
		if (err)
			fprintf(stderr, "bare_inetd: cannot start %s: %s\n", args[0], strerror(err));
		close(c);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
}
