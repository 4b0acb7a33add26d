/* Thread variant of the N x M queue test, also built under ThreadSanitizer
 * (which checks the queue's memory orders on the payload).
 * ipcx-test-labels: tsan
 * ipcx-test-timeout: 120
 * ipcx-test-serial
 */
#include <pthread.h>
#include <stdlib.h>

#include "queue_load.h"

#define PER_PRODUCER 30000u
#define NP 3
#define NC 2

static ipcx_queue *q0;
static struct ql_shared *sh;

static void *producer(void *arg)
{
	ipcx_queue *q;
	T_CHECK_RC(ipcx_queue_open_fd(&q, ipcx_queue_fd(q0), IPCX_QUEUE_PRODUCER, NULL), 0);
	T_CHECK_RC(ql_produce(q, (uint32_t)(uintptr_t)arg, PER_PRODUCER), 0);
	ipcx_queue_close(q);
	return NULL;
}

static void *consumer(void *arg)
{
	(void)arg;
	ipcx_queue *q;
	T_CHECK_RC(ipcx_queue_open_fd(&q, ipcx_queue_fd(q0), IPCX_QUEUE_CONSUMER, NULL), 0);
	T_CHECK_RC(ql_consume(q, sh, (uint64_t)NP * PER_PRODUCER), 0);
	ipcx_queue_close(q);
	return NULL;
}

int main(void)
{
	t_watchdog(110);
	sh = calloc(1, sizeof *sh);
	T_CHECK(sh);
	uint32_t caps[] = {256, 4};
	for (unsigned k = 0; k < 2; k++) {
		memset(sh, 0, sizeof *sh);
		ipcx_queue_opts o = {.capacity = caps[k], .msg_max = QL_MSG};
		T_CHECK_RC(ipcx_queue_create(&q0, NULL, 0, &o), 0);
		pthread_t t[NP + NC];
		for (unsigned i = 0; i < NC; i++)
			T_CHECK(pthread_create(&t[i], NULL, consumer, NULL) == 0);
		for (unsigned i = 0; i < NP; i++)
			T_CHECK(pthread_create(&t[NC + i], NULL, producer, (void *)(uintptr_t)i) ==
				0);
		for (unsigned i = 0; i < NP + NC; i++)
			pthread_join(t[i], NULL);
		T_CHECK(atomic_load(&sh->received) == (uint64_t)NP * PER_PRODUCER);
		T_CHECK_RC(ql_verify(sh, NP, PER_PRODUCER), 0);
		printf("%d producer x %d consumer threads, capacity %u: %u messages checked\n", NP,
		       NC, caps[k], NP * PER_PRODUCER);
		ipcx_queue_close(q0);
	}
	free(sh);
	return T_PASS;
}
