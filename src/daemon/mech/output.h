/* output.h - reading what a process writes, line by line, without blocking.
 *
 * Each process gets its own pipe for stdout and stderr; droverd reads the
 * other end when epoll says there is data, splits it into lines (a line
 * longer than OUTPUT_LINE_MAX is cut into pieces) and hands each line to the
 * service's log (svclog.h). */
#ifndef DROVER_OUTPUT_H
#define DROVER_OUTPUT_H

#include "records.h"

enum { OUTPUT_LINE_MAX = 4096 };

/* A pipe whose write end (fds[1]) goes to the child; the read end is
 * non-blocking. Both close-on-exec (the spawn places the write end). */
int output_pipe(int fds[2]);
/* Start reading rfd for p; takes ownership of rfd. */
int output_attach(struct proc *p, int rfd);
/* Read what the pipe holds now (before its process's exit is handled, so
 * its last lines come first). */
void output_drain(struct proc *p);
/* Read what is left, then close. */
void output_close(struct proc *p);
/* The read end of p's pipe, or -1 (for the upgrade hand-over). */
int output_fd(const struct proc *p);

#endif
