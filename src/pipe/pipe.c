/* Pipes and FIFOs: capacity and limits, SIGPIPE-safe byte I/O, FIFO opening. */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pipe_internal.h"

static size_t read_proc_size(const char *path)
{
	FILE *f = fopen(path, "re");
	unsigned long long v = 0;
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return (size_t)v;
}

static int has_cap_sys_resource(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) < 0)
		return 0;
	return (d[CAP_TO_INDEX(CAP_SYS_RESOURCE)].effective & CAP_TO_MASK(CAP_SYS_RESOURCE)) != 0;
}

IPCX_API int ipcx_pipe_limits_get(ipcx_pipe_limits *lim)
{
	if (!lim)
		return -EINVAL;
	memset(lim, 0, sizeof *lim);
	lim->pipe_buf = PIPE_BUF;
	lim->page_size = (size_t)sysconf(_SC_PAGESIZE);
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	int sz = fcntl(fds[0], F_GETPIPE_SZ);
	close(fds[0]);
	close(fds[1]);
	lim->default_size = sz > 0 ? (size_t)sz : 0;
	lim->max_size = read_proc_size("/proc/sys/fs/pipe-max-size");
	lim->user_pages_soft = read_proc_size("/proc/sys/fs/pipe-user-pages-soft");
	lim->user_pages_hard = read_proc_size("/proc/sys/fs/pipe-user-pages-hard");
	lim->privileged = has_cap_sys_resource();
	return 0;
}

IPCX_API size_t ipcx_pipe_round_capacity(size_t want)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	if (want > (1ul << 31))
		return 0; /* the kernel's round_pipe_size() refuses these */
	if (want < page)
		return page;
	size_t r = page;
	while (r < want)
		r <<= 1;
	return r;
}

IPCX_API ssize_t ipcx_pipe_capacity(int fd)
{
	int r = fcntl(fd, F_GETPIPE_SZ);
	if (r < 0)
		return errno == EBADF ? -EBADF : -EINVAL;
	return r;
}

IPCX_API ssize_t ipcx_pipe_set_capacity(int fd, size_t want, ipcx_pipe_limits *lim)
{
	ssize_t rc;
	if (want > INT_MAX)
		rc = -EINVAL;
	else if ((rc = fcntl(fd, F_SETPIPE_SZ, (int)want)) < 0)
		rc = -errno;
	if (lim) {
		int l = ipcx_pipe_limits_get(lim);
		if (l == 0)
			lim->rounded = ipcx_pipe_round_capacity(want);
	}
	return rc;
}

IPCX_API int ipcx_pipe_create(int fds[2], unsigned flags)
{
	if (!fds || (flags & ~(unsigned)IPCX_PIPE_NONBLOCK))
		return -EINVAL;
	int f = O_CLOEXEC | ((flags & IPCX_PIPE_NONBLOCK) ? O_NONBLOCK : 0);
	return pipe2(fds, f) < 0 ? -errno : 0;
}

IPCX_API int ipcx_pipe_set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	int nf = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	if (nf != fl && fcntl(fd, F_SETFL, nf) < 0)
		return -errno;
	return 0;
}

IPCX_API int ipcx_fifo_create(const char *path, unsigned mode)
{
	if (!path || (mode & ~0777u))
		return -EINVAL;
	mode_t m = mode ? mode : 0600;
	/* The umask can only narrow 0600-and-below; chmod then sets exactly m.
	 * Until then the FIFO is at most as open as asked. */
	if (mkfifo(path, m & 0600) < 0)
		return -errno;
	if (chmod(path, m) < 0) {
		int e = -errno;
		unlink(path);
		return e;
	}
	return 0;
}

/* ---- SIGPIPE-safe writes -------------------------------------------------- */

/* SIGPIPE blocked in this thread for the span of one write.  A SIGPIPE
 * that was pending before the write is not ours to eat; one can only be
 * pending if the caller had SIGPIPE blocked already, so only then is it
 * looked for (the common case costs two sigprocmask calls). */
struct sigpipe_guard {
	sigset_t set, old;
	int was_blocked, was_pending;
};

static void guard_enter(struct sigpipe_guard *g)
{
	sigemptyset(&g->set);
	sigaddset(&g->set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &g->set, &g->old);
	g->was_blocked = sigismember(&g->old, SIGPIPE);
	g->was_pending = 0;
	if (g->was_blocked) {
		sigset_t pending;
		sigpending(&pending);
		g->was_pending = sigismember(&pending, SIGPIPE);
	}
}

/* err: the errno of the write (0 if it succeeded).  errno is preserved. */
static void guard_leave(struct sigpipe_guard *g, int err)
{
	if (err == EPIPE && !g->was_pending) {
		/* The write raised it: consume it while it is still blocked. */
		struct timespec zero = { 0, 0 };
		while (sigtimedwait(&g->set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	if (!g->was_blocked)
		pthread_sigmask(SIG_SETMASK, &g->old, NULL);
	errno = err;
}

ssize_t ipcx__pipe_write_nosig(int fd, const struct iovec *iov, int iovcnt, int splice_flags,
			       int ignored)
{
	struct sigpipe_guard g;
	if (!ignored)
		guard_enter(&g);
	ssize_t n = splice_flags >= 0 ? vmsplice(fd, iov, (unsigned long)iovcnt, (unsigned)splice_flags)
				      : writev(fd, iov, iovcnt);
	if (!ignored)
		guard_leave(&g, n < 0 ? errno : 0);
	return n;
}

struct rw_args {
	int fd;
	const char *wbuf;
	char *rbuf;
	size_t len, done;
};

static int write_op(void *arg)
{
	struct rw_args *a = arg;
	while (a->done < a->len) {
		struct iovec iov = { (void *)(a->wbuf + a->done), a->len - a->done };
		ssize_t n = ipcx__pipe_write_nosig(a->fd, &iov, 1, -1, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -EAGAIN : -errno;
		}
		a->done += (size_t)n;
	}
	return 0;
}

static ipcx_wait resolve(const ipcx_wait *w)
{
	ipcx_wait d = IPCX_WAIT_INIT(IPCX_WAIT_BLOCK);
	return ipcx__wait_resolve(w, &d);
}

IPCX_API ssize_t ipcx_pipe_write(int fd, const void *buf, size_t len, const ipcx_wait *w)
{
	if ((len && !buf) || len > SSIZE_MAX)
		return -EINVAL;
	ipcx_wait pw = resolve(w);
	struct rw_args a = { .fd = fd, .wbuf = buf, .len = len };
	int rc = ipcx__fd_wait_op(&pw, ipcx__deadline(&pw), fd, POLLOUT, write_op, &a);
	if (rc < 0 && a.done > 0 && (rc == -EAGAIN || rc == -ETIMEDOUT))
		return (ssize_t)a.done;
	return rc < 0 ? rc : (ssize_t)len;
}

int ipcx__pipe_read_once(int fd, void *buf, size_t cap)
{
	for (;;) {
		ssize_t n = read(fd, buf, cap);
		if (n > 0)
			return (int)n;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		/* 0: end-of-file, or a FIFO no writer has opened yet.  Linux
		 * reports POLLHUP on a FIFO's read end only once a writer has come
		 * and gone, so no POLLHUP means "wait", not "the end". */
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLIN)))
			return 0;
		return -EAGAIN;
	}
}

static int read_op(void *arg)
{
	struct rw_args *a = arg;
	int n = ipcx__pipe_read_once(a->fd, a->rbuf, a->len);
	if (n > 0)
		a->done = (size_t)n;
	return n;
}

IPCX_API ssize_t ipcx_pipe_read(int fd, void *buf, size_t cap, const ipcx_wait *w)
{
	if ((cap && !buf) || cap == 0)
		return cap ? -EINVAL : 0;
	if (cap > INT_MAX)
		cap = INT_MAX;
	ipcx_wait pw = resolve(w);
	struct rw_args a = { .fd = fd, .rbuf = buf, .len = cap };
	return ipcx__fd_wait_op(&pw, ipcx__deadline(&pw), fd, POLLIN, read_op, &a);
}

struct splice_args {
	int in, out;
	size_t len;
};

static int splice_op(void *arg)
{
	struct splice_args *a = arg;
	struct sigpipe_guard g;
	guard_enter(&g);
	ssize_t n;
	do
		n = splice(a->in, NULL, a->out, NULL, a->len, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
	while (n < 0 && errno == EINTR);
	guard_leave(&g, n < 0 ? errno : 0);
	if (n >= 0)
		return n > INT_MAX ? INT_MAX : (int)n;
	return errno == EAGAIN ? -EAGAIN : -errno;
}

IPCX_API ssize_t ipcx_pipe_splice(int in_fd, int out_fd, size_t len, const ipcx_wait *w)
{
	if (len > INT_MAX)
		len = INT_MAX;
	ipcx_wait pw = resolve(w);
	uint64_t deadline = ipcx__deadline(&pw);
	struct splice_args a = { in_fd, out_fd, len };
	if (pw.mode > IPCX_WAIT_NONBLOCK)
		return -EINVAL;
	for (;;) {
		int rc = splice_op(&a);
		if (rc != -EAGAIN || pw.mode == IPCX_WAIT_NONBLOCK)
			return rc;
		/* Wait on the side that is not ready: the input if it has no
		 * data, else the output. */
		struct pollfd p = { .fd = in_fd, .events = POLLIN };
		if (poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP)))
			p = (struct pollfd){ .fd = out_fd, .events = POLLOUT };
		rc = ipcx__poll_until(&p, 1, deadline);
		if (rc < 0)
			return rc;
		if (rc == 0 || ipcx__now_ns() >= deadline)
			return -ETIMEDOUT;
	}
}

/* ---- FIFOs ---------------------------------------------------------------- */

struct fifo_args {
	const char *path;
};

static int open_writer_op(void *arg)
{
	struct fifo_args *a = arg;
	int fd = open(a->path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0)
		return fd;
	return errno == ENXIO ? -EAGAIN : errno == ENODEV ? -EINVAL : -errno;
}

static int check_fifo(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	return S_ISFIFO(st.st_mode) ? 0 : -EINVAL;
}

IPCX_API int ipcx_fifo_open(const char *path, unsigned flags, const ipcx_wait *w)
{
	if (!path || (flags != IPCX_FIFO_READ && flags != IPCX_FIFO_WRITE))
		return -EINVAL;
	int fd;
	if (flags == IPCX_FIFO_READ) {
		/* Never blocks: a non-blocking open for reading succeeds without a
		 * writer. */
		fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return errno == ENODEV ? -EINVAL : -errno;
	} else {
		/* Without a reader the kernel says ENXIO; there is nothing to poll
		 * for a reader's arrival, so the wait retries at a 1 ms pace. */
		ipcx_wait pw = resolve(w);
		if (pw.mode > IPCX_WAIT_NONBLOCK)
			return -EINVAL;
		uint64_t deadline = ipcx__deadline(&pw);
		struct fifo_args a = { path };
		for (;;) {
			fd = open_writer_op(&a);
			if (fd != -EAGAIN)
				break;
			if (pw.mode == IPCX_WAIT_NONBLOCK)
				return -ENXIO;
			if (ipcx__now_ns() >= deadline)
				return -ETIMEDOUT;
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
		}
		if (fd < 0)
			return fd;
	}
	int rc = check_fifo(fd);
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}
