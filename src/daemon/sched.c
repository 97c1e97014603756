/* sched.c - see sched.h. */
#include "sched.h"

int64_t backoff_delay(int64_t first, int64_t max, unsigned failures)
{
	int64_t d = first;

	for (unsigned i = 0; i < failures && d < max; i++)
		d *= 2;
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

static time_t local_at(const struct tm *day, int minutes, int plus_days)
{
	struct tm t = *day;

	t.tm_mday += plus_days;
	t.tm_hour = minutes / 60;
	t.tm_min = minutes % 60;
	t.tm_sec = 0;
	t.tm_isdst = -1;
	return mktime(&t);
}

time_t sched_next_at(const short *mins, int n, time_t now)
{
	struct tm today;

	localtime_r(&now, &today);
	for (int d = 0; d < 3; d++)
		for (int i = 0; i < n; i++) {
			time_t t = local_at(&today, mins[i], d);
			struct tm check;

			localtime_r(&t, &check);
			/* mktime moves a nonexistent time (DST gap): skip it. */
			if (t > now && check.tm_hour * 60 + check.tm_min == mins[i])
				return t;
		}
	return now + 86400;
}
