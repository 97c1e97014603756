/* conf_diff.c - how a service's definition changed between two loads.
 *
 * conf_diff() lists the keys whose text differs, a bit per service key;
 * what is not in a key's text counts as a change of the key it comes
 * from: the resolved user, group or supplementary groups (user, group),
 * the content of a config_files file (config_files). conf_compare() says
 * what that means: CHANGE_REPLACE when a process key (K_PROC) is among
 * them, CHANGE_LIVE when only supervision settings are, CHANGE_NONE when
 * none is. Keys are compared as written: "10s" and "10000ms" count as a
 * (live, harmless) change. */
#include "conf_int.h"

#include <string.h>

static bool same_text(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool same_groups(const struct svc_conf *a, const struct svc_conf *b)
{
	return a->ngroups == b->ngroups &&
	       (a->ngroups == 0 || memcmp(a->groups, b->groups, sizeof(gid_t) * (size_t)a->ngroups) == 0);
}

static bool same_config_files(const struct svc_conf *a, const struct svc_conf *b)
{
	if (a->nconfig_files != b->nconfig_files)
		return false;
	for (int i = 0; i < a->nconfig_files; i++)
		if (a->config_files[i].hash != b->config_files[i].hash ||
		    a->config_files[i].err != b->config_files[i].err)
			return false;
	return true;
}

static uint64_t key_bit(const char *name)
{
	int idx;

	return conf_key_find(name, SCOPE_SERVICE, &idx) && idx < 64 ? (uint64_t)1 << idx : 0;
}

/* The position in conf_keys[] of service key idx, or -1. */
static int service_key(int idx)
{
	for (int i = 0, n = 0; i < conf_nkeys; i++)
		if (conf_keys[i].scope == SCOPE_SERVICE && n++ == idx)
			return i;
	return -1;
}

uint64_t conf_diff(const struct svc_conf *a, const struct svc_conf *b)
{
	uint64_t keys = 0;
	int idx = 0;

	for (int i = 0; i < conf_nkeys && idx < 64; i++) {
		if (conf_keys[i].scope != SCOPE_SERVICE)
			continue;
		const struct conf_raw *ra = conf_raw(a, idx), *rb = conf_raw(b, idx);

		if (!same_text(ra ? ra->text : NULL, rb ? rb->text : NULL))
			keys |= (uint64_t)1 << idx;
		idx++;
	}
	/* The group and the supplementary groups come from the user's entry
	 * and the group database: they are the group's when one is given,
	 * else the user's. */
	if (a->uid != b->uid)
		keys |= key_bit("user");
	if (a->gid != b->gid || !same_groups(a, b))
		keys |= key_bit(a->has_group || b->has_group ? "group" : "user");
	if (!same_config_files(a, b))
		keys |= key_bit("config_files");
	return keys;
}

enum conf_change conf_change_of(uint64_t keys)
{
	for (int i = 0, idx = 0; i < conf_nkeys && idx < 64; i++) {
		if (conf_keys[i].scope != SCOPE_SERVICE)
			continue;
		if ((keys & ((uint64_t)1 << idx)) && (conf_keys[i].flags & K_PROC))
			return CHANGE_REPLACE;
		idx++;
	}
	return keys ? CHANGE_LIVE : CHANGE_NONE;
}

enum conf_change conf_compare(const struct svc_conf *a, const struct svc_conf *b)
{
	return conf_change_of(conf_diff(a, b));
}

const char *conf_diff_key(int idx)
{
	int i = idx >= 0 && idx < 64 ? service_key(idx) : -1;

	return i >= 0 ? conf_keys[i].name : NULL;
}
