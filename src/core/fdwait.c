/* Waiting on file descriptors under an ipcx_wait policy (sock and pipe modules). */
#include <poll.h>

#include "internal.h"

int ipcx__poll_until(struct pollfd *pfd, unsigned n, uint64_t deadline)
{
	for (;;) {
		struct timespec ts, *tp = NULL;
		if (deadline != UINT64_MAX) {
			uint64_t now = ipcx__now_ns();
			uint64_t left = deadline > now ? deadline - now : 0;
			ts.tv_sec = (time_t)(left / 1000000000u);
			ts.tv_nsec = (long)(left % 1000000000u);
			tp = &ts;
		}
		int r = ppoll(pfd, n, tp, NULL);
		if (r >= 0)
			return r;
		if (errno != EINTR)
			return -errno;
		/* A signal handler ran: resume with what is left of the deadline. */
	}
}

int ipcx__fd_wait_op(const ipcx_wait *w, uint64_t deadline, int fd, short events,
		     ipcx__fd_op_fn op, void *arg)
{
	if (ipcx__unlikely(w->mode > IPCX_WAIT_NONBLOCK))
		return -EINVAL;
	int r = op(arg);
	if (r != -EAGAIN || w->mode == IPCX_WAIT_NONBLOCK)
		return r;
	uint64_t start = ipcx__now_ns();
	uint64_t spin_end = w->mode == IPCX_WAIT_SPIN	    ? UINT64_MAX
			    : w->mode == IPCX_WAIT_ADAPTIVE ? start + w->spin_ns
							    : start;
	for (;;) {
		uint64_t now = ipcx__now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		if (now < spin_end) {
			ipcx__cpu_relax();
		} else {
			struct pollfd p = { .fd = fd, .events = events };
			r = ipcx__poll_until(&p, 1, deadline);
			if (r < 0)
				return r;
			if (r == 0)
				return -ETIMEDOUT;
			/* POLLERR / POLLHUP: the operation reports the error itself. */
		}
		r = op(arg);
		if (r != -EAGAIN)
			return r;
	}
}
