/*
 * ipcx-pipe: framed messages over the ipcx duplex pipe channel (a 4-byte
 * length before each message; two pipes, one per direction).
 * ipcx-pipe-splice: the sender stamps the message in place in its
 * ipcx_pipe_zc buffer and vmsplices it (no copy into the pipe); the
 * receiver read()s it (one copy).  Fixed-size records, no framing.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ipcx/pipe.h>

#include "bench.h"

/* ---- ipcx-pipe ---------------------------------------------------------- */

struct pipe_state {
	ipcx_pipe *end[2];
	ipcx_pipe *me;
	uint8_t *buf;
	int sig_ignored;      /* ipcx-pipe-sigign */
	struct sigaction old; /* the parent's SIGPIPE action, restored at teardown */
};

static int pipe_setup_flags(void **state, uint32_t flags)
{
	struct pipe_state *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	if (flags & IPCX_PIPE_SIGPIPE_IGNORED) {
		/* For the children (they inherit it) and for the check at open. */
		struct sigaction ign = { .sa_handler = SIG_IGN };
		sigaction(SIGPIPE, &ign, &s->old);
		s->sig_ignored = 1;
	}
	ipcx_pipe_opts o = { .flags = flags };
	int rc = ipcx_pipe_duplex(&s->end[0], &s->end[1], &o);
	if (rc) {
		if (s->sig_ignored)
			sigaction(SIGPIPE, &s->old, NULL);
		free(s);
		return rc;
	}
	*state = s;
	return 0;
}

static int pipe_setup(const struct bench_case *c, void **state, char *why, size_t whylen)
{
	(void)c;
	(void)why;
	(void)whylen;
	return pipe_setup_flags(state, 0);
}

static int pipe_setup_sigign(const struct bench_case *c, void **state, char *why, size_t whylen)
{
	(void)c;
	(void)why;
	(void)whylen;
	return pipe_setup_flags(state, IPCX_PIPE_SIGPIPE_IGNORED);
}

static int pipe_attach(void *state, struct bench_proc *p)
{
	struct pipe_state *s = state;
	int me = p->role == BENCH_A ? 0 : 1;
	s->me = s->end[me];
	ipcx_pipe_close(s->end[1 - me]);
	s->end[1 - me] = NULL;
	s->buf = calloc(1, p->c->size);
	return s->buf ? 0 : -ENOMEM;
}

static int pipe_send(void *state, struct bench_proc *p, uint64_t seq)
{
	struct pipe_state *s = state;
	bench_stamp(s->buf, p->c->size, p->index, seq);
	return ipcx_pipe_send(s->me, s->buf, p->c->size, NULL);
}

static int pipe_recv(void *state, struct bench_proc *p, unsigned *producer, uint64_t *seq)
{
	struct pipe_state *s = state;
	ssize_t n = ipcx_pipe_recv(s->me, s->buf, p->c->size, NULL);
	if (n < 0)
		return (int)n;
	return (size_t)n == p->c->size ? bench_check(s->buf, (size_t)n, producer, seq) : -EBADMSG;
}

static void pipe_detach(void *state, struct bench_proc *p)
{
	(void)p;
	struct pipe_state *s = state;
	free(s->buf);
}

static void pipe_teardown(void *state)
{
	struct pipe_state *s = state;
	ipcx_pipe_close(s->end[0]);
	ipcx_pipe_close(s->end[1]);
	if (s->sig_ignored)
		sigaction(SIGPIPE, &s->old, NULL);
	free(s);
}

static const struct bench_mech mech_ipcx_pipe = {
	.name = "ipcx-pipe",
	.desc = "ipcx framed messages over two pipes (duplex channel, default pipe size)",
	.order = 50,
	.modes = BENCH_PINGPONG | BENCH_STREAM,
	.in_default = 1,
	.setup = pipe_setup,
	.attach = pipe_attach,
	.send = pipe_send,
	.recv = pipe_recv,
	.detach = pipe_detach,
	.teardown = pipe_teardown,
};
BENCH_MECH(mech_ipcx_pipe)

static const struct bench_mech mech_ipcx_pipe_sigign = {
	.name = "ipcx-pipe-sigign",
	.desc = "ipcx-pipe in a process that ignores SIGPIPE (IPCX_PIPE_SIGPIPE_IGNORED)",
	.order = 51,
	.modes = BENCH_PINGPONG | BENCH_STREAM,
	.setup = pipe_setup_sigign,
	.attach = pipe_attach,
	.send = pipe_send,
	.recv = pipe_recv,
	.detach = pipe_detach,
	.teardown = pipe_teardown,
	.note = "SIGPIPE ignored by the processes, so writes skip the two sigprocmask calls",
};
BENCH_MECH(mech_ipcx_pipe_sigign)

/* ---- ipcx-pipe-splice --------------------------------------------------- */

struct splice_state {
	int ab[2], ba[2]; /* A->B and B->A pipes */
	int rfd, wfd;
	ipcx_pipe_zc *zc;
	uint8_t *buf;
	size_t pipe_size;
};

/* A pipe as large as the message (within what the system lets us have). */
static size_t grow_pipe(int fd, size_t want)
{
	ipcx_pipe_limits lim;
	if (ipcx_pipe_limits_get(&lim) == 0 && !lim.privileged && want > lim.max_size)
		want = lim.max_size;
	ssize_t got = ipcx_pipe_set_capacity(fd, want, NULL);
	if (got < 0)
		got = ipcx_pipe_capacity(fd);
	return got > 0 ? (size_t)got : 0;
}

static int splice_setup(const struct bench_case *c, void **state, char *why, size_t whylen)
{
	(void)why;
	(void)whylen;
	struct splice_state *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	int rc = ipcx_pipe_create(s->ab, 0);
	if (!rc && (rc = ipcx_pipe_create(s->ba, 0))) {
		close(s->ab[0]);
		close(s->ab[1]);
	}
	if (rc) {
		free(s);
		return rc;
	}
	size_t want = c->size < 65536 ? 65536 : c->size;
	s->pipe_size = grow_pipe(s->ab[1], want);
	grow_pipe(s->ba[1], want);
	*state = s;
	return 0;
}

static int splice_attach(void *state, struct bench_proc *p)
{
	struct splice_state *s = state;
	int a = p->role == BENCH_A;
	s->rfd = a ? s->ba[0] : s->ab[0];
	s->wfd = a ? s->ab[1] : s->ba[1];
	close(a ? s->ab[0] : s->ba[0]);
	close(a ? s->ba[1] : s->ab[1]);
	size_t bufsz = 2 * p->c->size;
	int rc = ipcx_pipe_zc_open(&s->zc, s->wfd, bufsz < 2 * s->pipe_size ? 0 : bufsz, NULL);
	if (!rc && !(s->buf = malloc(p->c->size)))
		rc = -ENOMEM;
	return rc;
}

static int splice_send(void *state, struct bench_proc *p, uint64_t seq)
{
	struct splice_state *s = state;
	void *dst;
	int rc = ipcx_pipe_zc_reserve(s->zc, p->c->size, &dst, NULL);
	if (rc)
		return rc;
	bench_stamp(dst, p->c->size, p->index, seq); /* in place: no copy */
	return ipcx_pipe_zc_commit(s->zc, p->c->size, NULL);
}

static int splice_recv(void *state, struct bench_proc *p, unsigned *producer, uint64_t *seq)
{
	struct splice_state *s = state;
	size_t n = p->c->size, got = 0;
	while (got < n) {
		ssize_t r = ipcx_pipe_read(s->rfd, s->buf + got, n - got, NULL);
		if (r <= 0)
			return r == 0 ? -EPIPE : (int)r;
		got += (size_t)r;
	}
	return bench_check(s->buf, n, producer, seq);
}

static void splice_detach(void *state, struct bench_proc *p)
{
	(void)p;
	struct splice_state *s = state;
	ipcx_pipe_zc_close(s->zc);
	close(s->rfd);
	close(s->wfd);
	free(s->buf);
}

static void splice_teardown(void *state)
{
	struct splice_state *s = state;
	for (int i = 0; i < 2; i++) {
		close(s->ab[i]);
		close(s->ba[i]);
	}
	free(s);
}

static const struct bench_mech mech_ipcx_pipe_splice = {
	.name = "ipcx-pipe-splice",
	.desc = "ipcx zero-copy pipe: vmsplice from the sender's pages, read() by the receiver",
	.order = 52,
	.modes = BENCH_PINGPONG | BENCH_STREAM,
	.in_default = 1,
	.setup = splice_setup,
	.attach = splice_attach,
	.send = splice_send,
	.recv = splice_recv,
	.detach = splice_detach,
	.teardown = splice_teardown,
	.note = "pipe grown to the message size (at least 64 KiB, at most "
		"pipe-max-size); message stamped in place and vmspliced; receiver copies once",
};
BENCH_MECH(mech_ipcx_pipe_splice)
