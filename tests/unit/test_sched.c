/* test_sched.c - restart backoff and timer schedules (schedule.h).
 *
 * sched_next_at() works in local time: each test sets TZ explicitly (UTC,
 * or Europe/Berlin for daylight saving) and restores it afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "schedule.h"

/* ---- backoff ---- */

static void test_backoff_doubles_to_cap(void **state)
{
	static const int64_t want[] = { 100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600,
					30000, 30000, 30000 };

	(void)state;
	for (unsigned f = 0; f < sizeof(want) / sizeof(want[0]); f++)
		assert_int_equal(backoff_delay(100, 30000, f), want[f]);
}

static void test_backoff_edges(void **state)
{
	(void)state;
	/* A zero first delay stays zero. */
	assert_int_equal(backoff_delay(0, 30000, 0), 0);
	assert_int_equal(backoff_delay(0, 30000, 1), 0);
	assert_int_equal(backoff_delay(0, 30000, 1000), 0);
	assert_int_equal(backoff_delay(0, 0, 5), 0);
	/* First equal to, or above, the cap: the cap. */
	assert_int_equal(backoff_delay(100, 100, 0), 100);
	assert_int_equal(backoff_delay(100, 100, 7), 100);
	assert_int_equal(backoff_delay(500, 300, 0), 300);
	assert_int_equal(backoff_delay(500, 300, 3), 300);
	/* Not a power of two of the first: capped exactly. */
	assert_int_equal(backoff_delay(250, 1000, 2), 1000);
	assert_int_equal(backoff_delay(250, 900, 2), 900);
	assert_int_equal(backoff_delay(1, 1000, 9), 512);
	assert_int_equal(backoff_delay(1, 1000, 10), 1000);
}

/* The failure count grows without bound while a service keeps failing. */
static void test_backoff_huge_failures(void **state)
{
	(void)state;
	assert_int_equal(backoff_delay(100, 30000, 64), 30000);
	assert_int_equal(backoff_delay(100, 30000, 65), 30000);
	assert_int_equal(backoff_delay(100, 30000, 1000000), 30000);
	assert_int_equal(backoff_delay(100, 30000, UINT_MAX), 30000);
	assert_int_equal(backoff_delay(1, 1, UINT_MAX), 1);
	/* The largest durations drover.conf accepts (value_duration). */
	assert_int_equal(backoff_delay(1, 9223372036854775LL, UINT_MAX), 9223372036854775LL);
	assert_int_equal(backoff_delay(9223372036854775LL, 9223372036854775LL, UINT_MAX),
			 9223372036854775LL);
}

/* "first * 2^failures, capped at max" for any int64_t: the doubling must
 * not overflow on the way to a cap near INT64_MAX. */
static void test_backoff_no_overflow_near_int64_max(void **state)
{
	(void)state;
	assert_int_equal(backoff_delay(1, INT64_MAX, 62), INT64_C(1) << 62);
	assert_int_equal(backoff_delay(1, INT64_MAX, 63), INT64_MAX);
	assert_int_equal(backoff_delay(1, INT64_MAX, 200), INT64_MAX);
	assert_int_equal(backoff_delay(INT64_MAX / 2 + 1, INT64_MAX, 1), INT64_MAX);
}

/* ---- every ---- */

static void test_every_first_run(void **state)
{
	(void)state;
	assert_int_equal(sched_next_every(10000, -1, 5000), 15000);
	assert_int_equal(sched_next_every(10000, -1, 0), 10000);
	assert_int_equal(sched_next_every(250, -1, 1000000), 1000250);
}

static void test_every_on_time(void **state)
{
	(void)state;
	assert_int_equal(sched_next_every(10000, 0, 5000), 10000);
	assert_int_equal(sched_next_every(10000, 0, 9999), 10000);
	assert_int_equal(sched_next_every(10000, 50000, 50000), 60000);
	assert_int_equal(sched_next_every(10000, 50000, 50001), 60000);
}

static void test_every_skips_missed(void **state)
{
	(void)state;
	/* A run due at 0 took until 25s: 10s and 20s are skipped. */
	assert_int_equal(sched_next_every(10000, 0, 25000), 30000);
	assert_int_equal(sched_next_every(10000, 0, 29999), 30000);
	/* Exactly on a missed slot: strictly later. */
	assert_int_equal(sched_next_every(10000, 0, 10000), 20000);
	assert_int_equal(sched_next_every(10000, 0, 30000), 40000);
	assert_int_equal(sched_next_every(1000, 7, 1000007), 1001007);
}

/* Never a time <= now; always on the grid of `last`; never a whole
 * interval late. */
static void test_every_properties(void **state)
{
	static const int64_t everies[] = { 1, 7, 250, 1000, 60000, 86400000 };

	(void)state;
	for (size_t e = 0; e < sizeof(everies) / sizeof(everies[0]); e++) {
		int64_t every = everies[e];

		for (int64_t last = 0; last < 3 * every + 5; last += every / 3 + 1)
			for (int64_t now = last; now < last + 5 * every + 3; now += every / 4 + 1) {
				int64_t next = sched_next_every(every, last, now);

				if (next <= now || (next - last) % every != 0 || next - every > now)
					fail_msg("every %lld last %lld now %lld: next %lld",
						 (long long)every, (long long)last, (long long)now,
						 (long long)next);
			}
	}
}

/* ---- at ---- */

struct tz_state {
	char *old;
};

static int tz_setup(void **state)
{
	struct tz_state *s = calloc(1, sizeof(*s));
	const char *tz = getenv("TZ");

	if (!s)
		return -1;
	s->old = tz ? strdup(tz) : NULL;
	*state = s;
	return 0;
}

static int tz_teardown(void **state)
{
	struct tz_state *s = *state;

	if (s->old)
		setenv("TZ", s->old, 1);
	else
		unsetenv("TZ");
	tzset();
	free(s->old);
	free(s);
	return 0;
}

static void use_tz(const char *tz)
{
	assert_int_equal(setenv("TZ", tz, 1), 0);
	tzset();
}

/* Seconds since the epoch of a UTC date. */
static time_t utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm t = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
			.tm_hour = h, .tm_min = mi, .tm_sec = s };

	return timegm(&t);
}

static void expect_at(const short *mins, int n, time_t now, time_t want)
{
	time_t got = sched_next_at(mins, n, now);

	if (got != want) {
		char a[64], b[64], c[64];
		struct tm t;

		strftime(a, sizeof(a), "%F %T %Z", localtime_r(&now, &t));
		strftime(b, sizeof(b), "%F %T %Z", localtime_r(&got, &t));
		strftime(c, sizeof(c), "%F %T %Z", localtime_r(&want, &t));
		fail_msg("next_at from %s: got %s (%lld), want %s (%lld)", a, b, (long long)got,
			 c, (long long)want);
	}
}

#define AT(...) (const short[]){ __VA_ARGS__ }, (int)(sizeof((const short[]){ __VA_ARGS__ }) / sizeof(short))

static void test_at_today_tomorrow(void **state)
{
	time_t now = utc(2024, 1, 15, 10, 0, 0);

	(void)state;
	use_tz("UTC");
	expect_at(AT(11 * 60), now, utc(2024, 1, 15, 11, 0, 0));
	expect_at(AT(10 * 60 + 1), now, utc(2024, 1, 15, 10, 1, 0));
	expect_at(AT(9 * 60), now, utc(2024, 1, 16, 9, 0, 0));
	/* Strictly after now: the time itself is tomorrow's. */
	expect_at(AT(10 * 60), now, utc(2024, 1, 16, 10, 0, 0));
	expect_at(AT(10 * 60), now - 1, now);
	expect_at(AT(10 * 60), now + 1, utc(2024, 1, 16, 10, 0, 0));
	expect_at(AT(0), now, utc(2024, 1, 16, 0, 0, 0));
	expect_at(AT(23 * 60 + 59), now, utc(2024, 1, 15, 23, 59, 0));
	/* Seconds into the minute do not matter. */
	expect_at(AT(10 * 60 + 1), now + 59, utc(2024, 1, 15, 10, 1, 0));
}

static void test_at_list(void **state)
{
	const short mins[] = { 9 * 60, 10 * 60 + 30, 23 * 60 + 59 };

	(void)state;
	use_tz("UTC");
	expect_at(mins, 3, utc(2024, 1, 15, 8, 0, 0), utc(2024, 1, 15, 9, 0, 0));
	expect_at(mins, 3, utc(2024, 1, 15, 9, 0, 0), utc(2024, 1, 15, 10, 30, 0));
	expect_at(mins, 3, utc(2024, 1, 15, 10, 0, 0), utc(2024, 1, 15, 10, 30, 0));
	expect_at(mins, 3, utc(2024, 1, 15, 10, 30, 0), utc(2024, 1, 15, 23, 59, 0));
	expect_at(mins, 3, utc(2024, 1, 15, 23, 59, 0), utc(2024, 1, 16, 9, 0, 0));
	expect_at(mins, 3, utc(2024, 1, 15, 23, 59, 59), utc(2024, 1, 16, 9, 0, 0));
}

static void test_at_month_year_boundaries(void **state)
{
	(void)state;
	use_tz("UTC");
	expect_at(AT(6 * 60), utc(2024, 1, 31, 12, 0, 0), utc(2024, 2, 1, 6, 0, 0));
	expect_at(AT(6 * 60), utc(2024, 4, 30, 23, 0, 0), utc(2024, 5, 1, 6, 0, 0));
	/* Leap day, and a year without one. */
	expect_at(AT(6 * 60), utc(2024, 2, 28, 23, 0, 0), utc(2024, 2, 29, 6, 0, 0));
	expect_at(AT(6 * 60), utc(2024, 2, 29, 7, 0, 0), utc(2024, 3, 1, 6, 0, 0));
	expect_at(AT(6 * 60), utc(2023, 2, 28, 7, 0, 0), utc(2023, 3, 1, 6, 0, 0));
	/* New year. */
	expect_at(AT(15), utc(2023, 12, 31, 23, 30, 0), utc(2024, 1, 1, 0, 15, 0));
	expect_at(AT(23 * 60 + 45), utc(2023, 12, 31, 23, 50, 0), utc(2024, 1, 1, 23, 45, 0));
}

/* Every minute of a day, from every few minutes of the day before: the
 * answer is the next occurrence, at most a day away. */
static void test_at_exhaustive_utc(void **state)
{
	time_t base = utc(2024, 6, 10, 0, 0, 0);

	(void)state;
	use_tz("UTC");
	for (short m = 0; m < 1440; m += 7)
		for (int now_min = 0; now_min < 1440; now_min += 13) {
			time_t now = base + now_min * 60 + 30;
			time_t want = base + m * 60 + (m * 60 > now_min * 60 + 30 ? 0 : 86400);

			expect_at(&m, 1, now, want);
		}
}

static bool have_zone(const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", name);
	return access(path, R_OK) == 0;
}

/* Europe/Berlin, 2024-03-31: 02:00 CET becomes 03:00 CEST; 02:30 does not
 * exist that day and moves to the next day that has it. */
static void test_at_dst_spring_forward(void **state)
{
	(void)state;
	if (!have_zone("Europe/Berlin"))
		skip();
	use_tz("Europe/Berlin");
	/* From 01:00 CET (00:00 UTC). */
	expect_at(AT(2 * 60 + 30), utc(2024, 3, 31, 0, 0, 0), utc(2024, 4, 1, 0, 30, 0));
	expect_at(AT(1 * 60 + 30), utc(2024, 3, 31, 0, 0, 0), utc(2024, 3, 31, 0, 30, 0));
	expect_at(AT(3 * 60 + 30), utc(2024, 3, 31, 0, 0, 0), utc(2024, 3, 31, 1, 30, 0));
	/* A list: 02:30 is skipped, 03:30 CEST is next. */
	expect_at(AT(1 * 60 + 30, 2 * 60 + 30, 3 * 60 + 30), utc(2024, 3, 31, 0, 45, 0),
		  utc(2024, 3, 31, 1, 30, 0));
	/* 02:00 does not exist either; 03:00 does. */
	expect_at(AT(2 * 60), utc(2024, 3, 30, 23, 0, 0), utc(2024, 4, 1, 0, 0, 0));
	expect_at(AT(3 * 60), utc(2024, 3, 30, 23, 0, 0), utc(2024, 3, 31, 1, 0, 0));
	/* The day before, in winter time: 02:30 CET = 01:30 UTC. */
	expect_at(AT(2 * 60 + 30), utc(2024, 3, 30, 0, 0, 0), utc(2024, 3, 30, 1, 30, 0));
	/* Noon on the day of the change is CEST: 10:00 UTC. */
	expect_at(AT(12 * 60), utc(2024, 3, 31, 0, 0, 0), utc(2024, 3, 31, 10, 0, 0));
}

/* Europe/Berlin, 2024-10-27: 03:00 CEST becomes 02:00 CET; 02:30 happens
 * twice. schedule.h: "the first wall-clock time strictly after now whose local
 * time is one of mins[]" - from 02:00 CEST that is 02:30 CEST (00:30 UTC),
 * not 02:30 CET an hour later. */
static void test_at_dst_fall_back_first_occurrence(void **state)
{
	(void)state;
	if (!have_zone("Europe/Berlin"))
		skip();
	use_tz("Europe/Berlin");
	expect_at(AT(2 * 60 + 30), utc(2024, 10, 27, 0, 0, 0), utc(2024, 10, 27, 0, 30, 0));
}

static void test_at_dst_fall_back(void **state)
{
	time_t t;

	(void)state;
	if (!have_zone("Europe/Berlin"))
		skip();
	use_tz("Europe/Berlin");
	/* Times outside the repeated hour. */
	expect_at(AT(12 * 60), utc(2024, 10, 27, 0, 0, 0), utc(2024, 10, 27, 11, 0, 0));
	expect_at(AT(1 * 60 + 30), utc(2024, 10, 26, 22, 0, 0), utc(2024, 10, 26, 23, 30, 0));
	expect_at(AT(3 * 60 + 30), utc(2024, 10, 27, 0, 0, 0), utc(2024, 10, 27, 2, 30, 0));
	/* After both 02:30s: tomorrow's, in CET. */
	expect_at(AT(2 * 60 + 30), utc(2024, 10, 27, 1, 30, 0), utc(2024, 10, 28, 1, 30, 0));
	/* Between the two: whichever is chosen, it is later and reads 02:30. */
	t = sched_next_at(AT(2 * 60 + 30), utc(2024, 10, 27, 0, 45, 0));
	assert_true(t == utc(2024, 10, 27, 1, 30, 0) || t == utc(2024, 10, 28, 1, 30, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_doubles_to_cap),
		cmocka_unit_test(test_backoff_edges),
		cmocka_unit_test(test_backoff_huge_failures),
		cmocka_unit_test(test_every_first_run),
		cmocka_unit_test(test_every_on_time),
		cmocka_unit_test(test_every_skips_missed),
		cmocka_unit_test(test_every_properties),
		cmocka_unit_test_setup_teardown(test_at_today_tomorrow, tz_setup, tz_teardown),
		cmocka_unit_test_setup_teardown(test_at_list, tz_setup, tz_teardown),
		cmocka_unit_test_setup_teardown(test_at_month_year_boundaries, tz_setup, tz_teardown),
		cmocka_unit_test_setup_teardown(test_at_exhaustive_utc, tz_setup, tz_teardown),
		cmocka_unit_test_setup_teardown(test_at_dst_spring_forward, tz_setup, tz_teardown),
		cmocka_unit_test_setup_teardown(test_at_dst_fall_back, tz_setup, tz_teardown),
		cmocka_unit_test_setup_teardown(test_at_dst_fall_back_first_occurrence, tz_setup,
						tz_teardown),
		/* Last: under UBSan this one stops the program at the overflow. */
		cmocka_unit_test(test_backoff_no_overflow_near_int64_max),
	};

	return cmocka_run_group_tests_name("sched", tests, NULL, NULL);
}
