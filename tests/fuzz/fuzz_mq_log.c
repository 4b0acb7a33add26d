/*
 * Fuzz target: a mailbox log damaged on disk.
 *
 * The input is a truncation (first two bytes) and a list of patches --
 * (offset, byte) triples -- applied to a valid log that holds a few
 * messages and removals.  The mailbox is then created on it (recovery).
 * Whatever the damage, recovery must fail with an error or yield valid
 * messages: never crash, never read outside the file (built with ASan),
 * never deliver a message longer than the mailbox allows.
 *
 * Built two ways, like fuzz_ring.c: libFuzzer (make fuzz) and a
 * deterministic replay of the corpus plus seeded random inputs for CTest.
 * Skips (exit 0 without inputs) when /var/tmp is not a real file system.
 * ipcx-test-timeout: 600
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[128], name[64];
static uint8_t *valid;
static size_t valid_len;
static const ipcx_wait nb = { IPCX_WAIT_NONBLOCK, 0, -1 };

static void make_valid(void)
{
	snprintf(path, sizeof path, "/var/tmp/ipcx-fuzz-mq-log-%d", (int)getpid());
	snprintf(name, sizeof name, "fuzz-mq-log-%d", (int)getpid());
	unlink(path);
	ipcx_mq_opts o = { .depth = 16, .max_msg = 200, .log_path = path };
	ipcx_mq *mq;
	if (ipcx_mq_create(&mq, name, &o))
		exit(0); /* no real file system here: nothing to fuzz */
	char msg[200];
	memset(msg, 'm', sizeof msg);
	for (unsigned i = 0; i < 8; i++)
		if (ipcx_mq_send(mq, msg, 25u * i, i % 4, &nb))
			abort();
	for (unsigned i = 0; i < 3; i++)
		if (ipcx_mq_recv(mq, msg, sizeof msg, NULL, &nb) < 0)
			abort();
	ipcx_mq_attr a;
	ipcx_mq_getattr(mq, &a);
	valid_len = a.log_bytes;
	ipcx_mq_close(mq);
	ipcx_mq_unlink(name);
	int fd = open(path, O_RDONLY);
	valid = malloc(valid_len);
	if (fd < 0 || !valid || pread(fd, valid, valid_len, 0) != (ssize_t)valid_len)
		abort();
	close(fd);
}

static void cleanup(void)
{
	unlink(path);
	ipcx_mq_unlink(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!valid) {
		make_valid();
		atexit(cleanup);
	}
	uint8_t *buf = malloc(valid_len);
	if (!buf)
		abort();
	memcpy(buf, valid, valid_len);
	size_t len = valid_len;
	if (size >= 2) {
		size_t cut = ((size_t)data[0] << 8 | data[1]) % (valid_len + 64);
		if (cut < len && data[0] & 0x80)
			len = cut; /* half the inputs also truncate */
		data += 2, size -= 2;
	}
	for (size_t i = 0; len && i + 3 <= size; i += 3) {
		size_t off = ((size_t)data[i] << 8 | data[i + 1]) % len;
		buf[off] = data[i + 2];
	}
	int fd = open(path, O_WRONLY | O_TRUNC);
	if (fd < 0 || (len && write(fd, buf, len) != (ssize_t)len))
		abort();
	close(fd);
	free(buf);

	ipcx_mq_opts o = { .depth = 16, .max_msg = 200, .log_path = path };
	ipcx_mq *mq;
	if (ipcx_mq_create(&mq, name, &o) == 0) {
		char msg[256];
		int n;
		for (int i = 0; i < 32 && (n = ipcx_mq_recv(mq, msg, sizeof msg, NULL, &nb)) >= 0; i++)
			if (n > 200)
				abort(); /* longer than the mailbox allows */
		if (ipcx_mq_send(mq, "after", 5, 1, &nb) == 0 &&
		    ipcx_mq_recv(mq, msg, sizeof msg, NULL, &nb) != 5)
			abort(); /* the recovered mailbox works */
		ipcx_mq_close(mq);
		ipcx_mq_unlink(name);
	}
	return 0;
}

#include "replay.h"
#ifndef IPCX_LIBFUZZER
int main(int argc, char **argv)
{
	return fuzz_replay(argc, argv, 3000, 0x9e3779b97f4a7c15ull, 2, NULL);
}
#endif
