/*
 * ipcx queue: a bounded multi-producer multi-consumer queue in shared memory.
 *
 * A region of kind IPCX_KIND_QUEUE holds `capacity` fixed-size slots (each
 * carries up to `msg_max` bytes and the message's length).  Any number of
 * processes (and threads, each with its own handle) produce and consume at
 * once.  Every slot has a sequence number that says which lap of the ring
 * it is ready for (Vyukov's bounded MPMC queue), so a position is claimed by
 * one compare-and-swap on the shared head or tail and a slot can never be
 * mistaken for one of another lap: ABA-safe by construction, no tagged
 * pointers, no memory reclamation.
 *
 * Ordering: messages sent through one handle are received in the order they
 * were sent (a consumer never sees a later one before an earlier one; with
 * several consumers each sees an ordered subsequence).  Between handles,
 * the order is the order in which their sends claimed positions.
 *
 * Progress: a send or receive that finds room (or a message) completes in a
 * bounded number of steps unless other handles keep winning the race for
 * the same position (lock-free, not wait-free).  A producer that stalls
 * between claiming a slot and publishing it holds back consumers at that
 * position (the queue delivers in position order) until it publishes -- or
 * is seen dead, see below.
 *
 * Waiting: the policies of <ipcx/common.h> (spin, block, adaptive,
 * non-blocking, deadline), a default per handle and an override per call.
 * A sender or receiver that has nothing to wake makes no system call.
 *
 * Peer death.  Every handle registers its process id in the queue's peer
 * table (at most IPCX_QUEUE_MAX_PEERS handles of each role at once).
 *  - A producer killed between claiming a slot and publishing it: once a
 *    consumer waiting at that position sees that the claimant is dead
 *    (within IPCX__LIVENESS_SLICE, 40 ms, of starting to wait), it publishes
 *    the slot as a skip record; consumers pass over it and count it in
 *    ipcx_queue_stats.skipped.  A half-written message is never delivered.
 *  - A consumer killed between claiming a message and releasing its slot:
 *    the message is lost (it was handed out) and counted in
 *    ipcx_queue_stats.lost; a producer waiting for that slot frees it.
 *  - When every producer that ever attached has closed or died and the
 *    queue is empty, receives return -EPIPE; when every consumer has closed
 *    or died and the queue is full, sends return -EPIPE.
 *  - A handle closed with a reservation outstanding publishes it as a skip
 *    record; one closed with a peeked message releases it.
 * Liveness is judged by process id and start time, so a dead peer whose pid
 * the system has given to a new process is still seen dead.
 *
 * A handle is not thread-safe: give each thread its own (ipcx_queue_open or
 * ipcx_queue_open_fd on the same object).  A handle belongs to the process
 * that opened it: a child that inherits one across fork gets -EPERM from it
 * and opens its own (ipcx_queue_fd gives the fd to open); closing the
 * inherited one only unmaps it.  See docs/queue.md.
 */
#ifndef IPCX_QUEUE_H
#define IPCX_QUEUE_H

#include <ipcx/common.h>
#include <ipcx/region.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ipcx_queue ipcx_queue;

/* Roles of a handle; a handle may have both. */
enum ipcx_queue_role {
	IPCX_QUEUE_PRODUCER = 1u << 0,
	IPCX_QUEUE_CONSUMER = 1u << 1,
};

/* Handles of each role attached at once. */
#define IPCX_QUEUE_MAX_PEERS 64
/* Largest slot payload and capacity accepted. */
#define IPCX_QUEUE_MSG_MAX (1u << 20)
#define IPCX_QUEUE_CAPACITY_MAX (1u << 24)

typedef struct ipcx_queue_opts {
	uint32_t capacity;	 /* slots, a power of two >= 2; 0 means 1024 */
	uint32_t msg_max;	 /* bytes per message, 1..IPCX_QUEUE_MSG_MAX; 0 means 64 */
	ipcx_wait wait;		 /* default policy of the creator's handle; zeroes: adaptive */
	ipcx_region_opts region; /* mode, huge pages, prefault */
} ipcx_queue_opts;

/*
 * Create a queue and attach to it with `role`.  name NULL makes an anonymous
 * queue (reach it through ipcx_queue_fd).  opts may be NULL.
 * Errors: those of ipcx_region_create; -EINVAL bad role, capacity or msg_max.
 */
IPCX_API int ipcx_queue_create(ipcx_queue **out, const char *name, uint32_t role,
			       const ipcx_queue_opts *opts);
/*
 * Attach to an existing queue by name or by fd (the caller keeps its fd).
 * wait may be NULL (adaptive).  The shared header is validated.
 * Errors: those of ipcx_region_open / _open_fd; -EBADMSG a queue header
 * that does not add up; -EUSERS IPCX_QUEUE_MAX_PEERS handles of that role
 * are attached already.
 */
IPCX_API int ipcx_queue_open(ipcx_queue **out, const char *name, uint32_t role,
			     const ipcx_wait *wait);
IPCX_API int ipcx_queue_open_fd(ipcx_queue **out, int fd, uint32_t role, const ipcx_wait *wait);
/* Detach (see peer death above for outstanding zero-copy operations).  NULL
 * is a no-op.  Returns 0.  The object lives while named or mapped. */
IPCX_API int ipcx_queue_close(ipcx_queue *q);
IPCX_API int ipcx_queue_unlink(const char *name);
/* The region's fd (owned by the queue). */
IPCX_API int ipcx_queue_fd(const ipcx_queue *q);
/* Largest message. */
IPCX_API size_t ipcx_queue_msg_max(const ipcx_queue *q);

/*
 * Copy a message of len bytes (0..msg_max) in.  0, or -EMSGSIZE, -EAGAIN
 * (full, non-blocking), -ETIMEDOUT, -EPIPE (full and no consumer left),
 * -EPERM (not a producer handle, or one inherited across fork), -EBUSY (a
 * reservation is outstanding),
 * -EBADMSG (the shared indices are corrupted).
 */
IPCX_API int ipcx_queue_send(ipcx_queue *q, const void *buf, size_t len, const ipcx_wait *w);
/*
 * Take the oldest message and copy it into buf (cap must be >= msg_max).
 * Returns its length, or -EINVAL (cap too small), -EAGAIN, -ETIMEDOUT,
 * -EPIPE (empty and no producer left), -EPERM, -EBUSY (a peek is
 * outstanding), -EBADMSG (a slot with a corrupted length, dropped; or
 * corrupted shared indices).
 */
IPCX_API ssize_t ipcx_queue_recv(ipcx_queue *q, void *buf, size_t cap, const ipcx_wait *w);

/*
 * Zero-copy.  reserve claims a slot and points *slot at its msg_max bytes;
 * commit publishes the first len bytes.  Same errors as send.  Consumers
 * wait at this position until the commit, so keep the interval short.
 */
IPCX_API int ipcx_queue_reserve(ipcx_queue *q, void **slot, const ipcx_wait *w);
IPCX_API int ipcx_queue_commit(ipcx_queue *q, size_t len); /* 0, -EMSGSIZE, -EINVAL none */
/* peek claims the oldest message in place; release frees its slot.  peek
 * returns the length; same errors as recv. */
IPCX_API ssize_t ipcx_queue_peek(ipcx_queue *q, const void **msg, const ipcx_wait *w);
IPCX_API int ipcx_queue_release(ipcx_queue *q); /* 0, -EINVAL none outstanding */

typedef struct ipcx_queue_stats {
	uint32_t capacity, msg_max;
	uint64_t depth;		       /* messages queued (a snapshot) */
	uint32_t producers, consumers; /* handles attached (table entries in use) */
	uint64_t skipped;	       /* slots passed over: producer died or closed mid-send */
	uint64_t lost;		       /* messages taken by a consumer that died before releasing */
} ipcx_queue_stats;

IPCX_API int ipcx_queue_stat(const ipcx_queue *q, ipcx_queue_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* IPCX_QUEUE_H */
