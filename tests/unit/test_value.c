/* test_value.c - the value parsers of drover.conf (value.h).
 *
 * Every accepted spelling of SPEC section 2 gives its exact value; every
 * rejected one gives the exact reason and leaves the output untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "value.h"

#define NOT_DURATION "is not a duration (use 250ms, 10s, 5m, 2h or a number of seconds)"
#define NOT_SIZE "is not a size (use 512K, 10M, 1G or a number of bytes)"
#define NOT_BOOL "is not a boolean (use yes/no, true/false, on/off or 1/0)"
#define NOT_OCTAL "is not an octal mode (like 022 or 0660)"
#define NOT_SIGNAL "is not a signal (use a name like TERM, HUP, USR1, or a number)"
#define NOT_TIMES "is not a time list (use HH:MM, or HH:MM,HH:MM,...)"
#define TIME_RANGE "has a time out of range (00:00 to 23:59)"

/* ---- durations ---- */

static void duration_ok(const char *s, int64_t want)
{
	int64_t ms = -42;
	const char *err = value_duration(s, &ms);

	if (err)
		fail_msg("value_duration(\"%s\"): unexpected error \"%s\"", s, err);
	if (ms != want)
		fail_msg("value_duration(\"%s\") = %lld, want %lld", s, (long long)ms, (long long)want);
}

static void duration_bad(const char *s, const char *want)
{
	int64_t ms = -42;
	const char *err = value_duration(s, &ms);

	if (!err)
		fail_msg("value_duration(\"%s\") accepted as %lld", s, (long long)ms);
	if (want && strcmp(err, want) != 0)
		fail_msg("value_duration(\"%s\"): \"%s\", want \"%s\"", s, err, want);
	assert_int_equal(ms, -42);
}

static void test_duration_units(void **state)
{
	(void)state;
	duration_ok("250ms", 250);
	duration_ok("10s", 10000);
	duration_ok("5m", 300000);
	duration_ok("2h", 7200000);
	duration_ok("10", 10000);
	duration_ok("0", 0);
	duration_ok("0ms", 0);
	duration_ok("1ms", 1);
	duration_ok("007s", 7000);
	duration_ok("86400", 86400000);
}

static void test_duration_rejects(void **state)
{
	(void)state;
	duration_bad("10x", NOT_DURATION);
	duration_bad("-1", NOT_DURATION);
	duration_bad("+1", NOT_DURATION);
	duration_bad("1.5s", NOT_DURATION);
	duration_bad("", NOT_DURATION);
	duration_bad(" 5", NOT_DURATION);
	duration_bad("5 ", NOT_DURATION);
	duration_bad("5 s", NOT_DURATION);
	duration_bad("s", NOT_DURATION);
	duration_bad("ms", NOT_DURATION);
	duration_bad("10S", NOT_DURATION);
	duration_bad("10sec", NOT_DURATION);
	duration_bad("1h30m", NOT_DURATION);
	duration_bad("0x10", NOT_DURATION);
}

/* Limits: a duration times 1000 (microseconds, for WATCHDOG_USEC) must
 * still fit in an int64_t. */
static void test_duration_overflow(void **state)
{
	(void)state;
	duration_ok("2562047788h", 2562047788LL * 3600000);
	duration_bad("2562047789h", "is too long");
	duration_ok("153722867280m", 153722867280LL * 60000);
	duration_bad("153722867281m", "is too long");
	duration_ok("9223372036854s", 9223372036854LL * 1000);
	duration_bad("9223372036855s", "is too long");
	duration_bad("9223372036855", "is too long");
	duration_ok("9223372036854775ms", 9223372036854775LL);
	duration_bad("9223372036854776ms", "is too long");
	/* Past what 64 bits hold: rejected whatever the wording. */
	duration_bad("99999999999999999999", NULL);
	duration_bad("99999999999999999999999999999999ms", NULL);
}

static void test_duration_format(void **state)
{
	static const struct { int64_t ms; const char *text; } cases[] = {
		{ 0, "0s" }, { 1, "1ms" }, { 100, "100ms" }, { 250, "250ms" }, { 999, "999ms" },
		{ 1000, "1s" }, { 1050, "1050ms" }, { 1100, "1.1s" }, { 1500, "1.5s" },
		{ 6400, "6.4s" }, { 61500, "61.5s" }, { 10000, "10s" }, { 90000, "90s" },
		{ 60000, "1m" }, { 300000, "5m" }, { 3660000, "61m" }, { 3600000, "1h" },
		{ 7200000, "2h" }, { 86400000, "24h" }, { 1001, "1001ms" },
	};
	char out[32];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t back = -1;

		duration_format(cases[i].ms, out, sizeof(out));
		assert_string_equal(out, cases[i].text);
		if (strchr(out, '.'))
			continue;	/* display only: "1.5s" is not config syntax */
		/* Whole units parse back to the same value. */
		assert_null(value_duration(out, &back));
		assert_int_equal(back, cases[i].ms);
	}
	/* A short buffer is truncated, never overrun. */
	memset(out, 'x', sizeof(out));
	duration_format(250, out, 4);
	assert_string_equal(out, "250");
	assert_int_equal(out[4], 'x');
}

/* ---- sizes ---- */

static void size_ok(const char *s, uint64_t want)
{
	uint64_t v = 42;
	const char *err = value_size(s, &v);

	if (err)
		fail_msg("value_size(\"%s\"): unexpected error \"%s\"", s, err);
	if (v != want)
		fail_msg("value_size(\"%s\") = %llu, want %llu", s, (unsigned long long)v,
			 (unsigned long long)want);
}

static void size_bad(const char *s, const char *want)
{
	uint64_t v = 42;
	const char *err = value_size(s, &v);

	if (!err)
		fail_msg("value_size(\"%s\") accepted as %llu", s, (unsigned long long)v);
	if (want && strcmp(err, want) != 0)
		fail_msg("value_size(\"%s\"): \"%s\", want \"%s\"", s, err, want);
	assert_int_equal(v, 42);
}

static void test_size(void **state)
{
	(void)state;
	size_ok("512K", 512 * 1024);
	size_ok("10M", 10 * 1024 * 1024);
	size_ok("1G", 1024ULL * 1024 * 1024);
	size_ok("4096", 4096);
	size_ok("0", 0);
	size_ok("0K", 0);
	size_ok("1k", 1024);
	size_ok("1m", 1024 * 1024);
	size_ok("1g", 1024ULL * 1024 * 1024);
	size_bad("", NOT_SIZE);
	size_bad("K", NOT_SIZE);
	size_bad("10KB", NOT_SIZE);
	size_bad("10T", NOT_SIZE);
	size_bad("1.5M", NOT_SIZE);
	size_bad("-1", NOT_SIZE);
	size_bad(" 1", NOT_SIZE);
	size_bad("1 ", NOT_SIZE);
	size_bad("1 M", NOT_SIZE);
}

static void test_size_overflow(void **state)
{
	(void)state;
	size_ok("17179869183G", 17179869183ULL << 30);
	size_bad("17179869184G", "is too large");
	size_ok("17592186044415M", 17592186044415ULL << 20);
	size_bad("17592186044416M", "is too large");
	size_ok("18014398509481983K", 18014398509481983ULL << 10);
	size_bad("18014398509481984K", "is too large");
	size_bad("99999999999999999999", NULL);
	size_bad("99999999999999999999K", NULL);
}

/* ---- booleans, numbers, octal ---- */

static void test_bool(void **state)
{
	static const char *yes[] = { "yes", "true", "on", "1" };
	static const char *no[] = { "no", "false", "off", "0" };
	static const char *bad[] = { "", "y", "n", "2", "yess", " yes", "yes ", "enable", "-1" };
	bool b;

	(void)state;
	for (int i = 0; i < 4; i++) {
		b = false;
		assert_null(value_bool(yes[i], &b));
		assert_true(b);
		b = true;
		assert_null(value_bool(no[i], &b));
		assert_false(b);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		b = true;
		const char *err = value_bool(bad[i], &b);

		if (!err || strcmp(err, NOT_BOOL) != 0)
			fail_msg("value_bool(\"%s\"): %s", bad[i], err ? err : "accepted");
		assert_true(b);
	}
}

static void test_uint(void **state)
{
	unsigned v = 7;

	(void)state;
	assert_null(value_uint("0", 10, &v));
	assert_int_equal(v, 0);
	assert_null(value_uint("4096", 4096, &v));
	assert_int_equal(v, 4096);
	assert_null(value_uint("00012", 4096, &v));
	assert_int_equal(v, 12);
	assert_null(value_uint("4294967295", UINT_MAX, &v));
	assert_int_equal(v, UINT_MAX);
	v = 7;
	assert_string_equal(value_uint("4097", 4096, &v), "is too large");
	assert_string_equal(value_uint("4294967296", UINT_MAX, &v), "is too large");
	assert_string_equal(value_uint("99999999999999999999999", UINT_MAX, &v), "is not a number");
	assert_string_equal(value_uint("", 10, &v), "is not a number");
	assert_string_equal(value_uint("-1", 10, &v), "is not a number");
	assert_string_equal(value_uint("+1", 10, &v), "is not a number");
	assert_string_equal(value_uint(" 1", 10, &v), "is not a number");
	assert_string_equal(value_uint("1 ", 10, &v), "is not a number");
	assert_string_equal(value_uint("1x", 10, &v), "is not a number");
	assert_string_equal(value_uint("0x1", 10, &v), "is not a number");
	assert_int_equal(v, 7);
}

static void test_octal(void **state)
{
	unsigned v = 1;

	(void)state;
	assert_null(value_octal("022", 0777, &v));
	assert_int_equal(v, 022);
	assert_null(value_octal("0660", 0777, &v));
	assert_int_equal(v, 0660);
	assert_null(value_octal("777", 0777, &v));
	assert_int_equal(v, 0777);
	assert_null(value_octal("0", 0777, &v));
	assert_int_equal(v, 0);
	v = 1;
	assert_string_equal(value_octal("", 0777, &v), NOT_OCTAL);
	assert_string_equal(value_octal("8", 0777, &v), NOT_OCTAL);
	assert_string_equal(value_octal("0x1", 0777, &v), NOT_OCTAL);
	assert_string_equal(value_octal("-22", 0777, &v), NOT_OCTAL);
	assert_string_equal(value_octal(" 022", 0777, &v), NOT_OCTAL);
	assert_string_equal(value_octal("00022", 0777, &v), NOT_OCTAL);
	assert_string_equal(value_octal("1777", 0777, &v), "is out of range");
	assert_string_equal(value_octal("7777", 0777, &v), "is out of range");
	assert_int_equal(v, 1);
}

/* ---- signals ---- */

static void signal_ok(const char *s, int want)
{
	int sig = -1;
	const char *err = value_signal(s, &sig);

	if (err)
		fail_msg("value_signal(\"%s\"): unexpected error \"%s\"", s, err);
	if (sig != want)
		fail_msg("value_signal(\"%s\") = %d, want %d", s, sig, want);
}

static void test_signal(void **state)
{
	static const char *bad[] = { "", "BOGUS", "SIG", "SIGBOGUS", "0", "-15", "65", "1000",
				     "15x", "SIG15", " TERM", "TERM ", "SIGSIGTERM" };

	(void)state;
	signal_ok("TERM", SIGTERM);
	signal_ok("SIGTERM", SIGTERM);
	signal_ok("term", SIGTERM);
	signal_ok("sigterm", SIGTERM);
	signal_ok("SigTerm", SIGTERM);
	signal_ok("15", SIGTERM);
	signal_ok("HUP", SIGHUP);
	signal_ok("USR1", SIGUSR1);
	signal_ok("SIGUSR2", SIGUSR2);
	signal_ok("KILL", SIGKILL);
	signal_ok("9", SIGKILL);
	signal_ok("QUIT", SIGQUIT);
	signal_ok("WINCH", SIGWINCH);
	signal_ok("1", 1);
	signal_ok("64", 64);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int sig = -1;
		const char *err = value_signal(bad[i], &sig);

		if (!err || strcmp(err, NOT_SIGNAL) != 0)
			fail_msg("value_signal(\"%s\"): %s (sig %d)", bad[i], err ? err : "accepted", sig);
		assert_int_equal(sig, -1);
	}
}

static void test_signal_name(void **state)
{
	(void)state;
	assert_string_equal(signal_name(SIGTERM), "TERM");
	assert_string_equal(signal_name(SIGHUP), "HUP");
	assert_string_equal(signal_name(SIGKILL), "KILL");
	assert_string_equal(signal_name(SIGUSR1), "USR1");
	assert_string_equal(signal_name(0), "0");
	assert_string_equal(signal_name(-3), "-3");
	assert_string_equal(signal_name(1000), "1000");
	assert_string_equal(signal_name(NSIG), "65");
	/* What it prints for a named signal parses back. */
	for (int s = 1; s < 32; s++) {
		int back = -1;

		assert_null(value_signal(signal_name(s), &back));
		assert_int_equal(back, s);
	}
}

/* ---- at = HH:MM,... ---- */

static void at_ok(const char *s, const short *want, int nwant)
{
	struct arena a = { 0 };
	short *mins = NULL;
	int n = -1;
	const char *err = value_at(&a, s, &mins, &n);

	if (err)
		fail_msg("value_at(\"%s\"): unexpected error \"%s\"", s, err);
	assert_int_equal(n, nwant);
	for (int i = 0; i < n; i++)
		if (mins[i] != want[i])
			fail_msg("value_at(\"%s\")[%d] = %d, want %d", s, i, mins[i], want[i]);
	arena_free(&a);
}

static void at_bad(const char *s, const char *want)
{
	struct arena a = { 0 };
	short *mins = (short *)&a;
	int n = -1;
	const char *err = value_at(&a, s, &mins, &n);

	if (!err || strcmp(err, want) != 0)
		fail_msg("value_at(\"%s\"): %s, want \"%s\"", s, err ? err : "accepted", want);
	assert_int_equal(n, -1);
	assert_ptr_equal(mins, (short *)&a);
	arena_free(&a);
}

static void test_at(void **state)
{
	(void)state;
	at_ok("03:00", (short[]){ 180 }, 1);
	at_ok("00:00", (short[]){ 0 }, 1);
	at_ok("23:59", (short[]){ 1439 }, 1);
	at_ok("3:05", (short[]){ 185 }, 1);
	at_ok("12:00,06:30", (short[]){ 390, 720 }, 2);
	at_ok("12:00, 06:30 ,00:15", (short[]){ 15, 390, 720 }, 3);
	/* Sorted and de-duplicated. */
	at_ok("03:00,01:30,03:00,01:30,23:00", (short[]){ 90, 180, 1380 }, 3);
	at_ok("05:00,05:00", (short[]){ 300 }, 1);
}

static void test_at_rejects(void **state)
{
	(void)state;
	at_bad("24:00", TIME_RANGE);
	at_bad("12:60", TIME_RANGE);
	at_bad("99:99", TIME_RANGE);
	at_bad("03:00,25:00", TIME_RANGE);
	at_bad("", NOT_TIMES);
	at_bad("noon", NOT_TIMES);
	at_bad("12", NOT_TIMES);
	at_bad("12:", NOT_TIMES);
	at_bad("12:5", NOT_TIMES);
	at_bad("12:345", NOT_TIMES);
	at_bad("123:00", NOT_TIMES);
	at_bad(":30", NOT_TIMES);
	at_bad("12.30", NOT_TIMES);
	at_bad("03:00,", NOT_TIMES);
	at_bad(",03:00", NOT_TIMES);
	at_bad("03:00;04:00", NOT_TIMES);
	at_bad("03:00 04:00", NOT_TIMES);
	at_bad("-1:00", NOT_TIMES);
}

/* ---- command splitting ---- */

/* want: NULL-terminated expected argv. */
static void split_ok(const char *s, const char *const *want)
{
	struct arena a = { 0 };
	char **argv = NULL;
	int argc = -1, nwant = 0;
	const char *err = value_split(&a, s, &argv, &argc);

	while (want[nwant])
		nwant++;
	if (err)
		fail_msg("value_split(<%s>): unexpected error \"%s\"", s, err);
	if (argc != nwant)
		fail_msg("value_split(<%s>): %d words, want %d", s, argc, nwant);
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], want[i]) != 0)
			fail_msg("value_split(<%s>)[%d] = <%s>, want <%s>", s, i, argv[i], want[i]);
	assert_null(argv[argc]);
	arena_free(&a);
}

static void split_bad(const char *s, const char *want)
{
	struct arena a = { 0 };
	char **argv = (char **)&a;
	int argc = -1;
	const char *err = value_split(&a, s, &argv, &argc);

	if (!err || strcmp(err, want) != 0)
		fail_msg("value_split(<%s>): %s, want \"%s\"", s, err ? err : "accepted", want);
	assert_int_equal(argc, -1);
	assert_ptr_equal(argv, (char **)&a);
	arena_free(&a);
}

#define SPLIT(s, ...) split_ok(s, (const char *const[]){ __VA_ARGS__, NULL })

static void test_split_words(void **state)
{
	(void)state;
	SPLIT("/bin/true", "/bin/true");
	SPLIT("a b  c", "a", "b", "c");
	SPLIT("  a\tb \t c  ", "a", "b", "c");
	SPLIT("/usr/bin/web --threads 1", "/usr/bin/web", "--threads", "1");
	/* '#' is not a comment: nothing is special but quotes and backslash. */
	SPLIT("echo #not-a-comment", "echo", "#not-a-comment");
	SPLIT("echo $HOME ~ * ; | &", "echo", "$HOME", "~", "*", ";", "|", "&");
}

static void test_split_single_quotes(void **state)
{
	(void)state;
	SPLIT("'a b' c", "a b", "c");
	SPLIT("/bin/sh -c 'echo \"hi\"; exit 3'", "/bin/sh", "-c", "echo \"hi\"; exit 3");
	/* Inside single quotes everything is literal, backslash too. */
	SPLIT("'a\\b' 'c\\'", "a\\b", "c\\");
	SPLIT("'$x'", "$x");
	SPLIT("a'b'c", "abc");
	SPLIT("'a''b'", "ab");
	SPLIT("''", "");
	SPLIT("x '' y", "x", "", "y");
}

static void test_split_double_quotes(void **state)
{
	(void)state;
	SPLIT("\"a b\" c", "a b", "c");
	/* Backslash escapes only $ ` " and \ inside double quotes... */
	SPLIT("\"a\\\"b\"", "a\"b");
	SPLIT("\"a\\$b\"", "a$b");
	SPLIT("\"a\\`b\"", "a`b");
	SPLIT("\"a\\\\b\"", "a\\b");
	/* ...and stays before anything else. */
	SPLIT("\"a\\nb\"", "a\\nb");
	SPLIT("\"a\\'b\"", "a\\'b");
	SPLIT("\"a\\ b\"", "a\\ b");
	SPLIT("\"it's\"", "it's");
	SPLIT("\"\"", "");
	SPLIT("a\"b c\"d", "ab cd");
	SPLIT("\"x\"'y'z", "xyz");
}

static void test_split_backslash(void **state)
{
	(void)state;
	SPLIT("a\\ b", "a b");
	SPLIT("\\'a\\'", "'a'");
	SPLIT("\\\"", "\"");
	SPLIT("\\\\", "\\");
	SPLIT("\\n", "n");
	SPLIT("a\\\tb", "a\tb");
}

static void test_split_errors(void **state)
{
	(void)state;
	split_bad("", "is empty");
	split_bad("   ", "is empty");
	split_bad(" \t ", "is empty");
	split_bad("'abc", "has an unterminated single quote");
	split_bad("echo 'abc", "has an unterminated single quote");
	split_bad("\"abc", "has an unterminated double quote");
	split_bad("echo \"a\\\"", "has an unterminated double quote");
	split_bad("\"a\\", "has an unterminated double quote");
	split_bad("abc\\", "ends with a lone backslash");
	split_bad("a b \\", "ends with a lone backslash");
}

static void test_split_many_words(void **state)
{
	char line[1024] = "", word[16];
	struct arena a = { 0 };
	char **argv;
	int argc;

	(void)state;
	for (int i = 0; i < 100; i++) {
		snprintf(word, sizeof(word), "w%d ", i);
		strcat(line, word);
	}
	assert_null(value_split(&a, line, &argv, &argc));
	assert_int_equal(argc, 100);
	for (int i = 0; i < 100; i++) {
		snprintf(word, sizeof(word), "w%d", i);
		assert_string_equal(argv[i], word);
	}
	assert_null(argv[100]);
	arena_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_units),
		cmocka_unit_test(test_duration_rejects),
		cmocka_unit_test(test_duration_overflow),
		cmocka_unit_test(test_duration_format),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_size_overflow),
		cmocka_unit_test(test_bool),
		cmocka_unit_test(test_uint),
		cmocka_unit_test(test_octal),
		cmocka_unit_test(test_signal),
		cmocka_unit_test(test_signal_name),
		cmocka_unit_test(test_at),
		cmocka_unit_test(test_at_rejects),
		cmocka_unit_test(test_split_words),
		cmocka_unit_test(test_split_single_quotes),
		cmocka_unit_test(test_split_double_quotes),
		cmocka_unit_test(test_split_backslash),
		cmocka_unit_test(test_split_errors),
		cmocka_unit_test(test_split_many_words),
	};

	return cmocka_run_group_tests_name("value", tests, NULL, NULL);
}
