/* fuzz_notify.c - libFuzzer target: sd_notify datagrams (notify_parse in
 * notify.h), as read_one() in notify.c hands them over: at most 4096 bytes
 * in a buffer one byte larger (the parser writes a NUL at msg[len]).
 *
 * What the parser promises: all or nothing (a malformed datagram delivers no
 * line), and every line it delivers has a non-empty KEY without '=' or
 * newline and a VALUE without newline; the count it returns is the number of
 * lines delivered. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "notify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { DGRAM_MAX = 4096 };

static void check_line(const char *key, const char *value, void *arg)
{
	int *n = arg;

	if (!key[0] || strpbrk(key, "=\n") || strchr(value, '\n'))
		abort();
	(*n)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *msg;
	int delivered = 0, rc;

	if (size > DGRAM_MAX)
		return 0;	/* read_one() drops larger datagrams before parsing */
	if (!(msg = malloc(size + 1)))
		return 0;
	memcpy(msg, data, size);
	rc = notify_parse(msg, size, check_line, &delivered);
	if (rc < 0 ? delivered != 0 : rc != delivered)
		abort();
	free(msg);
	return 0;
}
