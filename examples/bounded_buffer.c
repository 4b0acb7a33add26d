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

#include "pc_tally.h"

#define SLOTS 16

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
	struct pc_tally tally; /* each consumer writes only its own row */
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
	int np, nc;
	uint64_t items;
	if (pc_args(argc, argv, &np, &nc, &items))
		return 2;

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
			struct pc_seen seen;
			pc_seen_init(&seen);
			for (;;) {
				struct item it = take(b);
				if (it.producer < 0)
					_exit(0);
				pc_tally_item(&b->tally, &seen, c, np, (uint32_t)it.producer, it.seq);
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

	uint64_t total;
	failed |= pc_tally_check(&b->tally, np, nc, items, &total);
	printf(
	    "bounded buffer (2 semaphores + mutex): %d producers x %d consumers, %llu items: %s\n",
	    np, nc, (unsigned long long)total, failed ? "FAILED" : "all delivered once, in order");
	ipcx_region_close(r);
	return failed;
}
