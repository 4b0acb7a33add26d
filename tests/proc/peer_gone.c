/* The peer closes or is killed in the middle of a send: the sender gets
 * -EPIPE and lives on (SIGPIPE left at its default, which would kill it),
 * for sockets, the framed pipe channel, raw pipe writes and vmsplice.
 * ipcx-test-timeout: 60 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

#define ROUNDS 20
#define BIG (1u << 20)

static const ipcx_wait five_s = { .mode = IPCX_WAIT_BLOCK, .timeout_ns = 5000000000 };

/* Child: take a few messages, then die as told. */
struct victim {
	ipcx_sock *s;
	ipcx_pipe *p;
	int fd;
	int round;
};

static int victim(void *arg)
{
	struct victim *v = arg;
	char *buf = malloc(BIG);
	for (int i = 0; i < 3; i++) {
		if (v->s)
			ipcx_sock_recv(v->s, buf, BIG, &five_s);
		else if (v->p)
			ipcx_pipe_recv(v->p, buf, BIG, &five_s);
		else
			ipcx_pipe_read(v->fd, buf, BIG, &five_s);
	}
	if (v->round % 2)
		raise(SIGKILL); /* killed mid-stream */
	_exit(0); /* or a clean close with messages still unread */
}

/* Send until the peer's end is gone; returns the first error. */
static int send_until_error(int (*send_one)(void *ctx, const char *buf), void *ctx)
{
	static char buf[BIG];
	for (int i = 0; i < 100000; i++) {
		int rc = send_one(ctx, buf);
		if (rc)
			return rc;
	}
	return 0;
}

static int sock_send_one(void *ctx, const char *buf)
{
	return ipcx_sock_send(ctx, buf, 200000, &five_s);
}

static int pipe_send_one(void *ctx, const char *buf)
{
	return ipcx_pipe_send(ctx, buf, BIG, &five_s);
}

static int raw_write_one(void *ctx, const char *buf)
{
	ssize_t n = ipcx_pipe_write(*(int *)ctx, buf, BIG, &five_s);
	return n < 0 ? (int)n : 0;
}

static int zc_send_one(void *ctx, const char *buf)
{
	(void)buf;
	void *p;
	int rc = ipcx_pipe_zc_reserve(ctx, 65536, &p, &five_s);
	if (!rc) {
		memset(p, 1, 65536);
		rc = ipcx_pipe_zc_commit(ctx, 65536, &five_s);
	}
	return rc;
}

int main(void)
{
	t_watchdog(55);
	signal(SIGPIPE, SIG_DFL);
	int fds0 = t_count_fds();
	for (int round = 0; round < ROUNDS; round++) {
		/* socket */
		ipcx_sock *a, *b;
		T_CHECK_RC(ipcx_sock_pair(&a, &b, NULL), 0);
		struct victim v = { .s = b, .round = round };
		pid_t kid = t_spawn(victim, &v);
		ipcx_sock_close(b);
		T_CHECK_RC(send_until_error(sock_send_one, a), -EPIPE);
		ipcx_sock_close(a);
		t_wait(kid);

		/* framed pipe channel */
		ipcx_pipe *pa, *pb;
		T_CHECK_RC(ipcx_pipe_duplex(&pa, &pb, NULL), 0);
		struct victim vp = { .p = pb, .round = round };
		kid = t_spawn(victim, &vp);
		ipcx_pipe_close(pb);
		T_CHECK_RC(send_until_error(pipe_send_one, pa), -EPIPE);
		ipcx_pipe_close(pa);
		t_wait(kid);

		/* raw pipe write, and vmsplice */
		for (int zc = 0; zc < 2; zc++) {
			int p[2];
			T_CHECK_RC(ipcx_pipe_create(p, IPCX_PIPE_NONBLOCK), 0);
			struct victim vr = { .fd = p[0], .round = round };
			kid = t_spawn(victim, &vr);
			close(p[0]);
			if (zc) {
				ipcx_pipe_zc *z;
				T_CHECK_RC(ipcx_pipe_zc_open(&z, p[1], 0, NULL), 0);
				T_CHECK_RC(send_until_error(zc_send_one, z), -EPIPE);
				ipcx_pipe_zc_close(z);
			} else {
				T_CHECK_RC(send_until_error(raw_write_one, &p[1]), -EPIPE);
			}
			close(p[1]);
			t_wait(kid);
		}
	}
	/* Still here, with nothing pending that would kill us later. */
	sigset_t pend;
	sigpending(&pend);
	T_CHECK(!sigismember(&pend, SIGPIPE));
	T_CHECK(t_count_fds() == fds0);
	return T_PASS;
}
