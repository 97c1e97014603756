/* inetd_hello.c - the per-connection handler of bench/serve.py's accept
 * benchmark, run the same way by droverd (mode = accept) and by xinetd
 * (wait = no): the connection is standard input and output.
 *
 * Reads the request up to its blank line (at most 8 KB, or until the client
 * stops sending), writes one fixed HTTP/1.0 response and exits, which closes
 * the connection. Nothing is written to standard error, nothing is
 * allocated: the handler costs the same under both masters, so what differs
 * between them is the master's own work per connection. */
#define _GNU_SOURCE
#include <string.h>
#include <unistd.h>

int main(void)
{
	static const char resp[] = "HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n";
	char buf[8192];
	size_t len = 0;

	while (len < sizeof(buf)) {
		ssize_t n = read(0, buf + len, sizeof(buf) - len);

		if (n <= 0)
			break;
		len += (size_t)n;
		if (memmem(buf, len, "\r\n\r\n", 4))
			break;
	}
	return write(1, resp, sizeof(resp) - 1) == (ssize_t)(sizeof(resp) - 1) ? 0 : 1;
}
