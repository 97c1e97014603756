/* arena.h - bump allocator that owns everything one configuration holds.
 *
 * A configuration is built once and freed as a whole, so its memory comes
 * from an arena: no per-field frees, no leaks on error paths. An allocation
 * that fails returns NULL and marks the arena failed; the parser checks the
 * mark once at the end and reports "out of memory" instead of crashing the
 * daemon during a reload. */
#ifndef DROVER_ARENA_H
#define DROVER_ARENA_H

#include <stdbool.h>
#include <stddef.h>

struct arena_chunk;

struct arena {
	struct arena_chunk *head;
	bool failed;
};

void *arena_alloc(struct arena *a, size_t n);	/* zeroed, 16-aligned */
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
void *arena_grow(struct arena *a, void *old, size_t oldn, size_t newn);
void arena_free(struct arena *a);

#endif
