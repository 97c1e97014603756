/* conf_int.h - what the pieces of the configuration parser share.
 * Not for use outside src/lib/conf_*.c. */
#ifndef DROVER_CONF_INT_H
#define DROVER_CONF_INT_H

#include <stdio.h>
#include <sys/types.h>

#include "conf.h"

enum key_scope { SCOPE_GLOBAL, SCOPE_SERVICE };
enum {
	K_REPEAT = 1,		/* may be given several times, accumulates */
	K_PROC = 2,		/* a change replaces the service's processes */
};

struct parse;
typedef const char *key_setter(struct parse *p, const char *value);

struct keydef {
	const char *name;
	enum key_scope scope;
	unsigned flags;
	key_setter *set;
};

enum { INCLUDE_DEPTH_MAX = 8, FILES_MAX = 1024 };
/* The most droverd reads of a config_files file: enough for any service's
 * configuration, little enough that hashing it cannot stall a reload. */
enum { CONFIG_FILES_MAX = 16 << 20 };

struct parse {
	struct conf *c;
	struct conf_errors *errs;
	bool as_root;
	const char *file;	/* current file, as shown in messages */
	int line;
	int depth;
	enum { SEC_NONE, SEC_GLOBAL, SEC_SERVICE, SEC_BAD } sec;
	struct svc_conf *svc;	/* current [service] */
	int key_line[64];	/* where each key of the current section was set */
	const char *key_file[64];
	int global_line[16];
	const char *global_file[16];
	dev_t seen_dev[FILES_MAX];
	ino_t seen_ino[FILES_MAX];
	const char *seen_name[FILES_MAX];	/* as shown in messages */
	int nseen;
	const struct conf_fact *replay;	/* conf_replay(): the only source */
	int nreplay;
	char msg[512];		/* setters format longer reasons here */
};

extern const struct keydef conf_keys[];
extern const int conf_nkeys;
const struct keydef *conf_key_find(const char *name, enum key_scope scope, int *index);
/* NULL-terminated names valid in a scope, for suggestions. */
const char *const *conf_key_names(enum key_scope scope);
void conf_key_apply_defaults(struct svc_conf *s);

void conf_error(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void conf_error_at(struct parse *p, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

void conf_read_file(struct parse *p, const char *path);
const char *conf_include(struct parse *p, const char *pattern);
void conf_check(struct parse *p);

/* conf_sys.c: the system, as this load sees it (recorded, or replayed).
 * conf_sys_read: the file's text (malloc'd) or NULL with p->msg;
 * conf_sys_glob: glob()'s result, the matches each ended by '\0';
 * conf_sys_groups: the count (list in the arena) or -1. */
char *conf_sys_read(struct parse *p, const char *path, dev_t *dev, ino_t *ino, size_t *len);
int conf_sys_glob(struct parse *p, const char *pattern, const char **matches, size_t *len, int *err);
bool conf_sys_user(struct parse *p, const char *name, uid_t *uid, gid_t *gid);
bool conf_sys_uid(struct parse *p, uid_t uid, gid_t *gid, const char **name);
bool conf_sys_group(struct parse *p, const char *name, gid_t *gid);
int conf_sys_groups(struct parse *p, const char *user, gid_t gid, gid_t **list);
/* NULL, or why the file cannot be a config_files file (an error). */
const char *conf_sys_hash(struct parse *p, const char *path, uint64_t *hash, int *err);
/* Can program (a path, or a name looked for in the default PATH) be run?
 * 0, or the errno that says why not. */
int conf_sys_exec(struct parse *p, const char *program);

/* listen_addr.c */
const char *listen_parse(struct parse *p, const char *text, struct listen_conf *l);

/* conf_health.c: `health =` into h (kind, argv or address, host, path). */
const char *health_parse(struct parse *p, const char *text, struct health_conf *h);

/* Grow an arena array of n elements of size sz by one, returning the new slot. */
void *conf_push(struct parse *p, void *arrp, int *n, size_t sz);

#endif
