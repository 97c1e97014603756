/* buf.h - growable byte buffer with a hard cap.
 *
 * Every buffer the daemon fills from the outside (control requests, output
 * queues, log lines) has a cap, so no peer can make droverd grow without
 * bound. Appends that would pass the cap fail and leave the buffer as it was. */
#ifndef DROVER_BUF_H
#define DROVER_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len, cap, max;	/* max 0: unlimited */
};

bool buf_add(struct buf *b, const void *p, size_t n);
bool buf_adds(struct buf *b, const char *s);
bool buf_addc(struct buf *b, char c);
bool buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
bool buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
const char *buf_cstr(struct buf *b);	/* NUL-terminated view, "" if empty */
void buf_consume(struct buf *b, size_t n);	/* drop n bytes from the front */
void buf_reset(struct buf *b);
void buf_free(struct buf *b);

#endif
