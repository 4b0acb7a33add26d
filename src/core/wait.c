/* The wait engine: one loop for every blocking call of the library. */
#include <sched.h>

#include "internal.h"

/* How often the spin phase looks at the clock (~20 ns a read).  Liveness,
 * a system call, is polled only every IPCX__LIVENESS_SLICE_NS. */
#define SPINS_PER_CLOCK 64u
#define SPIN_YIELD_AFTER_NS 4000u

static int sleep_once(const ipcx__waitspec *ws, uint64_t deadline, bool has_deadline)
{
	uint32_t s = atomic_load_explicit(ws->seq, memory_order_acquire);
	atomic_fetch_add_explicit(ws->sleepers, 1, memory_order_seq_cst);
	/* Announce ourselves before re-checking (pairs with ipcx__wake). */
	ipcx__sleeper_fence();
	int r = ws->ready(ws->ready_arg);
	if (r == 0) {
		int64_t slice = (int64_t)IPCX__LIVENESS_SLICE_NS;
		if (has_deadline) {
			uint64_t now = ipcx__now_ns();
			if (now >= deadline) {
				atomic_fetch_sub_explicit(ws->sleepers, 1, memory_order_relaxed);
				return -ETIMEDOUT;
			}
			if (deadline - now < (uint64_t)slice)
				slice = (int64_t)(deadline - now);
		}
		/* Returns on a wake, a changed seq, the slice, or a signal; each is
		 * followed by a re-check, so a signal never ends the wait. */
		(void)ipcx__futex_wait(ws->seq, s, slice);
	}
	atomic_fetch_sub_explicit(ws->sleepers, 1, memory_order_relaxed);
	return r;
}

int ipcx__wait(const ipcx_wait *w, const ipcx__waitspec *ws)
{
	if (ipcx__unlikely(w->mode > IPCX_WAIT_NONBLOCK))
		return -EINVAL;
	int r = ws->ready(ws->ready_arg);
	if (r != 0)
		return r;
	if (w->mode == IPCX_WAIT_NONBLOCK)
		return -EAGAIN;

	uint64_t start = ipcx__now_ns();
	bool has_deadline = w->timeout_ns >= 0;
	uint64_t deadline = has_deadline ? start + (uint64_t)w->timeout_ns : UINT64_MAX;
	uint64_t spin_end = w->mode == IPCX_WAIT_ADAPTIVE ? start + w->spin_ns
			    : w->mode == IPCX_WAIT_SPIN	   ? UINT64_MAX
							   : start;
	uint64_t last_check = start;

	/* Spin phase (none for IPCX_WAIT_BLOCK). */
	while (spin_end > start) {
		for (uint32_t i = 0; i < SPINS_PER_CLOCK; i++) {
			ipcx__cpu_relax();
			r = ws->ready(ws->ready_arg);
			if (r != 0)
				return r;
		}
		uint64_t now = ipcx__now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		if (ws->check && now - last_check >= IPCX__LIVENESS_SLICE_NS) {
			last_check = now;
			r = ws->check(ws->check_arg);
			if (r < 0)
				return r;
		}
		if (now >= spin_end)
			break;
		/* Past a few microseconds of spinning, give the CPU to anyone
		 * else runnable on it -- perhaps the very peer we wait for, when
		 * processes outnumber CPUs.  With nothing else runnable the yield
		 * returns at once. */
		if (now - start >= SPIN_YIELD_AFTER_NS)
			sched_yield();
	}

	/* Sleep phase. */
	for (;;) {
		r = sleep_once(ws, deadline, has_deadline);
		if (r != 0)
			return r;
		r = ws->ready(ws->ready_arg);
		if (r != 0)
			return r;
		if (has_deadline && ipcx__now_ns() >= deadline)
			return -ETIMEDOUT;
		if (ws->check) {
			r = ws->check(ws->check_arg);
			if (r < 0)
				return r;
		}
	}
}
