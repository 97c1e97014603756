/* control_cmd.h - the commands of the control protocol (SPEC section 5).
 *
 * Each request the control socket receives is dispatched here by name;
 * handlers answer through control.h's conn_* functions. */
#ifndef DROVER_CONTROL_CMD_H
#define DROVER_CONTROL_CMD_H

#include "control.h"

void control_dispatch(struct conn *c, int argc, char **argv);

#endif
