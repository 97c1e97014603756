/* fuzz_proto.c - libFuzzer target: the control protocol decoders (proto.h).
 *
 * Each input is one frame, given to both decoders: proto_decode_request (what
 * droverd reads from any local client) and proto_decode_reply (what drover
 * and libdrover read). Whatever a decoder accepts must be exactly what the
 * encoder writes for the decoded values: decode, encode again, compare bytes.
 * Sanitizers catch the rest (overruns, oversized allocations, overflow). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_bytes(const struct buf *b, const uint8_t *data, size_t size)
{
	if (b->len != size || memcmp(b->data, data, size) != 0)
		abort();
}

static void request(const uint8_t *data, size_t size)
{
	struct arena a = { 0 };
	struct buf b = { 0 };
	char **argv;
	int argc;

	if (!proto_decode_request(data, size, &a, &argv, &argc)) {
		if (proto_frame_size(data, size, PROTO_MAX) != (long)size || argc < 1 || argv[argc])
			abort();
		if (!proto_encode_request(&b, argc, argv))
			abort();
		same_bytes(&b, data, size);
	}
	buf_free(&b);
	arena_free(&a);
}

static void reencode_record(struct proto_writer *w, const struct proto_record *rec)
{
	proto_record(w);
	for (int j = 0; j < rec->nfields; j++) {
		const struct proto_field *f = &rec->fields[j];

		if (proto_get(rec, f->key) == NULL)
			abort();
		if (f->type == 's')
			proto_str(w, f->key, f->str);
		else if (f->type == 'i')
			proto_int(w, f->key, f->num);
		else if (f->type == 'l')
			proto_list(w, f->key, f->items, f->nitems);
		else
			abort();
	}
}

static void reply(const uint8_t *data, size_t size)
{
	struct arena a = { 0 };
	struct buf b = { 0 };
	struct proto_reply r;
	struct proto_writer w;

	if (!proto_decode_reply(data, size, &a, &r)) {
		if (r.kind != PK_REPLY && r.kind != PK_PART)
			abort();
		proto_reply_begin(&w, &b, r.kind, r.status, r.message);
		for (uint32_t i = 0; i < r.nrec; i++)
			reencode_record(&w, &r.recs[i]);
		if (!proto_reply_end(&w))
			abort();
		same_bytes(&b, data, size);
	}
	buf_free(&b);
	arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	long n = proto_frame_size(data, size, PROTO_REQUEST_MAX);

	if (n > 0 && size >= 4 && (size_t)n != ((size_t)data[0] << 24 | (size_t)data[1] << 16 |
						 (size_t)data[2] << 8 | data[3]) + 4)
		abort();
	request(data, size);
	reply(data, size);
	return 0;
}
