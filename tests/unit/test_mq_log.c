/* Persistent mailboxes: recovery, torn and corrupt records, foreign files,
 * and ENOSPC / EIO injected at every growth, sync and truncate point of the
 * log, with single calls and with batches (records themselves are stores into the mapped, preallocated file:
 * they cannot fail).
 * ipcx-test-labels: tsan
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

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

static ipcx_mq *plog(const char *name, const char *path, uint32_t sync, int expect)
{
	ipcx_mq_opts o = { .depth = 64, .max_msg = 256, .full = IPCX_MQ_FULL_FAIL,
			   .log_path = path, .sync = sync, .batch_msgs = 4 };
	ipcx_mq *mq = NULL;
	assert_int_equal(ipcx_mq_create(&mq, name, &o), expect);
	return mq;
}

/* "Power loss": every process is gone and so is the shared memory. */
static ipcx_mq *reboot(ipcx_mq *mq, const char *name, const char *path, uint32_t sync)
{
	assert_int_equal(ipcx_mq_close(mq), 0);
	assert_int_equal(ipcx_mq_unlink(name), 0);
	return plog(name, path, sync, 0);
}

static void send_n(ipcx_mq *mq, unsigned from, unsigned n, unsigned prio)
{
	for (unsigned i = from; i < from + n; i++) {
		char b[64];
		int len = snprintf(b, sizeof b, "message %u", i);
		assert_int_equal(ipcx_mq_send(mq, b, (size_t)len, prio, NULL), 0);
	}
}

static unsigned recv_one(ipcx_mq *mq, unsigned *prio)
{
	char b[257];
	int n = ipcx_mq_recv(mq, b, sizeof b - 1, prio, &NB);
	assert_true(n > 0);
	b[n] = 0;
	unsigned v;
	assert_int_equal(sscanf(b, "message %u", &v), 1);
	return v;
}

static void test_recover(void **st)
{
	(void)st;
	for (uint32_t sync = 0; sync <= IPCX_MQ_SYNC_ALWAYS; sync++) {
		const char *name = t_name("lg"), *path = logpath(name);
		ipcx_mq *mq = plog(name, path, sync, 0);
		struct stat sb;
		assert_int_equal(stat(path, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, 0600);
		send_n(mq, 0, 5, 1);
		send_n(mq, 5, 5, 7);
		unsigned prio;
		assert_int_equal(recv_one(mq, &prio), 5);
		assert_int_equal(recv_one(mq, &prio), 6);
		mq = reboot(mq, name, path, sync);
		ipcx_mq_attr at;
		assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
		assert_int_equal(at.recovered, 8);
		assert_int_equal(at.log_skipped_bytes, 0);
		assert_int_equal(at.persistent, 1);
		assert_string_equal(at.log_path, path);
		unsigned want[] = { 7, 8, 9, 0, 1, 2, 3, 4 };
		for (unsigned i = 0; i < 8; i++)
			assert_int_equal(recv_one(mq, &prio), want[i]);
		/* Sequence numbers continue past recovered ones. */
		send_n(mq, 100, 1, 0);
		mq = reboot(mq, name, path, sync);
		assert_int_equal(recv_one(mq, &prio), 100);
		assert_int_equal(ipcx_mq_close(mq), 0);
		assert_int_equal(ipcx_mq_unlink(name), 0);
		unlink(path);
	}
}

static void test_torn_and_corrupt(void **st)
{
	(void)st;
	const char *name = t_name("tc"), *path = logpath(name);
	ipcx_mq *mq = plog(name, path, IPCX_MQ_SYNC_NONE, 0);
	send_n(mq, 0, 6, 2);
	ipcx_mq_attr at;
	assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
	assert_int_equal(ipcx_mq_close(mq), 0);
	assert_int_equal(ipcx_mq_unlink(name), 0);
	struct stat sb;
	/* Tear the last record (the file is longer: space is allocated ahead),
	 * flip a byte in the payload of the second. */
	assert_int_equal(truncate(path, (off_t)at.log_bytes - 3), 0);
	int fd = open(path, O_RDWR);
	uint64_t second = MQ_LOG_HDR + mq_rec_size(9) + MQ_REC_HDR + 2;
	assert_int_equal(pwrite(fd, "X", 1, (off_t)second), 1);
	close(fd);
	mq = plog(name, path, IPCX_MQ_SYNC_NONE, 0);
	assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
	assert_int_equal(at.recovered, 4);
	assert_true(at.log_skipped_bytes >= mq_rec_size(9));
	/* The torn tail was cut: the next record goes where it began. */
	assert_int_equal(at.log_bytes, MQ_LOG_HDR + 5 * mq_rec_size(9));
	assert_int_equal(stat(path, &sb), 0);
	assert_true((uint64_t)sb.st_size >= at.log_bytes);
	unsigned prio, want[] = { 0, 2, 3, 4 };
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(recv_one(mq, &prio), want[i]);
	assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
	/* A hole of zeros in the middle (a writer that died) is skipped. */
	send_n(mq, 10, 1, 2);
	uint64_t hole = at.log_bytes + mq_rec_size(10) + 64;
	atomic_store(&mq->h->log.tail, hole);
	send_n(mq, 11, 1, 2);
	mq = reboot(mq, name, path, IPCX_MQ_SYNC_NONE);
	assert_int_equal(recv_one(mq, &prio), 10);
	assert_int_equal(recv_one(mq, &prio), 11);
	assert_int_equal(ipcx_mq_close(mq), 0);
	assert_int_equal(ipcx_mq_unlink(name), 0);
	unlink(path);
}

static void test_bad_files(void **st)
{
	(void)st;
	const char *name = t_name("bf"), *path = logpath(name);
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_int_equal(write(fd, "just some text, not a log\n", 26), 26);
	close(fd);
	plog(name, path, 0, -EBADMSG); /* shorter than a header */
	fd = open(path, O_WRONLY | O_APPEND);
	for (int i = 0; i < 10; i++)
		assert_int_equal(write(fd, "just some text, not a log\n", 26), 26);
	close(fd);
	plog(name, path, 0, -EPROTO);
	unlink(path);
	/* A damaged header. */
	ipcx_mq *mq = plog(name, path, 0, 0);
	assert_int_equal(ipcx_mq_close(mq), 0);
	assert_int_equal(ipcx_mq_unlink(name), 0);
	fd = open(path, O_WRONLY);
	assert_int_equal(pwrite(fd, "\x07", 1, 20), 1);
	close(fd);
	plog(name, path, 0, -EBADMSG);
	unlink(path);
	/* tmpfs does not survive a reboot. */
	plog(name, "/dev/shm/ipcx-test-not-durable.log", 0, -EMEDIUMTYPE);
	assert_int_equal(access("/dev/shm/ipcx-test-not-durable.log", F_OK), -1);
	/* One log, one mailbox. */
	mq = plog(name, path, 0, 0);
	plog(t_name("bf2"), path, 0, -EBUSY);
	/* More messages in the log than the new mailbox holds. */
	send_n(mq, 0, 3, 0);
	assert_int_equal(ipcx_mq_close(mq), 0);
	assert_int_equal(ipcx_mq_unlink(name), 0);
	ipcx_mq_opts o = { .depth = 2, .max_msg = 256, .log_path = path };
	assert_int_equal(ipcx_mq_create(&mq, name, &o), -EOVERFLOW);
	unlink(path);
	assert_int_equal(t_check_no_leaks(), 0);
}

/* ---- fault injection ------------------------------------------------------ */

static int fail_at, fail_errno, calls;
static int f_fdatasync(int fd)
{
	if (++calls == fail_at) {
		errno = fail_errno;
		return -1;
	}
	return fdatasync(fd);
}
static int f_fallocate(int fd, off_t off, off_t len)
{
	if (++calls == fail_at)
		return fail_errno;
	return posix_fallocate(fd, off, len);
}
static ssize_t f_pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	if (++calls == fail_at) {
		errno = fail_errno;
		return -1;
	}
	return pwritev(fd, iov, n, off);
}
static int f_ftruncate(int fd, off_t len)
{
	if (++calls == fail_at) {
		errno = fail_errno;
		return -1;
	}
	return ftruncate(fd, len);
}

/* Fail the Nth call of one kind, for every N a short workload reaches; after
 * "power loss" every acknowledged message, and no released one, is there.
 * batch: the workload sends batches of 3 and receives batches of 2.  The log
 * is compacted every few messages, so that the faults meet compactions
 * (their growth, syncs and header writes) too. */
static void inject(int which, int err, uint32_t sync, bool batch)
{
	struct ipcx__mq_sys saved = ipcx__mq_sys;
	uint64_t saved_compact = ipcx__mq_compact_bytes;
	ipcx__mq_compact_bytes = 256;
	uint64_t compactions = 0;
	for (fail_at = 1; fail_at <= 40; fail_at++) {
		const char *name = t_name("fi"), *path = logpath(name);
		ipcx_mq *mq = plog(name, path, sync, 0);
		calls = 0;
		fail_errno = err;
		if (which == 0)
			ipcx__mq_sys.fallocate = f_fallocate;
		else if (which == 1)
			ipcx__mq_sys.fdatasync = f_fdatasync;
		else if (which == 2)
			ipcx__mq_sys.pwritev = f_pwritev;
		bool acked[16] = { 0 }, gone[16] = { 0 };
		int failures = 0;
		for (unsigned i = 0, step = 0; i < 16; step++) {
			char b[3][32];
			ipcx_mq_vec v[3];
			unsigned n = !batch ? 1 : 16 - i < 3 ? 16 - i : 3;
			for (unsigned k = 0; k < n; k++) {
				int len = snprintf(b[k], sizeof b[k], "message %u", i + k);
				v[k] = (ipcx_mq_vec){ .buf = b[k], .len = (size_t)len, .prio = 1 };
			}
			int rc = batch ? ipcx_mq_send_batch(mq, v, n, NULL)
				       : ipcx_mq_send(mq, b[0], v[0].len, 1, NULL);
			if (!batch && rc == 0)
				rc = 1;
			if (rc > 0) {
				for (int k = 0; k < rc; k++)
					acked[i + (unsigned)k] = true;
				i += (unsigned)rc;
			} else {
				assert_true(rc == -err || rc == -EIO);
				failures++;
				i++; /* not acknowledged: never sent again */
			}
			if (step % 3 == 2) { /* receive some as we go */
				char r[2][64];
				ipcx_mq_vec rv[2] = { { .buf = r[0], .cap = 63 }, { .buf = r[1], .cap = 63 } };
				int got = batch ? ipcx_mq_recv_batch(mq, rv, 2, &NB)
						: ipcx_mq_recv(mq, r[0], 63, NULL, &NB);
				if (!batch && got >= 0) {
					rv[0].len = (size_t)got;
					got = 1;
				}
				if (got > 0) {
					for (int k = 0; k < got; k++) {
						unsigned x;
						r[k][rv[k].len] = 0;
						assert_int_equal(sscanf(r[k], "message %u", &x), 1);
						gone[x] = true;
					}
				} else {
					assert_true(got == -EAGAIN || got == -err || got == -EIO);
				}
			}
		}
		ipcx__mq_sys = saved;
		ipcx_mq_attr at;
		assert_int_equal(ipcx_mq_getattr(mq, &at), 0);
		if (which == 1 && failures)
			assert_int_equal(at.log_failed, 1); /* sticky after a failed sync */
		compactions += at.log_compactions;
		(void)ipcx_mq_close(mq);
		assert_int_equal(ipcx_mq_unlink(name), 0);
		mq = plog(name, path, sync, 0);
		bool seen[16] = { 0 };
		char r[64];
		int n;
		while ((n = ipcx_mq_recv(mq, r, sizeof r - 1, NULL, &NB)) > 0) {
			unsigned v;
			r[n] = 0;
			assert_int_equal(sscanf(r, "message %u", &v), 1);
			assert_false(seen[v]); /* once */
			seen[v] = true;
		}
		assert_int_equal(n, -EAGAIN);
		for (unsigned i = 0; i < 16; i++)
			if (acked[i] && !gone[i] && !seen[i])
				fail_msg("acknowledged message %u lost (fault at call %d)", i, fail_at);
		assert_int_equal(ipcx_mq_close(mq), 0);
		assert_int_equal(ipcx_mq_unlink(name), 0);
		unlink(path);
	}
	ipcx__mq_sys = saved;
	ipcx__mq_compact_bytes = saved_compact;
	assert_true(compactions >= 40); /* the faults did meet compactions */
}

/* The log grows 256 bytes at a time here, so that the workload meets many
 * growth points; each is made to fail in turn. */
static void test_enospc_growth(void **st)
{
	(void)st;
	uint64_t saved = ipcx__mq_log_chunk;
	ipcx__mq_log_chunk = 256;
	for (int batch = 0; batch < 2; batch++) {
		inject(0, ENOSPC, IPCX_MQ_SYNC_NONE, batch);
		inject(0, EIO, IPCX_MQ_SYNC_ALWAYS, batch);
	}
	ipcx__mq_log_chunk = saved;
}

static void test_eio_sync(void **st)
{
	(void)st;
	for (int batch = 0; batch < 2; batch++) {
		inject(1, EIO, IPCX_MQ_SYNC_ALWAYS, batch);
		inject(1, EIO, IPCX_MQ_SYNC_BATCH, batch);
		inject(1, ENOSPC, IPCX_MQ_SYNC_ALWAYS, batch);
	}
}

/* The log's header is written (pwritev) only by compactions. */
static void test_eio_header(void **st)
{
	(void)st;
	for (int batch = 0; batch < 2; batch++) {
		inject(2, EIO, IPCX_MQ_SYNC_NONE, batch);
		inject(2, ENOSPC, IPCX_MQ_SYNC_ALWAYS, batch);
	}
}

/* A truncation that fails during recovery: a clean error, nothing lost. */
static void test_truncate_fail(void **st)
{
	(void)st;
	const char *name = t_name("tr"), *path = logpath(name);
	ipcx_mq *mq = plog(name, path, 0, 0);
	send_n(mq, 0, 3, 0);
	assert_int_equal(ipcx_mq_close(mq), 0);
	assert_int_equal(ipcx_mq_unlink(name), 0);
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(truncate(path, sb.st_size - 1), 0); /* a torn tail to cut */
	struct ipcx__mq_sys saved = ipcx__mq_sys;
	ipcx__mq_sys.ftruncate = f_ftruncate;
	calls = 0;
	fail_at = 1;
	fail_errno = EIO;
	plog(name, path, 0, -EIO);
	ipcx__mq_sys = saved;
	mq = plog(name, path, 0, 0);
	unsigned prio;
	assert_int_equal(recv_one(mq, &prio), 0);
	assert_int_equal(recv_one(mq, &prio), 1);
	assert_int_equal(ipcx_mq_close(mq), 0);
	assert_int_equal(ipcx_mq_unlink(name), 0);
	unlink(path);
}

int main(void)
{
	t_watchdog(100);
	T_DURABLE_DIR_OR_SKIP(dir);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_recover),	       cmocka_unit_test(test_torn_and_corrupt),
		cmocka_unit_test(test_bad_files),      cmocka_unit_test(test_enospc_growth),
		cmocka_unit_test(test_eio_sync),       cmocka_unit_test(test_eio_header),
		cmocka_unit_test(test_truncate_fail),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	t_rmdir_all(dir);
	return rc;
}
