/* Signals every few microseconds during blocking calls (socket send, recv,
 * accept, connect; pipe send, recv; FIFO open, read, write): no call fails
 * spuriously (EINTR is never an answer), nothing is lost or torn.
 * ipcx-test-timeout: 60
 * ipcx-test-serial */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

#define ROUNDS 400
#define SMALL 1000
#define LARGE (300u * 1024) /* several pipe-fulls: partial writes and waits */

static volatile sig_atomic_t hits;
static const ipcx_wait ten_s = { .mode = IPCX_WAIT_BLOCK, .timeout_ns = 10000000000 };

static void on_usr1(int sig)
{
	(void)sig;
	hits++;
}

struct targets {
	pid_t pid[2];
};

static int killer(void *arg)
{
	struct targets *t = arg;
	for (unsigned i = 0;; i++) {
		if (kill(t->pid[i & 1], SIGUSR1) < 0)
			return 0;
		uint64_t until = t_now_ns() + 5000;
		while (t_now_ns() < until)
			;
	}
}

/* Sleep to an absolute time: a relative nanosleep restarted with its
 * remainder can gain the timer slack on every interruption and, under a
 * storm this dense, never finish. */
static void sleep_abs_ms(unsigned ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

struct echo_arg {
	ipcx_sock *s;
	ipcx_pipe *p;
	const char *fifo;
	const char *endpoint;
};

static int echo(void *arg)
{
	struct echo_arg *e = arg;
	char *buf = malloc(LARGE);
	for (int i = 0; i < ROUNDS; i++) {
		ssize_t n = ipcx_sock_recv(e->s, buf, SMALL, &ten_s);
		if (n != SMALL || ipcx_sock_send(e->s, buf, (size_t)n, &ten_s))
			return 10;
		n = ipcx_pipe_recv(e->p, buf, LARGE, &ten_s);
		if (n != (ssize_t)LARGE || ipcx_pipe_send(e->p, buf, (size_t)n, &ten_s))
			return 11;
	}
	/* The FIFO: open for reading late, while the parent waits to write. */
	sleep_abs_ms(50);
	int fd = ipcx_fifo_open(e->fifo, IPCX_FIFO_READ, NULL);
	if (fd < 0)
		return 12;
	char c;
	if (ipcx_pipe_read(fd, &c, 1, &ten_s) != 1 || c != 'f')
		return 13;
	close(fd);
	/* Connect late, while the parent is blocked in accept. */
	sleep_abs_ms(50);
	ipcx_sock *s;
	if (ipcx_connect(&s, e->endpoint, NULL, &ten_s) || ipcx_sock_send(s, "c", 1, &ten_s))
		return 14;
	ipcx_sock_close(s);
	return 0;
}

int main(void)
{
	t_watchdog(55);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1; /* no SA_RESTART: every system call is interrupted */
	sigaction(SIGUSR1, &sa, NULL);

	ipcx_sock *sa_, *sb;
	ipcx_pipe *pa, *pb;
	T_CHECK_RC(ipcx_sock_pair(&sa_, &sb, NULL), 0);
	T_CHECK_RC(ipcx_pipe_duplex(&pa, &pb, NULL), 0);
	char fifo[96];
	snprintf(fifo, sizeof fifo, "/tmp/%s", t_name("storm"));
	T_CHECK_RC(ipcx_fifo_create(fifo, 0), 0);
	char dir[64];
	snprintf(dir, sizeof dir, "/tmp/ipcx-storm-%d", (int)getpid());
	T_CHECK(mkdir(dir, 0700) == 0);
	setenv("XDG_RUNTIME_DIR", dir, 1);
	ipcx_listener *l;
	T_CHECK_RC(ipcx_listen(&l, "storm", NULL), 0);
	struct echo_arg ea = { sb, pb, fifo, "storm" };
	pid_t echoer = t_spawn(echo, &ea);
	ipcx_sock_close(sb);
	ipcx_pipe_close(pb);
	struct targets t = { { getpid(), echoer } };
	pid_t storm = t_spawn(killer, &t);

	char *out = malloc(LARGE), *in = malloc(LARGE);
	for (int i = 0; i < ROUNDS; i++) {
		memset(out, (char)i, LARGE);
		T_CHECK_RC(ipcx_sock_send(sa_, out, SMALL, &ten_s), 0);
		T_CHECK_RC(ipcx_sock_recv(sa_, in, SMALL, &ten_s), SMALL);
		T_CHECK(memcmp(in, out, SMALL) == 0);
		T_CHECK_RC(ipcx_pipe_send(pa, out, LARGE, &ten_s), 0);
		T_CHECK_RC(ipcx_pipe_recv(pa, in, LARGE, &ten_s), LARGE);
		T_CHECK(memcmp(in, out, LARGE) == 0);
	}
	int w = ipcx_fifo_open(fifo, IPCX_FIFO_WRITE, &ten_s);
	T_CHECK(w >= 0);
	T_CHECK_RC(ipcx_pipe_write(w, "f", 1, &ten_s), 1);
	close(w);
	ipcx_sock *acc;
	T_CHECK_RC(ipcx_accept(l, &acc, &ten_s), 0);
	T_CHECK_RC(ipcx_sock_recv(acc, in, 1, &ten_s), 1);
	ipcx_sock_close(acc);
	ipcx_listener_close(l);
	char sub[96];
	snprintf(sub, sizeof sub, "%s/ipcx", dir);
	rmdir(sub);
	rmdir(dir);
	T_CHECK_RC(t_wait(echoer), 0);
	kill(storm, SIGKILL);
	t_wait(storm);
	fprintf(stderr, "signals received during the run: %d\n", (int)hits);
	T_CHECK(hits > 50); /* the storm really happened */
	unlink(fifo);
	free(out);
	free(in);
	ipcx_sock_close(sa_);
	ipcx_pipe_close(pa);
	return T_PASS;
}
