/* loop.h - droverd's event loop: epoll for descriptors, a heap for timers.
 *
 * Everything droverd does happens in a callback from here; nothing blocks.
 * Time is CLOCK_MONOTONIC milliseconds, read once per iteration
 * (loop_now()). A watch or timer is embedded in the structure that owns it;
 * removing one (loop_del, timer_cancel) is always safe, even from inside
 * another callback of the same iteration. */
#ifndef DROVER_LOOP_H
#define DROVER_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct watch;
typedef void watch_fn(struct watch *w, uint32_t events);

struct watch {
	int fd;
	uint32_t events;
	watch_fn *fn;
	bool active;
};

struct timer;
typedef void timer_fn(struct timer *t);

struct timer {
	int64_t when;		/* monotonic ms */
	timer_fn *fn;
	unsigned idx;		/* heap position + 1; 0 when not armed */
};

int loop_init(void);
int loop_add(struct watch *w, int fd, uint32_t events, watch_fn *fn);
int loop_mod(struct watch *w, uint32_t events);
void loop_del(struct watch *w);
void loop_run(void);		/* until loop_quit() */
void loop_quit(void);
int64_t loop_now(void);		/* cached for this iteration */
int64_t clock_ms(void);		/* fresh reading */
/* Called once after every batch of events and timers. */
void loop_set_idle(void (*fn)(void));

void timer_at(struct timer *t, int64_t when, timer_fn *fn);
void timer_after(struct timer *t, int64_t delay, timer_fn *fn);
void timer_cancel(struct timer *t);
static inline bool timer_armed(const struct timer *t) { return t->idx != 0; }
/* The epoll descriptor, for the upgrade hand-over. */
int loop_fd(void);

#endif
