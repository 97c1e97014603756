/* fuzz_state.c - libFuzzer target: the upgrade state decoder (state.h).
 *
 * A new droverd image reads the state its predecessor wrote; a state it does
 * not understand must be refused, never half-applied, never crash it.
 * state_decode() is pure (a buffer in, a struct state out); what it accepts
 * must encode again, and that encoding must decode to the same encoding
 * (the format has one spelling of each state). A state that carries the
 * configuration in force is then replayed from its facts alone
 * (state_conf: no file, no user database is asked) and checked against it
 * (state_check), as the takeover and `droverd -t` do.
 *
 * state_verify_fds() and state_apply() are not called: they look at and
 * adopt descriptors and processes named in the input, which a fuzzer must
 * not do. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conf.h"
#include "state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* encode(st), which must decode, and encode again to the same bytes. */
static void check_round_trip(const struct state *st)
{
	struct buf a = { .max = STATE_MAX }, b = { .max = STATE_MAX };
	struct state again;
	char err[256];

	if (state_encode(st, &a) < 0)
		abort();
	if (state_decode(a.data, a.len, &again, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz_state: its own encoding refused: %s\n", err);
		abort();
	}
	if (state_encode(&again, &b) < 0 || a.len != b.len || memcmp(a.data, b.data, a.len) != 0) {
		fprintf(stderr, "fuzz_state: encode(decode(encode(x))) differs from encode(x)\n");
		abort();
	}
	state_free(&again);
	buf_free(&a);
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct state st;
	struct conf *c;
	char err[256];

	err[0] = '\0';
	if (state_decode(data, size, &st, err, sizeof(err)) < 0) {
		if (!err[0])
			abort();	/* a refusal always says why */
		state_free(&st);	/* harmless: already freed */
		return 0;
	}
	check_round_trip(&st);
	if (st.conf_path && (c = state_conf(&st, err, sizeof(err)))) {
		(void)state_check(&st, c, err, sizeof(err));
		conf_free(c);
	}
	state_free(&st);
	return 0;
}
