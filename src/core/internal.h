/*
 * Internal tier of libipcx: helpers shared by every module.  Nothing here is
 * part of the public API; names use the ipcx__ prefix.
 */
#ifndef IPCX_INTERNAL_H
#define IPCX_INTERNAL_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <ipcx/common.h>

#define IPCX_HIDDEN __attribute__((visibility("hidden")))
#define IPCX_NOINLINE __attribute__((noinline))
#define ipcx__likely(x) __builtin_expect(!!(x), 1)
#define ipcx__unlikely(x) __builtin_expect(!!(x), 0)

/* Shared indices get 128 bytes each: two cache lines, because the adjacent-
 * line prefetcher of x86 parts pulls lines in pairs. */
#define IPCX_CACHELINE 128
#define IPCX_ALIGNED __attribute__((aligned(IPCX_CACHELINE)))

#define IPCX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static inline void ipcx__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

static inline uint64_t ipcx__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Overflow-checked size arithmetic: true if a + b overflowed. */
static inline bool ipcx__add_overflow(uint64_t a, uint64_t b, uint64_t *out)
{
	return __builtin_add_overflow(a, b, out);
}

/* ---- futex (process-shared: never FUTEX_PRIVATE_FLAG) ------------------- */

/* Sleep while *addr == val, at most timeout_ns (< 0: forever).
 * Returns 0 when woken (or spuriously), -EAGAIN if *addr != val,
 * -ETIMEDOUT, -EINTR. */
IPCX_HIDDEN int ipcx__futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t timeout_ns);
/* Wake up to n sleepers on addr.  Returns the number woken or -errno. */
IPCX_HIDDEN int ipcx__futex_wake(_Atomic uint32_t *addr, int n);

/* ---- asymmetric fences --------------------------------------------------
 *
 * A waker publishes data then reads a "sleepers" word; a sleeper announces
 * itself in that word then re-reads the data.  Both sides need a StoreLoad
 * barrier (Dekker).  To keep the waker's fast path free of a full fence,
 * the sleeper -- which is about to pay a futex sleep anyway -- issues
 * membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), which makes every running
 * thread of every registered process execute a full barrier.  Processes
 * register when libipcx loads and again after fork (ipcx__runtime_init(),
 * which objects also call at attach; it is idempotent).  When
 * membarrier is unavailable both sides fall back to a seq_cst fence.
 */
/* Set once per process (and again after fork); read on every publish. */
IPCX_HIDDEN extern _Atomic int ipcx__membarrier_ok;
IPCX_HIDDEN void ipcx__runtime_init(void);
IPCX_HIDDEN void ipcx__sleeper_fence(void);

static inline void ipcx__waker_fence(void)
{
	/* relaxed: a stale 0 only takes the full fence */
	if (ipcx__likely(atomic_load_explicit(&ipcx__membarrier_ok, memory_order_relaxed)))
		atomic_signal_fence(memory_order_seq_cst); /* compiler only; see above */
	else
		atomic_thread_fence(memory_order_seq_cst);
}

/* ---- peer liveness ------------------------------------------------------ */

/* Watches one peer process through a pidfd (falling back to kill(pid, 0) and
 * the zombie state in /proc where pidfds are not available). */
typedef struct ipcx__peer {
	int32_t pid; /* pid being watched, 0 = none */
	int pidfd;   /* -1 if none */
} ipcx__peer;

#define IPCX__PEER_INIT { 0, -1 }

/* Start watching pid (closing any previous watch).  0 or -errno. */
IPCX_HIDDEN int ipcx__peer_watch(ipcx__peer *p, int32_t pid);
/* As ipcx__peer_watch, for the process that had start time `start` (the
 * low bits kept by the caller: ipcx__proc_start(pid) & mask): -ESRCH when
 * pid now names another process, or none -- a dead peer whose pid has been
 * reused is not taken for alive.  start 0: unknown, as ipcx__peer_watch. */
IPCX_HIDDEN int ipcx__peer_watch_start(ipcx__peer *p, int32_t pid, uint64_t start, uint64_t mask);
/* 1 alive, 0 dead (or exited and not yet reaped). */
IPCX_HIDDEN int ipcx__peer_alive(ipcx__peer *p);
IPCX_HIDDEN void ipcx__peer_release(ipcx__peer *p);
/* Start time of pid (clock ticks since boot, /proc/PID/stat field 22): with
 * the pid it names one process for good, since pids are reused.  0 if the
 * process does not exist or has exited (zombie). */
IPCX_HIDDEN uint64_t ipcx__proc_start(int32_t pid);

/* ---- the wait engine ----------------------------------------------------
 *
 * One loop serves every blocking call in the library.  The caller provides a
 * readiness test and a liveness test; the engine spins, sleeps on the futex
 * word `seq`, enforces the deadline, and polls liveness at least every
 * IPCX__LIVENESS_SLICE_NS while sleeping (so a dead peer is noticed within
 * that bound).
 *
 * The waker's half: after publishing, call ipcx__wake(seq, sleepers).
 */
#define IPCX__LIVENESS_SLICE_NS (40ull * 1000 * 1000)

/* > 0: ready (returned as is); 0: not yet; < 0: error (returned as is). */
typedef int (*ipcx__ready_fn)(void *arg);

typedef struct ipcx__waitspec {
	_Atomic uint32_t *seq;      /* futex word bumped by wakers */
	_Atomic uint32_t *sleepers; /* count of sleepers on seq */
	ipcx__ready_fn ready;
	void *ready_arg;
	ipcx__ready_fn check; /* liveness: 0 ok, < 0 error to return; may be NULL */
	void *check_arg;
} ipcx__waitspec;

/* Resolve a per-call policy against an object's default. */
static inline ipcx_wait ipcx__wait_resolve(const ipcx_wait *call, const ipcx_wait *dflt)
{
	ipcx_wait w = dflt ? *dflt : IPCX_WAIT_INIT(IPCX_WAIT_ADAPTIVE);
	if (call) {
		if (call->mode != IPCX_WAIT_DEFAULT)
			w.mode = call->mode;
		if (call->spin_ns)
			w.spin_ns = call->spin_ns;
		w.timeout_ns = call->timeout_ns;
	}
	if (w.mode == IPCX_WAIT_DEFAULT)
		w.mode = IPCX_WAIT_ADAPTIVE;
	if (w.spin_ns == 0)
		w.spin_ns = IPCX_WAIT_SPIN_NS_DEFAULT;
	return w;
}

/* Returns what ready() returned (> 0), or -EAGAIN (non-blocking), -ETIMEDOUT,
 * or the error from ready()/check(). */
IPCX_HIDDEN int ipcx__wait(const ipcx_wait *w, const ipcx__waitspec *ws);

static inline void ipcx__wake(_Atomic uint32_t *seq, _Atomic uint32_t *sleepers)
{
	/* Orders our publication before the read of sleepers (pairs with the
	 * sleeper's ipcx__sleeper_fence()). */
	ipcx__waker_fence();
	if (ipcx__unlikely(atomic_load_explicit(sleepers, memory_order_relaxed) != 0)) {
		/* release: a sleeper that sees the new seq sees our data too */
		atomic_fetch_add_explicit(seq, 1, memory_order_release);
		ipcx__futex_wake(seq, 0x7fffffff);
	}
}

/* ---- names and system-call shims --------------------------------------- */

/* "/ipcx.NAME" into buf (size >= IPCX_NAME_MAX + 7).  0 or -EINVAL. */
IPCX_HIDDEN int ipcx__shm_path(const char *name, char *buf, size_t len);

/* CRC32C (Castagnoli), hardware-accelerated where the CPU offers it. */
IPCX_HIDDEN uint32_t ipcx__crc32c(uint32_t crc, const void *buf, size_t len);
/* crc[j] = ipcx__crc32c(0, buf[j], len[j]) for j < n, four at a time (four
 * independent chains take about the time of one). */
IPCX_HIDDEN void ipcx__crc32c_n(const void *const *buf, const uint32_t *len, uint32_t *crc,
				uint32_t n);
/* The portable table implementation, whatever the CPU (for tests). */
IPCX_HIDDEN uint32_t ipcx__crc32c_sw(uint32_t crc, const void *buf, size_t len);


/* ---- waiting on file descriptors ----------------------------------------
 *
 * The fd-based modules (sock, pipe) wait with poll instead of a futex.  The
 * caller's operation is retried until it stops returning -EAGAIN, under the
 * resolved policy w: NONBLOCK returns -EAGAIN at once, SPIN retries without
 * sleeping, ADAPTIVE retries for w->spin_ns then polls, BLOCK polls at once.
 * A signal (EINTR from poll) never ends the wait early; the deadline does
 * (-ETIMEDOUT).  `op` returns >= 0 when done, -EAGAIN to wait for `events`
 * on `fd`, any other negative value to fail.  `deadline` is an absolute
 * ipcx__now_ns() value or UINT64_MAX.
 */
typedef int (*ipcx__fd_op_fn)(void *arg);
IPCX_HIDDEN int ipcx__fd_wait_op(const ipcx_wait *w, uint64_t deadline, int fd, short events,
				 ipcx__fd_op_fn op, void *arg);
/* The absolute deadline of w (UINT64_MAX when it has none). */
static inline uint64_t ipcx__deadline(const ipcx_wait *w)
{
	return w->timeout_ns < 0 ? UINT64_MAX : ipcx__now_ns() + (uint64_t)w->timeout_ns;
}
/* poll() one or more fds until an event or the deadline; EINTR is retried.
 * Returns the number of ready fds, 0 at the deadline, or -errno. */
struct pollfd;
IPCX_HIDDEN int ipcx__poll_until(struct pollfd *pfd, unsigned n, uint64_t deadline);

/* As ipcx__wake, but wakes at most one sleeper: for objects where each
 * publication can satisfy only one waiter (a queue slot, a semaphore unit),
 * so n publications wake n sleepers instead of all of them n times. */
static inline void ipcx__wake_one(_Atomic uint32_t *seq, _Atomic uint32_t *sleepers)
{
	/* Orders our publication before the read of sleepers (pairs with the
	 * sleeper's ipcx__sleeper_fence()). */
	ipcx__waker_fence();
	if (ipcx__unlikely(atomic_load_explicit(sleepers, memory_order_relaxed) != 0)) {
		/* release: a sleeper that sees the new seq sees our data too */
		atomic_fetch_add_explicit(seq, 1, memory_order_release);
		ipcx__futex_wake(seq, 1);
	}
}

#endif /* IPCX_INTERNAL_H */
