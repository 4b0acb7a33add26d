/*
 * ipcx-queue: the MPMC queue, 1:1 and N:M streams and ping-pong.  One
 * anonymous queue per direction, created by the parent (no role) and opened
 * by fd in each child with its role; adaptive waits.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ipcx/queue.h>

#include "bench.h"

/* Keep each queue's slots within about 8 MiB whatever the message size. */
#define QUEUE_BYTES (8u << 20)

struct queue_state {
	ipcx_queue *create[2]; /* A->B, B->A: the parent's handles */
	ipcx_queue *tx, *rx;
	uint8_t *priv;
};

static int queue_setup(const struct bench_case *c, void **state, char *why, size_t whylen)
{
	(void)why;
	(void)whylen;
	struct queue_state *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	/* Streaming: as many slots as fit 8 MiB, like the floor's and the ring's
	 * rows (a small queue keeps producer and consumer on the same lines).
	 * Ping-pong: 1024, so the few lines in use stay cached. */
	uint32_t cap = c->mode == BENCH_STREAM ? 65536 : 1024;
	while (cap > 4 && (uint64_t)cap * (c->size + 64) > QUEUE_BYTES)
		cap /= 2;
	ipcx_queue_opts o = {.capacity = cap,
			     .msg_max = (uint32_t)c->size,
			     .region = {.flags = IPCX_REGION_PREFAULT}};
	int dirs = c->mode == BENCH_PINGPONG ? 2 : 1, rc = 0;
	for (int d = 0; d < dirs && !rc; d++)
		rc = ipcx_queue_create(&s->create[d], NULL, 0, &o);
	if (rc) {
		ipcx_queue_close(s->create[0]);
		free(s);
		return rc;
	}
	*state = s;
	return 0;
}

static int queue_attach(void *state, struct bench_proc *p)
{
	struct queue_state *s = state;
	int rc = 0;
	if (p->c->mode == BENCH_PINGPONG) {
		int out = p->role == BENCH_A ? 0 : 1;
		rc = ipcx_queue_open_fd(&s->tx, ipcx_queue_fd(s->create[out]), IPCX_QUEUE_PRODUCER,
					NULL);
		if (!rc)
			rc = ipcx_queue_open_fd(&s->rx, ipcx_queue_fd(s->create[1 - out]),
						IPCX_QUEUE_CONSUMER, NULL);
	} else if (p->role == BENCH_A) {
		rc = ipcx_queue_open_fd(&s->tx, ipcx_queue_fd(s->create[0]), IPCX_QUEUE_PRODUCER,
					NULL);
	} else {
		rc = ipcx_queue_open_fd(&s->rx, ipcx_queue_fd(s->create[0]), IPCX_QUEUE_CONSUMER,
					NULL);
	}
	if (!rc && !(s->priv = calloc(1, p->c->size)))
		rc = -ENOMEM;
	return rc;
}

static int queue_send(void *state, struct bench_proc *p, uint64_t seq)
{
	struct queue_state *s = state;
	bench_stamp(s->priv, p->c->size, p->index, seq);
	return ipcx_queue_send(s->tx, s->priv, p->c->size, NULL);
}

static int queue_recv(void *state, struct bench_proc *p, unsigned *producer, uint64_t *seq)
{
	struct queue_state *s = state;
	ssize_t n = ipcx_queue_recv(s->rx, s->priv, p->c->size, NULL);
	if (n < 0)
		return (int)n;
	return (size_t)n == p->c->size ? bench_check(s->priv, (size_t)n, producer, seq) : -EBADMSG;
}

static void queue_detach(void *state, struct bench_proc *p)
{
	(void)p;
	struct queue_state *s = state;
	ipcx_queue_close(s->tx);
	ipcx_queue_close(s->rx);
	free(s->priv);
}

static void queue_teardown(void *state)
{
	struct queue_state *s = state;
	ipcx_queue_close(s->create[0]);
	ipcx_queue_close(s->create[1]);
	free(s);
}

static const struct bench_mech queue_mech = {
    .name = "ipcx-queue",
    .desc = "ipcx MPMC queue (per-slot sequence numbers), adaptive waits; N:M streams",
    .order = 20,
    .modes = BENCH_PINGPONG | BENCH_STREAM,
    .max_producers = 8,
    .max_consumers = 8,
    .max_size = 1u << 20,
    .in_default = 1,
    .setup = queue_setup,
    .attach = queue_attach,
    .send = queue_send,
    .recv = queue_recv,
    .detach = queue_detach,
    .teardown = queue_teardown,
};
BENCH_MECH(queue_mech)
