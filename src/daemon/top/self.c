/* self.c - see self.h. */
#include "self.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

extern char **environ;

static char **saved_argv;
static char exe_path[PATH_MAX];

void self_init(int argc, char **argv)
{
	ssize_t n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1);
	const char *deleted = " (deleted)";

	(void)argc;
	saved_argv = argv;
	if (n < 0) {
		exe_path[0] = '\0';
		return;
	}
	exe_path[n] = '\0';
	/* Replaced on disk already: the path is what counts. */
	if ((size_t)n > strlen(deleted) && strcmp(exe_path + n - strlen(deleted), deleted) == 0)
		exe_path[n - strlen(deleted)] = '\0';
}

char **self_argv(void)
{
	return saved_argv;
}

char **self_exec_argv(void)
{
	saved_argv[0] = exe_path;	/* what is executed is the path, now */
	return saved_argv;
}

const char *self_exe(void)
{
	return exe_path;
}

/* The variables an upgrade passes to the next image, which a later one
 * must not inherit. */
static bool upgrade_variable(const char *entry)
{
	static const char *const names[] = { "DROVER_STATE_FD=", "DROVER_OLD_EXE_FD=", "DROVER_UPGRADE_ERROR=",
					     "DROVER_CHECK_STATE_FD=", NULL };

	for (int i = 0; names[i]; i++)
		if (strncmp(entry, names[i], strlen(names[i])) == 0)
			return true;
	return false;
}

char **self_environment(const char *const *extra, int nextra)
{
	int n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	if (!(env = calloc((size_t)n + (size_t)nextra + 1, sizeof(char *))))
		return NULL;
	for (int i = 0; i < n; i++)
		if (!upgrade_variable(environ[i]))
			env[k++] = environ[i];
	for (int i = 0; i < nextra; i++)
		env[k++] = (char *)extra[i];
	env[k] = NULL;
	return env;
}
