/* Pipes: capacity, SIGPIPE, framing, FIFOs, zero-copy integrity.
 * ipcx-test-timeout: 60 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

static const ipcx_wait nb = { .mode = IPCX_WAIT_NONBLOCK, .timeout_ns = -1 };
static const ipcx_wait five_s = { .mode = IPCX_WAIT_BLOCK, .timeout_ns = 5000000000 };

static void test_capacity(void **st)
{
	(void)st;
	int p[2];
	assert_int_equal(ipcx_pipe_create(p, 0), 0);
	assert_true(fcntl(p[0], F_GETFD) & FD_CLOEXEC);
	ipcx_pipe_limits lim;
	assert_int_equal(ipcx_pipe_limits_get(&lim), 0);
	assert_int_equal(lim.pipe_buf, PIPE_BUF);
	assert_int_equal(ipcx_pipe_capacity(p[1]), (ssize_t)lim.default_size);
	/* Rounded up to a power-of-two number of pages. */
	size_t pg = lim.page_size;
	assert_int_equal(ipcx_pipe_round_capacity(1), pg);
	assert_int_equal(ipcx_pipe_round_capacity(3 * pg), 4 * pg);
	assert_int_equal(ipcx_pipe_set_capacity(p[1], 3 * pg, &lim), (ssize_t)(4 * pg));
	assert_int_equal(lim.rounded, 4 * pg);
	assert_int_equal(ipcx_pipe_capacity(p[0]), (ssize_t)(4 * pg));
	/* Shrinking below what the pipe holds: -EBUSY. */
	char *buf = calloc(1, 3 * pg);
	assert_int_equal(ipcx_pipe_write(p[1], buf, 3 * pg, NULL), (ssize_t)(3 * pg));
	free(buf);
	assert_int_equal(ipcx_pipe_set_capacity(p[1], pg, NULL), -EBUSY);
	/* Above the maximum: -EPERM without privilege; with it, allowed. */
	if (!lim.privileged)
		assert_int_equal(ipcx_pipe_set_capacity(p[1], lim.max_size * 2, &lim), -EPERM);
	assert_int_equal(ipcx_pipe_capacity(12345), -EBADF);
	close(p[0]);
	close(p[1]);
}

static void test_sigpipe(void **st)
{
	(void)st;
	signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill the test */
	int p[2];
	assert_int_equal(ipcx_pipe_create(p, IPCX_PIPE_NONBLOCK), 0);
	close(p[0]);
	assert_int_equal(ipcx_pipe_write(p[1], "x", 1, NULL), -EPIPE);
	/* Nothing left pending that would kill us when unblocked. */
	sigset_t pend;
	sigpending(&pend);
	assert_false(sigismember(&pend, SIGPIPE));
	/* A SIGPIPE pending before the call is left alone. */
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigprocmask(SIG_BLOCK, &set, &old);
	/* Blocked by the caller, nothing pending: ours is consumed too. */
	assert_int_equal(ipcx_pipe_write(p[1], "x", 1, NULL), -EPIPE);
	sigpending(&pend);
	assert_false(sigismember(&pend, SIGPIPE));
	raise(SIGPIPE);
	assert_int_equal(ipcx_pipe_write(p[1], "x", 1, NULL), -EPIPE);
	sigpending(&pend);
	assert_true(sigismember(&pend, SIGPIPE));
	signal(SIGPIPE, SIG_IGN); /* discard it */
	sigprocmask(SIG_SETMASK, &old, NULL);
	signal(SIGPIPE, SIG_DFL);
	/* The framed channel too. */
	ipcx_pipe *a, *b;
	assert_int_equal(ipcx_pipe_duplex(&a, &b, NULL), 0);
	ipcx_pipe_close(b);
	assert_int_equal(ipcx_pipe_send(a, "y", 1, NULL), -EPIPE);
	char c;
	assert_int_equal(ipcx_pipe_recv(a, &c, 1, NULL), -EPIPE);
	ipcx_pipe_close(a);
	close(p[1]);
	/* IPCX_PIPE_SIGPIPE_IGNORED: refused unless SIGPIPE is ignored... */
	ipcx_pipe_opts o = { .flags = IPCX_PIPE_SIGPIPE_IGNORED };
	a = b = (ipcx_pipe *)1;
	assert_int_equal(ipcx_pipe_duplex(&a, &b, &o), -EINVAL);
	assert_null(a);
	assert_null(b);
	ipcx_pipe_opts bad = { .flags = 1u << 5 };
	assert_int_equal(ipcx_pipe_duplex(&a, &b, &bad), -EINVAL);
	/* ...and with it ignored, writes skip the mask and still say -EPIPE. */
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(ipcx_pipe_duplex(&a, &b, &o), 0);
	assert_int_equal(ipcx_pipe_send(a, "z", 1, NULL), 0);
	assert_int_equal(ipcx_pipe_recv(b, &c, 1, NULL), 1);
	assert_int_equal(c, 'z');
	ipcx_pipe_close(b);
	assert_int_equal(ipcx_pipe_send(a, "z", 1, NULL), -EPIPE);
	ipcx_pipe_close(a);
	signal(SIGPIPE, SIG_DFL);
}

static void test_read_write_waits(void **st)
{
	(void)st;
	int p[2];
	assert_int_equal(ipcx_pipe_create(p, IPCX_PIPE_NONBLOCK), 0);
	char buf[16];
	assert_int_equal(ipcx_pipe_read(p[0], buf, sizeof buf, &nb), -EAGAIN);
	ipcx_wait t = { .mode = IPCX_WAIT_BLOCK, .timeout_ns = 10000000 };
	assert_int_equal(ipcx_pipe_read(p[0], buf, sizeof buf, &t), -ETIMEDOUT);
	/* Fill it: the last write is partial, then -EAGAIN. */
	ssize_t cap = ipcx_pipe_capacity(p[1]);
	char *big = calloc(1, (size_t)cap + 100);
	assert_int_equal(ipcx_pipe_write(p[1], big, (size_t)cap + 100, &nb), cap);
	assert_int_equal(ipcx_pipe_write(p[1], big, 1, &t), -ETIMEDOUT);
	free(big);
	close(p[1]);
	/* Data then end-of-file. */
	char *sink = malloc((size_t)cap);
	ssize_t got = 0, n;
	while ((n = ipcx_pipe_read(p[0], sink, (size_t)cap, &nb)) > 0)
		got += n;
	assert_int_equal(n, 0);
	assert_int_equal(got, cap);
	free(sink);
	close(p[0]);
}

static void test_frames(void **st)
{
	(void)st;
	int fds0 = t_count_fds();
	ipcx_pipe *a, *b;
	ipcx_pipe_opts o = { .max_frame = 100000 };
	assert_int_equal(ipcx_pipe_duplex(&a, &b, &o), 0);
	char buf[PIPE_BUF];
	memset(buf, 'q', sizeof buf);
	assert_int_equal(ipcx_pipe_send(a, NULL, 0, NULL), 0);
	assert_int_equal(ipcx_pipe_send(a, "abc", 3, NULL), 0);
	assert_int_equal(ipcx_pipe_send(a, buf, PIPE_BUF - 4, NULL), 0);
	char r[PIPE_BUF];
	assert_int_equal(ipcx_pipe_recv(b, r, sizeof r, NULL), 0);
	assert_int_equal(ipcx_pipe_next_size(b, NULL), 3);
	assert_int_equal(ipcx_pipe_recv(b, r, 2, NULL), -EMSGSIZE); /* kept */
	assert_int_equal(ipcx_pipe_recv(b, r, sizeof r, NULL), 3);
	assert_memory_equal(r, "abc", 3);
	assert_int_equal(ipcx_pipe_recv(b, r, sizeof r, NULL), PIPE_BUF - 4);
	assert_memory_equal(r, buf, PIPE_BUF - 4);
	assert_int_equal(ipcx_pipe_recv(b, r, sizeof r, &nb), -EAGAIN);
	ipcx_wait bad = { .mode = 99, .timeout_ns = -1 };
	assert_int_equal(ipcx_pipe_recv(b, r, sizeof r, &bad), -EINVAL);
	assert_int_equal(ipcx_pipe_read(ipcx_pipe_rfd(b), r, sizeof r, &bad), -EINVAL);
	/* Over max_frame: skipped, the stream goes on. */
	char *big = malloc(200000);
	memset(big, 'z', 200000);
	ipcx_wait two_s = { .mode = IPCX_WAIT_BLOCK, .timeout_ns = 2000000000 };
	/* a's send waits for room while b drains nothing: use non-blocking
	 * sends, which queue the tail in the handle. */
	assert_int_equal(ipcx_pipe_send(a, big, 200000, &nb), 0);
	assert_int_equal(ipcx_pipe_send(a, "end", 3, &nb), -EAGAIN); /* tail still queued */
	assert_int_equal(ipcx_pipe_recv(b, r, sizeof r, &two_s), -EMSGSIZE);
	/* a flushes as b skips. */
	for (int i = 0; i < 1000; i++) {
		int f = ipcx_pipe_flush(a, &nb);
		ssize_t n = ipcx_pipe_recv(b, r, sizeof r, &nb);
		assert_true(n == -EAGAIN);
		if (f == 0)
			break;
	}
	assert_int_equal(ipcx_pipe_send(a, "end", 3, &two_s), 0);
	assert_int_equal(ipcx_pipe_recv(b, r, sizeof r, &two_s), 3);
	assert_memory_equal(r, "end", 3);
	free(big);
	/* The writer closes: -EPIPE after the last message. */
	assert_int_equal(ipcx_pipe_send(a, "last", 4, NULL), 0);
	ipcx_pipe_close(a);
	assert_int_equal(ipcx_pipe_recv(b, r, sizeof r, NULL), 4);
	assert_int_equal(ipcx_pipe_recv(b, r, sizeof r, NULL), -EPIPE);
	ipcx_pipe_close(b);
	assert_int_equal(ipcx_pipe_close(NULL), 0);
	assert_int_equal(t_count_fds(), fds0);
}

/* Both sides send a message far larger than the pipe, then receive. */
struct duplex_arg {
	ipcx_pipe *p;
	size_t len;
	char fill;
};

static int exchange(struct duplex_arg *d)
{
	char *m = malloc(d->len), *r = malloc(d->len);
	memset(m, d->fill, d->len);
	int rc = ipcx_pipe_send(d->p, m, d->len, &five_s);
	ssize_t n = rc ? rc : ipcx_pipe_recv(d->p, r, d->len, &five_s);
	int ok = n == (ssize_t)d->len && r[0] != d->fill && r[0] == r[d->len - 1];
	free(m);
	free(r);
	return ok ? 0 : 1;
}

static int duplex_child(void *arg)
{
	return exchange(arg);
}

static void test_duplex_no_deadlock(void **st)
{
	(void)st;
	ipcx_pipe *a, *b;
	assert_int_equal(ipcx_pipe_duplex(&a, &b, NULL), 0);
	struct duplex_arg db = { b, 4u << 20, 'B' };
	pid_t kid = t_spawn(duplex_child, &db);
	ipcx_pipe_close(b);
	struct duplex_arg da = { a, 4u << 20, 'A' };
	assert_int_equal(exchange(&da), 0);
	assert_int_equal(t_wait(kid), 0);
	ipcx_pipe_close(a);
}

static void test_fifo(void **st)
{
	(void)st;
	char path[128];
	snprintf(path, sizeof path, "/tmp/%s", t_name("fifo"));
	mode_t old = umask(0);
	assert_int_equal(ipcx_fifo_create(path, 0), 0);
	umask(old);
	struct stat s;
	assert_int_equal(stat(path, &s), 0);
	assert_true(S_ISFIFO(s.st_mode));
	assert_int_equal(s.st_mode & 0777, 0600);
	assert_int_equal(ipcx_fifo_create(path, 0), -EEXIST);
	/* No reader: a writer cannot open; with a deadline it times out. */
	assert_int_equal(ipcx_fifo_open(path, IPCX_FIFO_WRITE, &nb), -ENXIO);
	ipcx_wait t = { .mode = IPCX_WAIT_BLOCK, .timeout_ns = 20000000 };
	assert_int_equal(ipcx_fifo_open(path, IPCX_FIFO_WRITE, &t), -ETIMEDOUT);
	/* A reader opens at once and, with no writer yet, waits (no false EOF). */
	int r = ipcx_fifo_open(path, IPCX_FIFO_READ, NULL);
	assert_true(r >= 0);
	char buf[8];
	assert_int_equal(ipcx_pipe_read(r, buf, sizeof buf, &t), -ETIMEDOUT);
	int w = ipcx_fifo_open(path, IPCX_FIFO_WRITE, &t);
	assert_true(w >= 0);
	assert_int_equal(ipcx_pipe_write(w, "hi", 2, NULL), 2);
	assert_int_equal(ipcx_pipe_read(r, buf, sizeof buf, NULL), 2);
	close(w);
	/* The writer has come and gone: now it is end-of-file. */
	assert_int_equal(ipcx_pipe_read(r, buf, sizeof buf, &t), 0);
	close(r);
	/* Not a FIFO. */
	assert_int_equal(ipcx_fifo_open("/dev/null", IPCX_FIFO_READ, NULL), -EINVAL);
	assert_int_equal(ipcx_fifo_open(path, 3, NULL), -EINVAL);
	unlink(path);
	assert_int_equal(ipcx_fifo_open(path, IPCX_FIFO_READ, NULL), -ENOENT);
}

/* The zero-copy writer must never let the reader see a chunk overwritten
 * while still in the pipe: every chunk carries its own sequence in every
 * byte.  With 14-page chunks, a 16-page pipe and the default buffer of 32
 * pages, the writer wraps to a chunk after splicing only 14 pages past it:
 * without the FIONREAD check it would overwrite pages still in the pipe. */
#define ZC_CHUNK (14 * 4096 - 50)
#define ZC_ROUNDS 600
static int zc_reader(void *arg)
{
	int fd = *(int *)arg;
	char *buf = malloc(ZC_CHUNK);
	size_t chunk = ZC_CHUNK;
	for (unsigned seq = 0; seq < ZC_ROUNDS; seq++) {
		size_t got = 0;
		while (got < chunk) {
			/* Small reads, so chunks linger partly read in the pipe. */
			size_t want = chunk - got < 4096 ? chunk - got : 4096;
			ssize_t n = ipcx_pipe_read(fd, buf + got, want, &five_s);
			if (n <= 0)
				return 2;
			got += (size_t)n;
		}
		for (size_t i = 0; i < chunk; i++)
			if ((unsigned char)buf[i] != (unsigned char)seq)
				return 3;
		if (seq % 2 == 0)
			usleep(100); /* let the writer get ahead */
	}
	free(buf);
	return 0;
}

static void test_zero_copy(void **st)
{
	(void)st;
	int fds0 = t_count_fds();
	int p[2];
	assert_int_equal(ipcx_pipe_create(p, 0), 0);
	assert_int_equal(ipcx_pipe_set_capacity(p[1], 65536, NULL), 65536);
	pid_t kid = t_spawn(zc_reader, &p[0]);
	close(p[0]);
	ipcx_pipe_zc *z;
	assert_int_equal(ipcx_pipe_zc_open(&z, p[1], 0, NULL), 0);
	size_t chunk = ZC_CHUNK;
	void *ptr;
	assert_int_equal(ipcx_pipe_zc_reserve(z, 1 << 20, &ptr, NULL), -EMSGSIZE);
	for (unsigned seq = 0; seq < ZC_ROUNDS; seq++) {
		assert_int_equal(ipcx_pipe_zc_reserve(z, chunk, &ptr, &five_s), 0);
		memset(ptr, (unsigned char)seq, chunk);
		assert_int_equal(ipcx_pipe_zc_commit(z, chunk, &five_s), 0);
	}
	assert_int_equal(t_wait(kid), 0);
	/* The reader is gone: -EPIPE, no SIGPIPE. */
	signal(SIGPIPE, SIG_DFL);
	assert_int_equal(ipcx_pipe_zc_reserve(z, 100, &ptr, &five_s), 0);
	assert_int_equal(ipcx_pipe_zc_commit(z, 100, &five_s), -EPIPE);
	ipcx_pipe_zc_close(z);
	close(p[1]);
	assert_int_equal(t_count_fds(), fds0);
}

static void test_splice(void **st)
{
	(void)st;
	signal(SIGPIPE, SIG_DFL);
	int p[2], q[2];
	assert_int_equal(ipcx_pipe_create(p, IPCX_PIPE_NONBLOCK), 0);
	assert_int_equal(ipcx_pipe_create(q, IPCX_PIPE_NONBLOCK), 0);
	int f = memfd_create("splice", MFD_CLOEXEC);
	assert_true(f >= 0);
	assert_int_equal(ipcx_pipe_write(p[1], "spliced!", 8, NULL), 8);
	/* pipe -> pipe, then pipe -> file, all in the kernel */
	assert_int_equal(ipcx_pipe_splice(p[0], q[1], 8, NULL), 8);
	assert_int_equal(ipcx_pipe_splice(q[0], f, 8, NULL), 8);
	char buf[8];
	assert_int_equal(pread(f, buf, 8, 0), 8);
	assert_memory_equal(buf, "spliced!", 8);
	/* Nothing to move: waits, then times out. */
	ipcx_wait t = { .mode = IPCX_WAIT_BLOCK, .timeout_ns = 10000000 };
	assert_int_equal(ipcx_pipe_splice(p[0], q[1], 8, &t), -ETIMEDOUT);
	/* Into a pipe without a reader: -EPIPE, and we are alive. */
	assert_int_equal(ipcx_pipe_write(p[1], "x", 1, NULL), 1);
	close(q[0]);
	assert_int_equal(ipcx_pipe_splice(p[0], q[1], 1, NULL), -EPIPE);
	/* The byte stayed in p; then end of input. */
	close(p[1]);
	assert_int_equal(ipcx_pipe_splice(p[0], f, 8, NULL), 1);
	assert_int_equal(ipcx_pipe_splice(p[0], f, 8, NULL), 0);
	close(p[0]);
	close(q[1]);
	close(f);
}

int main(void)
{
	t_watchdog(50);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_capacity),	   cmocka_unit_test(test_sigpipe),
		cmocka_unit_test(test_read_write_waits),   cmocka_unit_test(test_frames),
		cmocka_unit_test(test_duplex_no_deadlock), cmocka_unit_test(test_fifo),
		cmocka_unit_test(test_zero_copy),	   cmocka_unit_test(test_splice),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
