/*
 * Fuzz target: a mailbox damaged in shared memory by another process.
 *
 * The input is a list of patches -- (offset, byte) triples -- applied to a
 * valid mailbox holding a few messages (one of them taken, one loaned).
 * Then a second handle opens it, receives, sends, sends and receives
 * batches, takes and releases, and reads the attributes.  Whatever the damage, every call must return an
 * error or valid results: never crash, never touch memory outside the
 * mapping (ASan), never deliver a message longer than the mailbox allows.
 *
 * The 40-byte lock itself is left alone here: glibc trusts it, and the
 * library's checks of it (kind, an owner that is us or is gone) are unit
 * tested; a forged but live owner is a peer holding the lock, which no
 * mailbox can tell from a slow one.
 *
 * Built two ways, like fuzz_ring.c.
 * ipcx-test-timeout: 600
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "../../src/mq/mq_internal.h" /* where the lock lies */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ipcx_wait nb = { IPCX_WAIT_NONBLOCK, 0, -1 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[64], shm[96];
	snprintf(name, sizeof name, "fuzz-mq-%d", (int)getpid());
	snprintf(shm, sizeof shm, "/dev/shm/ipcx.%s", name);
	ipcx_mq_opts o = { .depth = 8, .max_msg = 100, .full = IPCX_MQ_FULL_DROP };
	ipcx_mq *a, *b;
	ipcx_region_unlink(name); /* whatever kind the damage made it */
	if (ipcx_mq_create(&a, name, &o))
		abort();
	char msg[128];
	memset(msg, 'm', sizeof msg);
	for (unsigned i = 0; i < 6; i++)
		ipcx_mq_send(a, msg, 15u * i, i % 3, &nb);
	ipcx_mq_msg taken, loaned;
	int have_taken = ipcx_mq_take(a, &taken, &nb) == 0;
	int have_loan = ipcx_mq_loan(a, &loaned, 50, 2, &nb) == 0;

	int fd = open(shm, O_RDWR);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		abort();
	size_t map = (size_t)st.st_size;
	uint8_t *m = mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		abort();
	size_t lock_lo = 4096 + offsetof(struct mq_hdr, lock);
	size_t lock_hi = lock_lo + sizeof(pthread_mutex_t);
	for (size_t i = 0; i + 3 <= size; i += 3) {
		/* offsets cluster on the headers and the slot table */
		size_t off = ((size_t)data[i] << 8 | data[i + 1]) * 3 % map;
		if (off >= lock_lo && off < lock_hi)
			continue;
		m[off] = data[i + 2];
	}
	munmap(m, map);

	if (ipcx_mq_open(&b, name, NULL) == 0) {
		/* The limit the opener validated (the damage may have changed
		 * max_msg within what the layout allows). */
		ipcx_mq_attr at;
		uint32_t max = ipcx_mq_getattr(b, &at) == 0 ? at.max_msg : 128;
		if (max > 128)
			abort(); /* the buffers are 128 bytes apart */
		for (int i = 0; i < 16; i++) {
			unsigned prio;
			int n = ipcx_mq_recv(b, msg, sizeof msg, &prio, &nb);
			if (n < 0)
				break;
			if ((uint32_t)n > max || prio >= IPCX_MQ_PRIO_LEVELS)
				abort();
		}
		ipcx_mq_send(b, msg, 10, 1, &nb);
		/* Batches: runs of positions claimed and published at once. */
		static char bufs[4][128];
		ipcx_mq_vec v[4];
		for (int i = 0; i < 4; i++)
			v[i] = (ipcx_mq_vec){ .buf = bufs[i], .len = 20, .cap = sizeof bufs[i],
					      .prio = 2 };
		ipcx_mq_send_batch(b, v, 4, &nb);
		int got = ipcx_mq_recv_batch(b, v, 4, &nb);
		for (int i = 0; i < got; i++)
			if (v[i].len > max || v[i].prio >= IPCX_MQ_PRIO_LEVELS)
				abort();
		ipcx_mq_msg t;
		if (ipcx_mq_take(b, &t, &nb) == 0) {
			if (t.len > max)
				abort();
			ipcx_mq_release(b, &t);
		}
		ipcx_mq_send_batch(b, v, 4, &nb);
		ipcx_mq_msg tb[4];
		got = ipcx_mq_take_batch(b, tb, 4, &nb);
		for (int i = 0; i < got; i++)
			if (tb[i].len > max || tb[i].prio >= IPCX_MQ_PRIO_LEVELS)
				abort();
		if (got > 0)
			ipcx_mq_release_batch(b, tb, (unsigned)got);
		ipcx_mq_getattr(b, &at);
		ipcx_mq_close(b);
	}
	if (have_taken)
		ipcx_mq_release(a, &taken);
	if (have_loan)
		ipcx_mq_commit(a, &loaned);
	ipcx_mq_close(a);
	ipcx_region_unlink(name); /* whatever kind the damage made it */
	return 0;
}

#include "replay.h"
#ifndef IPCX_LIBFUZZER
int main(int argc, char **argv)
{
	return fuzz_replay(argc, argv, 5000, 0x9e3779b97f4a7c15ull, 0, NULL);
}
#endif
