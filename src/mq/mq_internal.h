/*
 * Mailbox internals: the shared-memory layout (an ABI) and the handle.
 *
 * The region's data area holds, in order:
 *   struct mq_hdr      configuration, lock, state, futex words, attach table
 *   struct mq_slot[depth]   one descriptor per message buffer
 *   depth buffers of `stride` bytes (page aligned when max_msg >= 4 KiB)
 *
 * Every field of mq_hdr.st, the slots and the attach table is read and
 * written only with mq_hdr.lock held; the _Atomic fields are the exceptions
 * named in their comments.  A slot's `state` is the commit point of every
 * operation, so that a process dying inside the lock leaves enough to
 * rebuild every list (mq_repair).
 */
#ifndef IPCX_MQ_INTERNAL_H
#define IPCX_MQ_INTERNAL_H

#include <pthread.h>

#include <ipcx/mq.h>

#include "../region/region_internal.h"

#define MQ_MAGIC 0x31584f424c49414dull /* "MAILBOX1" */
#define MQ_ABI 1u
#define MQ_NONE 0xffffffffu

enum mq_slot_state {
	S_FREE = 0,
	S_LOANED = 1,     /* a producer is writing it */
	S_COMMITTING = 2, /* its log record is being written */
	S_QUEUED = 3,
	S_TAKEN = 4,     /* a consumer holds it */
	S_RELEASING = 5, /* persistent: its removal record is being written */
};

struct mq_slot {
	uint32_t state;
	uint32_t next;   /* free list or level list */
	uint32_t len;    /* loaned or message length */
	uint32_t prio;
	uint32_t flags;  /* IPCX_MQ_REDELIVERED */
	uint32_t gen;    /* bumped at every state change (stale handles, ABA) */
	uint32_t owner;  /* attach index of the loaner / taker */
	uint32_t sender; /* attach index of the sender (fair share), MQ_NONE */
	int32_t owner_pid;
	uint32_t pad;
	uint64_t owner_start; /* start time of owner_pid (recycled pids) */
	uint64_t seq;
	uint64_t pad2;
};
_Static_assert(sizeof(struct mq_slot) == 64, "slot is an ABI");

enum { ROLE_SEND = 1u, ROLE_RECV = 2u };

struct mq_attach {
	int32_t pid;     /* 0 = free entry */
	uint32_t roles;  /* ROLE_* seen so far */
	uint64_t start;  /* start time of pid */
	uint32_t queued; /* messages of this sender in the queue */
	uint32_t dead;   /* the process died; kept until queued drains */
	uint64_t pad;
};
_Static_assert(sizeof(struct mq_attach) == 32, "attach entry is an ABI");

/* GCRA token bucket: theoretical arrival times, in CLOCK_MONOTONIC ns. */
struct mq_bucket {
	uint64_t tat_msgs;
	uint64_t tat_bytes;
};

/* One priority level: a FIFO of slots. */
struct mq_level {
	uint32_t head, tail, cnt;
};

/* What every send and receive touches comes first, in as few cache lines
 * as possible (each line the lock holder writes moves between CPUs). */
struct mq_state {
	uint32_t free_head;
	uint32_t count;   /* queued */
	uint32_t nloaned; /* LOANED + COMMITTING */
	uint32_t ntaken;
	uint64_t bytes;      /* queued payload bytes */
	uint64_t bytes_held; /* queued + loaned + taken: what max_bytes bounds */
	uint64_t nonempty;   /* bit p: level p has messages */
	uint64_t seq_next;
	uint64_t sent, received;
	uint64_t log_tail;  /* next record offset in the log */
	uint64_t log_alloc; /* bytes of log file allocated (fallocate) */
	uint32_t nsenders;  /* live attach entries with ROLE_SEND */
	uint32_t pad0;
	struct mq_level lv[IPCX_MQ_PRIO_LEVELS];
	struct mq_bucket shape;
	uint64_t dropped, redelivered, cancelled, shaped, fair_waits;
	uint64_t recovered, log_skipped;
	uint64_t repairs;
};

struct mq_waitword {
	_Atomic uint32_t seq;
	_Atomic uint32_t sleepers;
	/* Mirrors for lock-free readiness checks, written under the lock and
	 * read anywhere (both in the not-empty block, one line for the two):
	 * messages queued, and free slots. */
	_Atomic uint32_t avail;
	_Atomic uint32_t space;
} IPCX_ALIGNED;

struct mq_hdr {
	/* Configuration: written once by the creator before publication. */
	uint64_t magic;
	uint32_t abi;
	uint32_t hdr_bytes; /* offset of the slot table */
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
	ipcx_mq_rate shape;
	ipcx_mq_rate shape_sender;
	ipcx_wait wait;
	uint32_t persistent;
	uint32_t mode;
	char log_path[IPCX_MQ_LOG_PATH_MAX];

	pthread_mutex_t lock IPCX_ALIGNED;
	struct mq_state st IPCX_ALIGNED;

	struct mq_waitword ne; /* not empty: receivers sleep here */
	struct mq_waitword nf; /* not full: senders sleep here */
	/* Log bookkeeping touched outside the lock. */
	struct {
		_Atomic uint32_t inflight;  /* records reserved, not yet written */
		_Atomic uint32_t unsynced;  /* batch mode: records since last sync */
		_Atomic uint64_t last_sync_ns;
		_Atomic uint32_t failed;    /* an fdatasync failed: refuse sends */
	} log IPCX_ALIGNED;

	struct mq_attach att[IPCX_MQ_ATTACH_MAX] IPCX_ALIGNED;
};

struct ipcx_mq {
	ipcx_region *region;
	struct mq_hdr *h;
	struct mq_slot *slots;
	unsigned char *bufs;
	uint32_t depth, max_msg, stride; /* validated copies */
	uint32_t idx;                    /* our attach entry */
	int32_t pid;
	uint64_t start;
	ipcx_wait wait;
	struct mq_bucket shape; /* per-sender bucket (under the mailbox lock) */
	uint32_t roles;         /* roles already published to our entry */
	int log_fd;             /* -1: memory only */
	unsigned char *log_map; /* the log file, mapped (MQ_LOG_WINDOW bytes) */
	uint64_t log_size;      /* file size as last seen by this handle */
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

/* mq.c */
IPCX_HIDDEN int ipcx__mq_lock(ipcx_mq *mq);
IPCX_HIDDEN void ipcx__mq_unlock(ipcx_mq *mq);
IPCX_HIDDEN void ipcx__mq_publish_avail(ipcx_mq *mq);
IPCX_HIDDEN void ipcx__mq_free_slot(ipcx_mq *mq, uint32_t i);
/* Pop a free slot (lock held): its index, MQ_NONE if none, or MQ_BAD if the
 * free list is corrupted. */
IPCX_HIDDEN uint32_t ipcx__mq_alloc_slot(ipcx_mq *mq);
#define MQ_BAD 0xfffffffeu
/* Free (or, while its messages are queued, retire) an attach entry. */
IPCX_HIDDEN void ipcx__mq_detach_entry(ipcx_mq *mq, uint32_t idx);
/* Liveness hook of every wait: reclaims what dead processes held.  0. */
IPCX_HIDDEN int ipcx__mq_check(void *mq);
/* Queue a recovered message (creator only, before publication). */
IPCX_HIDDEN int ipcx__mq_put_recovered(ipcx_mq *mq, const void *data, uint32_t len,
				       uint32_t prio, uint64_t seq);

/* mq_log.c: the persistent log. */
#define MQ_LOG_HDR 64u
#define MQ_REC_HDR 32u
enum { MQ_REC_PUT = 0x5455504du /* "MPUT" */, MQ_REC_DEL = 0x4c45444du /* "MDEL" */ };

IPCX_HIDDEN int ipcx__mq_log_create(ipcx_mq *mq, const char *path, mode_t mode);
IPCX_HIDDEN int ipcx__mq_log_attach(ipcx_mq *mq);
IPCX_HIDDEN void ipcx__mq_log_unmap(ipcx_mq *mq);
IPCX_HIDDEN int ipcx__mq_log_put(ipcx_mq *mq, uint32_t slot, uint64_t seq, uint64_t off);
IPCX_HIDDEN int ipcx__mq_log_del(ipcx_mq *mq, uint64_t seq, uint64_t off);
IPCX_HIDDEN int ipcx__mq_log_sync(ipcx_mq *mq);
/* After a record reached the file: fdatasync as the sync mode says. */
IPCX_HIDDEN int ipcx__mq_log_after_write(ipcx_mq *mq);
/* Reset an empty log to its header (lock held). */
IPCX_HIDDEN void ipcx__mq_log_compact(ipcx_mq *mq);
IPCX_HIDDEN uint64_t ipcx__mq_rec_size(uint32_t len);
/* Largest log file: each handle maps this much address space once. */
#define MQ_LOG_WINDOW (16ull << 30)
#define MQ_LOG_NONE UINT64_MAX
/* Reserve a message record of len payload bytes at the log's tail (lock
 * held), growing the file first so that the removal records of every live
 * message are sure to fit too: a full disk shows here, as -ENOSPC, never
 * later.  0 and *off, or -errno. */
IPCX_HIDDEN int ipcx__mq_log_reserve_put(ipcx_mq *mq, uint32_t len, uint64_t *off);
/* Reserve a removal record (lock held); MQ_LOG_NONE if there is no room
 * (only when the shared state is inconsistent).  The writer then calls
 * ipcx__mq_log_put / ipcx__mq_log_del_done and ipcx__mq_log_written. */
IPCX_HIDDEN uint64_t ipcx__mq_log_reserve(ipcx_mq *mq, uint64_t bytes);
IPCX_HIDDEN void ipcx__mq_log_written(ipcx_mq *mq);
/* Write a removal record, then sync as the mode says. */
IPCX_HIDDEN int ipcx__mq_log_del_done(ipcx_mq *mq, uint64_t seq, uint64_t off);

/* mq_notify.c */
IPCX_HIDDEN void ipcx__mq_notify_stop(ipcx_mq *mq);
IPCX_HIDDEN void ipcx__mq_notify_rearm(ipcx_mq *mq);

#endif
