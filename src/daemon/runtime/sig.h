/* sig.h - signals, read in the event loop through signalfd.
 *
 * The signals droverd acts on are blocked from the start and read as
 * events: no code runs in a signal handler. A storm of signals costs one
 * read per batch; standard signals of one kind coalesce. SIGPIPE is ignored
 * (a vanished client shows up as EPIPE); every other signal that droverd
 * inherited as ignored is put back to its default, so SIGPIPE is the only
 * one a child must reset (spawn.c). Children get an empty mask. */
#ifndef DROVER_SIG_H
#define DROVER_SIG_H

/* Block the signals and open the signalfd (fd >= 0: adopt it). */
int sig_init(int fd, void (*handler)(int sig));
int sig_fd(void);

#endif
