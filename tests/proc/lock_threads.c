/* Thread variant of the lock tests, built also under ThreadSanitizer: every
 * lock kind around a plain counter, and a mutex + condition variable + event
 * hand-off.  TSan checks that each lock orders the critical sections.
 * ipcx-test-labels: tsan
 * ipcx-test-timeout: 180
 * ipcx-test-serial
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

#define THREADS 3

static ipcx_lock lock;
static uint64_t counter; /* plain: only the lock protects it */
static unsigned long iters;

static void *worker(void *arg)
{
	(void)arg;
	for (unsigned long i = 0; i < iters; i++) {
		T_CHECK_RC(ipcx_lock_acquire(&lock), 0);
		counter++;
		T_CHECK_RC(ipcx_lock_release(&lock), 0);
	}
	return NULL;
}

/* A one-slot mailbox guarded by an ipcx_mutex, signalled by an ipcx_cond. */
static ipcx_mutex mbox_mu;
static ipcx_cond mbox_cv;
static ipcx_event done_ev;
static uint64_t mbox_val;
static int mbox_full;
#define HANDOFFS 20000u

static void *mbox_producer(void *arg)
{
	(void)arg;
	for (uint64_t i = 1; i <= HANDOFFS; i++) {
		ipcx_mutex_lock(&mbox_mu);
		while (mbox_full)
			ipcx_cond_wait(&mbox_cv, &mbox_mu, -1);
		mbox_val = i;
		mbox_full = 1;
		ipcx_cond_broadcast(&mbox_cv);
		ipcx_mutex_unlock(&mbox_mu);
	}
	ipcx_event_wait(&done_ev, -1);
	return NULL;
}

int main(void)
{
	t_watchdog(170);
	for (uint32_t k = 1; k <= IPCX_LOCK_KIND_MAX; k++) {
		/* TSan does not model System V semaphores (semop is not
		 * intercepted), so it would report races the kernel prevents. */
		if (UNDER_TSAN && k == IPCX_LOCK_SYSV)
			continue;
		iters = UNDER_TSAN ? 50000 : k == IPCX_LOCK_SYSV ? 50000 : 500000;
		counter = 0;
		T_CHECK_RC(ipcx_lock_init(&lock, k), 0);
		pthread_t t[THREADS];
		for (int i = 0; i < THREADS; i++)
			T_CHECK(pthread_create(&t[i], NULL, worker, NULL) == 0);
		for (int i = 0; i < THREADS; i++)
			pthread_join(t[i], NULL);
		printf("%-12s %d threads x %lu: %llu\n", ipcx_lock_kind_name(k), THREADS, iters,
		       (unsigned long long)counter);
		T_CHECK(counter == THREADS * (uint64_t)iters);
		ipcx_lock_destroy(&lock);
	}

	ipcx_mutex_init(&mbox_mu);
	ipcx_cond_init(&mbox_cv);
	ipcx_event_init(&done_ev, 0);
	pthread_t p;
	T_CHECK(pthread_create(&p, NULL, mbox_producer, NULL) == 0);
	uint64_t expect = 1;
	while (expect <= HANDOFFS) {
		ipcx_mutex_lock(&mbox_mu);
		while (!mbox_full)
			ipcx_cond_wait(&mbox_cv, &mbox_mu, -1);
		T_CHECK(mbox_val == expect);
		expect++;
		mbox_full = 0;
		ipcx_cond_broadcast(&mbox_cv);
		ipcx_mutex_unlock(&mbox_mu);
	}
	ipcx_event_set(&done_ev);
	pthread_join(p, NULL);
	printf("mutex+cond: %u hand-offs in order\n", HANDOFFS);
	return T_PASS;
}
