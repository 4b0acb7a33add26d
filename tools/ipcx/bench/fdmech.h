/*
 * Shared plumbing for the kernel mechanisms whose channel ends are file
 * descriptors (pipe, fifo, UNIX sockets, TCP, eventfd, POSIX mq).
 *
 * A bench channel has two directions: 0 is A->B (ping-pong and stream), 1 is
 * B->A (ping-pong only).  Direction d is written at wr[d] and read at rd[d].
 * A process sends in direction `role` and receives in direction `!role`.
 * setup() opens every descriptor in the parent; after fork, attach() closes
 * the ones this process does not use (so a dead peer shows as EOF/EPIPE
 * rather than a hang) and allocates the process's message buffer.
 */
#ifndef IPCX_BENCH_FDMECH_H
#define IPCX_BENCH_FDMECH_H

#include "bench.h"

enum {
	FDMECH_SOCKET = 1u << 0, /* send() with MSG_NOSIGNAL instead of write() */
	FDMECH_RECORD = 1u << 1, /* one call moves one whole message (SOCK_SEQPACKET) */
	FDMECH_DUPLEX = 1u << 2, /* one connection carries both directions */
};

struct fdmech {
	int wr[2], rd[2]; /* -1 when unused */
	unsigned flags;
	size_t size;      /* c->size */
};

/* Open the descriptors of case c and allocate the state.  Without
 * FDMECH_DUPLEX, open_dir(c, d, fd, ...) is called for each direction d the case
 * uses and returns the write end in fd[0] and the read end in fd[1] (the
 * same fd twice for a queue-like object).  With FDMECH_DUPLEX it is called
 * once for a full-duplex connection and returns A's end in fd[0] and B's in
 * fd[1].  It returns 0, -errno, or BENCH_SKIP with the reason in why; on
 * anything but 0 everything opened so far is closed and *state is NULL. */
typedef int fdmech_open_fn(const struct bench_case *c, int d, int fd[2], char *why, size_t whylen);
int fdmech_setup(const struct bench_case *c, void **state, unsigned flags, fdmech_open_fn *open_dir,
		 char *why, size_t whylen);

/* Whether the case needs the B->A direction (ping-pong). */
int fdmech_two_way(const struct bench_case *c);

/* A kernel limit: the number in the file at path (under /proc/sys), or dflt. */
long fdmech_sysctl(const char *path, long dflt);

/* The fd this process sends on / receives from. */
static inline int fdmech_wfd(const struct fdmech *m, const struct bench_proc *p)
{
	return m->wr[p->role];
}
static inline int fdmech_rfd(const struct fdmech *m, const struct bench_proc *p)
{
	return m->rd[!p->role];
}

/* Format "what: strerror" into why and return BENCH_SKIP (a case the
 * kernel refuses) -- for setup(). */
int fdmech_skip(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The bench_mech callbacks shared by every fd mechanism.  send/recv move
 * c->size stamped bytes (byte streams loop over short transfers; record
 * sockets move one record and check its length). */
int fdmech_attach(void *state, struct bench_proc *p);
int fdmech_send(void *state, struct bench_proc *p, uint64_t seq);
int fdmech_recv(void *state, struct bench_proc *p, unsigned *producer, uint64_t *seq);
void fdmech_detach(void *state, struct bench_proc *p);
void fdmech_teardown(void *state);

/* The callbacks of an fd mechanism with its own send/recv ... */
#define FDMECH_LIFECYCLE                                                                 \
	.attach = fdmech_attach, .detach = fdmech_detach, .teardown = fdmech_teardown
/* ... and of one that moves stamped bytes with fdmech_send/fdmech_recv. */
#define FDMECH_OPS FDMECH_LIFECYCLE, .send = fdmech_send, .recv = fdmech_recv

#endif
