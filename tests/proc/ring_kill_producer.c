/* The producer is SIGKILLed mid-stream, 100 times, under each wait policy:
 * the consumer receives every message committed before the kill, intact,
 * never a torn one, and then -EPIPE in bounded time instead of hanging.
 * ipcx-test-timeout: 300 */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "ring_common.h"
#include "testutil.h"

#define ROUNDS 100
#define MAXLEN 3000

static ipcx_ring *creator;

static int producer(void *arg)
{
	(void)arg;
	ipcx_ring *tx;
	T_CHECK_RC(ipcx_ring_open_fd(&tx, ipcx_ring_fd(creator), IPCX_RING_PRODUCER, NULL), 0);
	for (uint64_t seq = 1;; seq++) {
		size_t len = rc_len(seq, MAXLEN);
		void *dst;
		T_CHECK_RC(ipcx_ring_reserve(tx, len, &dst, NULL), 0);
		/* Fill slowly, in two halves: a kill lands mid-message often. */
		rc_fill(dst, len, seq);
		T_CHECK_RC(ipcx_ring_commit(tx, len, (seq % 3) ? IPCX_RING_MORE : 0), 0);
	}
}

static int never_attaches(void *arg)
{
	(void)arg;
	pause(); /* until the SIGKILL */
	return 0;
}

/* A producer process that dies before it attached is no producer at all: the
 * consumer keeps waiting (its deadline applies), and a producer that attaches
 * later is served normally. */
static void unattached_producer(void)
{
	ipcx_ring_opts o = { .capacity = 4096 };
	T_CHECK_RC(ipcx_ring_create_anon(&creator, &o, IPCX_RING_NOROLE), 0);
	ipcx_ring *rx, *tx;
	T_CHECK_RC(ipcx_ring_open_fd(&rx, ipcx_ring_fd(creator), IPCX_RING_CONSUMER, NULL), 0);
	pid_t pid = t_spawn(never_attaches, NULL);
	T_CHECK(kill(pid, SIGKILL) == 0);
	T_CHECK_RC(t_wait(pid), 128 + SIGKILL);
	ipcx_wait w = IPCX_WAIT_INIT(IPCX_WAIT_BLOCK);
	w.timeout_ns = 100 * 1000 * 1000;
	char buf[16];
	T_CHECK_RC(ipcx_ring_recv(rx, buf, sizeof buf, &w), -ETIMEDOUT);
	T_CHECK_RC(ipcx_ring_open_fd(&tx, ipcx_ring_fd(creator), IPCX_RING_PRODUCER, NULL), 0);
	T_CHECK_RC(ipcx_ring_send(tx, "late", 4, 0, NULL), 0);
	T_CHECK_RC(ipcx_ring_recv(rx, buf, sizeof buf, &w), 4);
	ipcx_ring_close(tx);
	T_CHECK_RC(ipcx_ring_recv(rx, buf, sizeof buf, &w), -EPIPE);
	ipcx_ring_close(rx);
	ipcx_ring_close(creator);
}

int main(void)
{
	t_watchdog(280);
	unattached_producer();
	static const uint32_t modes[] = { IPCX_WAIT_SPIN, IPCX_WAIT_ADAPTIVE, IPCX_WAIT_BLOCK };
	uint64_t worst_ns = 0, total = 0;
	srand((unsigned)getpid());
	for (int round = 0; round < ROUNDS; round++) {
		ipcx_ring_opts o = { .capacity = 16384 };
		T_CHECK_RC(ipcx_ring_create_anon(&creator, &o, IPCX_RING_NOROLE), 0);
		ipcx_wait w = IPCX_WAIT_INIT(modes[round % 3]);
		ipcx_ring *rx;
		T_CHECK_RC(ipcx_ring_open_fd(&rx, ipcx_ring_fd(creator), IPCX_RING_CONSUMER, &w), 0);
		pid_t pid = t_spawn(producer, NULL);
		/* Take a random number of messages, then kill the producer while it
		 * is writing (the ring has room, so it is never idle).  At least one:
		 * a producer killed before it attached never existed as far as the
		 * ring is concerned, and the consumer rightly keeps waiting for one
		 * (unattached_producer() below pins that down). */
		uint64_t seq = 0, kill_after = 1 + (uint64_t)(rand() % 2000);
		int killed = 0;
		uint64_t t_kill = 0;
		uint8_t buf[MAXLEN];
		for (;;) {
			if (!killed && seq >= kill_after) {
				kill(pid, SIGKILL);
				killed = 1;
				t_kill = t_now_ns();
			}
			ssize_t n = ipcx_ring_recv(rx, buf, sizeof buf, NULL);
			if (n < 0) {
				T_CHECK_RC(n, -EPIPE);
				T_CHECK(killed);
				break;
			}
			seq++;
			if (!rc_check(buf, (size_t)n, seq, MAXLEN)) {
				fprintf(stderr, "round %d: message %llu torn or out of order\n", round,
					(unsigned long long)seq);
				return T_FAIL;
			}
		}
		uint64_t took = t_now_ns() - t_kill;
		if (took > worst_ns)
			worst_ns = took;
		/* Bounded: the liveness slice is 40 ms; allow for a loaded machine. */
		T_CHECK(took < 5ull * 1000 * 1000 * 1000);
		T_CHECK_RC(t_wait(pid), 128 + SIGKILL);
		total += seq;
		ipcx_ring_close(rx);
		ipcx_ring_close(creator);
	}
	printf("%d kills, %llu messages verified, slowest -EPIPE after the kill: %.1f ms\n", ROUNDS,
	       (unsigned long long)total, (double)worst_ns / 1e6);
	return 0;
}
