/* test_probe.c - the one piece of HTTP droverd reads: a status line
 * (probe.h). Anything else, however close, is not one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "probe.h"

static bool verdict(const char *line, int *code)
{
	return probe_status_line(line, strlen(line), code);
}

static void test_status_lines(void **state)
{
	int code = 0;

	(void)state;
	assert_true(verdict("HTTP/1.1 200 OK", &code));
	assert_int_equal(code, 200);
	assert_true(verdict("HTTP/1.0 503", &code));
	assert_int_equal(code, 503);
	assert_true(verdict("HTTP/1.1 302 Found", &code));
	assert_int_equal(code, 302);
}

static void test_not_status_lines(void **state)
{
	static const char *const bad[] = {
		"", "HTTP/1.1", "HTTP/1.1 20", "HTTP/1.1 2000 OK", "HTTP/1.1 20x OK", "HTTP/2 200 OK",
		"HTTP/1.x 200 OK", "http/1.1 200 OK", "HTTP/1.1  200 OK", "SSH-2.0-OpenSSH_9.2",
		"\x1b[31mHTTP/1.1 200 OK", "HTTP/1.1 200\tOK",
	};
	int code = -1;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (verdict(bad[i], &code))
			fail_msg("\"%s\" taken for a status line", bad[i]);
	assert_int_equal(code, -1);
}

/* The length given is all there is: no reading past it. */
static void test_length_is_respected(void **state)
{
	int code;

	(void)state;
	assert_false(probe_status_line("HTTP/1.1 200 OK", 11, &code));
	assert_true(probe_status_line("HTTP/1.1 200 OK", 12, &code));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_lines),
		cmocka_unit_test(test_not_status_lines),
		cmocka_unit_test(test_length_is_respected),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
