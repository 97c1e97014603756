/* fuzz_probe.c - libFuzzer target: an HTTP probe's status line
 * (probe_status_line in probe.h), as judge() in probe.c hands it over: at
 * most PROBE_LINE_MAX bytes from a server droverd does not trust.
 *
 * What the parser promises: it reads only the length it is given (the
 * input is copied to a buffer of exactly that size, so ASan sees any read
 * past it), and a line it accepts starts with "HTTP/1.", has a three-digit
 * code that it returns, and nothing but a space or the end after it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line;
	int code = -1;

	if (size > PROBE_LINE_MAX)
		return 0;	/* judge() never has more */
	if (!(line = malloc(size ? size : 1)))
		return 0;
	memcpy(line, data, size);
	if (probe_status_line(line, size, &code)) {
		if (size < 12 || memcmp(line, "HTTP/1.", 7) != 0 || code < 0 || code > 999 ||
		    (size > 12 && line[12] != ' '))
			abort();
	} else if (code != -1) {
		abort();	/* a refused line sets no code */
	}
	free(line);
	return 0;
}
