/*
 * Threads variant of the N x M mailbox test, also built under
 * ThreadSanitizer (which checks the lock-free paths' memory orders on the
 * payload and the slot fields).  Two producer threads share one handle, as
 * do two consumer threads (a handle's ring operations are serialised by its
 * busy flag); the others have their own.  Sends and receives mix copying,
 * zero-copy and batch calls.  Every message exactly once, and
 * per consumer thread, per producer and priority, in send order.
 * ipcx-test-labels: tsan
 * ipcx-test-timeout: 120
 * ipcx-test-serial
 */
#include <pthread.h>

#include "mq_load.h"

#define NP 3
#define NC 3
#define PER_PRODUCER 20000u

static struct ml_shared *sh;
static ipcx_mq *shared_tx, *shared_rx;
static const char *name;

static void *produce(void *arg)
{
	uint32_t s = (uint32_t)(uintptr_t)arg;
	ipcx_mq *mq = shared_tx;
	if (s == NP - 1)
		T_CHECK_RC(ipcx_mq_open(&mq, name, NULL), 0);
	/* Runs of four share a priority; chunks of 8 go as single copying
	 * sends, loans, or one batch, in turn. */
	for (uint64_t seq = 0; seq < PER_PRODUCER; seq += 8) {
		struct ml_msg m[8];
		for (unsigned k = 0; k < 8; k++) {
			uint64_t q = seq + k;
			m[k] = (struct ml_msg){ s, 1, q, (uint32_t)((q / 4 * 5 + s) % 4), { 0 } };
			ml_fill(&m[k]);
		}
		T_CHECK_RC(ml_send_some(mq, m, 8, (unsigned)(seq / 8 % 3)), 0);
	}
	if (mq != shared_tx)
		ipcx_mq_close(mq);
	return NULL;
}

static void *consume(void *arg)
{
	uint32_t c = (uint32_t)(uintptr_t)arg;
	ipcx_mq *mq = shared_rx;
	if (c == NC - 1)
		T_CHECK_RC(ipcx_mq_open(&mq, name, NULL), 0);
	ipcx_wait w = { IPCX_WAIT_ADAPTIVE, 0, 50 * 1000 * 1000 };
	uint32_t order = 0;
	for (uint32_t k = 0; atomic_load(&sh->ndeliv) < NP * PER_PRODUCER; k++) {
		unsigned char buf[ML_SOME][64];
		ipcx_mq_msg m[ML_SOME];
		/* Every fourth round a zero-copy batch, released at once. */
		int n = k % 4 == 3 ? ipcx_mq_take_batch(mq, m, ML_SOME, &w)
				   : ml_receive_some(mq, m, buf, k % 4, &w);
		if (n == -ETIMEDOUT)
			continue;
		T_CHECK(n > 0);
		for (int j = 0; j < n; j++)
			T_CHECK(ml_record(sh, m[j].data, m[j].len, m[j].prio, m[j].flags, c,
					  order++) >= 0);
		if (k % 4 == 0)
			T_CHECK_RC(ipcx_mq_release(mq, &m[0]), 0);
		if (k % 4 == 3)
			T_CHECK_RC(ipcx_mq_release_batch(mq, m, (unsigned)n), 0);
	}
	if (mq != shared_rx)
		ipcx_mq_close(mq);
	return NULL;
}

int main(void)
{
	t_watchdog(110);
	name = t_name("thr");
	sh = ml_map();
	uint32_t depths[] = { 64, 4 };
	for (unsigned k = 0; k < 2; k++) {
		memset(sh, 0, sizeof *sh);
		ipcx_mq_opts o = { .depth = depths[k], .max_msg = 64 };
		ipcx_mq *mq;
		T_CHECK_RC(ipcx_mq_create(&mq, name, &o), 0);
		T_CHECK_RC(ipcx_mq_open(&shared_tx, name, NULL), 0);
		T_CHECK_RC(ipcx_mq_open(&shared_rx, name, NULL), 0);
		pthread_t t[NP + NC];
		for (uint32_t i = 0; i < NC; i++)
			T_CHECK(pthread_create(&t[i], NULL, consume, (void *)(uintptr_t)i) == 0);
		for (uint32_t i = 0; i < NP; i++)
			T_CHECK(pthread_create(&t[NC + i], NULL, produce, (void *)(uintptr_t)i) == 0);
		for (uint32_t i = 0; i < NP + NC; i++)
			pthread_join(t[i], NULL);
		for (uint32_t s = 0; s < NP; s++)
			atomic_store(&sh->acked[s], PER_PRODUCER);
		T_CHECK(!atomic_load(&sh->bad));
		T_CHECK_RC(atomic_load(&sh->ndeliv), NP * PER_PRODUCER);
		T_CHECK_RC(ml_check_fifo(sh, 0, NC), T_PASS);
		T_CHECK_RC(ml_check_delivered(sh, NP, 0, true), T_PASS);
		printf("%u producer x %u consumer threads, depth %u: %u messages checked\n", NP, NC,
		       depths[k], NP * PER_PRODUCER);
		ipcx_mq_close(shared_tx);
		ipcx_mq_close(shared_rx);
		T_CHECK_RC(ipcx_mq_close(mq), 0);
		T_CHECK_RC(ipcx_mq_unlink(name), 0);
	}
	munmap(sh, sizeof *sh);
	return t_check_no_leaks() ? T_FAIL : T_PASS;
}
