/* render.h - how drover shows what droverd answered: tables, JSON, text. */
#ifndef DROVER_RENDER_H
#define DROVER_RENDER_H

#include <stdbool.h>
#include <stdio.h>

#include "proto.h"

void render_status_table(FILE *f, const struct proto_reply *r);
void render_json(FILE *f, const struct proto_reply *r);
void render_deps(FILE *f, const struct proto_reply *r, bool dot);
void render_log_lines(FILE *f, const struct proto_reply *r, const char *name);
void render_changes(FILE *f, const struct proto_reply *r);
/* `reload --dry-run`'s plan (render_plan.c): text, or one JSON document. */
void render_plan(FILE *f, const struct proto_reply *r);
void render_plan_json(FILE *f, const struct proto_reply *r);
/* s as a JSON string, quotes included, valid whatever the bytes. */
void render_json_string(FILE *f, const char *s);
/* Text droverd relays, with control characters and invalid UTF-8 made
 * visible (flags: ESCAPE_KEEP_TAB, ESCAPE_KEEP_NL of escape.h). */
void render_text(FILE *f, const char *s, unsigned flags);
/* "3d4h", "5m12s", "850ms" */
void render_duration(long long ms, char *out, size_t len);

#endif
