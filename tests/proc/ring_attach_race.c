/* Eight processes race to attach as the ring's producer, 50 times: exactly
 * one wins each time, the others get -EBUSY.
 * ipcx-test-timeout: 120 */
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

#define RACERS 8

struct shared {
	_Atomic int go, done, winners, busy, other;
};

static struct shared *sh;
static ipcx_ring *creator;

static int racer(void *arg)
{
	(void)arg;
	while (!atomic_load(&sh->go))
		;
	ipcx_ring *r;
	int rc = ipcx_ring_open_fd(&r, ipcx_ring_fd(creator), IPCX_RING_PRODUCER, NULL);
	if (rc == 0)
		atomic_fetch_add(&sh->winners, 1);
	else if (rc == -EBUSY)
		atomic_fetch_add(&sh->busy, 1);
	else
		atomic_fetch_add(&sh->other, 1);
	/* Hold the role until everyone has tried. */
	while (!atomic_load(&sh->done))
		usleep(100);
	ipcx_ring_close(r);
	return 0;
}

int main(void)
{
	t_watchdog(100);
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	T_CHECK(sh != MAP_FAILED);
	for (int round = 0; round < 50; round++) {
		T_CHECK_RC(ipcx_ring_create_anon(&creator, NULL, IPCX_RING_NOROLE), 0);
		atomic_store(&sh->go, 0);
		atomic_store(&sh->done, 0);
		atomic_store(&sh->winners, 0);
		atomic_store(&sh->busy, 0);
		atomic_store(&sh->other, 0);
		pid_t pids[RACERS];
		for (int i = 0; i < RACERS; i++)
			pids[i] = t_spawn(racer, NULL);
		atomic_store(&sh->go, 1);
		while (atomic_load(&sh->winners) + atomic_load(&sh->busy) + atomic_load(&sh->other) <
		       RACERS)
			usleep(100);
		atomic_store(&sh->done, 1);
		for (int i = 0; i < RACERS; i++)
			T_CHECK_RC(t_wait(pids[i]), 0);
		if (sh->winners != 1 || sh->other) {
			fprintf(stderr, "round %d: %d winners, %d busy, %d other errors\n", round,
				sh->winners, sh->busy, sh->other);
			return T_FAIL;
		}
		ipcx_ring_close(creator);
	}
	return 0;
}
