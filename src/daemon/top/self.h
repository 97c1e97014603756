/* self.h - this droverd's own binary, arguments and environment.
 *
 * What both ways of replacing droverd (upgrade.c in place, handover.c
 * beside it) need to start the next binary the way this one was started. */
#ifndef DROVER_SELF_H
#define DROVER_SELF_H

/* Remember how droverd was started (at the very beginning of main). */
void self_init(int argc, char **argv);
/* How droverd was started: its argv as given, and the same with argv[0]
 * the binary's path as /proc/self/exe names it (for a new process). */
char **self_argv(void);
char **self_exec_argv(void);
/* That path; "" when the kernel would not say. */
const char *self_exe(void);
/* droverd's environment without what an earlier upgrade left, plus extra
 * (malloc'd array: free it, not its strings); NULL without memory. */
char **self_environment(const char *const *extra, int nextra);

#endif
