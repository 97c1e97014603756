/* fuzz_conf.c - libFuzzer target: the configuration parser (conf_load: lines,
 * sections, keys, value parsers, listen addresses, includes, checks).
 *
 * The input is up to five files separated by lines "%%": drover.conf, a.conf,
 * b.conf, conf.d/1.conf, conf.d/2.conf, written into a directory made once
 * per process under $TMPDIR (removed at exit), so `include = a.conf` and
 * `include = conf.d/[12].conf` reach the others. Files a piece does not fill are
 * absent, so "names X, which does not exist" is reachable too.
 *
 * Confinement: the parser opens and globs paths the configuration names
 * (include, config_files). While an input runs, open() and glob() from the
 * parser are wrapped (the link uses -Wl,--wrap=open,--wrap=glob) and refuse
 * every path outside the directory: the fuzzer must never open a device
 * (/dev/watchdog) or walk the whole tree. Users and groups are looked up
 * through NSS as droverd does (local files). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* The linker's --wrap names. NOLINTBEGIN(bugprone-reserved-identifier) */
int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);
int __real_glob(const char *pattern, int flags, int (*errfunc)(const char *, int), glob_t *g);
int __wrap_glob(const char *pattern, int flags, int (*errfunc)(const char *, int), glob_t *g);
/* NOLINTEND(bugprone-reserved-identifier) */

static const char *const names[] = { "drover.conf", "a.conf", "b.conf", "conf.d/1.conf", "conf.d/2.conf" };
enum { NFILES = sizeof(names) / sizeof(names[0]) };

static char dir[64];
static size_t dirlen;
static bool confined;
static bool verbose;	/* FUZZ_VERBOSE=1: print what each input gave */

/* Under dir and without "..": the only paths an input may open. */
static bool inside(const char *path)
{
	return dirlen && strncmp(path, dir, dirlen) == 0 && path[dirlen] == '/' && !strstr(path, "/..");
}

/* NOLINTBEGIN(bugprone-reserved-identifier) */
int __wrap_open(const char *path, int flags, ...)
{
	mode_t mode = 0;

	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;

		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if (confined && !inside(path)) {
		errno = EACCES;
		return -1;
	}
	return __real_open(path, flags, mode);
}

int __wrap_glob(const char *pattern, int flags, int (*errfunc)(const char *, int), glob_t *g)
{
	if (confined && !inside(pattern)) {
		memset(g, 0, sizeof(*g));
		return GLOB_NOMATCH;
	}
	return __real_glob(pattern, flags, errfunc, g);
}
/* NOLINTEND(bugprone-reserved-identifier) */

static void path_of(char *out, size_t len, int i)
{
	snprintf(out, len, "%s/%s", dir, names[i]);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void cleanup(void)
{
	if (dirlen)
		nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");
	char sub[128];

	(void)argc;
	(void)argv;
	/* As root the parser refuses a file under a directory others may
	 * write (/tmp is one): root's /run keeps every input reachable. */
	if (!tmp || !*tmp || strlen(tmp) >= 32)
		tmp = geteuid() == 0 && access("/run", W_OK) == 0 ? "/run" : "/tmp";
	snprintf(dir, sizeof(dir), "%s/drover-fuzz-XXXXXX", tmp);
	snprintf(sub, sizeof(sub), "%s/conf.d", mkdtemp(dir) ? dir : "");
	if (!sub[0] || sub[0] != '/' || mkdir(sub, 0700) < 0) {
		perror("fuzz_conf: cannot make a temporary directory");
		exit(1);
	}
	dirlen = strlen(dir);
	atexit(cleanup);
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	return 0;
}

static void write_piece(int i, const uint8_t *p, size_t n)
{
	char path[128];
	int fd;

	path_of(path, sizeof(path), i);
	fd = __real_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w <= 0)
			abort();
		p += w;
		n -= (size_t)w;
	}
	close(fd);
}

/* The next "\n%%\n" from p, or NULL. */
static const uint8_t *separator(const uint8_t *p, size_t n)
{
	return memmem(p, n, "\n%%\n", 4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_errors errs = { 0 };
	const uint8_t *p = data, *end = data + size;
	char path[128];
	struct conf *c;

	for (int i = 0; i < NFILES; i++) {
		path_of(path, sizeof(path), i);
		unlink(path);
	}
	for (int i = 0; i < NFILES && (i == 0 || p < end); i++) {
		const uint8_t *sep = i < NFILES - 1 ? separator(p, (size_t)(end - p)) : NULL;
		size_t n = sep ? (size_t)(sep - p) + 1 : (size_t)(end - p);

		write_piece(i, p, n);
		p += sep ? n + 3 : n;
	}
	path_of(path, sizeof(path), 0);
	confined = true;
	c = conf_load(path, false, &errs);
	if (verbose) {
		for (int i = 0; i < errs.n; i++)
			fprintf(stderr, "  %s\n", errs.msg[i]);
		if (c)
			fprintf(stderr, "  accepted: %d services\n", c->nsvcs);
	}
	if (c) {
		/* Accepted: no errors, and the same files read again give the
		 * same services, unchanged in the reload diff's eyes. */
		struct conf_errors errs2 = { 0 };
		struct conf *c2 = conf_load(path, false, &errs2);

		if (errs.n || !c2 || c2->nsvcs != c->nsvcs)
			abort();
		for (int i = 0; i < c->nsvcs; i++)
			if (conf_find(c2, c->svcs[i]->name) != c2->svcs[i] ||
			    conf_compare(c->svcs[i], c2->svcs[i]) != CHANGE_NONE)
				abort();
		conf_free(c2);
		conf_errors_free(&errs2);
	} else {
		if (!errs.n)
			abort();	/* a refusal says why */
		for (int i = 0; i < errs.n; i++)
			if (!errs.msg[i][0])
				abort();
	}
	confined = false;
	conf_free(c);
	conf_errors_free(&errs);
	return 0;
}
