/* fuzz_state.c - libFuzzer target: the upgrade state decoder (state.h).
 *
 * A new droverd image reads the state its predecessor wrote; a state it does
 * not understand must be refused, never half-applied, never crash it. Today
 * the decoder reads from a descriptor, so each input is written into one
 * memfd (made once) and read back by the two entry points that have no side
 * effects: state_read_globals() (what the takeover reads first) and
 * state_check() (what `droverd -t` runs: every record parsed and its service
 * looked up in a configuration, here a fixed one loaded once with the
 * services the seeds name: web, worker, job, tick).
 *
 * state_apply() is not called: it adopts descriptors and processes named in
 * the input (fcntl, pidfds, epoll), which a fuzzer must not do. When the
 * decoder becomes a pure function over a buffer (state_decode), call that
 * here instead of the memfd and both entry points. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf.h"
#include "state.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char conf_text[] =
	"[service web]\nmode = prefork\ncommand = /bin/cat\nlisten = tcp:127.0.0.1:18080\nprocs = 2\n"
	"[service worker]\ncommand = /bin/sleep 1000\n"
	"[service job]\nmode = oneshot\ncommand = /bin/true\n"
	"[service tick]\nmode = timer\nevery = 1h\ncommand = /bin/true\n";

static struct conf *conf;
static int memfd = -1;

/* The configuration comes from a memfd too: no file is written anywhere. */
static struct conf *load_conf(void)
{
	struct conf_errors errs = { 0 };
	int fd = memfd_create("fuzz-state-conf", MFD_CLOEXEC);
	char path[64];
	struct conf *c;

	if (fd < 0 || write(fd, conf_text, sizeof(conf_text) - 1) != (ssize_t)(sizeof(conf_text) - 1))
		return NULL;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	c = conf_load(path, false, &errs);
	for (int i = 0; i < errs.n; i++)
		fprintf(stderr, "fuzz_state: %s\n", errs.msg[i]);
	conf_errors_free(&errs);
	close(fd);
	return c;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	memfd = memfd_create("fuzz-state", MFD_CLOEXEC);
	if (memfd < 0 || !(conf = load_conf())) {
		fprintf(stderr, "fuzz_state: cannot set up (memfd or configuration)\n");
		exit(1);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct state_globals g;
	char err[256];

	if (ftruncate(memfd, 0) < 0 || (size && pwrite(memfd, data, size, 0) != (ssize_t)size))
		abort();
	/* Zeroed: state_read_globals() leaves control_path and sdnotify as
	 * they were when the record lacks them (the takeover passes them
	 * uninitialized); see tests/fuzz/README.md. */
	memset(&g, 0, sizeof(g));
	err[0] = '\0';
	if (state_read_globals(memfd, &g, err, sizeof(err)) == 0) {
		if (!memchr(g.control_path, '\0', sizeof(g.control_path)) ||
		    !memchr(g.sdnotify, '\0', sizeof(g.sdnotify)))
			abort();
	} else if (!err[0]) {
		abort();
	}
	err[0] = '\0';
	if (state_check(memfd, conf, err, sizeof(err)) < 0 && !err[0])
		abort();
	return 0;
}
