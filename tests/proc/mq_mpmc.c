/*
 * N producers x M consumers, processes, on the lock-free mailbox:
 *  1. the mailbox is filled with messages of mixed priorities, then M
 *     consumers drain it at once: each sees priorities never rising (every
 *     receive takes from the highest non-empty level);
 *  2. N producers and M consumers stream at once, at depth 256 and at depth
 *     4 (full and empty all the time): every message exactly once, and per
 *     consumer, per producer and priority, in send order.
 * Producers mix copying, zero-copy and batch sends, consumers copying,
 * zero-copy and batch receives.
 * ipcx-test-timeout: 120
 * ipcx-test-serial
 */
#include <unistd.h>

#include "mq_load.h"

#define NP 3
#define NC 3
#define PER_PRODUCER 60000u

static struct ml_shared *sh;
static const char *name;

static int produce(void *arg)
{
	uint32_t s = (uint32_t)(uintptr_t)arg;
	ipcx_mq *mq;
	if (ipcx_mq_open(&mq, name, NULL))
		return 2;
	/* Runs of four messages share a priority; chunks of 16 go as single
	 * copying sends, loans, or one batch, in turn. */
	for (uint64_t seq = 0; seq < PER_PRODUCER; seq += 16) {
		struct ml_msg m[16];
		for (unsigned k = 0; k < 16; k++) {
			uint64_t q = seq + k;
			m[k] = (struct ml_msg){ s, 1, q, (uint32_t)((q / 4 * 7 + s) % 5) * 3, { 0 } };
			ml_fill(&m[k]);
		}
		if (ml_send_some(mq, m, 16, (unsigned)(seq / 16 % 3)))
			return 3;
	}
	atomic_store(&sh->acked[s], PER_PRODUCER);
	ipcx_mq_close(mq);
	return 0;
}

/* Receive until `total` deliveries are recorded in all, or (total 0) until
 * the mailbox is empty; check priorities never rise if asked to. */
struct cons_arg {
	uint32_t c;
	uint32_t total;
	int monotonic;
};

static int consume(void *arg)
{
	struct cons_arg *a = arg;
	ipcx_mq *mq;
	if (ipcx_mq_open(&mq, name, NULL))
		return 2;
	ipcx_wait w = { IPCX_WAIT_ADAPTIVE, 0, 100 * 1000 * 1000 };
	unsigned last = IPCX_MQ_PRIO_LEVELS;
	uint32_t order = 0;
	for (uint32_t k = 0;; k++) {
		if (a->total && atomic_load(&sh->ndeliv) >= a->total)
			break;
		/* In turn: take/release, copying receive, a batch. */
		unsigned char buf[ML_SOME][64];
		ipcx_mq_msg m[ML_SOME];
		int n = ml_receive_some(mq, m, buf, k % 3, &w);
		if (n == -ETIMEDOUT)
			break;
		if (n < 0)
			return 3;
		for (int j = 0; j < n; j++) {
			if (a->monotonic && m[j].prio > last)
				return 4; /* a lower level was served while a higher one held messages */
			last = m[j].prio;
			if (ml_record(sh, m[j].data, m[j].len, m[j].prio, m[j].flags, a->c, order++) < 0)
				return 5;
		}
		if (k % 3 == 0 && ipcx_mq_release(mq, &m[0]))
			return 6;
	}
	ipcx_mq_close(mq);
	return 0;
}

static void run(uint32_t depth, int fill_first)
{
	memset(sh, 0, sizeof *sh);
	ipcx_mq_opts o = { .depth = depth, .max_msg = 64 };
	ipcx_mq *mq;
	T_CHECK_RC(ipcx_mq_create(&mq, name, &o), 0);
	uint32_t total = NP * PER_PRODUCER;
	pid_t p[NP], c[NC];
	struct cons_arg ca[NC];
	if (fill_first) {
		/* Fill, then drain with all consumers at once. */
		for (uint32_t s = 0; s < NP; s++)
			p[s] = t_spawn(produce, (void *)(uintptr_t)s);
		for (uint32_t s = 0; s < NP; s++)
			T_CHECK_RC(t_wait(p[s]), 0);
		for (uint32_t i = 0; i < NC; i++) {
			ca[i] = (struct cons_arg){ i, 0, 1 };
			c[i] = t_spawn(consume, &ca[i]);
		}
	} else {
		for (uint32_t i = 0; i < NC; i++) {
			ca[i] = (struct cons_arg){ i, total, 0 };
			c[i] = t_spawn(consume, &ca[i]);
		}
		for (uint32_t s = 0; s < NP; s++)
			p[s] = t_spawn(produce, (void *)(uintptr_t)s);
		for (uint32_t s = 0; s < NP; s++)
			T_CHECK_RC(t_wait(p[s]), 0);
	}
	for (uint32_t i = 0; i < NC; i++)
		T_CHECK_RC(t_wait(c[i]), 0);
	T_CHECK(!atomic_load(&sh->bad));
	T_CHECK_RC(atomic_load(&sh->ndeliv), total);
	T_CHECK_RC(ml_check_fifo(sh, 0, NC), T_PASS);
	T_CHECK_RC(ml_check_delivered(sh, NP, 0, true), T_PASS);
	ipcx_mq_attr at;
	T_CHECK_RC(ipcx_mq_getattr(mq, &at), 0);
	T_CHECK(at.sent == total && at.received == total && at.depth == 0);
	printf("%u producers x %u consumers, depth %u%s: %u messages checked\n", NP, NC, depth,
	       fill_first ? ", filled then drained" : "", total);
	T_CHECK_RC(ipcx_mq_close(mq), 0);
	T_CHECK_RC(ipcx_mq_unlink(name), 0);
}

int main(void)
{
	t_watchdog(110);
	name = t_name("mpmc");
	sh = ml_map();
	run(NP * PER_PRODUCER, 1);
	run(256, 0);
	run(4, 0);
	munmap(sh, sizeof *sh);
	return t_check_no_leaks() ? T_FAIL : T_PASS;
}
