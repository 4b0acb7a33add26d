/*
 * Fairness under a flooding sender, with real processes: a flooder sends
 * until the mailbox refuses it; then a quiet sender, in another process,
 * must still find room: half the depth with the fair share, none without.
 * Then the same with blocking sends: the flooder blocks at its share while
 * the quiet sender's messages all go through, and a receiver that drains
 * the mailbox unblocks the flooder.
 * ipcx-test-timeout: 60
 */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

#define DEPTH 32

static const char *name;
static int fd_flood[2];

static int flooder(void *arg)
{
	int blocking = *(int *)arg;
	ipcx_mq *mq;
	if (ipcx_mq_open(&mq, name, NULL))
		return 2;
	ipcx_wait w = { blocking ? IPCX_WAIT_BLOCK : IPCX_WAIT_NONBLOCK, 0, -1 };
	int n = 0;
	char c = 'F';
	for (;;) {
		int rc = ipcx_mq_send(mq, "flood", 5, 9, &w);
		if (rc)
			break; /* non-blocking: refused; then report how many went in */
		if (++n == DEPTH / 2 && blocking && write(fd_flood[1], &c, 1) != 1)
			return 3; /* at its share: tell the parent, then block on the next */
	}
	if (write(fd_flood[1], &n, sizeof n) != sizeof n)
		return 3;
	ipcx_mq_close(mq);
	return 0;
}

static int run(int fair, int blocking)
{
	name = t_name("ff");
	ipcx_mq_opts o = { .depth = DEPTH, .max_msg = 16,
			   .full = blocking ? IPCX_MQ_FULL_BLOCK : IPCX_MQ_FULL_FAIL,
			   .fair = (uint32_t)fair };
	ipcx_mq *mq;
	T_CHECK_RC(ipcx_mq_create(&mq, name, &o), 0);
	/* The quiet sender attaches first, so the flooder's share is known. */
	ipcx_mq *quiet;
	T_CHECK_RC(ipcx_mq_open(&quiet, name, NULL), 0);
	ipcx_wait nb = { IPCX_WAIT_NONBLOCK, 0, -1 };
	T_CHECK_RC(ipcx_mq_send(quiet, "hello", 5, 1, &nb), 0);
	char buf[16];
	T_CHECK_RC(ipcx_mq_recv(mq, buf, sizeof buf, NULL, &nb), 5);
	T_CHECK_RC(pipe(fd_flood), 0);
	pid_t pid = t_spawn(flooder, &blocking);
	int flooded = -1;
	if (blocking) {
		char c;
		T_CHECK(read(fd_flood[0], &c, 1) == 1); /* the flooder is at its share */
		ipcx_mq_attr w;
		do { /* until it is held back on the next (the watchdog bounds this) */
			t_sleep_ms(1);
			T_CHECK_RC(ipcx_mq_getattr(mq, &w), 0);
		} while (w.fair_waits == 0);
	} else {
		T_CHECK(read(fd_flood[0], &flooded, sizeof flooded) == sizeof flooded);
	}
	/* The quiet sender, in this process: 2 senders attached (3 handles). */
	int got = 0;
	while (got < DEPTH && ipcx_mq_send(quiet, "quiet", 5, 1, &nb) == 0)
		got++;
	ipcx_mq_attr a;
	T_CHECK_RC(ipcx_mq_getattr(mq, &a), 0);
	if (blocking) {
		T_CHECK(a.fair_waits > 0);
		T_CHECK(got == DEPTH / 2);
		/* Drain: the flooder is released and finishes when killed. */
		int drained = 0;
		while (ipcx_mq_recv(mq, buf, sizeof buf, NULL, &nb) >= 0)
			drained++;
		T_CHECK(drained >= DEPTH);
		kill(pid, SIGKILL);
		T_CHECK(t_wait(pid) == 128 + SIGKILL);
	} else {
		T_CHECK(t_wait(pid) == 0);
		if (fair) {
			T_CHECK(flooded == DEPTH / 2);
			T_CHECK(got == DEPTH / 2);
		} else {
			T_CHECK(flooded == DEPTH);
			T_CHECK(got == 0);
		}
	}
	fprintf(stderr, "fair %d, %s: flooder %d queued, quiet sender %d\n", fair,
		blocking ? "blocking" : "failing", blocking ? DEPTH / 2 : flooded, got);
	close(fd_flood[0]);
	close(fd_flood[1]);
	ipcx_mq_close(quiet);
	ipcx_mq_close(mq);
	T_CHECK_RC(ipcx_mq_unlink(name), 0);
	return 0;
}

int main(void)
{
	t_watchdog(50);
	int fds = t_count_fds();
	run(0, 0);
	run(1, 0);
	run(1, 1);
	T_CHECK(t_count_fds() == fds);
	return t_check_no_leaks() ? T_FAIL : T_PASS;
}
