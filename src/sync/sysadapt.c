/* The robust PI mutex (glibc), POSIX and System V semaphore adapters, and
 * ipcx_lock, one interface over every lock. */
#include <ipcx/sync.h>
#include <string.h>
#include <sys/sem.h>

#include "../core/internal.h"

_Static_assert(sizeof(pthread_mutex_t) <= sizeof(((ipcx_robust_mutex *)0)->u.bytes),
	       "glibc's pthread_mutex_t must fit ipcx_robust_mutex");
_Static_assert(sizeof(ipcx_robust_mutex) == IPCX_ROBUST_MUTEX_SIZE, "ipcx_robust_mutex is an ABI");
_Static_assert(sizeof(sem_t) <= sizeof(((ipcx_psem *)0)->u.bytes), "sem_t must fit ipcx_psem");
_Static_assert(sizeof(ipcx_psem) == IPCX_PSEM_SIZE, "ipcx_psem is an ABI");
_Static_assert(sizeof(ipcx_sysvsem) == IPCX_SYSVSEM_SIZE, "ipcx_sysvsem is an ABI");
_Static_assert(sizeof(ipcx_lock) == IPCX_LOCK_SIZE, "ipcx_lock is an ABI");

/* An absolute time timeout_ns from now on clock. */
static struct timespec abs_after(clockid_t clock, int64_t timeout_ns)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)timeout_ns % 1000000000u;
	ts.tv_sec += (time_t)(timeout_ns / 1000000000) + (time_t)(ns / 1000000000u);
	ts.tv_nsec = (long)(ns % 1000000000u);
	return ts;
}

/* ---- robust PI mutex ----------------------------------------------------- */

IPCX_API int ipcx_robust_init(ipcx_robust_mutex *m, uint32_t flags)
{
	if (flags & ~(uint32_t)IPCX_ROBUST_NO_PI)
		return -EINVAL;
	pthread_mutexattr_t a;
	int rc = pthread_mutexattr_init(&a);
	if (rc)
		return -rc;
	if (!(rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) &&
	    !(rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) &&
	    !(rc = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK)) &&
	    !(flags & IPCX_ROBUST_NO_PI))
		rc = pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT);
	if (!rc) {
		memset(m, 0, sizeof *m);
		rc = pthread_mutex_init(&m->u.m, &a);
	}
	pthread_mutexattr_destroy(&a);
	return rc == EINVAL && !(flags & IPCX_ROBUST_NO_PI) ? -ENOTSUP : -rc;
}

IPCX_API int ipcx_robust_lock(ipcx_robust_mutex *m)
{
	return -pthread_mutex_lock(&m->u.m);
}

IPCX_API int ipcx_robust_timedlock(ipcx_robust_mutex *m, int64_t timeout_ns)
{
	if (timeout_ns < 0)
		return ipcx_robust_lock(m);
	/* Monotonic when glibc and the kernel can (FUTEX_LOCK_PI2); a PI lock
	 * on an older pair only takes CLOCK_REALTIME. */
	struct timespec ts = abs_after(CLOCK_MONOTONIC, timeout_ns);
	int rc = pthread_mutex_clocklock(&m->u.m, CLOCK_MONOTONIC, &ts);
	if (rc == EINVAL) {
		ts = abs_after(CLOCK_REALTIME, timeout_ns);
		rc = pthread_mutex_timedlock(&m->u.m, &ts);
	}
	return -rc;
}

IPCX_API int ipcx_robust_trylock(ipcx_robust_mutex *m)
{
	return -pthread_mutex_trylock(&m->u.m);
}

IPCX_API int ipcx_robust_consistent(ipcx_robust_mutex *m)
{
	return -pthread_mutex_consistent(&m->u.m);
}

IPCX_API int ipcx_robust_unlock(ipcx_robust_mutex *m)
{
	return -pthread_mutex_unlock(&m->u.m);
}

IPCX_API int ipcx_robust_destroy(ipcx_robust_mutex *m)
{
	return -pthread_mutex_destroy(&m->u.m);
}

/* ---- POSIX unnamed semaphore --------------------------------------------- */

IPCX_API int ipcx_psem_init(ipcx_psem *s, uint32_t value)
{
	memset(s, 0, sizeof *s);
	return sem_init(&s->u.s, 1, value) ? -errno : 0;
}

IPCX_API int ipcx_psem_wait(ipcx_psem *s, int64_t timeout_ns)
{
	struct timespec ts;
	if (timeout_ns >= 0)
		ts = abs_after(CLOCK_MONOTONIC, timeout_ns);
	for (;;) {
		int rc = timeout_ns < 0 ? sem_wait(&s->u.s)
					: sem_clockwait(&s->u.s, CLOCK_MONOTONIC, &ts);
		if (rc == 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

IPCX_API int ipcx_psem_post(ipcx_psem *s)
{
	return sem_post(&s->u.s) ? -errno : 0;
}

IPCX_API int ipcx_psem_destroy(ipcx_psem *s)
{
	return sem_destroy(&s->u.s) ? -errno : 0;
}

/* ---- System V semaphore -------------------------------------------------- */

IPCX_API int ipcx_sysvsem_init(ipcx_sysvsem *s, uint32_t value, uint32_t flags)
{
	s->id = -1;
	if ((flags & ~(uint32_t)IPCX_SYSVSEM_UNDO) || value > 32767u /* SEMVMX */)
		return -EINVAL;
	int id = semget(IPC_PRIVATE, 1, IPC_CREAT | IPC_EXCL | 0600);
	if (id < 0)
		return -errno;
	if (semctl(id, 0, SETVAL, (int)value) < 0) {
		int rc = -errno;
		semctl(id, 0, IPC_RMID);
		return rc;
	}
	s->id = id;
	s->flags = flags;
	return 0;
}

static int sysv_op(ipcx_sysvsem *s, short delta, int64_t timeout_ns)
{
	/* Read once: the struct may sit in memory another process can write. */
	int id = s->id;
	struct sembuf op = {.sem_num = 0,
			    .sem_op = delta,
			    .sem_flg = (short)((s->flags & IPCX_SYSVSEM_UNDO) ? SEM_UNDO : 0)};
	uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : ipcx__now_ns() + (uint64_t)timeout_ns;
	if (id < 0)
		return -EINVAL;
	for (;;) {
		int rc;
		if (deadline == UINT64_MAX) {
			rc = semop(id, &op, 1);
		} else {
			uint64_t now = ipcx__now_ns();
			uint64_t left = now >= deadline ? 0 : deadline - now;
			struct timespec ts = {(time_t)(left / 1000000000u),
					      (long)(left % 1000000000u)};
			rc = semtimedop(id, &op, 1, &ts);
		}
		if (rc == 0)
			return 0;
		if (errno != EINTR)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
	}
}

IPCX_API int ipcx_sysvsem_wait(ipcx_sysvsem *s, int64_t timeout_ns)
{
	return sysv_op(s, -1, timeout_ns);
}

IPCX_API int ipcx_sysvsem_post(ipcx_sysvsem *s)
{
	return sysv_op(s, 1, -1);
}

IPCX_API int ipcx_sysvsem_destroy(ipcx_sysvsem *s)
{
	int id = s->id;
	if (id < 0)
		return 0;
	s->id = -1;
	return semctl(id, 0, IPC_RMID) < 0 ? -errno : 0;
}

/* ---- ipcx_lock ----------------------------------------------------------- */

IPCX_API const char *ipcx_lock_kind_name(uint32_t kind)
{
	static const char *const names[] = {"unknown",	 "spin",     "futex-mutex", "futex-sem",
					    "posix-sem", "sysv-sem", "robust-pi"};
	return kind <= IPCX_LOCK_KIND_MAX ? names[kind] : "unknown";
}

IPCX_API int ipcx_lock_init(ipcx_lock *l, uint32_t kind)
{
	memset(l, 0, sizeof *l);
	l->kind = kind;
	switch (kind) {
	case IPCX_LOCK_SPIN:
		ipcx_spin_init(&l->u.spin);
		return 0;
	case IPCX_LOCK_MUTEX:
		ipcx_mutex_init(&l->u.mutex);
		return 0;
	case IPCX_LOCK_SEM:
		return ipcx_sem_init(&l->u.sem, 1);
	case IPCX_LOCK_PSEM:
		return ipcx_psem_init(&l->u.psem, 1);
	case IPCX_LOCK_SYSV:
		return ipcx_sysvsem_init(&l->u.sysv, 1, IPCX_SYSVSEM_UNDO);
	case IPCX_LOCK_ROBUST:
		return ipcx_robust_init(&l->u.robust, 0);
	}
	l->kind = 0;
	return -EINVAL;
}

IPCX_API int ipcx_lock_acquire(ipcx_lock *l)
{
	switch (l->kind) {
	case IPCX_LOCK_SPIN:
		ipcx_spin_lock(&l->u.spin);
		return 0;
	case IPCX_LOCK_MUTEX:
		ipcx_mutex_lock(&l->u.mutex);
		return 0;
	case IPCX_LOCK_SEM:
		ipcx_sem_wait(&l->u.sem);
		return 0;
	case IPCX_LOCK_PSEM:
		return ipcx_psem_wait(&l->u.psem, -1);
	case IPCX_LOCK_SYSV:
		return ipcx_sysvsem_wait(&l->u.sysv, -1);
	case IPCX_LOCK_ROBUST: {
		int rc = ipcx_robust_lock(&l->u.robust);
		if (rc == -EOWNERDEAD)
			ipcx_robust_consistent(&l->u.robust);
		return rc;
	}
	}
	return -EINVAL;
}

IPCX_API int ipcx_lock_release(ipcx_lock *l)
{
	switch (l->kind) {
	case IPCX_LOCK_SPIN:
		ipcx_spin_unlock(&l->u.spin);
		return 0;
	case IPCX_LOCK_MUTEX:
		ipcx_mutex_unlock(&l->u.mutex);
		return 0;
	case IPCX_LOCK_SEM:
		return ipcx_sem_post(&l->u.sem);
	case IPCX_LOCK_PSEM:
		return ipcx_psem_post(&l->u.psem);
	case IPCX_LOCK_SYSV:
		return ipcx_sysvsem_post(&l->u.sysv);
	case IPCX_LOCK_ROBUST:
		return ipcx_robust_unlock(&l->u.robust);
	}
	return -EINVAL;
}

IPCX_API int ipcx_lock_destroy(ipcx_lock *l)
{
	switch (l->kind) {
	case IPCX_LOCK_PSEM:
		ipcx_psem_destroy(&l->u.psem);
		break;
	case IPCX_LOCK_SYSV:
		ipcx_sysvsem_destroy(&l->u.sysv);
		break;
	case IPCX_LOCK_ROBUST:
		ipcx_robust_destroy(&l->u.robust);
		break;
	}
	l->kind = 0;
	return 0;
}
