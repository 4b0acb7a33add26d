/* Helpers shared by the tests: unique names, watchdogs, fd counts, children. */
#ifndef IPCX_TESTUTIL_H
#define IPCX_TESTUTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#define T_PASS 0
#define T_FAIL 1
#define T_SKIP 77

/* For multi-process tests: fail loudly with the location. */
#define T_CHECK(cond)                                                                   \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			exit(T_FAIL);                                                   \
		}                                                                       \
	} while (0)

#define T_CHECK_RC(expr, want)                                                          \
	do {                                                                            \
		long t_rc_ = (long)(expr);                                              \
		if (t_rc_ != (long)(want)) {                                            \
			fprintf(stderr, "%s:%d: %s returned %ld, wanted %ld\n", __FILE__,   \
				__LINE__, #expr, t_rc_, (long)(want));                      \
			exit(T_FAIL);                                                   \
		}                                                                       \
	} while (0)

/* A name unique to this process and call ("t<pid>.<start>-<tag>-<n>", with
 * the process's start time, so that no earlier process of the same pid
 * shares it). */
const char *t_name(const char *tag);

/* Kill the whole test (and its process group) with a message after `seconds`:
 * a hang becomes a failure, never a stuck CI. */
void t_watchdog(unsigned seconds);

/* Number of open file descriptors of this process. */
int t_count_fds(void);

/* Names of ipcx objects under /dev/shm with this process's prefix: leaked
 * ones fail the test in t_check_no_leaks(). */
int t_check_no_leaks(void);

/* fork(); in the child run fn(arg) and _exit with its return value.  A
 * failed fork fails the test (the result is always a real child's pid). */
pid_t t_spawn(int (*fn)(void *), void *arg);
/* waitpid; returns the exit status, 128+sig if signalled, -1 on error. */
int t_wait(pid_t pid);
/* A t_spawn body that just waits to be killed (and exits by itself after
 * 30 s, so a failing test leaves nothing behind for long). */
int t_idle(void *arg);
/* Start time of pid in clock ticks since boot (/proc/PID/stat field 22),
 * 0 if it cannot be read. */
uint64_t t_proc_start(pid_t pid);

/* Monotonic time in ns. */
uint64_t t_now_ns(void);

/* Millisecond sleep. */
void t_sleep_ms(unsigned ms);

#endif
