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

#define MAX_PRODUCERS 16
#define MAX_CONSUMERS 16

struct item {
	uint32_t producer;
	uint32_t pad;
	uint64_t seq;
};

struct results {
	/* Per consumer and producer: how many items, and the sums of their
	 * sequence numbers and squares (loss or duplication changes them). */
	uint64_t got[MAX_CONSUMERS][MAX_PRODUCERS];
	uint64_t sum[MAX_CONSUMERS][MAX_PRODUCERS], sq[MAX_CONSUMERS][MAX_PRODUCERS];
	uint32_t bad[MAX_CONSUMERS];
};

int main(int argc, char **argv)
{
	int np = argc > 1 ? atoi(argv[1]) : 3;
	int nc = argc > 2 ? atoi(argv[2]) : 2;
	uint64_t items = argc > 3 ? strtoull(argv[3], NULL, 10) : 100000;
	if (np < 1 || np > MAX_PRODUCERS || nc < 1 || nc > MAX_CONSUMERS) {
		fprintf(stderr, "usage: %s [PRODUCERS<=16 [CONSUMERS<=16 [ITEMS]]]\n", argv[0]);
		return 2;
	}

	/* The parent holds a producer handle until every producer has
	 * finished, so consumers do not see "no producer left" too early. */
	ipcx_queue *q;
	ipcx_queue_opts o = {.capacity = 16, .msg_max = sizeof(struct item)};
	int rc = ipcx_queue_create(&q, NULL, IPCX_QUEUE_PRODUCER, &o);
	if (rc) {
		fprintf(stderr, "queue: %s\n", ipcx_strerror(rc));
		return 1;
	}
	struct results *res =
	    mmap(NULL, sizeof *res, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		return 1;

	pid_t pids[MAX_PRODUCERS + MAX_CONSUMERS];
	for (int c = 0; c < nc; c++) {
		if ((pids[c] = fork()) == 0) {
			ipcx_queue *cq;
			if (ipcx_queue_open_fd(&cq, ipcx_queue_fd(q), IPCX_QUEUE_CONSUMER, NULL))
				_exit(1);
			int64_t last[MAX_PRODUCERS];
			for (int p = 0; p < MAX_PRODUCERS; p++)
				last[p] = -1;
			struct item it;
			ssize_t n;
			while ((n = ipcx_queue_recv(cq, &it, sizeof it, NULL)) == sizeof it) {
				/* In order per producer (a subsequence of its items
				 * when there are several consumers). */
				if (it.producer >= (uint32_t)np ||
				    (int64_t)it.seq <= last[it.producer]) {
					res->bad[c]++;
					continue;
				}
				last[it.producer] = (int64_t)it.seq;
				res->got[c][it.producer]++;
				res->sum[c][it.producer] += it.seq;
				res->sq[c][it.producer] += it.seq * it.seq;
			}
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

	uint64_t total = 0;
	for (int p = 0; p < np; p++) {
		uint64_t n = 0, sum = 0, sq = 0;
		for (int c = 0; c < nc; c++) {
			n += res->got[c][p];
			sum += res->sum[c][p];
			sq += res->sq[c][p];
		}
		/* 0 + 1 + ... + (items-1) and the sum of squares, modulo 2^64 */
		uint64_t want_sum = items * (items - 1) / 2;
		uint64_t want_sq = 0;
		for (uint64_t s = 0; s < items; s++)
			want_sq += s * s;
		if (n != items || sum != want_sum || sq != want_sq)
			failed = 1;
		total += n;
	}
	for (int c = 0; c < nc; c++)
		if (res->bad[c])
			failed = 1;
	printf("ipcx queue: %d producers x %d consumers, %llu items: %s\n", np, nc,
	       (unsigned long long)total, failed ? "FAILED" : "all delivered once, in order");
	return failed;
}
