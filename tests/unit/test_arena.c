/* test_arena.c - the configuration's bump allocator (arena.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "arena.h"

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void test_alloc_zeroed_aligned(void **state)
{
	struct arena a = { 0 };
	unsigned char *prev = NULL;

	(void)state;
	for (size_t n = 1; n < 300; n += 7) {
		unsigned char *p = arena_alloc(&a, n);

		assert_non_null(p);
		assert_int_equal((uintptr_t)p % 16, 0);
		assert_true(all_zero(p, n));
		memset(p, 0xff, n);	/* ASan: the whole size is ours */
		assert_ptr_not_equal(p, prev);
		prev = p;
	}
	assert_false(a.failed);
	arena_free(&a);
	assert_null(a.head);
}

/* Many allocations across chunks keep their content. */
static void test_many_chunks(void **state)
{
	struct arena a = { 0 };
	unsigned char *p[500];

	(void)state;
	for (int i = 0; i < 500; i++) {
		p[i] = arena_alloc(&a, 100);
		assert_non_null(p[i]);
		memset(p[i], i & 0xff, 100);
	}
	for (int i = 0; i < 500; i++)
		for (int j = 0; j < 100; j++)
			assert_int_equal(p[i][j], i & 0xff);
	arena_free(&a);
}

static void test_big_allocation(void **state)
{
	struct arena a = { 0 };
	unsigned char *small = arena_alloc(&a, 10), *big, *after;

	(void)state;
	big = arena_alloc(&a, 100000);
	assert_non_null(big);
	assert_true(all_zero(big, 100000));
	memset(big, 1, 100000);
	after = arena_alloc(&a, 10);
	assert_non_null(after);
	assert_true(all_zero(after, 10));
	memset(small, 2, 10);
	assert_int_equal(big[0], 1);
	assert_int_equal(big[99999], 1);
	arena_free(&a);
}

static void test_strdup(void **state)
{
	struct arena a = { 0 };
	const char *src = "command = /bin/true";
	char *s, *t, *e;

	(void)state;
	s = arena_strdup(&a, src);
	assert_string_equal(s, src);
	assert_ptr_not_equal(s, src);
	t = arena_strndup(&a, src, 7);
	assert_string_equal(t, "command");
	e = arena_strdup(&a, "");
	assert_string_equal(e, "");
	/* strndup copies exactly n bytes, even past a NUL it does not look for. */
	t = arena_strndup(&a, "ab\0cd", 5);
	assert_memory_equal(t, "ab\0cd", 6);
	arena_free(&a);
}

static void test_grow(void **state)
{
	struct arena a = { 0 };
	int *v = arena_grow(&a, NULL, 0, sizeof(int) * 2), *w;

	(void)state;
	assert_non_null(v);
	v[0] = 1;
	v[1] = 2;
	w = arena_grow(&a, v, sizeof(int) * 2, sizeof(int) * 1000);
	assert_non_null(w);
	assert_int_equal(w[0], 1);
	assert_int_equal(w[1], 2);
	assert_true(all_zero((unsigned char *)(w + 2), sizeof(int) * 998));
	/* Shrinking copies only what fits. */
	v = arena_grow(&a, w, sizeof(int) * 1000, sizeof(int));
	assert_int_equal(v[0], 1);
	arena_free(&a);
}

static void test_failure_mark(void **state)
{
	struct arena a = { 0 };

	(void)state;
	assert_non_null(arena_alloc(&a, 16));
	assert_false(a.failed);
	assert_null(arena_alloc(&a, SIZE_MAX));
	assert_true(a.failed);
	assert_null(arena_alloc(&a, SIZE_MAX / 2 + 1));
	assert_null(arena_grow(&a, NULL, 0, SIZE_MAX - 8));
	assert_true(a.failed);
	/* The mark is sticky but later allocations still work. */
	assert_non_null(arena_alloc(&a, 32));
	assert_true(a.failed);
	arena_free(&a);
	assert_false(a.failed);
	assert_null(a.head);
	/* Usable again after arena_free. */
	assert_string_equal(arena_strdup(&a, "again"), "again");
	arena_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alloc_zeroed_aligned),
		cmocka_unit_test(test_many_chunks),
		cmocka_unit_test(test_big_allocation),
		cmocka_unit_test(test_strdup),
		cmocka_unit_test(test_grow),
		cmocka_unit_test(test_failure_mark),
	};

	return cmocka_run_group_tests_name("arena", tests, NULL, NULL);
}
