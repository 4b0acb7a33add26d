/*
 * The producer-consumer workload of bounded_buffer.c on the ipcx MPMC queue:
 * no semaphores, no mutex -- the queue's slots carry their own sequence
 * numbers, full and empty are waited on by the queue, and consumers learn
 * that the producers are done when receive returns -EPIPE.
 *
 * usage: queue_pc [PRODUCERS [CONSUMERS [ITEMS_PER_PRODUCER]]]
 * Exits 0 when every item arrived exactly once and in order per producer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "pc_tally.h"

struct item {
	uint32_t producer;
	uint32_t pad;
	uint64_t seq;
};

int main(int argc, char **argv)
{
	int np, nc;
	uint64_t items;
	if (pc_args(argc, argv, &np, &nc, &items))
		return 2;

	/* The parent holds a producer handle until every producer has
	 * finished, so consumers do not see "no producer left" too early. */
	ipcx_queue *q;
	ipcx_queue_opts o = {.capacity = 16, .msg_max = sizeof(struct item)};
	int rc = ipcx_queue_create(&q, NULL, IPCX_QUEUE_PRODUCER, &o);
	if (rc) {
		fprintf(stderr, "queue: %s\n", ipcx_strerror(rc));
		return 1;
	}
	struct pc_tally *res =
	    mmap(NULL, sizeof *res, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		return 1;

	pid_t pids[MAX_PRODUCERS + MAX_CONSUMERS];
	for (int c = 0; c < nc; c++) {
		if ((pids[c] = fork()) == 0) {
			ipcx_queue *cq;
			if (ipcx_queue_open_fd(&cq, ipcx_queue_fd(q), IPCX_QUEUE_CONSUMER, NULL))
				_exit(1);
			struct pc_seen seen;
			pc_seen_init(&seen);
			struct item it;
			ssize_t n;
			while ((n = ipcx_queue_recv(cq, &it, sizeof it, NULL)) == sizeof it)
				pc_tally_item(res, &seen, c, np, it.producer, it.seq);
			_exit(n == -EPIPE ? 0 : 1); /* -EPIPE: drained, producers gone */
		}
	}
	for (int p = 0; p < np; p++) {
		if ((pids[nc + p] = fork()) == 0) {
			ipcx_queue *pq;
			if (ipcx_queue_open_fd(&pq, ipcx_queue_fd(q), IPCX_QUEUE_PRODUCER, NULL))
				_exit(1);
			for (uint64_t s = 0; s < items; s++) {
				struct item it = {.producer = (uint32_t)p, .seq = s};
				if (ipcx_queue_send(pq, &it, sizeof it, NULL))
					_exit(1);
			}
			ipcx_queue_close(pq);
			_exit(0);
		}
	}
	int failed = 0, st;
	for (int p = 0; p < np; p++)
		if (waitpid(pids[nc + p], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			failed = 1;
	ipcx_queue_close(q); /* the last producer handle: consumers drain, then -EPIPE */
	for (int c = 0; c < nc; c++)
		if (waitpid(pids[c], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			failed = 1;

	uint64_t total;
	failed |= pc_tally_check(res, np, nc, items, &total);
	printf("ipcx queue: %d producers x %d consumers, %llu items: %s\n", np, nc,
	       (unsigned long long)total, failed ? "FAILED" : "all delivered once, in order");
	return failed;
}
