/*
 * Readiness for poll/epoll and one-shot notification.  A mailbox's wake-ups
 * are futexes in shared memory, which poll() cannot watch; so a handle that
 * asks for either gets one helper thread that sleeps on the mailbox's
 * not-empty futex and, while `armed`, reports the first message it sees by
 * writing its eventfd and calling the notification.  A receiver that finds
 * the mailbox empty drains the eventfd and re-arms the thread.
 */
#include <sys/eventfd.h>
#include <unistd.h>

#include "mq_internal.h"

static int armed_or_stop(void *arg)
{
	ipcx_mq *mq = arg;
	/* acquire: pairs with the release stores of rearm / stop */
	return atomic_load_explicit(&mq->stop, memory_order_acquire) ||
	       atomic_load_explicit(&mq->armed, memory_order_acquire);
}

static int message_or_stop(void *arg)
{
	ipcx_mq *mq = arg;
	if (atomic_load_explicit(&mq->stop, memory_order_acquire))
		return 1;
	return ipcx__mq_readable(mq);
}

static void *watcher(void *arg)
{
	ipcx_mq *mq = arg;
	ipcx_wait w = IPCX_WAIT_INIT(IPCX_WAIT_BLOCK);
	for (;;) {
		/* Wait to be armed: a local futex, woken by rearm and stop. */
		while (!armed_or_stop(mq))
			(void)ipcx__futex_wait(&mq->armed, 0, -1);
		if (atomic_load_explicit(&mq->stop, memory_order_acquire))
			break;
		ipcx__waitspec ws = { &mq->h->ne.seq, &mq->h->ne.sleepers, message_or_stop, mq,
				      ipcx__mq_check, mq };
		(void)ipcx__wait(&w, &ws);
		if (atomic_load_explicit(&mq->stop, memory_order_acquire))
			break;
		pthread_mutex_lock(&mq->nlock);
		void (*fn)(ipcx_mq *, void *) = mq->notify_fn;
		void *fnarg = mq->notify_arg;
		mq->notify_fn = NULL;
		/* relaxed: only this thread and rearm (under nlock) write it */
		atomic_store_explicit(&mq->armed, 0, memory_order_relaxed);
		if (mq->efd >= 0) {
			uint64_t one = 1;
			ssize_t n = write(mq->efd, &one, sizeof one);
			(void)n; /* EAGAIN: the counter is already non-zero */
		}
		pthread_mutex_unlock(&mq->nlock);
		if (fn)
			fn(mq, fnarg);
	}
	return NULL;
}

/* nlock held. */
static int start_thread(ipcx_mq *mq)
{
	if (mq->thread_started)
		return 0;
	ipcx__runtime_init();
	int rc = pthread_create(&mq->thread, NULL, watcher, mq);
	if (rc)
		return -rc;
	mq->thread_started = 1;
	return 0;
}

static void arm(ipcx_mq *mq)
{
	/* release: the thread that sees armed sees the registration */
	atomic_store_explicit(&mq->armed, 1, memory_order_release);
	ipcx__futex_wake(&mq->armed, 1);
}

void ipcx__mq_notify_rearm(ipcx_mq *mq)
{
	pthread_mutex_lock(&mq->nlock);
	uint64_t v;
	ssize_t n = read(mq->efd, &v, sizeof v); /* drain; EAGAIN if already empty */
	(void)n;
	arm(mq);
	pthread_mutex_unlock(&mq->nlock);
}

IPCX_API int ipcx_mq_fd(ipcx_mq *mq)
{
	if (!mq)
		return -EINVAL;
	pthread_mutex_lock(&mq->nlock);
	int rc = 0;
	if (mq->efd < 0) {
		mq->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (mq->efd < 0)
			rc = -errno;
		else if ((rc = start_thread(mq)) == 0)
			arm(mq);
		if (rc && mq->efd >= 0) {
			close(mq->efd);
			mq->efd = -1;
		}
	}
	rc = rc ? rc : mq->efd;
	pthread_mutex_unlock(&mq->nlock);
	return rc;
}

IPCX_API int ipcx_mq_notify(ipcx_mq *mq, void (*fn)(ipcx_mq *, void *), void *arg)
{
	if (!mq)
		return -EINVAL;
	pthread_mutex_lock(&mq->nlock);
	int rc = 0;
	if (!fn) {
		mq->notify_fn = NULL;
	} else if (mq->notify_fn) {
		rc = -EBUSY;
	} else if ((rc = start_thread(mq)) == 0) {
		mq->notify_fn = fn;
		mq->notify_arg = arg;
		arm(mq);
	}
	pthread_mutex_unlock(&mq->nlock);
	return rc;
}

void ipcx__mq_notify_stop(ipcx_mq *mq)
{
	pthread_mutex_lock(&mq->nlock);
	int started = mq->thread_started;
	pthread_mutex_unlock(&mq->nlock);
	if (started) {
		/* release: the watcher that sees stop exits */
		atomic_store_explicit(&mq->stop, 1, memory_order_release);
		ipcx__futex_wake(&mq->armed, 1);
		/* Wake it off the shared futex too (a spurious wake for others). */
		atomic_fetch_add_explicit(&mq->h->ne.seq, 1, memory_order_release);
		ipcx__futex_wake(&mq->h->ne.seq, 0x7fffffff);
		pthread_join(mq->thread, NULL);
	}
	if (mq->efd >= 0)
		close(mq->efd);
	mq->efd = -1;
}
