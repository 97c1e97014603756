/* current.h - the configuration in force, and where it is read from.
 *
 * Set at start-up and by each reload that succeeds; every part of the top
 * layer reads droverd-wide settings from here (services hold their own
 * definitions, kept alive by a reference count: conf_release()). */
#ifndef DROVER_CURRENT_H
#define DROVER_CURRENT_H

#include "conf.h"

struct conf *current_conf(void);
/* c is in force now (it takes a reference; the previous one drops its). */
void current_set(struct conf *c);
const char *current_path(void);
void current_set_path(const char *path);

#endif
