/*
 * ipcx mailboxes: a named priority message queue in shared memory, with flow
 * control, traffic shaping and optional persistence.  See docs/mq.md.
 *
 * Many producers, many consumers, any processes of the same user that know
 * the name.  A message is 0 to max_msg bytes (fixed at creation, up to
 * IPCX_MQ_MSG_MAX) and has a priority 0..IPCX_MQ_PRIO_LEVELS-1; higher is
 * more urgent (as in POSIX mq).
 *
 * Ordering.  A receiver gets a message of the highest level whose oldest
 * message is published.  Within a level, messages leave in the order their
 * senders claimed positions in the level's ring: one producer's messages
 * keep their program order, and of two commits by different producers the
 * one that returned before the other began comes first (concurrent commits
 * are ordered arbitrarily).  A message being written holds back those
 * behind it in its level.  A message redelivered after its receiver died
 * goes back to the head of its level, carrying IPCX_MQ_REDELIVERED.
 *
 * Concurrency.  Every function may be called from any number of threads and
 * processes at once, on one handle or on several (a handle's ring
 * operations are serialised; threads may also open handles of their own).
 * Sending and receiving take no lock: free slots and each priority level are
 * lock-free MPMC rings of slot indices (see docs/mq.md).  Progress: between
 * live processes, lock-free, except that a receiver waits for a sender in
 * the middle of the message at the head of its level.  A robust,
 * priority-inheriting, process-shared mutex guards only rare work: attaching,
 * reclaiming dead owners, token buckets (shaped mailboxes), redelivered
 * messages, and growing or compacting the log; it is never held across a
 * wait.
 *
 * Peer death.  A message that a dead producer had loaned, or was sending or
 * committing, never appears.  A message that a dead consumer had taken but
 * not released (or had claimed and not yet taken) is redelivered
 * (at-least-once), flagged IPCX_MQ_REDELIVERED, and counted in
 * ipcx_mq_attr.redelivered; a consumer that dies inside the copying
 * ipcx_mq_recv after copying the message loses that one message (inside
 * ipcx_mq_recv_batch, the messages the call had removed).
 * A ring position (or a batch's run of them) a dead process had claimed is
 * finished (a skip) or given back; one a live process holds (stopped, in a
 * debugger) is waited for.  Dead processes are detected through /proc/PID/stat (pid and start
 * time, so a recycled pid is not mistaken for the owner) by any process that
 * waits on the mailbox, within IPCX__LIVENESS_SLICE_NS (40 ms), at the next
 * open, or at ipcx_mq_getattr; until then what they held stays held.  A
 * process that dies holding the mutex is handled too: the next locker
 * recounts what the mutex guards.
 */
#ifndef IPCX_MQ_H
#define IPCX_MQ_H

#include <ipcx/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IPCX_MQ_PRIO_LEVELS 64u          /* priorities 0..63 */
#define IPCX_MQ_MSG_MAX (64u << 20)      /* largest max_msg: 64 MiB */
#define IPCX_MQ_DEPTH_MAX (1u << 20)     /* most messages in one mailbox */
#define IPCX_MQ_LOG_PATH_MAX 240         /* bytes of a log path, NUL included */

/* What a send does when the mailbox is full (depth or bytes). */
enum ipcx_mq_full {
	IPCX_MQ_FULL_BLOCK = 0, /* wait, as the call's wait policy says */
	IPCX_MQ_FULL_FAIL = 1,  /* return -EAGAIN at once */
	/* Discard the oldest message of the lowest non-empty level that is not
	 * above the new message's priority, and queue the new one.  When every
	 * queued message outranks the new one, the new one is discarded
	 * instead: the send returns -ENOBUFS.  Both count in attr.dropped. */
	IPCX_MQ_FULL_DROP = 2,
};

/* Durability of a persistent mailbox (see docs/mq.md for the loss windows). */
enum ipcx_mq_sync {
	IPCX_MQ_SYNC_NONE = 0,   /* page cache: survives any process crash */
	IPCX_MQ_SYNC_BATCH = 1,  /* fdatasync every batch_msgs messages or batch_ms */
	IPCX_MQ_SYNC_ALWAYS = 2, /* a send returns once its record is durable */
};

/* A token bucket: sustained rates with bursts.  0 rate = unlimited.  A burst
 * of 0 means 1 message / one message's bytes. */
typedef struct ipcx_mq_rate {
	uint64_t msgs_per_s;
	uint64_t bytes_per_s;
	uint32_t burst_msgs;
	uint32_t reserved;
	uint64_t burst_bytes;
} ipcx_mq_rate;

typedef struct ipcx_mq_opts {
	uint32_t max_msg;   /* largest message in bytes; 0 = 8192 */
	uint32_t depth;     /* most messages queued; 0 = 64 */
	uint64_t max_bytes; /* most payload bytes queued; 0 = depth * max_msg */
	uint32_t full;      /* enum ipcx_mq_full */
	/* Fair share: with more than one sender attached, no sender may have
	 * more than depth / senders messages queued (at least 1), so a flooding
	 * sender cannot take all the space.  Applies to FULL_BLOCK and
	 * FULL_FAIL (the sender waits or gets -EAGAIN). */
	uint32_t fair;
	uint32_t mode;      /* permission bits of the objects; 0 = 0600 */
	uint32_t reserved;
	ipcx_wait wait;     /* default wait policy of handles; zero = adaptive */
	ipcx_mq_rate shape;        /* token bucket of the whole mailbox */
	ipcx_mq_rate shape_sender; /* token bucket of each sending handle */
	/* Persistence: the log file (on a real file system, not tmpfs), or NULL
	 * for a memory-only mailbox. */
	const char *log_path;
	uint32_t sync;       /* enum ipcx_mq_sync */
	uint32_t batch_msgs; /* IPCX_MQ_SYNC_BATCH: 0 = 64 */
	uint32_t batch_ms;   /* IPCX_MQ_SYNC_BATCH: 0 = 10 */
} ipcx_mq_opts;

typedef struct ipcx_mq ipcx_mq;

/* A message on loan (send side) or taken (receive side). */
typedef struct ipcx_mq_msg {
	void *data;     /* the payload in shared memory */
	size_t len;     /* send: bytes to commit (<= loaned); receive: length */
	unsigned prio;  /* send: priority to commit with; receive: its priority */
	uint32_t flags; /* receive: IPCX_MQ_REDELIVERED */
	uint64_t seq;   /* receive: the mailbox-wide sequence number (unique;
			 * increasing in the order of loans in memory, of commits
			 * with a log) */
	uint32_t slot;  /* private */
	uint32_t gen;   /* private */
} ipcx_mq_msg;

#define IPCX_MQ_REDELIVERED 1u

/*
 * Create the mailbox NAME (the shared-memory object /dev/shm/ipcx.NAME,
 * exclusively, mode 0600 unless opts->mode says otherwise).  opts may be
 * NULL (defaults above).
 *
 * With opts->log_path the mailbox is persistent.  The log is created if it
 * does not exist or is empty; otherwise it is recovered: records are checked
 * (length, sequence, CRC32C), a torn or corrupt tail is cut, a corrupt record
 * inside the log is skipped, and every message sent and not yet received is
 * queued again in its priority order.  Recovery results are in
 * ipcx_mq_attr.recovered / .log_skipped_bytes.  The log is locked (flock) by
 * every process that has the mailbox open: a second mailbox on the same log
 * gets -EBUSY.
 *
 * A relative log path is made absolute (other processes open it too).
 *
 * Errors: -EINVAL bad name or option; -EEXIST; -ENOMEM; -EBUSY;
 * -ENAMETOOLONG the absolute log path is IPCX_MQ_LOG_PATH_MAX or longer; -EPROTO the
 * log is not an ipcx mailbox log; -EPROTONOSUPPORT log version; -EBADMSG the
 * log's header is damaged or it is shorter than a header; -EOVERFLOW the log
 * holds more messages, bytes, or a larger message than opts allow;
 * -EMEDIUMTYPE the log is on tmpfs/ramfs (it would not survive a reboot);
 * -ENOSPC, -EIO and other I/O errors of the log.
 */
IPCX_API int ipcx_mq_create(ipcx_mq **out, const char *name, const ipcx_mq_opts *opts);

/* Open an existing mailbox (and its log, for a persistent one).  wait is the
 * handle's default policy (NULL: the creator's).  The mailbox is validated;
 * dead owners left by crashed processes are reclaimed.
 * Errors: as ipcx_region_open (-ENOENT, -EPROTO, -EMEDIUMTYPE, -EBADMSG,
 * -EAGAIN not yet initialised, ...); -EUSERS too many handles attached
 * (IPCX_MQ_ATTACH_MAX); the log's errors. */
IPCX_API int ipcx_mq_open(ipcx_mq **out, const char *name, const ipcx_wait *wait);

#define IPCX_MQ_ATTACH_MAX 128

/* Detach (syncing the log of a persistent mailbox first).  Loans not
 * committed are cancelled; messages taken and not released are redelivered.
 * NULL is a no-op.  Returns 0 or the log's sync error. */
IPCX_API int ipcx_mq_close(ipcx_mq *mq);

/* Remove the name (the log file stays: remove it yourself to discard the
 * messages).  Errors: -EINVAL, -ENOENT, -EACCES. */
IPCX_API int ipcx_mq_unlink(const char *name);

/*
 * Copying send: queue len bytes at priority prio.  Returns 0 once the message
 * is in the mailbox (and, for a persistent mailbox, in its log with the
 * durability of its sync mode).
 *
 * Errors: -EMSGSIZE len > max_msg; -EINVAL prio >= IPCX_MQ_PRIO_LEVELS;
 * when full or shaped: -EAGAIN (FULL_FAIL, or a non-blocking policy),
 * -ETIMEDOUT, -ENOBUFS (FULL_DROP discarded this message); persistent:
 * -ENOSPC the log cannot grow (the message was not queued), -EFBIG the log
 * reached its bound, -EIO an fdatasync failed (the message is not
 * acknowledged; in sync batch it may already be queued; the log is marked
 * failed and every later send fails with -EIO); -EBADMSG the shared state
 * is corrupted.
 */
IPCX_API int ipcx_mq_send(ipcx_mq *mq, const void *buf, size_t len, unsigned prio,
			  const ipcx_wait *wait);

/* Copying receive into buf (cap bytes).  Returns the message's length; its
 * priority in *prio if prio is not NULL.  The message is removed before the
 * call returns (a receiver that dies inside the call after copying it loses
 * it; use take/release for at-least-once).  Errors: -EMSGSIZE cap is smaller than the next message (it
 * stays queued); -EAGAIN; -ETIMEDOUT; -EBADMSG.  In a persistent mailbox a
 * failure to log the removal does not fail the call (the message is
 * returned; the log is marked failed, see ipcx_mq_send, and the message may
 * be delivered again after recovery). */
IPCX_API int ipcx_mq_recv(ipcx_mq *mq, void *buf, size_t cap, unsigned *prio,
			  const ipcx_wait *wait);

/* One message of a batch: ipcx_mq_send_batch reads buf, len and prio;
 * ipcx_mq_recv_batch reads buf and cap and sets len, prio and flags. */
typedef struct ipcx_mq_vec {
	void *buf;      /* send: the payload (not written); receive: where it goes */
	size_t len;     /* send: its length; receive: set to the message's length */
	size_t cap;     /* receive: bytes at buf; unused by send */
	unsigned prio;  /* send: its priority; receive: set to the message's */
	uint32_t flags; /* receive: set to IPCX_MQ_REDELIVERED or 0 */
} ipcx_mq_vec;

/*
 * Send v[0..n) in order, as n calls of ipcx_mq_send would, each waiting as
 * the policy says; consecutive messages of one priority share their ring
 * operations (one claim of free slots and one of level positions for up to
 * 256 of them; with a log, one reservation of their records), which is what
 * a streaming producer wants.  A mailbox with shaping, fair share, a byte
 * bound or sync "always" sends them one by one.  The messages of a batch
 * keep their order; another producer's may interleave with them as with
 * single sends.  Returns n, or how many were sent (1..n-1) before an error,
 * which the next call then meets again; or the error of the first message
 * (as ipcx_mq_send; -EINVAL also for n == 0 or n > IPCX_MQ_BATCH_MAX).  A
 * send that returned k has queued v[0..k) and nothing after them, except
 * that when a sync of sync mode "batch" fails, the run it covered may be
 * queued though not acknowledged (as with ipcx_mq_send).
 */
#define IPCX_MQ_BATCH_MAX 1024u
IPCX_API int ipcx_mq_send_batch(ipcx_mq *mq, const ipcx_mq_vec *v, unsigned n,
				const ipcx_wait *wait);

/*
 * Receive up to n messages into v[0..n): waits as the policy says for the
 * first, then takes what is queued without waiting (the highest level
 * first, as repeated ipcx_mq_recv calls would).  Returns how many (1..n), or
 * an error as ipcx_mq_recv (-EMSGSIZE when the first message is longer than
 * v[0].cap; a later one that does not fit its v[k].cap ends the batch at k
 * and stays queued).  Messages are copied and removed as by ipcx_mq_recv,
 * and flags tells a redelivered one.
 */
IPCX_API int ipcx_mq_recv_batch(ipcx_mq *mq, ipcx_mq_vec *v, unsigned n, const ipcx_wait *wait);

/*
 * Zero-copy send: loan a buffer of len bytes at priority prio (flow control
 * and shaping apply here, with the same errors as ipcx_mq_send), write the
 * payload into m->data, then commit it (m->len may be lowered, m->prio
 * changed) or cancel it.  A handle may hold several loans.
 */
IPCX_API int ipcx_mq_loan(ipcx_mq *mq, ipcx_mq_msg *m, size_t len, unsigned prio,
			  const ipcx_wait *wait);
IPCX_API int ipcx_mq_commit(ipcx_mq *mq, ipcx_mq_msg *m);
IPCX_API int ipcx_mq_cancel(ipcx_mq *mq, ipcx_mq_msg *m);

/*
 * Zero-copy receive: take the next message (m->data stays valid and
 * unchanged until release), then release it.  A message taken by a process
 * that dies before releasing is redelivered.  Errors: as ipcx_mq_recv;
 * release: -EINVAL not a message this handle holds; persistent: -ENOSPC /
 * -EIO the removal could not be logged (the message is released all the
 * same and may be delivered again after recovery).
 */
IPCX_API int ipcx_mq_take(ipcx_mq *mq, ipcx_mq_msg *m, const ipcx_wait *wait);
IPCX_API int ipcx_mq_release(ipcx_mq *mq, ipcx_mq_msg *m);

/*
 * Zero-copy batches of receives: take up to n messages into m[0..n) (each
 * as ipcx_mq_take fills it), waiting as the policy says for the first, then
 * taking what is queued without waiting, the highest level first, as
 * repeated ipcx_mq_take calls would.  Returns how many (1..n), or an error
 * as ipcx_mq_take (-EINVAL also for n == 0 or n > IPCX_MQ_BATCH_MAX).  Each
 * message stays valid until released, one by one or with
 * ipcx_mq_release_batch (in any grouping and order); a taker that dies
 * first has them redelivered (at-least-once, unlike the copying
 * ipcx_mq_recv_batch).  In a mailbox without shaping, fair share or byte
 * bound (and, with a log, not syncing always) runs of one level share
 * their ring operations and, with a log, their removal records.
 * ipcx_mq_release_batch releases m[0..n): 0, or the first error as
 * ipcx_mq_release's (the other messages are released all the same).
 */
IPCX_API int ipcx_mq_take_batch(ipcx_mq *mq, ipcx_mq_msg *m, unsigned n, const ipcx_wait *wait);
IPCX_API int ipcx_mq_release_batch(ipcx_mq *mq, ipcx_mq_msg *m, unsigned n);

/* Attributes and counters: a snapshot read from the slots and counters,
 * not atomic with respect to concurrent sends and receives. */
typedef struct ipcx_mq_attr {
	uint32_t max_msg, depth_max;
	uint64_t bytes_max;
	uint32_t full, fair, sync, persistent;
	uint32_t depth;                     /* messages queued now */
	uint32_t loaned, taken;             /* in flight */
	uint64_t bytes;                     /* payload bytes queued */
	uint32_t per_prio[IPCX_MQ_PRIO_LEVELS];
	uint64_t sent, received, dropped, redelivered, cancelled; /* since creation */
	uint64_t shaped;                    /* sends that had to wait for tokens */
	uint64_t fair_waits;                /* sends held back by the fair share */
	uint32_t senders, receivers;        /* attached handles alive that sent/received */
	uint32_t attached;                  /* attached handles alive */
	uint64_t log_bytes;                 /* current length of the log */
	uint64_t recovered;                 /* messages recovered at creation */
	uint64_t log_skipped_bytes;         /* bytes of torn/corrupt records cut */
	uint32_t log_failed;                /* an fdatasync failed: sends get -EIO */
	uint32_t log_compactions;           /* times the log was compacted (mod 2^32) */
	char log_path[IPCX_MQ_LOG_PATH_MAX];
} ipcx_mq_attr;

IPCX_API int ipcx_mq_getattr(ipcx_mq *mq, ipcx_mq_attr *a);

/* Force the log to disk (fdatasync).  0 for a memory-only mailbox. */
IPCX_API int ipcx_mq_sync(ipcx_mq *mq);

/*
 * A readiness file descriptor for poll/epoll: it polls readable while the
 * mailbox (probably) holds a message.  After it polls readable, receive with
 * IPCX_WAIT_NONBLOCK until -EAGAIN.  The fd is owned by the handle (closed by
 * ipcx_mq_close).  It is driven by a helper thread of the handle that sleeps
 * on the mailbox's futex.  Returns the fd or -errno.
 */
IPCX_API int ipcx_mq_fd(ipcx_mq *mq);

/*
 * One-shot notification in the spirit of mq_notify: fn(mq, arg) is called
 * once, from the handle's helper thread, when the mailbox is (or becomes)
 * non-empty.  Register again to be told again.  fn = NULL cancels.
 * -EBUSY if a notification is already registered.
 */
IPCX_API int ipcx_mq_notify(ipcx_mq *mq, void (*fn)(ipcx_mq *mq, void *arg), void *arg);

#ifdef __cplusplus
}
#endif

#endif /* IPCX_MQ_H */
