/* state.h - droverd's runtime state, handed to the next image.
 *
 * For an in-place upgrade droverd writes everything it knows at run time
 * (services, processes, listeners, timers, and the descriptors that go with
 * them) into a memfd and execs the new binary, which reads it back. The
 * format is versioned text, one record per line:
 *
 *   drover-state 1
 *   global control=FD control_path=P notify=FD [client=FD] [sdnotify=P]
 *   service NAME gen=N state=S want=0|1 ...
 *   listener NAME index=I fd=FD key=K
 *   pool NAME served=N failures=N throttle=MS dynamic=0|1
 *   proc NAME pid=P pidfd=FD out=FD gen=N ...
 *   log NAME when=MS pid=P text=T            the `drover logs` ring
 *   end
 *
 * Values are percent-encoded. A reader accepts exactly this version and
 * these keys, and refuses anything else: it never half-applies a state it
 * does not understand. Monotonic times are system-wide and survive exec. */
#ifndef DROVER_STATE_H
#define DROVER_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "conf.h"

enum { STATE_VERSION = 1 };

struct state_globals {
	int control_fd;
	char control_path[108];
	int notify_fd;
	int client_fd;		/* the `drover upgrade` connection, or -1 */
	char sdnotify[108];	/* droverd's own NOTIFY_SOCKET, or "" */
};

/* Writes the state into a new memfd, close-on-exec like every descriptor
 * droverd opens (an exec in place clears the flag). Every descriptor it
 * names has its close-on-exec flag cleared; state_abandon() sets it again
 * if the exec does not happen. Returns the memfd, or -1 with err.
 * Without processes (handover), services still run here are marked held. */
int state_save(const struct state_globals *g, bool with_procs, char *err, size_t len);
void state_abandon(void);

/* Reads the state from fd: the globals first (before droverd sets up), then
 * everything else (once the configuration's services exist). Both return 0
 * or -1 with err; the check only parses (for `droverd -t` of a new binary). */
int state_read_globals(int fd, struct state_globals *g, char *err, size_t len);
int state_apply(int fd, char *err, size_t len);
/* Once applied: every descriptor taken over becomes close-on-exec again. */
void state_seal(const struct state_globals *g);
int state_check(int fd, const struct conf *c, char *err, size_t len);

#endif
