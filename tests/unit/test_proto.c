/* test_proto.c - the control protocol codec (proto.h).
 *
 * Round trips of requests and replies, the exact bytes of a small frame,
 * every rejection the decoder promises, and a fuzz-like sweep over every
 * prefix and every single-byte mutation of valid frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

/* ---- building frames by hand ---- */

static void put(struct buf *b, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--)
		assert_true(buf_addc(b, (char)(uint8_t)(v >> (8 * i))));
}

static void put_s(struct buf *b, const char *s, size_t n)
{
	put(b, n, 4);
	assert_true(buf_add(b, s, n));
}

/* Starts a frame whose length is patched by raw_end(). */
static void raw_begin(struct buf *b, int version, int kind)
{
	buf_reset(b);
	put(b, 0, 4);
	put(b, (uint64_t)version, 1);
	put(b, (uint64_t)kind, 1);
}

static void raw_end(struct buf *b)
{
	uint32_t n = (uint32_t)(b->len - 4);

	b->data[0] = (char)(n >> 24);
	b->data[1] = (char)(n >> 16);
	b->data[2] = (char)(n >> 8);
	b->data[3] = (char)n;
}

static const char *decode_req(const struct buf *b, char ***argv, int *argc, struct arena *a)
{
	return proto_decode_request(b->data, b->len, a, argv, argc);
}

static const char *decode_reply(const struct buf *b, struct proto_reply *r, struct arena *a)
{
	return proto_decode_reply(b->data, b->len, a, r);
}

/* ---- requests ---- */

static void test_request_bytes(void **state)
{
	static const unsigned char want[] = {
		0, 0, 0, 10, PROTO_VERSION, PK_REQUEST, 0, 1, 0, 0, 0, 2, 'a', 'b',
	};
	struct buf b = { 0 };
	char *argv[] = { "ab", NULL };

	(void)state;
	assert_true(proto_encode_request(&b, 1, argv));
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.data, want, sizeof(want));
	assert_int_equal(proto_frame_size(b.data, b.len, PROTO_MAX), (long)sizeof(want));
	buf_free(&b);
}

static void test_request_round_trip(void **state)
{
	char *argv[] = { "status", "web", "--json", "", "a b\tc\n", "\xc3\xa9t\xc3\xa9", NULL };
	struct buf b = { 0 };
	struct arena a = { 0 };
	char **out = NULL;
	int argc = -1;

	(void)state;
	assert_true(proto_encode_request(&b, 6, argv));
	assert_null(decode_req(&b, &out, &argc, &a));
	assert_int_equal(argc, 6);
	for (int i = 0; i < 6; i++)
		assert_string_equal(out[i], argv[i]);
	assert_null(out[6]);
	buf_free(&b);
	arena_free(&a);
}

/* Two frames back to back in one buffer: each is sized on its own. */
static void test_request_stream(void **state)
{
	char *one[] = { "start", "db", NULL }, *two[] = { "stop", NULL };
	struct buf b = { 0 };
	struct arena a = { 0 };
	char **out;
	int argc;
	long first, second;

	(void)state;
	assert_true(proto_encode_request(&b, 2, one));
	assert_true(proto_encode_request(&b, 1, two));
	first = proto_frame_size(b.data, b.len, PROTO_MAX);
	assert_true(first > 0 && (size_t)first < b.len);
	assert_null(proto_decode_request(b.data, (size_t)first, &a, &out, &argc));
	assert_int_equal(argc, 2);
	assert_string_equal(out[1], "db");
	second = proto_frame_size(b.data + first, b.len - (size_t)first, PROTO_MAX);
	assert_int_equal((size_t)first + (size_t)second, b.len);
	assert_null(proto_decode_request(b.data + first, (size_t)second, &a, &out, &argc));
	assert_int_equal(argc, 1);
	assert_string_equal(out[0], "stop");
	buf_free(&b);
	arena_free(&a);
}

static void test_request_max_args(void **state)
{
	char *argv[PROTO_ARGS_MAX + 2];
	char words[PROTO_ARGS_MAX + 1][8];
	struct buf b = { 0 };
	struct arena a = { 0 };
	char **out;
	int argc;

	(void)state;
	for (int i = 0; i <= PROTO_ARGS_MAX; i++) {
		snprintf(words[i], sizeof(words[i]), "a%d", i);
		argv[i] = words[i];
	}
	argv[PROTO_ARGS_MAX + 1] = NULL;
	assert_true(proto_encode_request(&b, PROTO_ARGS_MAX, argv));
	assert_null(decode_req(&b, &out, &argc, &a));
	assert_int_equal(argc, PROTO_ARGS_MAX);
	assert_string_equal(out[PROTO_ARGS_MAX - 1], "a255");
	/* One more is refused by the encoder, which leaves the buffer as it was. */
	assert_false(proto_encode_request(&b, PROTO_ARGS_MAX + 1, argv));
	assert_int_equal(proto_frame_size(b.data, b.len, PROTO_MAX), (long)b.len);
	assert_false(proto_encode_request(&b, -1, argv));
	assert_int_equal(proto_frame_size(b.data, b.len, PROTO_MAX), (long)b.len);
	buf_free(&b);
	arena_free(&a);
}

static void test_frame_size(void **state)
{
	static const unsigned char ok[] = { 0, 0, 0, 10 }, small[] = { 0, 0, 0, 1 },
				   zero[] = { 0, 0, 0, 0 }, big[] = { 0, 0x80, 0, 1 },
				   huge[] = { 0xff, 0xff, 0xff, 0xff }, two[] = { 0, 0, 0, 2 };

	(void)state;
	assert_int_equal(proto_frame_size(ok, 0, PROTO_MAX), 0);
	assert_int_equal(proto_frame_size(ok, 3, PROTO_MAX), 0);
	assert_int_equal(proto_frame_size(ok, 4, PROTO_MAX), 14);
	assert_int_equal(proto_frame_size(two, 4, PROTO_MAX), 6);
	assert_int_equal(proto_frame_size(small, 4, PROTO_MAX), -1);
	assert_int_equal(proto_frame_size(zero, 4, PROTO_MAX), -1);
	/* PROTO_MAX + 1 */
	assert_int_equal(proto_frame_size(big, 4, PROTO_MAX), -1);
	assert_int_equal(proto_frame_size(huge, 4, PROTO_MAX), -1);
	assert_int_equal(proto_frame_size(ok, 4, 10), 14);
	assert_int_equal(proto_frame_size(ok, 4, 9), -1);
}

/* ---- request rejections ---- */

static const char *req_error(struct buf *b)
{
	static char msg[128];
	struct arena a = { 0 };
	char **argv = (char **)&a;
	int argc = -7;
	const char *err = decode_req(b, &argv, &argc, &a);

	/* Nothing is handed out on failure. */
	if (err) {
		assert_int_equal(argc, -7);
		assert_ptr_equal(argv, (char **)&a);
	}
	snprintf(msg, sizeof(msg), "%s", err ? err : "(accepted)");
	arena_free(&a);
	return msg;
}

static void test_request_rejects_header(void **state)
{
	struct buf b = { 0 };

	(void)state;
	raw_begin(&b, 2, PK_REQUEST);
	put(&b, 1, 2);
	put_s(&b, "x", 1);
	raw_end(&b);
	assert_string_equal(req_error(&b), "unsupported protocol version");
	b.data[4] = 0;
	assert_string_equal(req_error(&b), "unsupported protocol version");
	b.data[4] = PROTO_VERSION;
	assert_string_equal(req_error(&b), "(accepted)");
	b.data[5] = PK_REPLY;
	assert_string_equal(req_error(&b), "unexpected message kind");
	b.data[5] = PK_PART;
	assert_string_equal(req_error(&b), "unexpected message kind");
	b.data[5] = 0;
	assert_string_equal(req_error(&b), "unexpected message kind");
	b.data[5] = 4;
	assert_string_equal(req_error(&b), "unexpected message kind");
	buf_free(&b);
}

static void test_request_rejects_lengths(void **state)
{
	struct buf b = { 0 };

	(void)state;
	raw_begin(&b, PROTO_VERSION, PK_REQUEST);
	put(&b, 1, 2);
	put_s(&b, "status", 6);
	raw_end(&b);
	assert_string_equal(req_error(&b), "(accepted)");
	/* Trailing byte, counted in the length. */
	assert_true(buf_addc(&b, 'x'));
	raw_end(&b);
	assert_string_equal(req_error(&b), "trailing bytes after message");
	/* Trailing byte, not counted. */
	b.len--;
	raw_end(&b);
	b.len++;
	assert_string_equal(req_error(&b), "bad frame length");
	b.len--;
	/* Length prefix beyond PROTO_MAX. */
	b.data[0] = 0;
	b.data[1] = (char)0x80;
	b.data[2] = 0;
	b.data[3] = 1;
	assert_string_equal(req_error(&b), "bad frame length");
	b.data[0] = (char)0xff;
	assert_string_equal(req_error(&b), "bad frame length");
	buf_free(&b);
}

static void test_request_rejects_argc(void **state)
{
	struct buf b = { 0 };

	(void)state;
	raw_begin(&b, PROTO_VERSION, PK_REQUEST);
	put(&b, 0, 2);
	raw_end(&b);
	assert_string_equal(req_error(&b), "bad argument count");
	raw_begin(&b, PROTO_VERSION, PK_REQUEST);
	put(&b, PROTO_ARGS_MAX + 1, 2);
	for (int i = 0; i <= PROTO_ARGS_MAX; i++)
		put_s(&b, "a", 1);
	raw_end(&b);
	assert_string_equal(req_error(&b), "bad argument count");
	raw_begin(&b, PROTO_VERSION, PK_REQUEST);
	put(&b, 0xffff, 2);
	raw_end(&b);
	assert_string_equal(req_error(&b), "bad argument count");
	/* argc says 3, two strings follow. */
	raw_begin(&b, PROTO_VERSION, PK_REQUEST);
	put(&b, 3, 2);
	put_s(&b, "a", 1);
	put_s(&b, "b", 1);
	raw_end(&b);
	assert_string_equal(req_error(&b), "truncated message");
	buf_free(&b);
}

static void test_request_rejects_strings(void **state)
{
	struct buf b = { 0 };

	(void)state;
	raw_begin(&b, PROTO_VERSION, PK_REQUEST);
	put(&b, 2, 2);
	put_s(&b, "stop", 4);
	put_s(&b, "w\0b", 3);
	raw_end(&b);
	assert_string_equal(req_error(&b), "string contains a NUL byte");
	/* A string length past the end. */
	raw_begin(&b, PROTO_VERSION, PK_REQUEST);
	put(&b, 1, 2);
	put(&b, 100, 4);
	assert_true(buf_adds(&b, "short"));
	raw_end(&b);
	assert_string_equal(req_error(&b), "truncated message");
	/* A string length past PROTO_STR_MAX. */
	raw_begin(&b, PROTO_VERSION, PK_REQUEST);
	put(&b, 1, 2);
	put(&b, PROTO_STR_MAX + 1, 4);
	assert_true(buf_adds(&b, "x"));
	raw_end(&b);
	assert_string_equal(req_error(&b), "string too long");
	raw_begin(&b, PROTO_VERSION, PK_REQUEST);
	put(&b, 1, 2);
	put(&b, 0xffffffff, 4);
	raw_end(&b);
	assert_string_equal(req_error(&b), "string too long");
	buf_free(&b);
}

/* Cut anywhere: with the original length prefix the frame length is wrong;
 * with the prefix fixed up to match, the payload is truncated. */
static void test_request_truncated_everywhere(void **state)
{
	char *argv[] = { "logs", "web", "200", "yes", NULL };
	struct buf b = { 0 }, cut = { 0 };

	(void)state;
	assert_true(proto_encode_request(&b, 4, argv));
	for (size_t len = 0; len < b.len; len++) {
		buf_reset(&cut);
		if (len)
			assert_true(buf_add(&cut, b.data, len));
		/* Empty input is refused too, whatever the words. */
		if (len == 0)
			assert_string_not_equal(req_error(&cut), "(accepted)");
		else
			assert_string_equal(req_error(&cut), "bad frame length");
		if (len < 6)
			continue;
		raw_end(&cut);
		if (strcmp(req_error(&cut), "truncated message") != 0)
			fail_msg("cut at %zu of %zu: %s", len, b.len, req_error(&cut));
	}
	buf_free(&b);
	buf_free(&cut);
}

/* ---- replies ---- */

static void write_reply(struct buf *b, enum proto_kind kind)
{
	const char *const pids[] = { "101", "102", "" };
	struct proto_writer w;

	proto_reply_begin(&w, b, kind, 0, "2 services");
	proto_record(&w);
	proto_str(&w, "name", "web");
	proto_int(&w, "pid", 4242);
	proto_int(&w, "neg", -5);
	proto_int(&w, "big", INT64_MIN);
	proto_list(&w, "pids", pids, 3);
	proto_list(&w, "none", NULL, 0);
	proto_strn(&w, "part", "abcdef", 3);
	proto_str(&w, "null", NULL);
	proto_record(&w);
	proto_record(&w);
	proto_str(&w, "name", "db");
	proto_int(&w, "max", INT64_MAX);
	assert_true(proto_reply_end(&w));
}

static void check_reply(const struct proto_reply *r, enum proto_kind kind)
{
	const struct proto_field *f;

	assert_int_equal(r->kind, kind);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->message, "2 services");
	assert_int_equal(r->nrec, 3);
	assert_int_equal(r->recs[0].nfields, 8);
	assert_int_equal(r->recs[1].nfields, 0);
	assert_int_equal(r->recs[2].nfields, 2);

	f = proto_get(&r->recs[0], "name");
	assert_non_null(f);
	assert_int_equal(f->type, 's');
	assert_string_equal(f->str, "web");
	f = proto_get(&r->recs[0], "pid");
	assert_int_equal(f->type, 'i');
	assert_int_equal(f->num, 4242);
	assert_int_equal(proto_get(&r->recs[0], "neg")->num, -5);
	assert_true(proto_get(&r->recs[0], "big")->num == INT64_MIN);
	f = proto_get(&r->recs[0], "pids");
	assert_int_equal(f->type, 'l');
	assert_int_equal(f->nitems, 3);
	assert_string_equal(f->items[0], "101");
	assert_string_equal(f->items[1], "102");
	assert_string_equal(f->items[2], "");
	f = proto_get(&r->recs[0], "none");
	assert_int_equal(f->type, 'l');
	assert_int_equal(f->nitems, 0);
	assert_string_equal(proto_get(&r->recs[0], "part")->str, "abc");
	assert_string_equal(proto_get(&r->recs[0], "null")->str, "");
	/* Fields keep their order. */
	assert_string_equal(r->recs[0].fields[3].key, "big");
	assert_null(proto_get(&r->recs[0], "missing"));
	assert_null(proto_get(&r->recs[1], "name"));
	assert_string_equal(proto_get(&r->recs[2], "name")->str, "db");
	assert_true(proto_get(&r->recs[2], "max")->num == INT64_MAX);
}

static void test_reply_round_trip(void **state)
{
	struct buf b = { 0 };
	struct arena a = { 0 };
	struct proto_reply r;

	(void)state;
	write_reply(&b, PK_REPLY);
	assert_int_equal(proto_frame_size(b.data, b.len, PROTO_MAX), (long)b.len);
	assert_null(decode_reply(&b, &r, &a));
	check_reply(&r, PK_REPLY);
	buf_free(&b);
	arena_free(&a);
}

static void test_part_round_trip(void **state)
{
	struct buf b = { 0 };
	struct arena a = { 0 };
	struct proto_reply r;

	(void)state;
	write_reply(&b, PK_PART);
	assert_null(decode_reply(&b, &r, &a));
	check_reply(&r, PK_PART);
	buf_free(&b);
	arena_free(&a);
}

static void test_reply_failure_no_records(void **state)
{
	static const unsigned char want[] = {
		0, 0, 0, 27, PROTO_VERSION, PK_REPLY, 1,
		0, 0, 0, 16, 'u', 'n', 'k', 'n', 'o', 'w', 'n', ' ', 's', 'e', 'r', 'v', 'i', 'c', 'e', 's',
		0, 0, 0, 0,
	};
	struct buf b = { 0 };
	struct arena a = { 0 };
	struct proto_writer w;
	struct proto_reply r;

	(void)state;
	proto_reply_begin(&w, &b, PK_REPLY, 1, "unknown services");
	assert_true(proto_reply_end(&w));
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.data, want, sizeof(want));
	assert_null(decode_reply(&b, &r, &a));
	assert_int_equal(r.kind, PK_REPLY);
	assert_int_equal(r.status, 1);
	assert_string_equal(r.message, "unknown services");
	assert_int_equal(r.nrec, 0);
	/* A NULL message is sent as "". */
	buf_reset(&b);
	proto_reply_begin(&w, &b, PK_REPLY, 0, NULL);
	assert_true(proto_reply_end(&w));
	assert_null(decode_reply(&b, &r, &a));
	assert_string_equal(r.message, "");
	buf_free(&b);
	arena_free(&a);
}

/* A field outside a record, or a value with a NUL byte: the writer fails
 * and drops the partial frame, keeping what was in the buffer before. */
static void test_writer_failures(void **state)
{
	char *argv[] = { "x", NULL };
	struct buf b = { 0 };
	struct proto_writer w;
	size_t before;

	(void)state;
	assert_true(proto_encode_request(&b, 1, argv));
	before = b.len;
	proto_reply_begin(&w, &b, PK_REPLY, 0, "ok");
	proto_str(&w, "outside", "a record");
	assert_false(proto_reply_end(&w));
	assert_int_equal(b.len, before);

	proto_reply_begin(&w, &b, PK_REPLY, 0, "ok");
	proto_record(&w);
	proto_strn(&w, "bin", "a\0b", 3);
	assert_false(proto_reply_end(&w));
	assert_int_equal(b.len, before);

	proto_reply_begin(&w, &b, PK_REPLY, 0, "ok");
	proto_record(&w);
	proto_list(&w, "neg", NULL, -1);
	assert_false(proto_reply_end(&w));
	assert_int_equal(b.len, before);
	assert_int_equal(proto_frame_size(b.data, b.len, PROTO_MAX), (long)before);
	buf_free(&b);
}

/* A capped buffer: the reply does not fit, nothing half-written stays. */
static void test_writer_cap(void **state)
{
	struct buf b = { .max = 40 };
	struct proto_writer w;

	(void)state;
	proto_reply_begin(&w, &b, PK_REPLY, 0, "ok");
	proto_record(&w);
	proto_str(&w, "text", "more than forty bytes of text in this one field");
	assert_false(proto_reply_end(&w));
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static const char *reply_error(struct buf *b)
{
	static char msg[128];
	struct arena a = { 0 };
	struct proto_reply r;
	const char *err = decode_reply(b, &r, &a);

	snprintf(msg, sizeof(msg), "%s", err ? err : "(accepted)");
	arena_free(&a);
	return msg;
}

/* Kind bytes past 31: no undefined shift, and no kind aliasing onto a
 * valid one (33 mod 32 is PK_REQUEST, 34 mod 32 is PK_REPLY). */
static void test_rejects_large_kind(void **state)
{
	static const int kinds[] = { 31, 32, 33, 34, 35, 65, 66, 97, 129, 255 };
	struct buf b = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		raw_begin(&b, PROTO_VERSION, kinds[i]);
		put(&b, 1, 2);
		put_s(&b, "x", 1);
		raw_end(&b);
		if (strcmp(req_error(&b), "unexpected message kind") != 0)
			fail_msg("request of kind %d: %s", kinds[i], req_error(&b));
		raw_begin(&b, PROTO_VERSION, kinds[i]);
		put(&b, 0, 1);
		put_s(&b, "ok", 2);
		put(&b, 0, 4);
		raw_end(&b);
		if (strcmp(reply_error(&b), "unexpected message kind") != 0)
			fail_msg("reply of kind %d: %s", kinds[i], reply_error(&b));
	}
	buf_free(&b);
}

static void test_reply_rejects(void **state)
{
	struct buf b = { 0 };
	char *argv[] = { "status", NULL };

	(void)state;
	/* A request is not a reply. */
	assert_true(proto_encode_request(&b, 1, argv));
	assert_string_equal(reply_error(&b), "unexpected message kind");

	/* Version. */
	write_reply(&b, PK_REPLY);
	buf_reset(&b);
	write_reply(&b, PK_REPLY);
	b.data[4] = PROTO_VERSION + 1;
	assert_string_equal(reply_error(&b), "unsupported protocol version");
	b.data[4] = PROTO_VERSION;
	b.data[5] = 0;
	assert_string_equal(reply_error(&b), "unexpected message kind");
	b.data[5] = PK_REQUEST;
	assert_string_equal(reply_error(&b), "unexpected message kind");
	b.data[5] = 4;
	assert_string_equal(reply_error(&b), "unexpected message kind");
	b.data[5] = PK_REPLY;
	assert_string_equal(reply_error(&b), "(accepted)");

	/* Trailing byte. */
	assert_true(buf_addc(&b, 0));
	raw_end(&b);
	assert_string_equal(reply_error(&b), "trailing bytes after message");

	/* More records announced than bytes can hold. */
	raw_begin(&b, PROTO_VERSION, PK_REPLY);
	put(&b, 0, 1);
	put_s(&b, "", 0);
	put(&b, 0xffffffff, 4);
	raw_end(&b);
	assert_string_equal(reply_error(&b), "truncated message");

	/* More fields announced than bytes can hold. */
	raw_begin(&b, PROTO_VERSION, PK_REPLY);
	put(&b, 0, 1);
	put_s(&b, "", 0);
	put(&b, 1, 4);
	put(&b, 0xffff, 2);
	raw_end(&b);
	assert_string_equal(reply_error(&b), "truncated message");

	/* A list count larger than the bytes left. */
	raw_begin(&b, PROTO_VERSION, PK_REPLY);
	put(&b, 0, 1);
	put_s(&b, "", 0);
	put(&b, 1, 4);
	put(&b, 1, 2);
	put_s(&b, "pids", 4);
	put(&b, 'l', 1);
	put(&b, 1000, 2);
	put_s(&b, "1", 1);
	put_s(&b, "2", 1);
	raw_end(&b);
	assert_string_equal(reply_error(&b), "truncated message");
	raw_begin(&b, PROTO_VERSION, PK_REPLY);
	put(&b, 0, 1);
	put_s(&b, "", 0);
	put(&b, 1, 4);
	put(&b, 1, 2);
	put_s(&b, "pids", 4);
	put(&b, 'l', 1);
	put(&b, 0xffff, 2);
	raw_end(&b);
	assert_string_equal(reply_error(&b), "truncated message");

	/* Unknown field type. */
	raw_begin(&b, PROTO_VERSION, PK_REPLY);
	put(&b, 0, 1);
	put_s(&b, "", 0);
	put(&b, 1, 4);
	put(&b, 1, 2);
	put_s(&b, "k", 1);
	put(&b, 'x', 1);
	put(&b, 0, 8);
	raw_end(&b);
	assert_string_equal(reply_error(&b), "unknown field type");

	/* NUL in the message, in a key, in a list item. */
	raw_begin(&b, PROTO_VERSION, PK_REPLY);
	put(&b, 0, 1);
	put_s(&b, "o\0k", 3);
	put(&b, 0, 4);
	raw_end(&b);
	assert_string_equal(reply_error(&b), "string contains a NUL byte");
	raw_begin(&b, PROTO_VERSION, PK_REPLY);
	put(&b, 0, 1);
	put_s(&b, "", 0);
	put(&b, 1, 4);
	put(&b, 1, 2);
	put_s(&b, "k\0", 2);
	put(&b, 'i', 1);
	put(&b, 0, 8);
	raw_end(&b);
	assert_string_equal(reply_error(&b), "string contains a NUL byte");
	raw_begin(&b, PROTO_VERSION, PK_REPLY);
	put(&b, 0, 1);
	put_s(&b, "", 0);
	put(&b, 1, 4);
	put(&b, 1, 2);
	put_s(&b, "l", 1);
	put(&b, 'l', 1);
	put(&b, 1, 2);
	put_s(&b, "\0", 1);
	raw_end(&b);
	assert_string_equal(reply_error(&b), "string contains a NUL byte");
	buf_free(&b);
}

static void test_reply_truncated_everywhere(void **state)
{
	struct buf b = { 0 }, cut = { 0 };

	(void)state;
	write_reply(&b, PK_REPLY);
	for (size_t len = 0; len < b.len; len++) {
		buf_reset(&cut);
		if (len)
			assert_true(buf_add(&cut, b.data, len));
		/* Empty input is refused too, whatever the words. */
		if (len == 0)
			assert_string_not_equal(reply_error(&cut), "(accepted)");
		else
			assert_string_equal(reply_error(&cut), "bad frame length");
		if (len < 6)
			continue;
		raw_end(&cut);
		if (strcmp(reply_error(&cut), "truncated message") != 0)
			fail_msg("cut at %zu of %zu: %s", len, b.len, reply_error(&cut));
	}
	buf_free(&b);
	buf_free(&cut);
}

/* ---- fuzz-like sweeps: never a crash, never an overread (run under
 * ASan too), and a decoded reply is internally consistent ---- */

static void decode_both(const void *data, size_t len)
{
	struct arena a = { 0 };
	struct proto_reply r;
	char **argv;
	int argc;

	if (!proto_decode_request(data, len, &a, &argv, &argc)) {
		assert_true(argc >= 1 && argc <= PROTO_ARGS_MAX);
		for (int i = 0; i < argc; i++)
			assert_non_null(argv[i]);
		assert_null(argv[argc]);
	}
	if (!proto_decode_reply(data, len, &a, &r)) {
		assert_true(r.kind == PK_REPLY || r.kind == PK_PART);
		assert_non_null(r.message);
		for (uint32_t i = 0; i < r.nrec; i++)
			for (int j = 0; j < r.recs[i].nfields; j++) {
				const struct proto_field *f = &r.recs[i].fields[j];

				assert_non_null(f->key);
				assert_true(f->type == 's' || f->type == 'i' || f->type == 'l');
				if (f->type == 's')
					assert_non_null(f->str);
				for (int k = 0; f->type == 'l' && k < f->nitems; k++)
					assert_non_null(f->items[k]);
			}
	}
	arena_free(&a);
}

/* Each input in a buffer of its exact size, so ASan sees any overread. */
static void decode_exact(const void *data, size_t len)
{
	unsigned char *copy = malloc(len ? len : 1);

	assert_non_null(copy);
	if (len)
		memcpy(copy, data, len);
	decode_both(copy, len);
	free(copy);
}

static void sweep(const struct buf *b)
{
	unsigned char *m = malloc(b->len);

	assert_non_null(m);
	for (size_t len = 0; len <= b->len; len++)
		decode_exact(b->data, len);
	for (size_t i = 0; i < b->len; i++)
		for (int v = 0; v < 256; v++) {
			memcpy(m, b->data, b->len);
			m[i] = (unsigned char)v;
			decode_both(m, b->len);
		}
	free(m);
}

static void test_fuzz_request(void **state)
{
	char *argv[] = { "signal", "web", "HUP", "", NULL };
	struct buf b = { 0 };

	(void)state;
	assert_true(proto_encode_request(&b, 4, argv));
	sweep(&b);
	buf_free(&b);
}

static void test_fuzz_reply(void **state)
{
	struct buf b = { 0 };

	(void)state;
	write_reply(&b, PK_REPLY);
	sweep(&b);
	buf_free(&b);
}

/* Pseudo-random multi-byte mutations with a fixed seed. */
static void test_fuzz_random(void **state)
{
	struct buf b = { 0 };
	unsigned char *m;
	uint32_t x = 12345;

	(void)state;
	write_reply(&b, PK_PART);
	m = malloc(b.len);
	assert_non_null(m);
	for (int round = 0; round < 200000; round++) {
		int flips;

		memcpy(m, b.data, b.len);
		x = x * 1103515245 + 12345;
		flips = 1 + (int)(x >> 16) % 4;
		for (int k = 0; k < flips; k++) {
			x = x * 1103515245 + 12345;
			m[(x >> 8) % b.len] = (unsigned char)(x >> 24);
		}
		decode_both(m, b.len);
	}
	free(m);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_bytes),
		cmocka_unit_test(test_request_round_trip),
		cmocka_unit_test(test_request_stream),
		cmocka_unit_test(test_request_max_args),
		cmocka_unit_test(test_frame_size),
		cmocka_unit_test(test_request_rejects_header),
		cmocka_unit_test(test_request_rejects_lengths),
		cmocka_unit_test(test_request_rejects_argc),
		cmocka_unit_test(test_request_rejects_strings),
		cmocka_unit_test(test_request_truncated_everywhere),
		cmocka_unit_test(test_reply_round_trip),
		cmocka_unit_test(test_part_round_trip),
		cmocka_unit_test(test_reply_failure_no_records),
		cmocka_unit_test(test_writer_failures),
		cmocka_unit_test(test_writer_cap),
		cmocka_unit_test(test_reply_truncated_everywhere),
		cmocka_unit_test(test_fuzz_request),
		cmocka_unit_test(test_fuzz_reply),
		cmocka_unit_test(test_fuzz_random),
		cmocka_unit_test(test_reply_rejects),
		/* Last: under UBSan this one stops the program at the bad shift. */
		cmocka_unit_test(test_rejects_large_kind),
	};

	return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
