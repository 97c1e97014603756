/* test_state.c - the state an upgrade hands over (state.h): encode ->
 * decode round trip, exact to the byte; the configuration in force carried
 * as facts and read again with conf_replay() after its files are gone; and
 * a decoder that refuses every truncated, out-of-range, repeated, missing
 * or trailing input, with its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "state.h"

static char *encode(const struct state *st, size_t *len)
{
	struct buf b = { .max = STATE_MAX };
	char *out;

	assert_int_equal(state_encode(st, &b), 0);
	out = malloc(b.len + 1);
	assert_non_null(out);
	memcpy(out, b.data, b.len);
	out[b.len] = '\0';
	*len = b.len;
	buf_free(&b);
	return out;
}

/* A state with one of everything, odd bytes in its strings. */
static void sample(struct state *st, char *log_text, size_t log_len)
{
	static struct state_service svcs[2];
	static struct state_listener lis[1];
	static struct state_proc procs[2];
	static struct state_log logs[1];
	static struct conf_fact facts[2];

	memset(st, 0, sizeof(*st));
	st->g = (struct state_globals){ .control_fd = 5, .notify_fd = 6, .client_fd = -1 };
	strcpy(st->g.control_path, "/run/drover/control sock%");
	facts[0] = (struct conf_fact){ FACT_FILE, "/etc/d.conf", "[service a]\ncommand = x\n", 23, { 1, 2049, 77 } };
	facts[1] = (struct conf_fact){ FACT_GLOB, "/etc/conf.d/*", "a\0b c\0", 6, { 0, 0, 0 } };
	st->conf_path = "/etc/d.conf";
	st->facts = facts;
	st->nfacts = 2;
	svcs[0] = (struct state_service){ .name = "a", .gen = 3, .state = 2, .want = 1, .since = 12345,
					  .last_status = -1, .restart_at = -1, .ready_at = 999, .watchdog_at = -1,
					  .status = "ok = \"fine\"\n", .reason = "", .has_pool = true,
					  .pool_served = 10, .pool_dynamic = 1, .pool_serving_gen = 3 };
	svcs[1] = (struct state_service){ .name = "b.c@d-e_f", .restart_at = -1, .ready_at = -1,
					  .watchdog_at = -1, .status = "", .reason = "exited 1" };
	st->svcs = svcs;
	st->nsvcs = 2;
	lis[0] = (struct state_listener){ 0, 0, 7, 1, 2, "tcp 127.0.0.1:80 backlog=4096" };
	st->lis = lis;
	st->nlis = 1;
	procs[0] = (struct state_proc){ .svc = 0, .pid = 100, .pidfd = 8, .out = 9, .gen = 3, .slot = 4095,
					.kill_at = -1, .wstate = 2, .source = INT64_MIN };
	procs[1] = (struct state_proc){ .svc = 1, .pid = 101, .pidfd = -1, .out = -1, .slot = -1, .exited = 1,
					.kill_at = 5000 };
	st->procs = procs;
	st->nprocs = 2;
	logs[0] = (struct state_log){ 1, 1700000000000, 101, log_text, log_len };
	st->logs = logs;
	st->nlogs = 1;
}

static void test_round_trip(void **unused)
{
	char text[] = "line\0with a NUL %00 and \xff";
	struct state st, back;
	char err[300] = "", *a, *b;
	size_t alen, blen;

	(void)unused;
	sample(&st, text, sizeof(text) - 1);
	a = encode(&st, &alen);
	assert_int_equal(state_decode(a, alen, &back, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_string_equal(back.g.control_path, "/run/drover/control sock%");
	assert_int_equal(back.g.client_fd, -1);
	assert_int_equal(back.nfacts, 2);
	assert_int_equal(back.facts[1].len, 6);
	assert_memory_equal(back.facts[1].data, "a\0b c\0", 6);
	assert_int_equal(back.facts[0].v[2], 77);
	assert_string_equal(back.svcs[0].status, "ok = \"fine\"\n");
	assert_string_equal(back.svcs[1].name, "b.c@d-e_f");
	assert_int_equal(back.procs[0].slot, 4095);
	assert_true(back.procs[0].source == INT64_MIN);
	assert_int_equal(back.logs[0].len, sizeof(text) - 1);
	assert_memory_equal(back.logs[0].text, text, sizeof(text) - 1);
	assert_true(state_names_fd(&back, 9));
	assert_false(state_names_fd(&back, 10));
	b = encode(&back, &blen);	/* exact: the same text again */
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, alen);
	state_free(&back);
	free(a);
	free(b);
}

/* Every prefix is refused, and so is anything after the end record. */
static void test_truncated_and_trailing(void **unused)
{
	struct state st, back;
	char err[300], *a, *more;
	size_t len;

	(void)unused;
	sample(&st, "x", 1);
	a = encode(&st, &len);
	for (size_t n = 0; n < len; n++) {
		err[0] = '\0';
		assert_int_equal(state_decode(a, n, &back, err, sizeof(err)), -1);
		assert_true(err[0]);
		assert_null(back.svcs);
	}
	assert_int_equal(state_decode(a, len - 4, &back, err, sizeof(err)), -1);
	assert_string_equal(err, "state line 13: truncated: no end record");
	more = malloc(len + 2);
	memcpy(more, a, len);
	memcpy(more + len, "x\n", 2);
	assert_int_equal(state_decode(more, len + 2, &back, err, sizeof(err)), -1);
	assert_string_equal(err, "state line 13: 2 bytes after the end record");
	free(more);
	free(a);
}

/* The sample's text with the first occurrence of from replaced by to,
 * decoded: it must fail with a reason that contains why. */
static void refused(const char *from, const char *to, const char *why)
{
	struct state st, back;
	char err[300] = "", *a, *out, *at;
	size_t len;

	sample(&st, "x", 1);
	a = encode(&st, &len);
	at = strstr(a, from);
	if (!at)
		fail_msg("\"%s\" is not in the sample state:\n%s", from, a);
	out = malloc(len + strlen(to) + 1);
	sprintf(out, "%.*s%s%s", (int)(at - a), a, to, at + strlen(from));
	if (state_decode(out, strlen(out), &back, err, sizeof(err)) == 0)
		fail_msg("accepted with %s -> %s", from, to);
	if (!strstr(err, why))
		fail_msg("with %s -> %s: \"%s\", expected \"%s\"", from, to, err, why);
	assert_null(back.svcs);
	free(out);
	free(a);
}

static void test_out_of_range(void **unused)
{
	(void)unused;
	refused("slot=4095", "slot=4096", "field slot: 4096 is out of range (-1 to 4095)");
	refused("slot=4095", "slot=-2", "field slot: -2 is out of range");
	refused(" state=2 ", " state=99 ", "field state: 99 is out of range");
	refused("wstate=2", "wstate=4", "field wstate: 4 is out of range");
	refused("pid=100", "pid=0", "field pid: 0 is out of range");
	refused("pid=100", "pid=2147483648", "field pid: 2147483648 is out of range");
	refused("index=0", "index=64", "field index: 64 is out of range");
	refused("control=5", "control=-2", "field control: -2 is out of range");
	refused("pidfd=8", "pidfd=1048576", "field pidfd: 1048576 is out of range");
	refused("want=1", "want=2", "field want: 2 is out of range");
	refused("gen=3 state", "gen=4294967296 state", "field gen: 4294967296 is out of range");
	refused("restart_at=-1", "restart_at=-2", "field restart_at: -2 is out of range");
	refused("gen=3 state", "gen=99999999999999999999 state", "field gen: \"99999999999999999999\" is not a number");
	refused("gen=3 state", "gen=+3 state", "field gen: \"+3\" is not a number");
	refused("gen=3 state", "gen=3x state", "field gen: \"3x\" is not a number");
	refused("kind=1", "kind=8", "field kind: 8 is out of range");
}

static void test_fields_and_records(void **unused)
{
	(void)unused;
	refused("pidfd=8", "pidfd=7", "descriptor 7 is named twice");
	refused("out=9", "out=5", "descriptor 5 is named twice");
	refused("pid=101", "pid=100", "process 100 given twice");
	refused(" want=1", " want=1 want=1", "field want given twice");
	refused(" want=1", "", "field want missing from a service record");
	refused(" want=1", " want=1 wants=1", "unknown field \"wants\" in a service record");
	refused("\nend\n", "\nfrob a x=1\nend\n", "unknown record \"frob\"");
	refused("listener a", "listener zz", "a listener record of service \"zz\", which has no service record");
	refused("service b.c", "service b%2fc", "a service record with a bad service name");
	refused("service b.c@d-e_f", "service a", "service a given twice");
	refused("index=0", "index=0 ", "an empty field");
	refused("status=ok", "status=o%zzk", "field status: bad escape or character");
	refused("status=ok", "status=o\"k", "field status: bad escape or character");
	refused("status=ok", "status=o%00k", "field status: a NUL byte in a string");
	refused("drover-state 2", "drover-state 1", "state version \"1\" (this droverd reads 2)");
	refused("drover-state 2", "drover-stat 2", "not a drover state");
	refused("global control", "globals control", "the global record must come first");
	refused("facts=2", "facts=3", "a fact record expected");
	refused("facts=2", "facts=1", "a fact record that the conf record did not announce");
	refused("facts=2", "facts=65537", "field facts: 65537 is out of range");
	refused("data=a%00b", "data=a%00%00b", "a fact with bad glob matches");
	refused("kind=1", "kind=4", "a fact with data it cannot have");
	refused("v0=1", "v0=2", "a fact with a value out of range");
	refused("\nend\n", "\nconf path=/x facts=0\nend\n", "a conf record after the services, or twice");
	refused("\nend\n", "\n\nend\n", "an empty field");
	refused("\nend\n", "\nend\nend\n", "4 bytes after the end record");
	refused("\nend\n", "\nendx\n", "unknown record \"endx\"");
	refused("\nend\n", "\n", "truncated: no end record");
	refused("\nend\n", "\nend", "truncated: the last line has no end");
}

static void test_pool_and_nul(void **unused)
{
	struct state back;
	char err[300];
	static const char nul[] = "drover-state 2\nglobal control=-1 control_path=% notify=-1 client=-1 "
				  "sdnotify=%\n\0end\n";

	(void)unused;
	refused("\npool a", "\npool a served=1 failures=0 throttle=0 dynamic=0 rolling=0 "
		"serving_gen=0\npool a", "pool of service a given twice");
	assert_int_equal(state_decode(nul, sizeof(nul) - 1, &back, err, sizeof(err)), -1);
	assert_string_equal(err, "state: a NUL byte at offset 79");
	assert_int_equal(state_decode("", 0, &back, err, sizeof(err)), -1);
	assert_string_equal(err, "state: empty");
}

/* ---- the configuration in force, through the state, without its files ---- */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_configuration_round_trip(void **unused)
{
	char dir[] = "/tmp/test_state.XXXXXX", path[256], inc[256], cf[256], main_text[1024], err[300] = "";
	struct conf_errors errs = { 0 };
	struct conf *c, *r;
	struct state st = { .g = { .control_fd = -1, .notify_fd = -1, .client_fd = -1 } }, back;
	char *a, *b;
	size_t alen, blen;

	(void)unused;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/drover.conf", dir);
	snprintf(inc, sizeof(inc), "%s/conf.d", dir);
	snprintf(cf, sizeof(cf), "%s/app.ini", dir);
	mkdir(inc, 0755);
	write_file(cf, "secret=1\n");
	snprintf(main_text, sizeof(main_text),
		 "[drover]\ncontrol_group = root\ninclude = conf.d/*.conf\ninclude = none/*.conf\n"
		 "[service web]\ncommand = /bin/true\nuser = root\nlisten = unix:%s/s.sock owner=root group=root\n"
		 "config_files = app.ini\nconfig_files = missing.ini\n", dir);
	write_file(path, main_text);
	snprintf(main_text, sizeof(main_text), "%s/a.conf", inc);
	write_file(main_text, "[service other]\ncommand = /bin/sleep 1\nuser = 0\ngroup = root\nrequires = web\n");
	c = conf_load(path, false, &errs);
	for (int i = 0; i < errs.n; i++)
		print_error("%s\n", errs.msg[i]);
	assert_non_null(c);
	st.conf_path = (char *)c->path;
	st.facts = c->facts;
	st.nfacts = c->nfacts;
	a = encode(&st, &alen);
	assert_int_equal(state_decode(a, alen, &back, err, sizeof(err)), 0);
	/* Nothing of it is on disk any more. */
	unlink(cf);
	unlink(main_text);
	unlink(path);
	rmdir(inc);
	rmdir(dir);
	r = state_conf(&back, err, sizeof(err));
	if (!r)
		fail_msg("%s", err);
	assert_int_equal(r->nsvcs, 2);
	assert_string_equal(r->path, c->path);
	assert_int_equal(r->control_gid, c->control_gid);
	for (int i = 0; i < c->nsvcs; i++) {
		struct svc_conf *x = c->svcs[i], *y = r->svcs[i];

		assert_string_equal(x->name, y->name);
		assert_string_equal(x->file, y->file);
		assert_int_equal(conf_compare(x, y), CHANGE_NONE);
		assert_int_equal(x->uid, y->uid);
		assert_int_equal(x->gid, y->gid);
		assert_int_equal(x->ngroups, y->ngroups);
		assert_memory_equal(x->groups, y->groups, sizeof(gid_t) * (size_t)x->ngroups);
		assert_int_equal(x->nconfig_files, y->nconfig_files);
		for (int j = 0; j < x->nconfig_files; j++) {
			assert_true(x->config_files[j].hash == y->config_files[j].hash);
			assert_int_equal(x->config_files[j].err, y->config_files[j].err);
		}
		for (int j = 0; j < x->nlisten; j++)
			assert_string_equal(x->listen[j].key, y->listen[j].key);
	}
	assert_int_equal(conf_find(c, "web")->nconfig_files, 2);
	assert_int_not_equal(conf_find(c, "web")->config_files[1].err, 0);
	/* And the facts it keeps are the same, to carry it on again. */
	st.conf_path = (char *)r->path;
	st.facts = r->facts;
	st.nfacts = r->nfacts;
	b = encode(&st, &blen);
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, alen);
	/* A fact the configuration needs and the state lacks: an error. */
	back.nfacts = 1;
	assert_null(state_conf(&back, err, sizeof(err)));
	if (!strstr(err, "the configuration in force does not record the group \"root\""))
		fail_msg("%s", err);
	back.nfacts = st.nfacts;
	state_free(&back);
	conf_free(c);
	conf_free(r);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_truncated_and_trailing),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_fields_and_records),
		cmocka_unit_test(test_pool_and_nul),
		cmocka_unit_test(test_configuration_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
