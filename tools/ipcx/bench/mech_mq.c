/*
 * ipcx-mq and ipcx-mq-persist-*: the priority mailbox, in memory and with
 * each log sync mode.  One named mailbox per direction, created by the
 * parent, opened by name in each child.  Messages up to 1 KiB are copied:
 * ping-pong with send/recv; a stream, as a streaming producer and consumer
 * should, in batches of up to 16 KiB or 256 messages (send_batch /
 * recv_batch; a lone consumer only: one of several must not take another's
 * STOP), except in ipcx-mq-single, which streams one call per message.
 * Larger messages are loaned, stamped in place and committed, and received
 * with take/check/release (no copy).  Many producers and consumers can
 * share a mailbox (N:1, 1:N streams).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <ipcx/mq.h>

#include "bench.h"

#define SMALL 1024u
#define BATCH_MAX 256u
#define BATCH_BYTES (16u << 10)
#define TMPFS_MAGIC_ 0x01021994
#define RAMFS_MAGIC_ 0x858458f6

struct mq_state {
	char name[2][64];
	char log[2][4200];
	ipcx_mq *create[2]; /* the parent's handles */
	ipcx_mq *tx, *rx;   /* this process's */
	unsigned char *priv; /* copying path: this process's buffer(s) */
	int persistent;
	uint32_t sync;
	int single;          /* stream one message per call */
	int take;            /* stream: receive with take_batch/release_batch */
	ipcx_mq_msg taken[BATCH_MAX]; /* the consumer's taken batch (next..count) */
	/* A stream's batch (this process's): messages held back (producer),
	 * or received and not yet handed out (consumer: next..count). */
	ipcx_mq_vec vec[BATCH_MAX];
	unsigned count, next, batch;
};

/* A directory on a real file system for the logs, or NULL. */
static const char *log_dir(void)
{
	static const char *const dirs[] = { "/var/tmp", "." };
	const char *env = getenv("IPCX_BENCH_LOG_DIR");
	struct statfs sf;
	if (env && statfs(env, &sf) == 0)
		return env;
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
		if (statfs(dirs[i], &sf) == 0 && sf.f_type != TMPFS_MAGIC_ &&
		    sf.f_type != RAMFS_MAGIC_ && access(dirs[i], W_OK) == 0)
			return dirs[i];
	return NULL;
}

static void mq_teardown(void *state)
{
	struct mq_state *s = state;
	for (int d = 0; d < 2; d++) {
		ipcx_mq_close(s->create[d]);
		if (s->name[d][0])
			ipcx_mq_unlink(s->name[d]);
		if (s->log[d][0])
			unlink(s->log[d]);
	}
	free(s);
}

static int mq_setup_mode(const struct bench_case *c, void **state, char *why, size_t whylen,
			 int persistent, uint32_t sync, int single, int take)
{
	static unsigned counter;
	struct mq_state *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->persistent = persistent;
	s->sync = sync;
	s->single = single;
	s->take = take;
	const char *dir = persistent ? log_dir() : NULL;
	if (persistent && !dir) {
		snprintf(why, whylen, "no real (non-tmpfs) file system for the log; "
				      "set IPCX_BENCH_LOG_DIR");
		free(s);
		return BENCH_SKIP;
	}
	/* Ping-pong: room for a few messages in flight.  A stream: deep, as a
	 * streaming user would make it (and as the rings get 8 MiB): with 64-byte
	 * messages a 1024-deep mailbox streamed at 0.6-0.7x the rate of a
	 * 16384-deep one (measured), producer and consumer trading the same
	 * slots' lines at close range instead of meeting in the shared cache.
	 * At most 64 MiB of buffers per mailbox; IPCX_BENCH_MQ_DEPTH sets the
	 * depth instead (to measure its effect). */
	size_t size = c->size ? c->size : 1;
	uint64_t depth = (64ull << 20) / size, most = c->mode == BENCH_STREAM ? 16384 : 256;
	depth = depth > most ? most : depth < 4 ? 4 : depth;
	const char *dv = getenv("IPCX_BENCH_MQ_DEPTH");
	if (dv && strtoull(dv, NULL, 10) >= 1 && strtoull(dv, NULL, 10) <= (1u << 20))
		depth = strtoull(dv, NULL, 10);
	int rc = 0;
	for (int d = 0; d < 2 && !rc; d++) {
		/* Ping-pong needs both directions; a stream only A->B. */
		if (d == 1 && c->mode == BENCH_STREAM)
			break;
		snprintf(s->name[d], sizeof s->name[d], "bench-mq-%d-%u-%d", (int)getpid(),
			 counter, d);
		ipcx_mq_opts o = { .max_msg = (uint32_t)size, .depth = (uint32_t)depth,
				   .sync = sync, .wait = IPCX_WAIT_INIT(IPCX_WAIT_ADAPTIVE) };
		if (persistent) {
			snprintf(s->log[d], sizeof s->log[d], "%s/ipcx-bench-mq-%d-%u-%d.log", dir,
				 (int)getpid(), counter, d);
			unlink(s->log[d]);
			o.log_path = s->log[d];
		}
		rc = ipcx_mq_create(&s->create[d], s->name[d], &o);
		if (rc)
			s->name[d][0] = 0;
	}
	counter++;
	if (rc) {
		snprintf(why, whylen, "cannot create the mailbox: %s", ipcx_strerror(rc));
		mq_teardown(s);
		return rc == -ENOMEM || rc == -ENOSPC ? BENCH_SKIP : rc;
	}
	*state = s;
	return 0;
}

static int mq_attach(void *state, struct bench_proc *p)
{
	struct mq_state *s = state;
	const struct bench_case *c = p->c;
	int out = p->role == BENCH_A ? 0 : 1;
	int rc = 0;
	if (c->mode == BENCH_PINGPONG || p->role == BENCH_A)
		rc = ipcx_mq_open(&s->tx, s->name[out], NULL);
	if (!rc && (c->mode == BENCH_PINGPONG || p->role == BENCH_B))
		rc = ipcx_mq_open(&s->rx, s->name[c->mode == BENCH_PINGPONG ? 1 - out : 0], NULL);
	s->batch = 1;
	if (c->mode == BENCH_STREAM && !s->single && c->size <= SMALL &&
	    (p->role == BENCH_A || c->consumers == 1)) {
		size_t b = BATCH_BYTES / (c->size ? c->size : 1);
		s->batch = b > BATCH_MAX ? BATCH_MAX : b < 1 ? 1 : (unsigned)b;
	}
	s->count = s->next = 0;
	/* A batch's buffers packed, each on its own cache lines. */
	size_t stride = s->batch > 1 ? (c->size + 63) / 64 * 64 : SMALL;
	if (!stride)
		stride = 64;
	if (!rc && !(s->priv = aligned_alloc(64, s->batch * stride)))
		rc = -ENOMEM;
	if (!rc)
		memset(s->priv, 0, s->batch * stride);
	for (unsigned k = 0; !rc && k < s->batch; k++)
		s->vec[k] = (ipcx_mq_vec){ .buf = s->priv + (size_t)k * stride, .cap = stride };
	return rc;
}

/* Send the held-back batch, all of it. */
static int mq_flush(void *state, struct bench_proc *p)
{
	(void)p;
	struct mq_state *s = state;
	for (unsigned k = 0; k < s->count;) {
		int n = ipcx_mq_send_batch(s->tx, s->vec + k, s->count - k, NULL);
		if (n < 0)
			return n;
		k += (unsigned)n;
	}
	s->count = 0;
	return 0;
}

static int mq_send(void *state, struct bench_proc *p, uint64_t seq)
{
	struct mq_state *s = state;
	size_t size = p->c->size;
	if (size <= SMALL && s->batch > 1) {
		ipcx_mq_vec *v = &s->vec[s->count++];
		bench_stamp(v->buf, size, p->index, seq);
		v->len = size;
		v->prio = 1;
		return s->count == s->batch || seq == BENCH_SEQ_STOP ? mq_flush(s, p) : 0;
	}
	if (size <= SMALL) {
		bench_stamp(s->priv, size, p->index, seq);
		return ipcx_mq_send(s->tx, s->priv, size, 1, NULL);
	}
	ipcx_mq_msg m;
	int rc = ipcx_mq_loan(s->tx, &m, size, 1, NULL);
	if (rc)
		return rc;
	bench_stamp(m.data, size, p->index, seq); /* in place: no copy */
	return ipcx_mq_commit(s->tx, &m);
}

static int mq_recv(void *state, struct bench_proc *p, unsigned *producer, uint64_t *seq)
{
	struct mq_state *s = state;
	size_t size = p->c->size;
	if (size <= SMALL && s->batch > 1 && s->take) {
		if (s->next == s->count) {
			/* The batch handed out is done with: release it, take the next. */
			int rc = s->count ? ipcx_mq_release_batch(s->rx, s->taken, s->count) : 0;
			s->count = s->next = 0;
			if (rc)
				return rc;
			int n = ipcx_mq_take_batch(s->rx, s->taken, s->batch, NULL);
			if (n < 0)
				return n;
			s->count = (unsigned)n;
		}
		const ipcx_mq_msg *m = &s->taken[s->next++];
		return m->len == size ? bench_check(m->data, size, producer, seq) : -EBADMSG;
	}
	if (size <= SMALL && s->batch > 1) {
		if (s->next == s->count) {
			int n = ipcx_mq_recv_batch(s->rx, s->vec, s->batch, NULL);
			if (n < 0)
				return n;
			s->count = (unsigned)n;
			s->next = 0;
		}
		const ipcx_mq_vec *v = &s->vec[s->next++];
		return v->len == size ? bench_check(v->buf, size, producer, seq) : -EBADMSG;
	}
	if (size <= SMALL) {
		int n = ipcx_mq_recv(s->rx, s->priv, SMALL, NULL, NULL);
		if (n < 0)
			return n;
		return (size_t)n == size ? bench_check(s->priv, (size_t)n, producer, seq)
					 : -EBADMSG;
	}
	ipcx_mq_msg m;
	int rc = ipcx_mq_take(s->rx, &m, NULL);
	if (rc)
		return rc;
	rc = m.len == size ? bench_check(m.data, m.len, producer, seq) : -EBADMSG;
	int rrc = ipcx_mq_release(s->rx, &m);
	return rc ? rc : rrc;
}

static void mq_detach(void *state, struct bench_proc *p)
{
	(void)p;
	struct mq_state *s = state;
	if (s->take && s->count)
		(void)ipcx_mq_release_batch(s->rx, s->taken, s->count);
	s->count = s->next = 0;
	ipcx_mq_close(s->tx);
	ipcx_mq_close(s->rx);
	s->tx = s->rx = NULL;
	free(s->priv);
	s->priv = NULL;
}

#define MQ_SETUP(fn, pers, sync, single, take)                                               \
	static int fn(const struct bench_case *c, void **state, char *why, size_t whylen)   \
	{                                                                                    \
		return mq_setup_mode(c, state, why, whylen, pers, sync, single, take);       \
	}
MQ_SETUP(setup_mem, 0, IPCX_MQ_SYNC_NONE, 0, 0)
MQ_SETUP(setup_take, 0, IPCX_MQ_SYNC_NONE, 0, 1)
MQ_SETUP(setup_single, 0, IPCX_MQ_SYNC_NONE, 1, 0)
MQ_SETUP(setup_none, 1, IPCX_MQ_SYNC_NONE, 0, 0)
MQ_SETUP(setup_batch, 1, IPCX_MQ_SYNC_BATCH, 0, 0)
MQ_SETUP(setup_always, 1, IPCX_MQ_SYNC_ALWAYS, 0, 0)

/* In memory, a loaned message is the receiver's buffer; with a log its
 * payload is also written to the log (a copy). */
#define MQ_MECH(var, nm, ord, setupfn, text, dflt, nt, inplace)                             \
	static const struct bench_mech var = {                                               \
		.name = nm, .desc = text, .order = ord,                                      \
		.modes = BENCH_PINGPONG | BENCH_STREAM, .max_producers = 8,                  \
		.max_consumers = 8, .in_default = dflt, .setup = setupfn,                    \
		.attach = mq_attach, .send = mq_send, .recv = mq_recv, .flush = mq_flush,    \
		.detach = mq_detach, .teardown = mq_teardown, .note = nt,                    \
		.in_place_from = inplace,                                                    \
	};                                                                                   \
	BENCH_MECH(var)

MQ_MECH(mq_mem, "ipcx-mq", 30, setup_mem,
	"ipcx priority mailbox (MPMC; copying up to 1 KiB, loan/take above; adaptive)", 1,
	"ipcx-mq*: up to 1 KiB copying; streams in batches of up to 256 messages or 16 KiB "
	"(send_batch/recv_batch) into a mailbox up to 16384 deep (docs/mq.md: depth decides a "
	"stream's rate), ipcx-mq-single one call per message; above 1 KiB stamped in place "
	"(loan/commit, take/release)",
	SMALL + 1)
MQ_MECH(mq_take, "ipcx-mq-take", 30, setup_take,
	"ipcx-mq streaming into take_batch/release_batch (zero-copy receive)", 0, NULL, SMALL + 1)
MQ_MECH(mq_single, "ipcx-mq-single", 31, setup_single,
	"ipcx-mq streaming one send/recv call per message (no batches)", 1, NULL, SMALL + 1)
MQ_MECH(mq_none, "ipcx-mq-persist-none", 32, setup_none,
	"ipcx mailbox with a log, sync none (page cache; survives process crashes)", 1, NULL, 0)
MQ_MECH(mq_batch, "ipcx-mq-persist-batch", 33, setup_batch,
	"ipcx mailbox with a log, fdatasync every 64 messages or 10 ms", 0, NULL, 0)
MQ_MECH(mq_always, "ipcx-mq-persist-always", 34, setup_always,
	"ipcx mailbox with a log, fdatasync before each send and receive returns", 0, NULL, 0)
