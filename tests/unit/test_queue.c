/* The MPMC queue in one process: arguments, full and empty, sizes, zero-copy,
 * order, roles, a corrupted header, skip records, -EPIPE.
 * ipcx-test-timeout: 60
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

static const ipcx_wait nb = {IPCX_WAIT_NONBLOCK, 0, -1};

static void test_args(void **st)
{
	(void)st;
	ipcx_queue *q = (ipcx_queue *)1;
	ipcx_queue_opts o = {.capacity = 3};
	assert_int_equal(ipcx_queue_create(&q, NULL, IPCX_QUEUE_PRODUCER, &o), -EINVAL);
	assert_null(q);
	o.capacity = 1;
	assert_int_equal(ipcx_queue_create(&q, NULL, IPCX_QUEUE_PRODUCER, &o), -EINVAL);
	o = (ipcx_queue_opts){.msg_max = IPCX_QUEUE_MSG_MAX + 1};
	assert_int_equal(ipcx_queue_create(&q, NULL, IPCX_QUEUE_PRODUCER, &o), -EINVAL);
	assert_int_equal(ipcx_queue_create(&q, NULL, 0x10, NULL), -EINVAL);
	assert_int_equal(ipcx_queue_create(&q, "bad/name", IPCX_QUEUE_PRODUCER, NULL), -EINVAL);
	assert_int_equal(ipcx_queue_open(&q, "no-such-queue-ipcx", IPCX_QUEUE_CONSUMER, NULL),
			 -ENOENT);
	assert_int_equal(ipcx_queue_close(NULL), 0);
	/* a region of another kind */
	const char *name = t_name("qk");
	ipcx_region *r;
	assert_int_equal(ipcx_region_create(&r, name, IPCX_KIND_RAW, 4096, NULL), 0);
	assert_int_equal(ipcx_queue_open(&q, name, IPCX_QUEUE_CONSUMER, NULL), -EMEDIUMTYPE);
	ipcx_region_close(r);
	ipcx_region_unlink(name);
}

static void test_fill_drain(void **st)
{
	(void)st;
	const char *name = t_name("q");
	ipcx_queue *p, *c;
	ipcx_queue_opts o = {.capacity = 8, .msg_max = 100};
	int fds = t_count_fds();
	assert_int_equal(ipcx_queue_create(&p, name, IPCX_QUEUE_PRODUCER, &o), 0);
	assert_int_equal(ipcx_queue_open(&c, name, IPCX_QUEUE_CONSUMER, &nb), 0);
	assert_int_equal(ipcx_queue_msg_max(c), 100);
	char buf[100], out[100];
	assert_int_equal(ipcx_queue_recv(c, out, sizeof out, NULL), -EAGAIN);
	assert_int_equal(ipcx_queue_recv(c, out, 99, NULL), -EINVAL);
	assert_int_equal(ipcx_queue_send(p, buf, 101, &nb), -EMSGSIZE);
	assert_int_equal(ipcx_queue_send(c, buf, 1, &nb), -EPERM);
	assert_int_equal(ipcx_queue_recv(p, out, sizeof out, &nb), -EPERM);
	/* wrap around several times, sizes 0..100 */
	for (int lap = 0; lap < 5; lap++) {
		for (int i = 0; i < 8; i++) {
			memset(buf, lap * 8 + i, sizeof buf);
			assert_int_equal(ipcx_queue_send(p, buf, (size_t)(i * 14 + lap) % 101, &nb),
					 0);
		}
		assert_int_equal(ipcx_queue_send(p, buf, 1, &nb), -EAGAIN);
		ipcx_queue_stats s;
		assert_int_equal(ipcx_queue_stat(c, &s), 0);
		assert_int_equal(s.depth, 8);
		assert_int_equal(s.producers, 1);
		assert_int_equal(s.consumers, 1);
		for (int i = 0; i < 8; i++) {
			ssize_t n = ipcx_queue_recv(c, out, sizeof out, NULL);
			assert_int_equal(n, (i * 14 + lap) % 101);
			for (ssize_t j = 0; j < n; j++)
				assert_int_equal((unsigned char)out[j], lap * 8 + i);
		}
		assert_int_equal(ipcx_queue_recv(c, out, sizeof out, NULL), -EAGAIN);
	}
	uint64_t t0 = t_now_ns();
	ipcx_wait dl = {IPCX_WAIT_BLOCK, 0, 20000000};
	assert_int_equal(ipcx_queue_recv(c, out, sizeof out, &dl), -ETIMEDOUT);
	assert_true(t_now_ns() - t0 >= 20000000);
	ipcx_queue_close(c);
	ipcx_queue_close(p);
	assert_int_equal(ipcx_queue_unlink(name), 0);
	assert_int_equal(t_count_fds(), fds);
	assert_int_equal(t_check_no_leaks(), 0);
}

static void test_zero_copy_and_skip(void **st)
{
	(void)st;
	ipcx_queue *p, *p2, *c;
	ipcx_queue_opts o = {.capacity = 4, .msg_max = 32};
	assert_int_equal(ipcx_queue_create(&p, NULL, IPCX_QUEUE_PRODUCER, &o), 0);
	int fd = ipcx_queue_fd(p);
	assert_int_equal(ipcx_queue_open_fd(&p2, fd, IPCX_QUEUE_PRODUCER, &nb), 0);
	assert_int_equal(ipcx_queue_open_fd(&c, fd, IPCX_QUEUE_CONSUMER, &nb), 0);
	void *slot;
	assert_int_equal(ipcx_queue_commit(p, 1), -EINVAL);
	assert_int_equal(ipcx_queue_reserve(p, &slot, &nb), 0);
	assert_int_equal(ipcx_queue_reserve(p, &slot, &nb), -EBUSY);
	assert_int_equal(ipcx_queue_send(p, "x", 1, &nb), -EBUSY);
	/* p2 sends after p's reservation: consumers wait for p's commit */
	assert_int_equal(ipcx_queue_send(p2, "second", 6, &nb), 0);
	const void *m;
	assert_int_equal(ipcx_queue_peek(c, &m, NULL), -EAGAIN);
	memcpy(slot, "first", 5);
	assert_int_equal(ipcx_queue_commit(p, 33), -EMSGSIZE);
	assert_int_equal(ipcx_queue_commit(p, 5), 0);
	assert_int_equal(ipcx_queue_peek(c, &m, NULL), 5);
	assert_memory_equal(m, "first", 5);
	assert_int_equal(ipcx_queue_peek(c, &m, NULL), -EBUSY);
	assert_int_equal(ipcx_queue_release(c), 0);
	assert_int_equal(ipcx_queue_release(c), -EINVAL);
	char out[32];
	assert_int_equal(ipcx_queue_recv(c, out, sizeof out, NULL), 6);
	assert_memory_equal(out, "second", 6);

	/* A handle closed with a reservation: a skip record, counted. */
	assert_int_equal(ipcx_queue_reserve(p2, &slot, &nb), 0);
	memcpy(slot, "torn", 4);
	assert_int_equal(ipcx_queue_send(p, "after", 5, &nb), 0);
	ipcx_queue_close(p2);
	assert_int_equal(ipcx_queue_recv(c, out, sizeof out, NULL), 5);
	assert_memory_equal(out, "after", 5);
	ipcx_queue_stats s;
	ipcx_queue_stat(c, &s);
	assert_int_equal(s.skipped, 1);
	assert_int_equal(s.producers, 1);

	/* Every producer gone and nothing queued: -EPIPE, not a hang. */
	ipcx_queue_close(p);
	ipcx_wait w = {IPCX_WAIT_BLOCK, 0, 5000000000ll};
	uint64_t t0 = t_now_ns();
	assert_int_equal(ipcx_queue_recv(c, out, sizeof out, &w), -EPIPE);
	assert_true(t_now_ns() - t0 < 4000000000ull); /* well before the 5 s deadline */
	ipcx_queue_close(c);
}

static void test_corrupt_header(void **st)
{
	(void)st;
	ipcx_queue *p, *c = NULL;
	assert_int_equal(ipcx_queue_create(&p, NULL, IPCX_QUEUE_PRODUCER, NULL), 0);
	int fd = ipcx_queue_fd(p);
	/* the queue header starts the data area, one page into the object */
	struct {
		off_t off;
		uint32_t val;
		int want;
	} cases[] = {
	    {4096 + 0, 0x12345678, -EBADMSG}, /* magic */
	    {4096 + 8, 7, -EPROTONOSUPPORT},  /* abi */
	    {4096 + 12, 1000, -EBADMSG},      /* capacity not a power of two */
	    {4096 + 12, 1u << 20, -EBADMSG},  /* capacity beyond the object */
	    {4096 + 16, 0, -EBADMSG},	      /* msg_max */
	    {4096 + 20, 8, -EBADMSG},	      /* stride below msg_max */
	    {4096 + 24, 12345, -EBADMSG},     /* slots_off */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint32_t orig;
		assert_int_equal(pread(fd, &orig, 4, cases[i].off), 4);
		assert_int_equal(pwrite(fd, &cases[i].val, 4, cases[i].off), 4);
		assert_int_equal(ipcx_queue_open_fd(&c, fd, IPCX_QUEUE_CONSUMER, NULL),
				 cases[i].want);
		assert_null(c);
		assert_int_equal(pwrite(fd, &orig, 4, cases[i].off), 4);
	}
	assert_int_equal(ipcx_queue_open_fd(&c, fd, IPCX_QUEUE_CONSUMER, NULL), 0);
	/* a slot length beyond msg_max: reported, dropped, not copied */
	assert_int_equal(ipcx_queue_send(p, "abc", 3, &nb), 0);
	uint32_t huge = 5000;
	off_t slot0 = 4096 + 768 + 2 * 64 * 128;
	assert_int_equal(pwrite(fd, &huge, 4, slot0 + 8), 4);
	char out[64];
	assert_int_equal(ipcx_queue_recv(c, out, sizeof out, &nb), -EBADMSG);
	assert_int_equal(ipcx_queue_recv(c, out, sizeof out, &nb), -EAGAIN);
	ipcx_queue_close(c);
	ipcx_queue_close(p);
}

/* A producer entry that names a live process by pid but with another start
 * time is a dead producer whose pid was recycled: an empty queue with no
 * other producer reports end of stream (-EPIPE) instead of waiting for it.
 * The peer table's layout: docs/queue.md. */
static void test_recycled_pid(void **st)
{
	(void)st;
	ipcx_queue *p, *c;
	assert_int_equal(ipcx_queue_create(&p, NULL, IPCX_QUEUE_PRODUCER, NULL), 0);
	int fd = ipcx_queue_fd(p);
	assert_int_equal(ipcx_queue_open_fd(&c, fd, IPCX_QUEUE_CONSUMER, NULL), 0);
	pid_t child = t_spawn(t_idle, NULL);
	ipcx_queue_close(p); /* its entry (the first) is free again */
	fd = ipcx_queue_fd(c);
	assert_true(t_proc_start(child) != 0);
	uint64_t start = t_proc_start(child) & 0xffffffffu;
	off_t entry0 = 4096 + 768;
	uint64_t who = start << 32 | (uint32_t)child;
	assert_int_equal(pwrite(fd, &who, 8, entry0), 8);
	ipcx_wait w = { IPCX_WAIT_BLOCK, 0, 100 * 1000 * 1000 };
	char out[64];
	assert_int_equal(ipcx_queue_recv(c, out, sizeof out, &w), -ETIMEDOUT);
	who = (start ^ 1) << 32 | (uint32_t)child;
	assert_int_equal(pwrite(fd, &who, 8, entry0), 8);
	w.timeout_ns = 5ll * 1000 * 1000 * 1000;
	assert_int_equal(ipcx_queue_recv(c, out, sizeof out, &w), -EPIPE);
	kill(child, SIGKILL);
	assert_int_equal(t_wait(child), 128 + SIGKILL);
	ipcx_queue_close(c);
}

static void test_too_many_peers(void **st)
{
	(void)st;
	ipcx_queue *q[IPCX_QUEUE_MAX_PEERS + 1];
	assert_int_equal(ipcx_queue_create(&q[0], NULL, IPCX_QUEUE_CONSUMER, NULL), 0);
	int fd = ipcx_queue_fd(q[0]);
	for (int i = 1; i < IPCX_QUEUE_MAX_PEERS; i++)
		assert_int_equal(ipcx_queue_open_fd(&q[i], fd, IPCX_QUEUE_CONSUMER, NULL), 0);
	ipcx_queue *extra;
	assert_int_equal(ipcx_queue_open_fd(&extra, fd, IPCX_QUEUE_CONSUMER, NULL), -EUSERS);
	ipcx_queue_close(q[5]);
	assert_int_equal(ipcx_queue_open_fd(&q[5], fd, IPCX_QUEUE_CONSUMER, NULL), 0);
	for (int i = IPCX_QUEUE_MAX_PEERS - 1; i >= 0; i--)
		ipcx_queue_close(q[i]);
}

static ipcx_queue *inherited;

static int use_inherited(void *arg)
{
	(void)arg;
	if (ipcx_queue_send(inherited, "x", 1, &nb) != -EPERM)
		return 1;
	ipcx_queue *own;
	if (ipcx_queue_open_fd(&own, ipcx_queue_fd(inherited), IPCX_QUEUE_PRODUCER, &nb) ||
	    ipcx_queue_send(own, "c", 1, NULL))
		return 2;
	ipcx_queue_close(own);
	ipcx_queue_close(inherited); /* only unmaps: the entries are the parent's */
	return 0;
}

static void test_fork_inherited(void **st)
{
	(void)st;
	assert_int_equal(
	    ipcx_queue_create(&inherited, NULL, IPCX_QUEUE_PRODUCER | IPCX_QUEUE_CONSUMER, NULL),
	    0);
	assert_int_equal(t_wait(t_spawn(use_inherited, NULL)), 0);
	ipcx_queue_stats s;
	ipcx_queue_stat(inherited, &s);
	assert_int_equal(s.producers, 1);
	assert_int_equal(s.consumers, 1);
	char out[64];
	assert_int_equal(ipcx_queue_recv(inherited, out, sizeof out, &nb), 1);
	assert_int_equal(out[0], 'c');
	assert_int_equal(ipcx_queue_send(inherited, "x", 1, &nb), 0);
	ipcx_queue_close(inherited);
}

int main(void)
{
	t_watchdog(50);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_args),
	    cmocka_unit_test(test_fill_drain),
	    cmocka_unit_test(test_zero_copy_and_skip),
	    cmocka_unit_test(test_corrupt_header),
	    cmocka_unit_test(test_too_many_peers), cmocka_unit_test(test_recycled_pid),
	    cmocka_unit_test(test_fork_inherited),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
