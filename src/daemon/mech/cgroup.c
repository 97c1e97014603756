/* cgroup.c - see cgroup.h.
 *
 * Only the kernel's cgroup v2 files: where things are, what is in them,
 * how their processes are ended. A cgroup's emptiness is learnt from
 * cgroup.events, watched in the loop (EPOLLPRI when "populated" changes),
 * never by waiting. cgroup v2 allows processes only in leaves once a
 * controller is enabled below a cgroup ("no internal processes"): droverd
 * lives in BASE/droverd, services under BASE/services.PID. */
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

#define LEAF "droverd"
enum { RECHECK_MS = 100 };
/* A path or text into buf: true when it did not fit. */
#define TOO_LONG(buf, ...) (snprintf((buf), sizeof(buf), __VA_ARGS__) >= (int)sizeof(buf))

/* The controllers droverd uses, as the kernel names them. */
enum { C_CPU, C_MEMORY, C_PIDS, C_COUNT };
static const char *const ctrl_name[C_COUNT] = { "cpu", "memory", "pids" };

struct cgroup {
	char *path;
	int procs_fd;		/* cgroup.procs, O_WRONLY */
	int events_fd;		/* cgroup.events */
	struct watch w;
	bool populated;
	bool stopping;		/* a stop signal was sent; SIGKILL is due */
	bool killed;
	struct timer t_kill;
	void (*emptied)(void *arg);
	void *arg;
	struct cgroup *next;	/* all of them */
};

static struct {
	bool on;
	char base[PATH_MAX];	/* droverd's delegated cgroup */
	char dir[PATH_MAX];	/* BASE/services.PID */
	bool has_kill;		/* cgroup.kill (Linux 5.14) */
	bool enabled[C_COUNT];	/* what droverd enabled in BASE/cgroup.subtree_control */
	struct cgroup *all;
} cg;

bool cgroup_enabled(void)
{
	return cg.on;
}

/* --- small file access ---------------------------------------------------- */

static int write_file(const char *dir, const char *file, const char *text)
{
	char path[PATH_MAX];
	int fd, rc = 0;

	if (TOO_LONG(path, "%s/%s", dir, file)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
		return -1;
	if (write(fd, text, strlen(text)) < 0)
		rc = -1;
	if (rc < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	close(fd);
	return 0;
}

/* The whole (small) file, NUL-terminated; -1 when it cannot be read. */
static ssize_t read_fd_text(int fd, char *buf, size_t len)
{
	size_t n = 0;
	ssize_t r;

	while (n < len - 1 && (r = pread(fd, buf + n, len - 1 - n, (off_t)n)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		n += (size_t)r;
	}
	buf[n] = '\0';
	return (ssize_t)n;
}

static ssize_t read_file(const char *dir, const char *file, char *buf, size_t len)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	if (TOO_LONG(path, "%s/%s", dir, file) || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read_fd_text(fd, buf, len);
	close(fd);
	return n;
}

/* "KEY VALUE" lines (cgroup.events, cpu.stat): the value of key, or -1. */
static int64_t keyed_value(const char *text, const char *key)
{
	size_t kl = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, key, kl) == 0 && p[kl] == ' ')
			return strtoll(p + kl + 1, NULL, 10);
	return -1;
}

/* Is word one of the space-separated words of list? */
static bool has_word(const char *list, const char *word)
{
	size_t wl = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += wl)
		if ((p == list || p[-1] == ' ') && (p[wl] == ' ' || p[wl] == '\n' || !p[wl]))
			return true;
	return false;
}

/* --- where droverd is ----------------------------------------------------- */

/* The mount point of the cgroup2 file system (mountinfo field 5, after
 * "- cgroup2"); its root must be "/" (no cgroup namespace surprises). */
static int find_mount(char *out, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], root[PATH_MAX], mnt[PATH_MAX];
	int found = -1;

	if (!f)
		return -1;
	while (found < 0 && fgets(line, sizeof(line), f)) {
		const char *sep = strstr(line, " - cgroup2 ");

		if (sep && sscanf(line, "%*s %*s %*s %4095s %4095s", root, mnt) == 2 && strcmp(root, "/") == 0) {
			/* octal escapes (\040 for a blank) are rare here: refuse them */
			if (strchr(mnt, '\\'))
				continue;
			snprintf(out, len, "%s", mnt);
			found = 0;
		}
	}
	fclose(f);
	return found;
}

/* "0::/path" from /proc/self/cgroup. */
static int own_cgroup(char *out, size_t len)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[PATH_MAX + 8];
	int found = -1;

	if (!f)
		return -1;
	while (found < 0 && fgets(line, sizeof(line), f))
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = '\0';
			if (strlen(line + 3) < len) {
				memcpy(out, line + 3, strlen(line + 3) + 1);
				found = 0;
			}
		}
	fclose(f);
	return found;
}

/* BASE: droverd's cgroup, or its parent when droverd is in its leaf
 * already (an in-place upgrade, or a handover's new droverd). */
static int find_base(char *err, size_t len)
{
	char mnt[PATH_MAX], own[PATH_MAX];
	const char *slash;
	size_t ol;

	if (find_mount(mnt, sizeof(mnt)) < 0) {
		snprintf(err, len, "no cgroup2 file system is mounted");
		return -1;
	}
	if (own_cgroup(own, sizeof(own)) < 0 || own[0] != '/') {
		snprintf(err, len, "droverd's cgroup v2 is not in /proc/self/cgroup");
		return -1;
	}
	ol = strlen(own);
	slash = strrchr(own, '/');
	if (strcmp(slash + 1, LEAF) == 0)
		own[slash == own ? 1 : slash - own] = '\0';
	else if (ol > 1 && own[ol - 1] == '/')
		own[ol - 1] = '\0';
	if (TOO_LONG(cg.base, "%s%s", mnt, strcmp(own, "/") == 0 ? "" : own)) {
		snprintf(err, len, "droverd's cgroup path is too long");
		return -1;
	}
	return 0;
}

static int make_dir(const char *path)
{
	return mkdir(path, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/* Enable in dir's cgroup.subtree_control what dir has of ours; which ones
 * were enabled by this call in *set (may be NULL). */
static void enable_controllers(const char *dir, bool *set)
{
	char avail[512], have[512], plus[32];

	if (read_file(dir, "cgroup.controllers", avail, sizeof(avail)) < 0)
		return;
	if (read_file(dir, "cgroup.subtree_control", have, sizeof(have)) < 0)
		have[0] = '\0';
	for (int i = 0; i < C_COUNT; i++) {
		if (!has_word(avail, ctrl_name[i]) || has_word(have, ctrl_name[i]))
			continue;
		snprintf(plus, sizeof(plus), "+%s", ctrl_name[i]);
		if (write_file(dir, "cgroup.subtree_control", plus) < 0)
			log_warn("cannot enable the %s controller in %s/cgroup.subtree_control: %s", ctrl_name[i],
				 dir, strerror(errno));
		else if (set)
			set[i] = true;
	}
}

/* Into BASE/droverd, unless droverd is there already. */
static int enter_leaf(char *err, size_t len)
{
	char leaf[PATH_MAX + 16], pid[24];

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	errno = 0;
	if (TOO_LONG(leaf, "%s/" LEAF, cg.base))
		errno = ENAMETOOLONG;
	if (errno == ENAMETOOLONG || make_dir(leaf) < 0 || write_file(leaf, "cgroup.procs", pid) < 0) {
		snprintf(err, len, "cannot move droverd into %s: %s", leaf, strerror(errno));
		return -1;
	}
	return 0;
}

static void sweep_stale(void);

int cgroup_init(enum cgroup_mode mode, char *err, size_t len)
{
	char kill_path[PATH_MAX + 16];

	if (mode == CGROUP_NO)
		return 0;
	if (find_base(err, len) < 0)
		return -1;
	if (faccessat(AT_FDCWD, cg.base, W_OK, AT_EACCESS) < 0) {
		snprintf(err, len, "droverd's cgroup %s is not writable by uid %u: %s (run droverd as root, or under systemd with Delegate=yes)",
			 cg.base, (unsigned)geteuid(), strerror(errno));
		return -1;
	}
	if (enter_leaf(err, len) < 0)
		return -1;
	enable_controllers(cg.base, cg.enabled);
	errno = 0;
	if (TOO_LONG(cg.dir, "%s/services.%d", cg.base, (int)getpid()))
		errno = ENAMETOOLONG;
	if (errno == ENAMETOOLONG || make_dir(cg.dir) < 0) {
		snprintf(err, len, "cannot create %s: %s", cg.dir, strerror(errno));
		return -1;
	}
	enable_controllers(cg.dir, NULL);
	cg.has_kill = !TOO_LONG(kill_path, "%s/cgroup.kill", cg.dir) && access(kill_path, F_OK) == 0;
	cg.on = true;
	/* A start that fails after this point ends in fatal(): exit() then
	 * removes what was made here, as the end of main() does. */
	atexit(cgroup_finish);
	sweep_stale();
	log_debug("services are tracked in cgroups under %s", cg.dir);
	return 0;
}

/* --- one service's cgroup ------------------------------------------------- */

static void kill_due(struct timer *t);

static void read_populated(struct cgroup *c)
{
	char text[256];
	bool was = c->populated;

	if (read_fd_text(c->events_fd, text, sizeof(text)) < 0)
		return;
	c->populated = keyed_value(text, "populated") > 0;
	if (was && !c->populated) {
		timer_cancel(&c->t_kill);
		c->stopping = c->killed = false;
		c->emptied(c->arg);
	}
}

static void events_ready(struct watch *w, uint32_t events)
{
	struct cgroup *c = (struct cgroup *)((char *)w - offsetof(struct cgroup, w));

	(void)events;
	read_populated(c);
}

static void cgroup_free(struct cgroup *c)
{
	if (c->events_fd >= 0) {
		loop_del(&c->w);
		close(c->events_fd);
	}
	if (c->procs_fd >= 0)
		close(c->procs_fd);
	timer_cancel(&c->t_kill);
	free(c->path);
	free(c);
}

struct cgroup *cgroup_open(const char *name, void (*emptied)(void *arg), void *arg, char *err, size_t len)
{
	struct cgroup *c = calloc(1, sizeof(*c));
	char path[PATH_MAX], file[PATH_MAX + 16];

	if (!c || !cg.on) {
		snprintf(err, len, "cannot make its cgroup: %s", c ? "cgroups are not in use" : "out of memory");
		free(c);
		return NULL;
	}
	c->procs_fd = c->events_fd = -1;
	c->emptied = emptied;
	c->arg = arg;
	errno = ENAMETOOLONG;
	if (TOO_LONG(path, "%s/%s.service", cg.dir, name) || !(c->path = strdup(path)) || make_dir(path) < 0)
		goto fail;
	errno = ENAMETOOLONG;
	if (TOO_LONG(file, "%s/cgroup.procs", path) || (c->procs_fd = open(file, O_WRONLY | O_CLOEXEC)) < 0)
		goto fail;
	errno = ENAMETOOLONG;
	if (TOO_LONG(file, "%s/cgroup.events", path) || (c->events_fd = open(file, O_RDONLY | O_CLOEXEC)) < 0)
		goto fail;
	if (loop_add(&c->w, c->events_fd, EPOLLPRI, events_ready) < 0)
		goto fail;
	read_populated(c);
	c->next = cg.all;
	cg.all = c;
	return c;
fail:
	snprintf(err, len, "cannot make its cgroup %s: %s", path, strerror(errno));
	if (c->events_fd >= 0) {
		close(c->events_fd);
		c->events_fd = -1;
	}
	cgroup_free(c);
	return NULL;
}

/* A service removed while it drains and added again has two records, and
 * both hold its one directory: the new one starts only once the directory
 * is empty (the old processes gone), and the directory goes with the last
 * of them. */
static bool still_held(const char *path)
{
	for (const struct cgroup *o = cg.all; o; o = o->next)
		if (strcmp(o->path, path) == 0)
			return true;
	return false;
}

void cgroup_close(struct cgroup *c)
{
	if (!c)
		return;
	for (struct cgroup **pp = &cg.all; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	if (!still_held(c->path) && rmdir(c->path) < 0 && errno != ENOENT)
		log_warn("cannot remove the cgroup %s: %s", c->path, strerror(errno));
	cgroup_free(c);
}

int cgroup_procs_fd(const struct cgroup *c)
{
	return c->procs_fd;
}

bool cgroup_populated(const struct cgroup *c)
{
	return c->populated;
}

bool cgroup_all_empty(void)
{
	for (const struct cgroup *c = cg.all; c; c = c->next)
		if (c->populated)
			return false;
	return true;
}

/* --- ending what is in it ------------------------------------------------- */

/* sig to every process listed in cgroup.procs; how many there were. */
/* Every pid listed, read a line at a time: a list longer than any buffer
 * is read to its end, and a number is used only once its line is whole (a
 * cut one would be some other process's pid). */
static int signal_all(const struct cgroup *c, int sig)
{
	char path[PATH_MAX], buf[4096];
	size_t have = 0;
	ssize_t r;
	int n = 0, fd;

	if (TOO_LONG(path, "%s/cgroup.procs", c->path) || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	while ((r = read(fd, buf + have, sizeof(buf) - 1 - have)) != 0) {
		char *p = buf, *nl;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		have += (size_t)r;
		buf[have] = '\0';
		for (; (nl = strchr(p, '\n')); p = nl + 1) {
			long pid = strtol(p, NULL, 10);

			if (pid > 0 && kill((pid_t)pid, sig) == 0)
				n++;
		}
		have -= (size_t)(p - buf);
		memmove(buf, p, have);
		if (have == sizeof(buf) - 1)
			break;		/* no pid is that long */
	}
	close(fd);
	return n;
}

/* Without cgroup.kill: frozen, nothing in it can fork while it is walked;
 * a frozen process still dies of SIGKILL. */
static void kill_frozen(const struct cgroup *c)
{
	bool frozen = write_file(c->path, "cgroup.freeze", "1") == 0;

	signal_all(c, SIGKILL);
	if (frozen)
		write_file(c->path, "cgroup.freeze", "0");
}

static void kill_now(struct cgroup *c)
{
	if (!cg.has_kill || write_file(c->path, "cgroup.kill", "1") < 0)
		kill_frozen(c);
	timer_after(&c->t_kill, RECHECK_MS, kill_due);
}

static void kill_due(struct timer *t)
{
	struct cgroup *c = (struct cgroup *)((char *)t - offsetof(struct cgroup, t_kill));

	read_populated(c);
	if (!c->populated)
		return;
	if (!c->killed)
		log_warn("%s: processes left in it did not stop in time: killing them", c->path);
	c->killed = true;
	kill_now(c);
}

bool cgroup_stop(struct cgroup *c, int sig, int64_t timeout)
{
	read_populated(c);	/* its event may not have been read yet */
	if (!c->populated || c->stopping)
		return false;
	c->stopping = true;
	if (sig != SIGKILL) {
		signal_all(c, SIGCONT);	/* a stopped process must see it */
		signal_all(c, sig);
		timer_after(&c->t_kill, timeout, kill_due);
		return true;
	}
	cgroup_kill(c);
	return true;
}

void cgroup_kill(struct cgroup *c)
{
	read_populated(c);
	if (!c->populated)
		return;
	c->stopping = c->killed = true;
	kill_now(c);
}

/* --- limits and figures --------------------------------------------------- */

static bool controller_ok(const struct cgroup *c, int ctrl, const char *key, char *err, size_t len)
{
	char avail[512];

	if (read_file(c->path, "cgroup.controllers", avail, sizeof(avail)) >= 0 && has_word(avail, ctrl_name[ctrl]))
		return true;
	snprintf(err, len,
		 "cannot apply %s: the %s controller is not available in %s: enable it for droverd's cgroup (systemd: Delegate=yes)",
		 key, ctrl_name[ctrl], cg.dir);
	return false;
}

/* Write value to file, or reset it when the key is not set (and the
 * controller may not even be there: then there is nothing to reset). */
static int limit(const struct cgroup *c, int ctrl, const char *key, const char *file, bool set,
		 const char *value, const char *reset, char *err, size_t len)
{
	if (!set) {
		char avail[512];

		if (read_file(c->path, "cgroup.controllers", avail, sizeof(avail)) >= 0 &&
		    has_word(avail, ctrl_name[ctrl]))
			write_file(c->path, file, reset);
		return 0;
	}
	if (!controller_ok(c, ctrl, key, err, len))
		return -1;
	if (write_file(c->path, file, value) < 0) {
		snprintf(err, len, "cannot apply %s: cannot write \"%s\" to %s/%s: %s", key, value, c->path, file,
			 strerror(errno));
		return -1;
	}
	return 0;
}

int cgroup_apply_limits(struct cgroup *c, const struct svc_conf *s, char *err, size_t len)
{
	char mem[32], pids[32], weight[32], quota[48];

	snprintf(mem, sizeof(mem), "%llu", (unsigned long long)s->memory_max);
	snprintf(pids, sizeof(pids), "%u", s->pids_max);
	snprintf(weight, sizeof(weight), "%u", s->cpu_weight);
	/* per 100ms period: 1% of one CPU is 1000us */
	snprintf(quota, sizeof(quota), "%llu 100000", (unsigned long long)s->cpu_max * 1000);
	if (limit(c, C_MEMORY, "memory_max", "memory.max", s->memory_max, mem, "max", err, len) < 0 ||
	    limit(c, C_PIDS, "pids_max", "pids.max", s->pids_max, pids, "max", err, len) < 0 ||
	    limit(c, C_CPU, "cpu_weight", "cpu.weight", s->cpu_weight, weight, "100", err, len) < 0 ||
	    limit(c, C_CPU, "cpu_max", "cpu.max", s->cpu_max, quota, "max 100000", err, len) < 0)
		return -1;
	return 0;
}

void cgroup_read_stats(const struct cgroup *c, struct cgroup_stats *st)
{
	char text[1024];

	st->cpu_usec = st->memory_bytes = st->tasks = -1;
	if (read_file(c->path, "cpu.stat", text, sizeof(text)) >= 0)
		st->cpu_usec = keyed_value(text, "usage_usec");
	if (read_file(c->path, "memory.current", text, sizeof(text)) > 0)
		st->memory_bytes = strtoll(text, NULL, 10);
	if (read_file(c->path, "pids.current", text, sizeof(text)) > 0)
		st->tasks = strtoll(text, NULL, 10);
}

/* --- cleaning up ---------------------------------------------------------- */

/* Remove dir's child cgroups (NAME.service), then dir. */
static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[PATH_MAX];

	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_type == DT_DIR && e->d_name[0] != '.') {
			if (!TOO_LONG(path, "%s/%s", dir, e->d_name) && rmdir(path) < 0)
				log_warn("cannot remove the cgroup %s: %s", path, strerror(errno));
		}
	closedir(d);
	if (rmdir(dir) < 0 && errno != ENOENT)
		log_warn("cannot remove the cgroup %s: %s", dir, strerror(errno));
}

/* Is droverd alone in its leaf (no other droverd of this BASE runs)? */
static bool alone_in_leaf(void)
{
	char leaf[PATH_MAX + 16], text[256];
	long pid;

	if (TOO_LONG(leaf, "%s/" LEAF, cg.base) || read_file(leaf, "cgroup.procs", text, sizeof(text)) < 0)
		return false;
	pid = strtol(text, NULL, 10);
	return pid == (long)getpid() && !strchr(strchr(text, '\n') ? strchr(text, '\n') + 1 : "", '\n');
}

/* services.PID of droverds that are gone (killed, crashed): when droverd
 * is alone in its leaf, every other one is. */
static void sweep_stale(void)
{
	char own[32], path[PATH_MAX];
	struct dirent *e;
	DIR *d;

	if (!alone_in_leaf() || !(d = opendir(cg.base)))
		return;
	snprintf(own, sizeof(own), "services.%d", (int)getpid());
	while ((e = readdir(d)))
		if (e->d_type == DT_DIR && strncmp(e->d_name, "services.", 9) == 0 && strcmp(e->d_name, own) != 0) {
			if (TOO_LONG(path, "%s/%s", cg.base, e->d_name))
				continue;
			log_info("removing the cgroups of a droverd that is gone: %s", path);
			remove_tree(path);
		}
	closedir(d);
}

/* Back into BASE: first the controllers droverd enabled there go (no
 * process may sit beside a cgroup with controllers). */
static void leave_leaf(void)
{
	char leaf[PATH_MAX + 16], pid[24], minus[32];

	for (int i = 0; i < C_COUNT; i++) {
		snprintf(minus, sizeof(minus), "-%s", ctrl_name[i]);
		if (cg.enabled[i] && write_file(cg.base, "cgroup.subtree_control", minus) < 0)
			return;
	}
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (write_file(cg.base, "cgroup.procs", pid) < 0)
		return;
	if (!TOO_LONG(leaf, "%s/" LEAF, cg.base) && rmdir(leaf) < 0)
		log_warn("cannot remove the cgroup %s: %s", leaf, strerror(errno));
}

void cgroup_finish(void)
{
	if (!cg.on)
		return;
	while (cg.all)
		cgroup_close(cg.all);
	remove_tree(cg.dir);
	if (alone_in_leaf()) {
		sweep_stale();
		leave_leaf();
	}
	cg.on = false;
}
