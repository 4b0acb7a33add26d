/* Regions by reference over a socket: introduced once, then named by id;
 * the per-connection cache, its bound, a hostile peer, fd leaks, and a
 * sender that closes its region or exits while the receiver reads.
 * ipcx-test-timeout: 60 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "rawsock.h"
#include "testutil.h"

enum { T_INTRO = 4, T_REF = 5 }; /* wire types, as docs/sock.md describes */

/* Write one message of the ipcx wire format by hand, as a hostile peer
 * would: header fields as given, and fd (if >= 0) in SCM_RIGHTS. */
static void raw_send(int sock, uint8_t type, uint8_t nfds, uint32_t id, uint64_t off,
		     uint64_t len, int fd)
{
	unsigned char h[64] = { 0x49, 0x78, 1, type, nfds };
	memcpy(h + 8, &id, sizeof id);
	memcpy(h + 16, &off, sizeof off);
	memcpy(h + 24, &len, sizeof len);
	assert_int_equal(t_raw_send(sock, h, sizeof h, fd), 64);
}

/* Read one message off the raw socket: its type, and how many fds came
 * with it (closed here). */
static unsigned raw_recv_fds(int sock, uint8_t *type)
{
	unsigned char buf[256];
	union {
		char c[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr a;
	} ctl;
	struct iovec iov = { buf, sizeof buf };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.c,
			    .msg_controllen = sizeof ctl.c };
	assert_true(recvmsg(sock, &m, MSG_CMSG_CLOEXEC) >= 64);
	*type = buf[3];
	unsigned n = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		unsigned k = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (unsigned i = 0; i < k; i++, n++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
			close(fd);
		}
	}
	return n;
}

/* A sealed memfd of `size` bytes (not an ipcx region unless made one). */
static int sealed_memfd(size_t size, int seals)
{
	int fd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	if (seals)
		assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

/* Descriptors a socket holds of its own: itself, and the peer's pidfd. */
static int sock_fds(const ipcx_sock *s)
{
	ipcx_cred c;
	assert_int_equal(ipcx_sock_peer(s, &c), 0);
	return 1 + (c.pidfd >= 0);
}

static ipcx_region *anon(size_t size, unsigned char fill)
{
	ipcx_region *r;
	assert_int_equal(ipcx_region_create_anon(&r, IPCX_KIND_RAW, size, NULL), 0);
	memset(ipcx_region_data(r), fill, size);
	return r;
}

static void test_fd_travels_once(void **st)
{
	(void)st;
	int fds0 = t_count_fds();
	ipcx_sock *a, *b;
	assert_int_equal(ipcx_sock_pair(&a, &b, NULL), 0);
	ipcx_region *r = anon(65536, 1), *r2 = anon(4096, 2);
	/* On the wire: an fd with the first send of each region only. */
	assert_int_equal(ipcx_sock_send_region_ref(a, r, 0, 100, "m", 1, NULL), 0);
	assert_int_equal(ipcx_sock_send_region_ref(a, r, 100, 100, "m", 1, NULL), 0);
	assert_int_equal(ipcx_sock_send_region_ref(a, r2, 0, 10, NULL, 0, NULL), 0);
	assert_int_equal(ipcx_sock_send_region_ref(a, r, 0, 65536, NULL, 0, NULL), 0);
	assert_int_equal(ipcx_sock_send_region_ref(a, r2, 1, 1, NULL, 0, NULL), 0);
	uint8_t type;
	int raw = ipcx_sock_fd(b);
	assert_int_equal(raw_recv_fds(raw, &type), 1);
	assert_int_equal(type, T_INTRO);
	assert_int_equal(raw_recv_fds(raw, &type), 0);
	assert_int_equal(type, T_REF);
	assert_int_equal(raw_recv_fds(raw, &type), 1);
	assert_int_equal(type, T_INTRO);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(raw_recv_fds(raw, &type), 0);
		assert_int_equal(type, T_REF);
	}
	ipcx_sock_close(a);
	ipcx_sock_close(b);
	ipcx_region_close(r);
	ipcx_region_close(r2);
	assert_int_equal(t_count_fds(), fds0);
}

static void test_views(void **st)
{
	(void)st;
	int fds0 = t_count_fds();
	ipcx_sock *a, *b;
	assert_int_equal(ipcx_sock_pair(&a, &b, NULL), 0);
	ipcx_region *r = anon(65536, 0), *r2 = anon(4096, 0x22);
	unsigned char *d = ipcx_region_data(r);
	d[0] = 1;
	d[1000] = 2;
	assert_int_equal(ipcx_sock_send_region_ref(a, r, 0, 10, "ab", 2, NULL), 0);
	assert_int_equal(ipcx_sock_send_region_ref(a, r, 1000, 24, NULL, 0, NULL), 0);
	assert_int_equal(ipcx_sock_send_region_ref(a, r2, 4000, 96, NULL, 0, NULL), 0);
	ipcx_sock_view v, v2;
	char buf[8];
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_RAW, buf, sizeof buf, NULL), 2);
	assert_memory_equal(buf, "ab", 2);
	assert_int_equal(v.region_id, 1);
	assert_int_equal(v.len, 10);
	assert_int_equal(v.offset, 0);
	assert_int_equal(((unsigned char *)v.data)[0], 1);
	assert_int_equal(ipcx_region_size(v.region), 65536);
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v2, IPCX_KIND_ANY, NULL, 0, NULL), 0);
	/* The same mapping, kept: no map per message, and the first view is
	 * still valid after the next receive. */
	assert_ptr_equal(v2.region, v.region);
	assert_ptr_equal(v2.data, (char *)v.data + 1000);
	assert_int_equal(((unsigned char *)v2.data)[0], 2);
	assert_int_equal(((unsigned char *)v.data)[0], 1);
	/* Shared, not copied. */
	d[1001] = 9;
	assert_int_equal(((unsigned char *)v2.data)[1], 9);
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_RAW, NULL, 0, NULL), 0);
	assert_int_equal(v.region_id, 2);
	assert_int_equal(((unsigned char *)v.data)[95], 0x22);

	/* Kind mismatch: -EMEDIUMTYPE, the region stays known. */
	assert_int_equal(ipcx_sock_send_region_ref(a, r, 0, 1, NULL, 0, NULL), 0);
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_RING, NULL, 0, NULL),
			 -EMEDIUMTYPE);
	assert_null(v.data);
	/* Sender-side checks. */
	assert_int_equal(ipcx_sock_send_region_ref(a, r, 65536, 1, NULL, 0, NULL), -EINVAL);
	assert_int_equal(ipcx_sock_send_region_ref(a, r, SIZE_MAX, 2, NULL, 0, NULL), -EINVAL);
	assert_int_equal(ipcx_sock_send_region_ref(a, NULL, 0, 0, NULL, 0, NULL), -EINVAL);
	const char *name = t_name("ref");
	ipcx_region *named;
	assert_int_equal(ipcx_region_create(&named, name, IPCX_KIND_RAW, 64, NULL), 0);
	assert_int_equal(ipcx_sock_send_region_ref(a, named, 0, 1, NULL, 0, NULL), -EINVAL);
	ipcx_region_close(named);
	ipcx_region_unlink(name);

	/* An introduction whose small message does not fit: -EMSGSIZE, but
	 * the region is registered, so its next reference resolves. */
	ipcx_region *r3 = anon(4096, 0x33);
	assert_int_equal(ipcx_sock_send_region_ref(a, r3, 0, 1, "too long", 8, NULL), 0);
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_RAW, buf, 2, NULL), -EMSGSIZE);
	assert_int_equal(ipcx_sock_send_region_ref(a, r3, 0, 1, NULL, 0, NULL), 0);
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_RAW, NULL, 0, NULL), 0);
	assert_int_equal(v.region_id, 3);
	/* A plain receive meeting an introduction: -EBADMSG, still registered. */
	ipcx_region *r4 = anon(4096, 0x44);
	assert_int_equal(ipcx_sock_send_region_ref(a, r4, 0, 1, NULL, 0, NULL), 0);
	assert_int_equal(ipcx_sock_recv(b, buf, sizeof buf, NULL), -EBADMSG);
	assert_int_equal(ipcx_sock_send_region_ref(a, r4, 0, 1, NULL, 0, NULL), 0);
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_RAW, NULL, 0, NULL), 0);
	assert_int_equal(((unsigned char *)v.data)[0], 0x44);
	/* The other way round: a plain message, or a region passed by fd,
	 * where a reference is expected. */
	assert_int_equal(ipcx_sock_send(a, "p", 1, NULL), 0);
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_ANY, buf, sizeof buf, NULL),
			 -EBADMSG);
	int before = t_count_fds();
	assert_int_equal(ipcx_sock_send_region(a, r, NULL, 0, NULL), 0);
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_ANY, NULL, 0, NULL), -EBADMSG);
	assert_int_equal(t_count_fds(), before);
	ipcx_region_close(r);
	ipcx_region_close(r2);
	ipcx_region_close(r3);
	ipcx_region_close(r4);
	ipcx_sock_close(a);
	ipcx_sock_close(b);
	assert_int_equal(t_count_fds(), fds0);
	assert_int_equal(t_check_no_leaks(), 0);
}

static void test_hostile_peer(void **st)
{
	(void)st;
	ipcx_sock *a, *b;
	assert_int_equal(ipcx_sock_pair(&a, &b, NULL), 0);
	int raw = ipcx_sock_fd(a);
	ipcx_sock_view v;
	/* References to ids never introduced, or outside 1..64. */
	const uint32_t ids[] = { 1, 0, 64, 65, UINT32_MAX };
	for (unsigned i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		raw_send(raw, T_REF, 0, ids[i], 0, 1, -1);
		assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_ANY, NULL, 0, NULL),
				 -EBADMSG);
	}
	/* A real introduction of a 4096-byte region (id 1). */
	ipcx_region *r = anon(4096, 0x5a);
	assert_int_equal(ipcx_sock_send_region_ref(a, r, 0, 16, NULL, 0, NULL), 0);
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_RAW, NULL, 0, NULL), 0);
	int fds0 = t_count_fds();
	/* Bytes beyond it, including offsets that wrap around. */
	const uint64_t bad[][2] = { { 4090, 7 }, { 4097, 0 }, { UINT64_MAX, 2 },
				    { 0, UINT64_MAX }, { 1ull << 63, 1ull << 63 } };
	for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		raw_send(raw, T_REF, 0, 1, bad[i][0], bad[i][1], -1);
		assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_ANY, NULL, 0, NULL),
				 -EBADMSG);
		assert_null(v.data);
	}
	/* The last byte, and the empty range at the very end, are fine. */
	raw_send(raw, T_REF, 0, 1, 4095, 1, -1);
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_ANY, NULL, 0, NULL), 0);
	assert_int_equal(*(unsigned char *)v.data, 0x5a);
	raw_send(raw, T_REF, 0, 1, 4096, 0, -1);
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_ANY, NULL, 0, NULL), 0);
	assert_int_equal(v.len, 0);
	/* Introductions that must be refused, their fds closed: id 1 again
	 * (a region swapped under a known id), no seals, not a memfd, not an
	 * ipcx region, an introduction without its fd, a reference with one. */
	int sealed = sealed_memfd(8192, F_SEAL_SHRINK | F_SEAL_GROW);
	int unsealed = sealed_memfd(8192, 0);
	int p[2];
	assert_int_equal(pipe(p), 0);
	int fds1 = t_count_fds();
	raw_send(raw, T_INTRO, 1, 1, 0, 1, sealed);
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_ANY, NULL, 0, NULL), -EBADMSG);
	raw_send(raw, T_INTRO, 1, 2, 0, 1, unsealed);
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_ANY, NULL, 0, NULL), -EBADMSG);
	raw_send(raw, T_INTRO, 1, 2, 0, 1, p[0]);
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_ANY, NULL, 0, NULL), -EBADMSG);
	raw_send(raw, T_INTRO, 1, 2, 0, 1, sealed); /* zeros: no region header */
	assert_true(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_ANY, NULL, 0, NULL) < 0);
	raw_send(raw, T_INTRO, 0, 2, 0, 1, -1);
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_ANY, NULL, 0, NULL), -EBADMSG);
	raw_send(raw, T_REF, 1, 1, 0, 1, sealed);
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_ANY, NULL, 0, NULL), -EBADMSG);
	raw_send(raw, T_INTRO, 1, 65, 0, 1, sealed);
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_ANY, NULL, 0, NULL), -EBADMSG);
	assert_int_equal(t_count_fds(), fds1);
	/* None of it took a region: id 2 is still unknown. */
	raw_send(raw, T_REF, 0, 2, 0, 1, -1);
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_ANY, NULL, 0, NULL), -EBADMSG);
	close(sealed);
	close(unsealed);
	close(p[0]);
	close(p[1]);
	assert_int_equal(t_count_fds(), fds0);
	/* And the connection still works. */
	assert_int_equal(ipcx_sock_send_region_ref(a, r, 8, 8, NULL, 0, NULL), 0);
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_RAW, NULL, 0, NULL), 0);
	assert_int_equal(v.region_id, 1);
	ipcx_region_close(r);
	ipcx_sock_close(a);
	ipcx_sock_close(b);
}

static void test_cache_limit(void **st)
{
	(void)st;
	int fds0 = t_count_fds();
	ipcx_sock *a, *b;
	assert_int_equal(ipcx_sock_pair(&a, &b, NULL), 0);
	ipcx_region *r[IPCX_SOCK_MAX_REGIONS + 1];
	ipcx_sock_view v;
	for (int i = 0; i <= IPCX_SOCK_MAX_REGIONS; i++)
		r[i] = anon(4096, (unsigned char)i);
	for (int i = 0; i < IPCX_SOCK_MAX_REGIONS; i++) {
		assert_int_equal(ipcx_sock_send_region_ref(a, r[i], 0, 1, NULL, 0, NULL), 0);
		assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_RAW, NULL, 0, NULL), 0);
		assert_int_equal(v.region_id, i + 1);
		assert_int_equal(*(unsigned char *)v.data, i);
	}
	/* The 65th is refused before anything is sent ... */
	assert_int_equal(ipcx_sock_send_region_ref(a, r[IPCX_SOCK_MAX_REGIONS], 0, 1, NULL, 0, NULL),
			 -ENOSPC);
	const ipcx_wait nb = { .mode = IPCX_WAIT_NONBLOCK, .timeout_ns = -1 };
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_ANY, NULL, 0, &nb), -EAGAIN);
	/* ... the 64 known ones still go ... */
	for (int i = IPCX_SOCK_MAX_REGIONS - 1; i >= 0; i -= 21) {
		assert_int_equal(ipcx_sock_send_region_ref(a, r[i], 0, 1, NULL, 0, NULL), 0);
		assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_RAW, NULL, 0, NULL), 0);
		assert_int_equal(v.region_id, i + 1);
	}
	/* ... and a peer forcing a 65th in is refused by the receiver. */
	int m = sealed_memfd(8192, F_SEAL_SHRINK | F_SEAL_GROW);
	raw_send(ipcx_sock_fd(a), T_INTRO, 1, IPCX_SOCK_MAX_REGIONS + 1, 0, 1, m);
	assert_int_equal(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_ANY, NULL, 0, NULL), -EBADMSG);
	close(m);
	/* The receiver holds one descriptor per region it maps, until close;
	 * the sender's regions stay the caller's. */
	int held = t_count_fds(), own = sock_fds(b);
	ipcx_sock_close(b);
	assert_int_equal(held - t_count_fds(), IPCX_SOCK_MAX_REGIONS + own);
	ipcx_sock_close(a);
	for (int i = 0; i <= IPCX_SOCK_MAX_REGIONS; i++)
		ipcx_region_close(r[i]);
	assert_int_equal(t_count_fds(), fds0);
}

/* Real processes.  The child introduces 4 regions, then names them 10^4
 * times (each message its own slot, so nothing is overwritten before it is
 * read), closes them and exits. */
#define N_MSGS 10000
#define SLOT 64

struct kid_args {
	ipcx_sock *mine, *theirs;
};

static int kid_stream(void *arg)
{
	struct kid_args *k = arg;
	ipcx_sock_close(k->theirs);
	ipcx_region *r[4];
	for (int i = 0; i < 4; i++)
		if (ipcx_region_create_anon(&r[i], IPCX_KIND_RAW, (N_MSGS / 4) * SLOT, NULL))
			return 10;
	for (uint32_t i = 0; i < N_MSGS; i++) {
		size_t off = (i / 4) * SLOT;
		memcpy((char *)ipcx_region_data(r[i % 4]) + off, &i, sizeof i);
		if (ipcx_sock_send_region_ref(k->mine, r[i % 4], off, SLOT, &i, sizeof i, NULL))
			return 11;
	}
	for (int i = 0; i < 4; i++)
		ipcx_region_close(r[i]);
	ipcx_sock_close(k->mine);
	return 0;
}

/* A child running fn as the sender; *s is our end. */
static pid_t spawn_sender(int (*fn)(void *), ipcx_sock **s)
{
	struct kid_args k;
	assert_int_equal(ipcx_sock_pair(&k.theirs, &k.mine, NULL), 0);
	pid_t kid = t_spawn(fn, &k);
	assert_true(kid > 0);
	ipcx_sock_close(k.mine);
	*s = k.theirs;
	return kid;
}

static void test_processes_fd_flat(void **st)
{
	(void)st;
	int fds0 = t_count_fds();
	ipcx_sock *s;
	pid_t kid = spawn_sender(kid_stream, &s);
	int at100 = -1;
	ipcx_wait w = { .mode = IPCX_WAIT_BLOCK, .timeout_ns = 10000000000 };
	for (uint32_t i = 0; i < N_MSGS; i++) {
		ipcx_sock_view v;
		uint32_t tag = 0;
		assert_int_equal(ipcx_sock_recv_region_ref(s, &v, IPCX_KIND_RAW, &tag, sizeof tag, &w),
				 sizeof tag);
		assert_int_equal(tag, i);
		assert_int_equal(v.region_id, i % 4 + 1);
		assert_int_equal(v.len, SLOT);
		uint32_t seen;
		memcpy(&seen, v.data, sizeof seen);
		assert_int_equal(seen, i);
		if (i == 100)
			at100 = t_count_fds();
	}
	/* Four regions mapped, and not one descriptor more over 10^4 messages. */
	assert_int_equal(at100, fds0 + sock_fds(s) + 4);
	assert_int_equal(t_count_fds(), at100);
	assert_int_equal(t_wait(kid), 0);
	ipcx_sock_view v;
	assert_int_equal(ipcx_sock_recv_region_ref(s, &v, IPCX_KIND_ANY, NULL, 0, &w), -EPIPE);
	ipcx_sock_close(s);
	assert_int_equal(t_count_fds(), fds0);
}

/* The sender closes its region and exits before the receiver has even
 * received: the bytes stay readable (the memfd lives while mapped). */
static int kid_close_early(void *arg)
{
	struct kid_args *k = arg;
	ipcx_sock_close(k->theirs);
	ipcx_region *r;
	if (ipcx_region_create_anon(&r, IPCX_KIND_RAW, 1 << 20, NULL))
		return 10;
	memset(ipcx_region_data(r), 0xc3, 1 << 20);
	for (int i = 0; i < 3; i++)
		if (ipcx_sock_send_region_ref(k->mine, r, (size_t)i << 18, 1 << 18, NULL, 0, NULL))
			return 11;
	ipcx_region_close(r);
	ipcx_sock_close(k->mine);
	return 0;
}

static void test_sender_closes_first(void **st)
{
	(void)st;
	int fds0 = t_count_fds();
	ipcx_sock *s;
	pid_t kid = spawn_sender(kid_close_early, &s);
	assert_int_equal(t_wait(kid), 0);
	ipcx_sock_view v[3];
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ipcx_sock_recv_region_ref(s, &v[i], IPCX_KIND_RAW, NULL, 0,
							   NULL),
				 0);
		assert_int_equal(v[i].offset, (size_t)i << 18);
	}
	/* Every view still readable, after the next receives and the peer's end. */
	for (int i = 0; i < 3; i++) {
		const unsigned char *d = v[i].data;
		assert_int_equal(d[0], 0xc3);
		assert_int_equal(d[v[i].len - 1], 0xc3);
	}
	assert_int_equal(ipcx_sock_recv_region_ref(s, &v[0], IPCX_KIND_ANY, NULL, 0, NULL),
			 -EPIPE);
	ipcx_sock_close(s);
	assert_int_equal(t_count_fds(), fds0);
}

int main(void)
{
	t_watchdog(50);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fd_travels_once),	  cmocka_unit_test(test_views),
		cmocka_unit_test(test_hostile_peer),	  cmocka_unit_test(test_cache_limit),
		cmocka_unit_test(test_processes_fd_flat), cmocka_unit_test(test_sender_closes_first),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
