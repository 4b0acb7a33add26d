/*
 * priority-inversion: three SCHED_FIFO processes on one CPU around one lock.
 * L (low) takes the lock and works; H (high) then blocks on it; M (medium)
 * then runs a long CPU-bound stretch.  Without priority inheritance M
 * preempts L, so H waits for M's whole stretch (the Mars Pathfinder bug);
 * with it L runs at H's priority until it releases the lock.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <ipcx/sync.h>

#include "lab.h"

#define CS_NS 20000000.0 /* L's critical section: CPU time */
#define M_NS 120000000.0 /* M's CPU-bound stretch: wall time */
enum { PRIO_L = 10, PRIO_M = 20, PRIO_H = 30 };

struct pi {
	ipcx_robust_mutex m;
	ipcx_event go_l, go_h, go_m;
	_Atomic uint32_t ready, l_locked, h_waiting, denied;
	double h_wait_ns;
	int cpu;
};

static struct pi *sh;

static double cpu_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int become(int prio)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(sh->cpu, &set);
	sched_setaffinity(0, sizeof set, &set);
	struct sched_param sp = {.sched_priority = prio};
	if (sched_setscheduler(0, SCHED_FIFO, &sp) < 0) {
		atomic_store(&sh->denied, (uint32_t)errno);
		atomic_fetch_add(&sh->ready, 1);
		return -1;
	}
	atomic_fetch_add(&sh->ready, 1);
	return 0;
}

static int low(void *arg)
{
	(void)arg;
	if (become(PRIO_L) || ipcx_event_wait(&sh->go_l, 10000000000ll))
		return 1;
	if (ipcx_robust_lock(&sh->m))
		return 2;
	atomic_store(&sh->l_locked, 1);
	double t0 = cpu_now_ns();
	while (cpu_now_ns() - t0 < CS_NS)
		;
	return ipcx_robust_unlock(&sh->m) ? 3 : 0;
}

static int high(void *arg)
{
	(void)arg;
	if (become(PRIO_H) || ipcx_event_wait(&sh->go_h, 10000000000ll))
		return 1;
	atomic_store(&sh->h_waiting, 1);
	double t0 = lab_now_ns();
	if (ipcx_robust_lock(&sh->m))
		return 2;
	sh->h_wait_ns = lab_now_ns() - t0;
	return ipcx_robust_unlock(&sh->m) ? 3 : 0;
}

static int medium(void *arg)
{
	(void)arg;
	if (become(PRIO_M) || ipcx_event_wait(&sh->go_m, 10000000000ll))
		return 1;
	double t0 = lab_now_ns();
	while (lab_now_ns() - t0 < M_NS)
		;
	return 0;
}

static int wait_flag(_Atomic uint32_t *f, uint32_t want)
{
	double t0 = lab_now_ns();
	while (atomic_load(f) < want) {
		if (lab_now_ns() - t0 > 3e9)
			return -1;
		struct timespec ts = {0, 100000};
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* One scenario: H's wait in ns, or -1 (failed) / -2 (SCHED_FIFO denied). */
static double scenario(uint32_t flags, int *denied_errno)
{
	int cpu = sh->cpu;
	memset(sh, 0, sizeof *sh);
	sh->cpu = cpu;
	if (ipcx_robust_init(&sh->m, flags))
		return -1;
	ipcx_event_init(&sh->go_l, 0);
	ipcx_event_init(&sh->go_h, 0);
	ipcx_event_init(&sh->go_m, 0);
	int pl = lab_spawn(low, NULL), ph = lab_spawn(high, NULL), pm = lab_spawn(medium, NULL);
	double res = -1;
	if (wait_flag(&sh->ready, 3) == 0) {
		if (atomic_load(&sh->denied)) {
			*denied_errno = (int)atomic_load(&sh->denied);
			res = -2;
		} else {
			ipcx_event_set(&sh->go_l);
			if (wait_flag(&sh->l_locked, 1) == 0) {
				ipcx_event_set(&sh->go_h);
				if (wait_flag(&sh->h_waiting, 1) == 0) {
					struct timespec ts = {0, 2000000}; /* H is blocked by now */
					nanosleep(&ts, NULL);
					ipcx_event_set(&sh->go_m);
					res = 0;
				}
			}
		}
	}
	/* Release anything still waiting to start, then reap with a bound. */
	ipcx_event_set(&sh->go_l);
	ipcx_event_set(&sh->go_h);
	ipcx_event_set(&sh->go_m);
	int sl = lab_wait(pl, 5000), shh = lab_wait(ph, 5000), sm = lab_wait(pm, 5000);
	if (res == 0)
		res = sl == 0 && shh == 0 && sm == 0 ? sh->h_wait_ns : -1;
	ipcx_robust_destroy(&sh->m);
	return res;
}

static int run(struct lab_out *out)
{
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return -errno;
	/* The three share the first CPU; this process watches from another. */
	cpu_set_t set, saved;
	sched_getaffinity(0, sizeof saved, &saved);
	int first = -1, other = -1;
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &saved)) {
			if (first < 0)
				first = i;
			else if (other < 0)
				other = i;
		}
	sh->cpu = first < 0 ? 0 : first;
	if (other >= 0) {
		CPU_ZERO(&set);
		CPU_SET(other, &set);
		sched_setaffinity(0, sizeof set, &set);
	}
	lab_fact(out, "setup",
		 "L (FIFO %d) locks and works %.0f ms of CPU; H (FIFO %d) blocks on "
		 "the lock; M (FIFO %d) then spins %.0f ms; all on CPU %d",
		 PRIO_L, CS_NS / 1e6, PRIO_H, PRIO_M, M_NS / 1e6, sh->cpu);
	int denied = 0;
	double without = scenario(IPCX_ROBUST_NO_PI, &denied);
	double with = without >= 0 ? scenario(0, &denied) : without;
	sched_setaffinity(0, sizeof saved, &saved);
	munmap(sh, sizeof *sh);
	if (without == -2 || with == -2) {
		lab_fact(out, "SCHED_FIFO",
			 "not permitted here (%s); needs root or CAP_SYS_NICE "
			 "(or an RLIMIT_RTPRIO)",
			 strerror(denied));
		lab_verdict(out, LAB_INCONCLUSIVE,
			    "could not run real-time priorities; with them, H would wait about M's "
			    "%.0f ms without priority inheritance and about L's %.0f ms with it",
			    M_NS / 1e6, CS_NS / 1e6);
		return 0;
	}
	if (without < 0 || with < 0)
		return -EIO;
	lab_fact_num(out, "H's wait without priority inheritance", without / 1e6, "ms");
	lab_fact_num(out, "H's wait with priority inheritance", with / 1e6, "ms");
	if (without > 0.8 * M_NS && with < 0.5 * M_NS)
		lab_verdict(out, LAB_HOLDS,
			    "without inheritance H waited %.1f ms, the length of M's run: a "
			    "medium-priority process held up a high-priority one; with inheritance "
			    "H waited %.1f ms, about L's critical section",
			    without / 1e6, with / 1e6);
	else
		lab_verdict(out, LAB_HOLDS_WITH_CORRECTIONS,
			    "H waited %.1f ms without and %.1f ms with inheritance; the expected "
			    "inversion (about %.0f ms) %s",
			    without / 1e6, with / 1e6, M_NS / 1e6,
			    without > 0.8 * M_NS ? "happened, but inheritance did not cure it"
						 : "did not happen here (real-time throttling or "
						   "another CPU let L run)");
	return 0;
}

static const struct lab_experiment priority_inversion = {
    .name = "priority-inversion",
    .claim = "A low-priority lock holder preempted by a medium-priority process blocks a "
	     "high-priority waiter indefinitely; priority inheritance bounds the wait",
    .order = 34,
    .run = run,
};
LAB_EXPERIMENT(priority_inversion)
