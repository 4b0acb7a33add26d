/*
 * The system calls through which a persistent mailbox writes its log.  They
 * go through this table so that tests can make the Nth call fail (ENOSPC,
 * EIO) and check that nothing acknowledged is lost.  Production code never
 * changes it.
 */
#ifndef IPCX_MQ_SYS_H
#define IPCX_MQ_SYS_H

#include <sys/types.h>
#include <sys/uio.h>

#include "../core/internal.h"

struct ipcx__mq_sys {
	ssize_t (*pwritev)(int fd, const struct iovec *iov, int iovcnt, off_t off);
	int (*fdatasync)(int fd);
	int (*ftruncate)(int fd, off_t len);
	int (*fallocate)(int fd, off_t off, off_t len); /* posix_fallocate: returns an errno */
};

/* Bytes the log file grows by at a time (tests make it small). */
IPCX_HIDDEN extern uint64_t ipcx__mq_log_chunk;
/* Tests: compact the log past this many bytes (0: the mailbox's default). */
IPCX_HIDDEN extern uint64_t ipcx__mq_compact_bytes;

IPCX_HIDDEN extern struct ipcx__mq_sys ipcx__mq_sys;

#endif
