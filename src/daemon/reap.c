/* reap.c - see reap.h. */
#include "reap.h"

#include <errno.h>
#include <sys/wait.h>

#include "log.h"
#include "notify.h"
#include "output.h"
#include "proc.h"

void reap_children(void)
{
	pid_t pid;
	int status;

	/* A service may send READY=1 and exit at once: read its datagrams
	 * while it is still known by pid. */
	notify_drain();
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct proc *p = proc_find(pid);

		if (!p) {
			log_debug("reaped pid %d (left behind by a service)", (int)pid);
			continue;
		}
		p->exited = true;
		output_drain(p);
		svc_proc_exited(p, status);
		proc_leader_exited(p);
	}
	if (pid < 0 && errno != ECHILD)
		log_errno("waitpid");
	proc_sweep();
}
