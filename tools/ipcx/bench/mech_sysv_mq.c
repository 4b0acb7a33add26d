/*
 * sysv-mq: one System V message queue per direction (msgget IPC_PRIVATE,
 * 0600), removed with IPC_RMID in teardown.  A message larger than
 * kernel.msgmax is refused by msgsnd (EINVAL, whatever the privilege), so
 * such a case is skipped with the limit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/msg.h>

#include "fdmech.h"

struct sysv_mq {
	int id[2];
	size_t size;
};

struct sysv_msg {
	long mtype; /* always 1: every message is of one kind */
	char data[];
};

static void sysv_teardown(void *state)
{
	struct sysv_mq *s = state;
	if (!s)
		return;
	for (int d = 0; d < 2; d++)
		if (s->id[d] >= 0)
			msgctl(s->id[d], IPC_RMID, NULL);
	free(s);
}

static int sysv_setup(const struct bench_case *c, void **state, char *why, size_t whylen)
{
	*state = NULL;
	long msgmax = fdmech_sysctl("/proc/sys/kernel/msgmax", 8192);
	long msgmnb = fdmech_sysctl("/proc/sys/kernel/msgmnb", 16384);
	if (c->size > (size_t)msgmax)
		return fdmech_skip(why, whylen,
				   "EINVAL: %zu > msgmax %ld "
				   "(raise /proc/sys/kernel/msgmax as root)",
				   c->size, msgmax);
	/* msgsnd would wait forever for room that never comes. */
	if (c->size > (size_t)msgmnb)
		return fdmech_skip(why, whylen,
				   "%zu > msgmnb %ld: the message never fits a queue "
				   "(raise /proc/sys/kernel/msgmnb as root)",
				   c->size, msgmnb);
	struct sysv_mq *s = malloc(sizeof *s);
	if (!s)
		return -ENOMEM;
	*s = (struct sysv_mq){ .id = { -1, -1 }, .size = c->size };
	for (int d = 0; d < 1 + fdmech_two_way(c); d++) {
		s->id[d] = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
		if (s->id[d] < 0) {
			int rc = fdmech_skip(why, whylen, "msgget: %m");
			sysv_teardown(s);
			return rc;
		}
	}
	*state = s;
	return 0;
}

static int sysv_attach(void *state, struct bench_proc *p)
{
	struct sysv_mq *s = state;
	struct sysv_msg *m = calloc(1, sizeof *m + s->size);
	if (!m)
		return -ENOMEM;
	m->mtype = 1;
	p->local = m;
	return 0;
}

static int sysv_send(void *state, struct bench_proc *p, uint64_t seq)
{
	struct sysv_mq *s = state;
	struct sysv_msg *m = p->local;
	bench_stamp(m->data, s->size, p->index, seq);
	while (msgsnd(s->id[p->role], m, s->size, 0))
		if (errno != EINTR)
			return -errno;
	return 0;
}

static int sysv_recv(void *state, struct bench_proc *p, unsigned *producer, uint64_t *seq)
{
	struct sysv_mq *s = state;
	struct sysv_msg *m = p->local;
	ssize_t n;
	/* Without MSG_NOERROR a longer message fails with E2BIG: a bad message. */
	while ((n = msgrcv(s->id[!p->role], m, s->size, 0, 0)) < 0)
		if (errno != EINTR)
			return errno == E2BIG ? -EBADMSG : -errno;
	if ((size_t)n != s->size)
		return -EBADMSG;
	return bench_check(m->data, s->size, producer, seq);
}

static const struct bench_mech mech_sysv_mq = {
	.name = "sysv-mq",
	.desc = "System V message queue per direction (msgsnd/msgrcv)",
	.order = 105,
	.modes = BENCH_PINGPONG | BENCH_STREAM,
	.max_producers = 16,
	.max_consumers = 16,
	.in_default = 1,
	.setup = sysv_setup,
	.attach = sysv_attach,
	.send = sysv_send,
	.recv = sysv_recv,
	.detach = fdmech_detach,
	.teardown = sysv_teardown,
};
BENCH_MECH(mech_sysv_mq)
