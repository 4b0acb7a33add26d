/* Every lock kind: N processes each take the lock ITERS times around a
 * read-modify-write of a shared counter; the final count must be exact.
 * ipcx-test-timeout: 240
 * ipcx-test-serial
 */
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

#define PROCS 3
#define ITERS 1000000ul

struct shared {
	ipcx_lock lock;
	volatile uint64_t counter; /* deliberately plain: only the lock protects it */
	volatile uint64_t inside;  /* holders at once: must never exceed 1 */
	volatile uint32_t overlap;
	_Atomic uint32_t ready, go;
};

static struct shared *sh;
static unsigned long iters = ITERS;

static int worker(void *arg)
{
	(void)arg;
	/* Start together, so the processes really contend. */
	atomic_fetch_add(&sh->ready, 1);
	while (!atomic_load(&sh->go))
		sched_yield();
	for (unsigned long i = 0; i < iters; i++) {
		int rc = ipcx_lock_acquire(&sh->lock);
		if (rc)
			return 10;
		if (++sh->inside != 1)
			sh->overlap = 1;
		uint64_t v = sh->counter;
		sh->counter = v + 1;
		sh->inside--;
		if (ipcx_lock_release(&sh->lock))
			return 11;
	}
	return 0;
}

int main(void)
{
	t_watchdog(230);
	ipcx_region *r;
	T_CHECK_RC(ipcx_region_create_anon(&r, IPCX_KIND_SYNC, sizeof *sh, NULL), 0);
	sh = ipcx_region_data(r);
	for (uint32_t k = 1; k <= IPCX_LOCK_KIND_MAX; k++) {
		/* System V semaphores cost a system call per operation: fewer rounds
		 * keep the test in seconds and still interleave millions of times. */
		iters = k == IPCX_LOCK_SYSV ? ITERS / 10 : ITERS;
		memset(sh, 0, sizeof *sh);
		T_CHECK_RC(ipcx_lock_init(&sh->lock, k), 0);
		uint64_t t0 = t_now_ns();
		pid_t pids[PROCS];
		for (int i = 0; i < PROCS; i++)
			T_CHECK((pids[i] = t_spawn(worker, NULL)) > 0);
		while (atomic_load(&sh->ready) != PROCS)
			sched_yield();
		atomic_store(&sh->go, 1);
		int bad = 0;
		for (int i = 0; i < PROCS; i++)
			bad |= t_wait(pids[i]) != 0;
		printf("%-12s %d processes x %lu: counter %llu, %.2f s\n", ipcx_lock_kind_name(k),
		       PROCS, iters, (unsigned long long)sh->counter, (t_now_ns() - t0) / 1e9);
		T_CHECK(!bad);
		T_CHECK(sh->overlap == 0);
		T_CHECK(sh->counter == (uint64_t)PROCS * iters);
		ipcx_lock_destroy(&sh->lock);
	}
	ipcx_region_close(r);
	return T_PASS;
}
