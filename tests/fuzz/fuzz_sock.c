/*
 * Fuzz target: ipcx socket messages written by a hostile peer, above all
 * region introductions and references (ids, offsets, lengths, fds).
 *
 * The input is a list of 23-byte records, one message each: a control
 * byte (which descriptor to attach: none, a sealed ipcx region, an unsealed
 * memfd, a sealed memfd that is no region, a pipe; which receive to call;
 * whether to spoil the magic), then the header's type, fd count, region id,
 * offset and length.  Each input runs on a fresh connection on which one
 * region (id 1) was introduced honestly.  Whatever arrives, the library must
 * return an error or a view inside its own mapping: never crash, never point
 * outside the mapping (built with ASan), never leak a descriptor.
 *
 * Built two ways, like fuzz_ring.c: with clang -fsanitize=fuzzer (make fuzz),
 * and as a deterministic replay for CTest (replay.h: the committed corpus and
 * 3000 seeded random inputs: each input makes a connection, so fewer).
 * ipcx-test-timeout: 600
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "../util/rawsock.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REC 23

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		abort();
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static int memfd(int seals)
{
	int fd = memfd_create("fz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, 8192) < 0 || (seals && fcntl(fd, F_ADD_SEALS, seals) < 0))
		abort();
	return fd;
}

/* Descriptors a hostile peer might attach, made once. */
static int fd_kinds[5] = { -1, -1, -1, -1, -1 };
static ipcx_region *honest;

static void setup_once(void)
{
	if (honest)
		return;
	if (ipcx_region_create_anon(&honest, IPCX_KIND_RAW, 8192, NULL))
		abort();
	ipcx_sock *a, *b;
	if (ipcx_sock_pair(&a, &b, NULL) || ipcx_sock_send_region(a, honest, NULL, 0, NULL))
		abort(); /* seals it */
	ipcx_sock_close(a);
	ipcx_sock_close(b);
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		abort();
	fd_kinds[1] = ipcx_region_fd(honest);
	fd_kinds[2] = memfd(0);
	fd_kinds[3] = memfd(F_SEAL_SHRINK | F_SEAL_GROW);
	fd_kinds[4] = p[0];
}

/* The message a record describes, sent as a hostile peer would. */
static void raw_send(int sock, const uint8_t *rec)
{
	uint8_t h[64] = { 0x49, 0x78, 1, rec[1], rec[2] };
	if (rec[0] & 0x80)
		h[0] ^= rec[3]; /* a spoilt magic (or, rarely, not) */
	memcpy(h + 8, rec + 3, 4);   /* region id */
	memcpy(h + 16, rec + 7, 8);  /* offset */
	memcpy(h + 24, rec + 15, 8); /* length */
	if (t_raw_send(sock, h, sizeof h, fd_kinds[(rec[0] & 7) % 5]) != 64)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup_once();
	int fds0 = count_fds();
	ipcx_sock *a, *b;
	if (ipcx_sock_pair(&a, &b, NULL))
		abort();
	static const ipcx_wait nb = { IPCX_WAIT_NONBLOCK, 0, -1 };
	ipcx_sock_view v;
	if (ipcx_sock_send_region_ref(a, honest, 0, 1, NULL, 0, NULL) ||
	    ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_RAW, NULL, 0, &nb))
		abort();
	for (size_t i = 0; i + REC <= size && i < 32 * REC; i += REC) {
		raw_send(ipcx_sock_fd(a), data + i);
		char buf[64];
		ipcx_region *r = NULL;
		switch ((data[i] >> 3 & 3) % 3) {
		case 0:
			if (ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_ANY, buf, sizeof buf, &nb) < 0)
				break;
			/* Inside our mapping, every byte of it. */
			const char *lo = ipcx_region_data(v.region);
			if ((const char *)v.data < lo ||
			    v.len > ipcx_region_size(v.region) - (size_t)((const char *)v.data - lo))
				abort();
			if (v.len)
				buf[0] = ((volatile char *)v.data)[0] ^ ((volatile char *)v.data)[v.len - 1];
			break;
		case 1:
			(void)ipcx_sock_recv(b, buf, sizeof buf, &nb);
			break;
		default:
			(void)ipcx_sock_recv_region(b, &r, IPCX_KIND_ANY, buf, sizeof buf, &nb);
			ipcx_region_close(r);
		}
	}
	ipcx_sock_close(a);
	ipcx_sock_close(b);
	if (count_fds() != fds0)
		abort(); /* a descriptor leaked */
	return 0;
}

#ifndef IPCX_LIBFUZZER
#include "replay.h"

/* Values where the checks have their edges (the honest region holds 8192). */
static uint64_t edge(uint8_t pick, uint64_t other)
{
	static const uint64_t v[] = { 0, 1, 8191, 8192, 8193, 4096, UINT32_MAX,
				      1ull << 63, UINT64_MAX - 1, UINT64_MAX };
	return pick < 200 ? v[pick % (sizeof v / sizeof v[0])] : other;
}

/* Mostly well-formed messages with hostile fields: a region type, a few
 * fds, ids around the table's bounds, offsets and lengths at the edges. */
static void aim(uint8_t *buf, size_t n)
{
	for (size_t k = 0; k + REC <= n; k += REC) {
		uint8_t *r = buf + k;
		if (r[0] & 0x80 && r[1] % 4)
			r[0] &= 0x7f;
		r[1] = (uint8_t)(r[1] % 8 ? 4 + r[1] % 2 : r[1] % 7);
		r[2] %= 3;
		uint32_t id = r[3] < 200 ? r[3] % 3 : (uint32_t)edge(r[4], 65);
		uint64_t off = edge(r[7], 0), len = edge(r[15], 1);
		memcpy(r + 3, &id, 4);
		memcpy(r + 7, &off, 8);
		memcpy(r + 15, &len, 8);
	}
}

/* Replay: the corpus, then seeded random inputs. */
int main(int argc, char **argv)
{
	return fuzz_replay(argc, argv, 3000, 0xd1b54a32d192ed03ull, REC, aim);
}
#endif
