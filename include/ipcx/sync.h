/*
 * ipcx synchronization: locks, semaphores and condition variables that live
 * inside shared memory the caller owns (a region of kind IPCX_KIND_SYNC or
 * IPCX_KIND_RAW, say).
 *
 * Every primitive is a plain struct of documented size, initialised in place
 * by exactly one process (ipcx_X_init) before any other process uses it, and
 * never copied or moved afterwards.  The structs' fields are private: touch
 * them only through these functions.  All of them are process-shared.
 *
 * What each one guarantees, and what happens when a process dies at the
 * wrong moment, is stated next to it.  In short:
 *
 *   primitive            uncontended cost         waiting         holder dies
 *   ipcx_spinlock        one xchg                 spins (burns)   stays locked
 *   ipcx_mutex           one CAS / one store      futex sleep     stays locked
 *   ipcx_sem             one CAS / one add        futex sleep     count is lost
 *   ipcx_robust_mutex    one CAS (glibc)          futex PI sleep  next locker: -EOWNERDEAD
 *   ipcx_cond, ipcx_event  -                      futex sleep     -
 *   ipcx_psem (sem_t)    one CAS (glibc)          futex sleep     count is lost
 *   ipcx_sysvsem         one semop system call    kernel sleep    SEM_UNDO restores it (opt.)
 *
 * Signals: no wait here ends early because of a signal; after a handler runs
 * the wait resumes (with the remaining time for the timed variants).
 * Timeouts are relative, in nanoseconds, on CLOCK_MONOTONIC; < 0 means none.
 *
 * See docs/sync.md.
 */
#ifndef IPCX_SYNC_H
#define IPCX_SYNC_H

#include <ipcx/common.h>
#include <pthread.h>
#include <semaphore.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- spinlock ------------------------------------------------------------
 *
 * Test-and-test-and-set: an xchg to take the lock; while it is held, waiters
 * only read the word (so the line stays shared) with a pause and a bounded
 * exponential backoff between reads.
 *
 * Progress: lock-free (someone always gets it), not starvation-free, and
 * only sensible when the holder cannot be preempted: with more runnable
 * processes than CPUs a waiter can spin through the holder's whole time
 * slice (`ipcx lab run spin-vs-sem` shows by how much).
 * Holder dies: the lock stays held for ever; every waiter spins for ever.
 * Use ipcx_robust_mutex where that can happen.
 */
typedef struct ipcx_spinlock {
	uint32_t word; /* 0 free, 1 held */
} ipcx_spinlock;

IPCX_API void ipcx_spin_init(ipcx_spinlock *s);
/* 0 taken, -EBUSY held by someone. */
IPCX_API int ipcx_spin_trylock(ipcx_spinlock *s);

/* The slow half of lock: wait for the word to read free, then take it (not
 * for direct use). */
IPCX_API void ipcx_spin_lock_wait(ipcx_spinlock *s);

/* Lock and unlock are inline, as the mutex's: uncontended, one xchg and one
 * store, no call.  Lock never fails, never sleeps, is not interruptible. */
static inline void ipcx_spin_lock(ipcx_spinlock *s)
{
	/* acquire: the critical section follows the lock */
	if (__builtin_expect(__atomic_exchange_n(&s->word, 1, __ATOMIC_ACQUIRE) != 0, 0))
		ipcx_spin_lock_wait(s);
}

static inline void ipcx_spin_unlock(ipcx_spinlock *s)
{
	/* release: the critical section before the word reads free */
	__atomic_store_n(&s->word, 0, __ATOMIC_RELEASE);
}

/* ---- mutex ---------------------------------------------------------------
 *
 * A futex mutex: a word (0 free, 1 held) and a count of sleeping lockers.
 * Lock is one compare-and-swap; unlock is a plain store and a read of the
 * sleeper count -- no atomic read-modify-write -- and makes a system call
 * only when a locker sleeps.  A locker that finds it held spins briefly
 * (about one cross-CPU wake-up's worth) before it sleeps.
 *
 * The unlock's store and its read of the sleeper count need a StoreLoad
 * barrier against a locker that announces itself and re-reads the word.
 * The locker, about to sleep anyway, pays for it with
 * membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), which every process that
 * loads libipcx registers for; so the unlock needs only a compiler barrier.
 * Where membarrier is unavailable the locker sleeps in slices of 50 ms and
 * re-checks, so a missed wake-up costs at most that, never a hang.
 *
 * Progress: blocking; not FIFO (a running locker may barge past a sleeper).
 * Not recursive; unlocking a mutex you do not hold is undefined.
 * Holder dies: the mutex stays held; ipcx_mutex_lock waits for ever and
 * ipcx_mutex_timedlock returns -ETIMEDOUT.  Use ipcx_robust_mutex where a
 * holder can die.
 */
typedef struct ipcx_mutex {
	uint32_t word;     /* 0 free, 1 held */
	uint32_t sleepers; /* lockers asleep, or about to sleep */
} ipcx_mutex;

IPCX_API void ipcx_mutex_init(ipcx_mutex *m);
/* 0, or -ETIMEDOUT after timeout_ns (< 0: no limit, same as lock). */
IPCX_API int ipcx_mutex_timedlock(ipcx_mutex *m, int64_t timeout_ns);
/* 0 taken, -EBUSY held. */
IPCX_API int ipcx_mutex_trylock(ipcx_mutex *m);

/* The slow halves of lock and unlock (not for direct use). */
IPCX_API void ipcx_mutex_lock_wait(ipcx_mutex *m);
IPCX_API void ipcx_mutex_unlock_wake(ipcx_mutex *m);

/* Lock and unlock are inline: uncontended, lock is one atomic instruction,
 * unlock a store and a load, and no call.  The protocol is part of the
 * shared-memory ABI. */
static inline void ipcx_mutex_lock(ipcx_mutex *m)
{
	uint32_t free_ = 0;
	/* acquire: the critical section follows the lock */
	if (__builtin_expect(!__atomic_compare_exchange_n(&m->word, &free_, 1, 0, __ATOMIC_ACQUIRE,
							  __ATOMIC_RELAXED),
			     0))
		ipcx_mutex_lock_wait(m);
}

static inline void ipcx_mutex_unlock(ipcx_mutex *m)
{
	/* release: the critical section before the word reads free */
	__atomic_store_n(&m->word, 0, __ATOMIC_RELEASE);
	/* StoreLoad against a sleeping locker: the locker's membarrier supplies
	 * the barrier (see above), so only the compiler must not reorder. */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (__builtin_expect(__atomic_load_n(&m->sleepers, __ATOMIC_RELAXED) != 0, 0))
		ipcx_mutex_unlock_wake(m);
}

/* ---- counting semaphore --------------------------------------------------
 *
 * A futex semaphore: the count and a count of sleepers.  post makes a system
 * call only when a process sleeps on it.
 *
 * Progress: blocking; not FIFO.
 * A process that dies between wait and post takes its unit with it: the
 * count stays one lower for ever (the same as POSIX sem_t).  Use
 * ipcx_sysvsem with SEM_UNDO if that must be undone by the kernel.
 */
typedef struct ipcx_sem {
	uint32_t value;
	uint32_t sleepers;
} ipcx_sem;

/* Largest count (post beyond it returns -EOVERFLOW). */
#define IPCX_SEM_MAX 0x7fffffffu

/* -EINVAL if value > IPCX_SEM_MAX. */
IPCX_API int ipcx_sem_init(ipcx_sem *s, uint32_t value);
/* Take one unit: 0, or -ETIMEDOUT (timedwait only). */
IPCX_API void ipcx_sem_wait(ipcx_sem *s);
IPCX_API int ipcx_sem_timedwait(ipcx_sem *s, int64_t timeout_ns);
/* 0 taken, -EAGAIN count is zero. */
IPCX_API int ipcx_sem_trywait(ipcx_sem *s);
/* Give one unit back: 0 or -EOVERFLOW. */
IPCX_API int ipcx_sem_post(ipcx_sem *s);
/* The current count (a snapshot). */
IPCX_API uint32_t ipcx_sem_value(const ipcx_sem *s);

/* ---- robust mutex with priority inheritance ------------------------------
 *
 * Built on glibc's pthread mutex with PTHREAD_PROCESS_SHARED,
 * PTHREAD_MUTEX_ROBUST and (unless IPCX_ROBUST_NO_PI) PTHREAD_PRIO_INHERIT,
 * which glibc implements with the kernel's FUTEX_LOCK_PI / FUTEX_UNLOCK_PI
 * and its per-thread robust list.
 *
 * Why glibc and not raw futexes: the kernel keeps exactly one robust-list
 * head per thread (set_robust_list), and glibc already registers its own for
 * every thread.  A library that registered a second list would silently
 * unregister glibc's, breaking every robust pthread mutex of the process;
 * a library that kept no list would not be told about a holder's death.
 * Sharing glibc's list is the only correct way to get both.  The price is
 * that the object's layout is glibc's: every process that maps it must use
 * the same glibc (true on one host), and the struct has room for it
 * (checked at build time).
 *
 * Progress: blocking; with priority inheritance the holder runs at the
 * priority of its highest-priority waiter (SCHED_FIFO/SCHED_RR), so a
 * medium-priority process cannot starve a high-priority waiter through a
 * low-priority holder.  Waits are not interruptible.
 *
 * Holder dies (any way: exit, SIGKILL, crash; also a thread that ends
 * holding it): the kernel marks the lock, and the next ipcx_robust_lock
 * returns -EOWNERDEAD -- the caller now HOLDS the lock and the protected
 * state may be half-updated.  It repairs the state, then calls
 * ipcx_robust_consistent() and later unlocks as usual.  If it unlocks without
 * marking it consistent (or dies too), the mutex becomes unrecoverable:
 * every later lock returns -ENOTRECOVERABLE until ipcx_robust_init runs
 * again.
 */
typedef struct ipcx_robust_mutex {
	union {
		pthread_mutex_t m;
		uint8_t bytes[64];
	} u;
} ipcx_robust_mutex;

enum ipcx_robust_flags {
	IPCX_ROBUST_NO_PI = 1u << 0, /* robust only, no priority inheritance */
};

/* 0, -EINVAL bad flags, -ENOTSUP the system lacks PI or robust futexes. */
IPCX_API int ipcx_robust_init(ipcx_robust_mutex *m, uint32_t flags);
/* 0; -EOWNERDEAD (locked; repair then ipcx_robust_consistent);
 * -ENOTRECOVERABLE; -EDEADLK the caller already holds it. */
IPCX_API int ipcx_robust_lock(ipcx_robust_mutex *m);
/* As ipcx_robust_lock, plus -ETIMEDOUT.  timeout_ns < 0: no limit. */
IPCX_API int ipcx_robust_timedlock(ipcx_robust_mutex *m, int64_t timeout_ns);
/* As ipcx_robust_lock, plus -EBUSY instead of waiting. */
IPCX_API int ipcx_robust_trylock(ipcx_robust_mutex *m);
/* Declare the state repaired after -EOWNERDEAD.  0, or -EINVAL if the
 * mutex is not in the owner-died state or not held by the caller. */
IPCX_API int ipcx_robust_consistent(ipcx_robust_mutex *m);
/* 0, or -EPERM the caller does not hold it. */
IPCX_API int ipcx_robust_unlock(ipcx_robust_mutex *m);
/* Release glibc's resources (none on Linux today); the memory is the
 * caller's.  0 or -EBUSY when held. */
IPCX_API int ipcx_robust_destroy(ipcx_robust_mutex *m);

/* ---- condition variable --------------------------------------------------
 *
 * Pairs with ipcx_mutex.  A sequence-counter condvar: wait records the
 * counter under the mutex, releases the mutex and sleeps while the counter
 * is unchanged; signal/broadcast bump it and wake one/all sleepers (a system
 * call only when someone sleeps).  Spurious wake-ups are possible: always
 * wait in a loop around the predicate.
 * A waiter that dies leaves no trace; a signaller that dies before
 * signalling leaves waiters asleep until their timeout.
 */
typedef struct ipcx_cond {
	uint32_t seq;
	uint32_t sleepers;
} ipcx_cond;

IPCX_API void ipcx_cond_init(ipcx_cond *c);
/* Caller holds m; holds it again on return.  0, or -ETIMEDOUT. */
IPCX_API int ipcx_cond_wait(ipcx_cond *c, ipcx_mutex *m, int64_t timeout_ns);
IPCX_API void ipcx_cond_signal(ipcx_cond *c);
IPCX_API void ipcx_cond_broadcast(ipcx_cond *c);

/* ---- event ---------------------------------------------------------------
 *
 * A manual-reset event: set wakes every waiter and lets later waits pass
 * until reset.  Nobody holds an event, so nobody's death matters.
 */
typedef struct ipcx_event {
	uint32_t state; /* 0 clear, 1 set */
	uint32_t sleepers;
} ipcx_event;

IPCX_API void ipcx_event_init(ipcx_event *e, int set);
IPCX_API void ipcx_event_set(ipcx_event *e);
IPCX_API void ipcx_event_reset(ipcx_event *e);
/* 0 once set, or -ETIMEDOUT. */
IPCX_API int ipcx_event_wait(ipcx_event *e, int64_t timeout_ns);

/* ---- adapters over the system's semaphores -------------------------------
 *
 * So that the lab and the bench can put the kernel's and libc's semaphores
 * next to ipcx's through one interface.
 *
 * ipcx_psem: a POSIX unnamed semaphore (sem_init with pshared = 1) placed in
 * shared memory; same death semantics as ipcx_sem.
 *
 * ipcx_sysvsem: a System V semaphore set of one semaphore, created
 * IPC_PRIVATE with mode 0600; the struct holds its id, so it can live in
 * shared memory or be inherited across fork.  With IPCX_SYSVSEM_UNDO, if
 * a process dies after wait and before post, the kernel gives the unit back
 * (ipcx_lock uses it so).  Every semop is a system call.  The set outlives processes until
 * ipcx_sysvsem_destroy (IPC_RMID); see `ipcs -s`.
 */
typedef struct ipcx_psem {
	union {
		sem_t s;
		uint8_t bytes[32];
	} u;
} ipcx_psem;

IPCX_API int ipcx_psem_init(ipcx_psem *s, uint32_t value);
IPCX_API int ipcx_psem_wait(ipcx_psem *s, int64_t timeout_ns); /* 0, -ETIMEDOUT */
IPCX_API int ipcx_psem_post(ipcx_psem *s);		       /* 0, -EOVERFLOW */
IPCX_API int ipcx_psem_destroy(ipcx_psem *s);

typedef struct ipcx_sysvsem {
	int32_t id;	/* semid, -1 once destroyed */
	uint32_t flags; /* enum ipcx_sysvsem_flags */
} ipcx_sysvsem;

enum ipcx_sysvsem_flags {
	/* SEM_UNDO on every operation: right for a lock (the process that
	 * waits also posts), wrong for signalling between processes (the
	 * kernel would undo the poster's units when it exits). */
	IPCX_SYSVSEM_UNDO = 1u << 0,
};

/* 0, or -ENOSPC (system limit of sets), -EINVAL value too large or bad
 * flags. */
IPCX_API int ipcx_sysvsem_init(ipcx_sysvsem *s, uint32_t value, uint32_t flags);
IPCX_API int ipcx_sysvsem_wait(ipcx_sysvsem *s, int64_t timeout_ns); /* 0, -ETIMEDOUT, -EIDRM */
IPCX_API int ipcx_sysvsem_post(ipcx_sysvsem *s);		     /* 0, -ERANGE, -EIDRM */
IPCX_API int ipcx_sysvsem_destroy(ipcx_sysvsem *s);

/* ---- one interface over all of them --------------------------------------
 *
 * ipcx_lock holds any of the above used as a mutual-exclusion lock
 * (semaphores initialised to 1).  For comparisons (lab, bench, tests);
 * code that knows which lock it wants calls it directly.
 */
enum ipcx_lock_kind {
	IPCX_LOCK_SPIN = 1,
	IPCX_LOCK_MUTEX = 2,
	IPCX_LOCK_SEM = 3,
	IPCX_LOCK_PSEM = 4,
	IPCX_LOCK_SYSV = 5,
	IPCX_LOCK_ROBUST = 6, /* robust + priority inheritance */
	IPCX_LOCK_KIND_MAX = 6,
};

typedef struct ipcx_lock {
	uint32_t kind;
	uint32_t reserved;
	union {
		ipcx_spinlock spin;
		ipcx_mutex mutex;
		ipcx_sem sem;
		ipcx_psem psem;
		ipcx_sysvsem sysv;
		ipcx_robust_mutex robust;
	} u;
} ipcx_lock;

/* "spin", "futex-mutex", "futex-sem", "posix-sem", "sysv-sem", "robust-pi". */
IPCX_API const char *ipcx_lock_kind_name(uint32_t kind);
/* 0, -EINVAL unknown kind, or the primitive's init error. */
IPCX_API int ipcx_lock_init(ipcx_lock *l, uint32_t kind);
/* 0, or -EOWNERDEAD (robust: held; already marked consistent, the caller
 * still has to repair what it protects), -ENOTRECOVERABLE, -EIDRM. */
IPCX_API int ipcx_lock_acquire(ipcx_lock *l);
IPCX_API int ipcx_lock_release(ipcx_lock *l);
/* Frees what the kernel keeps (System V set); 0. */
IPCX_API int ipcx_lock_destroy(ipcx_lock *l);

/* Layouts are ABI: */
#define IPCX_SPINLOCK_SIZE 4
#define IPCX_MUTEX_SIZE 8
#define IPCX_SEM_SIZE 8
#define IPCX_ROBUST_MUTEX_SIZE 64
#define IPCX_COND_SIZE 8
#define IPCX_EVENT_SIZE 8
#define IPCX_PSEM_SIZE 32
#define IPCX_SYSVSEM_SIZE 8
#define IPCX_LOCK_SIZE 72

#ifdef __cplusplus
}
#endif

#endif /* IPCX_SYNC_H */
