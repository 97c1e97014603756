/* scarce.h - what droverd does when the system says no.
 *
 * A resource that ran out (descriptors: EMFILE, ENFILE; memory: ENOMEM,
 * ENOBUFS; processes: EAGAIN from clone) fails the one operation that
 * needed it; the thing that asked (a listener, a pool's next handler) is
 * paused and retried on a CLOCK_MONOTONIC timer, never in a loop. The delay
 * doubles from SCARCE_FIRST_MS up to SCARCE_MAX_MS. An episode is logged
 * twice: at its first failure (what, why, and that it is retried) and at
 * its end (how long it lasted, how many retries failed), never per retry.
 * One struct scarce per thing that can be held up, embedded in its owner;
 * the owner's timer callback finds it with offsetof, as every timer does. */
#ifndef DROVER_SCARCE_H
#define DROVER_SCARCE_H

#include <stdbool.h>
#include <stdint.h>

#include "loop.h"

enum { SCARCE_FIRST_MS = 100, SCARCE_MAX_MS = 1000 };

struct scarce {
	struct timer t;		/* the retry */
	int64_t since;		/* start of the episode; 0 when none */
	int64_t delay;		/* the next wait */
	unsigned long failures;	/* in this episode */
};

/* Is err a resource that may come back (worth a retry later)? */
bool scarce_errno(int err);
/* A failure: logs the first of an episode ("WHAT: REASON; retrying every
 * ... until it works") and arms the retry, which calls fn. */
void scarce_fail(struct scarce *sc, timer_fn *fn, const char *what, const char *reason);
/* It worked: ends an episode, if one is on, with one line ("WHAT again
 * after 2.3s (12 retries)"). */
void scarce_ok(struct scarce *sc, const char *what);
/* Forget the episode and the retry (the owner stops or goes away). */
void scarce_cancel(struct scarce *sc);
static inline bool scarce_on(const struct scarce *sc) { return sc->since != 0; }

#endif
