/* reap.h - collecting exited children.
 *
 * droverd is a child subreaper: processes a service leaves behind (their
 * parent died) become droverd's children and are reaped here too, so no
 * zombie stays. */
#ifndef DROVER_REAP_H
#define DROVER_REAP_H

void reap_children(void);

#endif
