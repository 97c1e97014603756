/* escape.h - bytes from elsewhere made safe to show.
 *
 * What a service prints, sends as STATUS= or writes into a configuration
 * file can hold terminal escape sequences and bytes that are not UTF-8.
 * escape_text() makes such bytes visible and inert for a terminal or a log;
 * escape_json() makes them the body of a valid JSON string. Both are pure:
 * no allocation, no locale, no state.
 *
 * Both work like snprintf: they write at most size - 1 bytes and a NUL
 * (nothing when size is 0) and return the length the whole output needs.
 * Output is cut only between whole characters or whole escapes, never in
 * the middle of one. */
#ifndef DROVER_ESCAPE_H
#define DROVER_ESCAPE_H

#include <stddef.h>
#include <stdint.h>

enum {
	ESCAPE_KEEP_TAB = 1,	/* a tab passes as it is */
	ESCAPE_KEEP_NL = 2,	/* a newline passes as it is */
};

/* The UTF-8 sequence at s (n > 0 bytes): its length (1 to 4) with its code
 * point in *cp when it is valid (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF); else minus the length of its
 * "maximal subpart" (Unicode 3.9, U+FFFD substitution): the bytes that
 * start a valid sequence but do not finish one, at least one byte. */
int escape_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);

/* Valid UTF-8 passes, except the control characters: C0 (tab and newline
 * only with the flags above) and DEL become \xNN, C1 (U+0080 to U+009F)
 * becomes \u00NN; every byte of an invalid sequence becomes \xNN. A
 * backslash is not doubled: the output is for people, not for parsing. */
size_t escape_text(char *out, size_t size, const char *in, size_t len, unsigned flags);

/* The body of a JSON string (no quotes): " and \ escaped, \n and \t as
 * such, every other control character (C0, DEL, C1) as \u00NN, and each
 * invalid sequence (its maximal subpart) as one \ufffd, the replacement
 * character. The result is valid UTF-8 whatever the input. */
size_t escape_json(char *out, size_t size, const char *in, size_t len);

#endif
