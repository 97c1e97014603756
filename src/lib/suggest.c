/* suggest.c - Jaro-Winkler similarity, case-insensitive.
 *
 * Jaro-Winkler weighs a shared beginning, which is how keys get misspelt in
 * practice ("prefok" is closest to "procs"). Suggestions below 0.7, the
 * usual threshold, are not made. */
#include "suggest.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

enum { WORD_MAX = 64 };

static double jaro(const char *a, size_t la, const char *b, size_t lb)
{
	bool ma[WORD_MAX] = { false }, mb[WORD_MAX] = { false };
	size_t window = (la > lb ? la : lb) / 2, m = 0, t = 0, k = 0;

	window = window ? window - 1 : 0;
	for (size_t i = 0; i < la; i++) {
		size_t lo = i > window ? i - window : 0;
		size_t hi = i + window + 1 < lb ? i + window + 1 : lb;

		for (size_t j = lo; j < hi; j++) {
			if (mb[j] || tolower((unsigned char)a[i]) != tolower((unsigned char)b[j]))
				continue;
			ma[i] = mb[j] = true;
			m++;
			break;
		}
	}
	if (m == 0)
		return 0.0;
	for (size_t i = 0; i < la; i++) {
		if (!ma[i])
			continue;
		while (!mb[k])
			k++;
		t += tolower((unsigned char)a[i]) != tolower((unsigned char)b[k]);
		k++;
	}
	return ((double)m / (double)la + (double)m / (double)lb +
		((double)m - (double)t / 2.0) / (double)m) / 3.0;
}

double suggest_similarity(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), prefix = 0;
	double j;

	if (la == 0 || lb == 0 || la > WORD_MAX || lb > WORD_MAX)
		return 0.0;
	j = jaro(a, la, b, lb);
	while (prefix < 4 && prefix < la && prefix < lb &&
	       tolower((unsigned char)a[prefix]) == tolower((unsigned char)b[prefix]))
		prefix++;
	return j + (double)prefix * 0.1 * (1.0 - j);
}

const char *suggest(const char *word, const char *const *candidates)
{
	const char *best = NULL;
	double best_score = 0.7;

	if (strlen(word) < 3)
		return NULL;	/* too short to resemble anything meaningfully */
	for (; *candidates; candidates++) {
		double s = suggest_similarity(word, *candidates);

		if (s > best_score) {
			best_score = s;
			best = *candidates;
		}
	}
	return best;
}
