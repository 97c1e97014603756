/* conf_health.c - the `health =` grammar (SPEC 3a): exec:COMMAND,
 * tcp:HOST:PORT, http://HOST[:PORT]/PATH.
 *
 * exec:COMMAND is split exactly like `command` and, like `command`, is not
 * looked for on disk here: a program may be installed after the
 * configuration is read, and one that cannot run fails as a probe, with
 * the spawn's own reason. HOST is numeric (IPv4, [IPv6]) or "localhost",
 * as for `listen`: droverd never waits on DNS. A wildcard address cannot
 * be connected to and is refused. An http PATH is sent as written, so it
 * holds only the bytes a request line may carry. */
#include "conf_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "value.h"

static const char *host_ipv4(const char *host, struct health_conf *h)
{
	struct sockaddr_in *in = (struct sockaddr_in *)&h->addr;

	in->sin_family = AF_INET;
	h->addrlen = sizeof(*in);
	if (strcmp(host, "localhost") == 0)
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (strcmp(host, "*") == 0)
		in->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
		return "has a host that is not an IPv4 address, [IPv6 address] or localhost "
		       "(names are not looked up)";
	return in->sin_addr.s_addr == htonl(INADDR_ANY) ? "wildcard" : NULL;
}

static const char *host_ipv6(const char *host, struct health_conf *h)
{
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&h->addr;

	in6->sin6_family = AF_INET6;
	h->addrlen = sizeof(*in6);
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
		return "has a host that is not an IPv6 address";
	return IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr) ? "wildcard" : NULL;
}

static const char *set_port(const char *s, struct health_conf *h)
{
	unsigned port;

	if (value_uint(s, 65535, &port) || port == 0)
		return "has a bad port (use 1 to 65535)";
	if (h->addr.ss_family == AF_INET)
		((struct sockaddr_in *)&h->addr)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)&h->addr)->sin6_port = htons((uint16_t)port);
	return NULL;
}

/* "HOST:PORT" or "[ADDR]:PORT"; ":PORT" may be left out when dflt is not
 * NULL. */
static const char *host_port(const char *s, const char *dflt, struct health_conf *h)
{
	const char *end, *port, *err;
	bool v6 = s[0] == '[';
	char host[64];

	if (v6) {
		if (!(end = strchr(s, ']')))
			return "has a bad host ([IPv6 address] without its ']')";
		s++;
		port = end + 1;
	} else if ((end = strrchr(s, ':'))) {
		port = end;
	} else if (dflt) {
		end = port = s + strlen(s);
	} else {
		return "has no host or no port (use tcp:HOST:PORT, like tcp:127.0.0.1:8080)";
	}
	if (end == s || (size_t)(end - s) >= sizeof(host))
		return "has a bad host";
	memcpy(host, s, (size_t)(end - s));
	host[end - s] = '\0';
	memset(&h->addr, 0, sizeof(h->addr));
	if ((err = v6 ? host_ipv6(host, h) : host_ipv4(host, h)))
		return strcmp(err, "wildcard") == 0 ? "has a wildcard address, which cannot be "
			"connected to (name one, like 127.0.0.1 or [::1])" : err;
	if (*port == ':')
		return set_port(port + 1, h);
	if (!*port && dflt)
		return set_port(dflt, h);
	return *port ? "has a bad host" : "has no port (use HOST:PORT)";
}

static const char *parse_exec(struct parse *p, const char *cmd, struct health_conf *h)
{
	int argc;

	cmd += strspn(cmd, " \t");
	if (!*cmd)
		return "has no command after exec:";
	h->kind = HEALTH_EXEC;
	return value_split(&p->c->arena, cmd, &h->argv, &argc);
}

static const char *parse_tcp(const char *addr, struct health_conf *h)
{
	h->kind = HEALTH_TCP;
	return host_port(addr, NULL, h);
}

/* A request line's target: printable ASCII, no space, no fragment. */
static const char *check_path(const char *path)
{
	if (strlen(path) > HEALTH_PATH_MAX)
		return "has a path longer than 512 bytes";
	for (const char *c = path; *c; c++)
		if (*c <= ' ' || *c >= 0x7f || *c == '#')
			return "has a path with a byte a request line cannot carry "
			       "(a space, a control character, '#' or a non-ASCII byte)";
	return NULL;
}

/* "HOST[:PORT][/PATH]": port 80 and path "/" when left out. */
static const char *parse_http(struct parse *p, const char *url, struct health_conf *h)
{
	const char *slash = strchr(url, '/'), *err;
	size_t n = slash ? (size_t)(slash - url) : strlen(url);
	char authority[HEALTH_HOST_MAX];

	if (n == 0)
		return "has no host (use http://HOST:PORT/PATH)";
	if (n >= sizeof(authority))
		return "has a bad host";
	memcpy(authority, url, n);
	authority[n] = '\0';
	h->kind = HEALTH_HTTP;
	if ((err = host_port(authority, "80", h)))
		return err;
	if ((err = check_path(slash ? slash : "/")))
		return err;
	h->host = arena_strdup(&p->c->arena, authority);
	h->path = arena_strdup(&p->c->arena, slash ? slash : "/");
	return h->host && h->path ? NULL : "cannot be stored: out of memory";
}

const char *health_parse(struct parse *p, const char *text, struct health_conf *h)
{
	h->text = arena_strdup(&p->c->arena, text);
	if (strncmp(text, "exec:", 5) == 0)
		return parse_exec(p, text + 5, h);
	if (strncmp(text, "tcp:", 4) == 0)
		return parse_tcp(text + 4, h);
	if (strncmp(text, "http://", 7) == 0)
		return parse_http(p, text + 7, h);
	if (strncmp(text, "https://", 8) == 0)
		return "is https, which is not supported: droverd never parses more than a status line";
	return "is not a probe (use exec:COMMAND, tcp:HOST:PORT or http://HOST:PORT/PATH)";
}
