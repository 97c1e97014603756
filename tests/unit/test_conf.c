/* test_conf.c - loading and validating drover.conf (conf.h): values and
 * defaults of a valid configuration, every class of error with its exact
 * text and FILE:LINE, includes, the refusal of writable files, and the
 * reload diff (conf_compare).
 *
 * Each test runs in a fresh temporary directory that is also the current
 * directory, so messages read "drover.conf:LINE: ...". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf_int.h"

/* ---- fixture ---- */

struct fx {
	char dir[64];
	int oldcwd;
	struct conf_errors errs;
	struct conf *c;
};

/* As root, the tests' directories are under /run/drover-tests, root's and
 * 0755: loading as root refuses a file below a directory others can write
 * (safepath.h), and /tmp is 1777. Anyone else uses /tmp. */
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
	snprintf(f->dir, sizeof(f->dir), "%s/drover-unit-XXXXXX", temp_base());
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

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	size_t n = strlen(text);

	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, 0644), 0);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	close(fd);
}

static void make_dir(const char *path)
{
	assert_int_equal(mkdir(path, 0755), 0);
}

static struct conf *load_file(struct fx *f, const char *path, bool as_root)
{
	conf_free(f->c);
	conf_errors_free(&f->errs);
	f->c = conf_load(path, as_root, &f->errs);
	return f->c;
}

static struct conf *load(struct fx *f, const char *text)
{
	write_file("drover.conf", text);
	return load_file(f, "drover.conf", false);
}

static void dump_errors(const struct fx *f)
{
	for (int i = 0; i < f->errs.n; i++)
		print_message("  got: %s\n", f->errs.msg[i]);
}

/* The exact list of errors, in order. */
static void expect_errors(const struct fx *f, const char *const *want)
{
	int n = 0;

	while (want[n])
		n++;
	for (int i = 0; i < n || i < f->errs.n; i++) {
		if (i < n && i < f->errs.n && strcmp(want[i], f->errs.msg[i]) == 0)
			continue;
		for (int j = 0; j < n; j++)
			print_message(" want: %s\n", want[j]);
		dump_errors(f);
		fail_msg("error %d differs: want %s, got %s", i, i < n ? want[i] : "(none)",
			 i < f->errs.n ? f->errs.msg[i] : "(none)");
	}
}

#define EXPECT_ERRORS(f, ...) expect_errors(f, (const char *const[]){ __VA_ARGS__, NULL })

/* Loads text, which must fail with exactly these errors. */
#define LOAD_FAILS(f, text, ...)						\
	do {								\
		if (load(f, text)) {					\
			fail_msg("configuration accepted");		\
		}							\
		EXPECT_ERRORS(f, __VA_ARGS__);				\
	} while (0)

static struct conf *load_ok(struct fx *f, const char *text)
{
	struct conf *c = load(f, text);

	if (!c) {
		dump_errors(f);
		fail_msg("configuration refused");
	}
	assert_int_equal(f->errs.n, 0);
	return c;
}

static struct svc_conf *svc(struct conf *c, const char *name)
{
	struct svc_conf *s = conf_find(c, name);

	if (!s)
		fail_msg("no service %s", name);
	return s;
}

static const char *raw(const struct svc_conf *s, const char *key)
{
	const struct conf_raw *r;
	int idx = -1;

	assert_non_null(conf_key_find(key, SCOPE_SERVICE, &idx));
	r = conf_raw(s, idx);
	return r ? r->text : NULL;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t x = 1469598103934665603ULL;

	for (; *s; s++)
		x = (x ^ (unsigned char)*s) * 1099511628211ULL;
	return x;
}

#define BAD_DURATION "is not a duration (use 250ms, 10s, 5m, 2h or a number of seconds)"
#define BAD_BOOL "is not a boolean (use yes/no, true/false, on/off or 1/0)"
#define BAD_SIZE "is not a size (use 512K, 10M, 1G or a number of bytes)"
#define SECTIONS "expected [drover] or [service NAME]"

/* ---- valid configurations ---- */

static const char full_conf[] =
	"# every key\n"
	"[drover]\n"
	"control = /run/drover/test.sock\n"
	"control_group = daemon\n"
	"log = file:/var/log/drover.log\n"
	"upgrade_timeout = 45s\n"
	"\n"
	"[service web]\n"
	"mode = prefork\n"
	"command = /usr/bin/web --threads 1 'a b'\n"
	"listen = http=tcp:127.0.0.1:8080 backlog=1024\n"
	"listen = tcp6:[::1]:8081\n"
	"start = demand\n"
	"procs = 4\n"
	"max_procs = 32\n"
	"idle_timeout = 2m\n"
	"max_use = 1000\n"
	"restart = on-failure\n"
	"restart_delay = 250ms\n"
	"restart_delay_max = 1m\n"
	"min_uptime = 5s\n"
	"stop_signal = QUIT\n"
	"stop_timeout = 20s\n"
	"reload_signal = SIGHUP\n"
	"ready = notify\n"
	"ready_timeout = 15s\n"
	"watchdog = 30s\n"
	"requires = db\n"
	"after = cache\n"
	"user = daemon\n"
	"group = bin\n"
	"chdir = /srv\n"
	"umask = 027\n"
	"env = A=1\n"
	"env = B=two words\n"
	"env_inherit = yes\n"
	"limit_nofile = 1024:4096\n"
	"limit_nproc = 100\n"
	"limit_core = 0\n"
	"limit_as = 1G:unlimited\n"
	"log = file:/var/log/web.log\n"
	"log_max_size = 1M\n"
	"log_keep = 3\n"
	"config_files = %s/web.ini\n"
	"config_files = /nonexistent/drover-unit.ini\n"
	"critical = yes\n"
	"\n"
	"[service db]\n"
	"command = /usr/bin/db\n"
	"\n"
	"[service cache]\n"
	"mode = accept\n"
	"command = /usr/bin/cache\n"
	"listen = unix:/run/cache.sock mode=0660\n"
	"max_rate = 10\n"
	"per_source = 2\n"
	"max_procs = 8\n"
	"\n"
	"[service job]\n"
	"mode = timer\n"
	"command = /bin/true\n"
	"every = 1h\n"
	"at = 03:00,01:30\n"
	"\n"
	"[service init]\n"
	"mode = oneshot\n"
	"command = /bin/setup\n";

static void test_full_config(void **state)
{
	struct fx *f = *state;
	struct conf *c;
	struct svc_conf *s;
	struct passwd *pw = getpwnam("daemon");
	uid_t daemon_uid = pw ? pw->pw_uid : 0;
	gid_t daemon_pgid = pw ? pw->pw_gid : 0;
	struct group *g = getgrnam("daemon");
	gid_t daemon_gid = g ? g->gr_gid : 0;
	gid_t bin_gid;
	char text[sizeof(full_conf) + 64];

	if (!pw || !g)
		skip();
	g = getgrnam("bin");
	if (!g)
		skip();
	bin_gid = g->gr_gid;
	write_file("web.ini", "x=1\n");
	snprintf(text, sizeof(text), full_conf, f->dir);
	c = load_ok(f, text);

	assert_string_equal(c->path, "drover.conf");
	assert_string_equal(c->control, "/run/drover/test.sock");
	assert_string_equal(c->control_group, "daemon");
	assert_int_equal(c->control_gid, daemon_gid);
	assert_int_equal(c->log, LOG_FILE);
	assert_string_equal(c->log_path, "/var/log/drover.log");
	assert_int_equal(c->upgrade_timeout, 45000);
	assert_int_equal(c->nsvcs, 5);
	assert_string_equal(c->svcs[0]->name, "web");
	assert_string_equal(c->svcs[1]->name, "db");
	assert_string_equal(c->svcs[2]->name, "cache");
	assert_string_equal(c->svcs[3]->name, "job");
	assert_string_equal(c->svcs[4]->name, "init");

	s = svc(c, "web");
	assert_string_equal(s->file, "drover.conf");
	assert_int_equal(s->line, 8);
	assert_int_equal(s->mode, MODE_PREFORK);
	assert_string_equal(s->command, "/usr/bin/web --threads 1 'a b'");
	assert_string_equal(raw(s, "command"), "/usr/bin/web --threads 1 'a b'");
	assert_string_equal(s->argv[0], "/usr/bin/web");
	assert_string_equal(s->argv[1], "--threads");
	assert_string_equal(s->argv[2], "1");
	assert_string_equal(s->argv[3], "a b");
	assert_null(s->argv[4]);
	assert_int_equal(s->nlisten, 2);
	assert_string_equal(s->listen[0].fdname, "http");
	assert_string_equal(s->listen[0].key, "tcp:127.0.0.1:8080 backlog=1024");
	assert_int_equal(s->listen[0].backlog, 1024);
	assert_int_equal(s->listen[0].line, 11);
	assert_null(s->listen[1].fdname);
	assert_string_equal(s->listen[1].key, "tcp6:[::1]:8081");
	assert_int_equal(s->listen[1].line, 12);
	assert_string_equal(raw(s, "listen"), "http=tcp:127.0.0.1:8080 backlog=1024\ntcp6:[::1]:8081");
	assert_int_equal(s->start, START_DEMAND);
	assert_int_equal(s->procs, 4);
	assert_int_equal(s->max_procs, 32);
	assert_int_equal(s->idle_timeout, 120000);
	assert_int_equal(s->max_use, 1000);
	assert_int_equal(s->restart, RESTART_ON_FAILURE);
	assert_int_equal(s->restart_delay, 250);
	assert_int_equal(s->restart_delay_max, 60000);
	assert_int_equal(s->min_uptime, 5000);
	assert_int_equal(s->stop_signal, SIGQUIT);
	assert_int_equal(s->stop_timeout, 20000);
	assert_int_equal(s->reload_signal, SIGHUP);
	assert_int_equal(s->ready, READY_NOTIFY);
	assert_int_equal(s->ready_timeout, 15000);
	assert_int_equal(s->watchdog, 30000);
	assert_int_equal(s->nrequires, 1);
	assert_string_equal(s->requires[0], "db");
	assert_int_equal(s->nafter, 1);
	assert_string_equal(s->after[0], "cache");
	assert_true(s->has_user);
	assert_string_equal(s->user, "daemon");
	assert_int_equal(s->uid, daemon_uid);
	assert_int_equal(s->user_gid, daemon_pgid);
	assert_true(s->has_group);
	assert_string_equal(s->group, "bin");
	assert_int_equal(s->gid, bin_gid);
	assert_true(s->ngroups >= 1);
	assert_int_equal(s->groups[0], bin_gid);
	assert_string_equal(s->chdir, "/srv");
	assert_int_equal(s->umask, 027);
	assert_int_equal(s->nenv, 2);
	assert_string_equal(s->env[0], "A=1");
	assert_string_equal(s->env[1], "B=two words");
	assert_true(s->env_inherit);
	assert_true(s->has_limit[LIM_NOFILE]);
	assert_int_equal(s->limit[LIM_NOFILE].rlim_cur, 1024);
	assert_int_equal(s->limit[LIM_NOFILE].rlim_max, 4096);
	assert_int_equal(s->limit[LIM_NPROC].rlim_cur, 100);
	assert_int_equal(s->limit[LIM_NPROC].rlim_max, 100);
	assert_true(s->has_limit[LIM_CORE]);
	assert_int_equal(s->limit[LIM_CORE].rlim_cur, 0);
	assert_int_equal(s->limit[LIM_CORE].rlim_max, 0);
	assert_int_equal(s->limit[LIM_AS].rlim_cur, 1ULL << 30);
	assert_true(s->limit[LIM_AS].rlim_max == RLIM_INFINITY);
	assert_int_equal(s->log, LOG_FILE);
	assert_string_equal(s->log_path, "/var/log/web.log");
	assert_int_equal(s->log_max_size, 1 << 20);
	assert_int_equal(s->log_keep, 3);
	assert_int_equal(s->nconfig_files, 2);
	snprintf(text, sizeof(text), "%s/web.ini", f->dir);
	assert_string_equal(s->config_files[0].path, text);
	assert_int_equal(s->config_files[0].err, 0);
	assert_true(s->config_files[0].hash == fnv1a("x=1\n"));
	assert_string_equal(s->config_files[1].path, "/nonexistent/drover-unit.ini");
	assert_int_equal(s->config_files[1].err, ENOENT);
	assert_true(s->config_files[1].hash == 0);
	assert_true(s->critical);

	s = svc(c, "cache");
	assert_int_equal(s->mode, MODE_ACCEPT);
	assert_int_equal(s->max_rate, 10);
	assert_int_equal(s->per_source, 2);
	assert_int_equal(s->max_procs, 8);
	assert_int_equal(s->restart, RESTART_NO);
	assert_string_equal(s->listen[0].key, "unix:/run/cache.sock mode=0660");

	s = svc(c, "job");
	assert_int_equal(s->mode, MODE_TIMER);
	assert_int_equal(s->every, 3600000);
	assert_int_equal(s->nat, 2);
	assert_int_equal(s->at[0], 90);
	assert_int_equal(s->at[1], 180);
	assert_int_equal(s->restart, RESTART_NO);

	s = svc(c, "init");
	assert_int_equal(s->mode, MODE_ONESHOT);
	assert_int_equal(s->restart, RESTART_NO);
	assert_int_equal(s->ready, READY_EXIT);
}

static void test_defaults(void **state)
{
	struct fx *f = *state;
	struct conf *c = load_ok(f, "[service a]\ncommand = /bin/true\n");
	struct svc_conf *s = svc(c, "a");

	assert_null(c->control);
	assert_null(c->control_group);
	assert_int_equal(c->log, LOG_STDERR);
	assert_int_equal(c->upgrade_timeout, 30000);
	assert_int_equal(c->nsvcs, 1);

	assert_int_equal(s->line, 1);
	assert_int_equal(s->mode, MODE_DAEMON);
	assert_int_equal(s->nlisten, 0);
	assert_int_equal(s->start, START_AUTO);
	assert_int_equal(s->procs, 1);
	assert_int_equal(s->max_procs, 1);
	assert_int_equal(s->idle_timeout, 60000);
	assert_int_equal(s->max_use, 0);
	assert_int_equal(s->max_rate, 0);
	assert_int_equal(s->per_source, 0);
	assert_int_equal(s->restart, RESTART_ALWAYS);
	assert_int_equal(s->restart_delay, 100);
	assert_int_equal(s->restart_delay_max, 30000);
	assert_int_equal(s->min_uptime, 10000);
	assert_int_equal(s->stop_signal, SIGTERM);
	assert_int_equal(s->stop_timeout, 10000);
	assert_int_equal(s->reload_signal, 0);
	assert_int_equal(s->ready, READY_NONE);
	assert_int_equal(s->ready_timeout, 30000);
	assert_int_equal(s->watchdog, 0);
	assert_int_equal(s->nrequires, 0);
	assert_int_equal(s->nafter, 0);
	assert_false(s->has_user);
	assert_false(s->has_group);
	assert_string_equal(s->chdir, "/");
	assert_int_equal(s->umask, 022);
	assert_int_equal(s->nenv, 0);
	assert_false(s->env_inherit);
	for (int i = 0; i < LIM_COUNT; i++)
		assert_false(s->has_limit[i]);
	assert_int_equal(s->log, LOG_INHERIT);
	assert_int_equal(s->log_max_size, 10 << 20);
	assert_int_equal(s->log_keep, 5);
	assert_int_equal(s->nconfig_files, 0);
	assert_false(s->critical);
	assert_string_equal(raw(s, "command"), "/bin/true");
	assert_null(raw(s, "procs"));
}

/* config_files naming something that is not a regular file: hashing
 * /dev/zero never ended (droverd hung at start or reload). Such a file is
 * an error, never read; alarm() turns a hang into a failure. */
static void test_config_files_not_regular(void **state)
{
	struct fx *f = *state;

	assert_int_equal(mkfifo("fifo", 0600), 0);
	make_dir("dir");
	alarm(10);
	LOAD_FAILS(f, "[service a]\ncommand = /bin/true\n"
		      "config_files = /dev/zero\nconfig_files = fifo\nconfig_files = dir\n",
		   "drover.conf:3: bad config_files in [service a]: \"/dev/zero\" is not a regular file",
		   "drover.conf:4: bad config_files in [service a]: \"fifo\" is not a regular file",
		   "drover.conf:5: bad config_files in [service a]: \"dir\" is not a regular file");
	alarm(0);
}

static void test_mode_defaults(void **state)
{
	struct fx *f = *state;
	struct conf *c = load_ok(f,
		"[service once]\nmode = oneshot\ncommand = /bin/true\n"
		"[service once2]\nmode = oneshot\ncommand = /bin/true\nrestart = on-failure\nready = none\n"
		"[service pool]\nmode = prefork\ncommand = /bin/true\nlisten = tcp:127.0.0.1:9000\nprocs = 4\n"
		"[service acc]\nmode = accept\ncommand = /bin/true\nlisten = tcp:127.0.0.1:9001\n"
		"[service tick]\nmode = timer\ncommand = /bin/true\nat = 04:00\n");

	assert_int_equal(svc(c, "once")->restart, RESTART_NO);
	assert_int_equal(svc(c, "once")->ready, READY_EXIT);
	assert_int_equal(svc(c, "once2")->restart, RESTART_ON_FAILURE);
	assert_int_equal(svc(c, "once2")->ready, READY_NONE);
	assert_int_equal(svc(c, "pool")->procs, 4);
	assert_int_equal(svc(c, "pool")->max_procs, 4);
	assert_int_equal(svc(c, "pool")->restart, RESTART_ALWAYS);
	assert_int_equal(svc(c, "acc")->max_procs, 64);
	assert_int_equal(svc(c, "acc")->restart, RESTART_NO);
	assert_int_equal(svc(c, "tick")->restart, RESTART_NO);
	assert_int_equal(svc(c, "tick")->every, 0);
	assert_int_equal(svc(c, "tick")->nat, 1);
}

static void test_syntax_variants(void **state)
{
	struct fx *f = *state;
	struct conf *c = load_ok(f,
		"# comment\r\n"
		"; another comment\r\n"
		"   # indented comment\r\n"
		"\r\n"
		"[ drover ]\r\n"
		"\tupgrade_timeout\t=\t5s \t\r\n"
		"[service   a.b@c-d_1 ]\r\n"
		"  command   =   echo #not a comment ; nor this  \r\n"
		"env=EMPTY=\r\n"
		"env = X==y\r\n");
	struct svc_conf *s = svc(c, "a.b@c-d_1");

	assert_int_equal(c->upgrade_timeout, 5000);
	assert_string_equal(s->command, "echo #not a comment ; nor this");
	assert_string_equal(s->argv[1], "#not");
	assert_string_equal(s->argv[5], "nor");
	assert_string_equal(s->env[0], "EMPTY=");
	assert_string_equal(s->env[1], "X==y");
	assert_int_equal(s->line, 7);
}

static void test_empty_config(void **state)
{
	struct fx *f = *state;
	struct conf *c = load_ok(f, "");

	assert_int_equal(c->nsvcs, 0);
	c = load_ok(f, "# nothing\n\n[drover]\n");
	assert_int_equal(c->nsvcs, 0);
}

static void test_example_config(void **state)
{
	struct fx *f = *state;
	char path[PATH_MAX];

	/* The shipped example loads (tests run from the top of the tree). */
	assert_int_equal(fchdir(f->oldcwd), 0);
	snprintf(path, sizeof(path), "examples/drover.conf");
	if (access(path, R_OK) != 0) {
		assert_int_equal(chdir(f->dir), 0);
		skip();
	}
	load_file(f, path, false);
	assert_int_equal(chdir(f->dir), 0);
	if (!f->c) {
		dump_errors(f);
		fail_msg("examples/drover.conf refused");
	}
	assert_true(f->c->nsvcs > 0);
}

static void test_name_valid(void **state)
{
	char name[80];

	(void)state;
	assert_true(conf_name_valid("web"));
	assert_true(conf_name_valid("a"));
	assert_true(conf_name_valid("A-Z_0.9@x"));
	assert_true(conf_name_valid("getty@tty1"));
	memset(name, 'n', 64);
	name[64] = '\0';
	assert_true(conf_name_valid(name));
	name[64] = 'n';
	name[65] = '\0';
	assert_false(conf_name_valid(name));
	assert_false(conf_name_valid(""));
	assert_false(conf_name_valid("a b"));
	assert_false(conf_name_valid("a/b"));
	assert_false(conf_name_valid("a:b"));
	assert_false(conf_name_valid("a=b"));
	assert_false(conf_name_valid("a]"));
	assert_false(conf_name_valid("\xc3\xa9t\xc3\xa9"));
	assert_false(conf_name_valid("tab\t"));
}

static void test_find_and_mode_names(void **state)
{
	struct fx *f = *state;
	struct conf *c = load_ok(f, "[service a]\ncommand = /bin/true\n[service b]\ncommand = /bin/true\n");

	assert_ptr_equal(conf_find(c, "b"), c->svcs[1]);
	assert_ptr_equal(conf_find(c, "a"), c->svcs[0]);
	assert_null(conf_find(c, "c"));
	assert_null(conf_find(c, "A"));
	assert_null(conf_find(c, ""));
	assert_string_equal(conf_mode_name(MODE_DAEMON), "daemon");
	assert_string_equal(conf_mode_name(MODE_PREFORK), "prefork");
	assert_string_equal(conf_mode_name(MODE_ACCEPT), "accept");
	assert_string_equal(conf_mode_name(MODE_ONESHOT), "oneshot");
	assert_string_equal(conf_mode_name(MODE_TIMER), "timer");
}

static void test_numeric_credentials(void **state)
{
	struct fx *f = *state;
	struct conf *c = load_ok(f, "[service c]\ncommand = /bin/true\nuser = 54321\ngroup = 54322\n");
	struct svc_conf *s = svc(c, "c");

	assert_int_equal(s->uid, 54321);
	assert_int_equal(s->gid, 54322);
	assert_int_equal(s->ngroups, 0);
}

/* ---- errors, one class at a time ---- */

static void test_error_unknown_key(void **state)
{
	LOAD_FAILS(*state,
		"[drover]\n"
		"includ = x\n"
		"[service web]\n"
		"command = /bin/true\n"
		"prefok = 4\n"
		"xyzzy = 1\n"
		"comand = /bin/false\n",
		"drover.conf:2: unknown key \"includ\" in [drover] (did you mean \"include\"?)",
		"drover.conf:5: unknown key \"prefok\" in [service web] (did you mean \"procs\"?)",
		"drover.conf:6: unknown key \"xyzzy\" in [service web]",
		"drover.conf:7: unknown key \"comand\" in [service web] (did you mean \"command\"?)");
}

static void test_error_key_in_wrong_section(void **state)
{
	LOAD_FAILS(*state,
		"[drover]\n"
		"user = root\n"
		"[service web]\n"
		"command = /bin/true\n"
		"include = x.conf\n",
		"drover.conf:2: key \"user\" does not belong in [drover] (it is a [service] key)",
		"drover.conf:5: key \"include\" does not belong in [service web] (it is a [drover] key)");
}

/* A key that exists exactly in the other section is misplaced, not
 * misspelt: saying so beats a fuzzy "did you mean". */
static void test_error_key_in_wrong_section_beats_hint(void **state)
{
	LOAD_FAILS(*state,
		"[service web]\n"
		"command = /bin/true\n"
		"control = /run/x.sock\n"
		"upgrade_timeout = 5s\n",
		"drover.conf:3: key \"control\" does not belong in [service web] (it is a [drover] key)",
		"drover.conf:4: key \"upgrade_timeout\" does not belong in [service web] (it is a [drover] key)");
}

static void test_error_duplicate_key(void **state)
{
	LOAD_FAILS(*state,
		"[drover]\n"
		"log = stderr\n"
		"log = syslog\n"
		"[service web]\n"
		"command = /bin/true\n"
		"stop_timeout = 1s\n"
		"env = A=1\n"
		"env = B=2\n"
		"stop_timeout = 2s\n"
		"command = /bin/false\n"
		"[service other]\n"
		"command = /bin/true\n"
		"stop_timeout = 1s\n"
		"[drover]\n"
		"log = stderr\n",
		"drover.conf:3: duplicate key \"log\" in [drover] (first set at drover.conf:2)",
		"drover.conf:9: duplicate key \"stop_timeout\" in [service web] (first set at drover.conf:6)",
		"drover.conf:10: duplicate key \"command\" in [service web] (first set at drover.conf:5)",
		"drover.conf:15: duplicate key \"log\" in [drover] (first set at drover.conf:2)");
}

static void test_error_bad_service_values(void **state)
{
	LOAD_FAILS(*state,
		"[service web]\n"
		"command = /bin/true\n"
		"stop_timeout = 10x\n"
		"restart = sometimes\n"
		"mode = forking\n"
		"stop_signal = BOGUS\n"
		"umask = 999\n"
		"env = NOEQUALS\n"
		"env = 1A=x\n"
		"env_inherit = maybe\n"
		"chdir = relative/dir\n"
		"log = syslog\n"
		"log_max_size = 10X\n"
		"limit_nofile = 10:5\n"
		"limit_core = lots\n"
		"critical = perhaps\n"
		"start = later\n"
		"ready = maybe\n"
		"requires = bad/name\n"
		"ready_timeout = 0\n"
		"log_keep = 1001\n"
		"reload_signal = 0\n"
		"min_uptime = -1\n"
		"env = =x\n"
		"limit_nproc = 1.5\n",
		"drover.conf:3: bad stop_timeout in [service web]: \"10x\" " BAD_DURATION,
		"drover.conf:4: bad restart in [service web]: \"sometimes\" is not a restart policy (use always, on-failure or no)",
		"drover.conf:5: bad mode in [service web]: \"forking\" is not a mode (use daemon, prefork, accept, oneshot or timer)",
		"drover.conf:6: bad stop_signal in [service web]: \"BOGUS\" is not a signal (use a name like TERM, HUP, USR1, or a number)",
		"drover.conf:7: bad umask in [service web]: \"999\" is not an octal mode (like 022 or 0660)",
		"drover.conf:8: bad env in [service web]: \"NOEQUALS\" is not KEY=VALUE",
		"drover.conf:9: bad env in [service web]: \"1A=x\" has a bad variable name (use letters, digits and _)",
		"drover.conf:10: bad env_inherit in [service web]: \"maybe\" " BAD_BOOL,
		"drover.conf:11: bad chdir in [service web]: \"relative/dir\" is not an absolute path",
		"drover.conf:12: bad log in [service web]: \"syslog\" is not a log destination (use inherit, null or file:/PATH)",
		"drover.conf:13: bad log_max_size in [service web]: \"10X\" " BAD_SIZE,
		"drover.conf:14: bad limit_nofile in [service web]: \"10:5\" has a soft limit above its hard limit",
		"drover.conf:15: bad limit_core in [service web]: \"lots\" " BAD_SIZE,
		"drover.conf:16: bad critical in [service web]: \"perhaps\" " BAD_BOOL,
		"drover.conf:17: bad start in [service web]: \"later\" is not a start policy (use auto, demand or manual)",
		"drover.conf:18: bad ready in [service web]: \"maybe\" is not a readiness kind (use none, notify, exit or health)",
		"drover.conf:19: bad requires in [service web]: \"bad/name\" is not a service name",
		"drover.conf:20: bad ready_timeout in [service web]: \"0\" must be more than zero",
		"drover.conf:21: bad log_keep in [service web]: \"1001\" is too large",
		"drover.conf:22: bad reload_signal in [service web]: \"0\" is not a signal (use a name like TERM, HUP, USR1, or a number)",
		"drover.conf:23: bad min_uptime in [service web]: \"-1\" " BAD_DURATION,
		"drover.conf:24: bad env in [service web]: \"=x\" is not KEY=VALUE",
		"drover.conf:25: bad limit_nproc in [service web]: \"1.5\" is not a number");
}

static void test_error_bad_counts(void **state)
{
	LOAD_FAILS(*state,
		"[service p]\n"
		"mode = prefork\n"
		"command = /bin/true\n"
		"listen = tcp:127.0.0.1:9000\n"
		"procs = 0\n"
		"max_procs = 4097\n"
		"idle_timeout = 0\n"
		"max_use = x\n",
		"drover.conf:5: bad procs in [service p]: \"0\" must be at least 1",
		"drover.conf:6: bad max_procs in [service p]: \"4097\" is too large",
		"drover.conf:7: bad idle_timeout in [service p]: \"0\" must be more than zero",
		"drover.conf:8: bad max_use in [service p]: \"x\" is not a number");
}

static void test_error_bad_command(void **state)
{
	LOAD_FAILS(*state,
		"[service a]\n"
		"command = /bin/sh -c 'echo\n"
		"[service b]\n"
		"command =\n"
		"[service c]\n"
		"command = \"x\\\n",
		"drover.conf:2: bad command in [service a]: \"/bin/sh -c 'echo\" has an unterminated single quote",
		"drover.conf:4: bad command in [service b]: \"\" is empty",
		"drover.conf:6: bad command in [service c]: \"\"x\\\" has an unterminated double quote");
}

static void test_error_bad_global_values(void **state)
{
	LOAD_FAILS(*state,
		"[drover]\n"
		"upgrade_timeout = 0\n"
		"log = file:relative.log\n"
		"control_group = nosuchgroup-drover-unit\n"
		"control =\n"
		"include =\n",
		"drover.conf:2: bad upgrade_timeout in [drover]: \"0\" must be more than zero",
		"drover.conf:3: bad log in [drover]: \"file:relative.log\" is not an absolute path",
		"drover.conf:4: bad control_group in [drover]: \"nosuchgroup-drover-unit\" is not a group on this system",
		"drover.conf:5: bad control in [drover]: \"\" is empty",
		"drover.conf:6: bad include in [drover]: \"\" is empty");
}

static void test_error_sections(void **state)
{
	LOAD_FAILS(*state,
		"command = /bin/true\n"
		"garbage\n"
		"[services web]\n"
		"command = /bin/true\n"
		"nonsense\n"
		"[drover\n"
		"[drover] x\n"
		"[service bad/name]\n"
		"[service]\n"
		"[service a]\n"
		"command = /bin/true\n"
		"just words\n"
		"[service a]\n"
		"command = /bin/false\n"
		"[service my web]\n",
		"drover.conf:1: \"command = /bin/true\" is outside any section: start with [drover] or [service NAME]",
		"drover.conf:2: expected \"key = value\", got \"garbage\"",
		"drover.conf:3: unknown section [services web]: " SECTIONS,
		"drover.conf:6: bad section header \"[drover\": " SECTIONS,
		"drover.conf:7: bad section header \"[drover] x\": " SECTIONS,
		"drover.conf:8: bad service name \"bad/name\": use 1 to 64 of A-Z a-z 0-9 _ . @ -",
		"drover.conf:9: unknown section [service]: " SECTIONS,
		"drover.conf:12: expected \"key = value\", got \"just words\"",
		"drover.conf:13: service \"a\" is already defined at drover.conf:10",
		"drover.conf:15: bad service name \"my web\": use 1 to 64 of A-Z a-z 0-9 _ . @ -");
}

static void test_error_long_service_name(void **state)
{
	struct fx *f = *state;
	char text[256], name[80], want[256];

	memset(name, 'x', 65);
	name[65] = '\0';
	snprintf(text, sizeof(text), "[service %s]\ncommand = /bin/true\n", name);
	assert_null(load(f, text));
	snprintf(want, sizeof(want),
		 "drover.conf:1: bad service name \"%s\": use 1 to 64 of A-Z a-z 0-9 _ . @ -", name);
	EXPECT_ERRORS(f, want);
	name[64] = '\0';
	snprintf(text, sizeof(text), "[service %s]\ncommand = /bin/true\n", name);
	assert_non_null(load_ok(f, text));
}

static void test_error_references(void **state)
{
	LOAD_FAILS(*state,
		"[service a]\n"
		"command = /bin/true\n"
		"requires = nope\n"
		"after = missing\n"
		"[service b]\n"
		"command = /bin/true\n"
		"requires = b\n"
		"after = b\n"
		"[service c]\n"
		"command = /bin/true\n"
		"requires = a\n"
		"after = b\n",
		"drover.conf:3: requires \"nope\", which is not defined in [service a]",
		"drover.conf:4: after \"missing\", which is not defined in [service a]",
		"drover.conf:7: service cannot require itself in [service b]",
		"drover.conf:8: service cannot be ordered after itself in [service b]");
}

/* Each value of a repeatable key is reported at its own line. */
static void test_error_references_own_lines(void **state)
{
	LOAD_FAILS(*state,
		"[service a]\n"
		"command = /bin/true\n"
		"requires = nope1\n"
		"requires = nope2\n"
		"after = gone1\n"
		"after = gone2\n",
		"drover.conf:3: requires \"nope1\", which is not defined in [service a]",
		"drover.conf:4: requires \"nope2\", which is not defined in [service a]",
		"drover.conf:5: after \"gone1\", which is not defined in [service a]",
		"drover.conf:6: after \"gone2\", which is not defined in [service a]");
}

static void test_error_cycle(void **state)
{
	LOAD_FAILS(*state,
		"[service a]\n"
		"command = /bin/true\n"
		"requires = b\n"
		"[service b]\n"
		"command = /bin/true\n"
		"requires = c\n"
		"[service c]\n"
		"command = /bin/true\n"
		"requires = a\n",
		"drover.conf:9: dependency cycle: a -> b -> c -> a in [service c]");
}

static void test_error_cycle_after_and_lead_in(void **state)
{
	/* x leads into the loop a -> b -> a but is not part of it. */
	LOAD_FAILS(*state,
		"[service x]\n"
		"command = /bin/true\n"
		"requires = a\n"
		"[service a]\n"
		"command = /bin/true\n"
		"after = b\n"
		"[service b]\n"
		"command = /bin/true\n"
		"after = a\n"
		"[service p]\n"
		"command = /bin/true\n"
		"requires = q\n"
		"[service q]\n"
		"command = /bin/true\n"
		"requires = p\n",
		"drover.conf:9: dependency cycle: a -> b -> a in [service b]",
		"drover.conf:15: dependency cycle: p -> q -> p in [service q]");
}

/* The cycle closes through `after`; the line shown is that key's even when
 * the service also has a (harmless) `requires`. */
static void test_error_cycle_line_of_closing_key(void **state)
{
	LOAD_FAILS(*state,
		"[service a]\n"
		"command = /bin/true\n"
		"requires = b\n"
		"[service b]\n"
		"command = /bin/true\n"
		"requires = z\n"
		"after = a\n"
		"[service z]\n"
		"command = /bin/true\n",
		"drover.conf:7: dependency cycle: a -> b -> a in [service b]");
}

static void test_valid_dependencies(void **state)
{
	struct fx *f = *state;
	struct conf *c = load_ok(f,
		"[service a]\ncommand = /bin/true\nrequires = b\nrequires = c\nafter = d\n"
		"[service b]\ncommand = /bin/true\nrequires = c\n"
		"[service c]\ncommand = /bin/true\nafter = d\n"
		"[service d]\ncommand = /bin/true\n");

	assert_int_equal(svc(c, "a")->nrequires, 2);
	assert_string_equal(svc(c, "a")->requires[1], "c");
	assert_string_equal(raw(svc(c, "a"), "requires"), "b\nc");
}

static void test_error_mode_keys(void **state)
{
	LOAD_FAILS(*state,
		"[service d]\n"
		"command = /bin/true\n"
		"procs = 2\n"
		"every = 1m\n"
		"max_rate = 5\n"
		"[service t]\n"
		"mode = timer\n"
		"command = /bin/true\n"
		"every = 1h\n"
		"restart = always\n"
		"ready = notify\n"
		"listen = tcp:127.0.0.1:9000\n"
		"watchdog = 5s\n"
		"max_procs = 3\n",
		"drover.conf:3: procs does not apply to mode daemon in [service d] (it is for mode prefork)",
		"drover.conf:4: every does not apply to mode daemon in [service d] (it is for mode timer)",
		"drover.conf:5: max_rate does not apply to mode daemon in [service d] (it is for mode accept)",
		"drover.conf:10: restart does not apply to mode timer in [service t] (it is for mode daemon, prefork, oneshot)",
		"drover.conf:11: ready does not apply to mode timer in [service t] (it is for mode daemon, prefork, oneshot)",
		"drover.conf:12: listen does not apply to mode timer in [service t] (it is for mode daemon, prefork, accept)",
		"drover.conf:13: watchdog does not apply to mode timer in [service t] (it is for mode daemon, prefork)",
		"drover.conf:14: max_procs does not apply to mode timer in [service t] (it is for mode prefork, accept)");
}

static void test_error_mode_rules(void **state)
{
	LOAD_FAILS(*state,
		"[service t]\n"
		"mode = timer\n"
		"command = /bin/true\n"
		"[service p]\n"
		"mode = prefork\n"
		"command = /bin/true\n"
		"[service a]\n"
		"mode = accept\n"
		"command = /bin/true\n"
		"listen = udp:127.0.0.1:5353\n"
		"[service q]\n"
		"mode = prefork\n"
		"command = /bin/true\n"
		"listen = tcp:127.0.0.1:9001\n"
		"procs = 8\n"
		"max_procs = 4\n"
		"[service w]\n"
		"command = /bin/true\n"
		"watchdog = 10s\n"
		"[service e]\n"
		"command = /bin/true\n"
		"ready = exit\n"
		"[service dm]\n"
		"command = /bin/true\n"
		"start = demand\n"
		"[service rd]\n"
		"command = /bin/true\n"
		"restart_delay = 1m\n"
		"restart_delay_max = 10s\n"
		"[service nc]\n"
		"mode = daemon\n"
		"[service ac]\n"
		"mode = accept\n"
		"command = /bin/true\n",
		"drover.conf:2: mode timer needs \"every\" or \"at\" in [service t]",
		"drover.conf:5: mode prefork needs at least one \"listen\" in [service p]",
		"drover.conf:10: mode accept cannot use datagram listener udp:127.0.0.1:5353 in [service a] "
		"(accept needs a stream: tcp or unix)",
		"drover.conf:15: procs (8) is above max_procs (4) in [service q]",
		"drover.conf:19: watchdog needs ready = notify in [service w]",
		"drover.conf:22: ready = exit is only for mode oneshot in [service e]",
		"drover.conf:25: start = demand needs a \"listen\" to wait on in [service dm]",
		"drover.conf:28: restart_delay is above restart_delay_max in [service rd]",
		"drover.conf:30: no command given in [service nc]",
		"drover.conf:33: mode accept needs at least one \"listen\" in [service ac]");
}

static void test_error_demand_oneshot(void **state)
{
	LOAD_FAILS(*state,
		"[service o]\n"
		"mode = oneshot\n"
		"command = /bin/true\n"
		"start = demand\n",
		"drover.conf:4: start = demand needs a \"listen\" to wait on in [service o]",
		"drover.conf:4: start = demand does not apply to mode oneshot in [service o]");
}

static void test_error_too_many_listeners(void **state)
{
	struct fx *f = *state;
	char text[8192];
	size_t n = (size_t)snprintf(text, sizeof(text), "[service big]\ncommand = /bin/true\n");

	for (int i = 0; i < LISTEN_MAX; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "listen = unix:@drover-unit-%d\n", i);
	assert_non_null(load_ok(f, text));
	assert_int_equal(svc(f->c, "big")->nlisten, LISTEN_MAX);
	snprintf(text + n, sizeof(text) - n, "listen = unix:@drover-unit-extra\n");
	assert_null(load(f, text));
	assert_int_equal(f->errs.n, 1);
	assert_non_null(strstr(f->errs.msg[0], ": more than 64 listen lines in [service big]"));
	assert_int_equal(strncmp(f->errs.msg[0], "drover.conf:", 12), 0);
}

static void test_error_credentials(void **state)
{
	LOAD_FAILS(*state,
		"[service a]\n"
		"command = /bin/true\n"
		"user = nosuchuser-drover-unit\n"
		"group = nosuchgroup-drover-unit\n"
		"[service b]\n"
		"command = /bin/true\n"
		"user = 54321\n",
		"drover.conf:3: bad user in [service a]: \"nosuchuser-drover-unit\" is not a user on this system",
		"drover.conf:4: bad group in [service a]: \"nosuchgroup-drover-unit\" is not a group on this system",
		"drover.conf:7: user 54321 has no entry in the user database: give \"group\" as well in [service b]");
}

/* A numeric user that does have an entry (uid 0 is root, 1 daemon on
 * Debian) is that entry: it is not "no entry in the user database". */
static void test_numeric_user_with_entry(void **state)
{
	struct fx *f = *state;
	struct passwd *pw = getpwuid(1);
	struct svc_conf *s;
	gid_t gid;

	if (!pw)
		skip();
	gid = pw->pw_gid;
	s = svc(load_ok(f, "[service n]\ncommand = /bin/true\nuser = 1\n"), "n");
	assert_int_equal(s->uid, 1);
	assert_int_equal(s->gid, gid);
}

/* All errors, sorted by the order files were read, then line: the check
 * errors found after parsing fall into place. */
static void test_errors_all_sorted(void **state)
{
	struct fx *f = *state;

	make_dir("conf.d");
	write_file("conf.d/20-c.conf", "[service c]\nprefok = 1\ncommand = /bin/true\n");
	write_file("conf.d/10-b.conf", "[service b]\ncommand = /bin/true\nstop_timeout = forever\n");
	LOAD_FAILS(f,
		"[drover]\n"
		"include = conf.d/*.conf\n"
		"[service a]\n"
		"command = /bin/true\n"
		"requires = ghost\n"
		"zzz = 1\n"
		"[service b]\n"
		"command = /bin/true\n",
		"drover.conf:5: requires \"ghost\", which is not defined in [service a]",
		"drover.conf:6: unknown key \"zzz\" in [service a]",
		"drover.conf:7: service \"b\" is already defined at conf.d/10-b.conf:1",
		"conf.d/10-b.conf:3: bad stop_timeout in [service b]: \"forever\" " BAD_DURATION,
		"conf.d/20-c.conf:2: unknown key \"prefok\" in [service c] (did you mean \"procs\"?)");
}

static void test_duplicate_listeners(void **state)
{
	LOAD_FAILS(*state,
		"[service a]\n"
		"command = /bin/true\n"
		"listen = tcp:127.0.0.1:8000\n"
		"[service b]\n"
		"command = /bin/true\n"
		"listen = tcp:localhost:8000\n"
		"listen = unix:/run/x.sock\n"
		"listen = unix:/run/x.sock mode=0600\n",
		"drover.conf:6: listen tcp:localhost:8000 in [service b] is already used by [service a] at drover.conf:3",
		"drover.conf:8: listen unix:/run/x.sock in [service b] is already used by [service b] at drover.conf:7");
}

/* reuseport lets two services share an address. */
static void test_listeners_reuseport_share(void **state)
{
	struct fx *f = *state;

	assert_non_null(load_ok(f,
		"[service a]\ncommand = /bin/true\nlisten = tcp:127.0.0.1:8000 reuseport\n"
		"[service b]\ncommand = /bin/true\nlisten = tcp:127.0.0.1:8000 reuseport\n"));
}

/* TCP and UDP on one port are two different sockets (DNS, syslog...). */
static void test_listeners_tcp_and_udp_same_port(void **state)
{
	struct fx *f = *state;

	assert_non_null(load_ok(f,
		"[service dns]\ncommand = /bin/true\n"
		"listen = tcp:127.0.0.1:5353\nlisten = udp:127.0.0.1:5353\n"));
	assert_non_null(load_ok(f,
		"[service a]\ncommand = /bin/true\nlisten = tcp:5300\n"
		"[service b]\ncommand = /bin/true\nlisten = udp:5300\n"));
}

/* ---- files and includes ---- */

static void test_main_file_missing(void **state)
{
	struct fx *f = *state;

	assert_null(load_file(f, "nonexistent.conf", false));
	EXPECT_ERRORS(f, "cannot read nonexistent.conf: No such file or directory");
}

static void test_include_sorted_relative(void **state)
{
	struct fx *f = *state;
	struct conf *c;
	char text[512];

	make_dir("sub");
	make_dir("sub/conf.d");
	make_dir("sub/conf.d/more");
	make_dir("abs.d");
	write_file("sub/conf.d/b.conf", "[service b]\ncommand = /bin/true\n");
	write_file("sub/conf.d/a.conf",
		   "[service a]\ncommand = /bin/true\n[drover]\ninclude = more/*.conf\n");
	write_file("sub/conf.d/c.txt", "this is not read\n");
	write_file("sub/conf.d/more/n.conf", "[service nested]\ncommand = /bin/true\nconfig_files = x.ini\n");
	write_file("abs.d/z.conf", "[service z]\ncommand = /bin/true\n");
	snprintf(text, sizeof(text),
		 "[drover]\n"
		 "include = conf.d/*.conf\n"
		 "include = nothing-*.conf\n"
		 "include = %s/abs.d/*.conf\n"
		 "[service m]\n"
		 "command = /bin/true\n", f->dir);
	write_file("sub/main.conf", text);
	/* From the temporary directory: relative to the including file. */
	c = load_file(f, "sub/main.conf", false);
	if (!c) {
		dump_errors(f);
		fail_msg("refused");
	}
	assert_int_equal(c->nsvcs, 5);
	assert_string_equal(c->svcs[0]->name, "a");
	assert_string_equal(c->svcs[1]->name, "nested");
	assert_string_equal(c->svcs[2]->name, "b");
	assert_string_equal(c->svcs[3]->name, "z");
	assert_string_equal(c->svcs[4]->name, "m");
	assert_string_equal(c->svcs[0]->file, "sub/conf.d/a.conf");
	assert_int_equal(c->svcs[0]->line, 1);
	assert_string_equal(c->svcs[1]->file, "sub/conf.d/more/n.conf");
	assert_string_equal(c->svcs[1]->config_files[0].path, "sub/conf.d/more/x.ini");
	assert_string_equal(c->svcs[4]->file, "sub/main.conf");
	assert_int_equal(c->svcs[4]->line, 5);
}

/* A file named outright, with no wildcard, that is not there is a typo
 * worth reporting (as nginx does); a pattern matching nothing is fine. */
static void test_include_literal_missing(void **state)
{
	struct fx *f = *state;

	write_file("drover.conf", "[drover]\ninclude = nothing-*.conf\ninclude = no-such-file.conf\n"
				  "[service a]\ncommand = /bin/true\n");
	assert_null(load_file(f, "drover.conf", false));
	EXPECT_ERRORS(f, "drover.conf:3: bad include in [drover]: \"no-such-file.conf\" names "
			 "no-such-file.conf, which does not exist");
}

/* SPEC: "A glob matching nothing is fine" - also when its directory does
 * not exist (yet): conf.d/ is often created by the first package that
 * drops a file there. */
static void test_include_missing_directory(void **state)
{
	struct fx *f = *state;
	struct conf *c = load_ok(f,
		"[drover]\n"
		"include = conf.d/*.conf\n"
		"[service a]\n"
		"command = /bin/true\n");

	assert_int_equal(c->nsvcs, 1);
}

static void test_include_not_regular(void **state)
{
	struct fx *f = *state;

	make_dir("conf.d");
	make_dir("conf.d/sub.conf");
	assert_int_equal(mkfifo("conf.d/fifo.conf", 0644), 0);
	write_file("conf.d/ok.conf", "[service ok]\ncommand = /bin/true\n");
	LOAD_FAILS(f,
		"[drover]\n"
		"include = conf.d/*.conf\n",
		"drover.conf:2: cannot read conf.d/fifo.conf: not a regular file",
		"drover.conf:2: cannot read conf.d/sub.conf: not a regular file");
	/* The main file itself. */
	assert_null(load_file(f, "conf.d", false));
	EXPECT_ERRORS(f, "cannot read conf.d: not a regular file");
	assert_null(load_file(f, "conf.d/fifo.conf", false));
	EXPECT_ERRORS(f, "cannot read conf.d/fifo.conf: not a regular file");
}

/* A file whose name is longer than a message line: the name is cut, the
 * message still made. (fuzz_state found the length of the whole prefix
 * taken as where the message goes on, past the end of the buffer:
 * undefined, though glibc then wrote nothing; its input is in the state
 * corpus as crash-long-conf-path, where clang's UBSan sees it.) */
static void test_error_in_a_file_with_a_very_long_name(void **state)
{
	struct fx *f = *state;
	char path[1400] = "";
	size_t len = 0;

	(void)f;
	for (int i = 0; i < 5; i++) {
		len += (size_t)snprintf(path + len, sizeof(path) - len, "%s%0250d", i ? "/" : "", i);
		make_dir(path);
	}
	snprintf(path + len, sizeof(path) - len, "/x.conf");
	write_file(path, "[service a]\ncommand = /bin/true\nprefok = 1\n");
	assert_null(load_file(f, path, false));
	assert_int_equal(f->errs.n, 1);
	assert_int_equal(strlen(f->errs.msg[0]), 1023);
	assert_memory_equal(f->errs.msg[0], path, 1023);
}

static void test_include_loop(void **state)
{
	struct fx *f = *state;

	make_dir("conf.d");
	write_file("conf.d/a.conf", "[drover]\ninclude = ../drover.conf\n[service a]\ncommand = /bin/true\n");
	LOAD_FAILS(f,
		"[drover]\n"
		"include = conf.d/*.conf\n",
		"conf.d/a.conf:2: conf.d/../drover.conf is included more than once");
	LOAD_FAILS(f,
		"[drover]\n"
		"include = drover.conf\n",
		"drover.conf:2: drover.conf is included more than once");
}

static void test_include_twice(void **state)
{
	struct fx *f = *state;

	make_dir("conf.d");
	write_file("conf.d/a.conf", "[service a]\ncommand = /bin/true\n");
	LOAD_FAILS(f,
		"[drover]\n"
		"include = conf.d/a.conf\n"
		"include = conf.d/*.conf\n",
		"drover.conf:3: conf.d/a.conf is included more than once");
}

static void test_include_too_deep(void **state)
{
	struct fx *f = *state;
	char name[32], text[128];

	for (int i = 1; i <= 9; i++) {
		snprintf(name, sizeof(name), "d%d.conf", i);
		snprintf(text, sizeof(text), "[drover]\ninclude = d%d.conf\n", i + 1);
		write_file(name, text);
	}
	write_file("d10.conf", "[service deep]\ncommand = /bin/true\n");
	LOAD_FAILS(f,
		"[drover]\n"
		"include = d1.conf\n",
		"d8.conf:2: bad include in [drover]: \"d9.conf\" nests includes too deeply (more than 8 levels)");
}

/* [drover] keys count across files: one setting, one place. */
static void test_include_duplicate_global_key(void **state)
{
	struct fx *f = *state;

	make_dir("conf.d");
	write_file("conf.d/a.conf", "[drover]\nlog = syslog\n");
	LOAD_FAILS(f,
		"[drover]\n"
		"log = stderr\n"
		"include = conf.d/*.conf\n",
		"conf.d/a.conf:2: duplicate key \"log\" in [drover] (first set at drover.conf:2)");
}

/* A section ends with its file: the main file's [drover] goes on after an
 * include whose last section was a service. */
static void test_include_restores_section(void **state)
{
	struct fx *f = *state;
	struct conf *c;

	make_dir("conf.d");
	write_file("conf.d/a.conf", "[service a]\ncommand = /bin/true\n");
	c = load_ok(f,
		"[drover]\n"
		"include = conf.d/a.conf\n"
		"upgrade_timeout = 7s\n");
	assert_int_equal(c->upgrade_timeout, 7000);
	assert_null(raw(svc(c, "a"), "stop_timeout"));
	/* A service key right after the include is not the included service's. */
	LOAD_FAILS(f,
		"[drover]\n"
		"include = conf.d/a.conf\n"
		"stop_timeout = 1s\n",
		"drover.conf:3: key \"stop_timeout\" does not belong in [drover] (it is a [service] key)");
}

static void test_nul_byte(void **state)
{
	struct fx *f = *state;
	int fd;

	fd = open("drover.conf", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "[service a]\ncommand = /bin/true\0\n", 34), 34);
	close(fd);
	assert_null(load_file(f, "drover.conf", false));
	EXPECT_ERRORS(f, "drover.conf:2: contains a NUL byte: not a text file");

	make_dir("conf.d");
	fd = open("conf.d/a.conf", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "\0", 1), 1);
	close(fd);
	LOAD_FAILS(f,
		"[drover]\n"
		"include = conf.d/*.conf\n",
		"conf.d/a.conf:1: contains a NUL byte: not a text file");
}

#define REFUSED "droverd running as root refuses it"

static void test_writable_refused_as_root(void **state)
{
	struct fx *f = *state;
	char want[256];

	write_file("drover.conf", "[service a]\ncommand = /bin/true\n");
	assert_int_equal(chmod("drover.conf", 0666), 0);
	assert_null(load_file(f, "drover.conf", true));
	snprintf(want, sizeof(want), "cannot read drover.conf: writable by a user other than root "
		 "(owner uid %u, mode 0666); " REFUSED, (unsigned)geteuid());
	if (geteuid() == 0)	/* else a directory above, /tmp or ours, is refused first */
		EXPECT_ERRORS(f, want);
	/* Not running as root: no such rule. */
	assert_non_null(load_file(f, "drover.conf", false));

	if (geteuid() != 0)
		return;		/* the rest needs files owned by root, and chown */
	assert_int_equal(chown("drover.conf", 0, 0), 0);
	assert_int_equal(chmod("drover.conf", 0644), 0);
	assert_non_null(load_file(f, "drover.conf", true));
	/* Group-writable by root's group is root's. */
	assert_int_equal(chown("drover.conf", 0, 0), 0);
	assert_int_equal(chmod("drover.conf", 0664), 0);
	assert_non_null(load_file(f, "drover.conf", true));
	assert_int_equal(chown("drover.conf", 0, 1), 0);
	assert_null(load_file(f, "drover.conf", true));
	EXPECT_ERRORS(f, "cannot read drover.conf: writable by a user other than root "
		      "(owner uid 0, mode 0664); " REFUSED);
	/* Owned by someone else, whatever the mode. */
	assert_int_equal(chown("drover.conf", 1, 0), 0);
	assert_int_equal(chmod("drover.conf", 0644), 0);
	assert_null(load_file(f, "drover.conf", true));
	EXPECT_ERRORS(f, "cannot read drover.conf: writable by a user other than root "
		      "(owner uid 1, mode 0644); " REFUSED);
	assert_int_equal(chmod("drover.conf", 0400), 0);
	assert_null(load_file(f, "drover.conf", true));
	EXPECT_ERRORS(f, "cannot read drover.conf: writable by a user other than root "
		      "(owner uid 1, mode 0400); " REFUSED);
}

static void test_writable_include_refused_as_root(void **state)
{
	struct fx *f = *state;

	if (geteuid() != 0)
		skip();
	make_dir("conf.d");
	write_file("conf.d/a.conf", "[service a]\ncommand = /bin/true\n");
	write_file("conf.d/b.conf", "[service b]\ncommand = /bin/true\n");
	assert_int_equal(chmod("conf.d/a.conf", 0666), 0);
	assert_int_equal(chown("conf.d/b.conf", 1, 1), 0);
	write_file("drover.conf", "[drover]\ninclude = conf.d/*.conf\n");
	assert_null(load_file(f, "drover.conf", true));
	EXPECT_ERRORS(f,
		"drover.conf:2: cannot read conf.d/a.conf: writable by a user other than root "
		"(owner uid 0, mode 0666); " REFUSED,
		"drover.conf:2: cannot read conf.d/b.conf: writable by a user other than root "
		"(owner uid 1, mode 0644); " REFUSED);
}

/* The whole path (safepath.h): a directory others can write, reached
 * directly, through "..", or through a link, refuses the file; links
 * through root's directories are followed. */
static void test_directory_others_can_write_refused_as_root(void **state)
{
	struct fx *f = *state;
	char want[512];

	if (geteuid() != 0)
		skip();
	make_dir("open");
	make_dir("safe");
	write_file("open/a.conf", "[service a]\ncommand = /bin/true\n");
	write_file("safe/b.conf", "[service b]\ncommand = /bin/true\n");
	assert_int_equal(chmod("open", 01777), 0);
	assert_int_equal(symlink("open/a.conf", "l.conf"), 0);
	assert_int_equal(symlink("../safe/b.conf", "open/l.conf"), 0);
	assert_int_equal(symlink("safe/b.conf", "ok.conf"), 0);
	snprintf(want, sizeof(want), "cannot read %%s: directory %s/open is writable by a user other "
		 "than root (owner uid 0, mode 1777); " REFUSED, f->dir);
	for (const char *const *path = (const char *const[]){ "open/a.conf", "safe/../open/a.conf",
							      "l.conf", "open/l.conf", NULL }; *path; path++) {
		char msg[600];

		assert_null(load_file(f, *path, true));
		snprintf(msg, sizeof(msg), want, *path);
		EXPECT_ERRORS(f, msg);
	}
	assert_non_null(load_file(f, "ok.conf", true));
	assert_non_null(load_file(f, "./safe/../ok.conf", true));
}

static void test_oversized_file(void **state)
{
	struct fx *f = *state;
	char *big = malloc(CONF_FILE_MAX + 2);

	assert_non_null(big);
	memset(big, '#', CONF_FILE_MAX + 1);
	big[CONF_FILE_MAX + 1] = '\0';
	write_file("drover.conf", big);
	free(big);
	assert_null(load_file(f, "drover.conf", false));
	EXPECT_ERRORS(f, "cannot read drover.conf: larger than 1048576 bytes");
}

/* ---- health probes (SPEC 3a) ---- */

#include <arpa/inet.h>

static void expect_inet(const struct health_conf *h, const char *ip, unsigned port)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)&h->addr;
	struct in_addr want;

	assert_int_equal(inet_pton(AF_INET, ip, &want), 1);
	assert_int_equal(h->addr.ss_family, AF_INET);
	assert_int_equal(h->addrlen, sizeof(struct sockaddr_in));
	assert_int_equal(in->sin_addr.s_addr, want.s_addr);
	assert_int_equal(ntohs(in->sin_port), port);
}

static void expect_inet6(const struct health_conf *h, const char *ip, unsigned port)
{
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&h->addr;
	struct in6_addr want;

	assert_int_equal(inet_pton(AF_INET6, ip, &want), 1);
	assert_int_equal(h->addr.ss_family, AF_INET6);
	assert_int_equal(h->addrlen, sizeof(struct sockaddr_in6));
	assert_memory_equal(&in6->sin6_addr, &want, sizeof(want));
	assert_int_equal(ntohs(in6->sin6_port), port);
}

/* Every service has the probe settings' defaults, probed or not; the
 * default timeout never outlasts a shorter interval. */
static void test_health_defaults(void **state)
{
	struct conf *c = load_ok(*state,
		"[service plain]\ncommand = /bin/true\n"
		"[service once]\nmode = oneshot\ncommand = /bin/true\n"
		"[service fast]\ncommand = /bin/true\nhealth = tcp:127.0.0.1:80\nhealth_interval = 500ms\n"
		"[service set]\ncommand = /bin/true\nhealth = tcp:127.0.0.1:80\nhealth_interval = 1m\n"
		"health_timeout = 1m\nhealth_retries = 1\nhealth_start_period = 90s\n");
	const char *const plain[] = { "plain", "once" };

	for (int i = 0; i < 2; i++) {
		const struct health_conf *h = &svc(c, plain[i])->health;

		assert_int_equal(h->kind, HEALTH_NONE);
		assert_null(h->text);
		assert_null(h->argv);
		assert_int_equal(h->addrlen, 0);
		assert_int_equal(h->interval, 10000);
		assert_int_equal(h->timeout, 2000);
		assert_int_equal(h->retries, 3);
		assert_int_equal(h->start_period, 0);
	}
	assert_int_equal(svc(c, "fast")->health.interval, 500);
	assert_int_equal(svc(c, "fast")->health.timeout, 500);
	assert_int_equal(svc(c, "fast")->health.retries, 3);
	assert_int_equal(svc(c, "set")->health.interval, 60000);
	assert_int_equal(svc(c, "set")->health.timeout, 60000);
	assert_int_equal(svc(c, "set")->health.retries, 1);
	assert_int_equal(svc(c, "set")->health.start_period, 90000);
	assert_string_equal(raw(svc(c, "set"), "health_start_period"), "90s");
}

static void test_health_exec(void **state)
{
	struct conf *c = load_ok(*state,
		"[service db]\n"
		"command = /usr/bin/db\n"
		"health = exec:/bin/sh --quiet 'a b' \"c\\\"d\"\n"
		"ready = health\n"
		"[service bare]\n"
		"mode = prefork\n"
		"command = /bin/true\n"
		"listen = tcp:127.0.0.1:9000\n"
		"health = exec:  true\n");
	const struct health_conf *h = &svc(c, "db")->health;

	assert_int_equal(h->kind, HEALTH_EXEC);
	assert_string_equal(h->text, "exec:/bin/sh --quiet 'a b' \"c\\\"d\"");
	assert_string_equal(h->argv[0], "/bin/sh");
	assert_string_equal(h->argv[1], "--quiet");
	assert_string_equal(h->argv[2], "a b");
	assert_string_equal(h->argv[3], "c\"d");
	assert_null(h->argv[4]);
	assert_int_equal(h->addrlen, 0);
	assert_null(h->host);
	assert_null(h->path);
	assert_int_equal(svc(c, "db")->ready, READY_HEALTH);
	assert_string_equal(raw(svc(c, "db"), "ready"), "health");
	h = &svc(c, "bare")->health;
	assert_int_equal(h->kind, HEALTH_EXEC);
	assert_string_equal(h->argv[0], "true");
	assert_null(h->argv[1]);
}

static void test_health_tcp(void **state)
{
	struct conf *c = load_ok(*state,
		"[service a]\ncommand = /bin/true\nhealth = tcp:127.0.0.1:5432\n"
		"[service b]\ncommand = /bin/true\nhealth = tcp:[::1]:6379\n"
		"[service c]\ncommand = /bin/true\nhealth = tcp:localhost:1\n"
		"[service d]\ncommand = /bin/true\nhealth = tcp:[fe80::1]:65535\n");

	assert_int_equal(svc(c, "a")->health.kind, HEALTH_TCP);
	assert_string_equal(svc(c, "a")->health.text, "tcp:127.0.0.1:5432");
	assert_null(svc(c, "a")->health.argv);
	assert_null(svc(c, "a")->health.host);
	expect_inet(&svc(c, "a")->health, "127.0.0.1", 5432);
	expect_inet6(&svc(c, "b")->health, "::1", 6379);
	expect_inet(&svc(c, "c")->health, "127.0.0.1", 1);
	expect_inet6(&svc(c, "d")->health, "fe80::1", 65535);
}

/* Port 80 and path "/" when left out; the Host header is HOST[:PORT] as
 * written. */
static void test_health_http(void **state)
{
	struct conf *c = load_ok(*state,
		"[service a]\ncommand = /bin/true\nhealth = http://127.0.0.1:8080/healthz?full=1&x=%20\n"
		"[service b]\ncommand = /bin/true\nhealth = http://[::1]/\n"
		"[service c]\ncommand = /bin/true\nhealth = http://localhost:81\n"
		"[service d]\ncommand = /bin/true\nhealth = http://10.0.0.7\n");
	const struct health_conf *h = &svc(c, "a")->health;

	assert_int_equal(h->kind, HEALTH_HTTP);
	assert_string_equal(h->text, "http://127.0.0.1:8080/healthz?full=1&x=%20");
	expect_inet(h, "127.0.0.1", 8080);
	assert_string_equal(h->host, "127.0.0.1:8080");
	assert_string_equal(h->path, "/healthz?full=1&x=%20");
	assert_null(h->argv);
	h = &svc(c, "b")->health;
	expect_inet6(h, "::1", 80);
	assert_string_equal(h->host, "[::1]");
	assert_string_equal(h->path, "/");
	h = &svc(c, "c")->health;
	expect_inet(h, "127.0.0.1", 81);
	assert_string_equal(h->host, "localhost:81");
	assert_string_equal(h->path, "/");
	h = &svc(c, "d")->health;
	expect_inet(h, "10.0.0.7", 80);
	assert_string_equal(h->host, "10.0.0.7");
	assert_string_equal(h->path, "/");
}

#define BAD_PROBE "is not a probe (use exec:COMMAND, tcp:HOST:PORT or http://HOST:PORT/PATH)"
#define BAD_HOST "has a host that is not an IPv4 address, [IPv6 address] or localhost (names are not looked up)"
#define WILDCARD "has a wildcard address, which cannot be connected to (name one, like 127.0.0.1 or [::1])"
#define BAD_BYTE "has a path with a byte a request line cannot carry " \
		 "(a space, a control character, '#' or a non-ASCII byte)"

static void test_error_health_values(void **state)
{
	char text[2048], want[2048];
	int n;

	LOAD_FAILS(*state,
		"[service web]\n"
		"command = /bin/true\n"
		"health = ping:127.0.0.1\n"
		"[service a]\ncommand = /bin/true\nhealth = exec:\n"
		"[service b]\ncommand = /bin/true\nhealth = exec:/bin/sh -c 'exit 0\n"
		"[service c]\ncommand = /bin/true\nhealth = tcp:8080\n"
		"[service d]\ncommand = /bin/true\nhealth = tcp:db.example:5432\n"
		"[service e]\ncommand = /bin/true\nhealth = tcp:0.0.0.0:80\n"
		"[service f]\ncommand = /bin/true\nhealth = tcp:[::]:80\n"
		"[service g]\ncommand = /bin/true\nhealth = tcp:*:80\n"
		"[service h]\ncommand = /bin/true\nhealth = tcp:127.0.0.1:0\n"
		"[service i]\ncommand = /bin/true\nhealth = tcp:127.0.0.1:65536\n"
		"[service j]\ncommand = /bin/true\nhealth = tcp:[::1]\n"
		"[service k]\ncommand = /bin/true\nhealth = tcp:[::1:80\n"
		"[service l]\ncommand = /bin/true\nhealth = tcp:::1:80\n"
		"[service m]\ncommand = /bin/true\nhealth = https://127.0.0.1/\n"
		"[service n]\ncommand = /bin/true\nhealth = http:///x\n"
		"[service o]\ncommand = /bin/true\nhealth = http://127.0.0.1/a b\n"
		"[service p]\ncommand = /bin/true\nhealth = http://127.0.0.1/a\tb\n"
		"[service q]\ncommand = /bin/true\nhealth = http://127.0.0.1/caf\xc3\xa9\n"
		"[service r]\ncommand = /bin/true\nhealth = http://127.0.0.1/x#frag\n"
		"[service s]\ncommand = /bin/true\nhealth = http://0.0.0.0:80/\n"
		"[service t]\ncommand = /bin/true\nhealth = http://127.0.0.1:http/\n"
		"[service u]\ncommand = /bin/true\nhealth = HTTP://127.0.0.1/\n"
		"[service v]\ncommand = /bin/true\nhealth = tcp:127.0.0.1:80\nhealth = tcp:127.0.0.1:81\n"
		"[service w]\ncommand = /bin/true\nhealth = tcp:127.0.0.1:80\nhealth_interval = 0\n"
		"health_timeout = soon\nhealth_retries = 0\nhealth_start_period = -1s\n"
		"[service x]\ncommand = /bin/true\nhealth = tcp:127.0.0.1:80\nhealth_retries = 1001\n"
		"health_timeout = 0ms\n"
		"[service y]\ncommand = /bin/true\nhealth = tcp:127.0.0.1:80\nhealth_interval = 1s\n"
		"health_timeout = soon\n",
		"drover.conf:3: bad health in [service web]: \"ping:127.0.0.1\" " BAD_PROBE,
		"drover.conf:6: bad health in [service a]: \"exec:\" has no command after exec:",
		"drover.conf:9: bad health in [service b]: \"exec:/bin/sh -c 'exit 0\" has an unterminated single quote",
		"drover.conf:12: bad health in [service c]: \"tcp:8080\" has no host or no port "
		"(use tcp:HOST:PORT, like tcp:127.0.0.1:8080)",
		"drover.conf:15: bad health in [service d]: \"tcp:db.example:5432\" " BAD_HOST,
		"drover.conf:18: bad health in [service e]: \"tcp:0.0.0.0:80\" " WILDCARD,
		"drover.conf:21: bad health in [service f]: \"tcp:[::]:80\" " WILDCARD,
		"drover.conf:24: bad health in [service g]: \"tcp:*:80\" " WILDCARD,
		"drover.conf:27: bad health in [service h]: \"tcp:127.0.0.1:0\" has a bad port (use 1 to 65535)",
		"drover.conf:30: bad health in [service i]: \"tcp:127.0.0.1:65536\" has a bad port (use 1 to 65535)",
		"drover.conf:33: bad health in [service j]: \"tcp:[::1]\" has no port (use HOST:PORT)",
		"drover.conf:36: bad health in [service k]: \"tcp:[::1:80\" has a bad host ([IPv6 address] without its ']')",
		"drover.conf:39: bad health in [service l]: \"tcp:::1:80\" " BAD_HOST,
		"drover.conf:42: bad health in [service m]: \"https://127.0.0.1/\" is https, which is not supported: "
		"droverd never parses more than a status line",
		"drover.conf:45: bad health in [service n]: \"http:///x\" has no host (use http://HOST:PORT/PATH)",
		"drover.conf:48: bad health in [service o]: \"http://127.0.0.1/a b\" " BAD_BYTE,
		"drover.conf:51: bad health in [service p]: \"http://127.0.0.1/a\tb\" " BAD_BYTE,
		"drover.conf:54: bad health in [service q]: \"http://127.0.0.1/caf\xc3\xa9\" " BAD_BYTE,
		"drover.conf:57: bad health in [service r]: \"http://127.0.0.1/x#frag\" " BAD_BYTE,
		"drover.conf:60: bad health in [service s]: \"http://0.0.0.0:80/\" " WILDCARD,
		"drover.conf:63: bad health in [service t]: \"http://127.0.0.1:http/\" has a bad port (use 1 to 65535)",
		"drover.conf:66: bad health in [service u]: \"HTTP://127.0.0.1/\" " BAD_PROBE,
		"drover.conf:70: duplicate key \"health\" in [service v] (first set at drover.conf:69)",
		"drover.conf:74: bad health_interval in [service w]: \"0\" must be more than zero",
		"drover.conf:75: bad health_timeout in [service w]: \"soon\" " BAD_DURATION,
		"drover.conf:76: bad health_retries in [service w]: \"0\" must be at least 1",
		"drover.conf:77: bad health_start_period in [service w]: \"-1s\" " BAD_DURATION,
		"drover.conf:81: bad health_retries in [service x]: \"1001\" is too large",
		"drover.conf:82: bad health_timeout in [service x]: \"0ms\" must be more than zero",
		"drover.conf:87: bad health_timeout in [service y]: \"soon\" " BAD_DURATION);

	/* A path up to HEALTH_PATH_MAX bytes is taken, one more is not. */
	n = snprintf(text, sizeof(text), "[service a]\ncommand = /bin/true\nhealth = http://127.0.0.1/");
	memset(text + n, 'p', HEALTH_PATH_MAX - 1);
	snprintf(text + n + HEALTH_PATH_MAX - 1, 3, "\n");
	assert_int_equal(strlen(svc(load_ok(*state, text), "a")->health.path), HEALTH_PATH_MAX);
	snprintf(text + n + HEALTH_PATH_MAX - 1, 3, "p\n");
	text[strlen(text) - 1] = '\0';
	snprintf(want, sizeof(want), "drover.conf:3: bad health in [service a]: \"%s\" "
		 "has a path longer than 512 bytes", strstr(text, "http://"));
	strcat(text, "\n");
	LOAD_FAILS(*state, text, want);
}

static void test_error_health_rules(void **state)
{
	LOAD_FAILS(*state,
		"[service once]\n"
		"mode = oneshot\n"
		"command = /bin/true\n"
		"health = tcp:127.0.0.1:80\n"
		"health_retries = 2\n"
		"ready = health\n"
		"[service acc]\n"
		"mode = accept\n"
		"command = /bin/true\n"
		"listen = tcp:127.0.0.1:9000\n"
		"health = tcp:127.0.0.1:9000\n"
		"[service tick]\n"
		"mode = timer\n"
		"command = /bin/true\n"
		"every = 1m\n"
		"health_interval = 5s\n"
		"ready = health\n"
		"[service noprobe]\n"
		"command = /bin/true\n"
		"ready = health\n"
		"health_interval = 5s\n"
		"health_timeout = 1s\n"
		"health_retries = 2\n"
		"health_start_period = 1m\n"
		"[service slow]\n"
		"mode = prefork\n"
		"command = /bin/true\n"
		"listen = tcp:127.0.0.1:9001\n"
		"health = http://127.0.0.1:9001/\n"
		"health_timeout = 15s\n"
		"[service slow2]\n"
		"command = /bin/true\n"
		"health_timeout = 3s\n"
		"health = exec:true\n"
		"health_interval = 2500ms\n",
		"drover.conf:4: health does not apply to mode oneshot in [service once] (it is for mode daemon, prefork)",
		"drover.conf:5: health_retries does not apply to mode oneshot in [service once] "
		"(it is for mode daemon, prefork)",
		"drover.conf:6: ready = health does not apply to mode oneshot in [service once]",
		"drover.conf:11: health does not apply to mode accept in [service acc] (it is for mode daemon, prefork)",
		"drover.conf:16: health_interval does not apply to mode timer in [service tick] "
		"(it is for mode daemon, prefork)",
		"drover.conf:17: ready does not apply to mode timer in [service tick] "
		"(it is for mode daemon, prefork, oneshot)",
		"drover.conf:20: ready = health needs a \"health\" probe in [service noprobe]",
		"drover.conf:21: health_interval needs a \"health\" probe in [service noprobe]",
		"drover.conf:22: health_timeout needs a \"health\" probe in [service noprobe]",
		"drover.conf:23: health_retries needs a \"health\" probe in [service noprobe]",
		"drover.conf:24: health_start_period needs a \"health\" probe in [service noprobe]");
	/* slow and slow2: a timeout longer than the interval is allowed (a
	 * probe due while the last one runs is skipped). */
}

/* ---- reload diff ---- */

/* config_files of the base service: absolute, so that these tests do not
 * depend on how relative paths are resolved. */
static char cf_path[128];

static void set_cf(const struct fx *f, const char *content)
{
	snprintf(cf_path, sizeof(cf_path), "%s/cf.txt", f->dir);
	if (content)
		write_file(cf_path, content);
}

/* The base configuration, with the line of [service s] that starts with
 * `key =` replaced by `line` (or `line` appended when there is none). */
static void base_with(char *out, size_t len, const char *key, const char *line)
{
	static const char *const base[] = {
		"[service dep]", "command = /bin/true",
		"[service dep2]", "command = /bin/true",
		"[service s]",
		"mode = prefork",
		"command = /bin/true --flag",
		"listen = tcp:127.0.0.1:9100",
		"procs = 2",
		"max_procs = 8",
		"restart_delay = 100ms",
		"stop_timeout = 10s",
		"requires = dep",
		"env = A=1",
		"user = daemon",
		"chdir = /",
		"umask = 022",
		"limit_nofile = 1024",
		"config_files = CF",
		NULL,
	};
	size_t n = 0, kl = key ? strlen(key) : 0;
	bool in_s = false, done = false;

	out[0] = '\0';
	for (int i = 0; base[i]; i++) {
		const char *l = base[i];

		in_s = in_s || strcmp(l, "[service s]") == 0;
		if (in_s && key && !done && strncmp(l, key, kl) == 0 && l[kl] == ' ' && l[kl + 1] == '=') {
			l = line;
			done = true;
		}
		if (strcmp(l, "config_files = CF") == 0)
			n += (size_t)snprintf(out + n, len - n, "config_files = %s\n", cf_path);
		else
			n += (size_t)snprintf(out + n, len - n, "%s\n", l);
	}
	if (key && !done)
		snprintf(out + n, len - n, "%s\n", line);
}

static enum conf_change compare_texts(struct fx *f, const char *a, const char *b)
{
	struct conf_errors e1 = { 0 }, e2 = { 0 };
	struct conf *c1, *c2;
	enum conf_change ch;

	(void)f;
	write_file("drover.conf", a);
	c1 = conf_load("drover.conf", false, &e1);
	write_file("drover.conf", b);
	c2 = conf_load("drover.conf", false, &e2);
	if (!c1 || !c2) {
		for (int i = 0; i < e1.n; i++)
			print_message("  old: %s\n", e1.msg[i]);
		for (int i = 0; i < e2.n; i++)
			print_message("  new: %s\n", e2.msg[i]);
		fail_msg("configuration refused");
	}
	ch = conf_compare(conf_find(c1, "s"), conf_find(c2, "s"));
	/* The other services did not change. */
	assert_int_equal(conf_compare(conf_find(c1, "dep"), conf_find(c2, "dep")), CHANGE_NONE);
	conf_free(c1);
	conf_free(c2);
	conf_errors_free(&e1);
	conf_errors_free(&e2);
	return ch;
}

static const char *change_name(enum conf_change c)
{
	return c == CHANGE_NONE ? "none" : c == CHANGE_LIVE ? "live" : "replace";
}

static void expect_change(struct fx *f, const char *key, const char *line, enum conf_change want)
{
	char a[2048], b[2048];
	enum conf_change got;

	base_with(a, sizeof(a), NULL, NULL);
	base_with(b, sizeof(b), key, line);
	got = compare_texts(f, a, b);
	if (got != want)
		fail_msg("\"%s\": %s, want %s", line, change_name(got), change_name(want));
}

static void test_compare_unchanged(void **state)
{
	struct fx *f = *state;
	char a[2048], b[4096];

	set_cf(f, "v1\n");
	base_with(a, sizeof(a), NULL, NULL);
	assert_int_equal(compare_texts(f, a, a), CHANGE_NONE);
	/* Comments, blank lines, spacing and order do not matter. */
	snprintf(b, sizeof(b), "# moved around\n\n%s\n", a);
	assert_int_equal(compare_texts(f, a, b), CHANGE_NONE);
	base_with(b, sizeof(b), "procs", "procs    =    2   ");
	assert_int_equal(compare_texts(f, a, b), CHANGE_NONE);
	base_with(b, sizeof(b), "procs", "# procs below");
	strcat(b, "procs = 2\n");
	assert_int_equal(compare_texts(f, a, b), CHANGE_NONE);
}

static void test_compare_live(void **state)
{
	struct fx *f = *state;

	set_cf(f, "v1\n");
	expect_change(f, "procs", "procs = 3", CHANGE_LIVE);
	expect_change(f, "max_procs", "max_procs = 9", CHANGE_LIVE);
	expect_change(f, "restart_delay", "restart_delay = 200ms", CHANGE_LIVE);
	expect_change(f, "stop_timeout", "stop_timeout = 20s", CHANGE_LIVE);
	expect_change(f, "stop_timeout", "stop_timeout = 10000ms", CHANGE_LIVE);
	expect_change(f, "requires", "requires = dep2", CHANGE_LIVE);
	expect_change(f, "after", "after = dep2", CHANGE_LIVE);
	expect_change(f, "idle_timeout", "idle_timeout = 5m", CHANGE_LIVE);
	expect_change(f, "stop_signal", "stop_signal = INT", CHANGE_LIVE);
	expect_change(f, "restart", "restart = on-failure", CHANGE_LIVE);
	expect_change(f, "critical", "critical = yes", CHANGE_LIVE);
}

static void test_compare_replace(void **state)
{
	struct fx *f = *state;

	set_cf(f, "v1\n");
	expect_change(f, "command", "command = /bin/true --other", CHANGE_REPLACE);
	expect_change(f, "env", "env = A=2", CHANGE_REPLACE);
	expect_change(f, "env2", "env = B=1", CHANGE_REPLACE);
	expect_change(f, "user", "user = bin", CHANGE_REPLACE);
	expect_change(f, "group", "group = bin", CHANGE_REPLACE);
	expect_change(f, "listen", "listen = tcp:127.0.0.1:9101", CHANGE_REPLACE);
	expect_change(f, "listen2", "listen = tcp:127.0.0.1:9102", CHANGE_REPLACE);
	expect_change(f, "chdir", "chdir = /tmp", CHANGE_REPLACE);
	expect_change(f, "umask", "umask = 027", CHANGE_REPLACE);
	expect_change(f, "limit_nofile", "limit_nofile = 2048", CHANGE_REPLACE);
	expect_change(f, "limit_core", "limit_core = 0", CHANGE_REPLACE);
	expect_change(f, "env_inherit", "env_inherit = yes", CHANGE_REPLACE);
	expect_change(f, "config_files", "config_files = other.txt", CHANGE_REPLACE);
}

/* no_new_privs: a boolean, off by default, and a process key: changing
 * it replaces the service's processes. */
static void test_no_new_privs(void **state)
{
	struct fx *f = *state;
	struct conf *c = load_ok(f, "[service on]\ncommand = /bin/true\nno_new_privs = yes\n"
				    "[service off]\ncommand = /bin/true\nno_new_privs = off\n"
				    "[service plain]\ncommand = /bin/true\n");

	assert_true(svc(c, "on")->no_new_privs);
	assert_false(svc(c, "off")->no_new_privs);
	assert_false(svc(c, "plain")->no_new_privs);
	assert_string_equal(raw(svc(c, "on"), "no_new_privs"), "yes");
	LOAD_FAILS(f, "[service web]\ncommand = /bin/true\nno_new_privs = sometimes\n",
		   "drover.conf:3: bad no_new_privs in [service web]: \"sometimes\" " BAD_BOOL);
	set_cf(f, "v1\n");
	expect_change(f, "no_new_privs", "no_new_privs = yes", CHANGE_REPLACE);
}

static void test_compare_live_and_replace(void **state)
{
	struct fx *f = *state;
	char a[2048], b[2048], *p;

	set_cf(f, "v1\n");
	base_with(a, sizeof(a), NULL, NULL);
	base_with(b, sizeof(b), "procs", "procs = 3");
	p = strstr(b, "--flag");
	assert_non_null(p);
	memcpy(p, "--FLAG", 6);
	assert_int_equal(compare_texts(f, a, b), CHANGE_REPLACE);
}

static void test_compare_config_files_content(void **state)
{
	struct fx *f = *state;
	struct conf_errors e1 = { 0 }, e2 = { 0 }, e3 = { 0 }, e4 = { 0 };
	struct conf *c1, *c2, *c3, *c4;
	char text[2048];

	set_cf(f, "v1\n");
	base_with(text, sizeof(text), NULL, NULL);
	write_file("drover.conf", text);
	c1 = conf_load("drover.conf", false, &e1);
	set_cf(f, "v1\n");
	c2 = conf_load("drover.conf", false, &e2);
	set_cf(f, "v2\n");
	c3 = conf_load("drover.conf", false, &e3);
	assert_int_equal(unlink(cf_path), 0);
	c4 = conf_load("drover.conf", false, &e4);
	assert_non_null(c1);
	assert_non_null(c2);
	assert_non_null(c3);
	assert_non_null(c4);
	assert_int_equal(conf_find(c1, "s")->config_files[0].err, 0);
	assert_true(conf_find(c1, "s")->config_files[0].hash == fnv1a("v1\n"));
	assert_true(conf_find(c3, "s")->config_files[0].hash == fnv1a("v2\n"));
	assert_int_equal(conf_find(c4, "s")->config_files[0].err, ENOENT);
	assert_int_equal(conf_compare(conf_find(c1, "s"), conf_find(c2, "s")), CHANGE_NONE);
	assert_int_equal(conf_compare(conf_find(c2, "s"), conf_find(c3, "s")), CHANGE_REPLACE);
	assert_int_equal(conf_compare(conf_find(c3, "s"), conf_find(c4, "s")), CHANGE_REPLACE);
	assert_int_equal(conf_compare(conf_find(c4, "s"), conf_find(c4, "s")), CHANGE_NONE);
	conf_free(c1);
	conf_free(c2);
	conf_free(c3);
	conf_free(c4);
	conf_errors_free(&e1);
	conf_errors_free(&e2);
	conf_errors_free(&e3);
	conf_errors_free(&e4);
}

/* Probe settings are supervision: a reload applies them live. Changing
 * ready (to or from health) still replaces, as ready decides what the
 * process gets (NOTIFY_SOCKET). */
/* An exec probe's program must be one that can run: a path to an
 * executable file, or a name found in the default PATH; a service that
 * sets its own PATH is trusted to find its program. */
static void test_error_health_program(void **state)
{
	LOAD_FAILS(*state,
		"[service a]\ncommand = /bin/true\nhealth = exec:/nonexistent/probe --x\n"
		"[service b]\ncommand = /bin/true\nhealth = exec:/etc/passwd\n"
		"[service c]\ncommand = /bin/true\nhealth = exec:no-such-probe-program\n"
		"[service d]\ncommand = /bin/true\nhealth = exec:no-such-probe-program\nenv = PATH=/opt/probes\n"
		"[service e]\ncommand = /bin/true\nhealth = exec:sh -c 'exit 0'\n",
		"drover.conf:3: the health probe's program \"/nonexistent/probe\" cannot run: No such file or "
		"directory in [service a]",
		"drover.conf:6: the health probe's program \"/etc/passwd\" cannot run: Permission denied in "
		"[service b]",
		"drover.conf:9: the health probe's program \"no-such-probe-program\" cannot run: No such file or "
		"directory in [service c]");
}

static void test_compare_health(void **state)
{
	struct fx *f = *state;
	char a[2048], b[2048];

	set_cf(f, "v1\n");
	expect_change(f, "health", "health = tcp:127.0.0.1:9100", CHANGE_LIVE);
	base_with(a, sizeof(a), "health", "health = tcp:127.0.0.1:9100");
	strcat(a, "health_interval = 5s\nhealth_timeout = 1s\nhealth_retries = 2\nhealth_start_period = 0\n");
	assert_int_equal(compare_texts(f, a, a), CHANGE_NONE);
	base_with(b, sizeof(b), "health", "health = http://127.0.0.1:9100/ok");
	assert_int_equal(compare_texts(f, a, b), CHANGE_LIVE);
	base_with(b, sizeof(b), "health", "health = exec:/bin/true");
	strcat(b, "health_interval = 1s\nhealth_timeout = 1s\nhealth_retries = 5\nhealth_start_period = 30s\n");
	assert_int_equal(compare_texts(f, a, b), CHANGE_LIVE);
	assert_int_equal(compare_texts(f, b, a), CHANGE_LIVE);
	base_with(b, sizeof(b), NULL, NULL);
	assert_int_equal(compare_texts(f, a, b), CHANGE_LIVE);
	/* The same probe change with a process key: replaced. */
	base_with(b, sizeof(b), "command", "command = /bin/true --other");
	strcat(b, "health = tcp:127.0.0.1:9101\n");
	assert_int_equal(compare_texts(f, a, b), CHANGE_REPLACE);
	base_with(b, sizeof(b), "health", "health = tcp:127.0.0.1:9100");
	strcat(b, "ready = health\n");
	assert_int_equal(compare_texts(f, a, b), CHANGE_REPLACE);
}

/* Relative paths in the configuration (config_files, control) are taken
 * from the directory of the file that holds them - also when that file was
 * named without a directory ("drover -c drover.conf check"). */
static void test_relative_paths(void **state)
{
	struct fx *f = *state;
	struct conf *c;
	struct svc_conf *s;

	make_dir("sub");
	write_file("sub/app.ini", "a=1\n");
	write_file("sub/main.conf", "[drover]\ncontrol = run/ctl.sock\n"
		   "[service a]\ncommand = /bin/true\nconfig_files = app.ini\n");
	c = load_file(f, "sub/main.conf", false);
	assert_non_null(c);
	assert_string_equal(c->control, "sub/run/ctl.sock");
	s = svc(c, "a");
	assert_string_equal(s->config_files[0].path, "sub/app.ini");
	assert_int_equal(s->config_files[0].err, 0);
	assert_true(s->config_files[0].hash == fnv1a("a=1\n"));

	write_file("app.ini", "b=2\n");
	c = load_ok(f, "[drover]\ncontrol = run/ctl.sock\n"
		    "[service a]\ncommand = /bin/true\nconfig_files = app.ini\n");
	s = svc(c, "a");
	if (strcmp(s->config_files[0].path, "./app.ini") != 0 &&
	    strcmp(s->config_files[0].path, "app.ini") != 0)
		fail_msg("config_files path \"%s\", want \"./app.ini\"", s->config_files[0].path);
	assert_int_equal(s->config_files[0].err, 0);
	assert_true(s->config_files[0].hash == fnv1a("b=2\n"));
	if (strcmp(c->control, "./run/ctl.sock") != 0 && strcmp(c->control, "run/ctl.sock") != 0)
		fail_msg("control \"%s\", want \"./run/ctl.sock\"", c->control);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_full_config),
		T(test_defaults),
		T(test_config_files_not_regular),
		T(test_mode_defaults),
		T(test_syntax_variants),
		T(test_empty_config),
		T(test_example_config),
		cmocka_unit_test(test_name_valid),
		T(test_find_and_mode_names),
		T(test_numeric_credentials),
		T(test_error_unknown_key),
		T(test_error_key_in_wrong_section),
		T(test_error_key_in_wrong_section_beats_hint),
		T(test_error_duplicate_key),
		T(test_error_bad_service_values),
		T(test_error_bad_counts),
		T(test_error_bad_command),
		T(test_error_bad_global_values),
		T(test_error_sections),
		T(test_error_long_service_name),
		T(test_error_references),
		T(test_error_references_own_lines),
		T(test_error_cycle),
		T(test_error_cycle_after_and_lead_in),
		T(test_error_cycle_line_of_closing_key),
		T(test_valid_dependencies),
		T(test_error_mode_keys),
		T(test_error_mode_rules),
		T(test_error_demand_oneshot),
		T(test_error_too_many_listeners),
		T(test_error_credentials),
		T(test_numeric_user_with_entry),
		T(test_errors_all_sorted),
		T(test_duplicate_listeners),
		T(test_listeners_reuseport_share),
		T(test_listeners_tcp_and_udp_same_port),
		T(test_main_file_missing),
		T(test_include_sorted_relative),
		T(test_include_literal_missing),
		T(test_include_missing_directory),
		T(test_include_not_regular),
		T(test_error_in_a_file_with_a_very_long_name),
		T(test_include_loop),
		T(test_include_twice),
		T(test_include_too_deep),
		T(test_include_duplicate_global_key),
		T(test_include_restores_section),
		T(test_nul_byte),
		T(test_writable_refused_as_root),
		T(test_writable_include_refused_as_root),
		T(test_directory_others_can_write_refused_as_root),
		T(test_oversized_file),
		T(test_compare_unchanged),
		T(test_compare_live),
		T(test_compare_replace),
		T(test_no_new_privs),
		T(test_compare_live_and_replace),
		T(test_compare_config_files_content),
		T(test_relative_paths),
		T(test_health_defaults),
		T(test_health_exec),
		T(test_health_tcp),
		T(test_health_http),
		T(test_error_health_values),
		T(test_error_health_rules),
		T(test_error_health_program),
		T(test_compare_health),
	};

	return cmocka_run_group_tests_name("conf", tests, NULL, NULL);
}
