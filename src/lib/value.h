/* value.h - parsers for the value types of drover.conf.
 *
 * Each returns NULL on success or a short reason ("not a duration (...)")
 * that the caller puts after the offending text. They accept exactly the
 * syntax of SPEC section 2 and reject anything else, including overflow. */
#ifndef DROVER_VALUE_H
#define DROVER_VALUE_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"

const char *value_duration(const char *s, int64_t *ms);
const char *value_size(const char *s, uint64_t *bytes);
const char *value_bool(const char *s, bool *b);
const char *value_uint(const char *s, unsigned max, unsigned *out);
const char *value_octal(const char *s, unsigned max, unsigned *out);
const char *value_signal(const char *s, int *sig);
/* "HH:MM[,HH:MM...]" into sorted, de-duplicated minutes after midnight. */
const char *value_at(struct arena *a, const char *s, short **mins, int *n);
/* POSIX-shell-like word splitting: quotes and backslashes, no expansion. */
const char *value_split(struct arena *a, const char *s, char ***argv, int *argc);

/* "TERM" for SIGTERM; a number as text for signals without a name. */
const char *signal_name(int sig);
/* Duration in ms to "250ms", "10s", "6.4s", "5m"...: the shortest exact form. */
void duration_format(int64_t ms, char *out, int len);

#endif
