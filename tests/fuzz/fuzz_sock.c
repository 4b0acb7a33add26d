/*
 * Fuzz target: ipcx socket messages written by a hostile peer, above all
 * region introductions and references (ids, offsets, lengths, fds).
 *
 * The input is a list of 66-byte records: which descriptor to attach
 * (none, a sealed ipcx region, an unsealed memfd, a sealed memfd that is no
 * region, a pipe), which receive to call, then the 64-byte wire header as
 * sent.  Each input runs on a fresh connection on which one region (id 1)
 * was introduced honestly.  Whatever arrives, the library must return an
 * error or a view inside its own mapping: never crash, never point outside
 * the mapping (built with ASan), never leak a descriptor.
 *
 * Built as fuzz_ring.c is: libFuzzer with make fuzz, and a deterministic
 * replay of the corpus plus seeded random inputs for CTest.
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

#define REC 66

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

static void raw_send(int sock, const uint8_t *hdr, int fd)
{
	if (t_raw_send(sock, hdr, 64, fd) != 64)
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
		raw_send(ipcx_sock_fd(a), data + i + 2, fd_kinds[data[i] % 5]);
		char buf[64];
		ipcx_region *r = NULL;
		switch (data[i + 1] % 3) {
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
static uint64_t x = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	x ^= x << 13, x ^= x >> 7, x ^= x << 17;
	return x;
}

/* Values where the checks have their edges. */
static uint64_t edge(uint64_t size)
{
	const uint64_t v[] = { 0, 1, size - 1, size, size + 1, UINT64_MAX, UINT64_MAX - 1,
			       1ull << 63, 4096, UINT32_MAX };
	return rnd() % 4 ? v[rnd() % (sizeof v / sizeof v[0])] : rnd();
}

/* Replay: every file of the corpus directory, then seeded random inputs
 * that mostly carry a well-formed header with hostile fields. */
int main(int argc, char **argv)
{
	alarm(580);
	unsigned runs = 0;
	DIR *d = argc > 1 ? opendir(argv[1]) : NULL;
	for (struct dirent *e; d && (e = readdir(d));) {
		char path[4096];
		uint8_t buf[32 * REC];
		snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name);
		FILE *f = e->d_name[0] == '.' ? NULL : fopen(path, "rb");
		if (f) {
			LLVMFuzzerTestOneInput(buf, fread(buf, 1, sizeof buf, f));
			fclose(f);
			runs++;
		}
	}
	if (d)
		closedir(d);
	for (int i = 0; i < 5000; i++) {
		uint8_t in[4 * REC];
		size_t n = REC * (1 + (size_t)i % 4);
		for (size_t k = 0; k < n; k += REC) {
			uint8_t *h = in + k + 2;
			for (size_t j = 0; j < REC; j++)
				in[k + j] = (uint8_t)rnd();
			if (rnd() % 8) {
				uint32_t id = (uint32_t)(rnd() % 4 ? rnd() % 3 : edge(64));
				uint64_t off = edge(8192), len = edge(8192);
				h[0] = 0x49, h[1] = 0x78, h[2] = 1, h[3] = (uint8_t)(1 + rnd() % 6);
				h[4] = (uint8_t)(rnd() % 3);
				memcpy(h + 8, &id, sizeof id);
				memcpy(h + 16, &off, sizeof off);
				memcpy(h + 24, &len, sizeof len);
			}
		}
		LLVMFuzzerTestOneInput(in, n);
		runs++;
	}
	printf("%u inputs, no crash\n", runs);
	return 0;
}
#endif
