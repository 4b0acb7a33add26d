/*
 * ipcx-ring-*: the SPSC ring under each wait policy, and its zero-copy API.
 * One anonymous ring per direction, created by the parent and opened by fd
 * in each child.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ipcx/ring.h>

#include "bench.h"

struct ring_state {
	ipcx_ring *create[2]; /* the parent's handles (no role) */
	ipcx_ring *tx, *rx;   /* this process's ends */
	uint8_t *priv;
	uint32_t wait_mode;
	int zerocopy;
};

static int ring_setup_mode(const struct bench_case *c, void **state, uint32_t mode, int zc)
{
	struct ring_state *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->wait_mode = mode;
	s->zerocopy = zc;
	/* Streaming: 8 MiB, like the floor's ring: a full 1 MiB ring streamed
	 * 64-byte messages at well under half the rate (measured), producer and
	 * consumer trading its lines too often.  Ping-pong: 64 KiB, so the few
	 * lines in use stay cached and mapped by the TLB (an 8 MiB ring walks
	 * 2048 pages and measured 3x the latency).  Always room for 4 messages. */
	size_t cap = 4 * (c->size + 64);
	size_t floor_cap = c->mode == BENCH_STREAM ? (8u << 20) : (64u << 10);
	ipcx_ring_opts o = { .capacity = cap < floor_cap ? floor_cap : cap,
			     .region_flags = IPCX_REGION_PREFAULT };
	int rc = 0;
	for (int d = 0; d < 2 && !rc; d++)
		rc = ipcx_ring_create_anon(&s->create[d], &o, IPCX_RING_NOROLE);
	if (rc) {
		ipcx_ring_close(s->create[0]);
		free(s);
		return rc;
	}
	*state = s;
	return 0;
}

static int ring_attach(void *state, struct bench_proc *p)
{
	struct ring_state *s = state;
	ipcx_wait w = IPCX_WAIT_INIT(s->wait_mode);
	int out = p->role == BENCH_A ? 0 : 1;
	int rc = ipcx_ring_open_fd(&s->tx, ipcx_ring_fd(s->create[out]), IPCX_RING_PRODUCER, &w);
	if (!rc)
		rc = ipcx_ring_open_fd(&s->rx, ipcx_ring_fd(s->create[1 - out]), IPCX_RING_CONSUMER,
				       &w);
	if (!rc && !(s->priv = malloc(p->c->size)))
		rc = -ENOMEM;
	if (!rc)
		memset(s->priv, 0, p->c->size);
	return rc;
}

/* Streaming sends every message with IPCX_RING_MORE, as a streaming
 * producer should: the ring publishes each 16 KiB; the STOP message, sent
 * without the flag, publishes whatever is pending. */
static unsigned send_flags(const struct bench_proc *p, uint64_t seq)
{
	return p->c->mode == BENCH_STREAM && seq != BENCH_SEQ_STOP ? IPCX_RING_MORE : 0;
}

static int ring_send(void *state, struct bench_proc *p, uint64_t seq)
{
	struct ring_state *s = state;
	size_t n = p->c->size;
	unsigned flags = send_flags(p, seq);
	if (s->zerocopy) {
		void *dst;
		int rc = ipcx_ring_reserve(s->tx, n, &dst, NULL);
		if (rc)
			return rc;
		bench_stamp(dst, n, p->index, seq); /* in place: no copy */
		return ipcx_ring_commit(s->tx, n, flags);
	}
	bench_stamp(s->priv, n, p->index, seq);
	return ipcx_ring_send(s->tx, s->priv, n, flags, NULL);
}

static int ring_recv(void *state, struct bench_proc *p, unsigned *producer, uint64_t *seq)
{
	struct ring_state *s = state;
	if (s->zerocopy) {
		const void *src;
		size_t len;
		int rc = ipcx_ring_peek(s->rx, &src, &len, NULL);
		if (rc)
			return rc;
		rc = len == p->c->size ? bench_check(src, len, producer, seq) : -EBADMSG;
		ipcx_ring_release(s->rx);
		return rc;
	}
	ssize_t n = ipcx_ring_recv(s->rx, s->priv, p->c->size, NULL);
	if (n < 0)
		return (int)n;
	return (size_t)n == p->c->size ? bench_check(s->priv, (size_t)n, producer, seq) : -EBADMSG;
}

static void ring_detach(void *state, struct bench_proc *p)
{
	(void)p;
	struct ring_state *s = state;
	ipcx_ring_close(s->tx);
	ipcx_ring_close(s->rx);
	free(s->priv);
}

static void ring_teardown(void *state)
{
	struct ring_state *s = state;
	ipcx_ring_close(s->create[0]);
	ipcx_ring_close(s->create[1]);
	free(s);
}

#define RING_SETUP(fn, mode, zc)                                                             \
	static int fn(const struct bench_case *c, void **state, char *why, size_t whylen)   \
	{                                                                                    \
		(void)why;                                                                   \
		(void)whylen;                                                                \
		return ring_setup_mode(c, state, mode, zc);                                  \
	}
RING_SETUP(setup_spin, IPCX_WAIT_SPIN, 0)
RING_SETUP(setup_adaptive, IPCX_WAIT_ADAPTIVE, 0)
RING_SETUP(setup_block, IPCX_WAIT_BLOCK, 0)
RING_SETUP(setup_zerocopy, IPCX_WAIT_ADAPTIVE, 1)

#define RING_MECH(var, nm, ord, setupfn, text, nt, inplace)                                 \
	static const struct bench_mech var = {                                               \
		.name = nm, .desc = text, .order = ord,                                      \
		.modes = BENCH_PINGPONG | BENCH_STREAM, .in_default = 1,                     \
		.setup = setupfn, .attach = ring_attach, .send = ring_send,                  \
		.recv = ring_recv, .detach = ring_detach, .teardown = ring_teardown,         \
		.note = nt, .in_place_from = inplace,                                        \
	};                                                                                   \
	BENCH_MECH(var)

RING_MECH(ring_spin, "ipcx-ring-spin", 10, setup_spin, "ipcx SPSC ring, spinning waits", NULL, 0)
RING_MECH(ring_adaptive, "ipcx-ring-adaptive", 11, setup_adaptive,
	  "ipcx SPSC ring, spin 50 us then futex", NULL, 0)
RING_MECH(ring_block, "ipcx-ring-block", 12, setup_block,
	  "ipcx SPSC ring, futex sleep at once", NULL, 0)
RING_MECH(ring_zerocopy, "ipcx-ring-zerocopy", 13, setup_zerocopy,
	  "ipcx SPSC ring, reserve/commit and peek/release (adaptive)",
	  "the sequence number and end markers are written and checked in place in the ring: "
	  "no payload copy by the transport or the bench", 1)

/* Said once under the table, for every ring row. */
