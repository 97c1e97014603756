/* drover.c - the command-line client.
 *
 * Thin by design: it checks the command line, sends one request, prints
 * the answer. Every decision is droverd's. `drover check` is the one
 * command that needs no daemon.
 *
 * Exit status: 0 success; 1 droverd refused or the command failed; 2 usage
 * error; 3 no daemon answering on the socket. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf.h"
#include "escape.h"
#include "proto.h"
#include "render.h"
#include "value.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_NODAEMON = 3 };

static const char *sock_opt;

static const char usage_text[] =
	"usage: drover [-S SOCKET] COMMAND [ARGS]\n"
	"\n"
	"  status [NAME ...] [--json]     services: state, pids, uptime, restarts, status\n"
	"  start NAME ... [--no-wait]     start, with what they require; waits until ready\n"
	"  stop NAME ... [--no-wait]      stop, with what requires them; waits until stopped\n"
	"  restart NAME ... [--no-wait]   stop and start again\n"
	"  reload [NAME]                  reload the configuration, or one service\n"
	"  reload --dry-run [--json]      what a reload would do; changes nothing\n"
	"  signal NAME SIGNAL             send a signal to every process of a service\n"
	"  check [-c FILE]                validate a configuration (no daemon needed)\n"
	"  logs NAME [-f] [-n N]          recent output of a service; -f follows\n"
	"  deps [--dot]                   the dependency graph, as text or Graphviz\n"
	"  wait NAME [--timeout D]        wait until a service is ready\n"
	"  upgrade [--handover]           replace droverd by the binary now at its path\n"
	"  shutdown                       stop every service, then droverd exits\n"
	"  version                        versions of drover and droverd\n"
	"\n"
	"The socket is -S, else $DROVER_SOCKET, else /run/drover/control.sock (root)\n"
	"or $XDG_RUNTIME_DIR/drover/control.sock.\n"
	"Exit status: 0 ok, 1 failed or refused, 2 usage error, 3 no daemon answering.\n";

static _Noreturn void usage_error(const char *fmt, const char *arg)
{
	fputs("drover: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\n\n", stderr);
	fputs(usage_text, stderr);
	exit(EXIT_USAGE);
}

static const char *socket_path(char *buf, size_t len)
{
	const char *env = getenv("DROVER_SOCKET"), *xdg = getenv("XDG_RUNTIME_DIR");

	if (sock_opt)
		return sock_opt;
	if (env && *env)
		return env;
	if (geteuid() == 0)
		return "/run/drover/control.sock";
	if (!xdg || !*xdg) {
		fprintf(stderr, "drover: no control socket: use -S SOCKET, set DROVER_SOCKET, "
				"or set XDG_RUNTIME_DIR\n");
		exit(EXIT_NODAEMON);
	}
	snprintf(buf, len, "%s/drover/control.sock", xdg);
	return buf;
}

static int connect_daemon(void)
{
	char buf[4096];
	const char *path = socket_path(buf, sizeof(buf));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "drover: socket path too long: %s\n", path);
		exit(EXIT_USAGE);
	}
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	if (errno == EACCES || errno == EPERM) {
		fprintf(stderr, "drover: permission denied: cannot connect to %s\n", path);
		exit(EXIT_FAILED);
	}
	fprintf(stderr, "drover: no daemon answering on %s: %s\n", path, strerror(errno));
	exit(EXIT_NODAEMON);
}

/* False if droverd closed the connection first: it may have answered
 * already (a refusal is sent at once), so the caller still reads. */
static bool send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* Reads one frame into b; false at end of stream before one arrived. */
static bool read_frame(int fd, struct buf *b, size_t *size)
{
	char chunk[65536];
	long need;

	for (;;) {
		need = proto_frame_size(b->data, b->len, PROTO_MAX);
		if (need < 0) {
			fprintf(stderr, "drover: droverd sent a malformed reply\n");
			exit(EXIT_FAILED);
		}
		if (need > 0 && b->len >= (size_t)need) {
			*size = (size_t)need;
			return true;
		}
		ssize_t n = recv(fd, chunk, sizeof(chunk), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		if (!buf_add(b, chunk, (size_t)n)) {
			fprintf(stderr, "drover: out of memory\n");
			exit(EXIT_FAILED);
		}
	}
}

/* droverd's messages can quote what others wrote (a configuration's line,
 * a name given to it): shown escaped, lines kept. */
static void print_line(FILE *f, const char *prefix, const char *msg)
{
	fputs(prefix, f);
	render_text(f, msg, ESCAPE_KEEP_TAB | ESCAPE_KEEP_NL);
	fputc('\n', f);
}

typedef void on_reply(const struct proto_reply *r, void *arg);

/* Sends argv, hands every frame to fn, returns droverd's status. */
static int request(int argc, char **argv, on_reply *fn, void *arg)
{
	struct buf out = { 0 }, in = { 0 };
	int fd = connect_daemon(), status = EXIT_FAILED;
	size_t size;

	if (!proto_encode_request(&out, argc, argv))
		usage_error("%s", "request too large");
	if (!send_all(fd, out.data, out.len))
		shutdown(fd, SHUT_WR);
	while (read_frame(fd, &in, &size)) {
		struct arena a = { 0 };
		struct proto_reply r;
		const char *err = proto_decode_reply(in.data, size, &a, &r);

		if (err) {
			fprintf(stderr, "drover: droverd sent a malformed reply: %s\n", err);
			exit(EXIT_FAILED);
		}
		if (r.status != 0)
			print_line(stderr, "drover: ", r.message);
		else
			fn(&r, arg);
		status = r.status ? EXIT_FAILED : EXIT_OK;
		buf_consume(&in, size);
		arena_free(&a);
		if (r.kind == PK_REPLY) {
			close(fd);
			buf_free(&out);
			buf_free(&in);
			return status;
		}
	}
	fprintf(stderr, "drover: droverd closed the connection without answering\n");
	exit(EXIT_NODAEMON);
}

static void print_message(const struct proto_reply *r, void *arg)
{
	(void)arg;
	if (r->message && *r->message)
		print_line(stdout, "", r->message);
}

static void print_nothing(const struct proto_reply *r, void *arg)
{
	(void)r;
	(void)arg;
}

static void print_status(const struct proto_reply *r, void *arg)
{
	if (*(bool *)arg)
		render_json(stdout, r);
	else
		render_status_table(stdout, r);
}

static int cmd_status(int argc, char **argv)
{
	char *args[PROTO_ARGS_MAX] = { "status" };
	int n = 1;
	bool json = false;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (argv[i][0] == '-')
			usage_error("status: unknown option %s", argv[i]);
		else if (n < PROTO_ARGS_MAX)
			args[n++] = argv[i];
	}
	return request(n, args, print_status, &json);
}

/* start/stop/restart NAME... [--no-wait] */
static int cmd_change(int argc, char **argv)
{
	char *args[PROTO_ARGS_MAX] = { argv[0] };
	int n = 1, names = 0;

	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--no-wait") == 0)
			args[n++] = argv[i];
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-wait") == 0)
			continue;
		if (argv[i][0] == '-')
			usage_error("unknown option %s", argv[i]);
		if (n < PROTO_ARGS_MAX)
			args[n++] = argv[i];
		names++;
	}
	if (!names)
		usage_error("%s: which service?", argv[0]);
	return request(n, args, print_nothing, NULL);
}

static void print_reload(const struct proto_reply *r, void *arg)
{
	(void)arg;
	print_line(stdout, "", r->message);
	render_changes(stdout, r);
}

static void print_plan(const struct proto_reply *r, void *arg)
{
	if (*(bool *)arg)
		render_plan_json(stdout, r);
	else
		render_plan(stdout, r);
}

/* reload [NAME] | reload --dry-run [--json] */
static int cmd_reload(int argc, char **argv)
{
	char *name = NULL, *args[] = { "reload", "--dry-run" };
	bool dry = false, json = false;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dry-run") == 0)
			dry = true;
		else if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (argv[i][0] == '-')
			usage_error("reload: unknown option %s", argv[i]);
		else if (name)
			usage_error("%s", "reload takes at most one service name");
		else
			name = argv[i];
	}
	if (json && !dry)
		usage_error("%s", "reload: --json goes with --dry-run");
	if (dry && name)
		usage_error("reload: --dry-run plans a reload of the whole configuration, not of %s", name);
	if (dry)
		return request(2, args, print_plan, &json);
	args[1] = name;
	return request(name ? 2 : 1, args, name ? print_message : print_reload, NULL);
}

static int cmd_signal(int argc, char **argv)
{
	int sig;

	if (argc != 3)
		usage_error("%s", "usage: signal NAME SIGNAL");
	if (value_signal(argv[2], &sig))
		usage_error("signal: \"%s\" is not a signal (use a name like TERM, HUP, USR1, or a number)",
			    argv[2]);
	return request(argc, argv, print_nothing, NULL);
}

static int cmd_check(int argc, char **argv)
{
	const char *path = CONF_DEFAULT_PATH;
	struct conf_errors errs = { 0 };
	struct conf *c;
	int opt;

	optind = 1;
	opterr = 0;	/* our messages, not getopt's ("check: invalid option") */
	while ((opt = getopt(argc, argv, "+:c:")) != -1) {
		if (opt == ':')
			usage_error("%s", "check: -c needs a configuration file");
		if (opt != 'c')
			usage_error("check: unknown option %s", argv[optind - 1]);
		path = optarg;
	}
	if (optind != argc)
		usage_error("check: unexpected argument %s", argv[optind]);
	c = conf_load(path, geteuid() == 0, &errs);
	for (int i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	if (!c) {
		fprintf(stderr, "%s: %d error%s\n", path, errs.n, errs.n == 1 ? "" : "s");
		conf_errors_free(&errs);
		return EXIT_FAILED;
	}
	printf("%s: configuration is valid (%d service%s)\n", path, c->nsvcs, c->nsvcs == 1 ? "" : "s");
	conf_free(c);
	return EXIT_OK;
}

static void print_logs(const struct proto_reply *r, void *arg)
{
	if (r->message && *r->message && r->nrec == 0)
		print_line(stderr, "drover: ", r->message);
	render_log_lines(stdout, r, arg);
}

static int cmd_logs(int argc, char **argv)
{
	char *name = NULL, lines[16] = "50", *args[4];
	bool follow = false;
	unsigned n;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--follow") == 0) {
			follow = true;
		} else if (strcmp(argv[i], "-n") == 0) {
			if (++i == argc || value_uint(argv[i], 1000000, &n))
				usage_error("%s", "logs: -n needs a number of lines");
			snprintf(lines, sizeof(lines), "%u", n);
		} else if (argv[i][0] == '-' || name) {
			usage_error("logs: unexpected argument %s", argv[i]);
		} else {
			name = argv[i];
		}
	}
	if (!name)
		usage_error("%s", "logs: which service?");
	args[0] = "logs";
	args[1] = name;
	args[2] = lines;
	args[3] = follow ? "yes" : "no";
	return request(4, args, print_logs, name);
}

static void print_deps(const struct proto_reply *r, void *arg)
{
	render_deps(stdout, r, *(bool *)arg);
}

static int cmd_deps(int argc, char **argv)
{
	bool dot = false;
	char *args[] = { "deps" };

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dot") != 0)
			usage_error("deps: unexpected argument %s", argv[i]);
		dot = true;
	}
	return request(1, args, print_deps, &dot);
}

static int cmd_wait(int argc, char **argv)
{
	char *name = NULL, *timeout = "0", *args[3];
	int64_t ms;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--timeout") == 0 || strcmp(argv[i], "-t") == 0) {
			if (++i == argc || value_duration(argv[i], &ms))
				usage_error("%s", "wait: --timeout needs a duration (like 30s, 500ms, 2m)");
			timeout = argv[i];
		} else if (argv[i][0] == '-' || name) {
			usage_error("wait: unexpected argument %s", argv[i]);
		} else {
			name = argv[i];
		}
	}
	if (!name)
		usage_error("%s", "wait: which service?");
	args[0] = "wait";
	args[1] = name;
	args[2] = timeout;
	return request(3, args, print_nothing, NULL);
}

static int cmd_plain(int argc, char **argv)
{
	if (argc != 1)
		usage_error("%s takes no arguments", argv[0]);
	return request(argc, argv, print_message, NULL);
}

static int cmd_upgrade(int argc, char **argv)
{
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--handover") != 0))
		usage_error("%s", "usage: upgrade [--handover]");
	return request(argc, argv, print_message, NULL);
}

static void print_version(const struct proto_reply *r, void *arg)
{
	(void)arg;
	printf("drover %s\n", DROVER_VERSION);
	print_line(stdout, "", r->message);
}

static int cmd_version(int argc, char **argv)
{
	if (argc != 1)
		usage_error("%s takes no arguments", argv[0]);
	return request(argc, argv, print_version, NULL);
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} commands[] = {
	{ "status", cmd_status }, { "start", cmd_change }, { "stop", cmd_change },
	{ "restart", cmd_change }, { "reload", cmd_reload }, { "signal", cmd_signal },
	{ "check", cmd_check }, { "logs", cmd_logs }, { "deps", cmd_deps }, { "wait", cmd_wait },
	{ "shutdown", cmd_plain }, { "version", cmd_version }, { "upgrade", cmd_upgrade },
};

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' }, { "socket", required_argument, NULL, 'S' },
		{ "version", no_argument, NULL, 'V' }, { 0 },
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "+S:h", longopts, NULL)) != -1) {
		if (opt == 'S') {
			sock_opt = optarg;
		} else if (opt == 'V') {
			printf("drover %s\n", DROVER_VERSION);
			return EXIT_OK;
		} else if (opt == 'h') {
			fputs(usage_text, stdout);
			return EXIT_OK;
		} else {
			fputs(usage_text, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind == argc)
		usage_error("%s", "which command?");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			return commands[i].fn(argc - optind, argv + optind);
	usage_error("unknown command \"%s\"", argv[optind]);
}
