/* The robust PI mutex: its holder is SIGKILLed 1000 times; every time the
 * next locker (this process, or a process already blocked in lock) gets
 * -EOWNERDEAD, sees the half-done update, repairs it and goes on.  Then the
 * unrecoverable path: an owner-died lock unlocked without repair.
 * ipcx-test-timeout: 120
 */
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

#define ROUNDS 1000

struct shared {
	ipcx_robust_mutex m;
	volatile uint64_t a, b;	  /* invariant under the lock: a == b */
	_Atomic uint32_t holding; /* round number the holder reached */
};

static struct shared *sh;
static uint32_t round_no;

static int holder(void *arg)
{
	(void)arg;
	if (ipcx_robust_lock(&sh->m) != 0)
		return 10;
	sh->a++; /* half an update: b follows below, never */
	atomic_store(&sh->holding, round_no);
	for (;;)
		pause();
}

/* Lock, expecting the owner to have died; repair and release. */
static int recover(void)
{
	int rc = ipcx_robust_lock(&sh->m);
	if (rc != -EOWNERDEAD)
		return 20;
	if (sh->a != sh->b + 1)
		return 21;
	sh->b = sh->a;
	if (ipcx_robust_consistent(&sh->m) != 0)
		return 22;
	if (ipcx_robust_unlock(&sh->m) != 0)
		return 23;
	return 0;
}

static int waiter(void *arg)
{
	(void)arg;
	return recover();
}

int main(void)
{
	t_watchdog(110);
	ipcx_region *r;
	T_CHECK_RC(ipcx_region_create_anon(&r, IPCX_KIND_SYNC, sizeof *sh, NULL), 0);
	sh = ipcx_region_data(r);
	int rc = ipcx_robust_init(&sh->m, 0);
	if (rc == -ENOTSUP) {
		printf("SKIP: no priority-inheritance futexes here\n");
		return T_SKIP;
	}
	T_CHECK_RC(rc, 0);

	unsigned by_waiter = 0;
	for (round_no = 1; round_no <= ROUNDS; round_no++) {
		pid_t h = t_spawn(holder, NULL);
		T_CHECK(h > 0);
		while (atomic_load(&sh->holding) != round_no)
			sched_yield();
		/* Every fourth round a second process is already waiting in lock
		 * (or about to be) when the holder dies. */
		pid_t w = -1;
		if (round_no % 4 == 0) {
			w = t_spawn(waiter, NULL);
			T_CHECK(w > 0);
		}
		T_CHECK(kill(h, SIGKILL) == 0);
		T_CHECK(t_wait(h) == 128 + SIGKILL);
		if (w > 0) {
			T_CHECK_RC(t_wait(w), 0);
			by_waiter++;
		} else {
			T_CHECK_RC(recover(), 0);
		}
		T_CHECK(sh->a == round_no && sh->b == round_no);
	}
	/* After all that the mutex is healthy. */
	T_CHECK_RC(ipcx_robust_trylock(&sh->m), 0);
	T_CHECK_RC(ipcx_robust_consistent(&sh->m), -EINVAL);
	T_CHECK_RC(ipcx_robust_unlock(&sh->m), 0);
	T_CHECK_RC(ipcx_robust_unlock(&sh->m), -EPERM);

	/* Not repaired: the mutex becomes unrecoverable for everyone. */
	pid_t h = t_spawn(holder, NULL);
	while (atomic_load(&sh->holding) != round_no)
		sched_yield();
	kill(h, SIGKILL);
	t_wait(h);
	T_CHECK_RC(ipcx_robust_timedlock(&sh->m, 1000000000), -EOWNERDEAD);
	T_CHECK_RC(ipcx_robust_unlock(&sh->m), 0);
	T_CHECK_RC(ipcx_robust_lock(&sh->m), -ENOTRECOVERABLE);
	T_CHECK_RC(ipcx_robust_trylock(&sh->m), -ENOTRECOVERABLE);
	T_CHECK_RC(ipcx_robust_init(&sh->m, 0), 0);
	T_CHECK_RC(ipcx_robust_lock(&sh->m), 0);
	T_CHECK_RC(ipcx_robust_unlock(&sh->m), 0);

	printf("%d holders killed: %u recovered by a blocked waiter, %u by the next locker\n",
	       ROUNDS, by_waiter, ROUNDS - by_waiter);
	ipcx_region_close(r);
	return T_PASS;
}
