/* main.c - droverd: arguments and start-up.
 *
 * Before the loop runs, any problem is fatal with a message and exit 1
 * (usage errors: 2). Once it runs, droverd does not exit on a runtime
 * error: it logs, fails or throttles the one service, and goes on. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "current.h"
#include "cgroup.h"
#include "control.h"
#include "control_cmd.h"
#include "deps.h"
#include "droverd.h"
#include "launch.h"
#include "handover.h"
#include "health.h"
#include "log.h"
#include "notify.h"
#include "probe.h"
#include "proc.h"
#include "reap.h"
#include "reload.h"
#include "self.h"
#include "sdnotify.h"
#include "service.h"
#include "sig.h"
#include "state.h"
#include "svclog.h"
#include "upgrade.h"

/* The composition root: what each lower layer reports goes to the layer
 * above, through tables set once here, before anything runs. */
static bool stranger_reaped(pid_t pid, int status)
{
	return upgrade_reaped(pid, status) || handover_reaped(pid, status);
}

static void client_closed(struct conn *c)
{
	upgrade_forget_client(c);
	handover_forget_client(c);
}

static void critical_ended(int code)
{
	droverd_shutdown(false, code);
}

static void wire(void)
{
	static const struct proc_events proc_ev = { .gone = svc_procs_gone, .note = svc_note };
	static const struct reap_events reap_ev = { .exited = svc_proc_exited, .stranger = stranger_reaped };
	static const struct notify_events notify_ev = { .message = svc_notify };
	static const struct control_events control_ev = {
		.request = control_dispatch, .closed = client_closed, .released = droverd_trim_memory,
	};
	static const struct probe_events probe_ev = { .done = health_probe_done };
	static const struct svc_events svc_ev = { .critical_ended = critical_ended,
						  .settled = droverd_after_evaluation };

	proc_set_events(&proc_ev);
	reap_set_events(&reap_ev);
	notify_set_events(&notify_ev);
	control_set_events(&control_ev);
	svc_set_events(&svc_ev);
	probe_set_events(&probe_ev);
}

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

static struct conf *load_or_die(bool check_only);

/* `droverd -t` run by an upgrade, with the state it would take over: in
 * place, the state carries the configuration in force, which must read
 * again here and agree with the state; the disk is not looked at. For a
 * handover (no configuration in the state), the one on disk. */
static _Noreturn void check_takeover(const char *fdtext)
{
	struct state st;
	struct conf *c;
	char err[512];

	if (state_read(atoi(fdtext), &st, err, sizeof(err)) < 0) {
		fprintf(stderr, "droverd: cannot take over the running state: %s\n", err);
		exit(1);
	}
	if (!(c = st.conf_path ? state_conf(&st, err, sizeof(err)) : load_or_die(false)) ||
	    state_check(&st, c, err, sizeof(err)) < 0) {
		fprintf(stderr, "droverd: cannot take over the running state: %s\n", err);
		conf_free(c);
		state_free(&st);
		exit(1);
	}
	printf("%s: configuration is valid (%d service%s)%s\n", c->path, c->nsvcs, c->nsvcs == 1 ? "" : "s",
	       st.conf_path ? ", as the state carries it" : "");
	conf_free(c);
	state_free(&st);
	exit(0);
}

static struct conf *load_or_die(bool check_only)
{
	struct conf_errors errs = { 0 };
	struct conf *c = conf_load(current_path(), geteuid() == 0, &errs);

	for (int i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	if (!c) {
		fprintf(stderr, "droverd: %s: %d error%s\n", current_path(), errs.n, errs.n == 1 ? "" : "s");
		conf_errors_free(&errs);
		exit(1);
	}
	conf_errors_free(&errs);
	if (check_only) {
		char err[PATH_MAX + 160];

		if (log_check(c->log, c->log_path, err, sizeof(err)) < 0) {
			fprintf(stderr, "droverd: %s\n", err);
			exit(1);
		}
		printf("%s: configuration is valid (%d service%s)\n", current_path(), c->nsvcs,
		       c->nsvcs == 1 ? "" : "s");
		conf_free(c);
		exit(0);
	}
	return c;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' }, { "version", no_argument, NULL, 'V' }, { 0 },
	};
	const char *control_override = NULL, *check_state;
	struct conf *current;
	bool check_only = false;
	int opt;

	wire();
	self_init(argc, argv);
	while ((opt = getopt_long(argc, argv, "c:S:tvh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': current_set_path(optarg); break;
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
	if (check_only && (check_state = getenv("DROVER_CHECK_STATE_FD")))
		check_takeover(check_state);
	if (!check_only && handover_takeover(control_override)) {
		/* started by an old droverd: it waits for our services */
	} else if (!check_only && upgrade_takeover(control_override)) {
		upgrade_report();
	} else {
		current = load_or_die(check_only);
		current_set(current);
		droverd_start(control_override, NULL);
		droverd_trim_memory();	/* the parser's working memory */
		log_info("droverd %s started (pid %d), %d services from %s, control socket %s",
			 DROVER_VERSION, (int)getpid(), current->nsvcs, current_path(), control_path());
	}
	loop_set_idle(svc_evaluate_all);
	loop_run();
	handover_old_exiting();
	reap_all_before_exit(handover_peer());
	cgroup_finish();
	log_info("every process has stopped; exiting with status %d", droverd_exit_code());
	control_flush_all();
	control_close();
	return droverd_exit_code();
}
