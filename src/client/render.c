/* render.c - see render.h. */
#include "render.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "escape.h"

/* What droverd relays (a service's STATUS=, its output, a configuration's
 * text) is written through escape.h: a terminal never receives a control
 * character or an invalid byte from it, and JSON stays valid UTF-8. */
void render_text(FILE *f, const char *s, unsigned flags)
{
	size_t len = strlen(s), n = escape_text(NULL, 0, s, len, flags);
	char *e = malloc(n + 1);

	if (!e) {
		fputs("(out of memory)", f);
		return;
	}
	escape_text(e, n + 1, s, len, flags);
	fputs(e, f);
	free(e);
}

static const char *fstr(const struct proto_record *r, const char *key)
{
	const struct proto_field *f = proto_get(r, key);

	return f && f->type == 's' && f->str ? f->str : "";
}

static long long fint(const struct proto_record *r, const char *key, long long def)
{
	const struct proto_field *f = proto_get(r, key);

	return f && f->type == 'i' ? (long long)f->num : def;
}

void render_duration(long long ms, char *out, size_t len)
{
	long long s = ms / 1000;

	if (ms < 0)
		snprintf(out, len, "-");
	else if (ms < 1000)
		snprintf(out, len, "%lldms", ms);
	else if (s < 60)
		snprintf(out, len, "%llds", s);
	else if (s < 3600)
		snprintf(out, len, "%lldm%llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(out, len, "%lldh%lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(out, len, "%lldd%lldh", s / 86400, s % 86400 / 3600);
}

static void pids_text(const struct proto_record *r, char *out, size_t len)
{
	const struct proto_field *f = proto_get(r, "pids");
	size_t n = 0;

	out[0] = '\0';
	if (!f || f->type != 'l' || f->nitems == 0) {
		snprintf(out, len, "-");
		return;
	}
	for (int i = 0; i < f->nitems && n < len; i++) {
		if (i == 3 && f->nitems > 4) {
			snprintf(out + n, len - n, ",+%d", f->nitems - 3);
			return;
		}
		n += (size_t)snprintf(out + n, len - n, "%s%s", i ? "," : "", f->items[i]);
	}
}

/* The last column says the most useful thing: the service's own STATUS=,
 * else, for a pool, its workers and connections, else why it is in its
 * state, with the time of the next attempt or run. */
static void note_text(const struct proto_record *r, char *out, size_t len)
{
	const char *status = fstr(r, "status"), *reason = fstr(r, "reason"), *state = fstr(r, "state");
	long long next = fint(r, "next_ms", -1), total = fint(r, "total", -1);
	char when[32];

	render_duration(next, when, sizeof(when));
	if (*status)
		snprintf(out, len, "%s", status);
	else if (*fstr(r, "health_text") && strcmp(fstr(r, "health"), "healthy") != 0 && !*reason)
		snprintf(out, len, "last probe: %s", fstr(r, "health_text"));
	else if (total >= 0 && strcmp(fstr(r, "mode"), "accept") == 0 && !*reason)
		snprintf(out, len, "%lld running, %lld served", total, fint(r, "served", 0));
	else if (total >= 0 && !*reason)
		snprintf(out, len, "%lld busy, %lld idle, %lld workers; %lld served", fint(r, "busy", 0),
			 fint(r, "idle", 0), total, fint(r, "served", 0));
	else if (next >= 0 && strcmp(state, "backoff") == 0)
		snprintf(out, len, "%s (next attempt in %s)", reason, when);
	else if (next >= 0)
		snprintf(out, len, "%s%snext run in %s", reason, *reason ? "; " : "", when);
	else
		snprintf(out, len, "%s", reason);
}

enum { COLS = 12, CELL = 256, COL_HEALTH = 3, COL_LISTEN = 4, COL_PIDS = 5, COL_UPTIME = 6, COL_RESTARTS = 7,
       COL_CPU = 8, COL_MEM = 9, COL_TASKS = 10 };

/* A cell of the table, escaped (tabs too: they would break the columns).
 * Text composed for a cell has room for four times the cell, so that a
 * character cut there is far past what the cell shows. */
static void cell_text(char *cell, const char *raw)
{
	escape_text(cell, CELL, raw, strlen(raw), 0);
}

/* Columns padded to their width; the last one is not padded; LISTEN, CPU,
 * MEM and TASKS only when some service has one. */
static void print_row(FILE *f, const int *width, const char *const *cols, const bool *shown)
{
	for (int c = 0; c < COLS - 1; c++)
		if (shown[c])
			fprintf(f, "%-*s  ", width[c], cols[c]);
	fprintf(f, "%s\n", cols[COLS - 1]);
}

/* 1.5s, 2m3s; 512K, 3.2M, 1.1G */
static void cpu_text(long long usec, char *out, size_t len)
{
	if (usec < 0)
		snprintf(out, len, "-");
	else if (usec < 60000000)
		snprintf(out, len, "%lld.%llds", usec / 1000000, usec / 100000 % 10);
	else
		render_duration(usec / 1000, out, len);
}

static void size_text(long long n, char *out, size_t len)
{
	if (n < 0)
		snprintf(out, len, "-");
	else if (n < 1024LL * 1024)
		snprintf(out, len, "%lldK", (n + 1023) / 1024);
	else if (n < 1024LL * 1024 * 1024)
		snprintf(out, len, "%.1fM", (double)n / (1024.0 * 1024.0));
	else
		snprintf(out, len, "%.1fG", (double)n / (1024.0 * 1024.0 * 1024.0));
}

/* The figures of the service's cgroup, where droverd knows them. */
static void cgroup_cells(const struct proto_record *rec, char (*cell)[CELL], bool *shown)
{
	long long tasks = fint(rec, "tasks", -1);

	cpu_text(fint(rec, "cpu_usec", -1), cell[COL_CPU], CELL);
	size_text(fint(rec, "memory_bytes", -1), cell[COL_MEM], CELL);
	if (tasks < 0)
		snprintf(cell[COL_TASKS], CELL, "-");
	else
		snprintf(cell[COL_TASKS], CELL, "%lld", tasks);
	shown[COL_CPU] |= proto_get(rec, "cpu_usec") != NULL;
	shown[COL_MEM] |= proto_get(rec, "memory_bytes") != NULL;
	shown[COL_TASKS] |= tasks >= 0;
}

void render_status_table(FILE *f, const struct proto_reply *r)
{
	static const char *const head[COLS] = { "NAME", "MODE", "STATE", "HEALTH", "LISTEN", "PIDS", "UPTIME",
						"RESTARTS", "CPU", "MEM", "TASKS", "STATUS" };
	int width[COLS];
	bool shown[COLS] = { true, true, true, false, false, true, true, true, false, false, false, true };
	char (*cell)[COLS][CELL] = calloc(r->nrec ? r->nrec : 1, sizeof(*cell));

	if (!cell)
		return;
	for (int c = 0; c < COLS; c++)
		width[c] = (int)strlen(head[c]);
	for (uint32_t i = 0; i < r->nrec; i++) {
		const struct proto_record *rec = &r->recs[i];

		char note[4 * CELL];

		cell_text(cell[i][0], fstr(rec, "name"));
		cell_text(cell[i][1], fstr(rec, "mode"));
		cell_text(cell[i][2], fstr(rec, "state"));
		cell_text(cell[i][COL_HEALTH], *fstr(rec, "health") ? fstr(rec, "health") : "-");
		shown[COL_HEALTH] |= *fstr(rec, "health") != '\0';
		cell_text(cell[i][COL_LISTEN], *fstr(rec, "listen") ? fstr(rec, "listen") : "-");
		shown[COL_LISTEN] |= *fstr(rec, "listen") != '\0';
		pids_text(rec, note, sizeof(note));
		cell_text(cell[i][COL_PIDS], note);
		/* time in the state, shown as uptime while it runs */
		render_duration(strcmp(cell[i][COL_PIDS], "-") ? fint(rec, "uptime_ms", -1) : -1,
				cell[i][COL_UPTIME], CELL);
		snprintf(cell[i][COL_RESTARTS], CELL, "%lld", fint(rec, "restarts", 0));
		cgroup_cells(rec, cell[i], shown);
		note_text(rec, note, sizeof(note));
		cell_text(cell[i][COLS - 1], note);
		for (int c = 0; c < COLS - 1; c++)
			if ((int)strlen(cell[i][c]) > width[c])
				width[c] = (int)strlen(cell[i][c]);
	}
	print_row(f, width, head, shown);
	for (uint32_t i = 0; i < r->nrec; i++) {
		const char *cols[COLS];

		for (int c = 0; c < COLS; c++)
			cols[c] = cell[i][c];
		print_row(f, width, cols, shown);
	}
	free(cell);
}

/* Always valid JSON, whatever the bytes: see escape_json(). */
static void json_string(FILE *f, const char *s)
{
	size_t len = strlen(s), n = escape_json(NULL, 0, s, len);
	char *e = malloc(n + 1);

	fputc('"', f);
	if (e) {
		escape_json(e, n + 1, s, len);
		fputs(e, f);
	}
	fputc('"', f);
	free(e);
}

void render_json_string(FILE *f, const char *s)
{
	json_string(f, s);
}

static bool is_number(const char *s)
{
	if (*s == '-')
		s++;
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* Records become objects; "pids" (numbers as text) becomes a number array. */
void render_json(FILE *f, const struct proto_reply *r)
{
	fputc('[', f);
	for (uint32_t i = 0; i < r->nrec; i++) {
		const struct proto_record *rec = &r->recs[i];

		fputs(i ? ",\n {" : "\n {", f);
		for (int j = 0; j < rec->nfields; j++) {
			const struct proto_field *fl = &rec->fields[j];
			bool numeric = strcmp(fl->key, "pids") == 0;

			if (j)
				fputs(", ", f);
			json_string(f, fl->key);
			fputs(": ", f);
			if (fl->type == 'i') {
				fprintf(f, "%lld", (long long)fl->num);
			} else if (fl->type == 's') {
				json_string(f, fl->str ? fl->str : "");
			} else {
				fputc('[', f);
				for (int k = 0; k < fl->nitems; k++) {
					if (k)
						fputs(", ", f);
					if (numeric && is_number(fl->items[k]))
						fputs(fl->items[k], f);
					else
						json_string(f, fl->items[k]);
				}
				fputc(']', f);
			}
		}
		fputc('}', f);
	}
	fputs(r->nrec ? "\n]\n" : "]\n", f);
}

static void list_text(FILE *f, const struct proto_field *fl)
{
	for (int k = 0; fl && k < fl->nitems; k++)
		fprintf(f, "%s%s", k ? ", " : "", fl->items[k]);
}

void render_deps(FILE *f, const struct proto_reply *r, bool dot)
{
	if (dot)
		fputs("digraph drover {\n\trankdir=LR;\n\tnode [shape=box];\n", f);
	for (uint32_t i = 0; i < r->nrec; i++) {
		const struct proto_record *rec = &r->recs[i];
		const struct proto_field *req = proto_get(rec, "requires"), *aft = proto_get(rec, "after");
		const char *name = fstr(rec, "name");

		if (!dot) {
			fprintf(f, "%s (%s)", name, fstr(rec, "state"));
			if (req && req->nitems) {
				fputs("  requires: ", f);
				list_text(f, req);
			}
			if (aft && aft->nitems) {
				fputs("  after: ", f);
				list_text(f, aft);
			}
			fputc('\n', f);
			continue;
		}
		fprintf(f, "\t\"%s\";\n", name);
		for (int k = 0; req && k < req->nitems; k++)
			fprintf(f, "\t\"%s\" -> \"%s\";\n", name, req->items[k]);
		for (int k = 0; aft && k < aft->nitems; k++)
			fprintf(f, "\t\"%s\" -> \"%s\" [style=dashed];\n", name, aft->items[k]);
	}
	if (dot)
		fputs("}\n", f);
}

void render_log_lines(FILE *f, const struct proto_reply *r, const char *name)
{
	for (uint32_t i = 0; i < r->nrec; i++) {
		const struct proto_record *rec = &r->recs[i];
		long long when = fint(rec, "time", 0), pid = fint(rec, "pid", 0);
		time_t secs = (time_t)(when / 1000);
		struct tm tm;
		char stamp[32];

		localtime_r(&secs, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
		if (pid)
			fprintf(f, "%s.%03lld %s[%lld]: ", stamp, when % 1000, name, pid);
		else
			fprintf(f, "%s.%03lld %s: ", stamp, when % 1000, name);
		render_text(f, fstr(rec, "line"), ESCAPE_KEEP_TAB);
		fputc('\n', f);
	}
	fflush(f);
}

void render_changes(FILE *f, const struct proto_reply *r)
{
	for (uint32_t i = 0; i < r->nrec; i++)
		fprintf(f, "  %-9s %s\n", fstr(&r->recs[i], "change"), fstr(&r->recs[i], "name"));
}
