/* The ring's memory ordering, checked by ThreadSanitizer: a producer and a
 * consumer thread move 10^6 messages under each wait policy (the same
 * process may hold both roles).
 * ipcx-test-labels: tsan
 * ipcx-test-timeout: 300 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

#define MESSAGES 1000000u

struct ctx {
	ipcx_ring *tx;
	int failed;
};

static void *producer(void *arg)
{
	struct ctx *c = arg;
	uint8_t buf[64];
	for (uint32_t i = 1; i <= MESSAGES; i++) {
		size_t len = 4 + i % 60;
		memset(buf, (int)(i & 0xff), len);
		memcpy(buf, &i, 4);
		if (ipcx_ring_send(c->tx, buf, len, (i % 5) ? IPCX_RING_MORE : 0, NULL)) {
			c->failed = 1;
			break;
		}
	}
	ipcx_ring_flush(c->tx);
	return NULL;
}

static void run(uint32_t mode)
{
	ipcx_ring *creator, *rx;
	ipcx_ring_opts o = { .capacity = 8192 };
	ipcx_wait w = IPCX_WAIT_INIT(mode);
	struct ctx c = { 0 };
	assert_int_equal(ipcx_ring_create_anon(&creator, &o, IPCX_RING_NOROLE), 0);
	assert_int_equal(ipcx_ring_open_fd(&c.tx, ipcx_ring_fd(creator), IPCX_RING_PRODUCER, &w), 0);
	assert_int_equal(ipcx_ring_open_fd(&rx, ipcx_ring_fd(creator), IPCX_RING_CONSUMER, &w), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, producer, &c), 0);
	uint8_t buf[64];
	for (uint32_t i = 1; i <= MESSAGES; i++) {
		ssize_t n = ipcx_ring_recv(rx, buf, sizeof buf, NULL);
		assert_int_equal(n, 4 + i % 60);
		uint32_t got;
		memcpy(&got, buf, 4);
		assert_int_equal(got, i);
		for (ssize_t k = 4; k < n; k++)
			assert_int_equal(buf[k], i & 0xff);
	}
	pthread_join(t, NULL);
	assert_int_equal(c.failed, 0);
	ipcx_ring_close(c.tx);
	assert_int_equal(ipcx_ring_recv(rx, buf, sizeof buf, NULL), -EPIPE);
	ipcx_ring_close(rx);
	ipcx_ring_close(creator);
}

static void test_spin(void **st)
{
	(void)st;
	run(IPCX_WAIT_SPIN);
}

static void test_adaptive(void **st)
{
	(void)st;
	run(IPCX_WAIT_ADAPTIVE);
}

static void test_block(void **st)
{
	(void)st;
	run(IPCX_WAIT_BLOCK);
}

int main(void)
{
	t_watchdog(280);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spin),
		cmocka_unit_test(test_adaptive),
		cmocka_unit_test(test_block),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
