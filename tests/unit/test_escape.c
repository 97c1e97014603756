/* test_escape.c - escape.h: UTF-8 validation with maximal subparts, text
 * for terminals and logs, JSON string bodies, and cutting output only
 * between whole characters or escapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "escape.h"

#define S(lit) (lit), sizeof(lit) - 1

static void expect_text(const char *in, size_t len, unsigned flags, const char *want)
{
	char out[256];
	size_t need = escape_text(out, sizeof(out), in, len, flags);

	assert_string_equal(out, want);
	assert_int_equal(need, strlen(want));
}

static void expect_json(const char *in, size_t len, const char *want)
{
	char out[256];
	size_t need = escape_json(out, sizeof(out), in, len);

	assert_string_equal(out, want);
	assert_int_equal(need, strlen(want));
}

static void expect_next(const char *in, size_t len, int want, uint32_t want_cp)
{
	uint32_t cp = 0xdeadbeef;
	int got = escape_utf8_next((const unsigned char *)in, len, &cp);

	if (got != want)
		fail_msg("escape_utf8_next(%02x..., %zu) = %d, want %d", (unsigned char)in[0], len, got, want);
	if (want > 0)
		assert_int_equal(cp, want_cp);
}

static void test_utf8_valid(void **state)
{
	(void)state;
	expect_next(S("A"), 1, 'A');
	expect_next(S("\xc2\x80"), 2, 0x80);
	expect_next(S("\xc3\xa9"), 2, 0xe9);
	expect_next(S("\xdf\xbf"), 2, 0x7ff);
	expect_next(S("\xe0\xa0\x80"), 3, 0x800);
	expect_next(S("\xe2\x82\xac"), 3, 0x20ac);
	expect_next(S("\xed\x9f\xbf"), 3, 0xd7ff);	/* last before the surrogates */
	expect_next(S("\xee\x80\x80"), 3, 0xe000);	/* first after them */
	expect_next(S("\xef\xbf\xbf"), 3, 0xffff);
	expect_next(S("\xf0\x90\x80\x80"), 4, 0x10000);
	expect_next(S("\xf0\x9d\x84\x9e"), 4, 0x1d11e);
	expect_next(S("\xf4\x8f\xbf\xbf"), 4, 0x10ffff);
}

static void test_utf8_invalid(void **state)
{
	(void)state;
	/* Bytes that never start a sequence. */
	expect_next(S("\x80"), -1, 0);
	expect_next(S("\xbf"), -1, 0);
	expect_next(S("\xc0\xaf"), -1, 0);	/* overlong '/' */
	expect_next(S("\xc1\xbf"), -1, 0);
	expect_next(S("\xf5\x80\x80\x80"), -1, 0);
	expect_next(S("\xff"), -1, 0);
	/* Overlong three and four byte forms: the lead alone is the subpart. */
	expect_next(S("\xe0\x80\xaf"), -1, 0);
	expect_next(S("\xe0\x9f\xbf"), -1, 0);
	expect_next(S("\xf0\x80\x80\xaf"), -1, 0);
	expect_next(S("\xf0\x8f\xbf\xbf"), -1, 0);
	/* Surrogates (U+D800, U+DFFF) and above U+10FFFF. */
	expect_next(S("\xed\xa0\x80"), -1, 0);
	expect_next(S("\xed\xbf\xbf"), -1, 0);
	expect_next(S("\xf4\x90\x80\x80"), -1, 0);
	/* Truncated at the end of the buffer, and cut by another byte. */
	expect_next(S("\xc3"), -1, 0);
	expect_next(S("\xe2\x82"), -2, 0);
	expect_next(S("\xe2"), -1, 0);
	expect_next(S("\xf0\x9f\x98"), -3, 0);
	expect_next(S("\xf0\x9f"), -2, 0);
	expect_next(S("\xe2\x82" "A"), -2, 0);
	expect_next(S("\xf0\x9f\x98" "A"), -3, 0);
	expect_next(S("\xc3\xc3\xa9"), -1, 0);
	/* The length limits what is read: a valid sequence cut by n. */
	expect_next("\xe2\x82\xac", 2, -2, 0);
}

static void test_text_passes_printable_utf8(void **state)
{
	(void)state;
	expect_text(S("plain ascii 123 ~"), 0, "plain ascii 123 ~");
	expect_text(S("caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e"), 0, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e");
	expect_text(S("back\\slash \\x1b"), 0, "back\\slash \\x1b");
	expect_text(S(""), 0, "");
}

static void test_text_escapes_controls(void **state)
{
	(void)state;
	expect_text(S("\x1b[31mred\x1b[0m"), 0, "\\x1b[31mred\\x1b[0m");
	expect_text(S("\x1b]0;title\x07"), 0, "\\x1b]0;title\\x07");
	expect_text(S("a\rb"), 0, "a\\x0db");
	expect_text(S("a\x7f" "b"), 0, "a\\x7fb");
	expect_text(S("\x01\x1f"), 0, "\\x01\\x1f");
	/* C1 as characters: CSI (U+009B) and NEL (U+0085). */
	expect_text(S("\xc2\x9b" "2J\xc2\x85"), 0, "\\u009b2J\\u0085");
	expect_text(S("\xc2\xa0"), 0, "\xc2\xa0");	/* U+00A0 is printable */
	/* Tab and newline: escaped unless kept. */
	expect_text(S("a\tb\nc"), 0, "a\\x09b\\x0ac");
	expect_text(S("a\tb\nc"), ESCAPE_KEEP_TAB, "a\tb\\x0ac");
	expect_text(S("a\tb\nc"), ESCAPE_KEEP_TAB | ESCAPE_KEEP_NL, "a\tb\nc");
	expect_text(S("a\tb\r\n"), ESCAPE_KEEP_NL, "a\\x09b\\x0d\n");
}

static void test_text_escapes_invalid_bytes(void **state)
{
	(void)state;
	expect_text(S("\xff\xfe"), 0, "\\xff\\xfe");
	expect_text(S("a\x80" "b"), 0, "a\\x80b");
	expect_text(S("\xc0\xaf"), 0, "\\xc0\\xaf");			/* overlong */
	expect_text(S("\xe0\x80\xaf"), 0, "\\xe0\\x80\\xaf");		/* overlong */
	expect_text(S("\xed\xa0\x80"), 0, "\\xed\\xa0\\x80");		/* surrogate */
	expect_text(S("\xf4\x90\x80\x80"), 0, "\\xf4\\x90\\x80\\x80");	/* > U+10FFFF */
	expect_text(S("end\xe2\x82"), 0, "end\\xe2\\x82");		/* truncated */
	expect_text(S("end\xf0\x9f\x98"), 0, "end\\xf0\\x9f\\x98");
	/* A valid character right after an invalid subpart is kept. */
	expect_text(S("\xe2\x82\xc3\xa9"), 0, "\\xe2\\x82\xc3\xa9");
	/* An embedded NUL, when a length says it is there. */
	expect_text("a\0b", 3, 0, "a\\x00b");
}

static void test_json(void **state)
{
	(void)state;
	expect_json(S("plain"), "plain");
	expect_json(S("say \"hi\" \\ bye"), "say \\\"hi\\\" \\\\ bye");
	expect_json(S("a\nb\tc\rd"), "a\\nb\\tc\\u000dd");
	expect_json(S("\x1b[31m\x7f\xc2\x9b"), "\\u001b[31m\\u007f\\u009b");
	expect_json(S("caf\xc3\xa9 \xf0\x9d\x84\x9e"), "caf\xc3\xa9 \xf0\x9d\x84\x9e");
	/* One U+FFFD per maximal subpart, as Python's errors="replace". */
	expect_json(S("\xff"), "\\ufffd");
	expect_json(S("a\xe2\x82"), "a\\ufffd");
	expect_json(S("\xf0\x9f\x98" "b"), "\\ufffdb");
	expect_json(S("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");
	expect_json(S("\xc0\xaf"), "\\ufffd\\ufffd");
	expect_json(S("\xe0\x80\xaf"), "\\ufffd\\ufffd\\ufffd");
}

static void test_cut_between_units(void **state)
{
	char out[16];

	(void)state;
	/* snprintf's contract: the length needed, whatever fits. */
	assert_int_equal(escape_text(NULL, 0, S("\x1b"), 0), 4);
	memset(out, 'X', sizeof(out));
	assert_int_equal(escape_text(out, 4, S("\x1b"), 0), 4);
	assert_string_equal(out, "");
	assert_int_equal(escape_text(out, 5, S("\x1b"), 0), 4);
	assert_string_equal(out, "\\x1b");
	/* Nothing after a piece that did not fit, even a shorter one. */
	assert_int_equal(escape_text(out, 6, S("ab\x1b" "c"), 0), 7);
	assert_string_equal(out, "ab");
	/* A multibyte character is never cut. */
	assert_int_equal(escape_text(out, 3, S("a\xc3\xa9"), 0), 3);
	assert_string_equal(out, "a");
	assert_int_equal(escape_text(out, 4, S("a\xc3\xa9"), 0), 3);
	assert_string_equal(out, "a\xc3\xa9");
	assert_int_equal(escape_json(out, 7, S("x\xff")), 7);
	assert_string_equal(out, "x");
	assert_int_equal(escape_json(out, 8, S("x\xff")), 7);
	assert_string_equal(out, "x\\ufffd");
	assert_int_equal(escape_json(NULL, 0, S("\"")), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_valid),
		cmocka_unit_test(test_utf8_invalid),
		cmocka_unit_test(test_text_passes_printable_utf8),
		cmocka_unit_test(test_text_escapes_controls),
		cmocka_unit_test(test_text_escapes_invalid_bytes),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_cut_between_units),
	};

	return cmocka_run_group_tests_name("escape", tests, NULL, NULL);
}
