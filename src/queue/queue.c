/* The bounded MPMC queue: Vyukov's per-slot sequence numbers in a region,
 * the wait engine for blocking, and a peer table for death handling. */
#include <ipcx/queue.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../region/region_internal.h"

/* "IPCXQUE1" little-endian */
#define QUEUE_MAGIC 0x3145555158435049ull
#define QUEUE_ABI 2u
/* The length of a skip record: a slot a producer claimed and never filled. */
#define LEN_SKIP 0xffffffffu
#define SLOT_HDR 16u

/* One handle's entry in the peer table.  `intent` is pos + 1 of the position
 * the handle is claiming or holds (0: none): written before the claiming CAS,
 * cleared after the slot is published (producer) or freed (consumer), so a
 * peer stuck at a position can find out who holds it. */
struct qpeer {
	_Atomic uint64_t who; /* 0: free; else the holder: pid | start time << 32 */
	_Atomic uint64_t intent;
	uint8_t pad[IPCX_CACHELINE - 16];
};

/* The shared layout (ABI version 2), at the start of the region's data. */
struct qshared {
	/* Constant after creation. */
	uint64_t magic;
	uint32_t abi;
	uint32_t capacity;
	uint32_t msg_max;
	uint32_t stride;
	uint64_t slots_off;
	uint8_t pad0[IPCX_CACHELINE - 32];
	_Atomic uint64_t tail IPCX_ALIGNED; /* next position to claim for sending */
	_Atomic uint64_t head IPCX_ALIGNED; /* next position to claim for receiving */
	struct {
		_Atomic uint32_t seq, sleepers;
	} not_empty IPCX_ALIGNED, not_full IPCX_ALIGNED;
	struct {
		_Atomic uint64_t skipped, lost;
		_Atomic uint32_t producers_ever, consumers_ever;
	} stats IPCX_ALIGNED;
	struct qpeer prod[IPCX_QUEUE_MAX_PEERS] IPCX_ALIGNED;
	struct qpeer cons[IPCX_QUEUE_MAX_PEERS];
};
_Static_assert(sizeof(struct qpeer) == IPCX_CACHELINE, "one peer per block");
_Static_assert(offsetof(struct qshared, tail) == 128 && offsetof(struct qshared, head) == 256 &&
		   offsetof(struct qshared, not_empty) == 384 &&
		   offsetof(struct qshared, not_full) == 512 &&
		   offsetof(struct qshared, stats) == 640 && offsetof(struct qshared, prod) == 768,
	       "queue layout is an ABI");
_Static_assert(sizeof(struct qshared) == 768 + 2 * IPCX_QUEUE_MAX_PEERS * IPCX_CACHELINE,
	       "queue layout is an ABI");

struct qslot {
	_Atomic uint64_t seq; /* pos: free for pos; pos + 1: holds pos's message */
	uint32_t len;
	uint32_t reserved;
	unsigned char data[];
};
_Static_assert(sizeof(struct qslot) == SLOT_HDR, "slot header is an ABI");

struct ipcx_queue {
	ipcx_region *r;
	struct qshared *s;
	char *slots;
	uint64_t mask;
	uint32_t cap, msg_max, stride, role;
	struct qpeer *me_prod, *me_cons;
	ipcx_wait wait;
	bool reserved, peeked;
	int32_t owner; /* the process that attached: only it may act through the handle */
	uint64_t res_pos, peek_pos;
	uint64_t last_check_ns;
};

static inline struct qslot *slot_at(const ipcx_queue *q, uint64_t pos)
{
	return (struct qslot *)(q->slots + (size_t)(pos & q->mask) * q->stride);
}

static uint64_t layout_bytes(uint32_t cap, uint32_t stride)
{
	return (uint64_t)sizeof(struct qshared) + (uint64_t)cap * stride;
}

/* This process's pid, cached: getpid() is a system call and the send and
 * receive paths check it.  A fork handler forgets it in the child.  With the
 * low 32 bits of its start time (clock ticks since boot) it names this
 * process in the peer table for good, since pids are recycled. */
static _Atomic int32_t self_pid;
static _Atomic uint64_t self_who;

static void forget_pid(void)
{
	atomic_store_explicit(&self_pid, 0, memory_order_relaxed); /* per process */
	atomic_store_explicit(&self_who, 0, memory_order_relaxed);
}

static void register_forget(void)
{
	pthread_atfork(NULL, NULL, forget_pid);
}

static int32_t my_pid(void)
{
	/* relaxed: every thread of a process computes the same value */
	int32_t p = atomic_load_explicit(&self_pid, memory_order_relaxed);
	if (ipcx__unlikely(p == 0)) {
		static pthread_once_t once = PTHREAD_ONCE_INIT;
		pthread_once(&once, register_forget);
		p = (int32_t)getpid();
		atomic_store_explicit(&self_pid, p, memory_order_relaxed);
	}
	return p;
}

static uint64_t who_word(int32_t pid, uint64_t start)
{
	return (start & 0xffffffffu) << 32 | (uint32_t)pid;
}

static uint64_t my_who(void)
{
	/* relaxed: as self_pid */
	uint64_t w = atomic_load_explicit(&self_who, memory_order_relaxed);
	if (ipcx__unlikely(w == 0)) {
		int32_t me = my_pid();
		w = who_word(me, ipcx__proc_start(me));
		atomic_store_explicit(&self_who, w, memory_order_relaxed);
	}
	return w;
}

/* ---- liveness and the peer table ---------------------------------------- */

/* Is the holder named by a peer-table word alive?  A word with our pid but
 * another start time names a process that had our pid before us. */
static bool who_alive(uint64_t who)
{
	int32_t pid = (int32_t)(uint32_t)who;
	if (pid <= 0)
		return false;
	if (pid == my_pid())
		return who == my_who();
	ipcx__peer p = IPCX__PEER_INIT;
	if (ipcx__peer_watch_start(&p, pid, who >> 32, 0xffffffffu) == -ESRCH)
		return false;
	bool alive = ipcx__peer_alive(&p);
	ipcx__peer_release(&p);
	return alive;
}

/* Whoever claimed position pos (intent pos + 1) in table t: 1 a live
 * candidate exists, 0 only dead candidates, -1 no candidate at all. */
static int claimant(struct qpeer *t, uint64_t pos)
{
	int found = -1;
	for (unsigned i = 0; i < IPCX_QUEUE_MAX_PEERS; i++) {
		/* acquire: a cleared intent comes with the slot update before it */
		if (atomic_load_explicit(&t[i].intent, memory_order_acquire) != pos + 1)
			continue;
		/* relaxed: a holder is a hint checked against the kernel, orders nothing */
		if (who_alive(atomic_load_explicit(&t[i].who, memory_order_relaxed)))
			return 1;
		found = 0;
	}
	return found;
}

static unsigned live_peers(struct qpeer *t)
{
	unsigned n = 0;
	for (unsigned i = 0; i < IPCX_QUEUE_MAX_PEERS; i++)
		/* relaxed: as in claimant() */
		n += who_alive(atomic_load_explicit(&t[i].who, memory_order_relaxed));
	return n;
}

/* An entry may be taken when nobody holds it and its intent, if any, names a
 * position the queue has moved past. */
static struct qpeer *peer_register(struct qpeer *t, _Atomic uint64_t *past, uint64_t lag)
{
	uint64_t me = my_who();
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < IPCX_QUEUE_MAX_PEERS; i++) {
			/* relaxed: the CAS below decides; this only skips busy entries */
			uint64_t who = atomic_load_explicit(&t[i].who, memory_order_relaxed);
			if (pass == 0 ? who != 0 : who == 0 || who_alive(who))
				continue;
			/* acquire (both): a claim we judge stale must really be past */
			uint64_t in = atomic_load_explicit(&t[i].intent, memory_order_acquire);
			if (in && in - 1 + lag >= atomic_load_explicit(past, memory_order_acquire))
				continue;
			/* relaxed: the entry carries no data until we write intent */
			if (atomic_compare_exchange_strong_explicit(
				&t[i].who, &who, me, memory_order_relaxed, memory_order_relaxed)) {
				/* relaxed: published by our first claim's CAS */
				atomic_store_explicit(&t[i].intent, 0, memory_order_relaxed);
				return &t[i];
			}
		}
	}
	return NULL;
}

/* ---- claiming and publishing --------------------------------------------- */

/* Claim the next position on one side: `idx` is tail (producers, a slot is
 * ready when its sequence number equals the position) or head (consumers,
 * ready at position + 1).  `me` records the claim before the CAS (see
 * struct qpeer).  1 claimed *out, 0 full (tail) or empty (head), -EBADMSG
 * corrupted indices. */
static int claim(ipcx_queue *q, _Atomic uint64_t *idx, uint64_t ready_off, struct qpeer *me,
		 uint64_t *out)
{
	/* relaxed: a stale index only fails the CAS below */
	uint64_t pos = atomic_load_explicit(idx, memory_order_relaxed);
	for (;;) {
		struct qslot *sl = slot_at(q, pos);
		/* acquire: pairs with the other side's release of this slot (its
		 * payload, or its reads of the previous lap, are done) */
		uint64_t seq = atomic_load_explicit(&sl->seq, memory_order_acquire);
		int64_t dif = (int64_t)(seq - (pos + ready_off));
		if (dif == 0) {
			/* relaxed: published to the other side by the CAS's release */
			atomic_store_explicit(&me->intent, pos + 1, memory_order_relaxed);
			/* acq_rel: release carries the intent; acquire orders our slot
			 * accesses after the claim */
			if (atomic_compare_exchange_weak_explicit(
				idx, &pos, pos + 1, memory_order_acq_rel, memory_order_relaxed)) {
				*out = pos;
				return 1;
			}
		} else if (dif < 0) {
			/* A failed CAS may have left a stale claim: clear it, so no
			 * one waits on us for a position we do not hold. */
			atomic_store_explicit(&me->intent, 0, memory_order_relaxed);
			return 0;
		} else {
			/* The slot is a lap ahead: someone claimed pos, and that claim
			 * happened before the slot update we just acquired, so the
			 * index must have moved.  If it has not, the memory is
			 * corrupted; stop rather than spin for ever. */
			uint64_t now = atomic_load_explicit(idx, memory_order_relaxed);
			if (now == pos)
				return -EBADMSG;
			pos = now;
		}
	}
}

static inline int claim_tail(ipcx_queue *q, uint64_t *out)
{
	return claim(q, &q->s->tail, 0, q->me_prod, out);
}

static inline int claim_head(ipcx_queue *q, uint64_t *out)
{
	return claim(q, &q->s->head, 1, q->me_cons, out);
}

static void publish(ipcx_queue *q, uint64_t pos, uint32_t len)
{
	struct qslot *sl = slot_at(q, pos);
	sl->len = len;
	/* release: the payload and length before the slot reads as full */
	atomic_store_explicit(&sl->seq, pos + 1, memory_order_release);
	/* release: a peer that sees the intent cleared sees the slot published */
	atomic_store_explicit(&q->me_prod->intent, 0, memory_order_release);
	ipcx__wake_one(&q->s->not_empty.seq, &q->s->not_empty.sleepers);
}

static void free_slot(ipcx_queue *q, uint64_t pos)
{
	/* release: our reads of the payload finish before a producer reuses it */
	atomic_store_explicit(&slot_at(q, pos)->seq, pos + q->cap, memory_order_release);
	/* release: as in publish() */
	atomic_store_explicit(&q->me_cons->intent, 0, memory_order_release);
	ipcx__wake_one(&q->s->not_full.seq, &q->s->not_full.sleepers);
}

/* ---- repairs after a peer's death (called every liveness slice) ---------- */

/* A consumer waits at head: if a dead producer holds that slot, publish a
 * skip record for it.  -EPIPE when empty and no producer is left. */
static int consumer_check(void *arg)
{
	ipcx_queue *q = arg;
	struct qshared *s = q->s;
	q->last_check_ns = ipcx__now_ns();
	/* acquire: intents written before the tail CAS are visible */
	uint64_t head = atomic_load_explicit(&s->head, memory_order_acquire);
	uint64_t tail = atomic_load_explicit(&s->tail, memory_order_acquire); /* as head */
	if (tail == head) {
		/* relaxed: a flag that only ever goes 0 -> 1; the tail re-read decides */
		if (atomic_load_explicit(&s->stats.producers_ever, memory_order_relaxed) &&
		    live_peers(s->prod) == 0 &&
		    atomic_load_explicit(&s->tail, memory_order_acquire) ==
			head) /* none raced in */
			return -EPIPE;
		return 0;
	}
	if ((int64_t)(tail - head) < 0)
		return 0;
	struct qslot *sl = slot_at(q, head);
	/* acquire: a published slot's length is visible to whoever claims it */
	if (atomic_load_explicit(&sl->seq, memory_order_acquire) != head)
		return 0; /* published, or not ours to judge */
	if (claimant(s->prod, head) != 0)
		return 0; /* alive, or it published meanwhile */
	/* Every candidate is dead, so the owner is: write the skip record on its
	 * behalf.  Racing repairers write the same length; one CAS wins. */
	sl->len = LEN_SKIP;
	uint64_t want = head;
	/* release: the skip length before the slot reads as full */
	if (atomic_compare_exchange_strong_explicit(&sl->seq, &want, head + 1, memory_order_release,
						    memory_order_relaxed))
		ipcx__wake(&s->not_empty.seq, &s->not_empty.sleepers);
	return 0;
}

/* A producer waits at tail on a full slot: if a dead consumer holds it, free
 * it (the message it took is lost).  -EPIPE when no consumer is left. */
static int producer_check(void *arg)
{
	ipcx_queue *q = arg;
	struct qshared *s = q->s;
	q->last_check_ns = ipcx__now_ns();
	/* acquire (all three): claims written before the CASes are visible */
	uint64_t tail = atomic_load_explicit(&s->tail, memory_order_acquire);
	uint64_t head = atomic_load_explicit(&s->head, memory_order_acquire);
	uint64_t prev = tail - q->cap; /* the position whose message fills our slot */
	struct qslot *sl = slot_at(q, tail);
	uint64_t seq = atomic_load_explicit(&sl->seq, memory_order_acquire);
	if (seq != prev + 1)
		return 0;
	if ((int64_t)(head - prev) <= 0) { /* not claimed: really full */
		if (atomic_load_explicit(&s->stats.consumers_ever, memory_order_relaxed) &&
		    live_peers(s->cons) == 0)
			return -EPIPE;
		return 0;
	}
	if (claimant(s->cons, prev) != 0)
		return 0;
	uint64_t want = prev + 1;
	/* release: nothing to publish but the slot's new lap; acquire-free CAS */
	if (atomic_compare_exchange_strong_explicit(&sl->seq, &want, tail, memory_order_release,
						    memory_order_relaxed)) {
		atomic_fetch_add_explicit(&s->stats.lost, 1, memory_order_relaxed); /* a count */
		ipcx__wake(&s->not_full.seq, &s->not_full.sleepers);
	}
	return 0;
}

/* ---- waiting ------------------------------------------------------------- */

struct claim_arg {
	ipcx_queue *q;
	uint64_t pos;
};

static int ready_tail(void *arg)
{
	struct claim_arg *a = arg;
	return claim_tail(a->q, &a->pos);
}

static int ready_head(void *arg)
{
	struct claim_arg *a = arg;
	return claim_head(a->q, &a->pos);
}

static int wait_claim(ipcx_queue *q, bool produce, const ipcx_wait *call, uint64_t *pos)
{
	struct claim_arg a = {q, 0};
	int r = produce ? claim_tail(q, &a.pos) : claim_head(q, &a.pos);
	if (ipcx__likely(r > 0)) {
		*pos = a.pos;
		return 0;
	}
	if (r < 0)
		return r;
	ipcx_wait w = ipcx__wait_resolve(call, &q->wait);
	ipcx__ready_fn check = produce ? producer_check : consumer_check;
	if (w.mode == IPCX_WAIT_NONBLOCK) {
		/* Nobody waits to notice a dead peer: look now and then. */
		if (ipcx__now_ns() - q->last_check_ns >= IPCX__LIVENESS_SLICE_NS) {
			r = check(q);
			if (r < 0)
				return r;
			r = produce ? claim_tail(q, &a.pos) : claim_head(q, &a.pos);
			if (r > 0) {
				*pos = a.pos;
				return 0;
			}
			if (r < 0)
				return r;
		}
		return -EAGAIN;
	}
	ipcx__waitspec ws = {
	    .seq = produce ? &q->s->not_full.seq : &q->s->not_empty.seq,
	    .sleepers = produce ? &q->s->not_full.sleepers : &q->s->not_empty.sleepers,
	    .ready = produce ? ready_tail : ready_head,
	    .ready_arg = &a,
	    .check = check,
	    .check_arg = q,
	};
	r = ipcx__wait(&w, &ws);
	if (r > 0) {
		*pos = a.pos;
		return 0;
	}
	return r;
}

/* ---- public API ---------------------------------------------------------- */

static int check_role(uint32_t role)
{
	return role & ~(uint32_t)(IPCX_QUEUE_PRODUCER | IPCX_QUEUE_CONSUMER) ? -EINVAL : 0;
}

/* Build the handle over a mapped region: validate the header (read once). */
static int attach(ipcx_queue **out, ipcx_region *r, uint32_t role, const ipcx_wait *wait)
{
	struct qshared *s = ipcx_region_data(r);
	size_t size = ipcx_region_size(r);
	if (size < sizeof *s)
		return -EBADMSG;
	uint64_t magic = s->magic, off = s->slots_off;
	uint32_t abi = s->abi, cap = s->capacity, msg_max = s->msg_max, stride = s->stride;
	if (magic != QUEUE_MAGIC)
		return -EBADMSG;
	if (abi != QUEUE_ABI)
		return -EPROTONOSUPPORT;
	if (cap < 2 || cap > IPCX_QUEUE_CAPACITY_MAX || (cap & (cap - 1)) || msg_max == 0 ||
	    msg_max > IPCX_QUEUE_MSG_MAX || stride < SLOT_HDR + msg_max || stride % 8 ||
	    off != sizeof *s || layout_bytes(cap, stride) > size)
		return -EBADMSG;
	ipcx_queue *q = calloc(1, sizeof *q);
	if (!q)
		return -ENOMEM;
	q->r = r;
	q->s = s;
	q->slots = (char *)s + off;
	q->cap = cap;
	q->mask = cap - 1;
	q->msg_max = msg_max;
	q->stride = stride;
	q->role = role;
	q->owner = my_pid();
	q->wait = ipcx__wait_resolve(NULL, wait && wait->mode ? wait : NULL);
	/* Before this handle can act as a waker: its fence depends on it. */
	ipcx__runtime_init();
	if (role & IPCX_QUEUE_PRODUCER) {
		q->me_prod = peer_register(s->prod, &s->head, 0);
		if (!q->me_prod) {
			free(q);
			return -EUSERS;
		}
		/* relaxed: a hint read only by liveness checks */
		atomic_store_explicit(&s->stats.producers_ever, 1, memory_order_relaxed);
	}
	if (role & IPCX_QUEUE_CONSUMER) {
		q->me_cons = peer_register(s->cons, &s->tail, cap);
		if (!q->me_cons) {
			if (q->me_prod)
				atomic_store_explicit(&q->me_prod->who, 0,
						      memory_order_release); /* as close */
			free(q);
			return -EUSERS;
		}
		atomic_store_explicit(&s->stats.consumers_ever, 1,
				      memory_order_relaxed); /* a hint */
	}
	*out = q;
	return 0;
}

IPCX_API int ipcx_queue_create(ipcx_queue **out, const char *name, uint32_t role,
			       const ipcx_queue_opts *opts)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	uint32_t cap = opts && opts->capacity ? opts->capacity : 1024;
	uint32_t msg_max = opts && opts->msg_max ? opts->msg_max : 64;
	if (check_role(role) || cap < 2 || cap > IPCX_QUEUE_CAPACITY_MAX || (cap & (cap - 1)) ||
	    msg_max > IPCX_QUEUE_MSG_MAX)
		return -EINVAL;
	/* Slots on 64-byte boundaries: neighbours written by different
	 * producers do not share a line. */
	uint32_t stride = (SLOT_HDR + msg_max + 63u) & ~63u;
	ipcx_region *r;
	int rc =
	    name ? ipcx__region_create(&r, name, IPCX_KIND_QUEUE, (size_t)layout_bytes(cap, stride),
				       opts ? &opts->region : NULL)
		 : ipcx__region_create_anon(&r, IPCX_KIND_QUEUE, (size_t)layout_bytes(cap, stride),
					    opts ? &opts->region : NULL);
	if (rc)
		return rc;
	struct qshared *s = ipcx_region_data(r);
	s->magic = QUEUE_MAGIC;
	s->abi = QUEUE_ABI;
	s->capacity = cap;
	s->msg_max = msg_max;
	s->stride = stride;
	s->slots_off = sizeof *s;
	for (uint32_t i = 0; i < cap; i++)
		atomic_init(&((struct qslot *)((char *)s + sizeof *s + (size_t)i * stride))->seq,
			    i);
	ipcx__region_publish(r);
	rc = attach(out, r, role, opts ? &opts->wait : NULL);
	if (rc) {
		if (name)
			ipcx_region_unlink(name);
		ipcx_region_close(r);
	}
	return rc;
}

IPCX_API int ipcx_queue_open(ipcx_queue **out, const char *name, uint32_t role,
			     const ipcx_wait *wait)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (check_role(role))
		return -EINVAL;
	ipcx_region *r;
	int rc = ipcx_region_open(&r, name, IPCX_KIND_QUEUE);
	if (rc)
		return rc;
	if ((rc = attach(out, r, role, wait)))
		ipcx_region_close(r);
	return rc;
}

IPCX_API int ipcx_queue_open_fd(ipcx_queue **out, int fd, uint32_t role, const ipcx_wait *wait)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (check_role(role))
		return -EINVAL;
	ipcx_region *r;
	int rc = ipcx_region_open_fd(&r, fd, IPCX_KIND_QUEUE);
	if (rc)
		return rc;
	if ((rc = attach(out, r, role, wait)))
		ipcx_region_close(r);
	return rc;
}

IPCX_API int ipcx_queue_close(ipcx_queue *q)
{
	if (!q)
		return 0;
	if (q->owner != my_pid()) {
		/* Inherited across fork: the peer entries are the parent's. */
		ipcx_region_close(q->r);
		free(q);
		return 0;
	}
	if (q->reserved)
		publish(q, q->res_pos, LEN_SKIP);
	if (q->peeked)
		free_slot(q, q->peek_pos);
	/* release: our last slot updates before the entry reads free */
	if (q->me_prod)
		atomic_store_explicit(&q->me_prod->who, 0, memory_order_release);
	if (q->me_cons)
		atomic_store_explicit(&q->me_cons->who, 0, memory_order_release); /* as above */
	/* Someone waiting may now have nobody left: let it look. */
	ipcx__wake(&q->s->not_empty.seq, &q->s->not_empty.sleepers);
	ipcx__wake(&q->s->not_full.seq, &q->s->not_full.sleepers);
	ipcx_region_close(q->r);
	free(q);
	return 0;
}

IPCX_API int ipcx_queue_unlink(const char *name)
{
	return ipcx_region_unlink(name);
}

IPCX_API int ipcx_queue_fd(const ipcx_queue *q)
{
	return q ? ipcx_region_fd(q->r) : -EINVAL;
}

IPCX_API size_t ipcx_queue_msg_max(const ipcx_queue *q)
{
	return q ? q->msg_max : 0;
}

IPCX_API int ipcx_queue_reserve(ipcx_queue *q, void **slot, const ipcx_wait *w)
{
	if (!q || !slot)
		return -EINVAL;
	if (!q->me_prod || q->owner != my_pid())
		return -EPERM;
	if (q->reserved)
		return -EBUSY;
	int rc = wait_claim(q, true, w, &q->res_pos);
	if (rc)
		return rc;
	q->reserved = true;
	*slot = slot_at(q, q->res_pos)->data;
	return 0;
}

IPCX_API int ipcx_queue_commit(ipcx_queue *q, size_t len)
{
	if (!q || !q->reserved)
		return -EINVAL;
	if (len > q->msg_max)
		return -EMSGSIZE;
	q->reserved = false;
	publish(q, q->res_pos, (uint32_t)len);
	return 0;
}

IPCX_API int ipcx_queue_send(ipcx_queue *q, const void *buf, size_t len, const ipcx_wait *w)
{
	if (!q || (!buf && len))
		return -EINVAL;
	if (!q->me_prod || q->owner != my_pid())
		return -EPERM;
	if (q->reserved)
		return -EBUSY;
	if (len > q->msg_max)
		return -EMSGSIZE;
	uint64_t pos = 0;
	int rc = wait_claim(q, true, w, &pos);
	if (rc)
		return rc;
	memcpy(slot_at(q, pos)->data, buf, len);
	publish(q, pos, (uint32_t)len);
	return 0;
}

IPCX_API ssize_t ipcx_queue_peek(ipcx_queue *q, const void **msg, const ipcx_wait *w)
{
	if (!q || !msg)
		return -EINVAL;
	if (!q->me_cons || q->owner != my_pid())
		return -EPERM;
	if (q->peeked)
		return -EBUSY;
	for (;;) {
		uint64_t pos = 0;
		int rc = wait_claim(q, false, w, &pos);
		if (rc)
			return rc;
		struct qslot *sl = slot_at(q, pos);
		uint32_t len = sl->len; /* read once: another process wrote it */
		if (ipcx__likely(len <= q->msg_max)) {
			q->peeked = true;
			q->peek_pos = pos;
			*msg = sl->data;
			return (ssize_t)len;
		}
		free_slot(q, pos);
		if (len != LEN_SKIP)
			return -EBADMSG;
		atomic_fetch_add_explicit(&q->s->stats.skipped, 1,
					  memory_order_relaxed); /* a count */
	}
}

IPCX_API int ipcx_queue_release(ipcx_queue *q)
{
	if (!q || !q->peeked)
		return -EINVAL;
	q->peeked = false;
	free_slot(q, q->peek_pos);
	return 0;
}

IPCX_API ssize_t ipcx_queue_recv(ipcx_queue *q, void *buf, size_t cap, const ipcx_wait *w)
{
	if (!q || !buf)
		return -EINVAL;
	if (cap < q->msg_max)
		return -EINVAL;
	const void *msg;
	ssize_t n = ipcx_queue_peek(q, &msg, w);
	if (n < 0)
		return n;
	memcpy(buf, msg, (size_t)n);
	ipcx_queue_release(q);
	return n;
}

IPCX_API int ipcx_queue_stat(const ipcx_queue *q, ipcx_queue_stats *st)
{
	if (!q || !st)
		return -EINVAL;
	memset(st, 0, sizeof *st);
	struct qshared *s = q->s;
	st->capacity = q->cap;
	st->msg_max = q->msg_max;
	/* acquire/relaxed below: a snapshot for display, ordered against nothing */
	uint64_t head = atomic_load_explicit(&s->head, memory_order_acquire);
	uint64_t tail = atomic_load_explicit(&s->tail, memory_order_acquire);
	st->depth = (int64_t)(tail - head) > 0 ? tail - head : 0;
	for (unsigned i = 0; i < IPCX_QUEUE_MAX_PEERS; i++) {
		st->producers += atomic_load_explicit(&s->prod[i].who, memory_order_relaxed) != 0;
		st->consumers += atomic_load_explicit(&s->cons[i].who, memory_order_relaxed) != 0;
	}
	st->skipped = atomic_load_explicit(&s->stats.skipped, memory_order_relaxed);
	st->lost = atomic_load_explicit(&s->stats.lost, memory_order_relaxed);
	return 0;
}
