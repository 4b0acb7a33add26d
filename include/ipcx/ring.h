/*
 * ipcx ring: a single-producer single-consumer channel of variable-length
 * messages in shared memory.
 *
 * The fastest ipcx channel.  One process sends, one receives; messages of 0
 * bytes up to ipcx_ring_max_msg() bytes are delivered whole, in order, each
 * exactly once.  The data path is lock-free and makes no system call unless
 * a side is asleep: the producer writes the message in place and publishes
 * it with one release store of the tail index; the consumer reads it and
 * frees the space with one release store of the head index.  Each side
 * caches the other's index and reads it again only when it must.
 *
 * Two APIs move the same messages:
 *   copying:   ipcx_ring_send / ipcx_ring_recv
 *   zero-copy: ipcx_ring_reserve + ipcx_ring_commit (producer),
 *              ipcx_ring_peek + ipcx_ring_release (consumer)
 *
 * Roles.  A handle is a producer, a consumer, or neither (IPCX_RING_NOROLE:
 * for the creator that only hands the ring to others, and for inspection).
 * At most one live producer and one live consumer may be attached at a
 * time; attaching a role that a live process holds fails with -EBUSY, and a
 * role whose holder died can be taken over.  Handles do not survive fork():
 * a child opens its own (ipcx_ring_open / ipcx_ring_open_fd).  A handle is
 * used by one thread at a time.
 *
 * Peer death and close.
 *  - Consumer side: messages committed before the producer closed or died
 *    are still delivered; after them recv/peek return -EPIPE.  A message the
 *    producer had reserved but not committed is never delivered.  A consumer
 *    waiting on a producer that dies (even by SIGKILL) returns -EPIPE within
 *    about 40 ms (IPCX__LIVENESS_SLICE_NS) plus scheduling delay.
 *  - Producer side: send/reserve return -EPIPE once the consumer has closed;
 *    if the consumer dies, they keep succeeding while there is room and
 *    return -EPIPE within about 40 ms once they have to wait for room.
 *  - Before any consumer attaches, a producer may fill the ring and then
 *    waits (deadline applies); likewise a consumer waits for a producer.
 *  - A role names its holder by pid and start time, so a dead holder whose
 *    pid the system has given to another process is still seen dead.
 *
 * Waiting: every call that can wait takes an optional per-call policy
 * (NULL: the handle's default, see ipcx_ring_opts.wait and
 * ipcx_ring_set_wait).  See ipcx_wait in <ipcx/common.h>.  Signals do not
 * interrupt a wait.
 *
 * Layout ABI version 2: see docs/ring.md.  Everything read from the shared
 * mapping is validated: a corrupted ring yields -EBADMSG, never a crash or
 * an out-of-bounds access.
 */
#ifndef IPCX_RING_H
#define IPCX_RING_H

#include <ipcx/common.h>
#include <ipcx/region.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ipcx_ring ipcx_ring;

enum ipcx_ring_role {
	IPCX_RING_NOROLE = 0,
	IPCX_RING_PRODUCER = 1,
	IPCX_RING_CONSUMER = 2,
};

/* Flags of ipcx_ring_send / ipcx_ring_commit. */
enum ipcx_ring_flags {
	/* Do not publish yet: more messages follow.  The batch becomes visible
	 * at the next send/commit without this flag, at ipcx_ring_flush(),
	 * before the producer waits for room, and whenever 16 KiB (or a quarter
	 * of the capacity, if less) are pending.  A streaming producer should
	 * send with it and flush when it pauses: besides saving a shared store
	 * per message, batches of that size keep the consumer off the lines the
	 * producer is writing (see docs/ring.md, Tuning). */
	IPCX_RING_MORE = 1u << 0,
};

typedef struct ipcx_ring_opts {
	size_t capacity;      /* bytes of message storage; rounded up to a power of
	                         two, at least 4096; 0 means 1 MiB */
	ipcx_wait wait;       /* the creating handle's default wait policy
	                         (zeroed = adaptive, no deadline) */
	uint32_t mode;        /* permission bits of a named ring (0 = 0600) */
	uint32_t region_flags;/* enum ipcx_region_flags (huge pages, prefault) */
} ipcx_ring_opts;

typedef struct ipcx_ring_stats {
	uint64_t capacity;     /* bytes of storage */
	uint64_t max_msg;      /* largest message */
	uint64_t used;         /* bytes published and not yet released */
	uint64_t sent_bytes;   /* total published (tail index) */
	uint64_t recv_bytes;   /* total released (head index) */
	int32_t producer_pid;  /* 0 if none attached */
	int32_t consumer_pid;
	int producer_state;    /* 0 never attached, 1 attached, 2 closed */
	int consumer_state;
} ipcx_ring_stats;

/*
 * Create a ring named `name` (created exclusively, 0600 unless opts->mode)
 * and attach to it in `role`.  opts may be NULL.
 * Errors: as ipcx_region_create; -EINVAL bad role or capacity too large.
 */
IPCX_API int ipcx_ring_create(ipcx_ring **out, const char *name, const ipcx_ring_opts *opts,
			      int role);

/* Create an anonymous ring (a memfd; see ipcx_ring_fd) and attach in role. */
IPCX_API int ipcx_ring_create_anon(ipcx_ring **out, const ipcx_ring_opts *opts, int role);

/*
 * Open an existing ring and attach in `role`, with default wait policy
 * `wait` (NULL: adaptive, no deadline).
 * Errors: as ipcx_region_open (-ENOENT, -EPROTO, -EMEDIUMTYPE, -EBADMSG
 * for a corrupted ring header, ...); -EBUSY if a live process holds role.
 */
IPCX_API int ipcx_ring_open(ipcx_ring **out, const char *name, int role, const ipcx_wait *wait);

/* Same, from the ring's file descriptor (inherited or received); the caller
 * keeps its fd. */
IPCX_API int ipcx_ring_open_fd(ipcx_ring **out, int fd, int role, const ipcx_wait *wait);

/*
 * Detach and unmap.  A producer's pending (IPCX_RING_MORE) messages are
 * published first; an uncommitted reservation is dropped.  The peer sees
 * the close (-EPIPE after draining).  NULL is a no-op.  Returns 0.
 */
IPCX_API int ipcx_ring_close(ipcx_ring *r);

/* Remove a named ring's name (as ipcx_region_unlink). */
IPCX_API int ipcx_ring_unlink(const char *name);

/* Change the handle's default wait policy.  0 or -EINVAL. */
IPCX_API int ipcx_ring_set_wait(ipcx_ring *r, const ipcx_wait *wait);

/*
 * Producer: copy len bytes (0 <= len <= max_msg) into the ring as one
 * message.  Waits for room according to the policy.
 * Returns 0; -EMSGSIZE if len > max_msg; -EAGAIN (non-blocking, full);
 * -ETIMEDOUT; -EPIPE (consumer closed or dead); -EBADMSG (corrupted ring);
 * -EPERM if the handle is not the producer; -EBUSY if a reservation is open.
 */
IPCX_API int ipcx_ring_send(ipcx_ring *r, const void *buf, size_t len, unsigned flags,
			    const ipcx_wait *wait);

/*
 * Producer: reserve room for a message of up to len bytes and return a
 * pointer to it in *ptr (8-byte aligned, contiguous).  Write the message
 * there, then ipcx_ring_commit().  Nothing is visible to the consumer
 * before the commit; if the producer dies first, nothing ever is.
 * Errors as ipcx_ring_send.
 */
IPCX_API int ipcx_ring_reserve(ipcx_ring *r, size_t len, void **ptr, const ipcx_wait *wait);

/* Producer: commit the open reservation as a message of len bytes (len may
 * be smaller than reserved).  0, -EINVAL (no reservation, or len larger
 * than reserved).  Never waits. */
IPCX_API int ipcx_ring_commit(ipcx_ring *r, size_t len, unsigned flags);

/* Producer: publish messages sent with IPCX_RING_MORE.  Returns 0. */
IPCX_API int ipcx_ring_flush(ipcx_ring *r);

/*
 * Consumer: receive the next message into buf (capacity cap).  Returns its
 * length (>= 0).  -EMSGSIZE if cap is too small (the message stays; see
 * ipcx_ring_peek), -EAGAIN, -ETIMEDOUT, -EPIPE (producer closed or died and
 * everything it committed has been received), -EBADMSG (corrupted ring),
 * -EPERM (not the consumer).
 */
IPCX_API ssize_t ipcx_ring_recv(ipcx_ring *r, void *buf, size_t cap, const ipcx_wait *wait);

/*
 * Consumer: look at the next message in place: *ptr and *len describe it
 * (valid until ipcx_ring_release).  Calling peek again before release
 * returns the same message.  Errors as ipcx_ring_recv.
 */
IPCX_API int ipcx_ring_peek(ipcx_ring *r, const void **ptr, size_t *len, const ipcx_wait *wait);

/* Consumer: free the peeked message.  0, or -EINVAL if none is peeked. */
IPCX_API int ipcx_ring_release(ipcx_ring *r);

/* The largest message this ring carries (half its capacity, less 64). */
IPCX_API size_t ipcx_ring_max_msg(const ipcx_ring *r);

/* The file descriptor of the ring's region (owned by the handle). */
IPCX_API int ipcx_ring_fd(const ipcx_ring *r);

/* A snapshot of the ring's state.  0 or -EINVAL. */
IPCX_API int ipcx_ring_stat(const ipcx_ring *r, ipcx_ring_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* IPCX_RING_H */
