/* Shared plumbing for the fd-based kernel mechanisms (see fdmech.h). */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdmech.h"

int fdmech_two_way(const struct bench_case *c)
{
	return c->mode == BENCH_PINGPONG;
}

int fdmech_setup(const struct bench_case *c, void **state, unsigned flags, fdmech_open_fn *open_dir,
		 char *why, size_t whylen)
{
	struct fdmech *m = malloc(sizeof *m);
	*state = NULL;
	if (!m)
		return -ENOMEM;
	*m = (struct fdmech){ .wr = { -1, -1 }, .rd = { -1, -1 }, .flags = flags, .size = c->size };
	int ndirs = flags & FDMECH_DUPLEX ? 1 : 1 + fdmech_two_way(c);
	for (int d = 0; d < ndirs; d++) {
		int fd[2] = { -1, -1 };
		int rc = open_dir(c, d, fd, why, whylen);
		if (rc) {
			fdmech_teardown(m);
			return rc;
		}
		m->wr[d] = fd[0];
		m->rd[d] = fd[1];
	}
	/* A full-duplex connection: B writes back at its own end. */
	if ((flags & FDMECH_DUPLEX) && fdmech_two_way(c)) {
		m->wr[1] = m->rd[0];
		m->rd[1] = m->wr[0];
	}
	*state = m;
	return 0;
}

long fdmech_sysctl(const char *path, long dflt)
{
	long v = dflt;
	FILE *f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = dflt;
		fclose(f);
	}
	return v;
}

int fdmech_skip(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return BENCH_SKIP;
}

/* Close every descriptor of m except keep0/keep1, each once (a duplex
 * connection appears in both directions), and forget the closed ones. */
static void close_except(struct fdmech *m, int keep0, int keep1)
{
	int *all[4] = { &m->wr[0], &m->rd[0], &m->wr[1], &m->rd[1] };
	for (unsigned i = 0; i < 4; i++) {
		int fd = *all[i];
		if (fd < 0 || fd == keep0 || fd == keep1)
			continue;
		close(fd);
		for (unsigned j = i; j < 4; j++)
			if (*all[j] == fd)
				*all[j] = -1;
	}
}

int fdmech_attach(void *state, struct bench_proc *p)
{
	struct fdmech *m = state;
	int w = fdmech_wfd(m, p), r = fdmech_rfd(m, p);
	/* Stream mode: A only sends, B only receives. */
	if (p->c->mode == BENCH_STREAM && p->role == BENCH_A)
		r = -1;
	else if (p->c->mode == BENCH_STREAM)
		w = -1;
	close_except(m, w, r);
	/* A pipe write to a dead reader must fail with EPIPE, not kill us; the
	 * harness already ignores SIGPIPE and this makes sure of it. */
	if (!(m->flags & FDMECH_SOCKET))
		signal(SIGPIPE, SIG_IGN);
	p->local = calloc(1, m->size ? m->size : 1);
	return p->local ? 0 : -ENOMEM;
}

static int send_full(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int fdmech_send(void *state, struct bench_proc *p, uint64_t seq)
{
	struct fdmech *m = state;
	bench_stamp(p->local, m->size, p->index, seq);
	/* A SOCK_SEQPACKET send is all or nothing, so send_full makes one call. */
	return m->flags & FDMECH_SOCKET ? send_full(fdmech_wfd(m, p), p->local, m->size)
					: bench_write_full(fdmech_wfd(m, p), p->local, m->size);
}

/* One record: MSG_TRUNC makes recv() return the record's real length, so a
 * record of the wrong size is caught rather than silently cut. */
static int recv_record(int fd, void *buf, size_t len)
{
	ssize_t n;
	while ((n = recv(fd, buf, len, MSG_TRUNC)) < 0 && errno == EINTR)
		;
	if (n < 0)
		return -errno;
	if (n == 0)
		return -EPIPE;
	return (size_t)n == len ? 0 : -EBADMSG;
}

int fdmech_recv(void *state, struct bench_proc *p, unsigned *producer, uint64_t *seq)
{
	struct fdmech *m = state;
	int rc = m->flags & FDMECH_RECORD ? recv_record(fdmech_rfd(m, p), p->local, m->size)
					  : bench_read_full(fdmech_rfd(m, p), p->local, m->size);
	return rc ? rc : bench_check(p->local, m->size, producer, seq);
}

void fdmech_detach(void *state, struct bench_proc *p)
{
	(void)state;
	free(p->local);
	p->local = NULL;
}

void fdmech_teardown(void *state)
{
	struct fdmech *m = state;
	if (!m)
		return;
	close_except(m, -1, -1);
	free(m);
}
