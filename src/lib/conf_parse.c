/* conf_parse.c - reading drover.conf: files, lines, sections, includes.
 *
 * Guarantees: every problem is recorded with its file and line and parsing
 * goes on, so the administrator sees all of them at once; a file that cannot
 * be read, is not a regular file, is too large, or (as root) is not root's
 * alone, down its whole path (safepath.h), is one error at the line that
 * named it, and nothing of its content is read or shown; include loops are
 * caught. Messages quote configuration text escaped (escape.h), so a line
 * cannot send a terminal or a log control characters. Values are handed
 * to the setters in conf_keys.c; files are read through conf_sys.c, which
 * keeps what it read for conf_replay(). */
#include "conf_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "escape.h"
#include "suggest.h"

/* Sort key: the position of the file among those read, then the line. */
static long error_where(struct parse *p, const char *file, int line)
{
	int fileno = 0;

	for (int i = 0; i < p->nseen; i++)
		if (p->seen_name[i] == file || (file && strcmp(p->seen_name[i], file) == 0))
			fileno = i;
	return (long)fileno * 10000000L + line;
}

void conf_error_at(struct parse *p, const char *file, int line, const char *fmt, ...)
{
	struct conf_errors *e = p->errs;
	char text[1024], safe[1024];
	int n = 0;
	va_list ap;

	if (file && line > 0)
		n = snprintf(text, sizeof(text), "%s:%d: ", file, line);
	else if (file)
		n = snprintf(text, sizeof(text), "%s: ", file);
	if (n < 0 || (size_t)n >= sizeof(text))
		n = (int)sizeof(text) - 1;	/* a name longer than the line: cut */
	va_start(ap, fmt);
	vsnprintf(text + n, sizeof(text) - (size_t)n, fmt, ap);
	va_end(ap);
	escape_text(safe, sizeof(safe), text, strlen(text), ESCAPE_KEEP_TAB);
	for (int i = 0; i < e->n; i++)
		if (strcmp(e->msg[i], safe) == 0)
			return;		/* one problem, one message */
	if (e->n == e->cap) {
		int cap = e->cap ? e->cap * 2 : 8;
		char **m = realloc(e->msg, sizeof(*m) * (size_t)cap);
		long *w = m ? realloc(e->where, sizeof(*w) * (size_t)cap) : NULL;

		if (m)
			e->msg = m;
		if (!w)
			return;
		e->where = w;
		e->cap = cap;
	}
	e->where[e->n] = error_where(p, file, line);
	if ((e->msg[e->n] = strdup(safe)))
		e->n++;
}

void conf_error(struct parse *p, const char *fmt, ...)
{
	char text[900];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	conf_error_at(p, p->file, p->line, "%s", text);
}

/* Stable insertion sort: error lists are short. */
static void sort_errors(struct conf_errors *e)
{
	for (int i = 1; i < e->n; i++) {
		long w = e->where[i];
		char *m = e->msg[i];
		int j = i;

		for (; j > 0 && e->where[j - 1] > w; j--) {
			e->where[j] = e->where[j - 1];
			e->msg[j] = e->msg[j - 1];
		}
		e->where[j] = w;
		e->msg[j] = m;
	}
}

void conf_errors_free(struct conf_errors *e)
{
	for (int i = 0; i < e->n; i++)
		free(e->msg[i]);
	free(e->msg);
	free(e->where);
	e->msg = NULL;
	e->where = NULL;
	e->n = e->cap = 0;
}

void *conf_push(struct parse *p, void *arrp, int *n, size_t sz)
{
	void **arr = arrp;
	/* Capacity doubles at powers of two; arrays stay small. */
	int cap = 1;
	char *a;

	while (cap < *n)
		cap *= 2;
	if (*n == 0 || *n == cap) {
		a = arena_grow(&p->c->arena, *arr, sz * (size_t)*n, sz * (size_t)(cap * 2));
		if (!a)
			return NULL;
		*arr = a;
	}
	a = *arr;
	return a + sz * (size_t)(*n)++;
}

bool conf_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > SVC_NAME_MAX)
		return false;
	for (; *name; name++)
		if (!isalnum((unsigned char)*name) && !strchr("_.@-", *name))
			return false;
	return true;
}

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	*end = '\0';
	return s;
}

static void start_service(struct parse *p, const char *name)
{
	struct svc_conf *s, **slot;

	if (!conf_name_valid(name)) {
		conf_error(p, "bad service name \"%s\": use 1 to 64 of A-Z a-z 0-9 _ . @ -", name);
		p->sec = SEC_BAD;
		return;
	}
	if ((s = conf_find(p->c, name))) {
		conf_error(p, "service \"%s\" is already defined at %s:%d", name, s->file, s->line);
		p->sec = SEC_BAD;
		return;
	}
	s = arena_alloc(&p->c->arena, sizeof(*s));
	slot = conf_push(p, &p->c->svcs, &p->c->nsvcs, sizeof(struct svc_conf *));
	if (!s || !slot) {
		p->sec = SEC_BAD;
		return;
	}
	*slot = s;
	s->name = arena_strdup(&p->c->arena, name);
	s->file = p->file;
	s->line = p->line;
	conf_key_apply_defaults(s);
	p->svc = s;
	p->sec = SEC_SERVICE;
	memset(p->key_line, 0, sizeof(p->key_line));
}

static void parse_section(struct parse *p, char *line)
{
	char *end = strchr(line, ']'), *body;

	if (!end || trim(end + 1)[0]) {
		conf_error(p, "bad section header \"%s\": expected [drover] or [service NAME]", line);
		p->sec = SEC_BAD;
		return;
	}
	*end = '\0';
	body = trim(line + 1);
	if (strcmp(body, "drover") == 0) {
		p->sec = SEC_GLOBAL;
	} else if (strncmp(body, "service", 7) == 0 && (body[7] == ' ' || body[7] == '\t')) {
		start_service(p, trim(body + 8));
	} else {
		conf_error(p, "unknown section [%s]: expected [drover] or [service NAME]", body);
		p->sec = SEC_BAD;
	}
}

static void unknown_key(struct parse *p, const char *key, enum key_scope scope, const char *where)
{
	const char *hint = suggest(key, conf_key_names(scope));
	const struct keydef *other = conf_key_find(key, scope == SCOPE_GLOBAL ?
						   SCOPE_SERVICE : SCOPE_GLOBAL, NULL);

	if (other)
		conf_error(p, "key \"%s\" does not belong in %s (it is a %s key)", key, where,
			   scope == SCOPE_GLOBAL ? "[service]" : "[drover]");
	else if (hint)
		conf_error(p, "unknown key \"%s\" in %s (did you mean \"%s\"?)", key, where, hint);
	else
		conf_error(p, "unknown key \"%s\" in %s", key, where);
}

/* A non-repeatable key given twice in one section is an error; for
 * [drover], which several files may open, across all of them. */
static bool check_duplicate(struct parse *p, const struct keydef *k, int idx, const char *where)
{
	int *line = p->sec == SEC_GLOBAL ? &p->global_line[idx] : &p->key_line[idx];
	const char **file = p->sec == SEC_GLOBAL ? &p->global_file[idx] : &p->key_file[idx];

	if (*line && !(k->flags & K_REPEAT)) {
		conf_error(p, "duplicate key \"%s\" in %s (first set at %s:%d)", k->name, where,
			   *file, *line);
		return false;
	}
	*line = p->line;
	*file = p->file;
	return true;
}

const struct conf_raw *conf_raw(const struct svc_conf *s, int idx)
{
	for (const struct conf_raw *r = s->raw; r; r = r->next)
		if (r->idx == idx)
			return r;
	return NULL;
}

static void remember_raw(struct parse *p, int idx, const char *value)
{
	struct conf_raw *r = (struct conf_raw *)conf_raw(p->svc, idx);
	struct arena *a = &p->c->arena;

	if (!r) {
		if (!(r = arena_alloc(a, sizeof(*r))))
			return;
		r->idx = idx;
		r->line = p->line;
		r->text = arena_strdup(a, value);
		r->next = p->svc->raw;
		p->svc->raw = r;
	} else {
		size_t lo = strlen(r->text), lv = strlen(value);
		char *s = arena_alloc(a, lo + lv + 2);

		if (s) {
			memcpy(s, r->text, lo);
			s[lo] = '\n';
			memcpy(s + lo + 1, value, lv);
			s[lo + 1 + lv] = '\0';
		}
		r->text = s;
	}
}

static void parse_assignment(struct parse *p, char *line)
{
	char *eq = strchr(line, '='), *key, *value, where[96];
	enum key_scope scope = p->sec == SEC_GLOBAL ? SCOPE_GLOBAL : SCOPE_SERVICE;
	const struct keydef *k;
	const char *reason;
	int idx;

	if (p->sec == SEC_BAD)
		return;		/* already reported at the section header */
	if (!eq) {
		conf_error(p, "expected \"key = value\", got \"%s\"", line);
		return;
	}
	if (p->sec == SEC_NONE) {
		conf_error(p, "\"%s\" is outside any section: start with [drover] or [service NAME]", line);
		return;
	}
	*eq = '\0';
	key = trim(line);
	value = trim(eq + 1);
	if (p->sec == SEC_GLOBAL)
		snprintf(where, sizeof(where), "[drover]");
	else
		snprintf(where, sizeof(where), "[service %s]", p->svc->name);
	if (!(k = conf_key_find(key, scope, &idx))) {
		unknown_key(p, key, scope, where);
		return;
	}
	if (!check_duplicate(p, k, idx, where))
		return;
	if (p->sec == SEC_SERVICE) {
		p->svc->keys_set |= 1ULL << idx;
		remember_raw(p, idx, value);
	}
	if ((reason = k->set(p, value)))
		conf_error(p, "bad %s in %s: \"%s\" %s", key, where, value, reason);
}

static void parse_line(struct parse *p, char *line)
{
	line = trim(line);
	if (!*line || *line == '#' || *line == ';')
		return;
	if (*line == '[')
		parse_section(p, line);
	else
		parse_assignment(p, line);
}

/* Remembers a file so that it is read once; its name is kept for messages
 * and for sorting them. Returns a reason when it must not be read. */
static const char *remember_file(struct parse *p, const char *path, dev_t dev, ino_t ino)
{
	for (int i = 0; i < p->nseen; i++)
		if (p->seen_dev[i] == dev && p->seen_ino[i] == ino)
			return "is included more than once";
	if (p->nseen == FILES_MAX)
		return "is one file too many (at most 1024 files)";
	p->seen_dev[p->nseen] = dev;
	p->seen_ino[p->nseen] = ino;
	if (!(p->seen_name[p->nseen] = arena_strdup(&p->c->arena, path)))
		return "cannot be read: out of memory";
	p->nseen++;
	return NULL;
}

/* Reads one file. The caller has set p->file/p->line to where it was named
 * (line 0 for the main file), so open errors point there. */
void conf_read_file(struct parse *p, const char *path)
{
	const char *outer_file = p->file;
	int outer_line = p->line, outer_sec = p->sec;
	struct svc_conf *outer_svc = p->svc;
	char *data, *line, *next, *nul;
	const char *reason;
	size_t len = 0;
	dev_t dev;
	ino_t ino;

	if (!(data = conf_sys_read(p, path, &dev, &ino, &len))) {
		/* The main file has no line that named it. */
		conf_error_at(p, p->line ? p->file : NULL, p->line, "cannot read %s: %s", path, p->msg);
		return;
	}
	if ((nul = memchr(data, '\0', len))) {
		int at = 1;

		for (const char *c = data; c < nul; c++)
			at += *c == '\n';
		conf_error_at(p, path, at, "contains a NUL byte: not a text file");
		free(data);
		return;
	}
	if ((reason = remember_file(p, path, dev, ino))) {
		conf_error(p, "%s %s", path, reason);
		free(data);
		return;
	}
	p->file = p->seen_name[p->nseen - 1];
	p->sec = SEC_NONE;
	p->line = 0;
	for (line = data; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		p->line++;
		parse_line(p, line);
	}
	free(data);
	p->file = outer_file;
	p->line = outer_line;
	p->sec = outer_sec;
	p->svc = outer_svc;
}

/* include = GLOB, relative to the including file's directory. */
const char *conf_include(struct parse *p, const char *pattern)
{
	char dir[4096], full[8192];
	const char *d, *matches;
	size_t len;
	int rc, err;

	if (!*pattern)
		return "is empty";
	if (p->depth >= INCLUDE_DEPTH_MAX)
		return "nests includes too deeply (more than 8 levels)";
	snprintf(dir, sizeof(dir), "%s", p->file);
	d = dirname(dir);	/* may return a static "." instead of editing dir */
	if (pattern[0] == '/' || strcmp(d, ".") == 0)
		snprintf(full, sizeof(full), "%s", pattern);
	else
		snprintf(full, sizeof(full), "%s/%s", d, pattern);
	rc = conf_sys_glob(p, full, &matches, &len, &err);
	/* A glob that matches nothing is fine; a file named outright that is
	 * not there is a mistake worth saying. */
	if (rc == GLOB_NOMATCH && !strpbrk(pattern, "*?[")) {
		snprintf(p->msg, sizeof(p->msg), "names %.300s, which does not exist", full);
		return p->msg;
	}
	if (rc == GLOB_NOMATCH)
		return NULL;
	if (rc != 0) {
		if (rc == GLOB_ABORTED)
			snprintf(p->msg, sizeof(p->msg), "cannot be expanded: cannot read directory %.300s: %s",
				 matches, strerror(err));
		else
			snprintf(p->msg, sizeof(p->msg), "cannot be expanded: out of memory");
		return p->msg;
	}
	p->depth++;
	for (size_t off = 0; off < len; off += strlen(matches + off) + 1)
		conf_read_file(p, matches + off);
	p->depth--;
	return NULL;
}

struct svc_conf *conf_find(const struct conf *c, const char *name)
{
	for (int i = 0; i < c->nsvcs; i++)
		if (strcmp(c->svcs[i]->name, name) == 0)
			return c->svcs[i];
	return NULL;
}

static struct conf *load(const char *path, bool as_root, const struct conf_fact *replay, int nreplay,
			 struct conf_errors *errs)
{
	struct conf *c = calloc(1, sizeof(*c));
	struct parse *p = calloc(1, sizeof(*p));

	if (!c || !p) {
		errs->msg = NULL;	/* nothing to report with: no memory */
		free(c);
		free(p);
		return NULL;
	}
	c->path = arena_strdup(&c->arena, path);
	c->upgrade_timeout = 30000;
	c->shutdown_timeout = 90000;
	c->log = LOG_STDERR;
	p->c = c;
	p->errs = errs;
	p->as_root = as_root;
	p->replay = replay;
	p->nreplay = nreplay;
	p->file = c->path;
	conf_read_file(p, path);
	conf_check(p);
	if (c->arena.failed)
		conf_error_at(p, path, 0, "out of memory while reading the configuration");
	sort_errors(errs);
	free(p);
	if (errs->n) {
		conf_free(c);
		return NULL;
	}
	return c;
}

struct conf *conf_load(const char *path, bool as_root, struct conf_errors *errs)
{
	return load(path, as_root, NULL, 0, errs);
}

struct conf *conf_replay(const char *path, const struct conf_fact *facts, int nfacts,
			 struct conf_errors *errs)
{
	static const struct conf_fact none;

	/* as_root matters only where files are read: their facts say it. */
	return load(path, false, facts ? facts : &none, nfacts, errs);
}

void conf_free(struct conf *c)
{
	if (!c)
		return;
	arena_free(&c->arena);
	free(c);
}
