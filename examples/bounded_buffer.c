/*
 * The textbook bounded buffer (producer-consumer) across processes: a ring of
 * N slots in shared memory, a semaphore counting empty slots, one counting
 * full slots, and a mutex around the ring's indices.
 *
 *   producer: wait(empty); lock; put; unlock; post(full)
 *   consumer: wait(full);  lock; take; unlock; post(empty)
 *
 * usage: bounded_buffer [PRODUCERS [CONSUMERS [ITEMS_PER_PRODUCER]]]
 * Exits 0 when every item arrived exactly once and in order per producer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#define SLOTS 16
#define MAX_PRODUCERS 16
#define MAX_CONSUMERS 16

struct item {
	int32_t producer; /* -1: no more items, stop */
	uint32_t pad;
	uint64_t seq;
};

struct buffer {
	ipcx_sem empty, full;
	ipcx_mutex lock;
	uint32_t in, out; /* ring indices, under lock */
	struct item ring[SLOTS];
	/* results, each consumer writes only its own row */
	/* Per consumer and producer: how many items, and the sums of their
	 * sequence numbers and squares (loss or duplication changes them). */
	uint64_t got[MAX_CONSUMERS][MAX_PRODUCERS];
	uint64_t sum[MAX_CONSUMERS][MAX_PRODUCERS], sq[MAX_CONSUMERS][MAX_PRODUCERS];
	uint32_t bad[MAX_CONSUMERS];
};

static void put(struct buffer *b, struct item it)
{
	ipcx_sem_wait(&b->empty);
	ipcx_mutex_lock(&b->lock);
	b->ring[b->in] = it;
	b->in = (b->in + 1) % SLOTS;
	ipcx_mutex_unlock(&b->lock);
	ipcx_sem_post(&b->full);
}

static struct item take(struct buffer *b)
{
	ipcx_sem_wait(&b->full);
	ipcx_mutex_lock(&b->lock);
	struct item it = b->ring[b->out];
	b->out = (b->out + 1) % SLOTS;
	ipcx_mutex_unlock(&b->lock);
	ipcx_sem_post(&b->empty);
	return it;
}

int main(int argc, char **argv)
{
	int np = argc > 1 ? atoi(argv[1]) : 3;
	int nc = argc > 2 ? atoi(argv[2]) : 2;
	uint64_t items = argc > 3 ? strtoull(argv[3], NULL, 10) : 100000;
	if (np < 1 || np > MAX_PRODUCERS || nc < 1 || nc > MAX_CONSUMERS) {
		fprintf(stderr, "usage: %s [PRODUCERS<=16 [CONSUMERS<=16 [ITEMS]]]\n", argv[0]);
		return 2;
	}

	/* Anonymous shared memory that the children inherit across fork. */
	ipcx_region *r;
	int rc = ipcx_region_create_anon(&r, IPCX_KIND_SYNC, sizeof(struct buffer), NULL);
	if (rc) {
		fprintf(stderr, "region: %s\n", ipcx_strerror(rc));
		return 1;
	}
	struct buffer *b = ipcx_region_data(r);
	ipcx_sem_init(&b->empty, SLOTS);
	ipcx_sem_init(&b->full, 0);
	ipcx_mutex_init(&b->lock);

	pid_t pids[MAX_PRODUCERS + MAX_CONSUMERS];
	for (int c = 0; c < nc; c++) {
		if ((pids[c] = fork()) == 0) {
			int64_t last[MAX_PRODUCERS];
			for (int p = 0; p < MAX_PRODUCERS; p++)
				last[p] = -1;
			for (;;) {
				struct item it = take(b);
				if (it.producer < 0)
					_exit(0);
				/* Each consumer sees each producer's items in order
				 * (a subsequence of them when there are several). */
				if (it.producer >= np || (int64_t)it.seq <= last[it.producer]) {
					b->bad[c]++;
					continue;
				}
				last[it.producer] = (int64_t)it.seq;
				b->got[c][it.producer]++;
				b->sum[c][it.producer] += it.seq;
				b->sq[c][it.producer] += it.seq * it.seq;
			}
		}
	}
	for (int p = 0; p < np; p++) {
		if ((pids[nc + p] = fork()) == 0) {
			for (uint64_t s = 0; s < items; s++)
				put(b, (struct item){.producer = p, .seq = s});
			_exit(0);
		}
	}
	int failed = 0, st;
	for (int p = 0; p < np; p++)
		if (waitpid(pids[nc + p], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			failed = 1;
	/* One stop item per consumer, after every real item. */
	for (int c = 0; c < nc; c++)
		put(b, (struct item){.producer = -1});
	for (int c = 0; c < nc; c++)
		if (waitpid(pids[c], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			failed = 1;

	uint64_t total = 0;
	for (int p = 0; p < np; p++) {
		uint64_t n = 0, sum = 0, sq = 0;
		for (int c = 0; c < nc; c++) {
			n += b->got[c][p];
			sum += b->sum[c][p];
			sq += b->sq[c][p];
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
		if (b->bad[c])
			failed = 1;
	printf(
	    "bounded buffer (2 semaphores + mutex): %d producers x %d consumers, %llu items: %s\n",
	    np, nc, (unsigned long long)total, failed ? "FAILED" : "all delivered once, in order");
	ipcx_region_close(r);
	return failed;
}
