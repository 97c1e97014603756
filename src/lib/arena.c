/* arena.c - see arena.h. Chunks are at least 4 KiB; big requests get a chunk
 * of their own. Nothing is freed until arena_free(). */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct arena_chunk {
	struct arena_chunk *next;
	size_t size, used;
	_Alignas(16) unsigned char data[];
};

enum { CHUNK_MIN = 4096 - sizeof(struct arena_chunk) };

static struct arena_chunk *chunk_new(size_t n)
{
	size_t size = n > CHUNK_MIN ? n : CHUNK_MIN;
	struct arena_chunk *c = malloc(sizeof(*c) + size);

	if (c) {
		c->size = size;
		c->used = 0;
	}
	return c;
}

void *arena_alloc(struct arena *a, size_t n)
{
	struct arena_chunk *c = a->head;
	void *p;

	if (n > SIZE_MAX / 2) {
		a->failed = true;
		return NULL;
	}
	n = (n + 15) & ~(size_t)15;
	if (!c || c->size - c->used < n) {
		c = chunk_new(n);
		if (!c) {
			a->failed = true;
			return NULL;
		}
		c->next = a->head;
		a->head = c;
	}
	p = c->data + c->used;
	c->used += n;
	memset(p, 0, n);
	return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);

	if (p)
		memcpy(p, s, n);
	return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

void *arena_grow(struct arena *a, void *old, size_t oldn, size_t newn)
{
	void *p = arena_alloc(a, newn);

	if (p && old)
		memcpy(p, old, oldn < newn ? oldn : newn);
	return p;
}

void arena_free(struct arena *a)
{
	struct arena_chunk *c = a->head, *next;

	for (; c; c = next) {
		next = c->next;
		free(c);
	}
	a->head = NULL;
	a->failed = false;
}
