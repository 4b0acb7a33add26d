/* What each primitive does when its holder is SIGKILLed, as sync.h says:
 * spinlock and futex mutex stay held (a timed lock times out, nothing
 * crashes), a futex or POSIX semaphore keeps the unit the dead process took,
 * a System V semaphore with IPCX_SYSVSEM_UNDO gets it back from the kernel,
 * and a condition-variable waiter that dies leaves the condvar usable.
 * ipcx-test-timeout: 60
 */
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

struct shared {
	ipcx_spinlock spin;
	ipcx_mutex mutex;
	ipcx_sem sem;
	ipcx_psem psem;
	ipcx_sysvsem sysv, sysv_noundo;
	ipcx_cond cond;
	_Atomic uint32_t done;
};

static struct shared *sh;

static int take_all_and_die(void *arg)
{
	(void)arg;
	ipcx_spin_lock(&sh->spin);
	ipcx_mutex_lock(&sh->mutex);
	ipcx_sem_wait(&sh->sem);
	if (ipcx_psem_wait(&sh->psem, -1) || ipcx_sysvsem_wait(&sh->sysv, -1) ||
	    ipcx_sysvsem_wait(&sh->sysv_noundo, -1))
		return 1;
	/* And wait on the condvar (releasing the mutex) -- then be killed. */
	ipcx_mutex_unlock(&sh->mutex);
	ipcx_mutex_lock(&sh->mutex);
	atomic_store(&sh->done, 1);
	ipcx_cond_wait(&sh->cond, &sh->mutex, -1);
	for (;;)
		pause();
}

static int hold_mutex_and_die(void *arg)
{
	(void)arg;
	ipcx_mutex_lock(&sh->mutex);
	atomic_store(&sh->done, 2);
	pause(); /* until SIGKILL */
	return 1;
}

int main(void)
{
	t_watchdog(50);
	ipcx_region *r;
	T_CHECK_RC(ipcx_region_create_anon(&r, IPCX_KIND_SYNC, sizeof *sh, NULL), 0);
	sh = ipcx_region_data(r);
	ipcx_spin_init(&sh->spin);
	ipcx_mutex_init(&sh->mutex);
	ipcx_cond_init(&sh->cond);
	T_CHECK_RC(ipcx_sem_init(&sh->sem, 1), 0);
	T_CHECK_RC(ipcx_psem_init(&sh->psem, 1), 0);
	T_CHECK_RC(ipcx_sysvsem_init(&sh->sysv, 1, IPCX_SYSVSEM_UNDO), 0);
	T_CHECK_RC(ipcx_sysvsem_init(&sh->sysv_noundo, 1, 0), 0);

	pid_t pid = t_spawn(take_all_and_die, NULL);
	while (!atomic_load(&sh->done))
		sched_yield();
	t_sleep_ms(20); /* let it reach the condvar wait */
	T_CHECK(kill(pid, SIGKILL) == 0);
	T_CHECK(t_wait(pid) == 128 + SIGKILL);

	/* The dead process was waiting on the condvar, not holding the mutex. */
	T_CHECK_RC(ipcx_mutex_timedlock(&sh->mutex, 1000000000), 0);
	ipcx_cond_broadcast(&sh->cond); /* nobody alive to wake: harmless */
	ipcx_mutex_unlock(&sh->mutex);
	/* Spinlock: still held by the dead process. */
	T_CHECK_RC(ipcx_spin_trylock(&sh->spin), -EBUSY);
	/* Semaphores without undo: the unit went with the process. */
	T_CHECK_RC(ipcx_sem_timedwait(&sh->sem, 20000000), -ETIMEDOUT);
	T_CHECK(ipcx_sem_value(&sh->sem) == 0);
	T_CHECK_RC(ipcx_psem_wait(&sh->psem, 20000000), -ETIMEDOUT);
	T_CHECK_RC(ipcx_sysvsem_wait(&sh->sysv_noundo, 20000000), -ETIMEDOUT);
	/* System V with SEM_UNDO: the kernel gave it back at the exit. */
	T_CHECK_RC(ipcx_sysvsem_wait(&sh->sysv, 1000000000), 0);
	T_CHECK_RC(ipcx_sysvsem_post(&sh->sysv), 0);

	/* A mutex whose holder dies stays held: a timed lock times out. */
	pid = t_spawn(hold_mutex_and_die, NULL);
	while (atomic_load(&sh->done) != 2)
		sched_yield();
	T_CHECK(kill(pid, SIGKILL) == 0);
	T_CHECK(t_wait(pid) == 128 + SIGKILL);
	T_CHECK_RC(ipcx_mutex_trylock(&sh->mutex), -EBUSY);
	T_CHECK_RC(ipcx_mutex_timedlock(&sh->mutex, 20000000), -ETIMEDOUT);

	ipcx_psem_destroy(&sh->psem);
	ipcx_sysvsem_destroy(&sh->sysv);
	ipcx_sysvsem_destroy(&sh->sysv_noundo);
	ipcx_region_close(r);
	printf("holders killed: spinlock and mutex stay held, semaphore units lost, SEM_UNDO "
	       "restored, a dead condvar waiter harmless\n");
	return T_PASS;
}
