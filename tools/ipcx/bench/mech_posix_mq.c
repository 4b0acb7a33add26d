/*
 * posix-mq: one POSIX message queue per direction (on Linux an mqd_t is a
 * file descriptor, so the fd plumbing of fdmech serves).  Each queue is
 * created exclusively (O_EXCL, 0600) under a unique name and unlinked as soon
 * as it is open: the inherited descriptors keep it alive, and nothing is left
 * in /dev/mqueue even if the bench is killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "fdmech.h"

/* Open one queue of `depth` messages of c->size bytes; a queue the user's
 * RLIMIT_MSGQUEUE cannot hold (EMFILE) is retried with half the depth. */
static int mq_open_dir(const struct bench_case *c, int d, int fd[2], char *why, size_t whylen)
{
	static unsigned serial;
	char name[64];
	struct mq_attr attr = { .mq_msgsize = (long)c->size,
				.mq_maxmsg = fdmech_sysctl("/proc/sys/fs/mqueue/msg_max", 10) };
	mqd_t q;
	for (;;) {
		snprintf(name, sizeof name, "/ipcx.bench-%d-%u-%d", (int)getpid(), serial++, d);
		q = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &attr);
		if (q != (mqd_t)-1 || errno != EMFILE || attr.mq_maxmsg == 1)
			break;
		attr.mq_maxmsg /= 2;
	}
	if (q == (mqd_t)-1) {
		int e = errno;
		long max = fdmech_sysctl("/proc/sys/fs/mqueue/msgsize_max", 8192);
		struct rlimit rl = { 0, 0 };
		getrlimit(RLIMIT_MSGQUEUE, &rl);
		if (e == EINVAL && c->size > (size_t)max)
			return fdmech_skip(why, whylen,
					   "EINVAL: %zu > msgsize_max %ld (raise "
					   "/proc/sys/fs/mqueue/msgsize_max as root)",
					   c->size, max);
		if (e == EMFILE)
			return fdmech_skip(why, whylen,
					   "EMFILE: a queue of one %zu-byte message exceeds "
					   "what is left of RLIMIT_MSGQUEUE %llu bytes (ulimit -q)",
					   c->size, (unsigned long long)rl.rlim_cur);
		return fdmech_skip(why, whylen, "mq_open: %s", strerror(e));
	}
	mq_unlink(name);
	fd[0] = fd[1] = (int)q;
	return 0;
}

static int mq_setup(const struct bench_case *c, void **state, char *why, size_t whylen)
{
	return fdmech_setup(c, state, 0, mq_open_dir, why, whylen);
}

static int mq_send_msg(void *state, struct bench_proc *p, uint64_t seq)
{
	struct fdmech *m = state;
	bench_stamp(p->local, m->size, p->index, seq);
	while (mq_send(fdmech_wfd(m, p), p->local, m->size, 0))
		if (errno != EINTR)
			return -errno;
	return 0;
}

static int mq_recv_msg(void *state, struct bench_proc *p, unsigned *producer, uint64_t *seq)
{
	struct fdmech *m = state;
	ssize_t n;
	while ((n = mq_receive(fdmech_rfd(m, p), p->local, m->size, NULL)) < 0)
		if (errno != EINTR)
			return -errno;
	if ((size_t)n != m->size)
		return -EBADMSG;
	return bench_check(p->local, m->size, producer, seq);
}

static const struct bench_mech mech_posix_mq = {
	.name = "posix-mq",
	.desc = "POSIX message queue per direction (mq_send/mq_receive)",
	.order = 104,
	.modes = BENCH_PINGPONG | BENCH_STREAM,
	.max_producers = 16,
	.max_consumers = 16,
	.in_default = 1,
	.setup = mq_setup,
	.send = mq_send_msg,
	.recv = mq_recv_msg,
	FDMECH_LIFECYCLE,
	.note = "queue depth fs.mqueue.msg_max, halved while RLIMIT_MSGQUEUE refuses it",
};
BENCH_MECH(mech_posix_mq)
