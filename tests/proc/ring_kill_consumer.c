/* The consumer is SIGKILLed: the producer gets -EPIPE in bounded time once
 * the ring is full, under each wait policy, instead of waiting forever.
 * ipcx-test-timeout: 120 */
#include <signal.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

static ipcx_ring *creator;

static int consumer(void *arg)
{
	(void)arg;
	ipcx_ring *rx;
	uint8_t buf[256];
	T_CHECK_RC(ipcx_ring_open_fd(&rx, ipcx_ring_fd(creator), IPCX_RING_CONSUMER, NULL), 0);
	for (;;)
		if (ipcx_ring_recv(rx, buf, sizeof buf, NULL) < 0)
			return T_FAIL;
}

int main(void)
{
	t_watchdog(100);
	static const uint32_t modes[] = { IPCX_WAIT_SPIN, IPCX_WAIT_ADAPTIVE, IPCX_WAIT_BLOCK };
	for (int round = 0; round < 30; round++) {
		ipcx_ring_opts o = { .capacity = 4096 };
		T_CHECK_RC(ipcx_ring_create_anon(&creator, &o, IPCX_RING_NOROLE), 0);
		ipcx_wait w = IPCX_WAIT_INIT(modes[round % 3]);
		ipcx_ring *tx;
		T_CHECK_RC(ipcx_ring_open_fd(&tx, ipcx_ring_fd(creator), IPCX_RING_PRODUCER, &w), 0);
		pid_t pid = t_spawn(consumer, NULL);
		uint8_t msg[200] = { 0 };
		for (int i = 0; i < 1000; i++)
			T_CHECK_RC(ipcx_ring_send(tx, msg, sizeof msg, 0, NULL), 0);
		kill(pid, SIGKILL);
		uint64_t t0 = t_now_ns();
		int rc;
		while ((rc = ipcx_ring_send(tx, msg, sizeof msg, 0, NULL)) == 0)
			;
		T_CHECK_RC(rc, -EPIPE);
		T_CHECK(t_now_ns() - t0 < 5ull * 1000 * 1000 * 1000);
		T_CHECK_RC(t_wait(pid), 128 + SIGKILL);
		ipcx_ring_close(tx);
		ipcx_ring_close(creator);
	}
	return 0;
}
