/* The MPMC queue under N producer x M consumer processes: nothing lost,
 * nothing duplicated, each producer's order kept, no torn message.
 * ipcx-test-timeout: 120
 * ipcx-test-serial
 */
#include <sys/mman.h>
#include <unistd.h>

#include "queue_load.h"

#define PER_PRODUCER 1000000u

static ipcx_queue *q0;
static struct ql_shared *sh;
static uint64_t total;

static int producer(void *arg)
{
	ipcx_queue *q;
	if (ipcx_queue_open_fd(&q, ipcx_queue_fd(q0), IPCX_QUEUE_PRODUCER, NULL))
		return 10;
	int rc = ql_produce(q, (uint32_t)(uintptr_t)arg, PER_PRODUCER);
	ipcx_queue_close(q);
	return rc ? 11 : 0;
}

static int consumer(void *arg)
{
	(void)arg;
	ipcx_queue *q;
	if (ipcx_queue_open_fd(&q, ipcx_queue_fd(q0), IPCX_QUEUE_CONSUMER, NULL))
		return 20;
	int rc = ql_consume(q, sh, total);
	ipcx_queue_close(q);
	return rc ? 21 : 0;
}

static void run(unsigned np, unsigned nc, uint32_t capacity)
{
	memset(sh, 0, sizeof *sh);
	total = (uint64_t)np * PER_PRODUCER;
	ipcx_queue_opts o = {.capacity = capacity, .msg_max = QL_MSG};
	T_CHECK_RC(ipcx_queue_create(&q0, NULL, 0, &o), 0);
	pid_t pids[16];
	unsigned n = 0;
	uint64_t t0 = t_now_ns();
	for (unsigned i = 0; i < nc; i++)
		pids[n++] = t_spawn(consumer, NULL);
	for (unsigned i = 0; i < np; i++)
		pids[n++] = t_spawn(producer, (void *)(uintptr_t)i);
	int bad = 0;
	for (unsigned i = 0; i < n; i++) {
		int st = t_wait(pids[i]);
		if (st) {
			fprintf(stderr, "child %u exited %d\n", i, st);
			bad = 1;
		}
	}
	printf("%u producers x %u consumers, capacity %u: %llu messages in %.2f s\n", np, nc,
	       capacity, (unsigned long long)atomic_load(&sh->received), (t_now_ns() - t0) / 1e9);
	T_CHECK(!bad);
	T_CHECK(atomic_load(&sh->received) == total);
	T_CHECK_RC(ql_verify(sh, np, PER_PRODUCER), 0);
	ipcx_queue_stats st;
	ipcx_queue_stat(q0, &st);
	T_CHECK(st.depth == 0 && st.skipped == 0 && st.lost == 0);
	ipcx_queue_close(q0);
}

int main(void)
{
	t_watchdog(110);
	setvbuf(stdout, NULL, _IONBF, 0);
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	T_CHECK(sh != MAP_FAILED);
	run(1, 1, 1024);
	run(3, 2, 64);
	run(2, 3, 4); /* a tiny queue: full and empty all the time */
	munmap(sh, sizeof *sh);
	return T_PASS;
}
