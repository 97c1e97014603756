/* test_notify.c - parsing of sd_notify datagrams (notify_parse in
 * notify.h): newline-separated KEY=VALUE lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify.h"

struct calls {
	int n;
	char key[16][64];
	char value[16][256];
};

static void collect(const char *key, const char *value, void *arg)
{
	struct calls *c = arg;

	if (c->n >= 16)
		fail_msg("more than 16 lines delivered");
	snprintf(c->key[c->n], sizeof(c->key[0]), "%s", key);
	snprintf(c->value[c->n], sizeof(c->value[0]), "%s", value);
	c->n++;
}

/* notify_parse writes a NUL at msg[len]: the buffer has one byte more,
 * exactly as in read_one(). */
static int parse(const char *data, size_t len, struct calls *c)
{
	char *msg = malloc(len + 1);
	int rc;

	assert_non_null(msg);
	memcpy(msg, data, len);
	memset(c, 0, sizeof(*c));
	rc = notify_parse(msg, len, collect, c);
	free(msg);
	return rc;
}

static int parse_str(const char *s, struct calls *c)
{
	return parse(s, strlen(s), c);
}

static void test_single(void **state)
{
	struct calls c;

	(void)state;
	assert_int_equal(parse_str("READY=1", &c), 1);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.key[0], "READY");
	assert_string_equal(c.value[0], "1");
}

static void test_several_lines(void **state)
{
	struct calls c;

	(void)state;
	assert_int_equal(parse_str("READY=1\nSTATUS=serving 4 clients\nX_DROVER=busy\n", &c), 3);
	assert_int_equal(c.n, 3);
	assert_string_equal(c.key[0], "READY");
	assert_string_equal(c.value[0], "1");
	assert_string_equal(c.key[1], "STATUS");
	assert_string_equal(c.value[1], "serving 4 clients");
	assert_string_equal(c.key[2], "X_DROVER");
	assert_string_equal(c.value[2], "busy");
}

static void test_empty_lines(void **state)
{
	struct calls c;

	(void)state;
	assert_int_equal(parse_str("", &c), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(parse_str("\n", &c), 0);
	assert_int_equal(parse_str("\n\n\n", &c), 0);
	assert_int_equal(parse_str("\n\nWATCHDOG=1\n\n\nSTOPPING=1\n\n", &c), 2);
	assert_string_equal(c.key[0], "WATCHDOG");
	assert_string_equal(c.key[1], "STOPPING");
	assert_string_equal(c.value[1], "1");
}

static void test_values(void **state)
{
	struct calls c;

	(void)state;
	/* Only the first '=' separates; a value may be empty or hold '='. */
	assert_int_equal(parse_str("STATUS=a=b=c\nSTATUS=\nK==", &c), 3);
	assert_string_equal(c.key[0], "STATUS");
	assert_string_equal(c.value[0], "a=b=c");
	assert_string_equal(c.value[1], "");
	assert_string_equal(c.key[2], "K");
	assert_string_equal(c.value[2], "=");
}

static void test_len_is_respected(void **state)
{
	struct calls c;

	(void)state;
	/* Only len bytes count, whatever follows in the buffer. */
	assert_int_equal(parse("READY=1\nSTATUS=x", 7, &c), 1);
	assert_string_equal(c.key[0], "READY");
	assert_string_equal(c.value[0], "1");
}

static void test_malformed(void **state)
{
	static const char *bad[] = { "READY", "=1", "READY=1\ngarbage", "garbage\nREADY=1",
				     " ", "READY=1\n=x\n" };
	struct calls c;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse_str(bad[i], &c) != -1)
			fail_msg("<%s> not reported malformed", bad[i]);
}

static void test_nul_byte(void **state)
{
	struct calls c;

	(void)state;
	assert_int_equal(parse("READY=1\0X", 9, &c), -1);
	assert_int_equal(c.n, 0);
	assert_int_equal(parse("\0", 1, &c), -1);
	assert_int_equal(c.n, 0);
	assert_int_equal(parse("STATUS=a\nREADY=1\0", 17, &c), -1);
	assert_int_equal(c.n, 0);
}

/* droverd logs "malformed message ... ignored" for -1: an ignored datagram
 * must not have had any of its lines acted on first. */
static void test_malformed_delivers_nothing(void **state)
{
	struct calls c;

	(void)state;
	assert_int_equal(parse_str("READY=1\ngarbage", &c), -1);
	assert_int_equal(c.n, 0);
	assert_int_equal(parse_str("X_DROVER=busy\nSTATUS=ok\nnot a pair\n", &c), -1);
	assert_int_equal(c.n, 0);
}

/* The largest datagram droverd reads: 4096 bytes of lines. */
static void test_large(void **state)
{
	char msg[4096];
	struct calls c;
	size_t n = 0;

	(void)state;
	memset(msg, 0, sizeof(msg));
	n += (size_t)snprintf(msg, sizeof(msg), "STATUS=");
	memset(msg + n, 'x', 200);
	n += 200;
	msg[n++] = '\n';
	memset(msg + n, '\n', sizeof(msg) - n - 8);
	n = sizeof(msg) - 8;
	memcpy(msg + n, "READY=1\n", 8);
	n += 8;
	assert_int_equal(parse(msg, n, &c), 2);
	assert_int_equal(strlen(c.value[0]), 200);
	assert_string_equal(c.key[1], "READY");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single),
		cmocka_unit_test(test_several_lines),
		cmocka_unit_test(test_empty_lines),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_len_is_respected),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_malformed_delivers_nothing),
		cmocka_unit_test(test_large),
	};

	return cmocka_run_group_tests_name("notify", tests, NULL, NULL);
}
