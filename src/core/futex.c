/* Futexes, asymmetric fences and peer liveness. */
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

int ipcx__futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t timeout_ns)
{
	struct timespec ts, *tp = NULL;
	if (timeout_ns >= 0) {
		ts.tv_sec = (time_t)(timeout_ns / 1000000000);
		ts.tv_nsec = (long)(timeout_ns % 1000000000);
		tp = &ts;
	}
	/* FUTEX_WAIT's timeout is relative (CLOCK_MONOTONIC). */
	long rc = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT, val, tp, NULL, 0);
	if (rc == 0)
		return 0;
	switch (errno) {
	case EAGAIN:
		return -EAGAIN;
	case ETIMEDOUT:
		return -ETIMEDOUT;
	case EINTR:
		return -EINTR;
	default:
		return -errno;
	}
}

int ipcx__futex_wake(_Atomic uint32_t *addr, int n)
{
	long rc = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE, n, NULL, NULL, 0);
	return rc < 0 ? -errno : (int)rc;
}

/* ---- membarrier -------------------------------------------------------- */

_Atomic int ipcx__membarrier_ok;
static pthread_once_t runtime_once = PTHREAD_ONCE_INIT;

static void membarrier_register(void)
{
	long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
	int ok = cmds > 0 && (cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
		 (cmds & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) &&
		 syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0;
	/* Read (relaxed) on every publish; a stale 0 just takes the full fence. */
	atomic_store_explicit(&ipcx__membarrier_ok, ok, memory_order_relaxed);
}

static void runtime_once_init(void)
{
	membarrier_register();
	/* Registration belongs to the address space: redo it in a forked child
	 * before it can act as a waker. */
	pthread_atfork(NULL, NULL, membarrier_register);
}

void ipcx__runtime_init(void)
{
	pthread_once(&runtime_once, runtime_once_init);
}

/* Every process that loads libipcx registers, so an unlocker or waker that
 * relies on a sleeper's membarrier is always reached by it. */
__attribute__((constructor)) static void runtime_at_load(void)
{
	ipcx__runtime_init();
}

void ipcx__sleeper_fence(void)
{
	if (atomic_load_explicit(&ipcx__membarrier_ok, memory_order_relaxed)) {
		if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0)
			return;
	}
	atomic_thread_fence(memory_order_seq_cst);
}

/* ---- peer liveness ----------------------------------------------------- */

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

int ipcx__peer_watch(ipcx__peer *p, int32_t pid)
{
	ipcx__peer_release(p);
	if (pid <= 0)
		return -EINVAL;
	p->pid = pid;
	int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (fd >= 0) {
		/* pidfd_open gives O_CLOEXEC already */
		p->pidfd = fd;
		return 0;
	}
	if (errno == ESRCH)
		return -ESRCH; /* already gone */
	return 0; /* fall back to kill(2) and /proc */
}

int ipcx__peer_watch_start(ipcx__peer *p, int32_t pid, uint64_t start, uint64_t mask)
{
	int rc = ipcx__peer_watch(p, pid);
	/* The pidfd (if any) was opened first: if the start time still matches
	 * after it, the pidfd refers to that very process. */
	if (rc == 0 && start && (ipcx__proc_start(pid) & mask) != start) {
		ipcx__peer_release(p);
		return -ESRCH;
	}
	return rc;
}

/* Start time (clock ticks since boot, /proc/PID/stat field 22) of pid, or 0
 * if the process does not exist or is a zombie. */
uint64_t ipcx__proc_start(int32_t pid)
{
	char path[48], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
		return 0;
	/* field 3 is the state; skip to field 22 */
	p += 2;
	for (int field = 3; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	return p ? strtoull(p, NULL, 10) : 0;
}

int ipcx__peer_alive(ipcx__peer *p)
{
	if (p->pid <= 0)
		return 1;
	if (p->pidfd >= 0) {
		/* A pidfd polls readable once the process has exited. */
		struct pollfd pfd = { .fd = p->pidfd, .events = POLLIN };
		int rc = poll(&pfd, 1, 0);
		return !(rc > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR)));
	}
	if (kill(p->pid, 0) < 0 && errno == ESRCH)
		return 0;
	return ipcx__proc_start(p->pid) != 0;
}

void ipcx__peer_release(ipcx__peer *p)
{
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->pidfd = -1;
	p->pid = 0;
}
