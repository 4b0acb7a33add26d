/* Zero-copy sending with vmsplice, without the page-reuse hazard.
 *
 * vmsplice puts references to our pages into the pipe.  Were we to write a
 * page again before the reader copied it out, the reader would see the new
 * bytes.  The pipe is a FIFO, so the bytes of a chunk have left it once the
 * pipe holds fewer bytes (FIONREAD) than were spliced after that chunk.  Each
 * page of the buffer remembers the running total of bytes spliced when its
 * last byte went in; a chunk is handed out again only when
 *     FIONREAD <= total_spliced - stamp(page)   for each of its pages.
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pipe_internal.h"

struct ipcx_pipe_zc {
	int wfd;
	ipcx_wait wait;
	size_t pipe_size; /* capacity when opened: a resize breaks nothing we
	                     rely on, but is reported so the caller knows */
	char *buf;
	size_t size, page;
	uint64_t *stamp; /* per page: total spliced after its last byte went in */
	uint64_t total;  /* bytes spliced so far */
	size_t pos;      /* next chunk starts here */
	size_t cur, cur_len; /* the reserved chunk */
	size_t pend_off, pend_len; /* committed, not yet all spliced */
};

IPCX_API int ipcx_pipe_zc_open(ipcx_pipe_zc **out, int wfd, size_t buf_size, const ipcx_wait *w)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	ssize_t cap = ipcx_pipe_capacity(wfd);
	if (cap < 0)
		return (int)cap;
	int rc = ipcx_pipe_set_nonblock(wfd, 1);
	if (rc)
		return rc;
	ipcx_pipe_zc *z = calloc(1, sizeof *z);
	if (!z)
		return -ENOMEM;
	z->wfd = wfd;
	z->wait = w && w->mode ? *w : IPCX_WAIT_INIT(IPCX_WAIT_BLOCK);
	z->pipe_size = (size_t)cap;
	z->page = (size_t)sysconf(_SC_PAGESIZE);
	size_t want = buf_size ? buf_size : 2 * (size_t)cap;
	z->size = (want + z->page - 1) / z->page * z->page;
	z->buf = mmap(NULL, z->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	z->stamp = calloc(z->size / z->page, sizeof *z->stamp);
	if (z->buf == MAP_FAILED || !z->stamp) {
		if (z->buf != MAP_FAILED)
			munmap(z->buf, z->size);
		free(z->stamp);
		free(z);
		return -ENOMEM;
	}
	*out = z;
	return 0;
}

/* Bytes still in the pipe. */
static int in_pipe(int fd, uint64_t *n)
{
	int v;
	if (ioctl(fd, FIONREAD, &v) < 0)
		return -errno;
	*n = (uint64_t)v;
	return 0;
}

struct reuse_args {
	ipcx_pipe_zc *z;
	size_t off, len;
};

/* 1 when every page of [off, off+len) has left the pipe, else -EAGAIN. */
static int reusable(void *arg)
{
	struct reuse_args *a = arg;
	ipcx_pipe_zc *z = a->z;
	uint64_t newest = 0, queued = 0;
	for (size_t pg = a->off / z->page; pg < (a->off + a->len + z->page - 1) / z->page; pg++)
		if (z->stamp[pg] > newest)
			newest = z->stamp[pg];
	if (newest == 0)
		return 1; /* never spliced */
	int rc = in_pipe(z->wfd, &queued);
	if (rc)
		return rc;
	return queued <= z->total - newest ? 1 : -EAGAIN;
}

/* Wait under w for op; poll cannot tell when the reader consumed, so waits
 * past the spin phase sleep in short steps. */
static int zc_wait(ipcx_pipe_zc *z, const ipcx_wait *w, int (*op)(void *), void *arg)
{
	ipcx_wait pw = ipcx__wait_resolve(w, &z->wait);
	uint64_t start = ipcx__now_ns(), deadline = ipcx__deadline(&pw);
	uint64_t spin_end = pw.mode == IPCX_WAIT_SPIN	    ? UINT64_MAX
			    : pw.mode == IPCX_WAIT_ADAPTIVE ? start + pw.spin_ns
							    : start;
	if (pw.mode > IPCX_WAIT_NONBLOCK)
		return -EINVAL;
	for (;;) {
		int rc = op(arg);
		if (rc != -EAGAIN)
			return rc;
		if (pw.mode == IPCX_WAIT_NONBLOCK)
			return -EAGAIN;
		uint64_t now = ipcx__now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		if (now < spin_end) {
			ipcx__cpu_relax();
			continue;
		}
		struct timespec ts = { 0, 20000 };
		nanosleep(&ts, NULL);
	}
}

IPCX_API int ipcx_pipe_zc_reserve(ipcx_pipe_zc *z, size_t len, void **ptr, const ipcx_wait *w)
{
	if (!z || !ptr)
		return -EINVAL;
	*ptr = NULL;
	if (len == 0 || len > z->size)
		return -EMSGSIZE;
	if (z->pend_len)
		return -EBUSY;
	size_t off = z->pos + len <= z->size ? z->pos : 0;
	struct reuse_args a = { z, off, len };
	int rc = zc_wait(z, w, reusable, &a);
	if (rc < 0)
		return rc;
	z->cur = off;
	z->cur_len = len;
	*ptr = z->buf + off;
	return 0;
}

static int splice_some(void *arg)
{
	ipcx_pipe_zc *z = arg;
	while (z->pend_len) {
		ssize_t cap = ipcx_pipe_capacity(z->wfd);
		if (cap >= 0 && (size_t)cap != z->pipe_size)
			return -EBUSY;
		struct iovec iov = { z->buf + z->pend_off, z->pend_len };
		ssize_t n = ipcx__pipe_write_nosig(z->wfd, &iov, 1, SPLICE_F_NONBLOCK, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -EAGAIN : -errno;
		}
		z->total += (uint64_t)n;
		/* Stamp every page that now has bytes in the pipe. */
		for (size_t pg = z->pend_off / z->page;
		     pg < (z->pend_off + (size_t)n + z->page - 1) / z->page; pg++)
			z->stamp[pg] = z->total;
		z->pend_off += (size_t)n;
		z->pend_len -= (size_t)n;
	}
	return 0;
}

static int splice_wait(ipcx_pipe_zc *z, const ipcx_wait *w)
{
	ipcx_wait pw = ipcx__wait_resolve(w, &z->wait);
	return ipcx__fd_wait_op(&pw, ipcx__deadline(&pw), z->wfd, POLLOUT, splice_some, z);
}

IPCX_API int ipcx_pipe_zc_commit(ipcx_pipe_zc *z, size_t len, const ipcx_wait *w)
{
	if (!z || len > z->cur_len || (len && z->pend_len))
		return -EINVAL;
	if (len == 0)
		return 0;
	z->pend_off = z->cur;
	z->pend_len = len;
	/* Chunks start on page boundaries so no page is shared by two chunks. */
	z->pos = (z->cur + len + z->page - 1) / z->page * z->page;
	z->cur_len = 0;
	return splice_wait(z, w);
}

IPCX_API int ipcx_pipe_zc_flush(ipcx_pipe_zc *z, const ipcx_wait *w)
{
	if (!z)
		return -EINVAL;
	return splice_wait(z, w);
}

IPCX_API int ipcx_pipe_zc_close(ipcx_pipe_zc *z)
{
	if (!z)
		return 0;
	/* The pipe holds its own references to pages still in it: unmapping
	 * leaves their contents intact for the reader and frees them after. */
	munmap(z->buf, z->size);
	free(z->stamp);
	free(z);
	return 0;
}
