/* conf_sys.c - everything the parser learns from outside the text.
 *
 * A configuration is its files plus what the system said while they were
 * read: the files' contents, what an include glob matched, users, groups,
 * supplementary groups, and the `config_files` hashes. Each answer is kept
 * in the configuration as a fact (conf.h), asked once per load (a second
 * question gets the first answer: one load sees one consistent system).
 *
 * conf_replay() reads a configuration again from its facts alone, never
 * from the system: an in-place upgrade hands the configuration in force to
 * the new image that way, whatever happened to the disk or the user
 * database since. A question its facts do not answer is an error. */
#include "conf_int.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safepath.h"

static const char *const kind_names[FACT_KINDS] = {
	"file", "include glob", "user", "uid", "group", "groups of user", "config_files hash", "program",
};

static bool fact_is(const struct conf_fact *f, int kind, const char *key, int64_t v1)
{
	return f->kind == kind && strcmp(f->key, key) == 0 && (kind != FACT_GROUPS || f->v[1] == v1);
}

/* Keeps a copy of f in the configuration; NULL when out of memory. */
static const struct conf_fact *keep(struct parse *p, const struct conf_fact *f)
{
	struct conf *c = p->c;
	char *data = arena_alloc(&c->arena, f->len + 1), *key = arena_strdup(&c->arena, f->key);
	struct conf_fact *k = data && key ? conf_push(p, &c->facts, &c->nfacts, sizeof(*k)) : NULL;

	/* Counted only once whole: a later lookup reads every fact's key. */
	if (!k)
		return NULL;
	k->key = key;
	memcpy(data, f->data ? f->data : "", f->len);
	k->kind = f->kind;
	k->data = data;
	k->len = f->len;
	memcpy(k->v, f->v, sizeof(k->v));
	return k;
}

static const struct conf_fact *keep_or_fail(struct parse *p, const struct conf_fact *f,
					    const struct conf_fact *fail)
{
	const struct conf_fact *k = keep(p, f);

	return k ? k : fail;
}

/* The fact already known in this load, or the one replayed. NULL: ask the
 * system (or, replaying, an error has been recorded and the caller gets a
 * failed answer from fail). */
static const struct conf_fact *known(struct parse *p, int kind, const char *key, int64_t v1,
				     const struct conf_fact *fail)
{
	for (int i = 0; i < p->c->nfacts; i++)
		if (fact_is(&p->c->facts[i], kind, key, v1))
			return &p->c->facts[i];
	if (!p->replay)
		return NULL;
	for (int i = 0; i < p->nreplay; i++)
		if (fact_is(&p->replay[i], kind, key, v1))
			return keep_or_fail(p, &p->replay[i], fail);
	conf_error_at(p, p->c->path, 0, "the configuration in force does not record the %s \"%s\"",
		      kind_names[kind], key);
	return fail;
}


/* As root, the file is opened only once its whole path is root's alone
 * (safepath.h), by the path with every link resolved, and must be the file
 * checked. Returns the descriptor, or -1 with the reason in reason. */
static int open_conf(struct parse *p, const char *path, struct stat *st, char *reason, size_t rlen)
{
	const int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
	struct safepath sp = { .why = "" };
	int fd;

	if (p->as_root && !safepath_check(path, &sp)) {
		snprintf(reason, rlen, "%s", sp.why);
		return -1;
	}
	fd = p->as_root ? open(sp.path, flags | O_NOFOLLOW) : open(path, flags);
	if (fd < 0) {
		snprintf(reason, rlen, "%s", strerror(errno));
		return -1;
	}
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode))
		snprintf(reason, rlen, "not a regular file");
	else if (p->as_root && (st->st_dev != sp.st.st_dev || st->st_ino != sp.st.st_ino))
		snprintf(reason, rlen, "changed while it was being checked");
	else
		return fd;
	close(fd);
	return -1;
}

/* Opens without following into a FIFO's blocking open (open_conf), then
 * reads a regular file of at most CONF_FILE_MAX bytes, and no more. */
static void read_file(struct parse *p, struct conf_fact *f, char *reason, size_t rlen)
{
	struct stat st;
	int fd = open_conf(p, f->key, &st, reason, rlen);
	char *data = NULL;
	ssize_t n;
	size_t len = 0;

	f->data = reason;
	if (fd < 0) {
		f->len = strlen(reason);
		return;
	}
	if (st.st_size > CONF_FILE_MAX) {
		snprintf(reason, rlen, "larger than %d bytes", CONF_FILE_MAX);
	} else if (!(data = malloc((size_t)st.st_size + 1))) {
		snprintf(reason, rlen, "out of memory");
	} else {
		while (len < (size_t)st.st_size && (n = read(fd, data + len, (size_t)st.st_size - len)) != 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				snprintf(reason, rlen, "%s", strerror(errno));
				free(data);
				data = NULL;
				break;
			}
			len += (size_t)n;
		}
	}
	close(fd);
	if (data) {
		f->data = data;
		f->v[0] = 1;
		f->v[1] = (int64_t)st.st_dev;
		f->v[2] = (int64_t)st.st_ino;
	}
	f->len = data ? len : strlen(reason);
}

char *conf_sys_read(struct parse *p, const char *path, dev_t *dev, ino_t *ino, size_t *lenp)
{
	static const struct conf_fact fail = { .kind = FACT_FILE, .key = "", .data = "not recorded" };
	const struct conf_fact *f = known(p, FACT_FILE, path, 0, &fail);
	char *copy;

	if (!f) {
		struct conf_fact live = { .kind = FACT_FILE, .key = path };
		char reason[sizeof(p->msg)];

		read_file(p, &live, reason, sizeof(reason));
		f = keep_or_fail(p, &live, &fail);
		if (live.v[0])
			free((char *)live.data);
	}
	if (!f->v[0]) {
		snprintf(p->msg, sizeof(p->msg), "%.*s", (int)f->len, f->data);
		return NULL;
	}
	if (!(copy = malloc(f->len + 1))) {
		snprintf(p->msg, sizeof(p->msg), "out of memory");
		return NULL;
	}
	memcpy(copy, f->data, f->len);
	copy[f->len] = '\0';
	*dev = (dev_t)f->v[1];
	*ino = (ino_t)f->v[2];
	*lenp = f->len;
	return copy;
}

/* glob() reports directories it cannot read here. A directory that does
 * not exist only means the glob matches nothing; anything else (no
 * permission) is an error worth stopping for. */
static char glob_failed_path[512];
static int glob_failed_errno;

static int glob_error(const char *path, int err)
{
	if (err == ENOENT || err == ENOTDIR)
		return 0;
	snprintf(glob_failed_path, sizeof(glob_failed_path), "%s", path);
	glob_failed_errno = err;
	return 1;
}

/* The matches, each ended by '\0', in glob's (sorted) order. */
static char *join_matches(const glob_t *g, size_t *lenp)
{
	size_t len = 0, off = 0;
	char *out;

	for (size_t i = 0; i < g->gl_pathc; i++)
		len += strlen(g->gl_pathv[i]) + 1;
	if (!(out = malloc(len + 1)))
		return NULL;
	for (size_t i = 0; i < g->gl_pathc; i++) {
		size_t n = strlen(g->gl_pathv[i]) + 1;

		memcpy(out + off, g->gl_pathv[i], n);
		off += n;
	}
	*lenp = len;
	return out;
}

int conf_sys_glob(struct parse *p, const char *pattern, const char **matches, size_t *lenp, int *err)
{
	static const struct conf_fact fail = { .kind = FACT_GLOB, .key = "", .data = "", .v = { GLOB_NOSPACE } };
	const struct conf_fact *f = known(p, FACT_GLOB, pattern, 0, &fail);

	if (!f) {
		struct conf_fact live = { .kind = FACT_GLOB, .key = pattern, .data = "" };
		char *joined = NULL;
		glob_t g;
		int rc = glob(pattern, 0, glob_error, &g);

		live.v[0] = rc;
		if (rc == 0 && !(joined = join_matches(&g, &live.len)))
			live.v[0] = GLOB_NOSPACE;
		else if (rc == 0)
			live.data = joined;
		if (rc == GLOB_ABORTED) {
			live.data = glob_failed_path;
			live.len = strlen(glob_failed_path);
			live.v[1] = glob_failed_errno;
		}
		if (rc != GLOB_NOMATCH)
			globfree(&g);
		f = keep_or_fail(p, &live, &fail);
		free(joined);
	}
	*matches = f->data;
	*lenp = f->len;
	*err = (int)f->v[1];
	return (int)f->v[0];
}

bool conf_sys_user(struct parse *p, const char *name, uid_t *uid, gid_t *gid)
{
	static const struct conf_fact fail = { .kind = FACT_USER, .key = "", .data = "" };
	const struct conf_fact *f = known(p, FACT_USER, name, 0, &fail);

	if (!f) {
		struct passwd *pw = getpwnam(name);
		struct conf_fact live = { .kind = FACT_USER, .key = name, .data = "" };

		if (pw)
			live = (struct conf_fact){ FACT_USER, name, "", 0, { 1, pw->pw_uid, pw->pw_gid } };
		f = keep_or_fail(p, &live, &fail);
	}
	*uid = (uid_t)f->v[1];
	*gid = (gid_t)f->v[2];
	return f->v[0];
}

bool conf_sys_uid(struct parse *p, uid_t uid, gid_t *gid, const char **name)
{
	static const struct conf_fact fail = { .kind = FACT_UID, .key = "", .data = "" };
	char key[24];
	const struct conf_fact *f;

	snprintf(key, sizeof(key), "%u", (unsigned)uid);
	if (!(f = known(p, FACT_UID, key, 0, &fail))) {
		struct passwd *pw = getpwuid(uid);
		struct conf_fact live = { .kind = FACT_UID, .key = key, .data = "" };

		if (pw)
			live = (struct conf_fact){ FACT_UID, key, pw->pw_name, strlen(pw->pw_name),
						   { 1, 0, pw->pw_gid } };
		f = keep_or_fail(p, &live, &fail);
	}
	*gid = (gid_t)f->v[2];
	*name = f->data;
	return f->v[0];
}

bool conf_sys_group(struct parse *p, const char *name, gid_t *gid)
{
	static const struct conf_fact fail = { .kind = FACT_GROUP, .key = "", .data = "" };
	const struct conf_fact *f = known(p, FACT_GROUP, name, 0, &fail);

	if (!f) {
		struct group *g = getgrnam(name);
		struct conf_fact live = { .kind = FACT_GROUP, .key = name, .data = "" };

		if (g)
			live = (struct conf_fact){ FACT_GROUP, name, "", 0, { 1, g->gr_gid, 0 } };
		f = keep_or_fail(p, &live, &fail);
	}
	*gid = (gid_t)f->v[1];
	return f->v[0];
}

/* The user's groups as getgrouplist() gives them, in decimal. */
static char *ask_groups(const char *user, gid_t gid, size_t *lenp)
{
	int n = 64;
	gid_t *list = NULL;
	char *out = NULL;

	for (;;) {
		int want = n;
		gid_t *l = realloc(list, sizeof(gid_t) * (size_t)n);

		if (!l)
			break;
		list = l;
		if (getgrouplist(user, gid, list, &want) >= 0) {
			size_t len = 0;

			if (!(out = malloc((size_t)want * 12 + 1)))
				break;
			out[0] = '\0';
			for (int i = 0; i < want; i++)
				len += (size_t)sprintf(out + len, "%s%u", i ? " " : "", (unsigned)list[i]);
			*lenp = len;
			break;
		}
		if (want <= n || want > 65536)
			break;
		n = want;
	}
	free(list);
	return out;
}

int conf_sys_groups(struct parse *p, const char *user, gid_t gid, gid_t **out)
{
	static const struct conf_fact fail = { .kind = FACT_GROUPS, .key = "", .data = "" };
	const struct conf_fact *f = known(p, FACT_GROUPS, user, gid, &fail);
	gid_t *list;
	const char *s;
	int n = 0;

	if (!f) {
		struct conf_fact live = { .kind = FACT_GROUPS, .key = user, .data = "", .v = { 0, gid } };
		char *text = ask_groups(user, gid, &live.len);

		if (text) {
			live.data = text;
			live.v[0] = 1;
		}
		f = keep_or_fail(p, &live, &fail);
		free(text);
	}
	if (!f->v[0])
		return -1;
	for (s = f->data; *s; s++)
		n += *s == ' ';
	if (!(list = arena_alloc(&p->c->arena, sizeof(gid_t) * (size_t)(n + 1))))
		return -1;
	n = 0;
	for (s = f->data; *s;) {
		char *end;
		unsigned long v = strtoul(s, &end, 10);

		if (end == s || v > UINT32_MAX || (*end && *end != ' '))
			return -1;
		list[n++] = (gid_t)v;
		s = *end ? end + 1 : end;
	}
	*out = list;
	return n;
}

/* FNV-1a over fd, reading at most CONFIG_FILES_MAX + 1 bytes: the count
 * read, or -1 with errno. */
static int64_t hash_fd(int fd, int64_t *hash)
{
	uint64_t x = 1469598103934665603ULL;
	unsigned char block[8192];
	int64_t total = 0;
	ssize_t n = 0;

	while (total <= CONFIG_FILES_MAX) {
		if ((n = read(fd, block, sizeof(block))) < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			x = (x ^ block[i]) * 1099511628211ULL;
		total += n;
	}
	*hash = (int64_t)x;
	return n < 0 ? -1 : total;
}

/* FNV-1a over the file's content; err: errno when it cannot be opened or
 * read. Only a regular file of at most CONFIG_FILES_MAX bytes is read, and
 * never more than that: a device, a FIFO or a file that grows without end
 * is an error (the reason), not a reload that never ends. */
static const char *hash_file(const char *path, int64_t *hash, int64_t *err)
{
	const char *reason = NULL;
	struct stat st;
	int64_t total = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	if (fd < 0) {
		*err = errno;
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		reason = "is not a regular file";
	} else if (st.st_size > CONFIG_FILES_MAX || (total = hash_fd(fd, hash)) > CONFIG_FILES_MAX) {
		_Static_assert(CONFIG_FILES_MAX == 16 << 20, "the message names the size");
		reason = "is larger than 16 MiB, the most droverd reads of a config_files file";
	} else if (total < 0) {
		*err = errno;
	}
	close(fd);
	return reason;
}

/* A file refused (not regular, too large) makes the configuration invalid:
 * it is never in force, so never replayed, and is not kept as a fact. */
const char *conf_sys_hash(struct parse *p, const char *path, uint64_t *hash, int *err)
{
	static const struct conf_fact fail = { .kind = FACT_HASH, .key = "", .data = "" };
	const struct conf_fact *f = known(p, FACT_HASH, path, 0, &fail);

	if (!f) {
		struct conf_fact live = { .kind = FACT_HASH, .key = path, .data = "" };
		const char *reason = hash_file(path, &live.v[1], &live.v[0]);

		if (reason)
			return reason;
		f = keep_or_fail(p, &live, &fail);
	}
	*err = (int)f->v[0];
	*hash = (uint64_t)f->v[1];
	return NULL;
}

/* A regular file with an execute bit: what exec() needs of it (the probe's
 * user is not checked here: exec says so when the probe runs). */
static int64_t runnable(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return errno;
	return S_ISREG(st.st_mode) && (st.st_mode & 0111) ? 0 : EACCES;
}

/* The directories spawned processes search (launch.c's default PATH). */
static int64_t find_in_path(const char *name)
{
	static const char *const dirs[] = { "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin",
					    "/sbin", "/bin" };
	char path[4096];
	int64_t err = ENOENT;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dirs[i], name) >= sizeof(path))
			return ENAMETOOLONG;
		if (!(err = runnable(path)))
			return 0;
	}
	return err;
}

int conf_sys_exec(struct parse *p, const char *program)
{
	static const struct conf_fact fail = { .kind = FACT_EXEC, .key = "", .data = "", .v = { ENOENT } };
	const struct conf_fact *f = known(p, FACT_EXEC, program, 0, &fail);

	if (!f) {
		struct conf_fact live = { .kind = FACT_EXEC, .key = program, .data = "" };

		live.v[0] = strchr(program, '/') ? runnable(program) : find_in_path(program);
		f = keep_or_fail(p, &live, &fail);
	}
	return (int)f->v[0];
}
