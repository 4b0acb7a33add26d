/*
 * ipcx-sock: messages over an ipcx socket pair (SOCK_SEQPACKET, one copy in
 * and one out, as the raw uds-seqpacket row).
 * ipcx-sock-fd: the payload lives in anonymous regions passed by reference.
 * Each side keeps a pool of regions and stamps the message in place; the
 * first send of each region passes its fd (the receiver maps it once), every
 * later one names it by id, offset and length: no fd, no mmap.  In stream
 * mode the receiver acknowledges each region so the sender reuses it only
 * after the check (flow control is part of the cost).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ipcx/region.h>
#include <ipcx/sock.h>

#include "bench.h"

#define POOL 4

struct sock_state {
	ipcx_sock *end[2];           /* end[0] for role A, end[1] for role B */
	ipcx_region *pool[2][POOL];  /* regions of each role (fd mechanism) */
	int inflight[POOL];          /* stream: region handed over, not yet acked */
	ipcx_sock *me;
	uint8_t *buf;
	int fd_mode;
};

static int sock_setup_common(const struct bench_case *c, void **state, char *why, size_t whylen,
			     int fd_mode)
{
	struct sock_state *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->fd_mode = fd_mode;
	int rc = ipcx_sock_pair(&s->end[0], &s->end[1], NULL);
	if (rc)
		goto fail;
	if (!fd_mode && c->size > ipcx_sock_max_msg(s->end[0])) {
		snprintf(why, whylen, "a SOCK_SEQPACKET message holds at most %zu bytes here",
			 ipcx_sock_max_msg(s->end[0]));
		ipcx_sock_close(s->end[0]);
		ipcx_sock_close(s->end[1]);
		free(s);
		return BENCH_SKIP;
	}
	for (int r = 0; fd_mode && r < 2 && !rc; r++)
		for (int i = 0; i < POOL && !rc; i++) {
			ipcx_region_opts o = { .flags = IPCX_REGION_PREFAULT };
			rc = ipcx_region_create_anon(&s->pool[r][i], IPCX_KIND_RAW, c->size, &o);
		}
	if (rc)
		goto fail;
	*state = s;
	return 0;
fail:
	for (int r = 0; r < 2; r++) {
		ipcx_sock_close(s->end[r]);
		for (int i = 0; i < POOL; i++)
			ipcx_region_close(s->pool[r][i]);
	}
	free(s);
	return rc;
}

static int setup_sock(const struct bench_case *c, void **state, char *why, size_t whylen)
{
	return sock_setup_common(c, state, why, whylen, 0);
}

static int setup_sock_fd(const struct bench_case *c, void **state, char *why, size_t whylen)
{
	return sock_setup_common(c, state, why, whylen, 1);
}

static int sock_attach(void *state, struct bench_proc *p)
{
	struct sock_state *s = state;
	int me = p->role == BENCH_A ? 0 : 1;
	s->me = s->end[me];
	ipcx_sock_close(s->end[1 - me]); /* our copy: the peer sees EOF if we die */
	s->end[1 - me] = NULL;
	for (int i = 0; s->fd_mode && i < POOL; i++) {
		ipcx_region_close(s->pool[1 - me][i]);
		s->pool[1 - me][i] = NULL;
	}
	if (!s->fd_mode && !(s->buf = calloc(1, p->c->size)))
		return -ENOMEM;
	return 0;
}

static int sock_send(void *state, struct bench_proc *p, uint64_t seq)
{
	struct sock_state *s = state;
	size_t n = p->c->size;
	if (!s->fd_mode) {
		bench_stamp(s->buf, n, p->index, seq);
		return ipcx_sock_send(s->me, s->buf, n, NULL);
	}
	unsigned i = (unsigned)(seq % POOL);
	if (p->c->mode == BENCH_STREAM) {
		/* Wait until the receiver is done with this region. */
		while (s->inflight[i]) {
			uint8_t ack;
			ssize_t r = ipcx_sock_recv(s->me, &ack, 1, NULL);
			if (r != 1 || ack >= POOL)
				return r < 0 ? (int)r : -EBADMSG;
			s->inflight[ack] = 0;
		}
		s->inflight[i] = 1;
	}
	ipcx_region *r = s->pool[p->role == BENCH_A ? 0 : 1][i];
	bench_stamp(ipcx_region_data(r), n, p->index, seq); /* in place: no copy */
	uint8_t idx = (uint8_t)i;
	return ipcx_sock_send_region_ref(s->me, r, 0, n, &idx, 1, NULL);
}

static int sock_recv(void *state, struct bench_proc *p, unsigned *producer, uint64_t *seq)
{
	struct sock_state *s = state;
	size_t n = p->c->size;
	if (!s->fd_mode) {
		ssize_t r = ipcx_sock_recv(s->me, s->buf, n, NULL);
		if (r < 0)
			return (int)r;
		return (size_t)r == n ? bench_check(s->buf, n, producer, seq) : -EBADMSG;
	}
	ipcx_sock_view v;
	uint8_t idx;
	ssize_t got = ipcx_sock_recv_region_ref(s->me, &v, IPCX_KIND_RAW, &idx, 1, NULL);
	if (got < 0)
		return (int)got;
	/* The view stays mapped by the socket: nothing to unmap. */
	int rc = got == 1 && v.len == n ? bench_check(v.data, n, producer, seq) : -EBADMSG;
	/* The ack frees the region for reuse.  None for STOP; and a producer
	 * that sent STOP may exit while the last messages are still being
	 * checked here, so an ack it no longer reads (-EPIPE) is no error. */
	if (!rc && p->c->mode == BENCH_STREAM && *seq != BENCH_SEQ_STOP) {
		rc = ipcx_sock_send(s->me, &idx, 1, NULL);
		if (rc == -EPIPE)
			rc = 0;
	}
	return rc;
}

static void sock_detach(void *state, struct bench_proc *p)
{
	(void)p;
	struct sock_state *s = state;
	free(s->buf);
}

static void sock_teardown(void *state)
{
	struct sock_state *s = state;
	for (int r = 0; r < 2; r++) {
		ipcx_sock_close(s->end[r]);
		for (int i = 0; i < POOL; i++)
			ipcx_region_close(s->pool[r][i]);
	}
	free(s);
}

static const struct bench_mech mech_ipcx_sock = {
	.name = "ipcx-sock",
	.desc = "ipcx socket pair: SOCK_SEQPACKET messages with the ipcx header",
	.order = 40,
	.modes = BENCH_PINGPONG | BENCH_STREAM,
	.in_default = 1,
	.setup = setup_sock,
	.attach = sock_attach,
	.send = sock_send,
	.recv = sock_recv,
	.detach = sock_detach,
	.teardown = sock_teardown,
};
BENCH_MECH(mech_ipcx_sock)

static const struct bench_mech mech_ipcx_sock_fd = {
	.name = "ipcx-sock-fd",
	.desc = "ipcx socket: payload in a sealed memfd region passed by fd (no copy)",
	.order = 41,
	.modes = BENCH_PINGPONG | BENCH_STREAM,
	.in_default = 1,
	.setup = setup_sock_fd,
	.attach = sock_attach,
	.send = sock_send,
	.recv = sock_recv,
	.detach = sock_detach,
	.teardown = sock_teardown,
	.in_place_from = 1,
	.note = "stamped in place in a pool of 4 regions per side, passed by reference: "
		"each region's fd travels once and is mapped once, then messages carry its id "
		"(stream: plus a 1-byte ack)",
};
BENCH_MECH(mech_ipcx_sock_fd)
