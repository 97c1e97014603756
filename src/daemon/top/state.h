/* state.h - droverd's runtime state, handed to the next image.
 *
 * For an in-place upgrade droverd writes everything it knows at run time
 * (the configuration in force, services, processes, listeners, timers, and
 * the descriptors that go with them) into a memfd and execs the new binary,
 * which reads it back. The format is versioned text, one record per line:
 *
 *   drover-state 2
 *   global control=FD control_path=P notify=FD client=FD sdnotify=P
 *   conf path=P facts=N                      in place only: the configuration
 *   fact kind=K key=K data=D v0=N v1=N v2=N  in force, as conf_replay() reads it
 *   service NAME gen=N state=S want=0|1 ...
 *   listener NAME index=I fd=FD dev=N ino=N key=K
 *   pool NAME served=N failures=N throttle=MS dynamic=0|1 rolling=0|1 serving_gen=N
 *   proc NAME pid=P pidfd=FD out=FD gen=N ...
 *   log NAME when=MS pid=P text=T            the `drover logs` ring
 *   end
 *
 * Values are percent-encoded. Monotonic times are system-wide and survive
 * exec. Reading is in steps, each refusing what it does not understand, so
 * that a state is never half-applied:
 *   state_decode  the text alone (a pure function): exactly this version,
 *                 these records, every field once and in its range, every
 *                 descriptor number distinct, not a byte left over;
 *   state_check   against the configuration: the same services, listeners
 *                 that exist, pools only where the mode has one;
 *   state_verify_fds  the descriptors it names are open here (listeners:
 *                 the very sockets the state says);
 *   state_apply   onto the services droverd_start() created. */
#ifndef DROVER_STATE_H
#define DROVER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "conf.h"

enum { STATE_VERSION = 2, STATE_MAX = 64 << 20, STATE_FDS_MAX = 1 << 20, STATE_FACTS_MAX = 1 << 16 };

struct state_globals {
	int control_fd;
	char control_path[108];
	int notify_fd;
	int client_fd;		/* the `drover upgrade` connection, or -1 */
	char sdnotify[108];	/* droverd's own NOTIFY_SOCKET, or "" */
};

struct state_service {
	char *name;
	int64_t gen, state, want, restarts, failures, since, next_attempt, last_status, demand,
		listen_failed, fail_pending, next_every, last_every, next_at, restart_at, ready_at,
		watchdog_at, sched, held;
	char *status, *reason;
	bool has_pool;
	int64_t pool_served, pool_failures, pool_throttle, pool_dynamic, pool_rolling, pool_serving_gen;
};

struct state_listener {
	int svc;		/* index in state.svcs */
	int64_t index, fd, dev, ino;
	char *key;
};

struct state_proc {
	int svc;
	int64_t pid, pidfd, out, gen, slot, started, ready, exited, stopping, killed, kill_at, wstate,
		speaks, served, uses, idle_since, source;
};

struct state_log {
	int svc;
	int64_t when, pid;
	char *text;
	size_t len;
};

/* A decoded state. Every string and array is malloc'd: state_free(). */
struct state {
	struct state_globals g;
	char *conf_path;	/* NULL: no configuration came with it (handover) */
	struct conf_fact *facts;
	int nfacts;
	struct state_service *svcs;
	int nsvcs;
	struct state_listener *lis;
	int nlis;
	struct state_proc *procs;
	int nprocs;
	struct state_log *logs;
	int nlogs;
};

/* Text <-> struct, both pure. state_decode returns 0, or -1 with a reason
 * in err (out is then empty; state_free() on it is harmless). */
int state_encode(const struct state *st, struct buf *out);
int state_decode(const void *buf, size_t len, struct state *out, char *err, size_t errlen);
void state_free(struct state *st);
/* Whether fd is one of the descriptors st names. */
bool state_names_fd(const struct state *st, int fd);

/* Takes droverd's state (with_procs: in place, with the configuration in
 * force; without: handover, and services still run here are marked held),
 * encodes it into a new memfd, close-on-exec like every descriptor droverd
 * opens (an exec in place clears the flag). Every descriptor it names has
 * its close-on-exec flag cleared; state_abandon() sets it again if the exec
 * does not happen. Returns the memfd, or -1 with err. */
int state_save(const struct state_globals *g, bool with_procs, char *err, size_t len);
void state_abandon(void);

/* Reads and decodes the state from fd. */
int state_read(int fd, struct state *st, char *err, size_t len);
/* The configuration the state carries (conf_replay), or NULL with err. */
struct conf *state_conf(const struct state *st, char *err, size_t len);
int state_check(const struct state *st, const struct conf *c, char *err, size_t len);
int state_verify_fds(const struct state *st, char *err, size_t len);
/* Onto the services of the configuration in force, once droverd_start()
 * made them; 0 or -1 with err (out of memory). */
int state_apply(const struct state *st, char *err, size_t len);
/* Once applied: every descriptor taken over becomes close-on-exec again. */
void state_seal(const struct state_globals *g);

#endif
