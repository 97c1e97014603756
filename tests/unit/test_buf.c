/* test_buf.c - the capped byte buffer (buf.h): a failed append leaves the
 * buffer exactly as it was; the data stays NUL-terminated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "buf.h"

static void test_empty(void **state)
{
	struct buf b = { 0 };

	(void)state;
	assert_string_equal(buf_cstr(&b), "");
	assert_int_equal(b.len, 0);
	buf_consume(&b, 10);
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(buf_cstr(&b), "");
	buf_free(&b);
	assert_null(b.data);
}

static void test_append(void **state)
{
	struct buf b = { 0 };

	(void)state;
	assert_true(buf_adds(&b, "hello"));
	assert_true(buf_addc(&b, ' '));
	assert_true(buf_add(&b, "world!!!", 5));
	assert_true(buf_add(&b, "", 0));
	assert_int_equal(b.len, 11);
	assert_string_equal(buf_cstr(&b), "hello world");
	assert_int_equal(b.data[b.len], '\0');
	/* Bytes, not strings: a NUL inside is kept. */
	assert_true(buf_add(&b, "a\0b", 3));
	assert_int_equal(b.len, 14);
	assert_memory_equal(b.data + 11, "a\0b", 3);
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	/* Usable again after buf_free. */
	assert_true(buf_adds(&b, "again"));
	assert_string_equal(buf_cstr(&b), "again");
	buf_free(&b);
}

static void test_growth(void **state)
{
	struct buf b = { 0 };
	char expect[10001];

	(void)state;
	for (int i = 0; i < 10000; i++) {
		expect[i] = (char)('a' + i % 26);
		assert_true(buf_addc(&b, expect[i]));
		assert_true(b.cap > b.len);
	}
	expect[10000] = '\0';
	assert_int_equal(b.len, 10000);
	assert_string_equal(buf_cstr(&b), expect);
	buf_free(&b);
}

static void test_cap(void **state)
{
	struct buf b = { .max = 10 };

	(void)state;
	assert_true(buf_adds(&b, "0123456789"));
	assert_int_equal(b.len, 10);
	assert_true(b.cap <= b.max + 1);
	assert_false(buf_addc(&b, 'x'));
	assert_false(buf_adds(&b, "yz"));
	assert_int_equal(b.len, 10);
	assert_string_equal(buf_cstr(&b), "0123456789");
	/* Room again after consuming. */
	buf_consume(&b, 3);
	assert_true(buf_adds(&b, "abc"));
	assert_false(buf_addc(&b, 'd'));
	assert_string_equal(buf_cstr(&b), "3456789abc");
	buf_free(&b);

	/* One append larger than the cap fails as a whole. */
	b = (struct buf){ .max = 4 };
	assert_false(buf_adds(&b, "12345"));
	assert_int_equal(b.len, 0);
	assert_string_equal(buf_cstr(&b), "");
	assert_true(buf_adds(&b, "1234"));
	assert_string_equal(buf_cstr(&b), "1234");
	buf_free(&b);
}

static void test_cap_large(void **state)
{
	struct buf b = { .max = 1000 };
	char block[100];

	(void)state;
	memset(block, 'q', sizeof(block));
	for (int i = 0; i < 10; i++)
		assert_true(buf_add(&b, block, sizeof(block)));
	assert_int_equal(b.len, 1000);
	assert_true(b.cap <= 1001);
	assert_false(buf_add(&b, block, 1));
	assert_int_equal(b.len, 1000);
	buf_free(&b);
}

static void test_huge_append_refused(void **state)
{
	struct buf b = { 0 };

	(void)state;
	assert_true(buf_adds(&b, "keep"));
	/* Sizes that would overflow are refused before anything is read. */
	assert_false(buf_add(&b, "x", SIZE_MAX));
	assert_false(buf_add(&b, "x", SIZE_MAX / 2));
	assert_false(buf_add(&b, "x", SIZE_MAX - 3));
	assert_string_equal(buf_cstr(&b), "keep");
	assert_int_equal(b.len, 4);
	buf_free(&b);
}

static void test_printf(void **state)
{
	struct buf b = { 0 };
	char big[3000];

	(void)state;
	assert_true(buf_printf(&b, "%s=%d", "procs", 4));
	assert_true(buf_printf(&b, " %05.1f|%-3s|%x", 2.25, "a", 255));
	assert_string_equal(buf_cstr(&b), "procs=4 002.2|a  |ff");
	assert_int_equal(b.len, strlen("procs=4 002.2|a  |ff"));
	assert_true(buf_printf(&b, "%s", ""));
	assert_int_equal(b.len, strlen("procs=4 002.2|a  |ff"));
	buf_reset(&b);
	/* Growth past the initial allocation, in one call. */
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_true(buf_printf(&b, "<%s>", big));
	assert_int_equal(b.len, sizeof(big) + 1);
	assert_int_equal(b.data[0], '<');
	assert_int_equal(b.data[b.len - 1], '>');
	assert_int_equal(b.data[b.len], '\0');
	assert_int_equal(b.data[1500], 'z');
	buf_free(&b);
}

static void test_printf_cap(void **state)
{
	struct buf b = { .max = 8 };

	(void)state;
	assert_true(buf_printf(&b, "%d", 1234));
	assert_false(buf_printf(&b, "%d", 56789));
	assert_string_equal(buf_cstr(&b), "1234");
	assert_int_equal(b.len, 4);
	assert_true(buf_printf(&b, "%d", 5678));
	assert_string_equal(buf_cstr(&b), "12345678");
	assert_false(buf_printf(&b, "%s", "x"));
	assert_string_equal(buf_cstr(&b), "12345678");
	buf_free(&b);
}

static void test_consume(void **state)
{
	struct buf b = { 0 };

	(void)state;
	assert_true(buf_adds(&b, "hello world"));
	buf_consume(&b, 0);
	assert_string_equal(buf_cstr(&b), "hello world");
	buf_consume(&b, 6);
	assert_int_equal(b.len, 5);
	assert_string_equal(buf_cstr(&b), "world");
	buf_consume(&b, 5);
	assert_int_equal(b.len, 0);
	assert_string_equal(buf_cstr(&b), "");
	assert_true(buf_adds(&b, "abc"));
	buf_consume(&b, 100);
	assert_int_equal(b.len, 0);
	assert_string_equal(buf_cstr(&b), "");
	assert_true(buf_adds(&b, "xyz"));
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(buf_cstr(&b), "");
	assert_true(buf_adds(&b, "new"));
	assert_string_equal(buf_cstr(&b), "new");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_append),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_cap_large),
		cmocka_unit_test(test_huge_append_refused),
		cmocka_unit_test(test_printf),
		cmocka_unit_test(test_printf_cap),
		cmocka_unit_test(test_consume),
	};

	return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
