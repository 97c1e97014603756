/* value.c - see value.h. */
#include "value.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Digits only, no sign, no space: strtoull accepts too much. */
static bool parse_digits(const char **sp, uint64_t *out)
{
	const char *s = *sp;
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return false;
	for (; isdigit((unsigned char)*s); s++) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*sp = s;
	*out = v;
	return true;
}

const char *value_duration(const char *s, int64_t *ms)
{
	static const struct { const char *unit; uint64_t ms; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
		{ "", 1000 },
	};
	const char *bad = "is not a duration (use 250ms, 10s, 5m, 2h or a number of seconds)";
	uint64_t v;

	if (!parse_digits(&s, &v))
		return bad;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s, units[i].unit) != 0)
			continue;
		if (v > (uint64_t)INT64_MAX / units[i].ms / 1000)
			return "is too long";
		*ms = (int64_t)(v * units[i].ms);
		return NULL;
	}
	return bad;
}

const char *value_size(const char *s, uint64_t *bytes)
{
	uint64_t v, mul = 1;

	if (!parse_digits(&s, &v))
		return "is not a size (use 512K, 10M, 1G or a number of bytes)";
	switch (*s) {
	case '\0': break;
	case 'K': case 'k': mul = 1ULL << 10; s++; break;
	case 'M': case 'm': mul = 1ULL << 20; s++; break;
	case 'G': case 'g': mul = 1ULL << 30; s++; break;
	default: s = "?";
	}
	if (*s)
		return "is not a size (use 512K, 10M, 1G or a number of bytes)";
	if (v > UINT64_MAX / mul)
		return "is too large";
	*bytes = v * mul;
	return NULL;
}

const char *value_bool(const char *s, bool *b)
{
	static const char *yes[] = { "yes", "true", "on", "1" };
	static const char *no[] = { "no", "false", "off", "0" };

	for (int i = 0; i < 4; i++) {
		if (strcmp(s, yes[i]) == 0)
			return *b = true, NULL;
		if (strcmp(s, no[i]) == 0)
			return *b = false, NULL;
	}
	return "is not a boolean (use yes/no, true/false, on/off or 1/0)";
}

const char *value_uint(const char *s, unsigned max, unsigned *out)
{
	uint64_t v;

	if (!parse_digits(&s, &v) || *s)
		return "is not a number";
	if (v > max)
		return "is too large";
	*out = (unsigned)v;
	return NULL;
}

const char *value_octal(const char *s, unsigned max, unsigned *out)
{
	unsigned v = 0;

	if (!*s || strlen(s) > 4)
		return "is not an octal mode (like 022 or 0660)";
	for (; *s; s++) {
		if (*s < '0' || *s > '7')
			return "is not an octal mode (like 022 or 0660)";
		v = v * 8 + (unsigned)(*s - '0');
	}
	if (v > max)
		return "is out of range";
	*out = v;
	return NULL;
}

const char *signal_name(int sig)
{
	static char num[16];
	const char *n = sig > 0 && sig < NSIG ? sigabbrev_np(sig) : NULL;

	if (n)
		return n;
	snprintf(num, sizeof(num), "%d", sig);
	return num;
}

const char *value_signal(const char *s, int *sig)
{
	const char *name = s;
	unsigned n;

	if (strncasecmp(name, "SIG", 3) == 0)
		name += 3;
	if (value_uint(s, NSIG - 1, &n) == NULL && n > 0) {
		*sig = (int)n;
		return NULL;
	}
	for (int i = 1; i < NSIG; i++) {
		const char *abbrev = sigabbrev_np(i);

		if (abbrev && strcasecmp(abbrev, name) == 0) {
			*sig = i;
			return NULL;
		}
	}
	return "is not a signal (use a name like TERM, HUP, USR1, or a number)";
}

static int cmp_short(const void *a, const void *b)
{
	return *(const short *)a - *(const short *)b;
}

static const char *parse_hhmm(const char **sp, short *out)
{
	const char *s = *sp;
	uint64_t h, m;

	if (!parse_digits(&s, &h) || s - *sp > 2 || *s++ != ':' ||
	    !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]))
		return "is not a time list (use HH:MM, or HH:MM,HH:MM,...)";
	m = (uint64_t)(s[0] - '0') * 10 + (uint64_t)(s[1] - '0');
	if (h > 23 || m > 59)
		return "has a time out of range (00:00 to 23:59)";
	*out = (short)(h * 60 + m);
	*sp = s + 2;
	return NULL;
}

const char *value_at(struct arena *a, const char *s, short **mins, int *n)
{
	int count = 1, k = 0;
	short *v;

	for (const char *p = s; *p; p++)
		count += *p == ',';
	v = arena_alloc(a, sizeof(*v) * (size_t)count);
	if (!v)
		return "cannot be stored: out of memory";
	for (;;) {
		const char *err;

		while (*s == ' ')
			s++;
		if ((err = parse_hhmm(&s, &v[k++])))
			return err;
		while (*s == ' ')
			s++;
		if (!*s)
			break;
		if (*s++ != ',')
			return "is not a time list (use HH:MM, or HH:MM,HH:MM,...)";
	}
	qsort(v, (size_t)k, sizeof(*v), cmp_short);
	*n = 0;
	for (int i = 0; i < k; i++)
		if (i == 0 || v[i] != v[i - 1])
			v[(*n)++] = v[i];
	*mins = v;
	return NULL;
}

/* One word of a command line, starting at *sp (not at a blank). Writes the
 * unquoted word into out, which has room for strlen of the whole line. */
static const char *split_word(const char **sp, char *out)
{
	const char *s = *sp;

	for (; *s && *s != ' ' && *s != '\t'; s++) {
		if (*s == '\\') {
			if (!*++s)
				return "ends with a lone backslash";
			*out++ = *s;
		} else if (*s == '\'') {
			const char *end = strchr(s + 1, '\'');

			if (!end)
				return "has an unterminated single quote";
			memcpy(out, s + 1, (size_t)(end - s - 1));
			out += end - s - 1;
			s = end;
		} else if (*s == '"') {
			/* POSIX: inside double quotes a backslash escapes only
			 * $ ` " \ ; before anything else it stays. */
			for (s++; *s && *s != '"'; s++) {
				if (*s == '\\' && s[1] && strchr("$`\"\\", s[1]))
					s++;
				*out++ = *s;
			}
			if (!*s)
				return "has an unterminated double quote";
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
	*sp = s;
	return NULL;
}

const char *value_split(struct arena *a, const char *s, char ***argvp, int *argcp)
{
	size_t len = strlen(s);
	int argc = 0, cap = 8;
	char **argv = arena_alloc(a, sizeof(char *) * (size_t)cap);
	char *word = arena_alloc(a, len + 1);

	if (!argv || !word)
		return "cannot be stored: out of memory";
	for (;;) {
		const char *err;

		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			break;
		if ((err = split_word(&s, word)))
			return err;
		if (argc + 2 > cap) {
			argv = arena_grow(a, argv, sizeof(char *) * (size_t)cap,
					  sizeof(char *) * (size_t)cap * 2);
			cap *= 2;
		}
		if (!argv || !(argv[argc++] = arena_strdup(a, word)))
			return "cannot be stored: out of memory";
	}
	if (argc == 0)
		return "is empty";
	argv[argc] = NULL;
	*argvp = argv;
	*argcp = argc;
	return NULL;
}

void duration_format(int64_t ms, char *out, int len)
{
	if (ms == 0)
		snprintf(out, (size_t)len, "0s");
	else if (ms % 3600000 == 0)
		snprintf(out, (size_t)len, "%lldh", (long long)(ms / 3600000));
	else if (ms % 60000 == 0)
		snprintf(out, (size_t)len, "%lldm", (long long)(ms / 60000));
	else if (ms % 1000 == 0)
		snprintf(out, (size_t)len, "%llds", (long long)(ms / 1000));
	else if (ms > 1000 && ms % 100 == 0)
		snprintf(out, (size_t)len, "%lld.%llds", (long long)(ms / 1000), (long long)(ms % 1000 / 100));
	else
		snprintf(out, (size_t)len, "%lldms", (long long)ms);
}
