/* listen_addr.c - the `listen = [FDNAME=]ADDRESS [OPTION ...]` grammar.
 *
 * Addresses are numeric (plus "localhost" and "*"): droverd never waits on
 * DNS. The result carries a canonical key of address and options; a reload
 * keeps a listener's open socket exactly when the key is unchanged. */
#include "conf_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "value.h"

static const char *parse_port(const char *s, struct sockaddr_storage *ss, int family)
{
	unsigned port;

	if (value_uint(s, 65535, &port) || port == 0)
		return "has a bad port (use 1 to 65535)";
	if (family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
	return NULL;
}

/* "HOST:PORT" for IPv4, "PORT" alone for every address. */
static const char *parse_inet(const char *s, struct listen_conf *l)
{
	struct sockaddr_in *in = (struct sockaddr_in *)&l->addr;
	const char *colon = strrchr(s, ':');
	char host[64];

	if (!colon) {		/* all addresses: IPv6 socket that takes IPv4 too */
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&l->addr;

		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_any;
		l->family = AF_INET6;
		l->dualstack = true;
		l->addrlen = sizeof(*in6);
		return parse_port(s, &l->addr, AF_INET6);
	}
	if ((size_t)(colon - s) >= sizeof(host))
		return "has a bad host";
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	in->sin_family = AF_INET;
	l->family = AF_INET;
	l->addrlen = sizeof(*in);
	if (strcmp(host, "*") == 0)
		in->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (strcmp(host, "localhost") == 0)
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
		return "has a host that is not an IPv4 address (names are not looked up; "
		       "use tcp6:[ADDR]:PORT for IPv6)";
	return parse_port(colon + 1, &l->addr, AF_INET);
}

/* "[ADDR]:PORT" */
static const char *parse_inet6(const char *s, struct listen_conf *l)
{
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&l->addr;
	const char *close = strchr(s, ']');
	char host[64];

	if (s[0] != '[' || !close || close[1] != ':' || (size_t)(close - s) > sizeof(host))
		return "is not [ADDRESS]:PORT";
	memcpy(host, s + 1, (size_t)(close - s - 1));
	host[close - s - 1] = '\0';
	in6->sin6_family = AF_INET6;
	l->family = AF_INET6;
	l->addrlen = sizeof(*in6);
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
		return "has a host that is not an IPv6 address";
	return parse_port(close + 2, &l->addr, AF_INET6);
}

static const char *parse_unix(const char *s, struct listen_conf *l)
{
	struct sockaddr_un *un = (struct sockaddr_un *)&l->addr;
	size_t n = strlen(s);

	un->sun_family = AF_UNIX;
	l->family = AF_UNIX;
	if (s[0] == '@') {	/* abstract: leading NUL, no terminator */
		if (n < 2 || n > sizeof(un->sun_path))
			return "has a bad abstract name (1 to 107 characters after @)";
		memcpy(un->sun_path + 1, s + 1, n - 1);
		l->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
		return NULL;
	}
	if (s[0] != '/')
		return "is not an absolute path or @name";
	if (n >= sizeof(un->sun_path))
		return "has a path longer than 107 bytes";
	memcpy(un->sun_path, s, n);
	l->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return NULL;
}

static const char *parse_address(const char *a, struct listen_conf *l)
{
	static const struct {
		const char *prefix;
		int type;
		const char *(*parse)(const char *, struct listen_conf *);
	} kinds[] = {
		{ "tcp:", SOCK_STREAM, parse_inet }, { "tcp6:", SOCK_STREAM, parse_inet6 },
		{ "udp:", SOCK_DGRAM, parse_inet }, { "udp6:", SOCK_DGRAM, parse_inet6 },
		{ "unix:", SOCK_STREAM, parse_unix },
	};

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t n = strlen(kinds[i].prefix);

		if (strncmp(a, kinds[i].prefix, n) == 0) {
			l->socktype = kinds[i].type;
			return kinds[i].parse(a + n, l);
		}
	}
	return "is not an address (use tcp:HOST:PORT, tcp:PORT, tcp6:[ADDR]:PORT, "
	       "udp:HOST:PORT, udp6:[ADDR]:PORT, unix:/PATH or unix:@NAME)";
}

static const char *parse_option(struct parse *p, const char *o, struct listen_conf *l)
{
	unsigned n;

	if (strncmp(o, "backlog=", 8) == 0) {
		if (value_uint(o + 8, 1 << 20, &n) || n == 0)
			return "has a bad backlog (a number from 1)";
		l->backlog = (int)n;
	} else if (strcmp(o, "reuseport") == 0) {
		l->reuseport = true;
	} else if (strcmp(o, "freebind") == 0) {
		l->freebind = true;
	} else if (l->family != AF_UNIX && (!strncmp(o, "mode=", 5) || !strncmp(o, "owner=", 6) ||
					    !strncmp(o, "group=", 6))) {
		return "has mode=, owner= or group=, which are only for unix:/PATH";
	} else if (strncmp(o, "mode=", 5) == 0) {
		if (value_octal(o + 5, 0777, &n))
			return "has a bad mode (octal, like 0660)";
		l->has_mode = true;
		l->mode = (mode_t)n;
	} else if (strncmp(o, "owner=", 6) == 0) {
		gid_t gid;

		if (!conf_sys_user(p, o + 6, &l->owner, &gid))
			return "has an owner that is not a user on this system";
		l->has_owner = true;
	} else if (strncmp(o, "group=", 6) == 0) {
		if (!conf_sys_group(p, o + 6, &l->group))
			return "has a group that is not a group on this system";
		l->has_group = true;
	} else {
		snprintf(p->msg, sizeof(p->msg), "has an unknown option \"%.100s\" (use backlog=N, "
			 "reuseport, freebind, mode=, owner=, group=)", o);
		return p->msg;
	}
	return NULL;
}

static bool fdname_valid(const char *s, size_t n)
{
	if (n == 0 || n > 255)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isgraph((unsigned char)s[i]) || s[i] == ':')
			return false;
	return true;
}

/* The address in one spelling: "tcp:127.0.0.1:80", "tcp:80" (every
 * address, IPv4 and IPv6), "udp6:[::1]:53", "unix:/run/x.sock",
 * "unix:@name". */
static int canonical_address(const struct listen_conf *l, char *out, size_t len)
{
	const char *proto = l->socktype == SOCK_STREAM ? "tcp" : "udp";
	char host[INET6_ADDRSTRLEN];

	if (l->family == AF_UNIX) {
		const struct sockaddr_un *un = (const struct sockaddr_un *)&l->addr;

		if (un->sun_path[0])
			return snprintf(out, len, "unix:%s", un->sun_path);
		return snprintf(out, len, "unix:@%.*s", (int)(l->addrlen - offsetof(struct sockaddr_un, sun_path) - 1),
				un->sun_path + 1);
	}
	if (l->dualstack)
		return snprintf(out, len, "%s:%u", proto,
				ntohs(((const struct sockaddr_in6 *)&l->addr)->sin6_port));
	if (l->family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&l->addr;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		return snprintf(out, len, "%s:%s:%u", proto, host, ntohs(in->sin_port));
	}
	inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&l->addr)->sin6_addr, host, sizeof(host));
	return snprintf(out, len, "%s6:[%s]:%u", proto, host,
			ntohs(((const struct sockaddr_in6 *)&l->addr)->sin6_port));
}

static void make_key(struct arena *a, struct listen_conf *l)
{
	char key[512];
	int n = canonical_address(l, key, sizeof(key));

	if (l->backlog)
		n += snprintf(key + n, sizeof(key) - (size_t)n, " backlog=%d", l->backlog);
	if (l->reuseport)
		n += snprintf(key + n, sizeof(key) - (size_t)n, " reuseport");
	if (l->freebind)
		n += snprintf(key + n, sizeof(key) - (size_t)n, " freebind");
	if (l->has_mode)
		n += snprintf(key + n, sizeof(key) - (size_t)n, " mode=%04o", (unsigned)l->mode);
	if (l->has_owner)
		n += snprintf(key + n, sizeof(key) - (size_t)n, " owner=%u", (unsigned)l->owner);
	if (l->has_group)
		snprintf(key + n, sizeof(key) - (size_t)n, " group=%u", (unsigned)l->group);
	l->key = arena_strdup(a, key);
}

const char *listen_parse(struct parse *p, const char *text, struct listen_conf *l)
{
	struct arena *a = &p->c->arena;
	char **word;
	int nword;
	const char *err, *addr, *eq, *colon;

	if ((err = value_split(a, text, &word, &nword)))
		return err;
	addr = word[0];
	eq = strchr(addr, '=');
	colon = strchr(addr, ':');
	if (eq && (!colon || eq < colon)) {
		if (!fdname_valid(addr, (size_t)(eq - addr)))
			return "has a bad FDNAME (1 to 255 printable characters, no ':')";
		l->fdname = arena_strndup(a, addr, (size_t)(eq - addr));
		addr = eq + 1;
	}
	l->text = arena_strdup(a, addr);
	if ((err = parse_address(addr, l)))
		return err;
	for (int i = 1; i < nword; i++)
		if ((err = parse_option(p, word[i], l)))
			return err;
	make_key(a, l);
	return NULL;
}

bool listen_conf_same_address(const struct listen_conf *a, const struct listen_conf *b)
{
	return a->family == b->family && a->socktype == b->socktype && a->addrlen == b->addrlen &&
	       memcmp(&a->addr, &b->addr, a->addrlen) == 0;
}

bool listen_conf_interchangeable(const struct listen_conf *a, const struct listen_conf *b)
{
	return listen_conf_same_address(a, b) && a->dualstack == b->dualstack && a->reuseport == b->reuseport &&
	       a->freebind == b->freebind && a->has_mode == b->has_mode && a->mode == b->mode &&
	       a->has_owner == b->has_owner && a->owner == b->owner && a->has_group == b->has_group &&
	       a->group == b->group;
}
