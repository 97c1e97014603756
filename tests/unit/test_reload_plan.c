/* test_reload_plan.c - what a reload decides from two configurations
 * (reload_plan.h): services added, removed, replaced (and the keys that
 * differ), updated live, unchanged; start changes; pools that roll;
 * listeners kept, opened, closed; global settings; the plan's order.
 *
 * Each test writes configurations to a fresh temporary directory (also
 * the current directory), loads them with conf_load() and plans the
 * reload from the first to the second. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reload_plan.h"

/* ---- fixture ---- */

struct fx {
	char dir[64];
	int oldcwd;
	struct conf *old, *new;
	struct reload_plan *p;
	char text[4096];	/* describe()'s result */
};

/* As root, under /run/drover-tests (root's, 0755), as test_conf.c does. */
static const char *temp_base(void)
{
	static const char base[] = "/run/drover-tests";

	if (geteuid() != 0)
		return "/tmp";
	if ((mkdir(base, 0755) < 0 && errno != EEXIST) || chown(base, 0, 0) < 0 || chmod(base, 0755) < 0)
		return "/tmp";
	return base;
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/drover-plan-XXXXXX", temp_base());
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

static void fx_clear(struct fx *f)
{
	reload_plan_free(f->p);
	conf_free(f->old);
	conf_free(f->new);
	f->p = NULL;
	f->old = f->new = NULL;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	fx_clear(f);
	if (fchdir(f->oldcwd) < 0)
		return -1;
	close(f->oldcwd);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	size_t n = strlen(text);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	close(fd);
}

static struct conf *load(const char *text)
{
	struct conf_errors e = { 0 };
	struct conf *c;

	write_file("drover.conf", text);
	c = conf_load("drover.conf", false, &e);
	for (int i = 0; i < e.n; i++)
		print_message("  error: %s\n", e.msg[i]);
	conf_errors_free(&e);
	assert_non_null(c);
	return c;
}

/* ---- the plan in words ---- */

static void put(struct fx *f, size_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void put(struct fx *f, size_t *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	*n += (size_t)vsnprintf(f->text + *n, sizeof(f->text) - *n, fmt, ap);
	va_end(ap);
	assert_true(*n < sizeof(f->text));
}

/* "NAME ACTION [KEY,KEY] up rolls; ..." in the plan's order, with the keys
 * that differ, whether it is pulled up and whether it rolls. */
static const char *describe(struct fx *f)
{
	size_t n = 0;

	f->text[0] = '\0';
	for (int i = 0; i < f->p->nsvcs; i++) {
		const struct reload_plan_svc *e = &f->p->svcs[i];
		const char *sep = " [";

		put(f, &n, "%s%s %s", i ? "; " : "", e->name, reload_plan_word(e->action));
		for (int k = 0; k < 64; k++)
			if (e->keys & ((uint64_t)1 << k)) {
				put(f, &n, "%s%s", sep, conf_diff_key(k));
				sep = ",";
			}
		put(f, &n, "%s%s%s", *sep == ',' ? "]" : "", e->pull_up ? " up" : "", e->rolls ? " rolls" : "");
	}
	return f->text;
}

/* "NAME: keep TEXT, keep TEXT (from X, relisten), open TEXT, close TEXT; ..."
 * for the services that have listeners. */
static const char *describe_listeners(struct fx *f)
{
	static const char *const what[] = { "keep", "open", "close" };
	size_t n = 0;

	f->text[0] = '\0';
	for (int i = 0; i < f->p->nsvcs; i++) {
		const struct reload_plan_svc *e = &f->p->svcs[i];

		if (!e->nlis)
			continue;
		put(f, &n, "%s%s:", n ? "; " : "", e->name);
		for (int j = e->lis; j < e->lis + e->nlis; j++) {
			const struct reload_plan_listener *l = &f->p->lis[j];

			put(f, &n, "%s %s %s", j > e->lis ? "," : "", what[l->what], l->conf->text);
			if (l->from || l->relisten)
				put(f, &n, " (%s%s%s)", l->from ? "from " : "", l->from ? l->from : "",
				    l->relisten ? (l->from ? ", relisten" : "relisten") : "");
		}
	}
	return f->text;
}

static struct reload_plan *plan(struct fx *f, const char *old, const char *new)
{
	fx_clear(f);
	f->old = load(old);
	f->new = load(new);
	f->p = reload_plan_make(f->old, f->old->svcs, f->old->nsvcs, f->new);
	assert_non_null(f->p);
	return f->p;
}

static void expect_plan(struct fx *f, const char *old, const char *new, const char *want)
{
	plan(f, old, new);
	assert_string_equal(describe(f), want);
}

static void expect_counts(const struct reload_plan *p, int add, int rm, int rep, int live, int keep)
{
	assert_int_equal(p->count[PLAN_ADD], add);
	assert_int_equal(p->count[PLAN_REMOVE], rm);
	assert_int_equal(p->count[PLAN_REPLACE], rep);
	assert_int_equal(p->count[PLAN_LIVE], live);
	assert_int_equal(p->count[PLAN_KEEP], keep);
}

/* ---- tests ---- */

static void test_added(void **state)
{
	struct fx *f = *state;

	expect_plan(f, "[service a]\ncommand = /bin/a\n",
		    "[service a]\ncommand = /bin/a\n"
		    "[service b]\ncommand = /bin/b\n"
		    "[service c]\ncommand = /bin/c\nstart = manual\n"
		    "[service d]\ncommand = /bin/d\nlisten = tcp:127.0.0.1:9100\nstart = demand\n",
		    "a unchanged; b added up; c added; d added up");
	expect_counts(f->p, 3, 0, 0, 0, 1);
	assert_null(f->p->svcs[1].old);
	assert_int_equal(f->p->svcs[1].old_index, -1);
	assert_ptr_equal(f->p->svcs[1].new, conf_find(f->new, "b"));
}

static void test_removed(void **state)
{
	struct fx *f = *state;

	expect_plan(f, "[service a]\ncommand = /bin/a\n[service b]\ncommand = /bin/b\n[service c]\ncommand = /bin/c\n",
		    "[service b]\ncommand = /bin/b\n",
		    "a removed; c removed; b unchanged");
	expect_counts(f->p, 0, 2, 0, 0, 1);
	assert_null(f->p->svcs[1].new);
	assert_int_equal(f->p->svcs[1].old_index, 2);
	assert_int_equal(f->p->svcs[2].old_index, 1);
	/* Everything removed: an empty configuration. */
	expect_plan(f, "[service a]\ncommand = /bin/a\n", "# nothing\n", "a removed");
}

static void test_unchanged(void **state)
{
	struct fx *f = *state;
	static const char a[] = "[service s]\ncommand = /bin/s --x\nprocs = 2\nmode = prefork\n"
				"listen = tcp:127.0.0.1:9100\nenv = A=1\nenv = B=2\n";

	expect_plan(f, a, a, "s unchanged");
	expect_counts(f->p, 0, 0, 0, 0, 1);
	/* Comments, blank lines, spacing and the order of keys do not matter. */
	expect_plan(f, a,
		    "# moved around\n\n[service s]\nenv = A=1\nmode   =   prefork\nlisten = tcp:127.0.0.1:9100\n"
		    "procs = 2\ncommand = /bin/s --x\n\nenv = B=2\n",
		    "s unchanged");
	assert_int_equal(f->p->svcs[0].keys, 0);
}

/* Every process key: replaced, with exactly that key listed. */
static void test_replaced_by_a_process_key(void **state)
{
	struct fx *f = *state;
	static const char base[] = "[service s]\ncommand = /bin/s\nuser = daemon\nenv = A=1\n";
	static const struct {
		const char *line, *want;
	} cases[] = {
		{ "command = /bin/s --other", "s replaced [command]" },
		{ "env = A=2", "s replaced [env]" },
		{ "user = bin", "s replaced [user]" },
		{ "group = bin", "s replaced [group]" },
		{ "chdir = /tmp", "s replaced [chdir]" },
		{ "umask = 027", "s replaced [umask]" },
		{ "limit_nofile = 2048", "s replaced [limit_nofile]" },
		{ "env_inherit = yes", "s replaced [env_inherit]" },
		{ "no_new_privs = yes", "s replaced [no_new_privs]" },
		{ "mode = oneshot", "s replaced [mode]" },
		{ "listen = tcp:127.0.0.1:9100", "s replaced [listen]" },
		{ "memory_max = 64M", "s replaced [memory_max]" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[512];
		const char *key = cases[i].line;
		size_t kl = strcspn(key, " ");

		/* The line replaces the base's line of the same key, if any. */
		if (strncmp(key, "command", kl) == 0)
			snprintf(text, sizeof(text), "[service s]\n%s\nuser = daemon\nenv = A=1\n", key);
		else if (strncmp(key, "env", kl) == 0)
			snprintf(text, sizeof(text), "[service s]\ncommand = /bin/s\nuser = daemon\n%s\n", key);
		else if (strncmp(key, "user", kl) == 0)
			snprintf(text, sizeof(text), "[service s]\ncommand = /bin/s\n%s\nenv = A=1\n", key);
		else
			snprintf(text, sizeof(text), "%s%s\n", base, key);
		plan(f, base, text);
		if (strcmp(describe(f), cases[i].want) != 0)
			fail_msg("\"%s\": got \"%s\", want \"%s\"", key, f->text, cases[i].want);
		expect_counts(f->p, 0, 0, 1, 0, 0);
	}
}

/* Every supervision key: updated live, with exactly that key listed. */
static void test_live_by_a_supervision_key(void **state)
{
	struct fx *f = *state;
	static const char base[] = "[service dep]\ncommand = /bin/dep\n"
				   "[service s]\nmode = prefork\ncommand = /bin/s\nlisten = tcp:127.0.0.1:9100\n"
				   "procs = 2\nmax_procs = 8\nrestart_delay = 100ms\nstop_timeout = 10s\n";
	static const struct {
		const char *from, *to, *want;
	} cases[] = {
		{ "procs = 2", "procs = 3", "dep unchanged; s updated [procs]" },
		{ "max_procs = 8", "max_procs = 9", "dep unchanged; s updated [max_procs]" },
		{ "restart_delay = 100ms", "restart_delay = 200ms", "dep unchanged; s updated [restart_delay]" },
		/* As written: the same duration in other words is a change. */
		{ "stop_timeout = 10s", "stop_timeout = 10000ms", "dep unchanged; s updated [stop_timeout]" },
		{ "stop_timeout = 10s", "stop_timeout = 10s\nrequires = dep", "dep unchanged; s updated [requires]" },
		{ "stop_timeout = 10s", "stop_timeout = 10s\nrestart = on-failure", "dep unchanged; s updated [restart]" },
		{ "stop_timeout = 10s", "stop_timeout = 10s\nstop_signal = INT", "dep unchanged; s updated [stop_signal]" },
		{ "stop_timeout = 10s", "stop_timeout = 10s\ncritical = yes", "dep unchanged; s updated [critical]" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[512];
		const char *at = strstr(base, cases[i].from);

		assert_non_null(at);
		snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - base), base, cases[i].to,
			 at + strlen(cases[i].from));
		plan(f, base, text);
		if (strcmp(describe(f), cases[i].want) != 0)
			fail_msg("\"%s\": got \"%s\", want \"%s\"", cases[i].to, f->text, cases[i].want);
		expect_counts(f->p, 0, 0, 0, 1, 1);
	}
}

/* Every key that differs is listed, process and supervision keys alike,
 * in the order of the key table (drover.conf(5)). */
static void test_keys_that_differ_exact(void **state)
{
	struct fx *f = *state;

	expect_plan(f, "[service s]\nmode = prefork\ncommand = /bin/s\nlisten = tcp:127.0.0.1:9100\n"
		       "procs = 2\nenv = A=1\nrestart_delay = 1s\n",
		    "[service s]\nmode = prefork\ncommand = /bin/s --new\nlisten = tcp:127.0.0.1:9100\n"
		    "procs = 4\nenv = A=1\nenv = B=1\nstop_timeout = 3s\n",
		    "s replaced [command,procs,restart_delay,stop_timeout,env] rolls");
	/* A key removed counts as well as a key added. */
	expect_plan(f, "[service s]\ncommand = /bin/s\nchdir = /tmp\n", "[service s]\ncommand = /bin/s\n",
		    "s replaced [chdir]");
}

/* config_files: the same text, another content, is a replacement. */
static void test_config_files_content(void **state)
{
	struct fx *f = *state;
	static const char text[] = "[service s]\ncommand = /bin/s\nconfig_files = cf.txt\n";

	write_file("cf.txt", "v1\n");
	expect_plan(f, text, text, "s unchanged");
	fx_clear(f);
	f->old = load(text);
	write_file("cf.txt", "v2\n");
	f->new = load(text);
	f->p = reload_plan_make(f->old, f->old->svcs, f->old->nsvcs, f->new);
	assert_non_null(f->p);
	assert_string_equal(describe(f), "s replaced [config_files]");
	expect_counts(f->p, 0, 0, 1, 0, 0);
}

/* The same user name, another uid (the user database changed): "user". */
static void test_credentials_resolved_anew(void **state)
{
	struct fx *f = *state;
	static const char text[] = "[service s]\ncommand = /bin/s\nuser = daemon\n";
	struct conf_errors e = { 0 };
	struct conf_fact *facts;
	int changed = 0;

	fx_clear(f);
	f->old = load(text);
	facts = malloc(sizeof(*facts) * (size_t)f->old->nfacts);
	assert_non_null(facts);
	memcpy(facts, f->old->facts, sizeof(*facts) * (size_t)f->old->nfacts);
	for (int i = 0; i < f->old->nfacts; i++)
		if (facts[i].kind == FACT_USER && strcmp(facts[i].key, "daemon") == 0) {
			facts[i].v[1] += 1000;
			changed++;
		}
	assert_int_equal(changed, 1);
	f->new = conf_replay("drover.conf", facts, f->old->nfacts, &e);
	free(facts);
	conf_errors_free(&e);
	assert_non_null(f->new);
	f->p = reload_plan_make(f->old, f->old->svcs, f->old->nsvcs, f->new);
	assert_non_null(f->p);
	assert_string_equal(describe(f), "s replaced [user]");
}

static void test_start_changes(void **state)
{
	struct fx *f = *state;

	expect_plan(f, "[service s]\ncommand = /bin/s\nstart = manual\n", "[service s]\ncommand = /bin/s\n",
		    "s updated [start] up");
	assert_true(f->p->svcs[0].start_changed);
	expect_plan(f, "[service s]\ncommand = /bin/s\n", "[service s]\ncommand = /bin/s\nstart = manual\n",
		    "s updated [start]");
	assert_true(f->p->svcs[0].start_changed);
	expect_plan(f, "[service s]\ncommand = /bin/s\nlisten = tcp:127.0.0.1:9100\nstart = demand\n",
		    "[service s]\ncommand = /bin/s\nlisten = tcp:127.0.0.1:9100\nstart = auto\n",
		    "s updated [start] up");
	/* Written differently, the same value: listed, not a start change. */
	expect_plan(f, "[service s]\ncommand = /bin/s\n", "[service s]\ncommand = /bin/s\nstart = auto\n",
		    "s updated [start]");
	assert_false(f->p->svcs[0].start_changed);
}

/* A replaced prefork pool rolls; a pool updated live, or a daemon, does not. */
static void test_pools_that_roll(void **state)
{
	struct fx *f = *state;
	static const char pool[] = "[service p]\nmode = prefork\ncommand = /bin/p\nlisten = tcp:127.0.0.1:9100\n";
	static const char acc[] = "[service a]\nmode = accept\ncommand = /bin/a\nlisten = tcp:127.0.0.1:9101\n";

	expect_plan(f, pool, "[service p]\nmode = prefork\ncommand = /bin/p 2\nlisten = tcp:127.0.0.1:9100\n",
		    "p replaced [command] rolls");
	expect_plan(f, pool, "[service p]\nmode = prefork\ncommand = /bin/p\nlisten = tcp:127.0.0.1:9100\nprocs = 3\n",
		    "p updated [procs]");
	expect_plan(f, acc, "[service a]\nmode = accept\ncommand = /bin/a 2\nlisten = tcp:127.0.0.1:9101\n",
		    "a replaced [command]");
	expect_plan(f, "[service d]\ncommand = /bin/d\n", "[service d]\ncommand = /bin/d 2\n",
		    "d replaced [command]");
}

static void test_globals(void **state)
{
	struct fx *f = *state;
	static const char svc[] = "[service s]\ncommand = /bin/s\n";
	char a[256], b[256];

	snprintf(a, sizeof(a), "[drover]\nlog = file:/var/log/a.log\ncontrol = /run/a.sock\n%s", svc);
	plan(f, a, a);
	assert_false(f->p->log_changed || f->p->control_changed || f->p->control_group_changed);
	snprintf(b, sizeof(b), "[drover]\nlog = file:/var/log/b.log\ncontrol = /run/a.sock\n%s", svc);
	plan(f, a, b);
	assert_true(f->p->log_changed);
	assert_false(f->p->control_changed || f->p->control_group_changed);
	snprintf(b, sizeof(b), "[drover]\nlog = syslog\ncontrol = /run/a.sock\n%s", svc);
	plan(f, a, b);
	assert_true(f->p->log_changed);
	snprintf(b, sizeof(b), "[drover]\nlog = file:/var/log/a.log\ncontrol = /run/b.sock\n%s", svc);
	plan(f, a, b);
	assert_true(f->p->control_changed);
	assert_false(f->p->log_changed || f->p->control_group_changed);
	snprintf(b, sizeof(b), "[drover]\nlog = file:/var/log/a.log\n%s", svc);
	plan(f, a, b);
	assert_true(f->p->control_changed);
	plan(f, b, a);
	assert_true(f->p->control_changed);
	snprintf(b, sizeof(b), "[drover]\nlog = file:/var/log/a.log\ncontrol = /run/a.sock\ncontrol_group = daemon\n%s", svc);
	plan(f, a, b);
	assert_true(f->p->control_group_changed);
	assert_false(f->p->log_changed || f->p->control_changed);
	assert_string_equal(describe(f), "s unchanged");
}

/* Listeners: kept when interchangeable (a new backlog is listen()ed
 * again), opened when new, closed when gone; an added service takes the
 * sockets of one this reload removes (a rename). */
static void test_listeners(void **state)
{
	struct fx *f = *state;

	plan(f,
	     "[service s]\nmode = prefork\ncommand = /bin/s\nlisten = tcp:127.0.0.1:9100\n"
	     "listen = tcp:127.0.0.1:9101\nlisten = tcp:127.0.0.1:9102 backlog=10\n"
	     "[service old]\ncommand = /bin/o\nlisten = tcp:127.0.0.1:9200\nlisten = tcp:127.0.0.1:9201\n",
	     "[service new]\ncommand = /bin/o\nlisten = tcp:127.0.0.1:9201\nlisten = tcp:127.0.0.1:9202\n"
	     "[service s]\nmode = prefork\ncommand = /bin/s\nlisten = tcp:127.0.0.1:9102 backlog=20\n"
	     "listen = tcp:127.0.0.1:9100\nlisten = tcp:127.0.0.1:9103\n");
	assert_string_equal(describe(f), "old removed; new added up; s replaced [listen] rolls");
	assert_string_equal(describe_listeners(f),
			    "old: close tcp:127.0.0.1:9200; "
			    "new: keep tcp:127.0.0.1:9201 (from old), open tcp:127.0.0.1:9202; "
			    "s: keep tcp:127.0.0.1:9102 (relisten), keep tcp:127.0.0.1:9100,"
			    " open tcp:127.0.0.1:9103, close tcp:127.0.0.1:9101");
}

static void test_listeners_unchanged_and_options(void **state)
{
	struct fx *f = *state;

	/* Unchanged: every socket kept. Another option than backlog: a new
	 * socket on the same address, the old one closed. */
	plan(f, "[service u]\ncommand = /bin/u\nlisten = unix:/run/u.sock mode=0600\n"
		"[service v]\ncommand = /bin/v\nlisten = unix:/run/v.sock mode=0600\n",
	     "[service u]\ncommand = /bin/u\nlisten = unix:/run/u.sock mode=0600\n"
	     "[service v]\ncommand = /bin/v\nlisten = unix:/run/v.sock mode=0660\n");
	assert_string_equal(describe(f), "u unchanged; v replaced [listen]");
	assert_string_equal(describe_listeners(f),
			    "u: keep unix:/run/u.sock; v: open unix:/run/v.sock, close unix:/run/v.sock");
}

/* Everything at once, and the plan's order: the removed services first, in
 * the order they are in force, then the new configuration's in its own. */
static void test_mix_and_order(void **state)
{
	struct fx *f = *state;

	expect_plan(f,
		    "[service a]\ncommand = /bin/a\n"
		    "[service b]\ncommand = /bin/b\n"
		    "[service c]\ncommand = /bin/c\nrestart_delay = 1s\n"
		    "[service d]\ncommand = /bin/d\n"
		    "[service e]\ncommand = /bin/e\n",
		    "[service e]\ncommand = /bin/e --new\n"
		    "[service c]\ncommand = /bin/c\nrestart_delay = 2s\n"
		    "[service f]\ncommand = /bin/f\n"
		    "[service a]\ncommand = /bin/a\n"
		    "[service g]\ncommand = /bin/g\nstart = manual\n",
		    "b removed; d removed; e replaced [command]; c updated [restart_delay]; f added up; "
		    "a unchanged; g added");
	expect_counts(f->p, 2, 2, 1, 1, 1);
	assert_int_equal(f->p->nsvcs, 7);
	assert_int_equal(f->p->svcs[2].old_index, 4);
	assert_int_equal(f->p->svcs[3].old_index, 2);
	assert_int_equal(f->p->svcs[5].old_index, 0);
}

/* The services in force in droverd's order (a service added by an earlier
 * reload is last in its list): the removed ones follow that order. */
static void test_order_of_the_services_in_force(void **state)
{
	struct fx *f = *state;
	struct svc_conf *cur[3];

	plan(f, "[service a]\ncommand = /bin/a\n[service b]\ncommand = /bin/b\n[service c]\ncommand = /bin/c\n",
	     "[service z]\ncommand = /bin/z\n");
	reload_plan_free(f->p);
	cur[0] = conf_find(f->old, "c");
	cur[1] = conf_find(f->old, "a");
	cur[2] = conf_find(f->old, "b");
	f->p = reload_plan_make(f->old, cur, 3, f->new);
	assert_non_null(f->p);
	assert_string_equal(describe(f), "c removed; a removed; b removed; z added up");
	assert_int_equal(f->p->svcs[0].old_index, 0);
	assert_int_equal(f->p->svcs[2].old_index, 2);
	/* Matched by name wherever they are in the list given; one that the
	 * list does not have is added. */
	reload_plan_free(f->p);
	f->p = reload_plan_make(f->old, cur, 2, f->old);
	assert_non_null(f->p);
	assert_string_equal(describe(f), "a unchanged; b added up; c unchanged");
}

static void test_words(void **state)
{
	(void)state;
	assert_string_equal(reload_plan_word(PLAN_ADD), "added");
	assert_string_equal(reload_plan_word(PLAN_REMOVE), "removed");
	assert_string_equal(reload_plan_word(PLAN_REPLACE), "replaced");
	assert_string_equal(reload_plan_word(PLAN_LIVE), "updated");
	assert_string_equal(reload_plan_word(PLAN_KEEP), "unchanged");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_added),
		T(test_removed),
		T(test_unchanged),
		T(test_replaced_by_a_process_key),
		T(test_live_by_a_supervision_key),
		T(test_keys_that_differ_exact),
		T(test_config_files_content),
		T(test_credentials_resolved_anew),
		T(test_start_changes),
		T(test_pools_that_roll),
		T(test_globals),
		T(test_listeners),
		T(test_listeners_unchanged_and_options),
		T(test_mix_and_order),
		T(test_order_of_the_services_in_force),
		T(test_words),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
