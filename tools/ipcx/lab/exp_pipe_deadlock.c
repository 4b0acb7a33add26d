/*
 * pipe-deadlock: two processes, two pipes, each writes its whole message
 * and then reads the other's.  Fine while a message fits in the pipe; a
 * deadlock once it does not -- detected by a timeout and reported, never
 * hung.  The ipcx duplex channel completes the same exchange.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <ipcx/pipe.h>

#include "lab.h"

#define TIMEOUT_MS 1000

struct naive {
	int wfd, rfd;
	size_t len;
};

/* Blocking write of everything, then blocking read of everything. */
static int naive_side(void *arg)
{
	struct naive *n = arg;
	char *buf = malloc(n->len);
	if (!buf)
		return 2;
	memset(buf, 'x', n->len);
	if (ipcx_pipe_set_nonblock(n->wfd, 0) || ipcx_pipe_set_nonblock(n->rfd, 0))
		return 3;
	size_t done = 0;
	while (done < n->len) {
		ssize_t w = write(n->wfd, buf + done, n->len - done);
		if (w < 0)
			return 4;
		done += (size_t)w;
	}
	for (done = 0; done < n->len;) {
		ssize_t r = read(n->rfd, buf, n->len - done);
		if (r <= 0)
			return 5;
		done += (size_t)r;
	}
	free(buf);
	return 0;
}

struct duplex {
	ipcx_pipe *p;
	size_t len;
};

static int duplex_side(void *arg)
{
	struct duplex *d = arg;
	char *buf = malloc(d->len);
	if (!buf)
		return 2;
	memset(buf, 'y', d->len);
	ipcx_wait w = { .mode = IPCX_WAIT_BLOCK, .timeout_ns = (int64_t)TIMEOUT_MS * 1000000 };
	if (ipcx_pipe_send(d->p, buf, d->len, &w))
		return 3;
	if (ipcx_pipe_recv(d->p, buf, d->len, &w) != (ssize_t)d->len)
		return 4;
	free(buf);
	return 0;
}

/* Run the naive exchange of len bytes each way.  Returns 1 completed, 0
 * deadlocked (both children killed and reaped), < 0 error.  *in_pipe gets
 * the bytes sitting in the two pipes when the deadlock was declared. */
static int naive_exchange(size_t len, double *ms, long *in_pipe)
{
	int ab[2], ba[2], rc;
	if ((rc = ipcx_pipe_create(ab, 0)))
		return rc;
	if ((rc = ipcx_pipe_create(ba, 0))) {
		close(ab[0]);
		close(ab[1]);
		return rc;
	}
	struct naive a = { ab[1], ba[0], len }, b = { ba[1], ab[0], len };
	double t0 = lab_now_ns();
	int pa = lab_spawn(naive_side, &a);
	int pb = lab_spawn(naive_side, &b);
	/* Wait for both within the one timeout. */
	int sa = pa > 0 ? lab_wait(pa, TIMEOUT_MS) : pa;
	double left = TIMEOUT_MS - (lab_now_ns() - t0) / 1e6;
	/* What is stuck in the pipes (the parent holds every end, so they
	 * outlive a killed child). */
	int qa = 0, qb = 0;
	ioctl(ab[0], FIONREAD, &qa);
	ioctl(ba[0], FIONREAD, &qb);
	/* lab_wait kills a child still running at its timeout and reaps it. */
	int sb = pb > 0 ? lab_wait(pb, left > 1 ? (int)left : 1) : pb;
	*ms = (lab_now_ns() - t0) / 1e6;
	*in_pipe = (long)qa + qb;
	for (int i = 0; i < 2; i++) {
		close(ab[i]);
		close(ba[i]);
	}
	if (sa == 0 && sb == 0)
		return 1;
	return sa == -ETIMEDOUT || sb == -ETIMEDOUT ? 0 : -EIO;
}

static int duplex_exchange(size_t len, double *ms)
{
	ipcx_pipe *a, *b;
	int rc = ipcx_pipe_duplex(&a, &b, NULL);
	if (rc)
		return rc;
	struct duplex da = { a, len }, db = { b, len };
	double t0 = lab_now_ns();
	int pa = lab_spawn(duplex_side, &da);
	int pb = lab_spawn(duplex_side, &db);
	ipcx_pipe_close(a);
	ipcx_pipe_close(b);
	int sa = pa > 0 ? lab_wait(pa, 5 * TIMEOUT_MS) : pa;
	int sb = pb > 0 ? lab_wait(pb, 5 * TIMEOUT_MS) : pb;
	*ms = (lab_now_ns() - t0) / 1e6;
	return sa == 0 && sb == 0 ? 1 : 0;
}

static int run(struct lab_out *out)
{
	int p[2];
	int rc = ipcx_pipe_create(p, 0);
	if (rc)
		return rc;
	size_t cap = (size_t)fcntl(p[1], F_GETPIPE_SZ);
	close(p[0]);
	close(p[1]);
	lab_fact_num(out, "pipe capacity", (double)cap, "bytes");

	size_t sizes[] = { cap / 2, cap, cap + 4096, 1u << 20 };
	int small_ok = 1, big_dead = 0;
	size_t first_dead = 0;
	for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		double ms = 0;
		long in_pipe = 0;
		int r = naive_exchange(sizes[i], &ms, &in_pipe);
		if (r < 0)
			return r;
		char key[96];
		snprintf(key, sizeof key, "write-then-read, %zu bytes each way", sizes[i]);
		if (r == 1) {
			lab_fact(out, key, "completed in %.2f ms", ms);
			if (sizes[i] > cap)
				big_dead = -1; /* would contradict the explanation */
		} else {
			lab_fact(out, key,
				 "DEADLOCK: neither side finished within %d ms (%ld bytes stuck in the "
				 "two pipes); both killed and reaped",
				 TIMEOUT_MS, in_pipe);
			if (sizes[i] <= cap)
				small_ok = 0;
			else if (big_dead >= 0)
				big_dead = 1;
			if (!first_dead)
				first_dead = sizes[i];
		}
	}
	double ms = 0;
	int ok = duplex_exchange(1u << 20, &ms);
	if (ok)
		lab_fact(out, "ipcx duplex channel, 1048576 bytes each way",
			 "completed in %.2f ms (sends drain the other pipe while they wait)", ms);
	else
		lab_fact(out, "ipcx duplex channel, 1048576 bytes each way", "FAILED");
	if (!ok)
		return -EIO;
	if (small_ok && big_dead == 1)
		lab_verdict(out, LAB_HOLDS_WITH_CORRECTIONS,
			    "write-then-read over two pipes works only while each message fits in "
			    "the pipe (%zu bytes here); from %zu bytes both writers block forever. A "
			    "poll-driven exchange that reads while it writes (ipcx_pipe_duplex) "
			    "completes at any size",
			    cap, first_dead);
	else
		lab_verdict(out, LAB_INCONCLUSIVE,
			    "the exchange did not behave as the capacity predicts (small ok: %d, "
			    "large deadlocked: %d)",
			    small_ok, big_dead);
	return 0;
}

static const struct lab_experiment exp_pipe_deadlock = {
	.name = "pipe-deadlock",
	.claim = "Two processes can talk both ways over a pair of pipes: each writes its "
		 "message, then reads the other's.",
	.order = 43,
	.run = run,
};
LAB_EXPERIMENT(exp_pipe_deadlock)
