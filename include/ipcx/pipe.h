/*
 * ipcx pipes: anonymous pipes and FIFOs with their traps handled.
 *
 *  - Capacity: read it, set it, and learn the kernel's rounding and limits
 *    when a request is refused (ipcx_pipe_set_capacity).
 *  - Byte I/O that never raises SIGPIPE (-EPIPE instead) and waits under an
 *    ipcx_wait policy with a deadline (ipcx_pipe_write / ipcx_pipe_read).
 *  - Framed messages over the byte stream, and a full-duplex channel over two
 *    pipes that cannot deadlock whatever the message sizes (ipcx_pipe).
 *  - FIFOs created exclusively and opened without the blocking trap.
 *  - Zero-copy sending with vmsplice, with the page-reuse hazard handled
 *    (ipcx_pipe_zc).
 *
 * Errors follow <ipcx/common.h>.  Every fd the library creates is
 * close-on-exec.  See docs/pipe.md.
 */
#ifndef IPCX_PIPE_H
#define IPCX_PIPE_H

#include <ipcx/common.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- capacity and limits ------------------------------------------------ */

/* What this system allows, read from the kernel when asked. */
typedef struct ipcx_pipe_limits {
	size_t pipe_buf;        /* writes up to this many bytes are atomic (PIPE_BUF) */
	size_t page_size;
	size_t default_size;    /* capacity of a new pipe, measured */
	size_t max_size;        /* /proc/sys/fs/pipe-max-size: most an unprivileged
	                           F_SETPIPE_SZ may ask */
	size_t user_pages_soft; /* /proc/sys/fs/pipe-user-pages-soft (0: none); past it
	                           an unprivileged user's new pipes get 1 or 2 pages */
	size_t user_pages_hard; /* /proc/sys/fs/pipe-user-pages-hard (0: none); past it
	                           F_SETPIPE_SZ growth fails with -EPERM */
	int privileged;         /* the caller may exceed max_size (CAP_SYS_RESOURCE) */
	size_t rounded;         /* set by ipcx_pipe_set_capacity: the size the kernel
	                           rounds the request to (0: out of range) */
} ipcx_pipe_limits;

/* Fill *lim.  0 or -errno. */
IPCX_API int ipcx_pipe_limits_get(ipcx_pipe_limits *lim);

/* The size the kernel rounds a capacity request to: a power-of-two number of
 * pages, at least one page; 0 if the request is too large to represent. */
IPCX_API size_t ipcx_pipe_round_capacity(size_t want);

/* Capacity in bytes of the pipe behind fd (either end), or -errno
 * (-EBADF, -EINVAL not a pipe). */
IPCX_API ssize_t ipcx_pipe_capacity(int fd);

/*
 * Set the capacity of the pipe behind fd to at least `want` bytes.  Returns
 * the capacity the kernel gave (want rounded as ipcx_pipe_round_capacity).
 * Errors: -EPERM above max_size without privilege, or the user's pipe pages
 * are over the soft/hard limit; -EBUSY the pipe holds more data than the new
 * size; -EINVAL not a pipe or want out of range.  If lim is not NULL it is
 * filled (ipcx_pipe_limits_get, plus `rounded`) on success and failure, so
 * the caller can say why.
 */
IPCX_API ssize_t ipcx_pipe_set_capacity(int fd, size_t want, ipcx_pipe_limits *lim);

/* ---- anonymous pipes and FIFOs ------------------------------------------ */

enum ipcx_pipe_flags {
	IPCX_PIPE_NONBLOCK = 1u << 0, /* both ends O_NONBLOCK (what ipcx_pipe wants) */
};

/* pipe2 with O_CLOEXEC (and O_NONBLOCK if asked): fds[0] reads, fds[1]
 * writes.  0 or -errno (-EMFILE, -ENFILE). */
IPCX_API int ipcx_pipe_create(int fds[2], unsigned flags);

/* Create a FIFO at path, exclusively (-EEXIST), with exactly `mode` (0:
 * 0600) whatever the umask.  0 or -errno. */
IPCX_API int ipcx_fifo_create(const char *path, unsigned mode);

enum ipcx_fifo_open_flags {
	IPCX_FIFO_READ = 1,
	IPCX_FIFO_WRITE = 2,
};

/*
 * Open a FIFO for reading or writing, returning a non-blocking,
 * close-on-exec fd (or -errno).  open(2) on a FIFO blocks until the other
 * side opens, without a deadline; this does not:
 *
 *  - IPCX_FIFO_WRITE waits, as w says (NULL: block without a deadline), for
 *    a reader to open the FIFO.  -ENXIO (IPCX_WAIT_NONBLOCK) or -ETIMEDOUT
 *    when none does in time.
 *  - IPCX_FIFO_READ returns at once.  Until a first writer has opened and
 *    closed the FIFO, ipcx_pipe_read on the fd waits for data instead of
 *    reporting end-of-file (a plain read(2) would return 0 at once).
 *
 * Errors also: -ENOENT; -EACCES; -EINVAL path is not a FIFO (ENODEV from a
 * non-FIFO is reported as -EINVAL; O_NOFOLLOW: a symlink gives -ELOOP).
 */
IPCX_API int ipcx_fifo_open(const char *path, unsigned flags, const ipcx_wait *w);

/* Set or clear O_NONBLOCK.  Note that the flag belongs to the open file
 * description, shared with every process that holds the same pipe end. */
IPCX_API int ipcx_pipe_set_nonblock(int fd, int on);

/* ---- byte I/O ------------------------------------------------------------ */

/*
 * Write len bytes to a pipe, never raising SIGPIPE: SIGPIPE is blocked in
 * the calling thread around the write and, if the write raised it, the
 * pending signal is consumed (one that was already pending is left alone).
 * On a non-blocking fd the call waits as w says (NULL: block, no deadline);
 * on a blocking fd it blocks in the kernel as write(2).
 *
 * Returns len; or the bytes written so far (> 0, < len) if the wait ended
 * early; or -EPIPE no reader; -EAGAIN / -ETIMEDOUT nothing could be written.
 * A write of at most PIPE_BUF bytes is atomic: all or nothing, never
 * interleaved with another writer's.
 */
IPCX_API ssize_t ipcx_pipe_write(int fd, const void *buf, size_t len, const ipcx_wait *w);

/*
 * Read up to cap bytes (returns as soon as some arrived).  0 means
 * end-of-file: every writer closed.  -EAGAIN / -ETIMEDOUT nothing in time.
 * A FIFO nobody has opened for writing yet is not at end-of-file (see
 * ipcx_fifo_open).
 */
IPCX_API ssize_t ipcx_pipe_read(int fd, void *buf, size_t cap, const ipcx_wait *w);

/* Move up to len bytes between a pipe and another fd in the kernel (splice),
 * waiting as w says; SIGPIPE-safe.  Returns the bytes moved, 0 at end of
 * input, or -errno. */
IPCX_API ssize_t ipcx_pipe_splice(int in_fd, int out_fd, size_t len, const ipcx_wait *w);

/* ---- framed messages and the duplex channel ------------------------------ */

/*
 * A channel of framed messages over a read pipe and/or a write pipe.  Each
 * message is a 4-byte length (host order) followed by the payload.
 *
 * Atomicity: a message of at most PIPE_BUF - 4 bytes is written with one
 * write and is never interleaved with another writer's on the same pipe.  A
 * longer message can be interleaved by concurrent writers: give a pipe with
 * large messages one writer (or serialise the writers).
 *
 * Deadlock freedom: while a send waits for room it keeps reading the other
 * pipe into memory, and while a recv waits it keeps flushing what this side
 * has still to send.  Two processes that both send large messages first and
 * then receive therefore both complete.  What is buffered is bounded by
 * max_buffer (-ENOBUFS beyond it).
 *
 * A handle is used by one thread at a time.
 */
typedef struct ipcx_pipe ipcx_pipe;

typedef struct ipcx_pipe_opts {
	ipcx_wait wait;    /* default wait; all zero: IPCX_WAIT_BLOCK, no deadline */
	size_t max_frame;  /* largest message recv accepts; 0: 64 MiB */
	size_t max_buffer; /* most incoming bytes buffered while sending; 0: 64 MiB */
	uint32_t flags;    /* enum ipcx_pipe_opt_flags */
} ipcx_pipe_opts;

enum ipcx_pipe_opt_flags {
	/* The process ignores SIGPIPE (signal(SIGPIPE, SIG_IGN)) and keeps it
	 * ignored while the channel is open: writes then skip the two
	 * sigprocmask calls that otherwise keep SIGPIPE from the caller (most
	 * of the cost of a small message; see docs/pipe.md).  Checked when the
	 * channel is opened: -EINVAL if SIGPIPE is not ignored then.  Restoring
	 * SIGPIPE's default action later makes a write to a pipe without a
	 * reader kill the process, as a plain write(2) would. */
	IPCX_PIPE_SIGPIPE_IGNORED = 1u << 0,
};

/* Wrap a read end and/or a write end (either may be -1).  The channel takes
 * both fds (closed by ipcx_pipe_close, and on failure here) and makes them
 * non-blocking.  opts may be NULL. */
IPCX_API int ipcx_pipe_open(ipcx_pipe **out, int rfd, int wfd, const ipcx_pipe_opts *opts);

/* Two pipes and the two ends of a full-duplex channel over them: a's sends
 * arrive at b and b's at a.  Typically made before fork; each process then
 * closes the handle it does not use. */
IPCX_API int ipcx_pipe_duplex(ipcx_pipe **a, ipcx_pipe **b, const ipcx_pipe_opts *opts);

/*
 * Send one message.  Returns 0 once the whole message is written or queued
 * in the handle: if the wait ends (deadline, non-blocking) after part of the
 * message went out, the rest is kept and written by the next call on this
 * handle (or ipcx_pipe_flush), so the framing never breaks.  Returns -EAGAIN
 * / -ETIMEDOUT if none of it could be written (a previous message still
 * queued counts), -EPIPE no reader, -EMSGSIZE len > UINT32_MAX, -ENOBUFS the
 * incoming data exceeded max_buffer, -EBADF no write end.
 */
IPCX_API int ipcx_pipe_send(ipcx_pipe *p, const void *buf, size_t len, const ipcx_wait *w);

/*
 * Receive one message into buf.  Returns its length; -EPIPE every writer
 * closed (a message cut short by the writer's death is dropped);
 * -EMSGSIZE the message is longer than cap (it stays: call again with a
 * bigger buffer; ipcx_pipe_next_size says how big) or longer than max_frame
 * (it is skipped); -EAGAIN / -ETIMEDOUT; -EBADF no read end.
 */
IPCX_API ssize_t ipcx_pipe_recv(ipcx_pipe *p, void *buf, size_t cap, const ipcx_wait *w);

/* Length of the next message once its header has arrived (waits as recv). */
IPCX_API ssize_t ipcx_pipe_next_size(ipcx_pipe *p, const ipcx_wait *w);

/* Write out what an earlier send left queued.  0, -EAGAIN, -ETIMEDOUT, -EPIPE. */
IPCX_API int ipcx_pipe_flush(ipcx_pipe *p, const ipcx_wait *w);

/* The fds (owned by p; -1 if absent), for poll. */
IPCX_API int ipcx_pipe_rfd(const ipcx_pipe *p);
IPCX_API int ipcx_pipe_wfd(const ipcx_pipe *p);

/* Close both fds (unflushed queued data is dropped).  NULL: no-op.  0. */
IPCX_API int ipcx_pipe_close(ipcx_pipe *p);

/* ---- zero-copy sending (vmsplice) ---------------------------------------- */

/*
 * vmsplice hands the pipe references to the sender's pages instead of
 * copying them: the reader later copies straight from the sender's memory.
 * The hazard is that the sender must not overwrite those pages while they
 * are still in the pipe.  ipcx_pipe_zc owns a page-aligned buffer and hands
 * out chunks of it only once the bytes they held have left the pipe: the
 * pipe is a FIFO, so a chunk is free when fewer bytes remain in the pipe
 * (FIONREAD) than were spliced after it.  With a buffer of twice the pipe's
 * capacity this never waits in a steady stream.
 *
 * This holds when the reader consumes with read(2) or splices to a regular
 * file (both copy).  A reader that splices onward to a socket or another
 * pipe keeps references to the pages after they leave this pipe: do not use
 * zero-copy with such a reader.  The pipe must not be resized while a
 * ipcx_pipe_zc writes to it (-EBUSY).
 *
 * One thread at a time per handle.
 */
typedef struct ipcx_pipe_zc ipcx_pipe_zc;

/* A zero-copy writer on pipe end wfd (borrowed, not closed; made
 * non-blocking).  buf_size 0: twice the pipe's capacity.  w is the default
 * wait (NULL: block). */
IPCX_API int ipcx_pipe_zc_open(ipcx_pipe_zc **out, int wfd, size_t buf_size, const ipcx_wait *w);

/* A chunk of len bytes (1..buf_size) to fill, once its previous contents
 * have left the pipe (waits as w says).  Returns 0 with *ptr set, -EMSGSIZE,
 * -EBUSY (a committed chunk is still being spliced: ipcx_pipe_zc_flush), or
 * -EAGAIN / -ETIMEDOUT. */
IPCX_API int ipcx_pipe_zc_reserve(ipcx_pipe_zc *z, size_t len, void **ptr, const ipcx_wait *w);

/* Splice the first len bytes of the reserved chunk into the pipe.  Returns 0
 * when all are in the pipe; -EAGAIN / -ETIMEDOUT if the wait ended early (the
 * rest goes with ipcx_pipe_zc_flush); -EPIPE no reader; -EBUSY the pipe was
 * resized. */
IPCX_API int ipcx_pipe_zc_commit(ipcx_pipe_zc *z, size_t len, const ipcx_wait *w);
IPCX_API int ipcx_pipe_zc_flush(ipcx_pipe_zc *z, const ipcx_wait *w);

/* Free the writer.  Bytes already in the pipe stay intact: the pipe holds
 * its own references to their pages.  NULL: no-op.  Returns 0. */
IPCX_API int ipcx_pipe_zc_close(ipcx_pipe_zc *z);

#ifdef __cplusplus
}
#endif

#endif /* IPCX_PIPE_H */
