/* conf_diff.c - how a service's definition changed between two loads.
 *
 * CHANGE_REPLACE when anything that makes up a process changed (a K_PROC
 * key's text, the resolved user, group or supplementary groups, or the
 * content of a config_files file); CHANGE_LIVE when only supervision
 * settings changed; CHANGE_NONE otherwise. Keys are compared as written:
 * "10s" and "10000ms" count as a (live, harmless) change. */
#include "conf_int.h"

#include <string.h>

static bool same_text(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool same_credentials(const struct svc_conf *a, const struct svc_conf *b)
{
	return a->uid == b->uid && a->gid == b->gid && a->ngroups == b->ngroups &&
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

enum conf_change conf_compare(const struct svc_conf *a, const struct svc_conf *b)
{
	bool live = false;
	int idx = 0;

	for (int i = 0; i < conf_nkeys; i++) {
		if (conf_keys[i].scope != SCOPE_SERVICE)
			continue;
		const struct conf_raw *ra = conf_raw(a, idx), *rb = conf_raw(b, idx);

		if (!same_text(ra ? ra->text : NULL, rb ? rb->text : NULL)) {
			if (conf_keys[i].flags & K_PROC)
				return CHANGE_REPLACE;
			live = true;
		}
		idx++;
	}
	if (!same_credentials(a, b) || !same_config_files(a, b))
		return CHANGE_REPLACE;
	return live ? CHANGE_LIVE : CHANGE_NONE;
}
