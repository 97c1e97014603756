/* drover.h - what a program running under droverd may call.
 *
 * Link with -ldrover (pkg-config drover). Everything here also works under
 * systemd: the environment and protocol are the same (LISTEN_FDS,
 * NOTIFY_SOCKET). None of these functions allocates memory or keeps a
 * descriptor open; all are safe to call from any thread.
 *
 * See libdrover(3). */
#ifndef DROVER_H
#define DROVER_H

#ifdef __cplusplus
extern "C" {
#endif

/* First descriptor of the listeners droverd passed: 3. */
#define DROVER_LISTEN_FDS_START 3

/* How many listening sockets were passed to this process (descriptors 3,
 * 4, ...), 0 if none or if they were meant for another process (LISTEN_PID
 * is not ours). Marks them close-on-exec. */
int drover_listen_fds(void);

/* The descriptor of the listener named `name` (its FDNAME, by default the
 * service name), or -1 if there is none. */
int drover_listen_fd(const char *name);

/* Sends one message ("KEY=VALUE" lines) to NOTIFY_SOCKET. Returns 1 when
 * sent, 0 when there is no NOTIFY_SOCKET, -errno on failure. */
int drover_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* READY=1: the service is ready (ready = notify). */
int drover_ready(void);
/* A prefork worker took a connection / is done with it. */
int drover_busy(void);
int drover_idle(void);

#ifdef __cplusplus
}
#endif

#endif
