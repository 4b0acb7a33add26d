/*
 * ipcx — inter-process communication for one Linux host.
 *
 * Common definitions: version, error conventions, wait policies.  Include
 * <ipcx/ipcx.h> for everything, or one module header.  Conventions shared by every module (see docs/conventions.md):
 *
 *  - Every public name starts with ipcx_ / IPCX_.
 *  - Objects are opaque handles created into an out-parameter; the matching
 *    close/free accepts NULL and does nothing.
 *  - Functions return 0 (or a non-negative count) on success and a negative
 *    errno value on failure; ipcx_strerror() describes any of them.
 *  - The library never prints, never exits, never raises signals at the
 *    caller (SIGPIPE included) and never calls abort() on bad input.
 *  - Data another process wrote to shared memory is validated before use: a
 *    corrupted object yields an error code, not a crash.
 */
#ifndef IPCX_COMMON_H
#define IPCX_COMMON_H

#include <errno.h> /* the API returns negated errno values */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(IPCX_BUILDING_LIBRARY)
#define IPCX_API __attribute__((visibility("default")))
#else
#define IPCX_API
#endif

#define IPCX_VERSION_MAJOR 0
#define IPCX_VERSION_MINOR 1
#define IPCX_VERSION_PATCH 0
#define IPCX_VERSION_STRING "0.1.0"

/* The version of the library actually linked, as "MAJOR.MINOR.PATCH". */
IPCX_API const char *ipcx_version(void);

/*
 * Error codes.  ipcx uses the system's errno values, negated.  These are
 * the ones with an ipcx-specific meaning (ipcx_strerror words them so):
 *
 *   -EPROTO          the object is not an ipcx object (bad magic)
 *   -EPROTONOSUPPORT the object has an ABI version this library cannot read
 *   -EMEDIUMTYPE     the object is an ipcx object of another kind
 *   -EBADMSG         the object's header or a record in it is corrupted
 *   -EPIPE           the peer closed or died (nothing more will arrive)
 *   -EOWNERDEAD      a lock's holder died; the caller now holds it
 *   -ENOTRECOVERABLE a lock's state was abandoned as unrecoverable
 *   -EMSGSIZE        the message is larger than the object accepts
 *   -EAGAIN          non-blocking call would block / not ready yet
 *   -ETIMEDOUT       a deadline expired
 */

/* A static, human-readable description of err (negative or positive errno).
 * Never returns NULL; thread-safe. */
IPCX_API const char *ipcx_strerror(int err);

/*
 * Wait policies: how a call that cannot proceed yet waits.
 *
 *  IPCX_WAIT_SPIN      busy-poll (with a pause hint) until ready, the deadline
 *                      passes or the peer dies.  Lowest latency, burns a CPU;
 *                      past 4 us it yields between polls, so a peer sharing
 *                      the CPU (more processes than CPUs) still gets to run.
 *  IPCX_WAIT_BLOCK     sleep on a futex at once.  The waker makes a system
 *                      call only when a sleeper has flagged itself.
 *  IPCX_WAIT_ADAPTIVE  spin for spin_ns, then sleep as IPCX_WAIT_BLOCK.  An
 *                      idle channel costs no CPU once the budget is spent.
 *  IPCX_WAIT_NONBLOCK  never wait: return -EAGAIN.
 *
 * timeout_ns < 0 waits without a deadline; otherwise the call returns
 * -ETIMEDOUT once timeout_ns nanoseconds have passed (CLOCK_MONOTONIC).
 * A signal does not end a wait early: waits resume after a handler runs.
 */
enum ipcx_wait_mode {
	IPCX_WAIT_DEFAULT = 0, /* in a per-call policy: use the object's own */
	IPCX_WAIT_SPIN = 1,
	IPCX_WAIT_BLOCK = 2,
	IPCX_WAIT_ADAPTIVE = 3,
	IPCX_WAIT_NONBLOCK = 4,
};

typedef struct ipcx_wait {
	uint32_t mode;      /* enum ipcx_wait_mode */
	uint32_t spin_ns;   /* spin budget for IPCX_WAIT_ADAPTIVE; 0 = default */
	int64_t timeout_ns; /* < 0: no deadline */
} ipcx_wait;

/* Default spin budget of IPCX_WAIT_ADAPTIVE: a little above the cost of a
 * cross-CPU futex wake-up on a virtual machine, so spinning is only chosen
 * when it can beat sleeping. */
#define IPCX_WAIT_SPIN_NS_DEFAULT 50000u

/* Convenience initialisers. */
#define IPCX_WAIT_INIT(m) ((ipcx_wait){ .mode = (m), .spin_ns = 0, .timeout_ns = -1 })

#ifdef __cplusplus
}
#endif

#endif /* IPCX_COMMON_H */
