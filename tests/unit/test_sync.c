/* Synchronization primitives: single-process semantics, timeouts, errors.
 * ipcx-test-timeout: 60
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

#define MS 1000000ll

static void test_layout(void **st)
{
	(void)st;
	assert_int_equal(sizeof(ipcx_spinlock), IPCX_SPINLOCK_SIZE);
	assert_int_equal(sizeof(ipcx_mutex), IPCX_MUTEX_SIZE);
	assert_int_equal(sizeof(ipcx_sem), IPCX_SEM_SIZE);
	assert_int_equal(sizeof(ipcx_robust_mutex), IPCX_ROBUST_MUTEX_SIZE);
	assert_int_equal(sizeof(ipcx_lock), IPCX_LOCK_SIZE);
}

static void test_spin_and_mutex(void **st)
{
	(void)st;
	ipcx_spinlock s;
	ipcx_spin_init(&s);
	assert_int_equal(ipcx_spin_trylock(&s), 0);
	assert_int_equal(ipcx_spin_trylock(&s), -EBUSY);
	ipcx_spin_unlock(&s);
	ipcx_spin_lock(&s);
	ipcx_spin_unlock(&s);

	ipcx_mutex m;
	ipcx_mutex_init(&m);
	assert_int_equal(ipcx_mutex_trylock(&m), 0);
	assert_int_equal(ipcx_mutex_trylock(&m), -EBUSY);
	uint64_t t0 = t_now_ns();
	assert_int_equal(ipcx_mutex_timedlock(&m, 20 * MS), -ETIMEDOUT);
	assert_true(t_now_ns() - t0 >= 20 * MS);
	assert_int_equal(ipcx_mutex_timedlock(&m, 0), -ETIMEDOUT);
	ipcx_mutex_unlock(&m);
	assert_int_equal(ipcx_mutex_timedlock(&m, 0), 0);
	ipcx_mutex_unlock(&m);
}

static void test_sem(void **st)
{
	(void)st;
	ipcx_sem s;
	assert_int_equal(ipcx_sem_init(&s, IPCX_SEM_MAX + 1u), -EINVAL);
	assert_int_equal(ipcx_sem_init(&s, 2), 0);
	assert_int_equal(ipcx_sem_trywait(&s), 0);
	ipcx_sem_wait(&s);
	assert_int_equal(ipcx_sem_value(&s), 0);
	assert_int_equal(ipcx_sem_trywait(&s), -EAGAIN);
	assert_int_equal(ipcx_sem_timedwait(&s, 10 * MS), -ETIMEDOUT);
	assert_int_equal(ipcx_sem_post(&s), 0);
	assert_int_equal(ipcx_sem_timedwait(&s, 10 * MS), 0);
	assert_int_equal(ipcx_sem_init(&s, IPCX_SEM_MAX), 0);
	assert_int_equal(ipcx_sem_post(&s), -EOVERFLOW);
}

static void test_cond_event(void **st)
{
	(void)st;
	ipcx_mutex m;
	ipcx_cond c;
	ipcx_mutex_init(&m);
	ipcx_cond_init(&c);
	ipcx_mutex_lock(&m);
	assert_int_equal(ipcx_cond_wait(&c, &m, 10 * MS), -ETIMEDOUT);
	/* the mutex is held again on return */
	assert_int_equal(ipcx_mutex_trylock(&m), -EBUSY);
	ipcx_mutex_unlock(&m);
	ipcx_cond_signal(&c); /* no waiter: nothing happens */
	ipcx_cond_broadcast(&c);

	ipcx_event e;
	ipcx_event_init(&e, 0);
	assert_int_equal(ipcx_event_wait(&e, 5 * MS), -ETIMEDOUT);
	ipcx_event_set(&e);
	assert_int_equal(ipcx_event_wait(&e, 0), 0);
	assert_int_equal(ipcx_event_wait(&e, -1), 0);
	ipcx_event_reset(&e);
	assert_int_equal(ipcx_event_wait(&e, 0), -ETIMEDOUT);
}

static void test_adapters(void **st)
{
	(void)st;
	ipcx_psem p;
	assert_int_equal(ipcx_psem_init(&p, 1), 0);
	assert_int_equal(ipcx_psem_wait(&p, 0), 0);
	assert_int_equal(ipcx_psem_wait(&p, 5 * MS), -ETIMEDOUT);
	assert_int_equal(ipcx_psem_post(&p), 0);
	assert_int_equal(ipcx_psem_destroy(&p), 0);

	ipcx_sysvsem v;
	assert_int_equal(ipcx_sysvsem_init(&v, 1, 0x80), -EINVAL);
	assert_int_equal(ipcx_sysvsem_init(&v, 40000, 0), -EINVAL);
	assert_int_equal(ipcx_sysvsem_init(&v, 1, IPCX_SYSVSEM_UNDO), 0);
	assert_int_equal(ipcx_sysvsem_wait(&v, -1), 0);
	assert_int_equal(ipcx_sysvsem_wait(&v, 5 * MS), -ETIMEDOUT);
	assert_int_equal(ipcx_sysvsem_post(&v), 0);
	ipcx_sysvsem copy = v;
	assert_int_equal(ipcx_sysvsem_destroy(&v), 0);
	assert_int_equal(ipcx_sysvsem_destroy(&v), 0); /* once is enough */
	assert_int_equal(ipcx_sysvsem_wait(&v, 0), -EINVAL);
	int rc = ipcx_sysvsem_post(&copy); /* the set is gone */
	assert_true(rc == -EINVAL || rc == -EIDRM);
}

static void test_robust_single(void **st)
{
	(void)st;
	ipcx_robust_mutex m;
	assert_int_equal(ipcx_robust_init(&m, 0x100), -EINVAL);
	int rc = ipcx_robust_init(&m, 0);
	if (rc == -ENOTSUP)
		skip();
	assert_int_equal(rc, 0);
	assert_int_equal(ipcx_robust_lock(&m), 0);
	assert_int_equal(ipcx_robust_lock(&m), -EDEADLK);
	assert_int_equal(ipcx_robust_unlock(&m), 0);
	assert_int_equal(ipcx_robust_timedlock(&m, 5 * MS), 0);
	assert_int_equal(ipcx_robust_unlock(&m), 0);
	assert_int_equal(ipcx_robust_destroy(&m), 0);
	assert_int_equal(ipcx_robust_init(&m, IPCX_ROBUST_NO_PI), 0);
	assert_int_equal(ipcx_robust_trylock(&m), 0);
	assert_int_equal(ipcx_robust_unlock(&m), 0);
}

static void test_lock_interface(void **st)
{
	(void)st;
	ipcx_lock l;
	assert_int_equal(ipcx_lock_init(&l, 0), -EINVAL);
	assert_int_equal(ipcx_lock_init(&l, IPCX_LOCK_KIND_MAX + 1), -EINVAL);
	assert_int_equal(ipcx_lock_acquire(&l), -EINVAL);
	assert_string_equal(ipcx_lock_kind_name(99), "unknown");
	for (uint32_t k = 1; k <= IPCX_LOCK_KIND_MAX; k++) {
		assert_int_equal(ipcx_lock_init(&l, k), 0);
		assert_int_equal(ipcx_lock_acquire(&l), 0);
		assert_int_equal(ipcx_lock_release(&l), 0);
		assert_int_equal(ipcx_lock_destroy(&l), 0);
		assert_string_not_equal(ipcx_lock_kind_name(k), "unknown");
	}
}

int main(void)
{
	t_watchdog(50);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_layout),
	    cmocka_unit_test(test_spin_and_mutex),
	    cmocka_unit_test(test_sem),
	    cmocka_unit_test(test_cond_event),
	    cmocka_unit_test(test_adapters),
	    cmocka_unit_test(test_robust_single),
	    cmocka_unit_test(test_lock_interface),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
