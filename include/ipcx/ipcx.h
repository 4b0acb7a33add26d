/* ipcx — umbrella header: every public module. */
#ifndef IPCX_IPCX_H
#define IPCX_IPCX_H

#include <ipcx/common.h>
#include <ipcx/region.h>
#include <ipcx/ring.h>
#include <ipcx/sock.h>
#include <ipcx/pipe.h>
#include <ipcx/sync.h>
#include <ipcx/queue.h>
#include <ipcx/mq.h>

#endif /* IPCX_IPCX_H */
