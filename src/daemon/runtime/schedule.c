/* schedule.c - see schedule.h. */
#include "schedule.h"

int64_t backoff_delay(int64_t first, int64_t max, unsigned failures)
{
	int64_t d = first;

	for (unsigned i = 0; i < failures && d > 0 && d < max; i++)
		d = d > INT64_MAX / 2 ? INT64_MAX : d * 2;
	return d > max ? max : d;
}

int64_t sched_next_every(int64_t every, int64_t last, int64_t now)
{
	int64_t next;

	if (last < 0)
		return now + every;
	next = last + every;
	if (next <= now)
		next = now + every - (now - last) % every;
	return next;
}

/* The local time `minutes` on a day, as a time_t; when the clock goes back
 * and the time occurs twice, the first. Returns -1 if it does not exist
 * that day (the clock skipped it). */
static time_t local_at(const struct tm *day, int minutes, int plus_days)
{
	time_t best = -1;

	for (int dst = 0; dst <= 1; dst++) {
		struct tm t = *day, check;
		time_t v;

		t.tm_mday += plus_days;
		t.tm_hour = minutes / 60;
		t.tm_min = minutes % 60;
		t.tm_sec = 0;
		t.tm_isdst = dst;
		v = mktime(&t);
		/* mktime moves a time given with the wrong DST flag, or one
		 * that does not exist: keep only what reads back the same. */
		if (v == -1 || !localtime_r(&v, &check) ||
		    check.tm_hour * 60 + check.tm_min != minutes || check.tm_mday != t.tm_mday)
			continue;
		if (best < 0 || v < best)
			best = v;
	}
	return best;
}

time_t sched_next_at(const short *mins, int n, time_t now)
{
	struct tm today;

	localtime_r(&now, &today);
	for (int d = 0; d < 3; d++) {
		time_t best = -1;

		for (int i = 0; i < n; i++) {
			time_t t = local_at(&today, mins[i], d);

			if (t > now && (best < 0 || t < best))
				best = t;
		}
		if (best > 0)
			return best;
	}
	return now + 86400;
}
