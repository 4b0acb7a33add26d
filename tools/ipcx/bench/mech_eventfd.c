/*
 * eventfd: one eventfd per direction; a message is the 8-byte counter.
 *
 * Too small for a stamp (BENCH_STAMP_MIN is 24), so the counter itself
 * carries the sequence number: the sender adds seq + 1 (a zero add would not
 * wake the reader) and the reader's read, which returns and clears the
 * counter, must find exactly seq + 1 of one sender.  Because the counter
 * sums what is written before it is read, only ping-pong -- one message in
 * flight per direction -- keeps messages apart: there is no stream mode.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/eventfd.h>

#include "fdmech.h"

static int efd_open(const struct bench_case *c, int d, int fd[2], char *why, size_t whylen)
{
	(void)c, (void)d, (void)why, (void)whylen;
	fd[0] = fd[1] = eventfd(0, EFD_CLOEXEC);
	return fd[0] < 0 ? -errno : 0;
}

static int efd_setup(const struct bench_case *c, void **state, char *why, size_t whylen)
{
	if (c->size != sizeof(uint64_t))
		return fdmech_skip(why, whylen,
				   "an eventfd message is its 8-byte counter, not %zu bytes",
				   c->size);
	return fdmech_setup(c, state, 0, efd_open, why, whylen);
}

static int efd_send(void *state, struct bench_proc *p, uint64_t seq)
{
	uint64_t v = seq + 1;
	return bench_write_full(fdmech_wfd(state, p), &v, sizeof v);
}

static int efd_recv(void *state, struct bench_proc *p, unsigned *producer, uint64_t *seq)
{
	uint64_t v;
	int rc = bench_read_full(fdmech_rfd(state, p), &v, sizeof v);
	if (rc)
		return rc;
	/* A counter that summed two writes shows as a wrong sequence number;
	 * 0 or UINT64_MAX (eventfd's limit) cannot be seq + 1 of a message. */
	if (v == 0 || v == UINT64_MAX)
		return -EBADMSG;
	*producer = 0;
	*seq = v - 1;
	return 0;
}

static const struct bench_mech mech_eventfd = {
	.name = "eventfd",
	.desc = "eventfd per direction, 8-byte counter (ping-pong)",
	.order = 106,
	.modes = BENCH_PINGPONG,
	.max_size = sizeof(uint64_t),
	.in_default = 1,
	.setup = efd_setup,
	.send = efd_send,
	.recv = efd_recv,
	FDMECH_LIFECYCLE,
	.note = "8-byte messages; the counter carries seq + 1, checked by the reader",
};
BENCH_MECH(mech_eventfd)
