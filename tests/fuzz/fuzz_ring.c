/*
 * Fuzz target: a ring (and its region header) damaged by another process.
 *
 * The input is a list of patches -- (offset, byte) pairs -- applied to a
 * valid ring that holds a few messages.  Then a consumer opens it and
 * receives until an error.  Whatever the damage, the library must return an
 * error or valid messages: never crash, never read outside the mapping
 * (built with ASan), never loop forever.
 *
 * Built two ways: with clang -fsanitize=fuzzer (make fuzz) for real
 * coverage-guided fuzzing, and as a deterministic replay program for CTest
 * that runs the committed corpus and 20000 seeded random inputs.
 * ipcx-test-timeout: 600
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ipcx_ring *creator, *tx, *rx;
	ipcx_ring_opts o = { .capacity = 4096 };
	if (ipcx_ring_create_anon(&creator, &o, IPCX_RING_NOROLE))
		abort();
	int fd = ipcx_ring_fd(creator);
	if (ipcx_ring_open_fd(&tx, fd, IPCX_RING_PRODUCER, NULL))
		abort();
	static const ipcx_wait nb = { IPCX_WAIT_NONBLOCK, 0, -1 };
	char msg[700];
	memset(msg, 'm', sizeof msg);
	for (int i = 0; i < 7; i++) /* wraps once: a padding record is in there */
		ipcx_ring_send(tx, msg, (size_t)(100 * i), 0, &nb);
	ipcx_ring_close(tx);

	size_t map = 4096 + 1024 + 4096;
	uint8_t *m = mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		abort();
	for (size_t i = 0; i + 3 <= size; i += 3) {
		/* offsets cluster on the headers, where the damage matters */
		size_t off = ((size_t)data[i] << 8 | data[i + 1]) % map;
		m[off] = data[i + 2];
	}
	munmap(m, map);

	int rc = ipcx_ring_open_fd(&rx, fd, IPCX_RING_CONSUMER, &nb);
	if (rc == 0) {
		char buf[4096];
		for (int i = 0; i < 64; i++) {
			ssize_t n = ipcx_ring_recv(rx, buf, sizeof buf, NULL);
			if (n < 0)
				break;
			if ((size_t)n > ipcx_ring_max_msg(rx))
				abort(); /* a length no valid message can have */
		}
		ipcx_ring_stats st;
		ipcx_ring_stat(rx, &st);
		ipcx_ring_close(rx);
	}
	ipcx_ring_close(creator);
	return 0;
}

#ifndef IPCX_LIBFUZZER
/* Aim two thirds of the patches at the region and ring headers and the
 * first records. */
static void aim(uint8_t *buf, size_t n)
{
	for (size_t k = 0; k + 3 <= n; k += 3) {
		if (!(buf[k + 2] % 3))
			continue;
		unsigned zone = buf[k] % 3;
		unsigned off = zone == 0   ? buf[k + 1] % 128            /* region header */
			       : zone == 1 ? 4096 + buf[k + 1] * 4u % 1024 /* ring header */
					   : 5120 + buf[k + 1] * 4u;    /* records */
		buf[k] = (uint8_t)(off >> 8);
		buf[k + 1] = (uint8_t)off;
	}
}

#include "replay.h"

int main(int argc, char **argv)
{
	return fuzz_replay(argc, argv, 20000, 0x9e3779b97f4a7c15ull, 0, aim);
}
#endif
