/* proto.h - the control protocol between drover and droverd.
 *
 *   frame   = u32 length (big-endian, of what follows, at most PROTO_MAX)
 *             u8 version (PROTO_VERSION)  u8 kind  payload
 *   REQUEST = u16 argc, argc x str                       (client -> daemon)
 *   REPLY   = u8 status, str message, u32 nrec, records  (final answer)
 *   PART    = as REPLY, more frames follow (logs -f, progress)
 *   record  = u16 nfield, nfield x (str key, u8 type, value)
 *   value   = 's' str | 'i' i64 | 'l' u16 n, n x str
 *   str     = u32 length, bytes (no NUL)
 *
 * All integers big-endian. A decoder accepts a frame only if every byte is
 * consumed exactly: truncated, oversized and trailing input is rejected.
 * Status: 0 ok, 1 failed (the message says why). */
#ifndef DROVER_PROTO_H
#define DROVER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "buf.h"

enum {
	PROTO_VERSION = 1,
	PROTO_MAX = 8 << 20,		/* frame body */
	PROTO_REQUEST_MAX = 64 << 10,	/* what droverd accepts */
	PROTO_ARGS_MAX = 256,
	PROTO_STR_MAX = 1 << 20,
};
enum proto_kind { PK_REQUEST = 1, PK_REPLY = 2, PK_PART = 3 };

/* Frame length from the first bytes of a stream: 0 need more input, -1 not
 * acceptable (too long for max), else the whole frame's size. */
long proto_frame_size(const void *data, size_t have, size_t max);

bool proto_encode_request(struct buf *b, int argc, char *const *argv);
/* body/len: a whole frame. argv is NULL-terminated, in the arena. NULL on
 * success, else what is wrong. */
const char *proto_decode_request(const void *frame, size_t len, struct arena *a,
				 char ***argv, int *argc);

/* Writing a reply: begin, then records and fields, then end. */
struct proto_writer {
	struct buf *b;
	size_t frame, nrec_at, rec_at;
	uint32_t nrec;
	uint16_t nfield;
	bool in_record, failed;
};
void proto_reply_begin(struct proto_writer *w, struct buf *b, enum proto_kind kind, int status,
		       const char *message);
void proto_record(struct proto_writer *w);
void proto_str(struct proto_writer *w, const char *key, const char *value);
void proto_strn(struct proto_writer *w, const char *key, const char *value, size_t len);
void proto_int(struct proto_writer *w, const char *key, int64_t value);
void proto_list(struct proto_writer *w, const char *key, const char *const *items, int n);
bool proto_reply_end(struct proto_writer *w);	/* false: too large or no memory */

struct proto_field {
	const char *key;
	char type;			/* 's', 'i', 'l' */
	const char *str;
	int64_t num;
	const char **items;
	int nitems;
};
struct proto_record {
	struct proto_field *fields;
	int nfields;
};
struct proto_reply {
	enum proto_kind kind;
	int status;
	const char *message;
	struct proto_record *recs;
	uint32_t nrec;
};
const char *proto_decode_reply(const void *frame, size_t len, struct arena *a,
			       struct proto_reply *r);
const struct proto_field *proto_get(const struct proto_record *r, const char *key);

#endif
