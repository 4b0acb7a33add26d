/* Persistent mailboxes: compaction of the log while messages are live, a
 * compactor killed before and after it switched the log's epoch, and the
 * upgrade of a version 1 log.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "core/internal.h"
#include "mq/mq_internal.h"
#include "mq/mq_sys.h"
#include "t_durable.h"
#include "testutil.h"

static const ipcx_wait NB = { IPCX_WAIT_NONBLOCK, 0, -1 };
static const char *dir;

static const char *logpath(const char *tag)
{
	return t_durable_log(dir, tag);
}

static ipcx_mq *plog(const char *name, const char *path, uint32_t sync)
{
	ipcx_mq_opts o = { .depth = 64, .max_msg = 256, .full = IPCX_MQ_FULL_FAIL,
			   .log_path = path, .sync = sync, .batch_msgs = 8 };
	ipcx_mq *mq = NULL;
	assert_int_equal(ipcx_mq_create(&mq, name, &o), 0);
	return mq;
}

/* "Power loss": every process is gone and so is the shared memory. */
static ipcx_mq *reboot(ipcx_mq *mq, const char *name, const char *path, uint32_t sync)
{
	assert_int_equal(ipcx_mq_close(mq), 0);
	assert_int_equal(ipcx_mq_unlink(name), 0);
	return plog(name, path, sync);
}

static int fmt(char *b, unsigned v)
{
	/* Lengths vary with v: records of many sizes. */
	return snprintf(b, 200, "message %u %.*s", v, (int)(v % 97),
			"................................................................"
			"..................................");
}

static unsigned parse(const char *b, int n)
{
	char c[256];
	memcpy(c, b, (size_t)n);
	c[n] = 0;
	unsigned v;
	assert_int_equal(sscanf(c, "message %u", &v), 1);
	char want[256];
	assert_int_equal(fmt(want, v), n);
	assert_memory_equal(c, want, (size_t)n);
	return v;
}

/* What the mailbox should hold: per level, FIFO. */
struct model {
	unsigned q[4][4096];
	unsigned head[4], tail[4];
};

static void model_pop_check(struct model *m, unsigned v, unsigned prio)
{
	for (int p = 3; p > (int)prio; p--)
		assert_int_equal(m->head[p], m->tail[p]); /* nothing higher was waiting */
	assert_true(m->head[prio] < m->tail[prio]);
	assert_int_equal(m->q[prio][m->head[prio]++], v);
}

static unsigned model_count(const struct model *m)
{
	unsigned n = 0;
	for (int p = 0; p < 4; p++)
		n += m->tail[p] - m->head[p];
	return n;
}

/* Many compactions with messages of four levels live throughout, by single
 * calls and batches; then power loss: exactly the live messages come back,
 * in order, and the log stayed short. */
static void test_compact_live(void **st)
{
	(void)st;
	uint64_t saved = ipcx__mq_compact_bytes;
	ipcx__mq_compact_bytes = 2048;
	for (uint32_t sync = 0; sync <= IPCX_MQ_SYNC_ALWAYS; sync++) {
		const char *name = t_name("cl"), *path = logpath(name);
		ipcx_mq *mq = plog(name, path, sync);
		static struct model m;
		memset(&m, 0, sizeof m);
		unsigned next = 0, seed = 7 + sync;
		unsigned rounds = sync == IPCX_MQ_SYNC_ALWAYS ? 300 : 3000;
		for (unsigned r = 0; r < rounds; r++) {
			unsigned k = 1 + rand_r(&seed) % 4, prio = rand_r(&seed) % 4;
			char b[4][256];
			ipcx_mq_vec v[4];
			if (model_count(&m) + k > 40)
				k = 0;
			for (unsigned j = 0; j < k; j++) {
				int len = fmt(b[j], next + j);
				v[j] = (ipcx_mq_vec){ .buf = b[j], .len = (size_t)len, .prio = prio };
			}
			if (k == 1) {
				assert_int_equal(ipcx_mq_send(mq, b[0], v[0].len, prio, &NB), 0);
			} else if (k) {
				assert_int_equal(ipcx_mq_send_batch(mq, v, k, &NB), (int)k);
			}
			for (unsigned j = 0; j < k; j++)
				m.q[prio][m.tail[prio]++] = next++;
			/* Receive a little less than was sent, on average, until
			 * the mailbox holds a few dozen. */
			unsigned want = model_count(&m) ? rand_r(&seed) % (model_count(&m) > 30 ? 6 : 3)
							 : 0;
			if (want > 1) {
				char rb[4][257];
				ipcx_mq_vec rv[4];
				for (unsigned j = 0; j < 4; j++)
					rv[j] = (ipcx_mq_vec){ .buf = rb[j], .cap = 256 };
				int got = ipcx_mq_recv_batch(mq, rv, want > 4 ? 4 : want, &NB);
				assert_true(got > 0);
				for (int j = 0; j < got; j++)
					model_pop_check(&m, parse(rb[j], (int)rv[j].len), rv[j].prio);
			} else if (want == 1) {
				char rb[257];
				unsigned prio_got;
				int n = ipcx_mq_recv(mq, rb, 256, &prio_got, &NB);
				assert_true(n > 0);
				model_pop_check(&m, parse(rb, n), prio_got);
			}
		}
		ipcx_mq_attr at;
		assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
		assert_true(at.log_compactions >= (sync == IPCX_MQ_SYNC_ALWAYS ? 5u : 50u));
		assert_true(at.log_bytes < 64u << 10);
		assert_int_equal(at.depth, model_count(&m));
		mq = reboot(mq, name, path, sync);
		assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
		assert_int_equal(at.recovered, model_count(&m));
		assert_int_equal(at.log_skipped_bytes, 0); /* other epochs are not damage */
		char rb[257];
		unsigned prio;
		int n;
		while ((n = ipcx_mq_recv(mq, rb, 256, &prio, &NB)) > 0)
			model_pop_check(&m, parse(rb, n), prio);
		assert_int_equal(n, -EAGAIN);
		assert_int_equal(model_count(&m), 0);
		/* Numbers continue: a new message comes back after another loss. */
		assert_int_equal(ipcx_mq_send(mq, "message 1 ", 10, 0, NULL), 0);
		mq = reboot(mq, name, path, sync);
		assert_int_equal(ipcx_mq_recv(mq, rb, 256, NULL, &NB), 10);
		assert_int_equal(ipcx_mq_close(mq), 0);
		assert_int_equal(ipcx_mq_unlink(name), 0);
		unlink(path);
	}
	ipcx__mq_compact_bytes = saved;
}

/* ---- a compactor that dies ------------------------------------------------ */

static int die_mode; /* 1: before its header write, 2: right after it */
static ssize_t dying_pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	if (off != 0) /* only compactions write the header (offset 0) */
		return pwritev(fd, iov, n, off);
	if (die_mode == 2)
		(void)pwritev(fd, iov, n, off);
	_exit(9);
}

struct dctx {
	const char *name;
	_Atomic unsigned *acked;
};

/* Send messages 100, 101, ... until a compaction kills us. */
static int dying_sender(void *arg)
{
	struct dctx *c = arg;
	ipcx_mq *mq;
	if (ipcx_mq_open(&mq, c->name, NULL))
		return 1;
	ipcx__mq_sys.pwritev = dying_pwritev;
	ipcx__mq_compact_bytes = 1024;
	for (unsigned v = 100; v < 140; v++) {
		char b[256];
		int len = fmt(b, v);
		if (ipcx_mq_send(mq, b, (size_t)len, 1, &NB))
			return 2;
		atomic_store(c->acked, v + 1 - 100);
	}
	return 3; /* no compaction happened */
}

/* Messages 3..9 live, then the sender's messages, of which the one it died
 * in may or may not be there (not acknowledged), then `extra` if set. */
static void expect_after_death(ipcx_mq *mq, unsigned acked, unsigned extra)
{
	char rb[257];
	int n;
	unsigned want = 3;
	while ((n = ipcx_mq_recv(mq, rb, 256, NULL, &NB)) > 0) {
		unsigned v = parse(rb, n);
		if (want == 10)
			want = 100;
		if (v == extra && want >= 100 + acked) {
			want = extra + 1;
			continue;
		}
		assert_int_equal(v, want);
		want++;
	}
	assert_int_equal(n, -EAGAIN);
	assert_true(want >= 100 + acked);
	assert_true(want <= 101 + acked || (extra && want == extra + 1));
}

static void dead_compactor(int mode, bool repair_first, uint32_t sync)
{
	const char *name = t_name("dc"), *path = logpath(name);
	ipcx_mq *mq = plog(name, path, sync);
	for (unsigned v = 0; v < 10; v++) {
		char b[256];
		int len = fmt(b, v);
		assert_int_equal(ipcx_mq_send(mq, b, (size_t)len, 1, NULL), 0);
	}
	for (unsigned v = 0; v < 3; v++) {
		char b[257];
		int n = ipcx_mq_recv(mq, b, 256, NULL, &NB);
		assert_int_equal(parse(b, n), v);
	}
	_Atomic unsigned *acked = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(acked != MAP_FAILED);
	die_mode = mode;
	struct dctx c = { name, acked };
	assert_int_equal(t_wait(t_spawn(dying_sender, &c)), 9);
	unsigned a = atomic_load(acked);
	assert_true(a > 0);
	unsigned extra = 0;
	if (repair_first) {
		/* The next send finds the tail busy and the lock's holder dead:
		 * it finishes the compaction, then sends. */
		char b[256];
		int len = fmt(b, 500);
		assert_int_equal(ipcx_mq_send(mq, b, (size_t)len, 1, NULL), 0);
		extra = 500;
		ipcx_mq_attr at;
		assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
		assert_true(at.log_compactions >= (mode == 2 ? 1u : 0u));
	}
	mq = reboot(mq, name, path, sync);
	ipcx_mq_attr at;
	assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
	assert_int_equal(at.log_skipped_bytes, 0);
	expect_after_death(mq, a, extra);
	assert_int_equal(ipcx_mq_close(mq), 0);
	assert_int_equal(ipcx_mq_unlink(name), 0);
	unlink(path);
	munmap((void *)acked, 4096);
}

static void test_dead_compactor(void **st)
{
	(void)st;
	for (int mode = 1; mode <= 2; mode++)
		for (int repair = 0; repair <= 1; repair++) {
			dead_compactor(mode, repair, IPCX_MQ_SYNC_NONE);
			dead_compactor(mode, repair, IPCX_MQ_SYNC_BATCH);
		}
}

/* A loan whose commit has begun (COMMITTING, no record reserved yet: the
 * slot still holds its previous message's number) when a compaction runs:
 * nothing is copied for it, so no consumed message comes back; committed
 * after the compaction, it is logged in the new epoch. */
static void test_commit_in_flight(void **st)
{
	(void)st;
	uint64_t saved = ipcx__mq_compact_bytes;
	ipcx__mq_compact_bytes = 512;
	const char *name = t_name("cf"), *path = logpath(name);
	ipcx_mq *mq = plog(name, path, IPCX_MQ_SYNC_NONE);
	char b[257];
	for (unsigned v = 0; v < 20; v++) { /* every slot once used and consumed */
		int len = fmt(b, v);
		assert_int_equal(ipcx_mq_send(mq, b, (size_t)len, 1, NULL), 0);
		assert_int_equal(parse(b, ipcx_mq_recv(mq, b, 256, NULL, &NB)), v);
	}
	for (unsigned v = 20; v < 120; v++) { /* the same, with a few queued */
		int len = fmt(b, v);
		assert_int_equal(ipcx_mq_send(mq, b, (size_t)len, 1, NULL), 0);
		if (v >= 23)
			assert_int_equal(parse(b, ipcx_mq_recv(mq, b, 256, NULL, &NB)), v - 3);
	}
	ipcx_mq_msg m;
	assert_int_equal(ipcx_mq_loan(mq, &m, 64, 1, &NB), 0);
	int len = fmt(m.data, 999);
	m.len = (size_t)len;
	/* As ipcx_mq_commit leaves it before it reserves its record. */
	_Atomic uint64_t *wp = mq_wordp(mq, m.slot);
	uint64_t loaned = atomic_load(wp);
	atomic_store(wp, mq_word(S_COMMITTING, mq_w_owner(loaned), 0, mq_w_pos(loaned)));
	ipcx_mq_attr at;
	assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
	uint32_t before = at.log_compactions;
	ipcx__mq_compact_bytes = MQ_LOG_HDR; /* now, whatever the tail */
	ipcx__mq_log_maybe_compact(mq);
	ipcx__mq_compact_bytes = 1ull << 30; /* and not again before the loss */
	assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
	assert_int_equal(at.log_compactions, before + 1);
	atomic_store(wp, loaned);
	assert_int_equal(ipcx_mq_commit(mq, &m), 0);
	mq = reboot(mq, name, path, IPCX_MQ_SYNC_NONE);
	assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
	assert_int_equal(at.recovered, 4);
	unsigned want[] = { 117, 118, 119, 999 };
	for (unsigned k = 0; k < 4; k++)
		assert_int_equal(parse(b, ipcx_mq_recv(mq, b, 256, NULL, &NB)), want[k]);
	assert_int_equal(ipcx_mq_recv(mq, b, 256, NULL, &NB), -EAGAIN);
	assert_int_equal(ipcx_mq_close(mq), 0);
	assert_int_equal(ipcx_mq_unlink(name), 0);
	unlink(path);
	ipcx__mq_compact_bytes = saved;
}

/* ---- version 1 logs ---------------------------------------------------------- */

static void put_rec(unsigned char *p, uint32_t type, uint64_t seq, uint32_t arg,
		    const char *payload)
{
	uint32_t len = payload ? (uint32_t)strlen(payload) : 0;
	memset(p, 0, mq_rec_size(len));
	memcpy(p, &type, 4);
	memcpy(p + 4, &len, 4);
	memcpy(p + 8, &seq, 8);
	memcpy(p + 16, &arg, 4);
	if (len)
		memcpy(p + MQ_REC_HDR, payload, len);
	uint32_t crc = ipcx__crc32c(ipcx__crc32c(0, p, 24), p + MQ_REC_HDR, len);
	memcpy(p + 24, &crc, 4);
}

/* A log written by version 1 (before epochs and removal ranges, with a
 * rewind behind it) opens: its live messages come back, the file is
 * version 2 from then on, and recovers the same again. */
static void test_v1_upgrade(void **st)
{
	(void)st;
	const char *name = t_name("v1"), *path = logpath(name);
	unsigned char f[4096];
	memset(f, 0, sizeof f);
	uint64_t magic = 0x474c514d58435049ull, seq_base = 10;
	uint32_t version = 1, hdr = MQ_LOG_HDR;
	memcpy(f, &magic, 8);
	memcpy(f + 8, &version, 4);
	memcpy(f + 12, &hdr, 4);
	memcpy(f + 16, &seq_base, 8);
	uint32_t crc = ipcx__crc32c(0, f, 60);
	memcpy(f + 60, &crc, 4);
	size_t off = MQ_LOG_HDR;
	put_rec(f + off, MQ_REC_PUT, 10, 1, "message 1 .");
	off += mq_rec_size(11);
	put_rec(f + off, MQ_REC_PUT, 11, 1, "message 2 ..");
	off += mq_rec_size(12);
	put_rec(f + off, MQ_REC_DEL, 10, 0, NULL);
	off += MQ_REC_HDR;
	put_rec(f + off, MQ_REC_PUT, 12, 2, "message 3 ...");
	off += mq_rec_size(13);
	/* From before the rewind (seq below seq_base): dead. */
	put_rec(f + off, MQ_REC_PUT, 4, 3, "message 4 ....");
	off += mq_rec_size(14);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, f, off), (ssize_t)off);
	close(fd);
	ipcx_mq *mq = plog(name, path, IPCX_MQ_SYNC_NONE);
	ipcx_mq_attr at;
	assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
	assert_int_equal(at.recovered, 2);
	fd = open(path, O_RDONLY);
	assert_int_equal(pread(fd, &version, 4, 8), 4);
	close(fd);
	assert_int_equal(version, 2);
	for (int pass = 0; pass < 2; pass++) {
		if (pass)
			mq = reboot(mq, name, path, IPCX_MQ_SYNC_NONE);
		char b[257];
		unsigned prio;
		assert_int_equal(ipcx_mq_recv(mq, b, 256, &prio, &NB), 13);
		assert_int_equal(parse(b, 13), 3);
		assert_int_equal(prio, 2);
		assert_int_equal(ipcx_mq_recv(mq, b, 256, &prio, &NB), 12);
		assert_int_equal(parse(b, 12), 2);
		assert_int_equal(ipcx_mq_recv(mq, b, 256, NULL, &NB), -EAGAIN);
		if (!pass) { /* put them back for the second pass */
			assert_int_equal(ipcx_mq_send(mq, "message 3 ...", 13, 2, NULL), 0);
			assert_int_equal(ipcx_mq_send(mq, "message 2 ..", 12, 1, NULL), 0);
		}
	}
	assert_int_equal(ipcx_mq_close(mq), 0);
	assert_int_equal(ipcx_mq_unlink(name), 0);
	unlink(path);
}

int main(void)
{
	t_watchdog(100);
	T_DURABLE_DIR_OR_SKIP(dir);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compact_live),
		cmocka_unit_test(test_dead_compactor),
		cmocka_unit_test(test_commit_in_flight),
		cmocka_unit_test(test_v1_upgrade),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	t_rmdir_all(dir);
	return rc;
}
