/*
 * Mailbox internals: the shared-memory layout (an ABI) and the handle.
 *
 * The region's data area holds, in order:
 *   struct mq_hdr            configuration, lock, indices, attach table
 *   the free ring            cap cells (cap = depth rounded up to a power of 2)
 *   64 level rings           cap cells each, one per priority
 *   the slot words           depth 64-bit words (slot i's ownership)
 *   the slots: below 4 KiB of max_msg, each a struct mq_slot followed by its
 *   buffer of `stride` bytes; from 4 KiB on, a table of depth struct mq_slot
 *   then depth page-aligned buffers of `stride` bytes
 *
 * Sending and receiving take no lock (see mq_ring.c).  A slot's ownership
 * is its word: state, owning attach entry, level and ring position, changed
 * by its owner or by compare-and-swap.  The words sit apart from the slots,
 * so that a receiver only reads a message's lines (the sender's next write
 * to them is an invalidation, not a transfer back).  The rings are bounded MPMC queues of slot
 * indices; a cell is one 64-bit word, "empty for position pos" or "holds slot
 * x at position pos", so each claim and publication is a single atomic step.
 *
 * The robust priority-inheriting mutex `lock` guards only what is rare: the
 * attach table, token buckets, the redelivered messages, growing and
 * compacting the log, and the reclaiming of dead owners.  mq_state holds the
 * fields it guards.
 */
#ifndef IPCX_MQ_INTERNAL_H
#define IPCX_MQ_INTERNAL_H

#include <pthread.h>
#include <string.h>

#include <ipcx/mq.h>

#include "../region/region_internal.h"

#define MQ_MAGIC 0x31584f424c49414dull /* "MAILBOX1" */
#define MQ_ABI 4u
#define MQ_NONE 0xffffffffu
#define MQ_BAD 0xfffffffeu

/* ---- slot words -------------------------------------------------------- */

enum mq_slot_state {
	S_FREE = 0,       /* in the free ring at pos (or being pushed there by owner) */
	S_LOANED = 1,     /* owner took it from the free ring at pos; writing it */
	S_COMMITTING = 2, /* owner is writing its log record (s->seq is set) */
	S_LEVEL = 3,      /* queued in level ring `level` at pos (or being pushed by owner) */
	S_TAKEN = 4,      /* owner took it from level `level` at pos */
	S_RELEASING = 5,  /* persistent: owner is writing its removal record */
	S_REDO = 6,       /* redelivered after its taker died: see mq_state.redo */
};

#define MQ_POS_BITS 47
#define MQ_POS_MASK ((1ull << MQ_POS_BITS) - 1)

static inline uint64_t mq_word(uint32_t state, uint32_t owner, uint32_t level, uint64_t pos)
{
	return (uint64_t)state << 60 | (uint64_t)(owner & 127u) << 53 |
	       (uint64_t)(level & 63u) << MQ_POS_BITS | (pos & MQ_POS_MASK);
}
/* mq_word(state, owner, level, pos) from base = mq_word(state, owner,
 * level, 0): what a run's loops store, the rest computed once. */
static inline uint64_t mq_word_at(uint64_t base, uint64_t pos)
{
	return base | (pos & MQ_POS_MASK);
}
static inline uint32_t mq_w_state(uint64_t w) { return (uint32_t)(w >> 60); }
static inline uint32_t mq_w_owner(uint64_t w) { return (uint32_t)(w >> 53) & 127u; }
static inline uint32_t mq_w_level(uint64_t w) { return (uint32_t)(w >> MQ_POS_BITS) & 63u; }
static inline uint64_t mq_w_pos(uint64_t w) { return w & MQ_POS_MASK; }

struct mq_slot {
	uint64_t log_off; /* persistent: offset of its record, 0 none yet (compaction) */
	uint32_t len;    /* loaned or message length */
	uint32_t prio;
	uint32_t flags;  /* IPCX_MQ_REDELIVERED */
	uint32_t sender; /* attach index of the sender (fair share), MQ_NONE */
	uint64_t seq;    /* mailbox-wide sequence number */
	uint64_t pad[4];
};
_Static_assert(sizeof(struct mq_slot) == 64, "slot is an ABI");

/* ---- rings --------------------------------------------------------------
 * Cell of position pos (at index pos & (cap - 1)): bit 63 full, bit 62 skip
 * (a position whose sender died after claiming it), bits 20..61 the lap
 * (pos >> log2 cap, truncated), bits 0..19 the slot index.  Empty for
 * position pos is the lap alone, so zeroed memory is every cell empty for
 * lap 0; a popped cell becomes empty for pos + cap. */
#define MQ_CELL_FULL (1ull << 63)
#define MQ_CELL_SKIP (1ull << 62)
#define MQ_LAP_BITS 42
#define MQ_LAP_MASK ((1ull << MQ_LAP_BITS) - 1)
#define MQ_IDX_MASK ((1u << 20) - 1)

/* A ring's two positions, each on its own 128-byte block. */
struct mq_ring_idx {
	_Atomic uint64_t head IPCX_ALIGNED; /* next position to pop */
	_Atomic uint64_t tail IPCX_ALIGNED; /* next position to push */
};

enum { ROLE_SEND = 1u, ROLE_RECV = 2u };

/* One attached handle.  The counters are written by their handle only
 * (its own block), summed by getattr. */
struct mq_attach {
	int32_t pid;     /* 0 = free entry (lock) */
	uint32_t roles;  /* ROLE_* seen so far (lock) */
	uint64_t start;  /* start time of pid (lock) */
	uint32_t dead;   /* the process died; kept until queued drains (lock) */
	_Atomic uint32_t queued;   /* fair share: its messages in the queue */
	_Atomic uint32_t inflight; /* log records reserved, not yet written */
	uint32_t pad0;
	_Atomic uint64_t sent, received;
	/* The ring positions the handle is claiming or holds (mq_ring.c):
	 * MQ_INTENT(ring, pos, n), 0 none.  Written before the claiming CAS. */
	_Atomic uint64_t intent_pop, intent_push;
	uint8_t pad[IPCX_CACHELINE - 64];
};
_Static_assert(sizeof(struct mq_attach) == IPCX_CACHELINE, "attach entry is an ABI");

/* GCRA token bucket: theoretical arrival times, in CLOCK_MONOTONIC ns. */
struct mq_bucket {
	uint64_t tat_msgs;
	uint64_t tat_bytes;
};

/* Guarded by the lock. */
struct mq_state {
	uint32_t nsenders; /* live attach entries with ROLE_SEND */
	uint32_t pad0;
	uint64_t redo_next; /* stamp of the next redelivered message (FIFO among them) */
	struct mq_bucket shape;
	uint64_t sent_gone, received_gone; /* counters of detached handles */
	uint64_t repairs;
};

struct mq_waitword {
	_Atomic uint32_t seq;
	_Atomic uint32_t sleepers;
} IPCX_ALIGNED;

struct mq_hdr {
	/* Configuration: written once by the creator before publication. */
	uint64_t magic;
	uint32_t abi;
	uint32_t hdr_bytes; /* offset of the rings */
	uint32_t max_msg;
	uint32_t depth;
	uint64_t bytes_max;
	uint32_t stride;
	uint32_t full;
	uint32_t fair;
	uint32_t sync;
	uint32_t batch_msgs;
	uint32_t batch_ms;
	uint64_t data_off; /* offset of the first buffer */
	uint64_t ring_off; /* offset of the first slot descriptor */
	uint32_t cap_log2; /* ring capacity: 1 << cap_log2 >= depth */
	uint32_t pad0;
	ipcx_mq_rate shape;
	ipcx_mq_rate shape_sender;
	ipcx_wait wait;
	uint32_t persistent;
	uint32_t mode;
	char log_path[IPCX_MQ_LOG_PATH_MAX];

	pthread_mutex_t lock IPCX_ALIGNED;
	struct mq_state st IPCX_ALIGNED;

	/* Read by every send and receive, written rarely: bit p of nonempty
	 * says level p may hold messages (set by senders that find it clear,
	 * cleared only by the liveness check); bit p of redo says redelivered
	 * messages of level p wait (lock). */
	struct {
		_Atomic uint64_t nonempty;
		_Atomic uint64_t redo;
	} bits IPCX_ALIGNED;
	_Atomic uint64_t seq_next IPCX_ALIGNED; /* senders of a persistent mailbox */
	/* Only when max_bytes is below depth * max_msg: payload bytes held. */
	_Atomic uint64_t bytes_held IPCX_ALIGNED;
	struct {
		_Atomic uint64_t dropped, redelivered, cancelled, shaped, fair_waits;
		_Atomic uint64_t recovered, log_skipped, compactions;
	} stats IPCX_ALIGNED;

	struct mq_waitword ne; /* not empty: receivers sleep here */
	struct mq_waitword nf; /* not full: senders sleep here */
	/* The log (persistent mailboxes). */
	struct {
		_Atomic uint64_t tail;  /* next record offset; MQ_LOG_BUSY while compacting */
		_Atomic uint64_t alloc; /* bytes of log file allocated (fallocate; lock) */
		_Atomic uint32_t unsynced;  /* batch mode: records since last sync */
		_Atomic uint32_t failed;    /* an fdatasync failed: refuse sends */
		_Atomic uint64_t last_sync_ns;
		_Atomic uint64_t retry_at; /* a hint: no compaction tried below this tail */
		_Atomic uint32_t epoch;      /* the records' epoch (see mq_log.c) */
		_Atomic uint32_t next_epoch; /* the next compaction's */
	} log IPCX_ALIGNED;

	struct mq_ring_idx freer;
	struct mq_ring_idx lv[IPCX_MQ_PRIO_LEVELS];

	struct mq_attach att[IPCX_MQ_ATTACH_MAX] IPCX_ALIGNED;
};

struct ipcx_mq {
	ipcx_region *region;
	struct mq_hdr *h;
	_Atomic uint64_t *cells; /* free ring, then the level rings */
	_Atomic uint64_t *words; /* slot i's ownership word */
	unsigned char *slot_base, *buf_base; /* slot 0's descriptor and buffer */
	size_t slot_pitch, buf_pitch;         /* bytes from one slot's to the next */
	uint32_t depth, max_msg, stride; /* validated copies */
	uint32_t cap_log2;
	uint64_t cap_mask;
	bool bytes_limited; /* bytes_max < depth * max_msg */
	bool shaping;       /* a token bucket is configured */
	bool plain;         /* none of: persistence, shaping, fair share, byte bound */
	bool runs;          /* batches go by runs: plain, or persistent and none of
			     * the others, not syncing each message */
	uint32_t idx;       /* our attach entry */
	int32_t pid;
	uint64_t start;
	ipcx_wait wait;
	struct mq_bucket shape; /* per-sender bucket (under the mailbox lock) */
	_Atomic uint32_t roles; /* roles already published to our entry */
	_Atomic uint32_t busy;  /* a thread is in a ring operation on this handle */
	int log_fd;             /* -1: memory only */
	unsigned char *log_map; /* the log file, mapped (MQ_LOG_WINDOW bytes) */
	_Atomic uint64_t log_size; /* file size as last seen by this handle */
	_Atomic uint64_t log_ready_hi; /* log populated in our mapping below this */
	/* readiness thread (mq_notify.c) */
	pthread_mutex_t nlock;
	int thread_started;
	pthread_t thread;
	int efd;
	_Atomic uint32_t armed; /* futex: 1 = signal the next non-empty */
	_Atomic uint32_t stop;
	void (*notify_fn)(ipcx_mq *, void *);
	void *notify_arg;
};

static inline struct mq_slot *mq_slot(const ipcx_mq *mq, uint32_t i)
{
	return (struct mq_slot *)(mq->slot_base + (size_t)i * mq->slot_pitch);
}

static inline _Atomic uint64_t *mq_wordp(const ipcx_mq *mq, uint32_t i)
{
	return &mq->words[i];
}

static inline unsigned char *mq_buf(const ipcx_mq *mq, uint32_t i)
{
	return mq->buf_base + (size_t)i * mq->buf_pitch;
}

/* Whether this handle holds message m in `state` (its word then in *w). */
static inline bool mq_held(const ipcx_mq *mq, const ipcx_mq_msg *m, uint32_t state, uint64_t *w)
{
	if (m->slot >= mq->depth)
		return false;
	/* acquire: pairs with the release that gave us the slot */
	uint64_t x = atomic_load_explicit(mq_wordp(mq, m->slot), memory_order_acquire);
	if (mq_w_state(x) != state || mq_w_owner(x) != (mq->idx & 127u) ||
	    (uint32_t)mq_w_pos(x) != m->gen)
		return false;
	*w = x;
	return true;
}

/* Copy n bytes (dst and src may be NULL when n is 0).  Messages of 8 to
 * 64 bytes without a call: two overlapping moves of 8, 16 or 32 bytes, as
 * libc's memcpy makes them, but inline (64-byte batch streams: about a
 * tenth faster). */
static inline void mq_copy(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *p = src;
	if (n > 64 || n < 8) {
		if (n)
			memcpy(d, p, n);
		return;
	}
	uint64_t a, b;
	if (n <= 16) {
		memcpy(&a, p, 8);
		memcpy(&b, p + n - 8, 8);
		memcpy(d, &a, 8);
		memcpy(d + n - 8, &b, 8);
		return;
	}
	unsigned char x[32], y[32];
	if (n <= 32) {
		memcpy(x, p, 16);
		memcpy(y, p + n - 16, 16);
		memcpy(d, x, 16);
		memcpy(d + n - 16, y, 16);
		return;
	}
	memcpy(x, p, 32);
	memcpy(y, p + n - 32, 32);
	memcpy(d, x, 32);
	memcpy(d + n - 32, y, 32);
}

/* mq.c */
IPCX_HIDDEN int ipcx__mq_lock(ipcx_mq *mq);
IPCX_HIDDEN void ipcx__mq_unlock(ipcx_mq *mq);
/* Free (or, while its messages are queued, retire) an attach entry (lock). */
IPCX_HIDDEN void ipcx__mq_detach_entry(ipcx_mq *mq, uint32_t idx);
/* Liveness hook of every wait: reclaims what dead processes held, repairs
 * the non-empty bits.  0. */
IPCX_HIDDEN int ipcx__mq_check(void *mq);
/* Queue a recovered message (creator only, before publication). */
IPCX_HIDDEN int ipcx__mq_put_recovered(ipcx_mq *mq, const void *data, uint32_t len,
				       uint32_t prio, uint64_t seq, uint64_t log_off);
/* Redelivered messages (lock held): queue slot i, taken at word w, again;
 * take the oldest one of level p into *out (1), or 0 if none. */
IPCX_HIDDEN void ipcx__mq_redo_put(ipcx_mq *mq, uint32_t i, uint64_t w);
IPCX_HIDDEN int ipcx__mq_redo_take(ipcx_mq *mq, uint32_t p, uint32_t *out, uint64_t *w);

/* mq_ring.c: the lock-free rings.  Ring r is 0 (free) or 1 + level.  The
 * ring operations require the handle's busy flag (ipcx__mq_busy); the lock,
 * if needed, is taken before it, never while holding it. */
/* An intent names a run of n (1..MQ_RUN_MAX) positions from pos of ring r:
 * bits 57..63 r + 1, bits 49..56 n - 1, bits 0..48 pos (truncated: the
 * reclaimer rebuilds it from the ring's index, which is never 2^48 past). */
#define MQ_RUN_MAX 256u
#define MQ_INTENT_POS_BITS 49
#define MQ_INTENT_POS_MASK ((1ull << MQ_INTENT_POS_BITS) - 1)
#define MQ_INTENT(r, pos, n)                                                                  \
	(((uint64_t)(r) + 1) << 57 | ((uint64_t)(n) - 1) << MQ_INTENT_POS_BITS |             \
	 ((pos) & MQ_INTENT_POS_MASK))
#define MQ_RING_FREE 0u
#define MQ_RING_LEVEL(p) (1u + (p))
/* Push slot i (which we own, or adopt) into ring r: its word becomes
 * FREE/LEVEL at the position it lands on.  0 or -EBADMSG. */
IPCX_HIDDEN int ipcx__mq_push(ipcx_mq *mq, uint32_t r, uint32_t i);
/* Pop the oldest slot of ring r into *out, its word becoming `state` owned
 * by us (*w).  1 popped, 0 empty, -EMSGSIZE the oldest is longer than cap
 * (it stays), -EBADMSG. */
IPCX_HIDDEN int ipcx__mq_pop(ipcx_mq *mq, uint32_t r, uint32_t state, uint64_t cap,
			     uint32_t *out, uint64_t *w);
/* Push in two steps: claim a position *pos for slot i (its word names it;
 * receivers wait at a claimed cell), then publish it.  Between them the
 * sender may write the message.  A claim not to be published is abandoned
 * (the cell becomes a skip).  The handle's busy flag is held throughout. */
IPCX_HIDDEN int ipcx__mq_claim(ipcx_mq *mq, uint32_t r, uint32_t i, uint64_t *pos);
IPCX_HIDDEN void ipcx__mq_publish(ipcx_mq *mq, uint32_t r, uint64_t pos, uint32_t i);
IPCX_HIDDEN void ipcx__mq_abandon(ipcx_mq *mq, uint32_t r, uint64_t pos);
/* Whether slot i's word w (FREE or LEVEL) is in its ring. */
IPCX_HIDDEN bool ipcx__mq_in_ring(ipcx_mq *mq, uint32_t i, uint64_t w);
/* Finish or undo the ring operations dead attach entry o was in (lock
 * held, o's process dead).  Slots it held are left to the caller. */
IPCX_HIDDEN void ipcx__mq_repair_intents(ipcx_mq *mq, uint32_t o);
/* The handle's busy flag: ring operations of one handle are serialised,
 * so that its intents name one operation each. */
IPCX_HIDDEN void ipcx__mq_busy(ipcx_mq *mq);
IPCX_HIDDEN void ipcx__mq_idle(ipcx_mq *mq);
/* The copying send and receive of a mailbox without persistence, shaping,
 * fair share or byte bound (they take the busy flag themselves).
 * fast_send: 1 sent; 0 no free slot (nothing done); 2 slot *loaned is
 * loaned to us (S_LOANED) but its level could not be claimed at once;
 * -EBADMSG.  fast_recv: 1 received into buf (m: len, prio, flags, seq); 0
 * level p is empty; -EMSGSIZE; -EBADMSG. */
IPCX_HIDDEN int ipcx__mq_fast_send(ipcx_mq *mq, uint32_t prio, const void *buf, uint32_t len,
				   uint32_t *loaned);
IPCX_HIDDEN int ipcx__mq_fast_recv(ipcx_mq *mq, uint32_t p, void *buf, uint64_t cap,
				   ipcx_mq_msg *m);
/* The same for runs of messages: fast_send_many sends v[0..n) while free
 * slots and level positions are there at once (a run of one priority per
 * ring operation); returns how many (0: none could go at once), or
 * -EBADMSG.  fast_recv_many receives from level p into v[0..n) what is
 * there at once (roomy: every v[k].cap is at least max_msg, so no message
 * can be too long for its place); returns how many (0: level p is empty,
 * or its next message is longer than v[0].cap: *too_long set), or
 * -EBADMSG. */
IPCX_HIDDEN int ipcx__mq_fast_send_many(ipcx_mq *mq, const ipcx_mq_vec *v, uint32_t n);
IPCX_HIDDEN int ipcx__mq_fast_recv_many(ipcx_mq *mq, uint32_t p, ipcx_mq_vec *v, uint32_t n,
					bool roomy, bool *too_long);
/* Zero-copy runs: fast_take_many takes from level p into m[0..n) what is
 * there at once (TAKEN, ours); how many (0: level p is empty), or
 * -EBADMSG.  fast_release_many releases the n taken messages of m (each
 * checked: one not held is left alone and makes it return -EINVAL): with
 * a log, their removals are logged first (one record per run of
 * consecutive numbers).  0, -EINVAL, or the log's error. */
IPCX_HIDDEN int ipcx__mq_fast_take_many(ipcx_mq *mq, uint32_t p, ipcx_mq_msg *m, uint32_t n);
IPCX_HIDDEN int ipcx__mq_fast_release_many(ipcx_mq *mq, ipcx_mq_msg *m, uint32_t n);
/* Whether ring r looks non-empty. */
IPCX_HIDDEN bool ipcx__mq_ring_busy(ipcx_mq *mq, uint32_t r);
/* Mark level p non-empty (after a push). */
IPCX_HIDDEN void ipcx__mq_mark(ipcx_mq *mq, uint32_t p);
/* Clear the bits of levels that look empty, then set again any that a
 * racing sender filled; set the bits of non-empty levels left clear. */
IPCX_HIDDEN void ipcx__mq_fix_bits(ipcx_mq *mq);
/* Whether a message (probably) waits. */
IPCX_HIDDEN bool ipcx__mq_readable(ipcx_mq *mq);
/* Change slot i's word from `from` to `state` owned by us (same level and
 * position).  true on success. */
IPCX_HIDDEN bool ipcx__mq_own(ipcx_mq *mq, uint32_t i, uint64_t from, uint32_t state,
			      uint64_t *w);
IPCX_HIDDEN uint64_t ipcx__mq_ring_bytes(uint32_t cap_log2);
/* Every slot in the free ring (the creator, before publication). */
IPCX_HIDDEN void ipcx__mq_ring_init(ipcx_mq *mq);

/* mq_log.c: the persistent log. */
#define MQ_LOG_HDR 64u
#define MQ_REC_HDR 32u
enum { MQ_REC_PUT = 0x5455504du /* "MPUT" */, MQ_REC_DEL = 0x4c45444du /* "MDEL" */ };

IPCX_HIDDEN int ipcx__mq_log_create(ipcx_mq *mq, const char *path, mode_t mode);
IPCX_HIDDEN int ipcx__mq_log_attach(ipcx_mq *mq);
IPCX_HIDDEN void ipcx__mq_log_unmap(ipcx_mq *mq);
/* The largest run of sequence numbers one removal record names. */
#define MQ_DEL_RANGE_MAX MQ_RUN_MAX
/* The mapped log at [off, off + len), populated, or NULL if the file does
 * not have it. */
IPCX_HIDDEN unsigned char *ipcx__mq_log_at(ipcx_mq *mq, uint64_t off, uint64_t len);
/* The epoch records are written in: read after the reservation. */
IPCX_HIDDEN uint32_t ipcx__mq_log_epoch(ipcx_mq *mq);
/* Store the removal of seq .. seq + n - 1 (1 <= n <= MQ_DEL_RANGE_MAX) at p. */
IPCX_HIDDEN void ipcx__mq_rec_del(unsigned char *p, uint64_t seq, uint32_t n, uint32_t epoch);
/* Message records are stored with their CRCs zero (mq_rec_write, below),
 * then sealed: n of them (rec[j] of rs[j] bytes), their CRCs computed
 * several at a time. */
IPCX_HIDDEN void ipcx__mq_rec_seal(unsigned char *const *rec, const uint32_t *rs, uint32_t n);
#define MQ_REC_CRC 24u /* offset of a record's crc */

static inline uint64_t mq_rec_size(uint32_t len)
{
	return ((uint64_t)MQ_REC_HDR + len + 7) & ~7ull;
}

/* A record's header (a file format: see mq_log.c), then len payload bytes
 * (a message's) and zeros to 8 bytes. */
struct mq_rec {
	uint32_t type;
	uint32_t len;
	uint64_t seq;
	uint32_t arg;   /* PUT: priority; DEL: how many numbers after seq it removes too */
	uint32_t epoch; /* version 2: as the header's when written (version 1: 0) */
	uint32_t crc;
	uint32_t reserved;
};

/* A message record at p, its CRC zero.  Returns its size. */
static inline uint64_t mq_rec_write(unsigned char *p, uint64_t seq, uint32_t prio,
				    const void *data, uint32_t len, uint32_t epoch)
{
	uint64_t rs = mq_rec_size(len), z = 0;
	struct mq_rec r = { MQ_REC_PUT, len, seq, prio, epoch, 0, 0 };
	memcpy(p, &r, sizeof r);
	if (len & 7)
		memcpy(p + rs - 8, &z, 8); /* the padding (the payload goes over the rest) */
	mq_copy(p + MQ_REC_HDR, data, len);
	return rs;
}
/* The same at offset off, for slot `slot`'s message and for one removal. */
IPCX_HIDDEN int ipcx__mq_log_put(ipcx_mq *mq, uint32_t slot, uint64_t seq, uint64_t off);
IPCX_HIDDEN int ipcx__mq_log_del(ipcx_mq *mq, uint64_t seq, uint64_t off);
IPCX_HIDDEN int ipcx__mq_log_sync(ipcx_mq *mq);
/* After a record (records of them) reached the file: fdatasync as the sync
 * mode says. */
IPCX_HIDDEN int ipcx__mq_log_after_write(ipcx_mq *mq);
IPCX_HIDDEN int ipcx__mq_log_after_writes(ipcx_mq *mq, uint32_t records);
/* Compact the log if it is long (takes the lock; cheap to call when it is
 * short).  Not with the busy flag or the lock held. */
IPCX_HIDDEN void ipcx__mq_log_maybe_compact(ipcx_mq *mq);
/* Largest log file: each handle maps this much address space once. */
#define MQ_LOG_WINDOW (16ull << 30)
#define MQ_LOG_NONE UINT64_MAX
#define MQ_LOG_BUSY (1ull << 63)
/* Reserve a message record of len payload bytes at the log's tail, growing
 * the file first so that the removal records of every message that can be
 * live are sure to fit too: a full disk shows here, as -ENOSPC, never later.
 * Counts the record in our entry's inflight.  0 and *off, or -errno. */
IPCX_HIDDEN int ipcx__mq_log_reserve_put(ipcx_mq *mq, uint32_t len, uint64_t *off);
/* Reserve a removal record (counted in inflight); MQ_LOG_NONE if there is no
 * room (only when the shared state is inconsistent).  The writer then calls
 * ipcx__mq_log_del / ipcx__mq_log_put and ipcx__mq_log_written. */
IPCX_HIDDEN uint64_t ipcx__mq_log_reserve(ipcx_mq *mq, uint64_t bytes);
/* As ipcx__mq_log_reserve for a removal record, with the lock held. */
IPCX_HIDDEN uint64_t ipcx__mq_log_reserve_locked(ipcx_mq *mq);
IPCX_HIDDEN void ipcx__mq_log_written(ipcx_mq *mq);
/* Reserve `bytes` of consecutive records at once (a batch's): message
 * records (puts: with room for every removal, as ipcx__mq_log_reserve_put)
 * or removal records.  Counted in inflight once.  0 and *off, or -errno. */
IPCX_HIDDEN int ipcx__mq_log_reserve_run(ipcx_mq *mq, uint64_t bytes, bool puts, uint64_t *off);
/* Write a removal record, then sync as the mode says. */
IPCX_HIDDEN int ipcx__mq_log_del_done(ipcx_mq *mq, uint64_t seq, uint64_t off);
/* After a death inside the lock: undo a half-done compaction. */
IPCX_HIDDEN void ipcx__mq_log_repair(ipcx_mq *mq);

/* mq_notify.c */
IPCX_HIDDEN void ipcx__mq_notify_stop(ipcx_mq *mq);
IPCX_HIDDEN void ipcx__mq_notify_rearm(ipcx_mq *mq);

#endif
