/* The SPSC ring, in one process: sizes, wrap-around, full and empty,
 * zero-copy, batching, close, bad arguments, corrupted shared state. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

static const ipcx_wait NB = { IPCX_WAIT_NONBLOCK, 0, -1 };

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 2654435761u + i * 31u);
}

static int check(const uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (uint8_t)(seed * 2654435761u + i * 31u))
			return 0;
	return 1;
}

struct pair {
	ipcx_ring *creator, *tx, *rx;
};

static void pair_open(struct pair *p, size_t cap)
{
	ipcx_ring_opts o = { .capacity = cap };
	assert_int_equal(ipcx_ring_create_anon(&p->creator, &o, IPCX_RING_NOROLE), 0);
	assert_int_equal(ipcx_ring_open_fd(&p->tx, ipcx_ring_fd(p->creator), IPCX_RING_PRODUCER, NULL), 0);
	assert_int_equal(ipcx_ring_open_fd(&p->rx, ipcx_ring_fd(p->creator), IPCX_RING_CONSUMER, NULL), 0);
}

static void pair_close(struct pair *p)
{
	ipcx_ring_close(p->tx);
	ipcx_ring_close(p->rx);
	ipcx_ring_close(p->creator);
}

static void test_sizes(void **st)
{
	(void)st;
	struct pair p;
	pair_open(&p, 4096);
	size_t max = ipcx_ring_max_msg(p.tx);
	assert_int_equal(max, 4096 / 2 - 64);
	static uint8_t in[4096], out[4096];
	size_t sizes[] = { 0, 1, 7, 8, 9, 100, max - 1, max };
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		fill(in, sizes[i], (uint32_t)i);
		assert_int_equal(ipcx_ring_send(p.tx, in, sizes[i], 0, &NB), 0);
		memset(out, 0, sizeof out);
		assert_int_equal(ipcx_ring_recv(p.rx, out, sizeof out, &NB), (ssize_t)sizes[i]);
		assert_true(check(out, sizes[i], (uint32_t)i));
	}
	assert_int_equal(ipcx_ring_send(p.tx, in, max + 1, 0, &NB), -EMSGSIZE);
	assert_int_equal(ipcx_ring_recv(p.rx, out, sizeof out, &NB), -EAGAIN);
	pair_close(&p);
}

static void test_wraparound(void **st)
{
	(void)st;
	struct pair p;
	pair_open(&p, 4096);
	static uint8_t in[2048], out[2048];
	size_t max = ipcx_ring_max_msg(p.tx);
	/* Sizes that do not divide the capacity: every position, many pads. */
	uint32_t sent = 0, got = 0;
	for (int round = 0; round < 20000; round++) {
		size_t n = (size_t)(round * 37) % (max + 1);
		fill(in, n, sent);
		int rc = ipcx_ring_send(p.tx, in, n, 0, &NB);
		if (rc == 0)
			sent++;
		else
			assert_int_equal(rc, -EAGAIN);
		if (round % 3 == 0 || rc == -EAGAIN) {
			ssize_t m = ipcx_ring_recv(p.rx, out, sizeof out, &NB);
			if (m >= 0) {
				assert_true(check(out, (size_t)m, got));
				got++;
			}
		}
	}
	ssize_t m;
	while ((m = ipcx_ring_recv(p.rx, out, sizeof out, &NB)) >= 0) {
		assert_true(check(out, (size_t)m, got));
		got++;
	}
	assert_int_equal(m, -EAGAIN);
	assert_int_equal(sent, got);
	assert_true(sent > 10000);
	pair_close(&p);
}

static void test_full_and_timeout(void **st)
{
	(void)st;
	struct pair p;
	pair_open(&p, 4096);
	uint8_t msg[100] = { 0 };
	int n = 0;
	while (ipcx_ring_send(p.tx, msg, sizeof msg, 0, &NB) == 0)
		n++;
	assert_int_equal(n, 4096 / 112); /* 8-byte header + 100 padded to 104 */
	ipcx_ring_stats s;
	assert_int_equal(ipcx_ring_stat(p.tx, &s), 0);
	assert_int_equal(s.used, (uint64_t)n * 112);
	/* Payloads of 256 bytes or more start on a cache line. */
	void *z;
	static uint8_t big[1024];
	while (ipcx_ring_recv(p.rx, msg, sizeof msg, &NB) >= 0)
		;
	for (int i = 0; i < 10; i++) {
		assert_int_equal(ipcx_ring_reserve(p.tx, 256 + (size_t)i * 8, &z, &NB), 0);
		assert_int_equal((uintptr_t)z % 64, 0);
		assert_int_equal(ipcx_ring_commit(p.tx, 256, 0), 0);
		assert_int_equal(ipcx_ring_recv(p.rx, big, sizeof big, &NB), 256);
		assert_int_equal(ipcx_ring_send(p.tx, msg, 1 + (size_t)i, 0, &NB), 0); /* misalign */
		assert_int_equal(ipcx_ring_recv(p.rx, msg, sizeof msg, &NB), 1 + i);
	}
	while (ipcx_ring_send(p.tx, msg, sizeof msg, 0, &NB) == 0)
		;
	/* A deadline on a full ring. */
	ipcx_wait w = { IPCX_WAIT_BLOCK, 0, 30 * 1000 * 1000 };
	uint64_t t0 = t_now_ns();
	assert_int_equal(ipcx_ring_send(p.tx, msg, sizeof msg, 0, &w), -ETIMEDOUT);
	assert_true(t_now_ns() - t0 >= 30 * 1000 * 1000);
	w.mode = IPCX_WAIT_ADAPTIVE;
	assert_int_equal(ipcx_ring_send(p.tx, msg, sizeof msg, 0, &w), -ETIMEDOUT);
	w.mode = IPCX_WAIT_SPIN;
	assert_int_equal(ipcx_ring_send(p.tx, msg, sizeof msg, 0, &w), -ETIMEDOUT);
	/* One out, one in. */
	assert_int_equal(ipcx_ring_recv(p.rx, msg, sizeof msg, &NB), 100);
	assert_int_equal(ipcx_ring_send(p.tx, msg, sizeof msg, 0, &NB), 0);
	/* Drain, then a deadline on an empty ring. */
	while (ipcx_ring_recv(p.rx, msg, sizeof msg, &NB) >= 0)
		;
	w.mode = IPCX_WAIT_BLOCK;
	t0 = t_now_ns();
	assert_int_equal(ipcx_ring_recv(p.rx, msg, sizeof msg, &w), -ETIMEDOUT);
	assert_true(t_now_ns() - t0 >= 30 * 1000 * 1000);
	pair_close(&p);
}

static void test_zero_copy(void **st)
{
	(void)st;
	struct pair p;
	pair_open(&p, 8192);
	void *dst;
	assert_int_equal(ipcx_ring_commit(p.tx, 0, 0), -EINVAL); /* nothing reserved */
	assert_int_equal(ipcx_ring_reserve(p.tx, 1000, &dst, &NB), 0);
	assert_int_equal((uintptr_t)dst % 8, 0);
	assert_int_equal(ipcx_ring_reserve(p.tx, 10, &dst, &NB), -EBUSY);
	assert_int_equal(ipcx_ring_send(p.tx, "x", 1, 0, &NB), -EBUSY);
	fill(dst, 500, 7);
	/* Not visible before the commit. */
	const void *src;
	size_t len;
	assert_int_equal(ipcx_ring_peek(p.rx, &src, &len, &NB), -EAGAIN);
	assert_int_equal(ipcx_ring_commit(p.tx, 1001, 0), -EINVAL); /* more than reserved */
	assert_int_equal(ipcx_ring_commit(p.tx, 500, 0), 0);        /* shrink */
	assert_int_equal(ipcx_ring_peek(p.rx, &src, &len, &NB), 0);
	assert_int_equal(len, 500);
	assert_true(check(src, len, 7));
	const void *again;
	assert_int_equal(ipcx_ring_peek(p.rx, &again, &len, &NB), 0);
	assert_ptr_equal(src, again);
	assert_int_equal(ipcx_ring_release(p.rx), 0);
	assert_int_equal(ipcx_ring_release(p.rx), -EINVAL);
	assert_int_equal(ipcx_ring_peek(p.rx, &src, &len, &NB), -EAGAIN);
	pair_close(&p);
}

static void test_small_buffer_keeps_message(void **st)
{
	(void)st;
	struct pair p;
	pair_open(&p, 4096);
	uint8_t in[64], out[64];
	fill(in, 64, 3);
	assert_int_equal(ipcx_ring_send(p.tx, in, 64, 0, &NB), 0);
	assert_int_equal(ipcx_ring_recv(p.rx, out, 63, &NB), -EMSGSIZE);
	assert_int_equal(ipcx_ring_recv(p.rx, out, 64, &NB), 64);
	assert_true(check(out, 64, 3));
	pair_close(&p);
}

static void test_batching(void **st)
{
	(void)st;
	struct pair p;
	pair_open(&p, 4096);
	uint8_t b[16] = { 0 };
	for (int i = 0; i < 5; i++)
		assert_int_equal(ipcx_ring_send(p.tx, b, sizeof b, IPCX_RING_MORE, &NB), 0);
	assert_int_equal(ipcx_ring_recv(p.rx, b, sizeof b, &NB), -EAGAIN);
	assert_int_equal(ipcx_ring_flush(p.tx), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(ipcx_ring_recv(p.rx, b, sizeof b, &NB), 16);
	/* A batch the producer cannot extend is published before it waits. */
	int sent = 0;
	while (ipcx_ring_send(p.tx, b, sizeof b, IPCX_RING_MORE, &NB) == 0)
		sent++;
	int got = 0;
	while (ipcx_ring_recv(p.rx, b, sizeof b, &NB) == 16)
		got++;
	assert_int_equal(got, sent);
	/* Pending bytes are published once a quarter of the ring (1 KiB here)
	 * is reached: the 43rd record of 24 bytes crosses it (a fresh ring, so
	 * that no padding record counts). */
	pair_close(&p);
	pair_open(&p, 4096);
	ipcx_ring_stats before, now;
	assert_int_equal(ipcx_ring_stat(p.rx, &before), 0);
	int k = 0;
	do {
		assert_int_equal(ipcx_ring_send(p.tx, b, sizeof b, IPCX_RING_MORE, &NB), 0);
		k++;
		assert_int_equal(ipcx_ring_stat(p.rx, &now), 0);
	} while (now.sent_bytes == before.sent_bytes && k < 100);
	assert_int_equal(k, 43);
	assert_int_equal(now.sent_bytes - before.sent_bytes, 43 * 24);
	for (int i = 0; i < k; i++)
		assert_int_equal(ipcx_ring_recv(p.rx, b, sizeof b, &NB), 16);
	assert_int_equal(ipcx_ring_recv(p.rx, b, sizeof b, &NB), -EAGAIN);
	pair_close(&p);
}

static void test_close_semantics(void **st)
{
	(void)st;
	struct pair p;
	pair_open(&p, 4096);
	uint8_t b[8] = { 1 };
	assert_int_equal(ipcx_ring_send(p.tx, b, 8, 0, &NB), 0);
	assert_int_equal(ipcx_ring_send(p.tx, b, 8, IPCX_RING_MORE, &NB), 0);
	ipcx_ring_close(p.tx); /* publishes the pending one */
	p.tx = NULL;
	assert_int_equal(ipcx_ring_recv(p.rx, b, 8, NULL), 8);
	assert_int_equal(ipcx_ring_recv(p.rx, b, 8, NULL), 8);
	assert_int_equal(ipcx_ring_recv(p.rx, b, 8, NULL), -EPIPE);
	/* A new producer may attach after a close. */
	assert_int_equal(ipcx_ring_open_fd(&p.tx, ipcx_ring_fd(p.creator), IPCX_RING_PRODUCER, NULL), 0);
	assert_int_equal(ipcx_ring_send(p.tx, b, 8, 0, &NB), 0);
	assert_int_equal(ipcx_ring_recv(p.rx, b, 8, &NB), 8);
	/* Consumer closes: the producer is told at once. */
	ipcx_ring_close(p.rx);
	p.rx = NULL;
	assert_int_equal(ipcx_ring_send(p.tx, b, 8, 0, &NB), -EPIPE);
	void *d;
	assert_int_equal(ipcx_ring_reserve(p.tx, 8, &d, NULL), -EPIPE);
	pair_close(&p);
}

static void test_roles(void **st)
{
	(void)st;
	struct pair p;
	pair_open(&p, 4096);
	ipcx_ring *again = (ipcx_ring *)1;
	/* Roles are exclusive while their holder lives. */
	assert_int_equal(ipcx_ring_open_fd(&again, ipcx_ring_fd(p.creator), IPCX_RING_PRODUCER, NULL),
			 -EBUSY);
	assert_null(again);
	assert_int_equal(ipcx_ring_open_fd(&again, ipcx_ring_fd(p.creator), 7, NULL), -EINVAL);
	uint8_t b[8];
	assert_int_equal(ipcx_ring_send(p.rx, b, 8, 0, &NB), -EPERM);
	assert_int_equal(ipcx_ring_recv(p.tx, b, 8, &NB), -EPERM);
	assert_int_equal(ipcx_ring_send(p.creator, b, 8, 0, &NB), -EPERM);
	assert_int_equal(ipcx_ring_recv(p.creator, b, 8, &NB), -EPERM);
	assert_int_equal(ipcx_ring_send(NULL, b, 8, 0, &NB), -EINVAL);
	assert_int_equal(ipcx_ring_send(p.tx, NULL, 8, 0, &NB), -EINVAL);
	ipcx_wait bad = { 99, 0, -1 };
	assert_int_equal(ipcx_ring_set_wait(p.tx, &bad), -EINVAL);
	assert_int_equal(ipcx_ring_recv(p.rx, b, 8, &bad), -EINVAL);
	assert_int_equal(ipcx_ring_open_fd(&again, ipcx_ring_fd(p.creator), IPCX_RING_NOROLE, &bad),
			 -EINVAL);
	/* A dead holder's role can be taken over. */
	pid_t pid = fork();
	if (pid == 0) {
		ipcx_ring *r;
		_exit(ipcx_ring_open_fd(&r, ipcx_ring_fd(p.creator), IPCX_RING_PRODUCER, NULL) == -EBUSY
			      ? 0 : 1);
	}
	assert_int_equal(t_wait(pid), 0);
	ipcx_ring_close(p.tx);
	pid = fork();
	if (pid == 0) {
		ipcx_ring *r;
		if (ipcx_ring_open_fd(&r, ipcx_ring_fd(p.creator), IPCX_RING_PRODUCER, NULL))
			_exit(1);
		_exit(ipcx_ring_send(r, "hi", 2, 0, NULL) ? 1 : 0); /* dies holding the role */
	}
	assert_int_equal(t_wait(pid), 0);
	assert_int_equal(ipcx_ring_open_fd(&p.tx, ipcx_ring_fd(p.creator), IPCX_RING_PRODUCER, NULL), 0);
	assert_int_equal(ipcx_ring_recv(p.rx, b, 8, &NB), 2);
	pair_close(&p);
	assert_int_equal(ipcx_ring_create_anon(&again, &(ipcx_ring_opts){ .capacity = (size_t)1 << 41 },
					       IPCX_RING_NOROLE), -EINVAL);
}

static void test_named(void **st)
{
	(void)st;
	const char *name = t_name("ring");
	ipcx_ring *tx, *rx;
	assert_int_equal(ipcx_ring_create(&tx, name, NULL, IPCX_RING_PRODUCER), 0);
	assert_int_equal(ipcx_ring_create(&rx, name, NULL, IPCX_RING_CONSUMER), -EEXIST);
	assert_int_equal(ipcx_ring_open(&rx, name, IPCX_RING_CONSUMER, NULL), 0);
	assert_int_equal(ipcx_ring_send(tx, "hello", 5, 0, NULL), 0);
	char b[8];
	assert_int_equal(ipcx_ring_recv(rx, b, sizeof b, NULL), 5);
	assert_memory_equal(b, "hello", 5);
	ipcx_region *raw;
	assert_int_equal(ipcx_region_open(&raw, name, IPCX_KIND_RAW), -EMEDIUMTYPE);
	ipcx_ring_close(tx);
	ipcx_ring_close(rx);
	assert_int_equal(ipcx_ring_unlink(name), 0);
	assert_int_equal(t_check_no_leaks(), 0);
}

/* A role holder that died and whose pid now names another process is dead
 * to the ring: its peer gets -EPIPE and its role can be taken over.  The
 * producer's role word (docs/ring.md: pid, state, start time) is made to
 * name a live child with the wrong start time, as a recycled pid would. */
static void test_recycled_pid(void **st)
{
	(void)st;
	struct pair p;
	pair_open(&p, 4096);
	uint8_t *m = mmap(NULL, 4096 + 1024, PROT_READ | PROT_WRITE, MAP_SHARED,
			  ipcx_ring_fd(p.creator), 0);
	assert_true(m != MAP_FAILED);
	_Atomic uint64_t *producer = (_Atomic uint64_t *)(m + 4096 + 640);
	pid_t child = t_spawn(t_idle, NULL);
	assert_true(t_proc_start(child) != 0);
	uint64_t start = t_proc_start(child) & ((1ull << 30) - 1);
	ipcx_ring_close(p.tx); /* we stand in for the producer from here */
	p.tx = NULL;
	ipcx_ring *tx = NULL;
	/* The right start time: the child holds the role. */
	atomic_store(producer, start << 34 | 1ull << 32 | (uint32_t)child);
	assert_int_equal(ipcx_ring_open_fd(&tx, ipcx_ring_fd(p.creator), IPCX_RING_PRODUCER, NULL),
			 -EBUSY);
	ipcx_wait w = { IPCX_WAIT_BLOCK, 0, 200 * 1000 * 1000 };
	uint8_t b[8];
	assert_int_equal(ipcx_ring_recv(p.rx, b, sizeof b, &w), -ETIMEDOUT);
	/* Another start time: the pid was recycled, the holder is gone. */
	atomic_store(producer, (start ^ 1) << 34 | 1ull << 32 | (uint32_t)child);
	w.timeout_ns = 5ll * 1000 * 1000 * 1000;
	assert_int_equal(ipcx_ring_recv(p.rx, b, sizeof b, &w), -EPIPE);
	assert_int_equal(ipcx_ring_open_fd(&tx, ipcx_ring_fd(p.creator), IPCX_RING_PRODUCER, NULL), 0);
	assert_int_equal(ipcx_ring_send(tx, "ok", 2, 0, &NB), 0);
	assert_int_equal(ipcx_ring_recv(p.rx, b, sizeof b, &NB), 2);
	ipcx_ring_close(tx);
	kill(child, SIGKILL);
	assert_int_equal(t_wait(child), 128 + SIGKILL);
	munmap(m, 4096 + 1024);
	pair_close(&p);
}

/* Damage the shared state through a second mapping of the object. */
static void test_corruption(void **st)
{
	(void)st;
	struct pair p;
	pair_open(&p, 4096);
	size_t map = 4096 + 1024 + 4096;
	uint8_t *m = mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_SHARED, ipcx_ring_fd(p.creator), 0);
	assert_true(m != MAP_FAILED);
	uint8_t *h = m + 4096; /* past the region header page */
	uint8_t *buf = h + 1024;
	uint8_t b[64] = { 0 };
	ipcx_ring *r = NULL;

	/* A record length beyond what was published. */
	assert_int_equal(ipcx_ring_send(p.tx, b, 16, 0, &NB), 0);
	uint32_t evil = 3000;
	memcpy(buf, &evil, 4);
	assert_int_equal(ipcx_ring_recv(p.rx, b, sizeof b, &NB), -EBADMSG);
	/* A record type that is neither message nor padding. */
	evil = 16;
	memcpy(buf, &evil, 4);
	memcpy(buf + 4, "ZZZZ", 4);
	assert_int_equal(ipcx_ring_recv(p.rx, b, sizeof b, &NB), -EBADMSG);
	/* A tail far beyond the head. */
	uint64_t tail = 1ull << 40;
	memcpy(h + 128, &tail, 8);
	assert_int_equal(ipcx_ring_recv(p.rx, b, sizeof b, &NB), -EBADMSG);
	/* Opening sees bad indices, capacity, magic. */
	ipcx_ring_close(p.rx);
	p.rx = NULL;
	assert_int_equal(ipcx_ring_open_fd(&r, ipcx_ring_fd(p.creator), IPCX_RING_CONSUMER, NULL), -EBADMSG);
	uint64_t cap = 1ull << 20; /* larger than the object */
	memcpy(h + 16, &cap, 8);
	assert_int_equal(ipcx_ring_open_fd(&r, ipcx_ring_fd(p.creator), IPCX_RING_NOROLE, NULL), -EBADMSG);
	cap = 3000; /* not a power of two */
	memcpy(h + 16, &cap, 8);
	assert_int_equal(ipcx_ring_open_fd(&r, ipcx_ring_fd(p.creator), IPCX_RING_NOROLE, NULL), -EBADMSG);
	uint32_t abi = 1; /* the previous layout */
	cap = 4096;
	memcpy(h + 16, &cap, 8);
	memcpy(h + 8, &abi, 4);
	assert_int_equal(ipcx_ring_open_fd(&r, ipcx_ring_fd(p.creator), IPCX_RING_NOROLE, NULL),
			 -EPROTONOSUPPORT);
	memset(h, 0, 8);
	assert_int_equal(ipcx_ring_open_fd(&r, ipcx_ring_fd(p.creator), IPCX_RING_NOROLE, NULL), -EBADMSG);
	assert_null(r);
	munmap(m, map);
	pair_close(&p);
}

int main(void)
{
	t_watchdog(120);
	int fds = t_count_fds();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),		   cmocka_unit_test(test_wraparound),
		cmocka_unit_test(test_full_and_timeout),   cmocka_unit_test(test_zero_copy),
		cmocka_unit_test(test_small_buffer_keeps_message), cmocka_unit_test(test_batching),
		cmocka_unit_test(test_close_semantics),    cmocka_unit_test(test_roles),
		cmocka_unit_test(test_named),		   cmocka_unit_test(test_corruption),
		cmocka_unit_test(test_recycled_pid),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	if (t_count_fds() != fds) {
		fprintf(stderr, "leaked %d file descriptor(s)\n", t_count_fds() - fds);
		return 1;
	}
	return rc;
}
