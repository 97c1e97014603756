/* loop.c - see loop.h.
 *
 * Events are fetched in batches; a watch deleted while a batch is being
 * handled has its pending entries cleared, so no callback runs for an object
 * that was freed earlier in the batch. Timers due at the same time run in
 * the order they were armed relative to the heap, which nothing relies on. */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

enum { BATCH = 64 };

static int epfd = -1;
static struct epoll_event batch[BATCH];
static int batch_n, batch_i;
static struct timer **heap;
static unsigned heap_n, heap_cap;
static int64_t now;
static bool quit;
static void (*idle_fn)(void);

int64_t clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t loop_now(void)
{
	return now ? now : clock_ms();
}

int loop_init(void)
{
	epfd = epoll_create1(EPOLL_CLOEXEC);
	now = clock_ms();
	return epfd < 0 ? -1 : 0;
}

int loop_fd(void)
{
	return epfd;
}

void loop_set_idle(void (*fn)(void))
{
	idle_fn = fn;
}

int loop_add(struct watch *w, int fd, uint32_t events, watch_fn *fn)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	w->fd = fd;
	w->events = events;
	w->fn = fn;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -1;
	w->active = true;
	return 0;
}

int loop_mod(struct watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (!w->active || w->events == events)
		return 0;
	w->events = events;
	return epoll_ctl(epfd, EPOLL_CTL_MOD, w->fd, &ev);
}

void loop_del(struct watch *w)
{
	if (!w->active)
		return;
	epoll_ctl(epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->active = false;
	for (int i = batch_i; i < batch_n; i++)
		if (batch[i].data.ptr == w)
			batch[i].data.ptr = NULL;
}

/* Min-heap on `when`; idx is 1-based so 0 means "not armed". */
static void heap_swap(unsigned a, unsigned b)
{
	struct timer *t = heap[a];

	heap[a] = heap[b];
	heap[b] = t;
	heap[a]->idx = a + 1;
	heap[b]->idx = b + 1;
}

static void heap_up(unsigned i)
{
	while (i > 0 && heap[(i - 1) / 2]->when > heap[i]->when) {
		heap_swap(i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_down(unsigned i)
{
	for (;;) {
		unsigned l = 2 * i + 1, r = l + 1, m = i;

		if (l < heap_n && heap[l]->when < heap[m]->when)
			m = l;
		if (r < heap_n && heap[r]->when < heap[m]->when)
			m = r;
		if (m == i)
			return;
		heap_swap(i, m);
		i = m;
	}
}

void timer_cancel(struct timer *t)
{
	unsigned i;

	if (!t->idx)
		return;
	i = t->idx - 1;
	t->idx = 0;
	if (i != --heap_n) {
		heap[i] = heap[heap_n];
		heap[i]->idx = i + 1;
		heap_up(i);
		heap_down(heap[i]->idx - 1);
	}
}

void timer_at(struct timer *t, int64_t when, timer_fn *fn)
{
	timer_cancel(t);
	t->when = when;
	t->fn = fn;
	if (heap_n == heap_cap) {
		unsigned cap = heap_cap ? heap_cap * 2 : 64;
		struct timer **h = realloc(heap, sizeof(struct timer *) * cap);

		if (!h) {
			log_error("out of memory arming a timer; it will not fire");
			return;
		}
		heap = h;
		heap_cap = cap;
	}
	heap[heap_n] = t;
	t->idx = ++heap_n;
	heap_up(heap_n - 1);
}

void timer_after(struct timer *t, int64_t delay, timer_fn *fn)
{
	timer_at(t, loop_now() + delay, fn);
}

static void run_timers(void)
{
	/* Bounded: a timer re-armed for "now" waits for the next iteration. */
	unsigned budget = heap_n;

	while (heap_n && heap[0]->when <= now && budget--) {
		struct timer *t = heap[0];

		timer_cancel(t);
		t->fn(t);
	}
}

static int next_timeout(void)
{
	int64_t d;

	if (!heap_n)
		return -1;
	d = heap[0]->when - clock_ms();
	return d <= 0 ? 0 : d > 60000 ? 60000 : (int)d;
}

void loop_quit(void)
{
	quit = true;
}

void loop_run(void)
{
	quit = false;
	for (;;) {
		/* Settle what the last batch (or start-up) changed, then wait. */
		if (idle_fn)
			idle_fn();
		if (quit)
			break;
		batch_n = epoll_wait(epfd, batch, BATCH, next_timeout());
		now = clock_ms();
		if (batch_n < 0) {
			if (errno != EINTR)
				log_errno("epoll_wait");
			batch_n = 0;
		}
		for (batch_i = 0; batch_i < batch_n; batch_i++) {
			struct watch *w = batch[batch_i].data.ptr;

			if (w)
				w->fn(w, batch[batch_i].events);
		}
		batch_n = batch_i = 0;
		run_timers();
	}
}
