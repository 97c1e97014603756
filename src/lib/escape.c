/* escape.c - see escape.h. */
#include "escape.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Where output goes: written while it fits, counted always. */
struct sink {
	char *out;
	size_t size, used, need;
	bool full;
};

static void put(struct sink *k, const char *s, size_t n)
{
	if (!k->full && k->used + n < k->size) {
		memcpy(k->out + k->used, s, n);
		k->used += n;
	} else {
		k->full = true;		/* later, shorter pieces must not follow a gap */
	}
	k->need += n;
}

static void put_fmt(struct sink *k, const char *fmt, unsigned v)
{
	char e[8];

	put(k, e, (size_t)snprintf(e, sizeof(e), fmt, v));
}

static size_t finish(struct sink *k)
{
	if (k->size)
		k->out[k->used] = '\0';
	return k->need;
}

int escape_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	uint32_t v;
	int len;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		v = c & 0x0f;
		lo = c == 0xe0 ? 0xa0 : lo;	/* overlong below U+0800 */
		hi = c == 0xed ? 0x9f : hi;	/* surrogates U+D800..U+DFFF */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		v = c & 0x07;
		lo = c == 0xf0 ? 0x90 : lo;	/* overlong below U+10000 */
		hi = c == 0xf4 ? 0x8f : hi;	/* above U+10FFFF */
	} else {
		return -1;	/* continuation byte, C0, C1, F5..FF */
	}
	for (int i = 1; i < len; i++) {
		if ((size_t)i >= n || s[i] < lo || s[i] > hi)
			return -i;
		v = v << 6 | (s[i] & 0x3fu);
		lo = 0x80;
		hi = 0xbf;
	}
	*cp = v;
	return len;
}

static bool is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

size_t escape_text(char *out, size_t size, const char *in, size_t len, unsigned flags)
{
	const unsigned char *s = (const unsigned char *)in;
	struct sink k = { out, size, 0, 0, false };
	uint32_t cp;

	for (size_t i = 0; i < len;) {
		int n = escape_utf8_next(s + i, len - i, &cp);

		if (n < 0) {
			for (int j = 0; j < -n; j++)
				put_fmt(&k, "\\x%02x", s[i + (size_t)j]);
			i += (size_t)-n;
			continue;
		}
		if ((cp == '\t' && (flags & ESCAPE_KEEP_TAB)) || (cp == '\n' && (flags & ESCAPE_KEEP_NL)))
			put(&k, (const char *)s + i, 1);
		else if (cp >= 0x80 && is_control(cp))
			put_fmt(&k, "\\u%04x", cp);
		else if (is_control(cp))
			put_fmt(&k, "\\x%02x", cp);
		else
			put(&k, (const char *)s + i, (size_t)n);
		i += (size_t)n;
	}
	return finish(&k);
}

size_t escape_json(char *out, size_t size, const char *in, size_t len)
{
	const unsigned char *s = (const unsigned char *)in;
	struct sink k = { out, size, 0, 0, false };
	uint32_t cp;

	for (size_t i = 0; i < len;) {
		int n = escape_utf8_next(s + i, len - i, &cp);

		if (n < 0)
			put(&k, "\\ufffd", 6);
		else if (cp == '"' || cp == '\\')
			put_fmt(&k, "\\%c", cp);
		else if (cp == '\n')
			put(&k, "\\n", 2);
		else if (cp == '\t')
			put(&k, "\\t", 2);
		else if (is_control(cp))
			put_fmt(&k, "\\u%04x", cp);
		else
			put(&k, (const char *)s + i, (size_t)n);
		i += (size_t)(n < 0 ? -n : n);
	}
	return finish(&k);
}
