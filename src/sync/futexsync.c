/* Spinlock, futex mutex, futex semaphore, condition variable and event. */
#include <ipcx/sync.h>

#include "../core/internal.h"

_Static_assert(sizeof(ipcx_spinlock) == IPCX_SPINLOCK_SIZE, "ipcx_spinlock is an ABI");
_Static_assert(sizeof(ipcx_mutex) == IPCX_MUTEX_SIZE, "ipcx_mutex is an ABI");
_Static_assert(sizeof(ipcx_sem) == IPCX_SEM_SIZE, "ipcx_sem is an ABI");
_Static_assert(sizeof(ipcx_cond) == IPCX_COND_SIZE, "ipcx_cond is an ABI");
_Static_assert(sizeof(ipcx_event) == IPCX_EVENT_SIZE, "ipcx_event is an ABI");
_Static_assert(sizeof(_Atomic uint32_t) == sizeof(uint32_t) &&
		   _Alignof(_Atomic uint32_t) == _Alignof(uint32_t),
	       "the public structs' plain words are accessed as atomics");

/* The public structs keep plain words so the header stays usable from C++
 * and C without <stdatomic.h>; every access goes through here. */
#define A(p) ((_Atomic uint32_t *)(p))

/* How long a locker spins on a held mutex before it sleeps: a few
 * microseconds, the order of a cross-CPU wake-up on a virtual machine, so
 * a short critical section on another CPU is waited out without a sleep. */
#define MUTEX_SPINS 200u
#define MUTEX_SLEEP_SLICE_NS (50ll * 1000 * 1000)
#define SEM_SPINS 200u
#define SPIN_BACKOFF_MAX 64u

/* Remaining time before deadline (UINT64_MAX: none), or 0 if passed. */
static int64_t remaining(uint64_t deadline)
{
	if (deadline == UINT64_MAX)
		return -1;
	uint64_t now = ipcx__now_ns();
	return now >= deadline ? 0 : (int64_t)(deadline - now);
}

static uint64_t deadline_of(int64_t timeout_ns)
{
	return timeout_ns < 0 ? UINT64_MAX : ipcx__now_ns() + (uint64_t)timeout_ns;
}

/* ---- spinlock ------------------------------------------------------------ */

IPCX_API void ipcx_spin_init(ipcx_spinlock *s)
{
	atomic_init(A(&s->word), 0);
}

IPCX_API void ipcx_spin_lock_wait(ipcx_spinlock *s)
{
	unsigned backoff = 1;
	/* The inline lock's xchg found the word held. */
	do {
		/* Wait with reads only, so the line stays shared until it is free. */
		do {
			for (unsigned i = 0; i < backoff; i++)
				ipcx__cpu_relax();
			if (backoff < SPIN_BACKOFF_MAX)
				backoff <<= 1;
		} while (atomic_load_explicit(A(&s->word), memory_order_relaxed) !=
			 0); /* the xchg orders */
		/* acquire: the critical section happens after we own the word */
	} while (atomic_exchange_explicit(A(&s->word), 1, memory_order_acquire) != 0);
}

IPCX_API int ipcx_spin_trylock(ipcx_spinlock *s)
{
	/* relaxed: a peek to spare the xchg; the xchg orders */
	if (atomic_load_explicit(A(&s->word), memory_order_relaxed) != 0)
		return -EBUSY;
	/* acquire: as in ipcx_spin_lock */
	return atomic_exchange_explicit(A(&s->word), 1, memory_order_acquire) ? -EBUSY : 0;
}

/* ---- mutex: 0 free, 1 held, 2 held and someone may sleep ----------------- */

IPCX_API void ipcx_mutex_init(ipcx_mutex *m)
{
	atomic_init(A(&m->word), 0);
	atomic_init(A(&m->sleepers), 0);
}

IPCX_API int ipcx_mutex_trylock(ipcx_mutex *m)
{
	uint32_t c = 0;
	/* acquire on success: the critical section follows the lock */
	return atomic_compare_exchange_strong_explicit(A(&m->word), &c, 1, memory_order_acquire,
						       memory_order_relaxed)
		   ? 0
		   : -EBUSY;
}

static int mutex_lock_slow(ipcx_mutex *m, uint64_t deadline)
{
	for (unsigned i = 0; i < MUTEX_SPINS; i++) {
		ipcx__cpu_relax();
		/* relaxed: a peek; trylock's CAS orders */
		if (atomic_load_explicit(A(&m->word), memory_order_relaxed) == 0 &&
		    ipcx_mutex_trylock(m) == 0)
			return 0;
	}
	/* Announce ourselves, then force the StoreLoad barrier on every
	 * unlocker (see sync.h): from here on an unlock either is seen by the
	 * trylock below or sees us in sleepers and wakes us. */
	atomic_fetch_add_explicit(A(&m->sleepers), 1, memory_order_seq_cst);
	ipcx__sleeper_fence();
	int rc = 0;
	while (ipcx_mutex_trylock(m) != 0) {
		int64_t left = remaining(deadline);
		if (left == 0) {
			rc = -ETIMEDOUT;
			break;
		}
		/* Slices bound the cost of a wake-up missed where membarrier is
		 * unavailable.  Returns at once if the word is no longer 1, on a
		 * wake, or a signal; each case retries. */
		int64_t slice = MUTEX_SLEEP_SLICE_NS;
		if (left > 0 && left < slice)
			slice = left;
		(void)ipcx__futex_wait(A(&m->word), 1, slice);
	}
	/* seq_cst: ordered before the re-check below */
	uint32_t others = atomic_fetch_sub_explicit(A(&m->sleepers), 1, memory_order_seq_cst) - 1;
	/* A wake meant for us may have come as we timed out: pass it on. */
	if (rc && others && atomic_load_explicit(A(&m->word), memory_order_relaxed) == 0)
		ipcx__futex_wake(A(&m->word), 1);
	return rc;
}

IPCX_API void ipcx_mutex_lock_wait(ipcx_mutex *m)
{
	(void)mutex_lock_slow(m, UINT64_MAX);
}

IPCX_API int ipcx_mutex_timedlock(ipcx_mutex *m, int64_t timeout_ns)
{
	if (ipcx__likely(ipcx_mutex_trylock(m) == 0))
		return 0;
	return mutex_lock_slow(m, deadline_of(timeout_ns));
}

IPCX_API void ipcx_mutex_unlock_wake(ipcx_mutex *m)
{
	/* The inline unlock has already stored 0; wake one sleeper.  If a
	 * running locker barges in first, the sleeper finds the word 1 and
	 * sleeps again; the next unlock wakes it. */
	ipcx__futex_wake(A(&m->word), 1);
}

/* ---- semaphore ----------------------------------------------------------- */

IPCX_API int ipcx_sem_init(ipcx_sem *s, uint32_t value)
{
	if (value > IPCX_SEM_MAX)
		return -EINVAL;
	atomic_init(A(&s->value), value);
	atomic_init(A(&s->sleepers), 0);
	return 0;
}

IPCX_API int ipcx_sem_trywait(ipcx_sem *s)
{
	/* relaxed: the CAS below orders */
	uint32_t v = atomic_load_explicit(A(&s->value), memory_order_relaxed);
	while (v > 0) {
		/* acquire: what the poster did before posting happens before us */
		if (atomic_compare_exchange_weak_explicit(
			A(&s->value), &v, v - 1, memory_order_acquire, memory_order_relaxed))
			return 0;
	}
	return -EAGAIN;
}

static int sem_wait_until(ipcx_sem *s, uint64_t deadline)
{
	for (unsigned i = 0; i < SEM_SPINS; i++) {
		if (ipcx_sem_trywait(s) == 0)
			return 0;
		ipcx__cpu_relax();
	}
	for (;;) {
		if (ipcx_sem_trywait(s) == 0)
			return 0;
		int64_t left = remaining(deadline);
		if (left == 0)
			return -ETIMEDOUT;
		/* seq_cst: announce the sleeper before the kernel re-reads value
		 * (pairs with the seq_cst increment + load in ipcx_sem_post). */
		atomic_fetch_add_explicit(A(&s->sleepers), 1, memory_order_seq_cst);
		(void)ipcx__futex_wait(A(&s->value), 0, left);
		atomic_fetch_sub_explicit(A(&s->sleepers), 1, memory_order_relaxed); /* a count */
	}
}

IPCX_API void ipcx_sem_wait(ipcx_sem *s)
{
	if (ipcx__likely(ipcx_sem_trywait(s) == 0))
		return;
	(void)sem_wait_until(s, UINT64_MAX);
}

IPCX_API int ipcx_sem_timedwait(ipcx_sem *s, int64_t timeout_ns)
{
	if (ipcx__likely(ipcx_sem_trywait(s) == 0))
		return 0;
	return sem_wait_until(s, deadline_of(timeout_ns));
}

IPCX_API int ipcx_sem_post(ipcx_sem *s)
{
	/* relaxed: the CAS below orders */
	uint32_t v = atomic_load_explicit(A(&s->value), memory_order_relaxed);
	do {
		if (v >= IPCX_SEM_MAX)
			return -EOVERFLOW;
		/* seq_cst: publishes the unit (release) and orders it before the
		 * read of sleepers below (Dekker with sem_wait_until) */
	} while (!atomic_compare_exchange_weak_explicit(
	    A(&s->value), &v, v + 1, memory_order_seq_cst, memory_order_relaxed));
	/* seq_cst: see above */
	if (atomic_load_explicit(A(&s->sleepers), memory_order_seq_cst) != 0)
		ipcx__futex_wake(A(&s->value), 1);
	return 0;
}

IPCX_API uint32_t ipcx_sem_value(const ipcx_sem *s)
{
	/* relaxed: a snapshot, ordered against nothing */
	return atomic_load_explicit(A(&((ipcx_sem *)s)->value), memory_order_relaxed);
}

/* ---- condition variable -------------------------------------------------- */

IPCX_API void ipcx_cond_init(ipcx_cond *c)
{
	atomic_init(A(&c->seq), 0);
	atomic_init(A(&c->sleepers), 0);
}

IPCX_API int ipcx_cond_wait(ipcx_cond *c, ipcx_mutex *m, int64_t timeout_ns)
{
	uint64_t deadline = deadline_of(timeout_ns);
	/* seq_cst: counted as a sleeper before the counter is sampled, so a
	 * signaller that bumps the counter after our sample also sees us. */
	atomic_fetch_add_explicit(A(&c->sleepers), 1, memory_order_seq_cst);
	/* relaxed: read under the mutex; a signal after the predicate change
	 * (also under the mutex) must change it after this read */
	uint32_t s = atomic_load_explicit(A(&c->seq), memory_order_relaxed);
	ipcx_mutex_unlock(m);
	int rc = 0;
	for (;;) {
		int64_t left = remaining(deadline);
		if (left == 0) {
			rc = -ETIMEDOUT;
			break;
		}
		int w = ipcx__futex_wait(A(&c->seq), s, left);
		/* acquire: a changed counter means a signal; what the signaller
		 * published comes with the mutex we take below anyway */
		if (w != -EINTR && w != -ETIMEDOUT)
			break; /* woken, or the counter moved (-EAGAIN) */
		if (atomic_load_explicit(A(&c->seq), memory_order_acquire) != s)
			break;
	}
	atomic_fetch_sub_explicit(A(&c->sleepers), 1, memory_order_relaxed); /* a count */
	ipcx_mutex_lock(m);
	return rc;
}

static void cond_wake(ipcx_cond *c, int n)
{
	/* seq_cst: the bump is ordered before the read of sleepers */
	atomic_fetch_add_explicit(A(&c->seq), 1, memory_order_seq_cst);
	if (atomic_load_explicit(A(&c->sleepers), memory_order_seq_cst) != 0)
		ipcx__futex_wake(A(&c->seq), n);
}

IPCX_API void ipcx_cond_signal(ipcx_cond *c)
{
	cond_wake(c, 1);
}

IPCX_API void ipcx_cond_broadcast(ipcx_cond *c)
{
	cond_wake(c, 0x7fffffff);
}

/* ---- event --------------------------------------------------------------- */

IPCX_API void ipcx_event_init(ipcx_event *e, int set)
{
	atomic_init(A(&e->state), set ? 1 : 0);
	atomic_init(A(&e->sleepers), 0);
}

IPCX_API void ipcx_event_set(ipcx_event *e)
{
	/* seq_cst: publishes what the setter did, ordered before the read of
	 * sleepers (Dekker with ipcx_event_wait) */
	atomic_store_explicit(A(&e->state), 1, memory_order_seq_cst);
	if (atomic_load_explicit(A(&e->sleepers), memory_order_seq_cst) != 0)
		ipcx__futex_wake(A(&e->state), 0x7fffffff);
}

IPCX_API void ipcx_event_reset(ipcx_event *e)
{
	/* relaxed: resetting publishes nothing */
	atomic_store_explicit(A(&e->state), 0, memory_order_relaxed);
}

IPCX_API int ipcx_event_wait(ipcx_event *e, int64_t timeout_ns)
{
	uint64_t deadline = deadline_of(timeout_ns);
	/* acquire: pairs with the store in ipcx_event_set */
	while (atomic_load_explicit(A(&e->state), memory_order_acquire) == 0) {
		int64_t left = remaining(deadline);
		if (left == 0)
			return -ETIMEDOUT;
		/* seq_cst: pairs with ipcx_event_set's store + load */
		atomic_fetch_add_explicit(A(&e->sleepers), 1, memory_order_seq_cst);
		(void)ipcx__futex_wait(A(&e->state), 0, left);
		atomic_fetch_sub_explicit(A(&e->sleepers), 1, memory_order_relaxed);
	}
	return 0;
}
