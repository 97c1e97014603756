/* test_suggest.c - "did you mean" (suggest.h): Jaro-Winkler similarity and
 * the choice of a suggestion among drover.conf's real keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "conf_int.h"
#include "suggest.h"

static void expect_suggestion(const char *word, enum key_scope scope, const char *want)
{
	const char *got = suggest(word, conf_key_names(scope));

	if (!want && got)
		fail_msg("suggest(\"%s\") = \"%s\", want none", word, got);
	if (want && (!got || strcmp(got, want) != 0))
		fail_msg("suggest(\"%s\") = %s, want \"%s\"", word, got ? got : "NULL", want);
}

static void test_service_key_typos(void **state)
{
	(void)state;
	/* The example of SPEC section 2. */
	expect_suggestion("prefok", SCOPE_SERVICE, "procs");
	expect_suggestion("comand", SCOPE_SERVICE, "command");
	expect_suggestion("commmand", SCOPE_SERVICE, "command");
	expect_suggestion("lisen", SCOPE_SERVICE, "listen");
	expect_suggestion("reqires", SCOPE_SERVICE, "requires");
	expect_suggestion("restart_dealy", SCOPE_SERVICE, "restart_delay");
	expect_suggestion("max_proc", SCOPE_SERVICE, "max_procs");
	expect_suggestion("stop_sginal", SCOPE_SERVICE, "stop_signal");
	expect_suggestion("umsak", SCOPE_SERVICE, "umask");
}

static void test_global_key_typos(void **state)
{
	(void)state;
	expect_suggestion("includ", SCOPE_GLOBAL, "include");
	expect_suggestion("contrl", SCOPE_GLOBAL, "control");
	expect_suggestion("upgrade_timout", SCOPE_GLOBAL, "upgrade_timeout");
}

static void test_case_and_exact(void **state)
{
	(void)state;
	expect_suggestion("procs", SCOPE_SERVICE, "procs");
	expect_suggestion("COMMAND", SCOPE_SERVICE, "command");
	expect_suggestion("Listen", SCOPE_SERVICE, "listen");
}

static void test_unrelated_gets_none(void **state)
{
	(void)state;
	expect_suggestion("xyzzy", SCOPE_SERVICE, NULL);
	expect_suggestion("foo", SCOPE_SERVICE, NULL);
	expect_suggestion("", SCOPE_SERVICE, NULL);
	expect_suggestion("zzzzzzzzzzzz", SCOPE_GLOBAL, NULL);
	expect_suggestion("procs", SCOPE_GLOBAL, NULL);
}

static void test_empty_candidates(void **state)
{
	const char *none[] = { NULL };

	(void)state;
	assert_null(suggest("command", none));
}

/* The best candidate wins; on a tie, the first one listed. */
static void test_best_and_ties(void **state)
{
	const char *cands[] = { "stop", "start", "status", NULL };
	const char *twins[] = { "restart", "restart", NULL };

	(void)state;
	assert_string_equal(suggest("strat", cands), "start");
	assert_string_equal(suggest("statsu", cands), "status");
	assert_ptr_equal(suggest("restrat", twins), twins[0]);
}

static void test_similarity_values(void **state)
{
	(void)state;
	/* Textbook Jaro-Winkler values. */
	assert_true(fabs(suggest_similarity("MARTHA", "MARHTA") - 0.961111) < 1e-6);
	assert_true(fabs(suggest_similarity("DWAYNE", "DUANE") - 0.84) < 1e-6);
	assert_true(fabs(suggest_similarity("DIXON", "DICKSONX") - 0.813333) < 1e-6);
	assert_true(fabs(suggest_similarity("prefok", "procs") - 0.76) < 1e-6);
	assert_true(suggest_similarity("command", "command") == 1.0);
	assert_true(suggest_similarity("COMMAND", "command") == 1.0);
	assert_true(suggest_similarity("abc", "xyz") == 0.0);
	assert_true(suggest_similarity("", "abc") == 0.0);
	assert_true(suggest_similarity("abc", "") == 0.0);
	assert_true(suggest_similarity("", "") == 0.0);
}

static void test_similarity_symmetric_and_bounded(void **state)
{
	const char *words[] = { "procs", "prefok", "max_procs", "command", "comand", "a", "ab",
				"restart_delay_max", "restart", "x", "listen", "silent", NULL };

	(void)state;
	for (int i = 0; words[i]; i++)
		for (int j = 0; words[j]; j++) {
			double a = suggest_similarity(words[i], words[j]);
			double b = suggest_similarity(words[j], words[i]);

			assert_true(a >= 0.0 && a <= 1.0);
			if (fabs(a - b) > 1e-9)
				fail_msg("similarity(%s, %s) = %f but (%s, %s) = %f", words[i], words[j],
					 a, words[j], words[i], b);
		}
}

/* Words longer than 64 characters are never similar (fixed-size tables
 * inside): no overrun, no suggestion. */
static void test_long_words(void **state)
{
	char word[200];
	const char *cands[] = { NULL, NULL };

	(void)state;
	memset(word, 'a', sizeof(word) - 1);
	word[sizeof(word) - 1] = '\0';
	cands[0] = word;
	assert_true(suggest_similarity(word, word) == 0.0);
	assert_null(suggest(word, cands));
	word[64] = '\0';
	assert_true(suggest_similarity(word, word) == 1.0);
	assert_ptr_equal(suggest(word, cands), word);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_service_key_typos),
		cmocka_unit_test(test_global_key_typos),
		cmocka_unit_test(test_case_and_exact),
		cmocka_unit_test(test_unrelated_gets_none),
		cmocka_unit_test(test_empty_candidates),
		cmocka_unit_test(test_best_and_ties),
		cmocka_unit_test(test_similarity_values),
		cmocka_unit_test(test_similarity_symmetric_and_bounded),
		cmocka_unit_test(test_long_words),
	};

	return cmocka_run_group_tests_name("suggest", tests, NULL, NULL);
}
