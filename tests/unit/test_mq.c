/* Mailbox: priorities, FIFO, limits, full policies, shaping, fairness,
 * zero-copy, readiness, batches, peer death (also in the middle of a
 * batch's run), a stopped receiver, and lock-holder death.
 * ipcx-test-labels: tsan
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "mq/mq_internal.h"
#include "t_durable.h"
#include "testutil.h"

static const ipcx_wait NB = { IPCX_WAIT_NONBLOCK, 0, -1 };

static ipcx_mq *mk(const char *name, uint32_t depth, uint32_t max_msg, uint32_t full)
{
	ipcx_mq_opts o = { .depth = depth, .max_msg = max_msg, .full = full };
	ipcx_mq *mq = NULL;
	assert_int_equal(ipcx_mq_create(&mq, name, &o), 0);
	return mq;
}

static void done(ipcx_mq *mq, const char *name)
{
	assert_int_equal(ipcx_mq_close(mq), 0);
	assert_int_equal(ipcx_mq_unlink(name), 0);
}

static void test_basics(void **st)
{
	(void)st;
	int fds = t_count_fds();
	const char *name = t_name("mq");
	ipcx_mq *a = mk(name, 8, 100, IPCX_MQ_FULL_FAIL), *b = NULL;
	ipcx_mq *x = (ipcx_mq *)1;
	assert_int_equal(ipcx_mq_create(&x, name, NULL), -EEXIST);
	assert_null(x);
	assert_int_equal(ipcx_mq_create(&x, "bad/name", NULL), -EINVAL);
	ipcx_mq_opts bad = { .max_msg = IPCX_MQ_MSG_MAX + 1 };
	assert_int_equal(ipcx_mq_create(&x, t_name("b"), &bad), -EINVAL);
	assert_int_equal(ipcx_mq_open(&x, "ipcx-no-such-mailbox", NULL), -ENOENT);
	assert_int_equal(ipcx_mq_open(&b, name, NULL), 0);

	char buf[128];
	unsigned prio = 99;
	assert_int_equal(ipcx_mq_recv(b, buf, sizeof buf, &prio, &NB), -EAGAIN);
	assert_int_equal(ipcx_mq_send(a, "hello", 5, 3, NULL), 0);
	assert_int_equal(ipcx_mq_send(a, NULL, 0, 3, NULL), 0); /* 0 bytes */
	assert_int_equal(ipcx_mq_send(a, buf, 101, 0, NULL), -EMSGSIZE);
	assert_int_equal(ipcx_mq_send(a, buf, 1, IPCX_MQ_PRIO_LEVELS, NULL), -EINVAL);
	ipcx_wait bogus = { 99, 0, -1 };
	assert_int_equal(ipcx_mq_send(a, buf, 1, 0, &bogus), -EINVAL);
	assert_int_equal(ipcx_mq_recv(b, buf, sizeof buf, NULL, &bogus), -EINVAL);
	assert_int_equal(ipcx_mq_recv(b, buf, 4, &prio, &NB), -EMSGSIZE); /* stays queued */
	assert_int_equal(ipcx_mq_recv(b, buf, sizeof buf, &prio, &NB), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(prio, 3);
	assert_int_equal(ipcx_mq_recv(b, buf, sizeof buf, &prio, &NB), 0);
	ipcx_wait tmo = { IPCX_WAIT_BLOCK, 0, 20 * 1000 * 1000 };
	uint64_t t0 = t_now_ns();
	assert_int_equal(ipcx_mq_recv(b, buf, sizeof buf, &prio, &tmo), -ETIMEDOUT);
	assert_true(t_now_ns() - t0 >= 20 * 1000 * 1000);

	ipcx_mq_attr at;
	assert_int_equal(ipcx_mq_getattr(a, &at), 0);
	assert_int_equal(at.sent, 2);
	assert_int_equal(at.received, 2);
	assert_int_equal(at.depth, 0);
	assert_int_equal(at.attached, 2);
	assert_int_equal(at.senders, 1);
	assert_int_equal(at.receivers, 1);
	assert_int_equal(at.max_msg, 100);
	assert_int_equal(ipcx_mq_close(b), 0);
	assert_int_equal(ipcx_mq_close(NULL), 0);
	done(a, name);
	assert_int_equal(ipcx_mq_unlink(name), -ENOENT);
	assert_int_equal(t_count_fds(), fds);
	assert_int_equal(t_check_no_leaks(), 0);
}

static void test_priority_fifo(void **st)
{
	(void)st;
	const char *name = t_name("pr");
	ipcx_mq *mq = mk(name, 256, 16, IPCX_MQ_FULL_FAIL);
	/* 4 messages at each of 64 levels, interleaved. */
	for (unsigned k = 0; k < 4; k++)
		for (unsigned p = 0; p < IPCX_MQ_PRIO_LEVELS; p++) {
			unsigned v[2] = { p, k };
			assert_int_equal(ipcx_mq_send(mq, v, sizeof v, p, NULL), 0);
		}
	ipcx_mq_attr at;
	assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
	assert_int_equal(at.depth, 256);
	for (unsigned p = 0; p < IPCX_MQ_PRIO_LEVELS; p++)
		assert_int_equal(at.per_prio[p], 4);
	assert_int_equal(ipcx_mq_send(mq, "x", 1, 0, NULL), -EAGAIN); /* FULL_FAIL */
	for (unsigned p = IPCX_MQ_PRIO_LEVELS; p-- > 0;)
		for (unsigned k = 0; k < 4; k++) {
			unsigned v[2], prio;
			assert_int_equal(ipcx_mq_recv(mq, v, sizeof v, &prio, &NB), sizeof v);
			assert_int_equal(prio, p);
			assert_int_equal(v[0], p);
			assert_int_equal(v[1], k);
		}
	done(mq, name);
}

/* Batches: order and priorities as single calls; partial results; limits. */
static void test_batch(void **st)
{
	(void)st;
	const char *name = t_name("bt");
	ipcx_mq *mq = mk(name, 16, 32, IPCX_MQ_FULL_FAIL);
	unsigned data[20];
	ipcx_mq_vec v[20];
	for (unsigned k = 0; k < 20; k++) {
		data[k] = k;
		/* runs of one priority: 0-3 at 2, 4-7 at 5, 8-11 at 2, ... */
		v[k] = (ipcx_mq_vec){ .buf = &data[k], .len = sizeof data[k],
				      .prio = k / 4 % 2 ? 5 : 2 };
	}
	assert_int_equal(ipcx_mq_send_batch(mq, v, 0, NULL), -EINVAL);
	assert_int_equal(ipcx_mq_send_batch(mq, NULL, 1, NULL), -EINVAL);
	assert_int_equal(ipcx_mq_send_batch(NULL, v, 1, NULL), -EINVAL);
	assert_int_equal(ipcx_mq_send_batch(mq, v, IPCX_MQ_BATCH_MAX + 1, NULL), -EINVAL);
	/* Full after 16 (FULL_FAIL): the call says how many went. */
	assert_int_equal(ipcx_mq_send_batch(mq, v, 20, NULL), 16);
	assert_int_equal(ipcx_mq_send_batch(mq, v + 16, 4, NULL), -EAGAIN);
	ipcx_mq_attr at;
	assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
	assert_int_equal(at.depth, 16);
	assert_int_equal(at.per_prio[2], 8);
	assert_int_equal(at.per_prio[5], 8);
	assert_int_equal(at.sent, 16);

	/* Receive: the highest level first, FIFO within it, as single calls. */
	unsigned out[16];
	ipcx_mq_vec r[16];
	for (unsigned k = 0; k < 16; k++)
		r[k] = (ipcx_mq_vec){ .buf = &out[k], .cap = sizeof out[k] };
	r[0].cap = 2;
	assert_int_equal(ipcx_mq_recv_batch(mq, r, 16, &NB), -EMSGSIZE); /* stays */
	r[0].cap = sizeof out[0];
	r[3].cap = 2; /* ends the batch at 3; the message stays */
	assert_int_equal(ipcx_mq_recv_batch(mq, r, 16, &NB), 3);
	r[3].cap = sizeof out[3];
	assert_int_equal(ipcx_mq_recv_batch(mq, r + 3, 13, &NB), 13);
	static const unsigned want[16] = { 4, 5, 6, 7, 12, 13, 14, 15, 0, 1, 2, 3, 8, 9, 10, 11 };
	for (unsigned k = 0; k < 16; k++) {
		assert_int_equal(out[k], want[k]);
		assert_int_equal(r[k].len, sizeof out[k]);
		assert_int_equal(r[k].prio, want[k] / 4 % 2 ? 5 : 2);
		assert_int_equal(r[k].flags, 0);
	}
	assert_int_equal(ipcx_mq_recv_batch(mq, r, 16, &NB), -EAGAIN);
	ipcx_wait tmo = { IPCX_WAIT_BLOCK, 0, 20 * 1000 * 1000 };
	assert_int_equal(ipcx_mq_recv_batch(mq, r, 16, &tmo), -ETIMEDOUT);

	/* An invalid message ends a batch; the next call reports it. */
	char big[33] = { 0 };
	v[2] = (ipcx_mq_vec){ .buf = big, .len = sizeof big, .prio = 1 };
	assert_int_equal(ipcx_mq_send_batch(mq, v, 4, NULL), 2);
	assert_int_equal(ipcx_mq_send_batch(mq, v + 2, 2, NULL), -EMSGSIZE);
	v[2] = (ipcx_mq_vec){ .buf = big, .len = 1, .prio = IPCX_MQ_PRIO_LEVELS };
	assert_int_equal(ipcx_mq_send_batch(mq, v + 2, 2, NULL), -EINVAL);
	v[2] = (ipcx_mq_vec){ .buf = NULL, .len = 0, .prio = 1 }; /* 0 bytes is fine */
	assert_int_equal(ipcx_mq_send_batch(mq, v + 2, 2, NULL), 2);
	assert_int_equal(ipcx_mq_recv_batch(mq, r, 16, &NB), 4);
	assert_int_equal(r[3].len, 0); /* priority 1, after the three at 2 */
	assert_int_equal(r[3].prio, 1);
	assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
	assert_int_equal(at.sent, 20);
	assert_int_equal(at.received, 20);
	done(mq, name);
}

/* A blocked batch receiver in one process wakes to a batch sent by another,
 * and a batch sender waits for room, on a plain and on a persistent
 * (non-plain: single calls underneath) mailbox. */
static int batch_peer(void *p)
{
	const char *name = p;
	ipcx_mq *mq;
	if (ipcx_mq_open(&mq, name, NULL))
		return 2;
	unsigned data[100];
	ipcx_mq_vec v[100];
	for (unsigned k = 0; k < 100; k++) {
		data[k] = k;
		v[k] = (ipcx_mq_vec){ .buf = &data[k], .len = sizeof data[k], .prio = 3 };
	}
	t_sleep_ms(30); /* let the receiver block first */
	ipcx_wait w = { IPCX_WAIT_BLOCK, 0, 5000 * 1000 * 1000ll };
	int n = ipcx_mq_send_batch(mq, v, 100, &w); /* depth 8: waits for room */
	ipcx_mq_close(mq);
	return n == 100 ? 0 : 3;
}

static void batch_across(const char *name, ipcx_mq *mq)
{
	pid_t pid = t_spawn(batch_peer, (void *)name);
	ipcx_wait w = { IPCX_WAIT_BLOCK, 0, 5000 * 1000 * 1000ll };
	unsigned out[7];
	ipcx_mq_vec r[7];
	for (unsigned k = 0; k < 7; k++)
		r[k] = (ipcx_mq_vec){ .buf = &out[k], .cap = sizeof out[k] };
	for (unsigned got = 0; got < 100;) {
		int n = ipcx_mq_recv_batch(mq, r, 7, &w);
		assert_true(n > 0);
		for (int j = 0; j < n; j++, got++)
			assert_int_equal(out[j], got);
	}
	assert_int_equal(t_wait(pid), 0);
}

static void test_batch_processes(void **st)
{
	(void)st;
	const char *name = t_name("bp");
	ipcx_mq *mq = mk(name, 8, 16, IPCX_MQ_FULL_BLOCK);
	batch_across(name, mq);
	done(mq, name);
	const char *dir = t_durable_dir();
	if (!dir)
		skip(); /* no real file system for the log */
	char path[4200];
	snprintf(path, sizeof path, "%s/log", dir);
	ipcx_mq_opts o = { .depth = 8, .max_msg = 16, .log_path = path };
	assert_int_equal(ipcx_mq_create(&mq, name, &o), 0);
	batch_across(name, mq);
	done(mq, name);
	t_rmdir_all(dir);
}

static void test_full_policies(void **st)
{
	(void)st;
	const char *name = t_name("fb");
	/* BLOCK: non-blocking and timed calls give -EAGAIN / -ETIMEDOUT. */
	ipcx_mq *mq = mk(name, 2, 8, IPCX_MQ_FULL_BLOCK);
	assert_int_equal(ipcx_mq_send(mq, "a", 1, 0, NULL), 0);
	assert_int_equal(ipcx_mq_send(mq, "b", 1, 0, NULL), 0);
	assert_int_equal(ipcx_mq_send(mq, "c", 1, 0, &NB), -EAGAIN);
	ipcx_wait tmo = { IPCX_WAIT_ADAPTIVE, 0, 10 * 1000 * 1000 };
	assert_int_equal(ipcx_mq_send(mq, "c", 1, 0, &tmo), -ETIMEDOUT);
	done(mq, name);

	/* DROP: the oldest message of the lowest level goes. */
	name = t_name("fd");
	mq = mk(name, 3, 8, IPCX_MQ_FULL_DROP);
	assert_int_equal(ipcx_mq_send(mq, "l1", 2, 1, NULL), 0);
	assert_int_equal(ipcx_mq_send(mq, "h1", 2, 5, NULL), 0);
	assert_int_equal(ipcx_mq_send(mq, "l2", 2, 1, NULL), 0);
	assert_int_equal(ipcx_mq_send(mq, "m1", 2, 3, NULL), 0); /* drops l1 */
	assert_int_equal(ipcx_mq_send(mq, "z0", 2, 0, NULL), -ENOBUFS); /* all outrank it */
	assert_int_equal(ipcx_mq_send(mq, "m2", 2, 3, NULL), 0); /* drops l2 */
	ipcx_mq_attr at;
	assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
	assert_int_equal(at.dropped, 3);
	assert_int_equal(at.depth, 3);
	const char *want[] = { "h1", "m1", "m2" };
	for (int i = 0; i < 3; i++) {
		char b[8];
		assert_int_equal(ipcx_mq_recv(mq, b, sizeof b, NULL, &NB), 2);
		assert_memory_equal(b, want[i], 2);
	}
	done(mq, name);

	/* Bytes bound: two 6-byte messages do not fit in 10 bytes. */
	name = t_name("by");
	ipcx_mq_opts o = { .depth = 8, .max_msg = 8, .max_bytes = 10, .full = IPCX_MQ_FULL_FAIL };
	assert_int_equal(ipcx_mq_create(&mq, name, &o), 0);
	assert_int_equal(ipcx_mq_send(mq, "123456", 6, 0, NULL), 0);
	assert_int_equal(ipcx_mq_send(mq, "123456", 6, 0, NULL), -EAGAIN);
	assert_int_equal(ipcx_mq_send(mq, "1234", 4, 0, NULL), 0);
	done(mq, name);
}

static void test_zero_copy_large(void **st)
{
	(void)st;
	const char *name = t_name("zc");
	ipcx_mq *mq = mk(name, 4, 1u << 20, IPCX_MQ_FULL_FAIL);
	ipcx_mq_msg m, m2;
	assert_int_equal(ipcx_mq_loan(mq, &m, 1u << 20, 7, NULL), 0);
	assert_int_equal((uintptr_t)m.data % 4096, 0);
	memset(m.data, 0xab, 1u << 20);
	assert_int_equal(ipcx_mq_loan(mq, &m2, 100, 1, NULL), 0);
	assert_int_equal(ipcx_mq_cancel(mq, &m2), 0);
	assert_int_equal(ipcx_mq_cancel(mq, &m2), -EINVAL); /* not held any more */
	assert_int_equal(ipcx_mq_take(mq, &m2, &NB), -EAGAIN); /* loans are invisible */
	assert_int_equal(ipcx_mq_commit(mq, &m), 0);
	assert_int_equal(ipcx_mq_commit(mq, &m), -EINVAL); /* twice */
	assert_int_equal(ipcx_mq_take(mq, &m2, &NB), 0);
	assert_int_equal(m2.len, 1u << 20);
	assert_int_equal(m2.prio, 7);
	unsigned char *p = m2.data;
	assert_int_equal(p[0], 0xab);
	assert_int_equal(p[(1u << 20) - 1], 0xab);
	assert_int_equal(ipcx_mq_release(mq, &m2), 0);
	/* A loan may shrink at commit, not grow. */
	assert_int_equal(ipcx_mq_loan(mq, &m, 64, 0, NULL), 0);
	m.len = 65;
	assert_int_equal(ipcx_mq_commit(mq, &m), -EMSGSIZE);
	m.len = 10;
	assert_int_equal(ipcx_mq_commit(mq, &m), 0);
	char b[64];
	assert_int_equal(ipcx_mq_recv(mq, b, sizeof b, NULL, &NB), 10);
	done(mq, name);
}

/* Send len-byte messages for a second at a time and check the shaped rate
 * (units per second: messages if len == 1 and rate is in msgs/s, else
 * bytes).  It may never exceed rate x time + burst.  It may fall short only
 * if the sender lost the CPU (tokens above the burst are not banked), so the
 * lower bound (95%) is checked on the best of three seconds. */
static void check_shaped_rate(ipcx_mq *mq, size_t len, double rate, double burst)
{
	static char msg[1000];
	double unit = len == 1 ? 1 : (double)len, best = 0;
	for (int attempt = 0; attempt < 3 && best < (rate + burst) * 0.95; attempt++) {
		uint64_t t0 = t_now_ns();
		double n = 0;
		while (t_now_ns() - t0 < 1000000000ull) {
			assert_int_equal(ipcx_mq_send(mq, msg, len, 1, NULL), 0);
			n += unit;
		}
		double secs = (double)(t_now_ns() - t0) / 1e9;
		print_message("shaped at %.0f/s (burst %.0f): %.0f in %.3f s\n", rate, burst, n, secs);
		assert_true(n <= (rate * secs + burst) * 1.05);
		if (n > best)
			best = n;
	}
	assert_true(best >= (rate + burst) * 0.95);
}

/* Rate over one second within 5% of the configured rate (plus the burst). */
static void test_shaping(void **st)
{
	(void)st;
	const char *name = t_name("sh");
	ipcx_mq_opts o = { .depth = 16, .max_msg = 1000, .full = IPCX_MQ_FULL_DROP };
	o.shape.msgs_per_s = 2000;
	o.shape.burst_msgs = 20;
	ipcx_mq *mq;
	assert_int_equal(ipcx_mq_create(&mq, name, &o), 0);
	check_shaped_rate(mq, 1, 2000, 20);
	ipcx_mq_attr at;
	assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
	assert_true(at.shaped > 0);
	/* The bucket holds at most the burst: a quick run of non-blocking sends
	 * runs out of tokens. */
	int rc = 0;
	for (int i = 0; i < 100 && rc == 0; i++)
		rc = ipcx_mq_send(mq, "x", 1, 1, &NB);
	assert_int_equal(rc, -EAGAIN);
	done(mq, name);

	/* Bytes per second, per sender: 1000-byte messages at 500 kB/s. */
	name = t_name("sb");
	memset(&o.shape, 0, sizeof o.shape);
	o.shape_sender.bytes_per_s = 500000;
	o.shape_sender.burst_bytes = 10000;
	assert_int_equal(ipcx_mq_create(&mq, name, &o), 0);
	check_shaped_rate(mq, 1000, 500000, 10000);
	done(mq, name);
}

static void test_fairness(void **st)
{
	(void)st;
	for (int fair = 0; fair <= 1; fair++) {
		const char *name = t_name("fa");
		ipcx_mq_opts o = { .depth = 16, .max_msg = 8, .full = IPCX_MQ_FULL_FAIL, .fair = (uint32_t)fair };
		ipcx_mq *flood, *quiet;
		assert_int_equal(ipcx_mq_create(&flood, name, &o), 0);
		assert_int_equal(ipcx_mq_open(&quiet, name, NULL), 0);
		assert_int_equal(ipcx_mq_send(quiet, "q", 1, 0, NULL), 0); /* both are senders */
		ipcx_mq_msg m;
		assert_int_equal(ipcx_mq_take(flood, &m, &NB), 0);
		assert_int_equal(ipcx_mq_release(flood, &m), 0);
		int n = 0;
		while (ipcx_mq_send(flood, "f", 1, 0, NULL) == 0)
			n++;
		ipcx_mq_attr at;
		assert_int_equal(ipcx_mq_getattr(flood, &at), 0);
		if (fair) {
			assert_int_equal(n, 8); /* depth / 2 senders */
			assert_true(at.fair_waits > 0);
			for (int i = 0; i < 8; i++) /* the quiet sender still has room */
				assert_int_equal(ipcx_mq_send(quiet, "q", 1, 0, NULL), 0);
		} else {
			assert_int_equal(n, 16);
			assert_int_equal(ipcx_mq_send(quiet, "q", 1, 0, NULL), -EAGAIN);
		}
		ipcx_mq_close(quiet);
		done(flood, name);
	}
}

static void test_readiness(void **st)
{
	(void)st;
	const char *name = t_name("fd");
	ipcx_mq *rx = mk(name, 8, 8, IPCX_MQ_FULL_FAIL), *tx;
	assert_int_equal(ipcx_mq_open(&tx, name, NULL), 0);
	int fd = ipcx_mq_fd(rx);
	assert_true(fd >= 0);
	assert_int_equal(ipcx_mq_fd(rx), fd);
	struct pollfd p = { fd, POLLIN, 0 };
	assert_int_equal(poll(&p, 1, 30), 0);
	for (int round = 0; round < 3; round++) {
		assert_int_equal(ipcx_mq_send(tx, "a", 1, 0, NULL), 0);
		assert_int_equal(ipcx_mq_send(tx, "b", 1, 0, NULL), 0);
		assert_int_equal(poll(&p, 1, 5000), 1);
		char b[8];
		assert_int_equal(ipcx_mq_recv(rx, b, sizeof b, NULL, &NB), 1);
		assert_int_equal(ipcx_mq_recv(rx, b, sizeof b, NULL, &NB), 1);
		assert_int_equal(ipcx_mq_recv(rx, b, sizeof b, NULL, &NB), -EAGAIN);
		assert_int_equal(poll(&p, 1, 30), 0);
	}
	ipcx_mq_close(tx);
	done(rx, name);
}

static _Atomic int notified;
static void on_notify(ipcx_mq *mq, void *arg)
{
	(void)mq;
	assert_ptr_equal(arg, &notified);
	atomic_fetch_add(&notified, 1);
}

static void test_notify(void **st)
{
	(void)st;
	const char *name = t_name("nt");
	ipcx_mq *mq = mk(name, 8, 8, IPCX_MQ_FULL_FAIL);
	assert_int_equal(ipcx_mq_notify(mq, on_notify, &notified), 0);
	assert_int_equal(ipcx_mq_notify(mq, on_notify, &notified), -EBUSY);
	t_sleep_ms(20);
	assert_int_equal(atomic_load(&notified), 0);
	assert_int_equal(ipcx_mq_send(mq, "a", 1, 0, NULL), 0);
	for (int i = 0; i < 500 && !atomic_load(&notified); i++)
		t_sleep_ms(10);
	assert_int_equal(atomic_load(&notified), 1);
	assert_int_equal(ipcx_mq_send(mq, "b", 1, 0, NULL), 0);
	t_sleep_ms(20);
	assert_int_equal(atomic_load(&notified), 1); /* one-shot */
	done(mq, name);
}

/* ---- peer death --------------------------------------------------------- */

struct child_arg {
	const char *name;
	int what; /* 0 loan, 1 take, 2 die holding the lock, 3/4 a run claimed
		   * for a push/pop of RUN_LEVEL and never stored, 5 a pop of one */
	int pipefd;
};

#define RUN_LEVEL 6u
#define RUN_LEN 3u

/* Claim RUN_LEN positions of level RUN_LEVEL's ring as a batch does: the
 * intent in our attach entry, then the CAS on the ring's index. */
static int claim_run(ipcx_mq *mq, bool push, uint32_t n)
{
	struct mq_ring_idx *x = &mq->h->lv[RUN_LEVEL];
	_Atomic uint64_t *idx = push ? &x->tail : &x->head;
	struct mq_attach *e = &mq->h->att[mq->idx];
	uint64_t p = atomic_load(idx);
	atomic_store(push ? &e->intent_push : &e->intent_pop,
		     MQ_INTENT(MQ_RING_LEVEL(RUN_LEVEL), p, n));
	return atomic_compare_exchange_strong(idx, &p, p + n) ? 0 : -EAGAIN;
}

static int child(void *p)
{
	struct child_arg *a = p;
	ipcx_mq *mq;
	if (ipcx_mq_open(&mq, a->name, NULL))
		return 2;
	ipcx_mq_msg m;
	int rc = 0;
	if (a->what == 0)
		rc = ipcx_mq_loan(mq, &m, 4, 9, NULL);
	else if (a->what == 1)
		rc = ipcx_mq_take(mq, &m, NULL);
	else if (a->what == 2)
		rc = ipcx__mq_lock(mq);
	else
		rc = claim_run(mq, a->what == 3, a->what == 5 ? 1 : RUN_LEN);
	if (a->what == 0 && !rc)
		memcpy(m.data, "dead", 4);
	char c = rc ? 'x' : 'k';
	if (write(a->pipefd, &c, 1) != 1)
		return 3;
	pause();
	return 0;
}

/* Start a child doing a->what; returns once it has. */
static pid_t start_child(struct child_arg *a)
{
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	a->pipefd = pfd[1];
	pid_t pid = t_spawn(child, a);
	char c = 0;
	assert_int_equal(read(pfd[0], &c, 1), 1);
	assert_int_equal(c, 'k');
	close(pfd[0]);
	close(pfd[1]);
	return pid;
}

static void kill_child(struct child_arg *a)
{
	pid_t pid = start_child(a);
	kill(pid, SIGKILL);
	assert_int_equal(t_wait(pid), 128 + SIGKILL);
}

/* Sends and receives at RUN_LEVEL until a send needs the cell a stopped
 * popper holds a lap behind; then waits for it. */
static int lap_sender(void *p)
{
	ipcx_mq *mq;
	if (ipcx_mq_open(&mq, p, NULL))
		return 2;
	char b[8];
	for (unsigned k = 0; k < 8; k++) { /* positions 1..8 of a ring of 8 */
		if (ipcx_mq_send(mq, "lap", 3, RUN_LEVEL, NULL))
			return 3;
		if (k < 7 && ipcx_mq_recv(mq, b, sizeof b, NULL, &NB) != 3)
			return 4;
	}
	ipcx_mq_close(mq);
	return 0;
}

/* A live popper that stops holding a cell (SIGSTOP, a debugger) makes a
 * sender that needs the cell a lap later wait, past any patience, not
 * fail; once the popper dies the cell comes back and the send completes. */
static void test_stopped_popper(void **st)
{
	(void)st;
	const char *name = t_name("sp");
	ipcx_mq *mq = mk(name, 4, 8, IPCX_MQ_FULL_BLOCK); /* rings of 8 cells */
	assert_int_equal(ipcx_mq_send(mq, "held", 4, RUN_LEVEL, NULL), 0); /* position 0 */
	struct child_arg a = { name, 5, -1 };
	pid_t holder = start_child(&a); /* pops position 0 and stops there */
	pid_t sender = t_spawn(lap_sender, (void *)name);
	t_sleep_ms(2500); /* past MQ_CLAIM_PATIENCE_NS */
	assert_int_equal(waitpid(sender, NULL, WNOHANG), 0); /* still waiting */
	kill(holder, SIGKILL);
	assert_int_equal(t_wait(holder), 128 + SIGKILL);
	assert_int_equal(t_wait(sender), 0);
	char b[8];
	ipcx_mq_vec v[2] = { { .buf = b, .cap = 4 }, { .buf = b + 4, .cap = 4 } };
	assert_int_equal(ipcx_mq_recv_batch(mq, v, 2, &NB), 2);
	assert_int_equal(v[0].flags, IPCX_MQ_REDELIVERED); /* "held", back at the head */
	assert_int_equal(v[1].len, 3);
	done(mq, name);
}

static void test_peer_death(void **st)
{
	(void)st;
	const char *name = t_name("pd");
	ipcx_mq *mq = mk(name, 2, 8, IPCX_MQ_FULL_BLOCK);
	ipcx_mq_msg m;
	struct child_arg a = { name, 0, -1 };
	/* A dead sender's loan never appears, and its slot comes back. */
	kill_child(&a);
	kill_child(&a);
	ipcx_wait w = { IPCX_WAIT_BLOCK, 0, 2000 * 1000 * 1000ll };
	assert_int_equal(ipcx_mq_send(mq, "ok", 2, 1, &w), 0); /* waits for the reclaim */
	assert_int_equal(ipcx_mq_take(mq, &m, &NB), 0);
	assert_memory_equal(m.data, "ok", 2);
	assert_int_equal(m.flags, 0);
	assert_int_equal(ipcx_mq_release(mq, &m), 0);
	assert_int_equal(ipcx_mq_take(mq, &m, &NB), -EAGAIN);
	ipcx_mq_attr at;
	assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
	assert_int_equal(at.cancelled, 2);
	assert_int_equal(at.attached, 1);

	/* A dead receiver's message is redelivered, flagged. */
	assert_int_equal(ipcx_mq_send(mq, "rd", 2, 4, NULL), 0);
	a.what = 1;
	kill_child(&a);
	assert_int_equal(ipcx_mq_take(mq, &m, &w), 0);
	assert_memory_equal(m.data, "rd", 2);
	assert_int_equal(m.flags, IPCX_MQ_REDELIVERED);
	assert_int_equal(m.prio, 4);
	assert_int_equal(ipcx_mq_release(mq, &m), 0);

	/* Death inside the lock: the next locker repairs the lists. */
	assert_int_equal(ipcx_mq_send(mq, "s1", 2, 2, NULL), 0);
	a.what = 2;
	kill_child(&a);
	assert_int_equal(ipcx_mq_send(mq, "s2", 2, 2, NULL), 0);
	assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
	assert_int_equal(at.depth, 2);
	assert_int_equal(mq->h->st.repairs, 1);
	char b[8];
	assert_int_equal(ipcx_mq_recv(mq, b, sizeof b, NULL, &NB), 2);
	assert_memory_equal(b, "s1", 2);
	assert_int_equal(ipcx_mq_recv(mq, b, sizeof b, NULL, &NB), 2);
	assert_memory_equal(b, "s2", 2);
	done(mq, name);
}

/* Zero-copy batches: order (priority, then FIFO), payloads in place until
 * released, released in any grouping (a message named twice, or not held,
 * is -EINVAL and the rest are released), slots back for reuse, counters; a
 * mailbox that does not go by runs (fair share) gives the same. */
static void take_batch_on(ipcx_mq *mq, uint32_t depth)
{
	ipcx_mq_msg m[8];
	assert_int_equal(ipcx_mq_take_batch(mq, m, 8, &NB), -EAGAIN);
	assert_int_equal(ipcx_mq_take_batch(mq, m, 0, &NB), -EINVAL);
	for (unsigned round = 0; round < 3; round++) { /* slots must come back */
		for (unsigned i = 0; i < depth; i++) {
			char b[16];
			int len = snprintf(b, sizeof b, "m%u", i);
			assert_int_equal(ipcx_mq_send(mq, b, (size_t)len, i % 3 == 0 ? 5 : 1, &NB), 0);
		}
		/* Level 5 first (i = 0, 3, 6, ...), then level 1. */
		unsigned want[64], nw = 0;
		for (unsigned i = 0; i < depth; i += 3)
			want[nw++] = i;
		for (unsigned i = 0; i < depth; i++)
			if (i % 3)
				want[nw++] = i;
		ipcx_mq_msg all[64];
		unsigned got = 0;
		while (got < depth) {
			int n = ipcx_mq_take_batch(mq, all + got, 5, &NB);
			assert_true(n >= 1 && n <= 5);
			got += (unsigned)n;
		}
		assert_int_equal(ipcx_mq_take_batch(mq, m, 8, &NB), -EAGAIN);
		for (unsigned k = 0; k < depth; k++) {
			char b[16];
			int len = snprintf(b, sizeof b, "m%u", want[k]);
			assert_int_equal(all[k].len, (size_t)len);
			assert_memory_equal(all[k].data, b, (size_t)len);
			assert_int_equal(all[k].prio, want[k] % 3 == 0 ? 5u : 1u);
			assert_int_equal(all[k].flags, 0);
			if (k && all[k].prio == all[k - 1].prio)
				assert_true(all[k].seq > all[k - 1].seq);
		}
		ipcx_mq_attr at;
		assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
		assert_int_equal(at.taken, depth);
		/* One alone, then the rest with a duplicate in the batch. */
		assert_int_equal(ipcx_mq_release(mq, &all[depth - 1]), 0);
		ipcx_mq_msg dup = all[0];
		assert_int_equal(ipcx_mq_release_batch(mq, all, depth - 2), 0);
		assert_int_equal(ipcx_mq_release_batch(mq, &dup, 1), -EINVAL);
		ipcx_mq_msg rest[2] = { all[depth - 2], all[depth - 2] };
		assert_int_equal(ipcx_mq_release_batch(mq, rest, 2), -EINVAL); /* named twice */
		assert_int_equal(ipcx_mq_release(mq, &all[depth - 2]), -EINVAL); /* already */
		assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
		assert_int_equal(at.taken, 0);
		assert_int_equal(at.depth, 0);
		assert_int_equal(at.received, (uint64_t)depth * (round + 1));
	}
}

static void test_take_batch(void **st)
{
	(void)st;
	const char *name = t_name("tb");
	ipcx_mq *mq = mk(name, 40, 16, IPCX_MQ_FULL_FAIL);
	assert_true(mq->runs);
	take_batch_on(mq, 40);
	done(mq, name);
	ipcx_mq_opts o = { .depth = 40, .max_msg = 16, .full = IPCX_MQ_FULL_FAIL, .fair = 1 };
	assert_int_equal(ipcx_mq_create(&mq, name, &o), 0);
	assert_false(mq->runs);
	take_batch_on(mq, 40);
	done(mq, name);
}

/* Takes a batch of 6 and dies holding it. */
static int batch_taker(void *p)
{
	ipcx_mq *mq;
	if (ipcx_mq_open(&mq, p, NULL))
		return 1;
	ipcx_mq_msg m[6];
	if (ipcx_mq_take_batch(mq, m, 6, &NB) != 6)
		return 2;
	_exit(0);
}

/* A taker that dies holding a batch has all of it redelivered, flagged, in
 * order; released messages of a persistent mailbox stay released after
 * power loss and the redelivered ones come back. */
/* Take exactly n messages into m, by as many non-blocking batches as it takes. */
static void take_n(ipcx_mq *mq, ipcx_mq_msg *m, unsigned n)
{
	for (unsigned got = 0; got < n;) {
		int k = ipcx_mq_take_batch(mq, m + got, n - got, &NB);
		assert_true(k > 0);
		got += (unsigned)k;
	}
}

static void test_take_batch_death(void **st)
{
	(void)st;
	const char *dir = t_durable_dir();
	for (int persistent = 0; persistent < 2; persistent++) {
		if (persistent && !dir) {
			fprintf(stderr, "no real file system for the log: persistent case skipped\n");
			break;
		}
		const char *name = t_name("td");
		char path[4600];
		if (dir)
			snprintf(path, sizeof path, "%s/td.log", dir);
		ipcx_mq_opts o = { .depth = 16, .max_msg = 16,
				   .log_path = persistent ? path : NULL };
		ipcx_mq *mq;
		assert_int_equal(ipcx_mq_create(&mq, name, &o), 0);
		for (unsigned i = 0; i < 10; i++) {
			char b[8];
			int len = snprintf(b, sizeof b, "d%u", i);
			assert_int_equal(ipcx_mq_send(mq, b, (size_t)len, 2, NULL), 0);
		}
		assert_int_equal(t_wait(t_spawn(batch_taker, (void *)name)), 0);
		/* getattr looks for the dead (as any wait does, within 40 ms):
		 * redelivered messages then come before the later ones of
		 * their level. */
		ipcx_mq_attr at;
		assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
		assert_int_equal(at.redelivered, 6);
		ipcx_mq_msg m[10];
		take_n(mq, m, 10);
		for (unsigned i = 0; i < 10; i++) {
			char b[8];
			int len = snprintf(b, sizeof b, "d%u", i);
			assert_memory_equal(m[i].data, b, (size_t)len);
			assert_int_equal(m[i].flags, i < 6 ? IPCX_MQ_REDELIVERED : 0);
		}
		/* Release d0..d6; d7..d9 stay taken when the power goes. */
		assert_int_equal(ipcx_mq_release_batch(mq, m, 7), 0);
		if (persistent) {
			assert_int_equal(ipcx_mq_close(mq), 0);
			assert_int_equal(ipcx_mq_unlink(name), 0);
			assert_int_equal(ipcx_mq_create(&mq, name, &o), 0);
			assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
			assert_int_equal(at.recovered, 3);
			take_n(mq, m, 3);
			for (unsigned i = 0; i < 3; i++) {
				char b[8];
				int len = snprintf(b, sizeof b, "d%u", 7 + i);
				assert_memory_equal(m[i].data, b, (size_t)len);
			}
			assert_int_equal(ipcx_mq_release_batch(mq, m, 3), 0);
		} else {
			assert_int_equal(ipcx_mq_release_batch(mq, m + 7, 3), 0);
		}
		assert_int_equal(ipcx_mq_take_batch(mq, m, 1, &NB), -EAGAIN);
		done(mq, name);
		if (persistent)
			unlink(path);
	}
	if (dir)
		t_rmdir_all(dir);
}

/* A process dies in the middle of a batch's run: what it claimed is
 * finished (a push: skips) or given back (a pop: redelivered, flagged). */
static void test_run_death(void **st)
{
	(void)st;
	const char *name = t_name("rd");
	ipcx_mq *mq = mk(name, 16, 8, IPCX_MQ_FULL_FAIL);
	ipcx_wait w = { IPCX_WAIT_BLOCK, 0, 2000 * 1000 * 1000ll };
	struct child_arg a = { name, 3, -1 };
	kill_child(&a); /* RUN_LEN positions claimed for a push, never stored */
	assert_int_equal(ipcx_mq_send(mq, "after", 5, RUN_LEVEL, NULL), 0);
	ipcx_mq_vec v[4];
	char b[4][8];
	for (int k = 0; k < 4; k++)
		v[k] = (ipcx_mq_vec){ .buf = b[k], .cap = sizeof b[k] };
	/* Waits at the dead claim until the liveness check skips it. */
	assert_int_equal(ipcx_mq_recv_batch(mq, v, 4, &w), 1);
	assert_int_equal(v[0].len, 5);
	assert_memory_equal(b[0], "after", 5);
	assert_int_equal(v[0].flags, 0);

	/* RUN_LEN messages popped by a process that dies before taking them. */
	for (unsigned k = 0; k < 5; k++)
		assert_int_equal(ipcx_mq_send(mq, &k, sizeof k, RUN_LEVEL, NULL), 0);
	a.what = 4;
	kill_child(&a);
	/* The ones behind the run first (nothing waits for the liveness check
	 * while they are there); then the run, redelivered, in order. */
	for (unsigned k = 0; k < 5;) {
		int n = ipcx_mq_recv_batch(mq, v, 4, &w);
		assert_true(n > 0);
		for (int j = 0; j < n; j++, k++) {
			unsigned x, want = (k + RUN_LEN) % 5;
			memcpy(&x, b[j], sizeof x);
			assert_int_equal(x, want);
			assert_int_equal(v[j].flags, want < RUN_LEN ? IPCX_MQ_REDELIVERED : 0);
			assert_int_equal(v[j].prio, RUN_LEVEL);
		}
	}
	ipcx_mq_attr at;
	assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
	assert_int_equal(at.depth, 0);
	assert_int_equal(at.redelivered, RUN_LEN);
	/* Nothing leaked: depth messages fit again. */
	for (unsigned k = 0; k < 16; k++)
		assert_int_equal(ipcx_mq_send(mq, &k, sizeof k, 1, &NB), 0);
	assert_int_equal(ipcx_mq_send(mq, "x", 1, 1, &NB), -EAGAIN);
	done(mq, name);
}

/* Corrupted shared state yields errors, not crashes. */
static void test_corrupt(void **st)
{
	(void)st;
	const char *name = t_name("co");
	ipcx_mq *mq = mk(name, 4, 8, IPCX_MQ_FULL_FAIL), *o = NULL;
	assert_int_equal(ipcx_mq_send(mq, "a", 1, 0, NULL), 0);
	/* A forged lock word: our own TID (glibc would sleep forever), then a
	 * TID that no longer exists (taken over and repaired).  Sending and
	 * receiving take no lock; the calls that do report it. */
	ipcx_mq_attr at;
	unsigned *word = (unsigned *)&mq->h->lock.__data.__lock;
	*word = (unsigned)gettid();
	assert_int_equal(ipcx_mq_getattr(mq, &at), -EBADMSG);
	assert_int_equal(ipcx_mq_open(&o, name, NULL), -EBADMSG);
	assert_int_equal(ipcx_mq_send(mq, "b", 1, 0, NULL), 0);
	pid_t gone = fork();
	if (gone == 0)
		_exit(0);
	assert_int_equal(t_wait(gone), 0);
	*word = (unsigned)gone;
	assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
	assert_int_equal(mq->h->st.repairs, 1);
	assert_int_equal(at.depth, 2);
	char b2[8];
	assert_int_equal(ipcx_mq_recv(mq, b2, sizeof b2, NULL, &NB), 1);
	assert_int_equal(b2[0], 'a');
	assert_int_equal(ipcx_mq_recv(mq, b2, sizeof b2, NULL, &NB), 1);
	int kind = mq->h->lock.__data.__kind;
	mq->h->lock.__data.__kind = 12345;
	assert_int_equal(ipcx_mq_getattr(mq, &at), -EBADMSG);
	mq->h->lock.__data.__kind = kind;
	assert_int_equal(ipcx_mq_send(mq, "a", 1, 0, NULL), 0);
	atomic_store(&mq->h->lv[0].head, 12345); /* a wild position */
	char b[8];
	assert_int_equal(ipcx_mq_recv(mq, b, sizeof b, NULL, &NB), -EBADMSG);
	atomic_store(&mq->h->freer.head, 999);
	assert_int_equal(ipcx_mq_send(mq, "a", 1, 0, NULL), -EBADMSG);
	mq->h->depth = 0;
	assert_int_equal(ipcx_mq_open(&o, name, NULL), -EBADMSG);
	mq->h->magic ^= 1;
	assert_int_equal(ipcx_mq_open(&o, name, NULL), -EPROTO);
	assert_null(o);
	ipcx_region *r;
	const char *rn = t_name("raw");
	assert_int_equal(ipcx_region_create(&r, rn, IPCX_KIND_RAW, 4096, NULL), 0);
	assert_int_equal(ipcx_mq_open(&o, rn, NULL), -EMEDIUMTYPE);
	assert_int_equal(ipcx_mq_unlink(rn), -EMEDIUMTYPE);
	ipcx_region_close(r);
	ipcx_region_unlink(rn);
	done(mq, name);
	assert_int_equal(t_check_no_leaks(), 0);
}

/* The queued slot of level p (its word LEVEL), or depth if none. */
static uint32_t queued_slot(ipcx_mq *mq, uint32_t p)
{
	for (uint32_t i = 0; i < mq->depth; i++) {
		uint64_t w = atomic_load(mq_wordp(mq, i));
		if (mq_w_state(w) == S_LEVEL && mq_w_level(w) == p)
			return i;
	}
	return mq->depth;
}

/* A message whose length is forged past max_msg is
 * dropped and reported, by a single receive and inside a batch, and its slot
 * comes back: the mailbox keeps its whole depth. */
static void test_corrupt_len(void **st)
{
	(void)st;
	const char *name = t_name("cl");
	ipcx_mq *mq = mk(name, 4, 8, IPCX_MQ_FULL_FAIL);
	char b[8];
	assert_int_equal(ipcx_mq_send(mq, "abc", 3, 1, NULL), 0);
	uint32_t i = queued_slot(mq, 1);
	assert_true(i < mq->depth);
	mq_slot(mq, i)->len = 1u << 30;
	assert_int_equal(ipcx_mq_recv(mq, b, sizeof b, NULL, &NB), -EBADMSG);
	assert_int_equal(ipcx_mq_recv(mq, b, sizeof b, NULL, &NB), -EAGAIN);
	/* A batch: the damaged first message is dropped, the second arrives. */
	assert_int_equal(ipcx_mq_send(mq, "d", 1, 1, NULL), 0);
	mq_slot(mq, queued_slot(mq, 1))->len = 9;
	assert_int_equal(ipcx_mq_send(mq, "ef", 2, 1, NULL), 0);
	char bufs[4][8];
	ipcx_mq_vec v[4];
	for (int k = 0; k < 4; k++)
		v[k] = (ipcx_mq_vec){ .buf = bufs[k], .cap = sizeof bufs[k] };
	assert_int_equal(ipcx_mq_recv_batch(mq, v, 4, &NB), 1);
	assert_int_equal(v[0].len, 2);
	assert_memory_equal(bufs[0], "ef", 2);
	/* Every slot is free again. */
	for (int k = 0; k < 4; k++)
		assert_int_equal(ipcx_mq_send(mq, "g", 1, 0, NULL), 0);
	assert_int_equal(ipcx_mq_send(mq, "g", 1, 0, NULL), -EAGAIN);
	for (int k = 0; k < 4; k++)
		assert_int_equal(ipcx_mq_recv(mq, b, sizeof b, NULL, &NB), 1);
	done(mq, name);
}

int main(void)
{
	t_watchdog(60);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basics),	       cmocka_unit_test(test_priority_fifo),
		cmocka_unit_test(test_full_policies),  cmocka_unit_test(test_zero_copy_large),
		cmocka_unit_test(test_shaping),	       cmocka_unit_test(test_fairness),
		cmocka_unit_test(test_readiness),      cmocka_unit_test(test_notify),
		cmocka_unit_test(test_peer_death),     cmocka_unit_test(test_corrupt), cmocka_unit_test(test_corrupt_len),
		cmocka_unit_test(test_batch),	       cmocka_unit_test(test_batch_processes),
		cmocka_unit_test(test_run_death),      cmocka_unit_test(test_stopped_popper),
		cmocka_unit_test(test_take_batch),     cmocka_unit_test(test_take_batch_death),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
