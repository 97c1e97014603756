/* suggest.h - "did you mean" for misspelt keys and names. */
#ifndef DROVER_SUGGEST_H
#define DROVER_SUGGEST_H

/* The candidate most similar to word, or NULL when none is close enough.
 * candidates is NULL-terminated. */
const char *suggest(const char *word, const char *const *candidates);
double suggest_similarity(const char *a, const char *b);

#endif
