/* current.c - see current.h. */
#include "current.h"

#include "listen.h"
#include "service.h"

static struct conf *current;
static const char *conf_path = CONF_DEFAULT_PATH;

struct conf *current_conf(void)
{
	return current;
}

void current_set(struct conf *c)
{
	c->refs++;
	if (current)
		conf_release(current);
	current = c;
	listen_use_fdstore(c->fdstore);
}

const char *current_path(void)
{
	return conf_path;
}

void current_set_path(const char *path)
{
	conf_path = path;
}
