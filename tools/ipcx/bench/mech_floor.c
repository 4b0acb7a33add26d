/*
 * floor: the hardware's limit, as a reference row.
 *
 * Ping-pong: one shared slot per direction; the sender copies the message
 * into it and bumps a sequence word on its own cache line; the receiver
 * spins on that word, copies the message out and checks it.  Stream: the
 * smallest possible spinning SPSC ring of fixed-size slots, each side
 * publishing its index once per 16 KiB of slots (and the producer at the
 * STOP message): a ring that publishes every message makes the consumer
 * chase the producer line by line and runs at a fraction of this rate
 * (docs/ring.md, Tuning).  No waiting policy, no liveness, no validation of
 * the shared indices: what is left is the cost of the cache lines and the
 * copies, which no transport can beat by much.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"

#define LINE 128
#define FLOOR_RING_BYTES (8u << 20)
#define FLOOR_BATCH_BYTES (16u << 10)

struct dir {
	_Alignas(LINE) _Atomic uint64_t tail; /* messages published */
	_Alignas(LINE) _Atomic uint64_t head; /* messages consumed */
	_Alignas(LINE) char pad;
};

struct floor_state {
	struct dir *dir[2]; /* A->B, B->A */
	uint8_t *slots[2];
	size_t slot, nslots, map_bytes;
	uint64_t batch; /* slots per publication */
	uint8_t *priv;  /* process-private message buffer */
	uint64_t cached_head, cached_tail;
	uint64_t tx_pos, rx_pos; /* next slot to write / read (published in batches) */
};

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static int floor_setup(const struct bench_case *c, void **state, char *why, size_t whylen)
{
	(void)why;
	(void)whylen;
	struct floor_state *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->slot = (c->size + LINE - 1) / LINE * LINE;
	s->nslots = c->mode == BENCH_PINGPONG ? 1 : FLOOR_RING_BYTES / s->slot;
	if (s->nslots < 4 && c->mode == BENCH_STREAM)
		s->nslots = 4;
	s->batch = c->mode == BENCH_STREAM ? FLOOR_BATCH_BYTES / s->slot : 1;
	if (s->batch < 1)
		s->batch = 1;
	if (s->batch > s->nslots / 4)
		s->batch = s->nslots / 4 ? s->nslots / 4 : 1;
	size_t per = sizeof(struct dir) + s->slot * s->nslots;
	s->map_bytes = 2 * per;
	uint8_t *m = mmap(NULL, s->map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			  -1, 0);
	if (m == MAP_FAILED) {
		free(s);
		return -errno;
	}
	for (int d = 0; d < 2; d++) {
		s->dir[d] = (struct dir *)(m + d * per);
		s->slots[d] = m + d * per + sizeof(struct dir);
	}
	*state = s;
	return 0;
}

static int floor_attach(void *state, struct bench_proc *p)
{
	struct floor_state *s = state;
	s->priv = malloc(p->c->size);
	if (!s->priv)
		return -ENOMEM;
	/* Touch everything once: page faults are not the subject. */
	memset(s->priv, 0, p->c->size);
	return 0;
}

static int floor_send(void *state, struct bench_proc *p, uint64_t seq)
{
	struct floor_state *s = state;
	int d = p->role == BENCH_A ? 0 : 1;
	struct dir *dr = s->dir[d];
	uint64_t t = s->tx_pos;
	if (t - s->cached_head >= s->nslots) {
		/* Full: publish what is pending, then wait for room. */
		if (t % s->batch)
			atomic_store_explicit(&dr->tail, t, memory_order_release);
		while (t - s->cached_head >= s->nslots) {
			s->cached_head = atomic_load_explicit(&dr->head, memory_order_acquire);
			relax();
		}
	}
	bench_stamp(s->priv, p->c->size, p->index, seq);
	memcpy(s->slots[d] + (t % s->nslots) * s->slot, s->priv, p->c->size);
	s->tx_pos = ++t;
	if (t % s->batch == 0 || seq == BENCH_SEQ_STOP)
		atomic_store_explicit(&dr->tail, t, memory_order_release);
	return 0;
}

static int floor_recv(void *state, struct bench_proc *p, unsigned *producer, uint64_t *seq)
{
	struct floor_state *s = state;
	int d = p->role == BENCH_A ? 1 : 0;
	struct dir *dr = s->dir[d];
	uint64_t h = s->rx_pos;
	if (s->cached_tail == h) {
		/* Empty: give the producer all the room, then wait. */
		if (h % s->batch)
			atomic_store_explicit(&dr->head, h, memory_order_release);
		while (s->cached_tail == h) {
			s->cached_tail = atomic_load_explicit(&dr->tail, memory_order_acquire);
			relax();
		}
	}
	memcpy(s->priv, s->slots[d] + (h % s->nslots) * s->slot, p->c->size);
	s->rx_pos = ++h;
	if (h % s->batch == 0)
		atomic_store_explicit(&dr->head, h, memory_order_release);
	return bench_check(s->priv, p->c->size, producer, seq);
}

static void floor_detach(void *state, struct bench_proc *p)
{
	(void)p;
	free(((struct floor_state *)state)->priv);
}

static void floor_teardown(void *state)
{
	struct floor_state *s = state;
	munmap(s->dir[0], s->map_bytes);
	free(s);
}

static const struct bench_mech floor_mech = {
	.name = "floor",
	.desc = "reference: raw shared cache lines, spinning, copy in and out",
	.order = 0,
	.modes = BENCH_PINGPONG | BENCH_STREAM,
	.in_default = 1,
	.setup = floor_setup,
	.attach = floor_attach,
	.send = floor_send,
	.recv = floor_recv,
	.detach = floor_detach,
	.teardown = floor_teardown,
	.note = "the hardware floor: a spinning slot ring with no waiting policy, liveness or "
		"validation; sender copies in, receiver copies out",
};
BENCH_MECH(floor_mech)
