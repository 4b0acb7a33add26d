/* fd passing under a low RLIMIT_NOFILE: a clear error, and not one fd
 * leaked (counted in /proc/self/fd before and after).
 * ipcx-test-timeout: 30 */
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

/* Allow exactly `room` more descriptors: new ones take the lowest free
 * numbers, which must stay below the limit. */
static void limit_to(int room)
{
	int fd = 0;
	for (int free_seen = 0;; fd++)
		if (fcntl(fd, F_GETFD) < 0 && free_seen++ == room)
			break;
	struct rlimit r;
	getrlimit(RLIMIT_NOFILE, &r);
	r.rlim_cur = (rlim_t)fd; /* the hard limit stays, so we can go back */
	T_CHECK(setrlimit(RLIMIT_NOFILE, &r) == 0);
}

int main(void)
{
	t_watchdog(25);
	struct rlimit orig;
	getrlimit(RLIMIT_NOFILE, &orig);
	ipcx_sock *a, *b;
	T_CHECK_RC(ipcx_sock_pair(&a, &b, NULL), 0);
	int p[2];
	T_CHECK(pipe2(p, O_CLOEXEC) == 0);
	int eight[8];
	for (int i = 0; i < 8; i++)
		eight[i] = p[i % 2];
	ipcx_region *r;
	T_CHECK_RC(ipcx_region_create_anon(&r, IPCX_KIND_RAW, 4096, NULL), 0);
	ipcx_region *r2, *r3; /* for regions by reference */
	T_CHECK_RC(ipcx_region_create_anon(&r2, IPCX_KIND_RAW, 4096, NULL), 0);
	T_CHECK_RC(ipcx_region_create_anon(&r3, IPCX_KIND_RAW, 4096, NULL), 0);
	char buf[16];
	int got[8];
	unsigned n = 0;

	/* Eight fds arrive where two fit: -EMFILE, the two installed closed. */
	limit_to(2);
	int before = t_count_fds();
	T_CHECK_RC(ipcx_sock_sendfds(a, "x", 1, eight, 8, NULL), 0);
	T_CHECK_RC(ipcx_sock_recvfds(b, buf, sizeof buf, got, 8, &n, NULL), -EMFILE);
	T_CHECK(n == 0);
	T_CHECK(t_count_fds() == before);

	/* Two fit: fine. */
	T_CHECK_RC(ipcx_sock_sendfds(a, "y", 1, eight, 2, NULL), 0);
	T_CHECK_RC(ipcx_sock_recvfds(b, buf, sizeof buf, got, 8, &n, NULL), 1);
	T_CHECK(n == 2);
	close(got[0]);
	close(got[1]);
	T_CHECK(t_count_fds() == before);

	/* A region whose fd arrives but cannot be mapped (the mapping needs a
	 * descriptor of its own): -EMFILE, nothing left open. */
	limit_to(1);
	before = t_count_fds();
	ipcx_region *in = NULL;
	T_CHECK_RC(ipcx_sock_send_region(a, r, NULL, 0, NULL), 0);
	T_CHECK_RC(ipcx_sock_recv_region(b, &in, IPCX_KIND_RAW, NULL, 0, NULL), -EMFILE);
	T_CHECK(in == NULL);
	T_CHECK(t_count_fds() == before);

	/* No room at all: the fd is dropped by the kernel, we report it.
	 * (Counting needs a descriptor: count with the limit restored.) */
	limit_to(0);
	T_CHECK_RC(ipcx_sock_send_region(a, r, NULL, 0, NULL), 0);
	T_CHECK_RC(ipcx_sock_recv_region(b, &in, IPCX_KIND_RAW, NULL, 0, NULL), -EMFILE);
	/* A region introduced by reference where its fd cannot be installed,
	 * or installed but not mapped: -EMFILE, nothing left open, and the
	 * region stays unknown on this connection (references: -EBADMSG). */
	ipcx_sock_view v;
	limit_to(0);
	T_CHECK_RC(ipcx_sock_send_region_ref(a, r2, 0, 1, NULL, 0, NULL), 0);
	T_CHECK_RC(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_RAW, NULL, 0, NULL), -EMFILE);
	limit_to(1);
	T_CHECK_RC(ipcx_sock_send_region_ref(a, r3, 0, 1, NULL, 0, NULL), 0);
	T_CHECK_RC(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_RAW, NULL, 0, NULL), -EMFILE);
	T_CHECK_RC(ipcx_sock_send_region_ref(a, r2, 0, 1, NULL, 0, NULL), 0);
	T_CHECK_RC(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_RAW, NULL, 0, NULL), -EBADMSG);
	T_CHECK_RC(ipcx_sock_send_region_ref(a, r3, 0, 1, NULL, 0, NULL), 0);
	T_CHECK_RC(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_RAW, NULL, 0, NULL), -EBADMSG);
	/* Creating a pair needs two: -EMFILE, no half-made pair. */
	ipcx_sock *c = NULL, *d = NULL;
	limit_to(1);
	T_CHECK_RC(ipcx_sock_pair(&c, &d, NULL), -EMFILE);
	T_CHECK(c == NULL && d == NULL);
	T_CHECK(setrlimit(RLIMIT_NOFILE, &orig) == 0);
	T_CHECK(t_count_fds() == before);
	/* The connection still works after all that. */
	T_CHECK_RC(ipcx_sock_send(a, "ok", 2, NULL), 0);
	T_CHECK_RC(ipcx_sock_recv(b, buf, sizeof buf, NULL), 2);
	/* A third region, introduced with room to spare, is mapped as usual. */
	T_CHECK_RC(ipcx_sock_send_region_ref(a, r, 0, 1, NULL, 0, NULL), 0);
	T_CHECK_RC(ipcx_sock_recv_region_ref(b, &v, IPCX_KIND_RAW, NULL, 0, NULL), 0);
	T_CHECK(v.region_id == 3);
	T_CHECK(t_count_fds() == before + 1);
	ipcx_region_close(r);
	ipcx_region_close(r2);
	ipcx_region_close(r3);
	ipcx_sock_close(a);
	ipcx_sock_close(b);
	close(p[0]);
	close(p[1]);
	return T_PASS;
}
