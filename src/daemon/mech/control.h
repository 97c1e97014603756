/* control.h - the control socket: who may talk to droverd, and how.
 *
 * A unix stream socket, mode 0600 (0660 with control_group). Each
 * connection is authorized once, by the peer's kernel credentials
 * (SO_PEERCRED, SO_PEERGROUPS): root, droverd's own uid, and members of
 * control_group. Requests and replies are frames of proto.h. A connection
 * is non-blocking and has bounded buffers; a client that stalls or sends
 * garbage costs droverd nothing but its own connection. Commands that
 * finish later (start, stop, wait, logs -f) keep their connection open and
 * answer when done. */
#ifndef DROVER_CONTROL_H
#define DROVER_CONTROL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"
#include "svclog.h"

struct conn;
/* Called after every evaluation while the command waits, and once with
 * timed_out = true when its time is up. Returns true when it has replied. */
typedef bool conn_wait_fn(struct conn *c, bool timed_out);

struct conn {
	struct watch w;
	struct conn *next;
	struct buf in, out;
	uid_t uid;
	pid_t pid;
	bool closing;			/* close once out is written */
	conn_wait_fn *waiting;
	char **wait_names;		/* services the command waits on */
	int nwait;
	int wait_kind;
	struct timer t_timeout;		/* idle request, or the command's own limit */
	struct follower follow;		/* logs -f */
	struct service *following;	/* logs -f: the service followed */
	unsigned long follow_dropped;
};

/* What the control socket reports upward: set once, by main.c. */
struct control_events {
	/* A request came: argv[0] is the command. Answer with conn_reply(),
	 * or conn_wait() to answer later. */
	void (*request)(struct conn *c, int argc, char **argv);
	/* c is about to be freed: forget it. */
	void (*closed)(struct conn *c);
	/* A large buffer was freed: memory may be handed back to the kernel. */
	void (*released)(void);
};
void control_set_events(const struct control_events *ev);

int control_open(const char *path, bool has_group, gid_t group, int adopt_fd, char *err, size_t len);
void control_close(void);
/* Handover: stop taking new connections (the new droverd takes them) or
 * start (the new droverd, once told to). */
void control_pause(bool paused);
/* Handover: the socket file is the new droverd's now; do not remove it. */
void control_keep_file(bool keep);
int control_fd(void);
const char *control_path(void);
/* Re-check every waiting command (after each evaluation). */
void control_poll_waiters(void);
/* Try to deliver what is queued, then close every connection (exit). */
void control_flush_all(void);

/* For command handlers (control_cmd.c). */
void conn_reply(struct conn *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void conn_begin(struct conn *c, struct proto_writer *w, enum proto_kind kind, int status, const char *msg);
void conn_end(struct conn *c, struct proto_writer *w);
void conn_wait(struct conn *c, conn_wait_fn *fn, char **names, int n, int kind, int64_t timeout);
void conn_follow(struct conn *c, struct service *s);
int conn_fd(const struct conn *c);
/* Answer on a connection handed over by the previous image. */
void control_answer_fd(int fd, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
