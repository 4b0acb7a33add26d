/*
 * Fuzz target: an MPMC queue (and its region header) damaged by another
 * process.
 *
 * The input is a list of patches -- (offset, byte) pairs -- applied to a
 * valid queue holding a few messages and a skip record.  Then a consumer and
 * a producer attach and work it, non-blocking, until errors.  Whatever the
 * damage, the library must return errors or messages no longer than msg_max:
 * never crash, never touch memory outside the mapping (built with ASan),
 * never loop for ever.
 *
 * Built two ways, like fuzz_ring.c: with clang -fsanitize=fuzzer (make fuzz),
 * and as a deterministic replay for CTest (replay.h: the committed corpus and
 * 10000 seeded random inputs).
 * ipcx-test-timeout: 600
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

/* Where the layout lives (see src/queue/queue.c): the region header page,
 * then the queue header (indices, wait words, stats: 768 bytes), the peer
 * table (2 x 64 x 128 bytes) and the slots (8 x 128 bytes). */
#define Q_HDR 4096u
#define Q_PEERS (Q_HDR + 768u)
#define Q_SLOTS (Q_PEERS + 2u * 64u * 128u)
#define Q_END (Q_SLOTS + 8u * 128u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const ipcx_wait nb = {IPCX_WAIT_NONBLOCK, 0, -1};
	ipcx_queue *creator, *tx, *rx;
	ipcx_queue_opts o = {.capacity = 8, .msg_max = 64};
	if (ipcx_queue_create(&creator, NULL, 0, &o))
		abort();
	int fd = ipcx_queue_fd(creator);
	if (ipcx_queue_open_fd(&tx, fd, IPCX_QUEUE_PRODUCER, &nb))
		abort();
	char msg[64];
	memset(msg, 'm', sizeof msg);
	void *slot;
	for (int i = 0; i < 4; i++)
		ipcx_queue_send(tx, msg, (size_t)(16 * i), NULL);
	ipcx_queue_reserve(tx, &slot, NULL);
	ipcx_queue_close(tx); /* publishes the reservation as a skip record */

	size_t map = (Q_END + 4095u) & ~4095u;
	uint8_t *m = mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		abort();
	for (size_t i = 0; i + 3 <= size; i += 3) {
		size_t off = ((size_t)data[i] << 8 | data[i + 1]) % map;
		m[off] = data[i + 2];
	}
	munmap(m, map);

	if (ipcx_queue_open_fd(&rx, fd, IPCX_QUEUE_CONSUMER, &nb) == 0) {
		char buf[64];
		for (int i = 0; i < 32; i++) {
			ssize_t n = ipcx_queue_recv(rx, buf, sizeof buf, NULL);
			if (n > (ssize_t)ipcx_queue_msg_max(rx))
				abort(); /* a length no valid message can have */
			if (n < 0 && n != -EBADMSG)
				break;
		}
		ipcx_queue_stats st;
		ipcx_queue_stat(rx, &st);
		ipcx_queue_close(rx);
	}
	if (ipcx_queue_open_fd(&tx, fd, IPCX_QUEUE_PRODUCER, &nb) == 0) {
		for (int i = 0; i < 16; i++)
			if (ipcx_queue_send(tx, msg, 8, NULL) < 0)
				break;
		ipcx_queue_close(tx);
	}
	ipcx_queue_close(creator);
	return 0;
}

#ifndef IPCX_LIBFUZZER
#include "replay.h"

/* Aim most patches at the queue header, the first peer entries and the
 * slots, where the damage matters. */
static void aim(uint8_t *buf, size_t n)
{
	for (size_t k = 0; k + 3 <= n; k += 3) {
		unsigned zone = buf[k] % 4, b = buf[k + 1];
		unsigned off = zone == 0   ? Q_HDR + b % 48			  /* constants */
			       : zone == 1 ? Q_HDR + 128 + (b % 5) * 128 + b % 16 /* indices */
			       : zone == 2 ? Q_PEERS + (b % 4) * 128 + b % 16	  /* peers */
					   : Q_SLOTS + b * 4u;			  /* slots */
		buf[k] = (uint8_t)(off >> 8);
		buf[k + 1] = (uint8_t)off;
	}
}

/* Replay: the corpus, then seeded random inputs. */
int main(int argc, char **argv)
{
	return fuzz_replay(argc, argv, 10000, 0x2545f4914f6cdd1dull, 0, aim);
}
#endif
