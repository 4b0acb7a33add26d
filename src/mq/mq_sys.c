/* The default system-call table of the mailbox log (see mq_sys.h). */
#include <fcntl.h>
#include <unistd.h>

#include "mq_sys.h"

struct ipcx__mq_sys ipcx__mq_sys = {
	.pwritev = pwritev,
	.fdatasync = fdatasync,
	.ftruncate = ftruncate,
	.fallocate = posix_fallocate,
};

uint64_t ipcx__mq_log_chunk = 4u << 20;
uint64_t ipcx__mq_compact_bytes;
