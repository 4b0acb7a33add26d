/*
 * The SPSC ring.
 *
 * Storage is a power-of-two byte array indexed by free-running 64-bit
 * counters (tail: bytes published by the producer; head: bytes released by
 * the consumer), masked on use, as in Linux's kfifo.  A message is a record:
 * an 8-byte header {len, type} and the payload, padded to 8 bytes.  A record
 * never wraps: when it does not fit before the end of the array, the
 * producer writes a PAD record to the end and starts again at offset 0, so
 * every message is contiguous (zero-copy needs that).  Hence the largest
 * message is capacity/2 - 8: whatever the position, a record of that size
 * plus the padding in front of it fits in an empty ring.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ipcx/ring.h>

#include "../region/region_internal.h"

#define RING_MAGIC 0x31474e5258435049ull /* "IPCXRNG1" */
#define RING_ABI 2u
#define REC_HDR 8u
#define REC_MSG 0x4753u /* "SG" */
#define REC_PAD 0x4150u /* "PA" */
#define RING_MIN_CAP 4096ull
#define RING_MAX_CAP (1ull << 40)
#define RING_DEFAULT_CAP (1ull << 20)
#define PREFETCH_AHEAD 512u
/* Under IPCX_RING_MORE the producer publishes once this much is pending
 * (or a quarter of the ring, if smaller).  A consumer that is handed small
 * batches reads lines the producer is still writing next to, and both
 * stall: streaming 64-byte messages on the development VM, batches of
 * 1 KiB and 4.5 KiB ran at 22-23 M msgs/s, batches of 18 KiB at 61 M/s,
 * the floor's rate (docs/ring.md). */
#define MORE_MAX (16u << 10)

enum { ROLE_NONE = 0, ROLE_ATTACHED = 1, ROLE_CLOSED = 2 };

/* A role slot is one word: the holder's pid in bits 0-31, ROLE_* in bits
 * 32-33, and the low 30 bits of the holder's start time (clock ticks since
 * boot) above, so that taking, closing and inspecting a role are single
 * atomic operations and a pid reused by another process is not mistaken
 * for the holder. */
struct role_slot {
	_Atomic uint64_t word;
};

#define START_MASK ((1ull << 30) - 1)

static inline uint64_t role_word(int32_t pid, uint32_t state, uint64_t start)
{
	return (start & START_MASK) << 34 | (uint64_t)(state & 3) << 32 | (uint32_t)pid;
}
static inline int32_t role_pid(uint64_t w)
{
	return (int32_t)(uint32_t)w;
}
static inline uint32_t role_state(uint64_t w)
{
	return (uint32_t)(w >> 32) & 3;
}
static inline uint64_t role_start(uint64_t w)
{
	return w >> 34;
}
static inline uint32_t slot_state(struct role_slot *s, memory_order mo)
{
	return role_state(atomic_load_explicit(&s->word, mo));
}

/* The ring's shared header: an ABI.  Each block is written by one side. */
struct ring_hdr {
	/* Written once by the creator. */
	uint64_t magic;
	uint32_t abi;
	uint32_t hdr_bytes;
	uint64_t capacity;
	uint8_t pad0[IPCX_CACHELINE - 24];
	/* Producer-written. */
	IPCX_ALIGNED _Atomic uint64_t tail;
	/* Consumer-written. */
	IPCX_ALIGNED _Atomic uint64_t head;
	/* The consumer sleeps here waiting for data; the producer wakes it. */
	IPCX_ALIGNED _Atomic uint32_t data_seq;
	_Atomic uint32_t data_sleepers;
	/* The producer sleeps here waiting for room; the consumer wakes it. */
	IPCX_ALIGNED _Atomic uint32_t space_seq;
	_Atomic uint32_t space_sleepers;
	/* Producer-written, rarely: the head value at which it has the room it
	 * is waiting for (0: not waiting).  The consumer publishes its head in
	 * batches and at once when it reaches this. */
	_Atomic uint64_t space_want;
	/* Who is attached. */
	IPCX_ALIGNED struct role_slot producer;
	struct role_slot consumer;
	uint8_t pad1[IPCX_CACHELINE - 2 * sizeof(struct role_slot)];
};
#define RING_HDR_BYTES 1024u
_Static_assert(sizeof(struct ring_hdr) <= RING_HDR_BYTES, "ring header fits its block");
_Static_assert(offsetof(struct ring_hdr, tail) == 128, "ring layout is an ABI");
_Static_assert(offsetof(struct ring_hdr, head) == 256, "ring layout is an ABI");
_Static_assert(offsetof(struct ring_hdr, data_seq) == 384, "ring layout is an ABI");
_Static_assert(offsetof(struct ring_hdr, space_seq) == 512, "ring layout is an ABI");
_Static_assert(offsetof(struct ring_hdr, producer) == 640, "ring layout is an ABI");

struct ipcx_ring {
	ipcx_region *region;
	struct ring_hdr *h;
	uint8_t *buf;
	uint64_t cap, mask, max_msg;
	int role;
	ipcx_wait wait;
	ipcx__peer peer;
	uint64_t peer_word;  /* the peer's role word that `peer` watches */
	uint64_t my_word;    /* our role word while attached */
	/* producer */
	uint64_t tail;       /* next write position (published or pending) */
	uint64_t tail_pub;   /* last published tail */
	uint64_t head_cache; /* consumer's head, as last read */
	uint64_t resv_at;    /* position of the open reservation's record */
	uint64_t resv_len;   /* its payload length; UINT64_MAX = none */
	int want_set;        /* space_want holds a request of ours */
	uint64_t more_max;   /* publish under IPCX_RING_MORE past this many bytes */
	uint64_t fast_len;   /* payloads shorter than this may take the fast
	                      * path of make_room; 0 while none may (not the
	                      * producer, a reservation open, space_want set) */
	/* consumer */
	uint64_t head;       /* next read position (released up to here) */
	uint64_t head_pub;   /* last published head */
	uint64_t tail_cache; /* producer's tail, as last read */
	uint64_t peek_end;   /* end of the peeked record, 0 = none */
	uint64_t head_due;   /* publish the head once it reaches this */
	int consumer;        /* role == IPCX_RING_CONSUMER (the fast path's test) */
};

static inline uint64_t rec_size(uint64_t len)
{
	return (REC_HDR + len + 7) & ~7ull;
}

/* Payloads of ALIGN_MIN bytes or more start on a cache line, so they are
 * copied with line-aligned stores (no store split across two lines) and
 * zero-copy users get aligned buffers.  Smaller ones stay packed: for them
 * the gap (8 to 56 bytes, a padding record) would cost more lines per
 * message than the split stores it saves. */
#define ALIGN_MIN 256u
static inline uint64_t align_gap(uint64_t off, uint64_t len)
{
	if (len < ALIGN_MIN)
		return 0;
	uint64_t mis = (off + REC_HDR) & 63;
	return mis ? 64 - mis : 0; /* off is 8-aligned: 8 <= gap <= 56 */
}

/* The producer's fast path (make_room) serves payloads below ALIGN_MIN
 * (no alignment gap) when no reservation is open and no room request is
 * pending; everything else goes the slow way, which handles all cases. */
static void gate(ipcx_ring *r)
{
	r->fast_len = r->role == IPCX_RING_PRODUCER && r->resv_len == UINT64_MAX && !r->want_set
			      ? ALIGN_MIN
			      : 0;
}

/* A padding record of `bytes` (>= REC_HDR) at offset off. */
static void write_pad(ipcx_ring *r, uint64_t off, uint64_t bytes)
{
	uint32_t pad[2] = { (uint32_t)(bytes - REC_HDR), REC_PAD };
	memcpy(r->buf + off, pad, sizeof pad);
}

static struct role_slot *my_slot(ipcx_ring *r)
{
	return r->role == IPCX_RING_PRODUCER ? &r->h->producer : &r->h->consumer;
}

static struct role_slot *peer_slot(ipcx_ring *r)
{
	return r->role == IPCX_RING_PRODUCER ? &r->h->consumer : &r->h->producer;
}

/* ---- attach / detach ----------------------------------------------------- */

static int attach_role(ipcx_ring *r)
{
	if (r->role == IPCX_RING_NOROLE)
		return 0;
	struct role_slot *s = my_slot(r);
	int32_t me = (int32_t)getpid();
	uint64_t mine = role_word(me, ROLE_ATTACHED, ipcx__proc_start(me));
	for (int tries = 0; tries < 100; tries++) {
		uint64_t cur = atomic_load_explicit(&s->word, memory_order_acquire);
		if (role_state(cur) == ROLE_ATTACHED) {
			ipcx__peer p = IPCX__PEER_INIT;
			int alive = ipcx__peer_watch_start(&p, role_pid(cur), role_start(cur),
							   START_MASK) == 0 &&
				    ipcx__peer_alive(&p);
			ipcx__peer_release(&p);
			if (alive)
				return -EBUSY;
		}
		/* acq_rel: we take the slot from whoever held it (or nobody); a
		 * racing attacher's CAS fails and it sees us ATTACHED and alive */
		if (atomic_compare_exchange_strong_explicit(&s->word, &cur, mine, memory_order_acq_rel,
							    memory_order_acquire)) {
			r->my_word = mine;
			return 0;
		}
	}
	return -EBUSY;
}

static int ring_map(ipcx_ring **out, ipcx_region *reg, int role, const ipcx_wait *wait)
{
	*out = NULL;
	if (role < IPCX_RING_NOROLE || role > IPCX_RING_CONSUMER ||
	    (wait && wait->mode > IPCX_WAIT_NONBLOCK)) {
		ipcx_region_close(reg);
		return -EINVAL;
	}
	ipcx_ring *r = calloc(1, sizeof *r);
	if (!r) {
		ipcx_region_close(reg);
		return -ENOMEM;
	}
	r->region = reg;
	r->h = ipcx_region_data(reg);
	r->role = role;
	r->wait = ipcx__wait_resolve(wait, NULL);
	r->peer = (ipcx__peer)IPCX__PEER_INIT;
	r->resv_len = UINT64_MAX;

	/* Validate the shared header: each field read once. */
	uint64_t magic = r->h->magic, cap = r->h->capacity;
	uint32_t abi = r->h->abi, hdr_bytes = r->h->hdr_bytes;
	uint64_t room = ipcx_region_size(reg);
	int rc = 0;
	if (room < RING_HDR_BYTES || magic != RING_MAGIC)
		rc = -EBADMSG;
	else if (abi != RING_ABI)
		rc = -EPROTONOSUPPORT;
	else if (hdr_bytes != RING_HDR_BYTES || cap < RING_MIN_CAP || cap > RING_MAX_CAP ||
		 (cap & (cap - 1)) || cap > room - RING_HDR_BYTES)
		rc = -EBADMSG;
	if (rc) {
		ipcx_region_close(reg);
		free(r);
		return rc;
	}
	r->cap = cap;
	r->mask = cap - 1;
	r->max_msg = cap / 2 - 64;
	r->more_max = cap / 4 < MORE_MAX ? cap / 4 : MORE_MAX;
	r->buf = (uint8_t *)r->h + RING_HDR_BYTES;
	ipcx__runtime_init();

	if ((rc = attach_role(r))) {
		ipcx_region_close(reg);
		free(r);
		return rc;
	}
	/* Resume from the shared indices (a role may be taken over). */
	uint64_t head = atomic_load_explicit(&r->h->head, memory_order_acquire);
	uint64_t tail = atomic_load_explicit(&r->h->tail, memory_order_acquire);
	if (tail - head > cap) {
		ipcx_ring_close(r);
		return -EBADMSG;
	}
	r->tail = r->tail_pub = tail;
	r->head_cache = head;
	r->head = r->head_pub = head;
	r->head_due = head + cap / 16;
	r->tail_cache = tail;
	r->consumer = role == IPCX_RING_CONSUMER;
	gate(r);
	*out = r;
	return 0;
}

static uint64_t cap_round(size_t want)
{
	uint64_t c = want ? (uint64_t)want : RING_DEFAULT_CAP;
	if (c < RING_MIN_CAP)
		c = RING_MIN_CAP;
	if (c > RING_MAX_CAP)
		return 0;
	c--;
	for (unsigned s = 1; s < 64; s <<= 1)
		c |= c >> s;
	return c + 1;
}

static int ring_create(ipcx_ring **out, const char *name, const ipcx_ring_opts *opts, int role)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	uint64_t cap = cap_round(opts ? opts->capacity : 0);
	if (!cap || role < IPCX_RING_NOROLE || role > IPCX_RING_CONSUMER)
		return -EINVAL;
	ipcx_region_opts ro = { .mode = opts ? opts->mode : 0,
				.flags = opts ? opts->region_flags : 0 };
	ipcx_region *reg;
	int rc = name ? ipcx__region_create(&reg, name, IPCX_KIND_RING, RING_HDR_BYTES + cap, &ro)
		      : ipcx__region_create_anon(&reg, IPCX_KIND_RING, RING_HDR_BYTES + cap, &ro);
	if (rc)
		return rc;
	struct ring_hdr *h = ipcx_region_data(reg);
	h->magic = RING_MAGIC;
	h->abi = RING_ABI;
	h->hdr_bytes = RING_HDR_BYTES;
	h->capacity = cap;
	ipcx__region_publish(reg);
	rc = ring_map(out, reg, role, opts ? &opts->wait : NULL);
	if (rc && name)
		ipcx_region_unlink(name);
	return rc;
}

IPCX_API int ipcx_ring_create(ipcx_ring **out, const char *name, const ipcx_ring_opts *opts,
			      int role)
{
	if (!name)
		return -EINVAL;
	return ring_create(out, name, opts, role);
}

IPCX_API int ipcx_ring_create_anon(ipcx_ring **out, const ipcx_ring_opts *opts, int role)
{
	return ring_create(out, NULL, opts, role);
}

IPCX_API int ipcx_ring_open(ipcx_ring **out, const char *name, int role, const ipcx_wait *wait)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	ipcx_region *reg;
	int rc = ipcx_region_open(&reg, name, IPCX_KIND_RING);
	return rc ? rc : ring_map(out, reg, role, wait);
}

IPCX_API int ipcx_ring_open_fd(ipcx_ring **out, int fd, int role, const ipcx_wait *wait)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	ipcx_region *reg;
	int rc = ipcx_region_open_fd(&reg, fd, IPCX_KIND_RING);
	return rc ? rc : ring_map(out, reg, role, wait);
}

static void wake_consumer(ipcx_ring *r)
{
	ipcx__wake(&r->h->data_seq, &r->h->data_sleepers);
}

static void wake_producer(ipcx_ring *r)
{
	ipcx__wake(&r->h->space_seq, &r->h->space_sleepers);
}

/* Consumer: make released space visible to the producer. */
static void publish_head(ipcx_ring *r)
{
	if (r->head != r->head_pub) {
		/* release: our reads of the records complete before the producer
		 * can reuse their space */
		atomic_store_explicit(&r->h->head, r->head, memory_order_release);
		r->head_pub = r->head;
		r->head_due = r->head + r->cap / 16;
		wake_producer(r);
	}
}

IPCX_API int ipcx_ring_close(ipcx_ring *r)
{
	if (!r)
		return 0;
	if (r->role != IPCX_RING_NOROLE) {
		if (r->role == IPCX_RING_PRODUCER)
			ipcx_ring_flush(r);
		else
			publish_head(r);
		struct role_slot *s = my_slot(r);
		/* Only if we still hold it.  release: the peer that sees CLOSED
		 * sees everything we published before. */
		uint64_t mine = r->my_word;
		atomic_compare_exchange_strong_explicit(
			&s->word, &mine,
			role_word(role_pid(mine), ROLE_CLOSED, role_start(mine)),
			memory_order_release, memory_order_relaxed);
		/* A sleeping peer must notice the close. */
		if (r->role == IPCX_RING_PRODUCER)
			wake_consumer(r);
		else
			wake_producer(r);
	}
	ipcx__peer_release(&r->peer);
	ipcx_region_close(r->region);
	free(r);
	return 0;
}

IPCX_API int ipcx_ring_unlink(const char *name)
{
	return ipcx_region_unlink(name);
}

IPCX_API int ipcx_ring_set_wait(ipcx_ring *r, const ipcx_wait *wait)
{
	if (!r || !wait || wait->mode > IPCX_WAIT_NONBLOCK)
		return -EINVAL;
	r->wait = ipcx__wait_resolve(wait, NULL);
	return 0;
}

/* 0 while the peer may still act; -EPIPE once it closed or died. */
static int peer_check(void *arg)
{
	ipcx_ring *r = arg;
	uint64_t w = atomic_load_explicit(&peer_slot(r)->word, memory_order_acquire);
	uint32_t st = role_state(w);
	if (st == ROLE_CLOSED)
		return -EPIPE;
	if (st != ROLE_ATTACHED)
		return 0; /* not attached yet: keep waiting (the deadline applies) */
	if (w != r->peer_word || !r->peer.pid) {
		r->peer_word = w;
		if (ipcx__peer_watch_start(&r->peer, role_pid(w), role_start(w), START_MASK) == -ESRCH)
			return -EPIPE;
	}
	return ipcx__peer_alive(&r->peer) ? 0 : -EPIPE;
}

static inline ipcx_wait resolve(ipcx_ring *r, const ipcx_wait *w)
{
	return w ? ipcx__wait_resolve(w, &r->wait) : r->wait;
}

/* ---- producer ------------------------------------------------------------ */

static inline void flush(ipcx_ring *r)
{
	if (r->tail != r->tail_pub) {
		/* release: the records written before are visible with the tail */
		atomic_store_explicit(&r->h->tail, r->tail, memory_order_release);
		r->tail_pub = r->tail;
		wake_consumer(r);
	}
}

IPCX_API int ipcx_ring_flush(ipcx_ring *r)
{
	if (!r || r->role != IPCX_RING_PRODUCER)
		return r ? -EPERM : -EINVAL;
	flush(r);
	return 0;
}

struct space_req {
	ipcx_ring *r;
	uint64_t need; /* bytes that must be free past r->tail */
};

/* Wait-engine readiness: is there room for `need` bytes? */
static int space_ready(void *arg)
{
	struct space_req *q = arg;
	ipcx_ring *r = q->r;
	/* acquire: pairs with the consumer's release of head, so our writes
	 * into the freed space come after its reads of it */
	uint64_t head = atomic_load_explicit(&r->h->head, memory_order_acquire);
	if (ipcx__unlikely(r->tail - head > r->cap || head < r->head_cache))
		return -EBADMSG; /* head moved backwards or past the tail */
	r->head_cache = head;
	if (r->cap - (r->tail - head) >= q->need)
		return 1;
	if (slot_state(&r->h->consumer, memory_order_acquire) == ROLE_CLOSED)
		return -EPIPE;
	return 0;
}

/* Make room for a record of payload len at r->tail (writing a PAD record if
 * it would cross the end).  Returns 0 with the record's position. */
static IPCX_NOINLINE int make_room_slow(ipcx_ring *r, uint64_t len, uint64_t *at,
					const ipcx_wait *w)
{
	if (ipcx__unlikely(r->role != IPCX_RING_PRODUCER))
		return -EPERM;
	if (ipcx__unlikely(r->resv_len != UINT64_MAX))
		return -EBUSY;
	if (ipcx__unlikely(len > r->max_msg))
		return -EMSGSIZE;
	if (ipcx__unlikely(slot_state(&r->h->consumer, memory_order_relaxed) == ROLE_CLOSED))
		return -EPIPE;
	uint64_t rec = rec_size(len);
	uint64_t off = r->tail & r->mask;
	uint64_t to_end = r->cap - off;
	uint64_t gap = align_gap(off, len);
	uint64_t need = gap + rec <= to_end ? gap + rec : to_end + align_gap(0, len) + rec;
	if (ipcx__unlikely(r->cap - (r->tail - r->head_cache) < need)) {
		struct space_req q = { r, need };
		int rc = space_ready(&q);
		if (rc == 0) {
			/* Publish a pending batch before waiting: the consumer may be
			 * waiting for exactly that. */
			flush(r);
			ipcx_wait ww = resolve(r, w);
			/* A waiting producer asks for an eighth of the ring at least, so
			 * a full ring refills in bursts instead of a message at a time
			 * with the head's cache line bouncing for each. */
			uint64_t want = need;
			if (ww.mode != IPCX_WAIT_NONBLOCK && want < r->cap / 8)
				want = r->cap / 8;
			q.need = want;
			/* relaxed: a hint; the consumer publishes in batches anyway */
			atomic_store_explicit(&r->h->space_want, r->tail + want - r->cap,
					      memory_order_relaxed);
			ipcx__waitspec ws = { &r->h->space_seq, &r->h->space_sleepers, space_ready, &q,
					      peer_check, r };
			rc = ipcx__wait(&ww, &ws);
			/* After a failure keep asking only for what this call needed
			 * (a non-blocking producer polls for it); else stop asking. */
			r->want_set = rc == -EAGAIN || rc == -ETIMEDOUT;
			atomic_store_explicit(&r->h->space_want,
					      r->want_set ? r->tail + need - r->cap : 0,
					      memory_order_relaxed);
			gate(r);
		}
		if (rc < 0)
			return rc;
	} else if (ipcx__unlikely(r->want_set)) {
		r->want_set = 0;
		atomic_store_explicit(&r->h->space_want, 0, memory_order_relaxed);
		gate(r);
	}
	if (gap + rec > to_end) {
		write_pad(r, off, to_end);
		r->tail += to_end;
		off = 0;
		gap = align_gap(0, len);
	}
	if (gap) {
		write_pad(r, off, gap);
		r->tail += gap;
	}
	*at = r->tail;
	return 0;
}

/* The common case inline: a small record that fits before the end of the
 * array in room already known from the cached head.  The gate (fast_len)
 * folds the producer-role, open-reservation and room-request tests into
 * the length test; the consumer's CLOSED state is checked on every call
 * all the same (relaxed: a hint; the slow path re-checks with acquire). */
static inline int make_room(ipcx_ring *r, uint64_t len, uint64_t *at, const ipcx_wait *w)
{
	uint64_t tail = r->tail, rec = rec_size(len);
	if (ipcx__likely(len < r->fast_len && (tail & r->mask) + rec <= r->cap &&
			 tail + rec - r->head_cache <= r->cap &&
			 slot_state(&r->h->consumer, memory_order_relaxed) != ROLE_CLOSED)) {
		*at = tail;
		return 0;
	}
	return make_room_slow(r, len, at, w);
}

static inline void publish(ipcx_ring *r, unsigned flags)
{
	if (!(flags & IPCX_RING_MORE) || r->tail - r->tail_pub >= r->more_max)
		flush(r);
}

IPCX_API int ipcx_ring_send(ipcx_ring *r, const void *buf, size_t len, unsigned flags,
			    const ipcx_wait *w)
{
	if (ipcx__unlikely(!r || (len && !buf)))
		return -EINVAL;
	uint64_t at;
	int rc = make_room(r, len, &at, w);
	if (rc)
		return rc;
	uint8_t *p = r->buf + (at & r->mask);
	/* Ask for ownership of the lines ahead now: the consumer has read them
	 * last, and waiting for each in turn stalls the store buffer. */
	__builtin_prefetch(r->buf + ((at + PREFETCH_AHEAD) & r->mask), 1);
	uint32_t hdr[2] = { (uint32_t)len, REC_MSG };
	memcpy(p, hdr, sizeof hdr);
	if (len)
		memcpy(p + REC_HDR, buf, len);
	r->tail = at + rec_size(len);
	publish(r, flags);
	return 0;
}

IPCX_API int ipcx_ring_reserve(ipcx_ring *r, size_t len, void **ptr, const ipcx_wait *w)
{
	if (ipcx__unlikely(!r || !ptr))
		return -EINVAL;
	uint64_t at;
	int rc = make_room(r, len, &at, w);
	if (rc)
		return rc;
	r->resv_at = at;
	r->resv_len = len;
	r->fast_len = 0;
	*ptr = r->buf + (at & r->mask) + REC_HDR;
	return 0;
}

IPCX_API int ipcx_ring_commit(ipcx_ring *r, size_t len, unsigned flags)
{
	if (ipcx__unlikely(!r || r->role != IPCX_RING_PRODUCER || r->resv_len == UINT64_MAX ||
			   len > r->resv_len))
		return -EINVAL;
	uint32_t hdr[2] = { (uint32_t)len, REC_MSG };
	memcpy(r->buf + (r->resv_at & r->mask), hdr, sizeof hdr);
	r->tail = r->resv_at + rec_size(len);
	r->resv_len = UINT64_MAX;
	gate(r);
	publish(r, flags);
	return 0;
}

/* ---- consumer ------------------------------------------------------------ */

/* Wait-engine readiness: has the producer published past our head? */
static int data_ready(void *arg)
{
	ipcx_ring *r = arg;
	/* acquire: pairs with the producer's release of tail, so the records
	 * below it are visible */
	uint64_t tail = atomic_load_explicit(&r->h->tail, memory_order_acquire);
	if (ipcx__unlikely(tail - r->head > r->cap || tail < r->tail_cache))
		return -EBADMSG;
	r->tail_cache = tail;
	if (tail != r->head)
		return 1;
	/* Nothing new: a closed producer will send no more.  Re-read the tail
	 * after seeing CLOSED, since it may have published just before. */
	if (slot_state(&r->h->producer, memory_order_acquire) == ROLE_CLOSED) {
		tail = atomic_load_explicit(&r->h->tail, memory_order_acquire);
		if (tail == r->head)
			return -EPIPE;
		if (tail - r->head > r->cap)
			return -EBADMSG;
		r->tail_cache = tail;
		return 1;
	}
	return 0;
}

/* A dead producer may have published before dying: drain, then -EPIPE. */
static int producer_check(void *arg)
{
	ipcx_ring *r = arg;
	int rc = peer_check(r);
	if (rc == -EPIPE) {
		int d = data_ready(r);
		return d != 0 ? d : -EPIPE;
	}
	return rc;
}

/* Locate the next message: skip padding, validate the record. */
static IPCX_NOINLINE int next_record(ipcx_ring *r, const ipcx_wait *w, uint8_t **payload, uint64_t *len)
{
	if (ipcx__unlikely(r->role != IPCX_RING_CONSUMER))
		return -EPERM;
	for (;;) {
		if (r->tail_cache == r->head) {
			int rc = data_ready(r);
			if (rc == 0) {
				/* About to wait or fail: the producer gets all the room. */
				publish_head(r);
				ipcx_wait ww = resolve(r, w);
				ipcx__waitspec ws = { &r->h->data_seq, &r->h->data_sleepers, data_ready, r,
						      producer_check, r };
				rc = ipcx__wait(&ww, &ws);
			}
			if (rc < 0)
				return rc;
		}
		uint64_t avail = r->tail_cache - r->head;
		uint64_t off = r->head & r->mask;
		uint32_t hdr[2];
		memcpy(hdr, r->buf + off, sizeof hdr); /* read once, then check */
		uint64_t rec = rec_size(hdr[0]);
		if (hdr[1] == REC_PAD) {
			/* To the end of the array, or an alignment gap. */
			if (hdr[0] % 8 || rec > avail || rec > r->cap - off)
				return -EBADMSG;
			r->head += rec;
			continue;
		}
		if (ipcx__unlikely(hdr[1] != REC_MSG || hdr[0] > r->max_msg || rec > avail ||
				   rec > r->cap - off))
			return -EBADMSG;
		*payload = r->buf + off + REC_HDR;
		*len = hdr[0];
		r->peek_end = r->head + rec;
		return 0;
	}
}

/* The consumer's fast path: the next record is a message, already known
 * published (below the cached tail).  Its header is read once and checked
 * like next_record's; anything else (padding, nothing cached, a bad
 * record) goes the slow way.  0 with the payload, or -EAGAIN. */
static inline int next_fast(ipcx_ring *r, uint8_t **payload, uint64_t *len)
{
	uint64_t head = r->head, off = head & r->mask;
	if (ipcx__unlikely(!r->consumer || r->tail_cache == head))
		return -EAGAIN;
	uint32_t hdr[2];
	memcpy(hdr, r->buf + off, sizeof hdr);
	uint64_t rec = rec_size(hdr[0]), room = r->cap - off, avail = r->tail_cache - head;
	if (ipcx__unlikely(hdr[1] != REC_MSG || hdr[0] > r->max_msg ||
			   rec > (avail < room ? avail : room)))
		return -EAGAIN;
	*payload = r->buf + off + REC_HDR;
	*len = hdr[0];
	return 0;
}

/* Consume up to `end`.  The head is published in batches of a sixteenth of
 * the ring, or at once when the producer waits for exactly this much room.
 * relaxed: space_want is a hint (see make_room_slow); a missed one only
 * delays publication to the next batch or to the moment the ring runs
 * empty. */
static inline void consume(ipcx_ring *r, uint64_t end)
{
	r->head = end;
	uint64_t want = atomic_load_explicit(&r->h->space_want, memory_order_relaxed);
	if (ipcx__unlikely((int64_t)(end - r->head_due) >= 0 ||
			   (want && (int64_t)(end - want) >= 0)))
		publish_head(r);
}

IPCX_API int ipcx_ring_release(ipcx_ring *r)
{
	if (ipcx__unlikely(!r || r->role != IPCX_RING_CONSUMER || !r->peek_end))
		return -EINVAL;
	uint64_t end = r->peek_end;
	r->peek_end = 0;
	consume(r, end);
	return 0;
}

IPCX_API int ipcx_ring_peek(ipcx_ring *r, const void **ptr, size_t *len, const ipcx_wait *w)
{
	if (ipcx__unlikely(!r || !ptr || !len))
		return -EINVAL;
	uint8_t *p;
	uint64_t n;
	int rc = next_fast(r, &p, &n);
	if (ipcx__unlikely(rc)) {
		if ((rc = next_record(r, w, &p, &n)))
			return rc;
	} else {
		r->peek_end = r->head + rec_size(n);
	}
	*ptr = p;
	*len = (size_t)n;
	return 0;
}

IPCX_API ssize_t ipcx_ring_recv(ipcx_ring *r, void *buf, size_t cap, const ipcx_wait *w)
{
	if (ipcx__unlikely(!r || (cap && !buf)))
		return -EINVAL;
	uint8_t *p;
	uint64_t n;
	if (ipcx__unlikely(next_fast(r, &p, &n))) {
		int rc = next_record(r, w, &p, &n);
		if (rc)
			return rc;
	}
	if (ipcx__unlikely(n > cap)) {
		r->peek_end = 0;
		return -EMSGSIZE;
	}
	if (n)
		memcpy(buf, p, n);
	r->peek_end = 0; /* a peek outstanding before this call is consumed too */
	consume(r, r->head + rec_size(n));
	return (ssize_t)n;
}

/* ---- introspection -------------------------------------------------------- */

IPCX_API size_t ipcx_ring_max_msg(const ipcx_ring *r)
{
	return r ? (size_t)r->max_msg : 0;
}

IPCX_API int ipcx_ring_fd(const ipcx_ring *r)
{
	return r ? ipcx_region_fd(r->region) : -EINVAL;
}

IPCX_API int ipcx_ring_stat(const ipcx_ring *r, ipcx_ring_stats *st)
{
	if (!r || !st)
		return -EINVAL;
	memset(st, 0, sizeof *st);
	struct ring_hdr *h = r->h;
	st->capacity = r->cap;
	st->max_msg = r->max_msg;
	st->recv_bytes = atomic_load_explicit(&h->head, memory_order_acquire);
	st->sent_bytes = atomic_load_explicit(&h->tail, memory_order_acquire);
	st->used = st->sent_bytes - st->recv_bytes;
	if (st->used > r->cap)
		return -EBADMSG;
	uint64_t pw = atomic_load_explicit(&h->producer.word, memory_order_relaxed);
	uint64_t cw = atomic_load_explicit(&h->consumer.word, memory_order_relaxed);
	st->producer_pid = role_pid(pw);
	st->consumer_pid = role_pid(cw);
	st->producer_state = (int)role_state(pw);
	st->consumer_state = (int)role_state(cw);
	return 0;
}
