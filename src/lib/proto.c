/* proto.c - see proto.h. */
#include "proto.h"

#include <string.h>

static void put_u8(struct buf *b, uint8_t v, bool *failed)
{
	if (!buf_add(b, &v, 1))
		*failed = true;
}

static void put_be(struct buf *b, uint64_t v, int bytes, bool *failed)
{
	uint8_t x[8];

	for (int i = 0; i < bytes; i++)
		x[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
	if (!buf_add(b, x, (size_t)bytes))
		*failed = true;
}

static void put_strn(struct buf *b, const char *s, size_t n, bool *failed)
{
	if (n > PROTO_STR_MAX || (n && memchr(s, '\0', n))) {
		*failed = true;
		return;
	}
	put_be(b, n, 4, failed);
	if (n && !buf_add(b, s, n))
		*failed = true;
}

static void put_str(struct buf *b, const char *s, bool *failed)
{
	put_strn(b, s, s ? strlen(s) : 0, failed);
}

static void patch_be(struct buf *b, size_t at, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		b->data[at + (size_t)i] = (char)(uint8_t)(v >> (8 * (bytes - 1 - i)));
}

static size_t frame_begin(struct buf *b, enum proto_kind kind, bool *failed)
{
	size_t at = b->len;

	put_be(b, 0, 4, failed);
	put_u8(b, PROTO_VERSION, failed);
	put_u8(b, (uint8_t)kind, failed);
	return at;
}

static bool frame_end(struct buf *b, size_t at, bool failed)
{
	size_t body = b->len - at - 4;

	if (failed || body > PROTO_MAX) {
		if (b->len >= at)
			b->len = at;	/* drop the partial frame */
		if (b->data)
			b->data[b->len] = '\0';
		return false;
	}
	patch_be(b, at, body, 4);
	return true;
}

long proto_frame_size(const void *data, size_t have, size_t max)
{
	const uint8_t *p = data;
	uint32_t n;

	if (have < 4)
		return 0;
	n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	if (n < 2 || n > max)
		return -1;
	return (long)n + 4;
}

bool proto_encode_request(struct buf *b, int argc, char *const *argv)
{
	bool failed = argc < 0 || argc > PROTO_ARGS_MAX;
	size_t at = frame_begin(b, PK_REQUEST, &failed);

	put_be(b, (uint64_t)argc, 2, &failed);
	for (int i = 0; i < argc && !failed; i++)
		put_str(b, argv[i], &failed);
	return frame_end(b, at, failed);
}

/* Decoding: a cursor that turns every overrun into a sticky error. */
struct cursor {
	const uint8_t *p;
	size_t left;
	const char *err;
};

static uint64_t get_be(struct cursor *c, int bytes)
{
	uint64_t v = 0;

	if (c->err || c->left < (size_t)bytes) {
		c->err = c->err ? c->err : "truncated message";
		return 0;
	}
	for (int i = 0; i < bytes; i++)
		v = v << 8 | c->p[i];
	c->p += bytes;
	c->left -= (size_t)bytes;
	return v;
}

static const char *get_str(struct cursor *c, struct arena *a)
{
	uint64_t n = get_be(c, 4);
	char *s;

	if (c->err)
		return NULL;
	if (n > PROTO_STR_MAX || n > c->left) {
		c->err = n > PROTO_STR_MAX ? "string too long" : "truncated message";
		return NULL;
	}
	if (memchr(c->p, '\0', n)) {
		c->err = "string contains a NUL byte";
		return NULL;
	}
	if (!(s = arena_strndup(a, (const char *)c->p, n))) {
		c->err = "out of memory";
		return NULL;
	}
	c->p += n;
	c->left -= n;
	return s;
}

/* Checks the frame header; leaves the cursor at the payload. */
static void open_frame(struct cursor *c, const void *frame, size_t len, unsigned kinds)
{
	unsigned kind;

	c->p = frame;
	c->left = len;
	c->err = NULL;
	if (proto_frame_size(frame, len, PROTO_MAX) != (long)len) {
		c->err = "bad frame length";
		return;
	}
	get_be(c, 4);
	if (get_be(c, 1) != PROTO_VERSION && !c->err) {
		c->err = "unsupported protocol version";
		return;
	}
	kind = (unsigned)get_be(c, 1);
	if (!c->err && (kind >= 32 || !(kinds & (1u << kind))))
		c->err = "unexpected message kind";
}

static const char *close_frame(struct cursor *c)
{
	if (!c->err && c->left)
		c->err = "trailing bytes after message";
	return c->err;
}

const char *proto_decode_request(const void *frame, size_t len, struct arena *a,
				 char ***argvp, int *argcp)
{
	struct cursor c;
	uint64_t argc;
	char **argv;

	open_frame(&c, frame, len, 1u << PK_REQUEST);
	argc = get_be(&c, 2);
	if (!c.err && (argc == 0 || argc > PROTO_ARGS_MAX))
		c.err = "bad argument count";
	if (c.err)
		return c.err;
	if (!(argv = arena_alloc(a, sizeof(char *) * (argc + 1))))
		return "out of memory";
	for (uint64_t i = 0; i < argc && !c.err; i++)
		argv[i] = (char *)get_str(&c, a);
	if (close_frame(&c))
		return c.err;
	*argvp = argv;
	*argcp = (int)argc;
	return NULL;
}

void proto_reply_begin(struct proto_writer *w, struct buf *b, enum proto_kind kind, int status,
		       const char *message)
{
	memset(w, 0, sizeof(*w));
	w->b = b;
	w->frame = frame_begin(b, kind, &w->failed);
	put_u8(b, (uint8_t)status, &w->failed);
	put_str(b, message ? message : "", &w->failed);
	w->nrec_at = b->len;
	put_be(b, 0, 4, &w->failed);
}

static void record_close(struct proto_writer *w)
{
	if (w->in_record && !w->failed)
		patch_be(w->b, w->rec_at, w->nfield, 2);
	w->in_record = false;
}

void proto_record(struct proto_writer *w)
{
	record_close(w);
	w->rec_at = w->b->len;
	put_be(w->b, 0, 2, &w->failed);
	w->nfield = 0;
	w->nrec++;
	w->in_record = true;
}

static void field_key(struct proto_writer *w, const char *key, char type)
{
	if (!w->in_record || w->nfield == UINT16_MAX)
		w->failed = true;
	w->nfield++;
	put_str(w->b, key, &w->failed);
	put_u8(w->b, (uint8_t)type, &w->failed);
}

void proto_str(struct proto_writer *w, const char *key, const char *value)
{
	field_key(w, key, 's');
	put_str(w->b, value ? value : "", &w->failed);
}

void proto_strn(struct proto_writer *w, const char *key, const char *value, size_t len)
{
	field_key(w, key, 's');
	put_strn(w->b, value, len, &w->failed);
}

void proto_int(struct proto_writer *w, const char *key, int64_t value)
{
	field_key(w, key, 'i');
	put_be(w->b, (uint64_t)value, 8, &w->failed);
}

void proto_list(struct proto_writer *w, const char *key, const char *const *items, int n)
{
	field_key(w, key, 'l');
	if (n < 0 || n > UINT16_MAX)
		w->failed = true;
	put_be(w->b, (uint64_t)n, 2, &w->failed);
	for (int i = 0; i < n && !w->failed; i++)
		put_str(w->b, items[i], &w->failed);
}

bool proto_reply_end(struct proto_writer *w)
{
	record_close(w);
	if (!w->failed)
		patch_be(w->b, w->nrec_at, w->nrec, 4);
	return frame_end(w->b, w->frame, w->failed);
}

static void get_field(struct cursor *c, struct arena *a, struct proto_field *f)
{
	f->key = get_str(c, a);
	f->type = (char)get_be(c, 1);
	if (c->err)
		return;
	if (f->type == 's') {
		f->str = get_str(c, a);
	} else if (f->type == 'i') {
		f->num = (int64_t)get_be(c, 8);
	} else if (f->type == 'l') {
		f->nitems = (int)get_be(c, 2);
		/* Each item takes at least 4 bytes: bound before allocating. */
		if (!c->err && (size_t)f->nitems * 4 > c->left)
			c->err = "truncated message";
		if (!c->err && !(f->items = arena_alloc(a, sizeof(char *) * ((size_t)f->nitems + 1))))
			c->err = "out of memory";
		for (int i = 0; i < f->nitems && !c->err; i++)
			f->items[i] = get_str(c, a);
	} else {
		c->err = "unknown field type";
	}
}

const char *proto_decode_reply(const void *frame, size_t len, struct arena *a, struct proto_reply *r)
{
	struct cursor c;

	memset(r, 0, sizeof(*r));
	open_frame(&c, frame, len, 1u << PK_REPLY | 1u << PK_PART);
	if (c.err)
		return c.err;
	r->kind = (enum proto_kind)((const uint8_t *)frame)[5];
	r->status = (int)get_be(&c, 1);
	r->message = get_str(&c, a);
	r->nrec = (uint32_t)get_be(&c, 4);
	/* Each record takes at least 2 bytes. */
	if (!c.err && (size_t)r->nrec * 2 > c.left)
		c.err = "truncated message";
	if (!c.err && !(r->recs = arena_alloc(a, sizeof(*r->recs) * ((size_t)r->nrec + 1))))
		c.err = "out of memory";
	for (uint32_t i = 0; i < r->nrec && !c.err; i++) {
		struct proto_record *rec = &r->recs[i];

		rec->nfields = (int)get_be(&c, 2);
		if (!c.err && (size_t)rec->nfields * 5 > c.left)
			c.err = "truncated message";
		if (!c.err && !(rec->fields = arena_alloc(a, sizeof(*rec->fields) * ((size_t)rec->nfields + 1))))
			c.err = "out of memory";
		for (int j = 0; j < rec->nfields && !c.err; j++)
			get_field(&c, a, &rec->fields[j]);
	}
	return close_frame(&c);
}

const struct proto_field *proto_get(const struct proto_record *r, const char *key)
{
	for (int i = 0; i < r->nfields; i++)
		if (strcmp(r->fields[i].key, key) == 0)
			return &r->fields[i];
	return NULL;
}
