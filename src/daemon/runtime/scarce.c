/* scarce.c - see scarce.h. */
#include "scarce.h"

#include <errno.h>

#include "log.h"
#include "value.h"

bool scarce_errno(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOMEM || err == ENOBUFS || err == EAGAIN;
}

void scarce_fail(struct scarce *sc, timer_fn *fn, const char *what, const char *reason)
{
	char first[32], max[32];

	if (!sc->since) {
		sc->since = loop_now();
		sc->delay = SCARCE_FIRST_MS;
		sc->failures = 0;
		duration_format(SCARCE_FIRST_MS, first, sizeof(first));
		duration_format(SCARCE_MAX_MS, max, sizeof(max));
		log_warn("%s: %s; retrying every %s to %s until it works", what, reason, first, max);
	}
	sc->failures++;
	timer_after(&sc->t, sc->delay, fn);
	sc->delay = sc->delay * 2 > SCARCE_MAX_MS ? SCARCE_MAX_MS : sc->delay * 2;
}

void scarce_ok(struct scarce *sc, const char *what)
{
	int64_t d = loop_now() - sc->since;
	char took[32];

	if (!sc->since)
		return;
	duration_format(d > 1000 ? d - d % 100 : d, took, sizeof(took));
	log_info("%s again, after %s (%lu failed attempts)", what, took, sc->failures);
	sc->since = 0;
	sc->failures = 0;
}

void scarce_cancel(struct scarce *sc)
{
	timer_cancel(&sc->t);
	sc->since = 0;
	sc->failures = 0;
}
