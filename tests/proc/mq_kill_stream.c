/*
 * kill -9 against the senders and receivers of a memory-only mailbox, 300
 * rounds, each at a random moment of a stream (so inside every window of
 * the lock-free paths: between a claim and its store, between taking a
 * slot and recording it in its word, between the two claims of a copying
 * send or receive, inside the runs of batch sends and receives).  Then everything is reclaimed and checked:
 *  - no payload is corrupted or torn;
 *  - per receiver, per sender and priority, first deliveries in send order;
 *  - every acknowledged message is delivered, except at most RECV_BATCH per
 *    kill of the copying receiver (what it had copied and not yet recorded
 *    when it died);
 *  - a message is delivered twice only as the rules allow (a copy flagged
 *    redelivered, a copy whose taker was killed before releasing it, or an
 *    unacknowledged send retried);
 *  - no slot leaked: the mailbox holds nothing, and takes depth messages.
 * ipcx-test-timeout: 120
 * ipcx-test-serial
 */
#include <signal.h>
#include <unistd.h>

#include "mq_load.h"

#define SENDERS 2
#define RECEIVERS 2
#define ROUNDS 300
#define DEPTH 16

static struct ml_shared *sh;
static const char *name;
static pid_t parent;
static pid_t kids[SENDERS + RECEIVERS];
static _Atomic uint32_t *order; /* per receiver: deliveries recorded */

static void cleanup(void)
{
	if (getpid() != parent)
		return;
	for (unsigned v = 0; v < SENDERS + RECEIVERS; v++)
		if (kids[v] > 0 && kill(kids[v], SIGKILL) == 0)
			t_wait(kids[v]);
	ipcx_mq_unlink(name);
}

/* Sender 0 sends batches of 8 (runs of 4 share a priority); sender 1
 * alternates copying and zero-copy sends. */
static int sender(void *arg)
{
	unsigned s = (unsigned)(uintptr_t)arg;
	ipcx_mq *mq;
	if (ipcx_mq_open(&mq, name, NULL))
		return 2;
	uint32_t inc = atomic_fetch_add(&sh->inc[s], 1) + 1;
	for (uint64_t seq = atomic_load(&sh->acked[s]), paced = seq;;) {
		struct ml_msg m[8];
		ipcx_mq_vec v[8];
		unsigned n = s == 0 ? 8 : 1;
		for (unsigned k = 0; k < n; k++) {
			uint64_t q = seq + k;
			uint32_t prio = 1 + (uint32_t)(s == 0 ? q / 4 % 3 : q % 3);
			m[k] = (struct ml_msg){ s, inc, q, prio, { 0 } };
			ml_fill(&m[k]);
			v[k] = (ipcx_mq_vec){ .buf = &m[k], .len = sizeof m[k], .prio = prio };
		}
		int sent = s == 0 ? ipcx_mq_send_batch(mq, v, n, NULL)
				  : ml_send(mq, &m[0], seq & 1) ? -1 : 1;
		if (sent <= 0)
			return 3;
		seq += (unsigned)sent;
		atomic_store(&sh->acked[s], seq); /* what the call acknowledged */
		if (seq - paced >= 128) {
			paced = seq;
			usleep(100); /* pace: the records must fit (ML_DELIV_MAX) */
		}
	}
}

/* Receiver 0 copies, one message or a batch of up to RECV_BATCH in turn;
 * receiver 1 takes and releases. */
#define RECV_BATCH 4
static int receiver(void *arg)
{
	unsigned r = (unsigned)(uintptr_t)arg;
	ipcx_mq *mq;
	if (ipcx_mq_open(&mq, name, NULL))
		return 2;
	for (unsigned turn = 0;; turn++) {
		if (r == 0) {
			unsigned char buf[RECV_BATCH][128];
			ipcx_mq_vec v[RECV_BATCH];
			for (unsigned k = 0; k < RECV_BATCH; k++)
				v[k] = (ipcx_mq_vec){ .buf = buf[k], .cap = sizeof buf[k] };
			int n = ipcx_mq_recv_batch(mq, v, turn % 2 ? RECV_BATCH : 1, NULL);
			if (n < 0)
				return 3;
			for (int k = 0; k < n; k++)
				if (ml_record(sh, buf[k], v[k].len, v[k].prio, v[k].flags, r,
					      atomic_fetch_add(&order[r], 1)) < 0)
					return 4;
		} else {
			ipcx_mq_msg m;
			if (ipcx_mq_take(mq, &m, NULL))
				return 3;
			int k = ml_record(sh, m.data, m.len, m.prio, m.flags | ML_HELD, r,
					  atomic_fetch_add(&order[r], 1));
			if (k < 0)
				return 4;
			if (ipcx_mq_release(mq, &m))
				return 5;
			ml_released(sh, k);
		}
	}
}

static pid_t spawn(unsigned v)
{
	return v < SENDERS ? t_spawn(sender, (void *)(uintptr_t)v)
			   : t_spawn(receiver, (void *)(uintptr_t)(v - SENDERS));
}

int main(void)
{
	t_watchdog(110);
	parent = getpid();
	atexit(cleanup);
	name = t_name("ks");
	sh = ml_map();
	order = (_Atomic uint32_t *)mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	T_CHECK((void *)order != MAP_FAILED);
	ipcx_mq_opts o = { .depth = DEPTH, .max_msg = 64 };
	ipcx_mq *mq;
	T_CHECK_RC(ipcx_mq_create(&mq, name, &o), 0);
	for (unsigned v = 0; v < SENDERS + RECEIVERS; v++)
		kids[v] = spawn(v);
	unsigned seed = (unsigned)getpid();
	uint64_t copier_kills = 0;
	for (int round = 0; round < ROUNDS; round++) {
		t_sleep_ms(1 + rand_r(&seed) % 3);
		unsigned v = rand_r(&seed) % (SENDERS + RECEIVERS);
		kill(kids[v], SIGKILL);
		int st = t_wait(kids[v]);
		if (st != 128 + SIGKILL) {
			fprintf(stderr, "round %d: child %u exited with %d\n", round, v, st);
			return T_FAIL;
		}
		copier_kills += v == SENDERS ? RECV_BATCH : 0;
		kids[v] = spawn(v);
	}
	for (unsigned v = 0; v < SENDERS + RECEIVERS; v++) {
		kill(kids[v], SIGKILL);
		T_CHECK(t_wait(kids[v]) == 128 + SIGKILL);
		kids[v] = 0;
	}
	copier_kills += RECV_BATCH; /* the final kill */

	/* Drain: waiting runs the liveness check, which reclaims from the dead
	 * (their taken messages come back, their claims are finished). */
	ipcx_wait w = { IPCX_WAIT_BLOCK, 0, 200 * 1000 * 1000 };
	uint32_t drained = 0;
	for (;;) {
		ipcx_mq_msg m;
		int rc = ipcx_mq_take(mq, &m, &w);
		if (rc == -ETIMEDOUT)
			break;
		T_CHECK_RC(rc, 0);
		int k = ml_record(sh, m.data, m.len, m.prio, m.flags | ML_HELD, RECEIVERS,
				  drained++);
		T_CHECK(k >= 0);
		T_CHECK_RC(ipcx_mq_release(mq, &m), 0);
		ml_released(sh, k);
	}
	T_CHECK(!atomic_load(&sh->bad));
	ipcx_mq_attr at;
	T_CHECK_RC(ipcx_mq_getattr(mq, &at), 0);
	printf("sent %llu received %llu redelivered %llu cancelled %llu; %u drained at the end\n",
	       (unsigned long long)at.sent, (unsigned long long)at.received,
	       (unsigned long long)at.redelivered, (unsigned long long)at.cancelled, drained);
	T_CHECK(at.depth == 0 && at.loaned == 0 && at.taken == 0 && at.attached == 1);
	T_CHECK(at.sent > 1000 && at.received > 1000);

	/* Every slot came back: depth messages fit, and come out in order. */
	ipcx_wait nb = { IPCX_WAIT_NONBLOCK, 0, -1 };
	for (uint32_t i = 0; i < DEPTH; i++)
		T_CHECK_RC(ipcx_mq_send(mq, &i, sizeof i, 5, &nb), 0);
	T_CHECK_RC(ipcx_mq_send(mq, "x", 1, 5, &nb), -EAGAIN);
	for (uint32_t i = 0; i < DEPTH; i++) {
		uint32_t x = ~0u;
		T_CHECK_RC(ipcx_mq_recv(mq, &x, sizeof x, NULL, &nb), sizeof x);
		T_CHECK(x == i);
	}

	int verdict = ml_check_fifo(sh, 0, RECEIVERS + 1);
	if (verdict == T_PASS)
		verdict = ml_check_delivered(sh, SENDERS, copier_kills, false);
	T_CHECK_RC(ipcx_mq_close(mq), 0);
	T_CHECK_RC(ipcx_mq_unlink(name), 0);
	return verdict == T_PASS && !t_check_no_leaks() ? T_PASS : T_FAIL;
}
