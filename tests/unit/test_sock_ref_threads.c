/* Regions by reference both ways on one socket: one thread sends by
 * reference while another receives by reference (the documented split),
 * each half of the socket's region state touched by its own thread.
 * ipcx-test-timeout: 60
 * ipcx-test-labels: tsan */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

#define N 2000
#define POOL 4

struct side {
	ipcx_sock *s;
	ipcx_region *pool[POOL];
	int failed;
};

/* Send N references, message i naming byte i/POOL of region i%POOL,
 * which holds its own index there (written before any send). */
static int send_all(struct side *d)
{
	for (unsigned i = 0; i < N; i++)
		if (ipcx_sock_send_region_ref(d->s, d->pool[i % POOL], i / POOL, 1, NULL, 0, NULL))
			return -1;
	return 0;
}

static int recv_all(ipcx_sock *s)
{
	ipcx_wait w = { .mode = IPCX_WAIT_BLOCK, .timeout_ns = 20000000000 };
	for (unsigned i = 0; i < N; i++) {
		ipcx_sock_view v;
		if (ipcx_sock_recv_region_ref(s, &v, IPCX_KIND_RAW, NULL, 0, &w) != 0 ||
		    v.region_id != i % POOL + 1 || v.offset != i / POOL ||
		    *(unsigned char *)v.data != (unsigned char)(i / POOL))
			return -1;
	}
	return 0;
}

static void *sender(void *arg)
{
	struct side *d = arg;
	d->failed = send_all(d);
	return NULL;
}

static void fill(struct side *d)
{
	for (int k = 0; k < POOL; k++) {
		assert_int_equal(ipcx_region_create_anon(&d->pool[k], IPCX_KIND_RAW, N / POOL, NULL), 0);
		unsigned char *p = ipcx_region_data(d->pool[k]);
		for (unsigned j = 0; j < N / POOL; j++)
			p[j] = (unsigned char)j;
	}
}

static void test_both_ways(void **st)
{
	(void)st;
	int fds0 = t_count_fds();
	struct side a = { 0 }, b = { 0 };
	assert_int_equal(ipcx_sock_pair(&a.s, &b.s, NULL), 0);
	fill(&a);
	fill(&b);
	/* On a.s: a thread sends by reference while this one receives. */
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, sender, &a), 0);
	pthread_t u;
	assert_int_equal(pthread_create(&u, NULL, sender, &b), 0);
	assert_int_equal(recv_all(a.s), 0);
	assert_int_equal(recv_all(b.s), 0);
	pthread_join(t, NULL);
	pthread_join(u, NULL);
	assert_int_equal(a.failed, 0);
	assert_int_equal(b.failed, 0);
	ipcx_sock_close(a.s);
	ipcx_sock_close(b.s);
	for (int k = 0; k < POOL; k++) {
		ipcx_region_close(a.pool[k]);
		ipcx_region_close(b.pool[k]);
	}
	assert_int_equal(t_count_fds(), fds0);
}

int main(void)
{
	t_watchdog(50);
	const struct CMUnitTest tests[] = { cmocka_unit_test(test_both_ways) };
	return cmocka_run_group_tests(tests, NULL, NULL);
}
