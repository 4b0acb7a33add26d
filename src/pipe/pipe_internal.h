/* Pipe internals shared by the files of the pipe module. */
#ifndef IPCX_PIPE_INTERNAL_H
#define IPCX_PIPE_INTERNAL_H

#include <sys/uio.h>

#include <ipcx/pipe.h>

#include "../core/internal.h"

/* writev (splice_flags < 0) or vmsplice (splice_flags >= 0) that never lets
 * SIGPIPE reach the caller -- by blocking it around the call, unless
 * `ignored` says the process ignores it already (IPCX_PIPE_SIGPIPE_IGNORED).
 * Returns what the call returned, errno intact. */
IPCX_HIDDEN ssize_t ipcx__pipe_write_nosig(int fd, const struct iovec *iov, int iovcnt,
					   int splice_flags, int ignored);

/* One read: > 0 bytes, 0 end-of-file, -EAGAIN nothing yet (including a FIFO
 * no writer has opened), or -errno. */
IPCX_HIDDEN int ipcx__pipe_read_once(int fd, void *buf, size_t cap);

#endif
