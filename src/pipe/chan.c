/* Framed messages over pipes, and the full-duplex channel that cannot
 * deadlock: while one direction waits, the other keeps moving. */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipe_internal.h"

#define FRAME_HDR 4u
#define DEFAULT_LIMIT (64u << 20)
#define READ_CHUNK 4096u /* one read brings in several small messages */

struct ipcx_pipe {
	int rfd, wfd;
	ipcx_wait wait;
	size_t max_frame, max_buffer;
	/* outgoing: the unsent tail of a message whose head went out */
	char *out;
	size_t out_off, out_len, out_cap;
	/* incoming: bytes read but not yet delivered */
	char *in;
	size_t in_off, in_len, in_cap;
	uint64_t skip; /* bytes of an over-long message still to discard */
	int werr;      /* a write error met while flushing inside recv */
	int sig_ignored; /* IPCX_PIPE_SIGPIPE_IGNORED, checked at open */
};

/* ---- buffers -------------------------------------------------------------- */

static int grow(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : READ_CHUNK;
	while (n < need)
		n *= 2;
	char *b = realloc(*buf, n);
	if (!b)
		return -ENOMEM;
	*buf = b;
	*cap = n;
	return 0;
}

/* Room for `extra` more incoming bytes after the current ones. */
static int in_room(ipcx_pipe *p, size_t extra)
{
	if (p->in_off && p->in_len)
		memmove(p->in, p->in + p->in_off, p->in_len);
	p->in_off = 0;
	return grow(&p->in, &p->in_cap, p->in_len + extra);
}

static void in_consume(ipcx_pipe *p, size_t n)
{
	p->in_off += n;
	p->in_len -= n;
	if (!p->in_len)
		p->in_off = 0;
}

/* Read what is available into the incoming buffer, up to `limit` bytes
 * buffered.  Returns > 0 bytes read, -EAGAIN none, 0 end-of-file, -errno. */
static int fill(ipcx_pipe *p, size_t limit)
{
	if (p->rfd < 0)
		return -EAGAIN;
	if (p->in_len >= limit)
		return -ENOBUFS;
	size_t want = limit - p->in_len < READ_CHUNK ? limit - p->in_len : READ_CHUNK;
	int rc = in_room(p, want);
	if (rc)
		return rc;
	return ipcx__pipe_read_once(p->rfd, p->in + p->in_len, want);
}

/* Push the queued tail.  0 all out, -EAGAIN some left, -errno. */
static int flush_out(ipcx_pipe *p)
{
	while (p->out_len) {
		struct iovec iov = { p->out + p->out_off, p->out_len };
		ssize_t n = ipcx__pipe_write_nosig(p->wfd, &iov, 1, -1, p->sig_ignored);
		if (n < 0)
			return errno == EAGAIN ? -EAGAIN : errno == EINTR ? 0 : -errno;
		p->out_off += (size_t)n;
		p->out_len -= (size_t)n;
	}
	p->out_off = 0;
	return 0;
}

/* ---- waiting -------------------------------------------------------------- */

/* Wait for the read end to have data (want_in) and/or the write end to have
 * room (want_out), under policy w.  Returns 0 to retry, or -EAGAIN /
 * -ETIMEDOUT / -errno. */
struct waiter {
	ipcx_wait w;
	uint64_t deadline, spin_end;
};

static void waiter_init(struct waiter *wt, const ipcx_pipe *p, const ipcx_wait *w)
{
	wt->w = ipcx__wait_resolve(w, &p->wait);
	uint64_t now = ipcx__now_ns();
	wt->deadline = wt->w.timeout_ns < 0 ? UINT64_MAX : now + (uint64_t)wt->w.timeout_ns;
	wt->spin_end = wt->w.mode == IPCX_WAIT_SPIN	  ? UINT64_MAX
		       : wt->w.mode == IPCX_WAIT_ADAPTIVE ? now + wt->w.spin_ns
							  : now;
}

static int wait_io(const struct waiter *wt, const ipcx_pipe *p, int want_in, int want_out)
{
	if (wt->w.mode > IPCX_WAIT_NONBLOCK)
		return -EINVAL;
	if (wt->w.mode == IPCX_WAIT_NONBLOCK)
		return -EAGAIN;
	uint64_t now = ipcx__now_ns();
	if (now >= wt->deadline)
		return -ETIMEDOUT;
	if (now < wt->spin_end) {
		ipcx__cpu_relax();
		return 0;
	}
	struct pollfd pf[2];
	unsigned n = 0;
	if (want_in && p->rfd >= 0)
		pf[n++] = (struct pollfd){ .fd = p->rfd, .events = POLLIN };
	if (want_out && p->wfd >= 0)
		pf[n++] = (struct pollfd){ .fd = p->wfd, .events = POLLOUT };
	if (!n)
		return -EAGAIN;
	int rc = ipcx__poll_until(pf, n, wt->deadline);
	return rc < 0 ? rc : rc == 0 ? -ETIMEDOUT : 0;
}

/* ---- send ----------------------------------------------------------------- */

IPCX_API int ipcx_pipe_send(ipcx_pipe *p, const void *buf, size_t len, const ipcx_wait *w)
{
	if (!p || (len && !buf))
		return -EINVAL;
	if (p->wfd < 0)
		return -EBADF;
	if (len > UINT32_MAX)
		return -EMSGSIZE;
	if (p->werr) {
		int e = p->werr;
		p->werr = 0;
		return e;
	}
	uint32_t hdr = (uint32_t)len;
	size_t total = FRAME_HDR + len, sent = 0;
	struct waiter wt;
	waiter_init(&wt, p, w);
	int rc;
	for (;;) {
		rc = flush_out(p);
		if (rc == 0) {
			/* Up to PIPE_BUF this is one write: all or nothing (atomic). */
			while (sent < total) {
				struct iovec iov[2];
				int k = 0;
				if (sent < FRAME_HDR)
					iov[k++] = (struct iovec){ (char *)&hdr + sent, FRAME_HDR - sent };
				size_t po = sent < FRAME_HDR ? 0 : sent - FRAME_HDR;
				if (len > po)
					iov[k++] = (struct iovec){ (char *)buf + po, len - po };
				ssize_t n = ipcx__pipe_write_nosig(p->wfd, iov, k, -1, p->sig_ignored);
				if (n < 0) {
					rc = errno == EINTR ? 0 : errno == EAGAIN ? -EAGAIN : -errno;
					if (rc)
						break;
					continue;
				}
				sent += (size_t)n;
			}
			if (sent == total)
				return 0;
		}
		if (rc != -EAGAIN)
			return rc;
		/* Blocked on the write end: keep the other direction moving, so a
		 * peer blocked writing to us can finish and start reading. */
		int f;
		while ((f = fill(p, p->max_buffer)) > 0)
			p->in_len += (size_t)f;
		if (f == -ENOBUFS) {
			rc = -ENOBUFS;
			break;
		}
		rc = wait_io(&wt, p, f == -EAGAIN, 1);
		if (rc)
			break;
	}
	if (sent == 0)
		return rc;
	/* The message has started: keep its tail so framing survives. */
	size_t rest = total - sent;
	if (grow(&p->out, &p->out_cap, rest))
		return -ENOMEM; /* cannot happen for the header-only remainder */
	size_t o = 0;
	if (sent < FRAME_HDR) {
		memcpy(p->out, (char *)&hdr + sent, FRAME_HDR - sent);
		o = FRAME_HDR - sent;
		sent = FRAME_HDR;
	}
	memcpy(p->out + o, (const char *)buf + (sent - FRAME_HDR), total - sent);
	p->out_off = 0;
	p->out_len = rest;
	return 0;
}

IPCX_API int ipcx_pipe_flush(ipcx_pipe *p, const ipcx_wait *w)
{
	if (!p)
		return -EINVAL;
	struct waiter wt;
	waiter_init(&wt, p, w);
	for (;;) {
		int rc = flush_out(p);
		if (rc != -EAGAIN)
			return rc;
		int f;
		while ((f = fill(p, p->max_buffer)) > 0)
			p->in_len += (size_t)f;
		if (f == -ENOBUFS)
			return -ENOBUFS;
		if ((rc = wait_io(&wt, p, f == -EAGAIN, 1)))
			return rc;
	}
}

/* ---- receive -------------------------------------------------------------- */

/* One attempt at delivering a message (or its size when buf is NULL and
 * peek is set).  -EAGAIN when more bytes are needed. */
static ssize_t try_recv(ipcx_pipe *p, void *buf, size_t cap, int peek)
{
	if (p->out_len) {
		int rc = flush_out(p);
		if (rc && rc != -EAGAIN)
			p->werr = rc; /* reported by the next send */
	}
	for (;;) {
		if (p->skip) {
			size_t k = p->in_len < p->skip ? p->in_len : (size_t)p->skip;
			in_consume(p, k);
			p->skip -= k;
		}
		if (!p->skip && p->in_len >= FRAME_HDR) {
			uint32_t len;
			memcpy(&len, p->in + p->in_off, sizeof len);
			if (len > p->max_frame) {
				in_consume(p, FRAME_HDR);
				p->skip = len;
				return -EMSGSIZE;
			}
			if (peek)
				return (ssize_t)len;
			if (len > cap)
				return -EMSGSIZE;
			size_t have = p->in_len - FRAME_HDR;
			if (have >= len) {
				memcpy(buf, p->in + p->in_off + FRAME_HDR, len);
				in_consume(p, FRAME_HDR + len);
				return (ssize_t)len;
			}
			/* Large message: the rest goes straight into the caller's
			 * buffer; if it does not all come, it is put back in ours. */
			memcpy(buf, p->in + p->in_off + FRAME_HDR, have);
			size_t got = have;
			int rc = 0;
			while (got < len && (rc = ipcx__pipe_read_once(p->rfd, (char *)buf + got,
								     len - got)) > 0)
				got += (size_t)rc;
			if (got == len) {
				in_consume(p, FRAME_HDR + have);
				return (ssize_t)len;
			}
			if (got > have) {
				int e = in_room(p, got - have);
				if (e)
					return e;
				memcpy(p->in + p->in_len, (char *)buf + have, got - have);
				p->in_len += got - have;
			}
			if (rc == 0)
				return -EPIPE; /* the writer died mid-message: drop it */
			return rc;
		}
		int rc = fill(p, p->in_len + READ_CHUNK);
		if (rc == 0)
			return -EPIPE;
		if (rc < 0)
			return rc;
		p->in_len += (size_t)rc;
	}
}

static ssize_t recv_wait(ipcx_pipe *p, void *buf, size_t cap, int peek, const ipcx_wait *w)
{
	if (!p || (cap && !buf && !peek))
		return -EINVAL;
	if (p->rfd < 0)
		return -EBADF;
	struct waiter wt;
	waiter_init(&wt, p, w);
	for (;;) {
		ssize_t rc = try_recv(p, buf, cap, peek);
		if (rc != -EAGAIN)
			return rc;
		if ((rc = wait_io(&wt, p, 1, p->out_len != 0)))
			return rc;
	}
}

IPCX_API ssize_t ipcx_pipe_recv(ipcx_pipe *p, void *buf, size_t cap, const ipcx_wait *w)
{
	return recv_wait(p, buf, cap, 0, w);
}

IPCX_API ssize_t ipcx_pipe_next_size(ipcx_pipe *p, const ipcx_wait *w)
{
	return recv_wait(p, NULL, 0, 1, w);
}

/* ---- handles -------------------------------------------------------------- */

IPCX_API int ipcx_pipe_open(ipcx_pipe **out, int rfd, int wfd, const ipcx_pipe_opts *opts)
{
	int rc = 0;
	if (!out || (rfd < 0 && wfd < 0) ||
	    (opts && (opts->flags & ~(uint32_t)IPCX_PIPE_SIGPIPE_IGNORED)))
		rc = -EINVAL;
	else
		*out = NULL;
	if (!rc && opts && (opts->flags & IPCX_PIPE_SIGPIPE_IGNORED)) {
		/* Trust the caller's word only as far as it is true now. */
		struct sigaction sa;
		if (sigaction(SIGPIPE, NULL, &sa) < 0 || sa.sa_handler != SIG_IGN)
			rc = -EINVAL;
	}
	ipcx_pipe *p = rc ? NULL : calloc(1, sizeof *p);
	if (!rc && !p)
		rc = -ENOMEM;
	if (!rc && rfd >= 0)
		rc = ipcx_pipe_set_nonblock(rfd, 1);
	if (!rc && wfd >= 0)
		rc = ipcx_pipe_set_nonblock(wfd, 1);
	if (rc) {
		free(p);
		if (rfd >= 0)
			close(rfd);
		if (wfd >= 0)
			close(wfd);
		return rc;
	}
	p->rfd = rfd;
	p->wfd = wfd;
	p->wait = opts && opts->wait.mode ? opts->wait : IPCX_WAIT_INIT(IPCX_WAIT_BLOCK);
	p->max_frame = opts && opts->max_frame ? opts->max_frame : DEFAULT_LIMIT;
	p->max_buffer = opts && opts->max_buffer ? opts->max_buffer : DEFAULT_LIMIT;
	p->sig_ignored = opts && (opts->flags & IPCX_PIPE_SIGPIPE_IGNORED);
	*out = p;
	return 0;
}

IPCX_API int ipcx_pipe_duplex(ipcx_pipe **a, ipcx_pipe **b, const ipcx_pipe_opts *opts)
{
	if (!a || !b)
		return -EINVAL;
	*a = *b = NULL;
	int ab[2], ba[2], rc;
	if ((rc = ipcx_pipe_create(ab, IPCX_PIPE_NONBLOCK)))
		return rc;
	if ((rc = ipcx_pipe_create(ba, IPCX_PIPE_NONBLOCK))) {
		close(ab[0]);
		close(ab[1]);
		return rc;
	}
	if ((rc = ipcx_pipe_open(a, ba[0], ab[1], opts))) {
		close(ab[0]);
		close(ba[1]);
		return rc;
	}
	if ((rc = ipcx_pipe_open(b, ab[0], ba[1], opts))) {
		ipcx_pipe_close(*a);
		*a = NULL;
	}
	return rc;
}

IPCX_API int ipcx_pipe_rfd(const ipcx_pipe *p)
{
	return p ? p->rfd : -EINVAL;
}

IPCX_API int ipcx_pipe_wfd(const ipcx_pipe *p)
{
	return p ? p->wfd : -EINVAL;
}

IPCX_API int ipcx_pipe_close(ipcx_pipe *p)
{
	if (!p)
		return 0;
	if (p->rfd >= 0)
		close(p->rfd);
	if (p->wfd >= 0)
		close(p->wfd);
	free(p->in);
	free(p->out);
	free(p);
	return 0;
}
