/* Two processes move 10^7 messages of varied sizes through a ring; every
 * byte of every message is checked, in order.
 * ipcx-test-timeout: 600
 * ipcx-test-serial */
#include <stdlib.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "ring_common.h"
#include "testutil.h"

#define MESSAGES 10000000ull
#define MAXLEN 200

static ipcx_ring *creator;

static int producer(void *arg)
{
	(void)arg;
	ipcx_ring *tx;
	uint8_t buf[MAXLEN];
	T_CHECK_RC(ipcx_ring_open_fd(&tx, ipcx_ring_fd(creator), IPCX_RING_PRODUCER, NULL), 0);
	for (uint64_t seq = 1; seq <= MESSAGES; seq++) {
		size_t len = rc_len(seq, MAXLEN);
		if (seq & 1) { /* alternate the copying and the zero-copy API */
			rc_fill(buf, len, seq);
			T_CHECK_RC(ipcx_ring_send(tx, buf, len, (seq & 7) ? IPCX_RING_MORE : 0, NULL), 0);
		} else {
			void *dst;
			T_CHECK_RC(ipcx_ring_reserve(tx, len, &dst, NULL), 0);
			rc_fill(dst, len, seq);
			T_CHECK_RC(ipcx_ring_commit(tx, len, 0), 0);
		}
	}
	ipcx_ring_close(tx);
	return 0;
}

int main(void)
{
	t_watchdog(580);
	ipcx_ring_opts o = { .capacity = 64 * 1024 };
	T_CHECK_RC(ipcx_ring_create_anon(&creator, &o, IPCX_RING_NOROLE), 0);
	ipcx_ring *rx;
	T_CHECK_RC(ipcx_ring_open_fd(&rx, ipcx_ring_fd(creator), IPCX_RING_CONSUMER, NULL), 0);
	pid_t pid = t_spawn(producer, NULL);
	uint8_t buf[MAXLEN];
	uint64_t seq = 0;
	for (;;) {
		ssize_t n;
		if (seq & 1) {
			n = ipcx_ring_recv(rx, buf, sizeof buf, NULL);
			if (n < 0)
				break;
			T_CHECK(rc_check(buf, (size_t)n, seq + 1, MAXLEN));
		} else {
			const void *p;
			size_t len;
			int rc = ipcx_ring_peek(rx, &p, &len, NULL);
			if (rc < 0) {
				n = rc;
				break;
			}
			T_CHECK(rc_check(p, len, seq + 1, MAXLEN));
			T_CHECK_RC(ipcx_ring_release(rx), 0);
		}
		seq++;
	}
	T_CHECK_RC(t_wait(pid), 0);
	T_CHECK_RC(ipcx_ring_recv(rx, buf, sizeof buf, NULL), -EPIPE);
	T_CHECK_RC(seq, MESSAGES);
	ipcx_ring_close(rx);
	ipcx_ring_close(creator);
	printf("%llu messages verified\n", (unsigned long long)seq);
	return 0;
}
