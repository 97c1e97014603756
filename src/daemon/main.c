/* main.c - droverd: arguments and start-up.
 *
 * Before the loop runs, any problem is fatal with a message and exit 1
 * (usage errors: 2). Once it runs, droverd does not exit on a runtime
 * error: it logs, fails or throttles the one service, and goes on. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "deps.h"
#include "droverd.h"
#include "launch.h"
#include "log.h"
#include "notify.h"
#include "reap.h"
#include "reload.h"
#include "sdnotify.h"
#include "service.h"
#include "sig.h"
#include "svclog.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: droverd [-c FILE] [-S SOCKET] [-t] [-v] [--version] [--help]\n"
		"  -c FILE     configuration file (default %s)\n"
		"  -S SOCKET   control socket path (overrides the configuration)\n"
		"  -t          check the configuration, print every problem, exit 0 if valid, 1 if not\n"
		"  -v          log debug messages too\n",
		CONF_DEFAULT_PATH);
}

static const char *default_control(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (geteuid() == 0)
		return "/run/drover/control.sock";
	if (!xdg || xdg[0] != '/')
		fatal("no control socket: give -S SOCKET or `control =`, or set XDG_RUNTIME_DIR");
	snprintf(buf, len, "%s/drover/control.sock", xdg);
	return buf;
}

static struct conf *load_or_die(bool check_only)
{
	struct conf_errors errs = { 0 };
	struct conf *c = conf_load(droverd_conf_path(), geteuid() == 0, &errs);

	for (int i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	if (!c) {
		fprintf(stderr, "droverd: %s: %d error%s\n", droverd_conf_path(), errs.n, errs.n == 1 ? "" : "s");
		conf_errors_free(&errs);
		exit(1);
	}
	conf_errors_free(&errs);
	if (check_only) {
		printf("%s: configuration is valid (%d service%s)\n", droverd_conf_path(), c->nsvcs,
		       c->nsvcs == 1 ? "" : "s");
		conf_free(c);
		exit(0);
	}
	return c;
}

/* droverd may hold many descriptors (pipes, pidfds, listeners): raise its
 * own soft limit to the hard one; its children get the original back. */
static struct rlimit raise_nofile(void)
{
	struct rlimit orig, raised;

	getrlimit(RLIMIT_NOFILE, &orig);
	raised = orig;
	raised.rlim_cur = orig.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &raised) < 0)
		log_warn("cannot raise the open files limit: %s", strerror(errno));
	return orig;
}

static void setup(const char *control_override)
{
	struct conf *current = droverd_conf();
	char err[512], def[256];
	struct rlimit nofile;
	const char *control;
	int devnull;

	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("cannot become a child subreaper: %s; orphans of services go to init",
			 strerror(errno));
	nofile = raise_nofile();
	if ((devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
		fatal("cannot open /dev/null: %s", strerror(errno));
	launch_init(&nofile, devnull);
	if (loop_init() < 0 || sig_init(-1, droverd_on_signal) < 0)
		fatal("cannot set up the event loop: %s", strerror(errno));
	if (log_configure(current->log, current->log_path, err, sizeof(err)) < 0)
		fatal("%s", err);
	if (notify_open(-1) < 0)
		fatal("cannot create the notification socket: %s", strerror(errno));
	control = control_override ? control_override
		: current->control ? current->control : default_control(def, sizeof(def));
	if (control_open(control, current->control_group != NULL, current->control_gid, -1, err,
			 sizeof(err)) < 0)
		fatal("%s", err);
	sdnotify_init();
}

static void start_services(void)
{
	struct conf *current = droverd_conf();

	for (int i = 0; i < current->nsvcs; i++)
		if (!svc_new(current->svcs[i], current))
			fatal("out of memory");
	for (struct service *s = services; s; s = s->next)
		if (s->conf->start != START_MANUAL)	/* demand: armed, waiting */
			deps_pull_up(s);
	svc_schedule();
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' }, { "version", no_argument, NULL, 'V' }, { 0 },
	};
	const char *control_override = NULL;
	struct conf *current;
	bool check_only = false;
	int opt;

	while ((opt = getopt_long(argc, argv, "c:S:tvh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': droverd_set_conf_path(optarg); break;
		case 'S': control_override = optarg; break;
		case 't': check_only = true; break;
		case 'v': log_set_verbose(true); break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("droverd %s\n", DROVER_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "droverd: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	log_init();
	current = load_or_die(check_only);
	droverd_set_conf(current);
	setup(control_override);
	log_info("droverd %s started (pid %d), %d services from %s, control socket %s",
		 DROVER_VERSION, (int)getpid(), current->nsvcs, droverd_conf_path(), control_path());
	start_services();
	loop_set_idle(svc_evaluate_all);
	loop_run();
	reap_all_before_exit();
	log_info("every process has stopped; exiting with status %d", droverd_exit_code());
	control_flush_all();
	control_close();
	return droverd_exit_code();
}
