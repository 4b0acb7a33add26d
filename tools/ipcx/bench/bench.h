/*
 * ipcx bench: mechanisms plug into one harness.
 *
 * The harness forks the processes, pins them, warms up, runs the ping-pong
 * or stream loop, times it, gathers rusage, and reports.  A mechanism only
 * knows how to set up a channel and move one message.
 *
 * Process model: `setup` runs in the parent before fork and creates every
 * shared resource into the mechanism's state (a struct the mechanism
 * allocates).  After fork each process calls `attach` with its role, then
 * the harness calls `send` / `recv` in a loop, then `detach`.  The parent
 * calls `teardown` after every child has exited.
 *
 * Roles: in ping-pong, role A (index 0) sends first and role B (index 0)
 * echoes: both directions are used (A->B and B->A); send() from role B and
 * recv() in role A use the B->A direction.  In stream mode there are
 * `producers` processes of role A and `consumers` processes of role B, and
 * only A->B is used.  The harness pins each process before attach.
 *
 * End of a stream: when every producer is done, producer 0 sends one
 * BENCH_SEQ_STOP message per consumer; a consumer stops at the first it
 * receives.  A mechanism with FIFO order across producers therefore
 * delivers every data message before any STOP.
 *
 * Messages: the harness stamps each message with bench_stamp() -- a header
 * {seq, producer, len} at the front and the seq again at the very end --
 * and checks it with bench_check().  A copying mechanism stamps its own
 * buffer and copies; a zero-copy mechanism stamps the buffer in place.
 * send()/recv() receive the expected length and sequence number so they can
 * do either.  A recv() that sees a wrong stamp returns -EBADMSG; the case
 * then fails loudly and `ipcx bench` exits non-zero.
 */
#ifndef IPCX_BENCH_H
#define IPCX_BENCH_H

#include <stddef.h>
#include <stdint.h>

enum bench_mode { BENCH_PINGPONG = 1u << 0, BENCH_STREAM = 1u << 1 };
enum bench_role { BENCH_A = 0, BENCH_B = 1 };

/* The smallest message that carries a full stamp. */
#define BENCH_STAMP_MIN 24u

/* Sequence numbers start at 1.  A message with this sequence number tells
 * the receiver to stop (the harness sends it; mechanisms move it like any
 * other message and return it from recv). */
#define BENCH_SEQ_STOP 0x3fffffffffffffffull

struct bench_case {
	const struct bench_mech *mech;
	unsigned mode;       /* one enum bench_mode bit */
	size_t size;         /* payload bytes of every message */
	unsigned producers;  /* stream: processes of role A (ping-pong: 1) */
	unsigned consumers;  /* stream: processes of role B (ping-pong: 1) */
	uint64_t messages;   /* stream: messages each producer sends (set by the harness) */
	int same_cpu;        /* all processes share one CPU */
};

/* What the current process is, passed to attach/send/recv. */
struct bench_proc {
	enum bench_role role;
	unsigned index;      /* 0..producers-1 or 0..consumers-1 */
	const struct bench_case *c;
	void *local;         /* free for the mechanism's per-process state */
};

struct bench_mech {
	const char *name;    /* as given to --mech */
	const char *desc;    /* one line for `ipcx bench --list` */
	int order;           /* position in reports (floor = 0, ipcx = 10..99, kernel = 100..) */
	unsigned modes;      /* enum bench_mode bits supported */
	unsigned max_producers, max_consumers; /* stream fan-in/out supported (0 = 1) */
	size_t max_size;     /* largest message, 0 = unlimited */
	int in_default;      /* part of the default suite */
	/* Nonzero: messages of at least this many bytes are handed over in
	 * place (written where the receiver reads them), never copied by the
	 * transport, so MiB/s counts bytes made available, not bytes moved.
	 * Reports mark those rows. */
	size_t in_place_from;

	/* Parent, before fork.  0, or -errno; to skip the case write the reason
	 * into why (at most whylen bytes) and return BENCH_SKIP. */
	int (*setup)(const struct bench_case *c, void **state, char *why, size_t whylen);
	/* Child, after fork. */
	int (*attach)(void *state, struct bench_proc *p);
	/* Send one message of c->size bytes stamped with seq; 0 or -errno. */
	int (*send)(void *state, struct bench_proc *p, uint64_t seq);
	/* Receive one message; check it with bench_check (producer index and
	 * sequence of what arrived are returned in *producer and *seq); 0 or
	 * -errno (-EBADMSG on a bad stamp or length). */
	int (*recv)(void *state, struct bench_proc *p, unsigned *producer, uint64_t *seq);
	/* Optional, stream: the producer sent its last data message; hand over
	 * whatever send held back (a batch).  0 or -errno.  The STOP message is
	 * sent without it: send must hand it over at once. */
	int (*flush)(void *state, struct bench_proc *p);
	void (*detach)(void *state, struct bench_proc *p);
	/* Parent, after every child exited. */
	void (*teardown)(void *state);
	/* Optional: a line printed under the table (e.g. "payload stamped in place"). */
	const char *note;
};

#define BENCH_SKIP 1

void bench_register(const struct bench_mech *m);

#define BENCH_MECH(var)                                                                  \
	static void __attribute__((constructor)) var##_register(void) { bench_register(&var); }

/* Stamp len bytes at buf (len >= BENCH_STAMP_MIN) with seq and producer. */
void bench_stamp(void *buf, size_t len, unsigned producer, uint64_t seq);
/* Check a received message: 0, or -EBADMSG if the length or the two
 * sequence copies disagree.  Fills *producer and *seq from the stamp. */
int bench_check(const void *buf, size_t len, unsigned *producer, uint64_t *seq);

/* Helpers for fd-based mechanisms: loop over short reads and writes, retry
 * EINTR.  Return 0 or -errno (-EPIPE on EOF). */
int bench_write_full(int fd, const void *buf, size_t len);
int bench_read_full(int fd, void *buf, size_t len);

#endif
