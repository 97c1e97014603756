/* schedule.h - pure time arithmetic: restart backoff and timer schedules.
 * No clock is read here; callers pass the time, tests pass any time. */
#ifndef DROVER_SCHEDULE_H
#define DROVER_SCHEDULE_H

#include <stdint.h>
#include <time.h>

/* first * 2^failures, capped at max (failures: failed starts in a row so
 * far, 0 for the first). */
int64_t backoff_delay(int64_t first, int64_t max, unsigned failures);

/* `every`: the run after one due at `last` (monotonic ms), skipping any that
 * were missed while a run went on; `last` < 0: one interval from now. */
int64_t sched_next_every(int64_t every, int64_t last, int64_t now);

/* `at`: the first wall-clock time strictly after `now` whose local time is
 * one of mins[] (minutes after midnight, sorted). Handles month ends and
 * daylight saving changes through mktime; a time that does not exist on a
 * day (skipped by DST) moves to the next day that has it. */
time_t sched_next_at(const short *mins, int n, time_t now);

#endif
