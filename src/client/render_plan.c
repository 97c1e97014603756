/* render_plan.c - `drover reload --dry-run`: the plan droverd sent
 * (records of src/daemon/top/reload_dry.h) as text for a person, or as one
 * JSON document for scripts. Every string droverd relays is escaped: a
 * listen address comes from the configuration file. */
#include <stdbool.h>
#include <string.h>

#include "escape.h"
#include "render.h"

static const char *const changes[] = { "added", "removed", "replaced", "updated", "unchanged" };
enum { NCHANGES = sizeof(changes) / sizeof(changes[0]) };

static const char *fstr(const struct proto_record *r, const char *key)
{
	const struct proto_field *f = proto_get(r, key);

	return f && f->type == 's' && f->str ? f->str : "";
}

static long long fint(const struct proto_record *r, const char *key)
{
	const struct proto_field *f = proto_get(r, key);

	return f && f->type == 'i' ? (long long)f->num : 0;
}

static bool is_type(const struct proto_record *r, const char *type)
{
	return strcmp(fstr(r, "type"), type) == 0;
}

static void text(FILE *f, const char *s)
{
	render_text(f, s, 0);
}

/* " (keys: command, env; rolls to generation 3)" */
static void service_details(FILE *f, const struct proto_record *r)
{
	const struct proto_field *keys = proto_get(r, "keys");
	const char *change = fstr(r, "change");
	const char *sep = " (";

	if (keys && keys->type == 'l' && keys->nitems) {
		fputs(" (keys: ", f);
		for (int k = 0; k < keys->nitems; k++) {
			fputs(k ? ", " : "", f);
			text(f, keys->items[k]);
		}
		sep = "; ";
	}
	if (fint(r, "rolls")) {
		fprintf(f, "%srolls to generation %lld", sep, fint(r, "generation") + 1);
		sep = "; ";
	} else if (strcmp(change, "replaced") == 0 && fint(r, "running")) {
		fprintf(f, "%srestarts", sep);
		sep = "; ";
	} else if (strcmp(change, "removed") == 0 && fint(r, "running")) {
		fprintf(f, "%sstops", sep);
		sep = "; ";
	}
	if (fint(r, "starts")) {
		fprintf(f, "%sstarts", sep);
		sep = "; ";
	} else if (strcmp(change, "added") == 0) {
		fprintf(f, "%snot started: start = manual", sep);
		sep = "; ";
	}
	if (strcmp(sep, "; ") == 0)
		fputc(')', f);
}

/* Updated and unchanged services keep all their sockets: only a listener
 * that does something else is shown for them. */
static void listener_line(FILE *f, const struct proto_record *r, const char *svc_change)
{
	const char *change = fstr(r, "change"), *from = fstr(r, "from"), *sep = " (";
	bool quiet = strcmp(svc_change, "updated") == 0 || strcmp(svc_change, "unchanged") == 0;

	if (quiet && strcmp(change, "kept") == 0 && !*from && !fint(r, "relisten"))
		return;
	fprintf(f, "      %-7s ", change);
	if (*fstr(r, "fd_name")) {
		text(f, fstr(r, "fd_name"));
		fputc('=', f);
	}
	text(f, fstr(r, "address"));
	if (*from) {
		fputs(" (from ", f);
		text(f, from);
		sep = ", ";
	}
	if (fint(r, "relisten")) {
		fprintf(f, "%snew backlog %lld", sep, fint(r, "backlog"));
		sep = ", ";
	}
	fputs(strcmp(sep, ", ") == 0 ? ")\n" : "\n", f);
}

static void unchanged_line(FILE *f, const struct proto_reply *r)
{
	int n = 0;

	for (uint32_t i = 0; i < r->nrec; i++) {
		const struct proto_record *rec = &r->recs[i];

		if (!is_type(rec, "service") || strcmp(fstr(rec, "change"), "unchanged") != 0)
			continue;
		fputs(n++ ? ", " : "  unchanged  ", f);
		text(f, fstr(rec, "name"));
	}
	if (n)
		fputc('\n', f);
}

void render_plan(FILE *f, const struct proto_reply *r)
{
	const char *svc_change = "";

	for (uint32_t i = 0; i < r->nrec; i++) {
		const struct proto_record *rec = &r->recs[i];

		if (is_type(rec, "listener")) {
			listener_line(f, rec, svc_change);
			continue;
		}
		if (!is_type(rec, "service"))
			continue;
		svc_change = fstr(rec, "change");
		if (strcmp(svc_change, "unchanged") == 0)
			continue;
		fprintf(f, "  %-9s  ", svc_change);
		text(f, fstr(rec, "name"));
		service_details(f, rec);
		fputc('\n', f);
	}
	unchanged_line(f, r);
	for (uint32_t i = 0; i < r->nrec; i++) {
		const struct proto_record *rec = &r->recs[i];

		if (!is_type(rec, "global"))
			continue;
		fputs("  global     ", f);
		text(f, fstr(rec, "setting"));
		fputs(strcmp(fstr(rec, "applies"), "now") == 0 ? ": the new setting applies now\n"
							       : ": the new setting takes effect when droverd restarts\n",
		      f);
	}
	render_text(f, r->message ? r->message : "", 0);
	fputc('\n', f);
}

/* --- JSON ------------------------------------------------------------------ */

static void jkey(FILE *f, const char *key)
{
	render_json_string(f, key);
	fputs(": ", f);
}

/* A string field; "" as null when `nullable`. */
static void jstr(FILE *f, const struct proto_record *r, const char *key, bool nullable)
{
	const char *s = fstr(r, key);

	jkey(f, key);
	if (nullable && !*s)
		fputs("null", f);
	else
		render_json_string(f, s);
}

static void jbool(FILE *f, const struct proto_record *r, const char *key)
{
	jkey(f, key);
	fputs(fint(r, key) ? "true" : "false", f);
}

static void json_listener(FILE *f, const struct proto_record *r, bool first)
{
	fputs(first ? "\n      {" : ",\n      {", f);
	jstr(f, r, "address", false);
	fputs(", ", f);
	jstr(f, r, "fd_name", true);
	fputs(", ", f);
	jstr(f, r, "change", false);
	fputs(", ", f);
	jstr(f, r, "from", true);
	fputs(", ", f);
	jbool(f, r, "relisten");
	if (fint(r, "backlog") > 0)	/* 0: the default */
		fprintf(f, ", \"backlog\": %lld}", fint(r, "backlog"));
	else
		fputs(", \"backlog\": null}", f);
}

static void json_keys(FILE *f, const struct proto_record *r)
{
	const struct proto_field *keys = proto_get(r, "keys");

	jkey(f, "keys");
	fputc('[', f);
	for (int k = 0; keys && keys->type == 'l' && k < keys->nitems; k++) {
		fputs(k ? ", " : "", f);
		render_json_string(f, keys->items[k]);
	}
	fputc(']', f);
}

/* The service record at *i and the listener records after it. */
static void json_service(FILE *f, const struct proto_reply *r, uint32_t *i, bool first)
{
	const struct proto_record *rec = &r->recs[*i];
	bool added = strcmp(fstr(rec, "change"), "added") == 0;
	int n = 0;

	fputs(first ? "\n    {" : ",\n    {", f);
	jstr(f, rec, "name", false);
	fputs(", ", f);
	jstr(f, rec, "change", false);
	fputs(", ", f);
	jstr(f, rec, "mode", false);
	fputs(", ", f);
	json_keys(f, rec);
	fputs(", ", f);
	jstr(f, rec, "state", true);
	if (added)
		fputs(", \"generation\": null", f);
	else
		fprintf(f, ", \"generation\": %lld", fint(rec, "generation"));
	fputs(", ", f);
	jbool(f, rec, "running");
	fputs(", ", f);
	jbool(f, rec, "starts");
	fputs(", ", f);
	jbool(f, rec, "rolls");
	fputs(", \"listeners\": [", f);
	while (*i + 1 < r->nrec && is_type(&r->recs[*i + 1], "listener"))
		json_listener(f, &r->recs[++*i], n++ == 0);
	fputs(n ? "\n    ]}" : "]}", f);
}

static void json_counts(FILE *f, const struct proto_reply *r)
{
	int count[NCHANGES] = { 0 };

	for (uint32_t i = 0; i < r->nrec; i++)
		for (int c = 0; c < NCHANGES; c++)
			if (is_type(&r->recs[i], "service") && strcmp(fstr(&r->recs[i], "change"), changes[c]) == 0)
				count[c]++;
	fputs("  \"counts\": {", f);
	for (int c = 0; c < NCHANGES; c++)
		fprintf(f, "%s\"%s\": %d", c ? ", " : "", changes[c], count[c]);
	fputs("},\n", f);
}

void render_plan_json(FILE *f, const struct proto_reply *r)
{
	int n = 0;

	fputs("{\n", f);
	json_counts(f, r);
	fputs("  \"services\": [", f);
	for (uint32_t i = 0; i < r->nrec; i++)
		if (is_type(&r->recs[i], "service"))
			json_service(f, r, &i, n++ == 0);
	fputs(n ? "\n  ],\n" : "],\n", f);
	fputs("  \"global\": [", f);
	n = 0;
	for (uint32_t i = 0; i < r->nrec; i++) {
		if (!is_type(&r->recs[i], "global"))
			continue;
		fputs(n++ ? ", {" : "{", f);
		jstr(f, &r->recs[i], "setting", false);
		fputs(", ", f);
		jstr(f, &r->recs[i], "applies", false);
		fputc('}', f);
	}
	fputs("]\n}\n", f);
}
