/*
 * The mailbox's lock-free rings: one free ring of slot indices and one ring
 * per priority level, each a bounded MPMC queue of capacity cap >= depth
 * (Vyukov's design, with the sequence number and the slot index of a cell
 * packed in one 64-bit word).
 *
 * A cell is "empty for position pos", "holds slot x at position pos" or "a
 * skip at position pos"; the lap, pos / cap, tells positions of one cell
 * apart.  A sender claims position t with a CAS on tail after seeing the
 * cell empty for t, then stores the cell full; a receiver claims position h
 * with a CAS on head after seeing the cell full for h, then stores it empty
 * for h + cap.  The two CASes touch lines only their own side writes (with
 * one sender and one receiver), and the cell and slot updates are plain
 * stores that no atomic operation waits for.
 *
 * Dying between a claim and its store would block the ring, so a handle
 * records what it claims in its attach entry before the CAS (intent_push,
 * intent_pop).  The reclaimer (mq.c, lock held) finishes or undoes the
 * operations of dead entries: a push claimed and not stored becomes a skip;
 * a pop claimed and not stored is released, its slot re-homed (a message
 * back to the head of its level, as redelivered; a free slot back to the
 * free ring).  Every position is unique in its ring (they only grow), so a
 * cell or slot word never returns to a value a stalled thread read earlier.
 */
#include <sched.h>
#include <string.h>
#include <time.h>

#include "mq_internal.h"

/* Rounds of a claim loop: each one follows a moved index; more than this
 * means the indices are garbage. */
#define MQ_SPIN_LIMIT (1u << 22)

/* A ring's geometry in locals: the compiler must reload the handle's
 * fields after every atomic operation, not a local copy of them. */
struct rv {
	_Atomic uint64_t *cells; /* the ring's first cell */
	uint64_t mask;           /* cap - 1 */
	uint32_t log2;           /* log2 cap */
	uint32_t shift;          /* spread cells: log2 - 3; 0: not spread */
};

static inline struct rv rv_of(const ipcx_mq *mq, uint32_t r)
{
	uint32_t l = mq->cap_log2;
	return (struct rv){ mq->cells + ((uint64_t)r << l), mq->cap_mask, l, l >= 6 ? l - 3 : 0 };
}

/* Where position pos's cell is: consecutive positions are spread over
 * different cache lines (eight positions apart share one), so a sender
 * filling the cell after the one a receiver is emptying does not take the
 * line from under it. */
static inline _Atomic uint64_t *rv_cell(const struct rv *g, uint64_t pos)
{
	uint64_t i = pos & g->mask;
	if (g->shift)
		i = (i & 7) << g->shift | i >> 3;
	return &g->cells[i];
}

static inline _Atomic uint64_t *cell_of(const ipcx_mq *mq, uint32_t r, uint64_t pos)
{
	struct rv g = rv_of(mq, r);
	return rv_cell(&g, pos);
}

static inline struct mq_ring_idx *idx_of(const ipcx_mq *mq, uint32_t r)
{
	return r == MQ_RING_FREE ? &mq->h->freer : &mq->h->lv[r - 1];
}

static inline uint64_t rv_empty(const struct rv *g, uint64_t pos)
{
	return ((pos >> g->log2) & MQ_LAP_MASK) << 20; /* the lap alone */
}

static inline uint64_t rv_full(const struct rv *g, uint64_t pos, uint32_t i)
{
	return MQ_CELL_FULL | rv_empty(g, pos) | i;
}

/* The cell's lap minus pos's lap, sign-extended from MQ_LAP_BITS. */
static inline int64_t rv_lap_diff(const struct rv *g, uint64_t v, uint64_t pos)
{
	uint64_t d = (((v >> 20) & MQ_LAP_MASK) - ((pos >> g->log2) & MQ_LAP_MASK)) & MQ_LAP_MASK;
	return (int64_t)(d << (64 - MQ_LAP_BITS)) >> (64 - MQ_LAP_BITS);
}

/* A walk over consecutive positions of a ring: each one's cell and its lap
 * bits (rv_empty), stepped with an add and a compare instead of computed
 * afresh (a run's loops are most of a batch's instructions).  With spread
 * cells the index is pos rotated right by 3 within log2 bits: +cap/8 from
 * one position to the next, except from a position whose low 3 bits are
 * all ones, after which it is the next line's first.  Either way the
 * index reaches 0 exactly when the position does (the lap steps). */
struct walk {
	_Atomic uint64_t *cells;
	uint64_t at;    /* the current cell's index */
	uint64_t lap;   /* rv_empty of the current position */
	uint64_t step;  /* index distance to the next position's cell, unless it wraps */
	uint64_t cap;
	uint64_t wrap;  /* after a wrap: the index's bits to keep */
	uint64_t carry; /* after a wrap: 1 with spread cells (the next line), else 0 */
};

static inline struct walk walk_from(const struct rv *g, uint64_t pos)
{
	uint64_t cap = g->mask + 1;
	return (struct walk){ g->cells,
			      (uint64_t)(rv_cell(g, pos) - g->cells),
			      rv_empty(g, pos),
			      g->shift ? cap >> 3 : 1,
			      cap,
			      g->shift ? (cap >> 3) - 1 : g->mask,
			      g->shift ? 1 : 0 };
}

static inline _Atomic uint64_t *walk_cell(const struct walk *w)
{
	return &w->cells[w->at];
}

static inline void walk_next(struct walk *w)
{
	uint64_t n = w->at + w->step;
	if (ipcx__unlikely(n >= w->cap)) {
		n = (n - w->cap + w->carry) & w->wrap;
		if (!n) /* the position wrapped: a new lap */
			w->lap = (w->lap + (1ull << 20)) & (MQ_LAP_MASK << 20);
	}
	w->at = n;
}

/* rv_empty of the current position's next lap, which a popper stores. */
static inline uint64_t walk_next_lap(const struct walk *w)
{
	return (w->lap + (1ull << 20)) & (MQ_LAP_MASK << 20);
}

static inline uint64_t cell_empty(const ipcx_mq *mq, uint64_t pos)
{
	struct rv g = rv_of(mq, 0);
	return rv_empty(&g, pos);
}

static inline uint64_t cell_full(const ipcx_mq *mq, uint64_t pos, uint32_t i)
{
	struct rv g = rv_of(mq, 0);
	return rv_full(&g, pos, i);
}

static inline int64_t lap_diff(const ipcx_mq *mq, uint64_t v, uint64_t pos)
{
	struct rv g = rv_of(mq, 0);
	return rv_lap_diff(&g, v, pos);
}

static inline struct mq_attach *me(ipcx_mq *mq)
{
	static struct mq_attach none; /* the creator, before it is attached */
	return mq->idx < IPCX_MQ_ATTACH_MAX ? &mq->h->att[mq->idx] : &none;
}

/* An intent's ring, first position (the low bits) and run length. */
static inline uint32_t intent_ring(uint64_t in) { return (uint32_t)(in >> 57) - 1; }
static inline uint64_t intent_pos(uint64_t in) { return in & MQ_INTENT_POS_MASK; }
static inline uint32_t intent_len(uint64_t in)
{
	return (uint32_t)(in >> MQ_INTENT_POS_BITS & (MQ_RUN_MAX - 1)) + 1;
}

/* How far position q (truncated as in an intent) is behind index at:
 * (at - q) modulo 2^MQ_INTENT_POS_BITS, as a signed number. */
static inline int64_t behind(uint64_t at, uint64_t q)
{
	uint64_t d = (at - q) << (64 - MQ_INTENT_POS_BITS);
	return (int64_t)d >> (64 - MQ_INTENT_POS_BITS);
}

void ipcx__mq_ring_init(ipcx_mq *mq)
{
	/* Not yet published: relaxed stores. */
	for (uint32_t i = 0; i < mq->depth; i++)
		atomic_store_explicit(cell_of(mq, MQ_RING_FREE, i), cell_full(mq, i, i),
				      memory_order_relaxed);
	atomic_store_explicit(&mq->h->freer.tail, mq->depth, memory_order_relaxed);
}

uint64_t ipcx__mq_ring_bytes(uint32_t cap_log2)
{
	return (uint64_t)(1u + IPCX_MQ_PRIO_LEVELS) * 8u << cap_log2;
}

void ipcx__mq_busy(ipcx_mq *mq)
{
	/* acquire: pairs with ipcx__mq_idle: the previous operation's intents
	 * are cleared */
	for (unsigned n = 0; atomic_exchange_explicit(&mq->busy, 1, memory_order_acquire); n++) {
		if (n < 64)
			ipcx__cpu_relax();
		else
			sched_yield();
	}
}

void ipcx__mq_idle(ipcx_mq *mq)
{
	atomic_store_explicit(&mq->busy, 0, memory_order_release); /* see ipcx__mq_busy */
}

/* How long a run from position p (whose cell is ready) is: up to `want`
 * positions, each one's cell ready too.  The cells are read (acquire: as
 * the first) before the claim and stay as read while the index stays at p,
 * which the claim's CAS checks. */
static IPCX_NOINLINE uint32_t push_more(const struct rv *g, uint64_t p, uint32_t want)
{
	struct walk w = walk_from(g, p);
	uint32_t k = 1;
	for (; k < want; k++) {
		walk_next(&w);
		if (atomic_load_explicit(walk_cell(&w), memory_order_acquire) != w.lap)
			break;
	}
	return k;
}

/* For a pop: full for this lap, not a skip, a slot index below depth, and
 * (with caps) a message that fits caps[k].cap; each value into vals[k].
 * With fetch (a level: messages to read), the payloads' misses are
 * started; a free slot is for writing, which its popper prefetches so.
 * (Compiled for each case: the usual ones leave the loop its registers.) */
static inline __attribute__((always_inline)) uint32_t
pop_more_as(const ipcx_mq *mq, const struct rv *g, uint64_t p, uint32_t want,
	    const ipcx_mq_vec *caps, uint64_t *vals, bool fetch)
{
	const uint32_t depth = mq->depth, max_msg = mq->max_msg;
	unsigned char *const bufs = mq->buf_base;
	const size_t pitch = mq->buf_pitch;
	struct walk w = walk_from(g, p);
	uint32_t k = 1;
	for (; k < want; k++) {
		walk_next(&w);
		uint64_t u = atomic_load_explicit(walk_cell(&w), memory_order_acquire);
		uint32_t i = (uint32_t)(u & MQ_IDX_MASK);
		if ((u & ~(uint64_t)MQ_IDX_MASK) != (MQ_CELL_FULL | w.lap) || i >= depth)
			break;
		/* as for the first (damage is the popper's to handle) */
		if (caps && caps[k].cap < max_msg && mq_slot(mq, i)->len > caps[k].cap)
			break;
		if (fetch)
			__builtin_prefetch(bufs + (size_t)i * pitch, 0, 3);
		vals[k] = u;
	}
	return k;
}

static IPCX_NOINLINE uint32_t pop_more(const ipcx_mq *mq, uint32_t r, const struct rv *g,
				       uint64_t p, uint32_t want, const ipcx_mq_vec *caps,
				       uint64_t *vals)
{
	if (r == MQ_RING_FREE)
		return pop_more_as(mq, g, p, want, NULL, vals, false);
	return caps ? pop_more_as(mq, g, p, want, caps, vals, true)
		    : pop_more_as(mq, g, p, want, NULL, vals, true);
}

/* Claim the next positions of ring r on one side: up to `want` of them in
 * one CAS (a run: for a pop, messages that each fit caps[k].cap, and no
 * skip after the first).  The count claimed (*pos the first; for a pop the
 * first cell's value in *cell, and with vals every cell's value, which
 * stays as read: the cells are ours; a pop of more than one needs vals),
 * 0 full (push) / empty (pop),
 * -EMSGSIZE (a pop whose first message is longer than maxlen), -EBADMSG. */
static inline __attribute__((always_inline)) int
claim_pos(ipcx_mq *mq, uint32_t r, bool push, uint64_t *pos, uint64_t *cell, uint64_t maxlen,
	  uint32_t want, const ipcx_mq_vec *caps, uint64_t *vals)
{
	const struct rv g = rv_of(mq, r);
	const uint32_t depth = mq->depth, max_msg = mq->max_msg;
	struct mq_ring_idx *x = idx_of(mq, r);
	_Atomic uint64_t *idx = push ? &x->tail : &x->head;
	_Atomic uint64_t *intent = push ? &me(mq)->intent_push : &me(mq)->intent_pop;
	/* relaxed: a stale index only fails the CAS below */
	uint64_t p = atomic_load_explicit(idx, memory_order_relaxed);
	for (uint32_t n = 0; n < MQ_SPIN_LIMIT; n++) {
		/* acquire: pairs with the other side's release store of the cell
		 * (a pop: the slot's word and payload; a push: the previous lap's
		 * popper is done with the cell) */
		uint64_t v = atomic_load_explicit(rv_cell(&g, p), memory_order_acquire);
		int64_t d = rv_lap_diff(&g, v, p);
		bool ready = push ? v == rv_empty(&g, p) : d == 0 && (v & MQ_CELL_FULL);
		if (ready) {
			if (!push && !(v & MQ_CELL_SKIP)) {
				uint32_t i = (uint32_t)(v & MQ_IDX_MASK);
				if (i >= depth)
					return -EBADMSG;
				/* a message's: the slot's and the payload's misses
				 * at once (a free slot's popper prefetches it to
				 * write) */
				if (r != MQ_RING_FREE) {
					__builtin_prefetch(mq_slot(mq, i), 0, 3);
					__builtin_prefetch(mq_buf(mq, i), 0, 3);
				}
				/* The fields are the pusher's (acquired with the cell);
				 * they stay until the slot is popped.  (A length above
				 * max_msg is damage, which the popper handles.) */
				if (maxlen < max_msg && mq_slot(mq, i)->len > maxlen)
					return -EMSGSIZE;
			}
			if (vals)
				vals[0] = v;
			uint32_t k = want < 2 || (v & MQ_CELL_SKIP) ? 1
				     : push ? push_more(&g, p, want)
					    : pop_more(mq, r, &g, p, want, caps, vals);
			/* relaxed: published by the CAS's release */
			atomic_store_explicit(intent, MQ_INTENT(r, p, k), memory_order_relaxed);
			/* acq_rel: release carries the intent; acquire orders our
			 * cell and slot accesses after the claim */
			if (atomic_compare_exchange_weak_explicit(idx, &p, p + k, memory_order_acq_rel,
								  memory_order_relaxed)) {
				*pos = p;
				*cell = v;
				return (int)k;
			}
			/* Lost the position: clear the stale intent, so no reclaimer
			 * takes us for its holder. */
			atomic_store_explicit(intent, 0, memory_order_relaxed); /* as above */
			continue;
		}
		if (d == 0 || (push && d == -1)) {
			/* push: full for p, or the previous lap not yet popped out:
			 * if the index is still p the ring is full (a popper is slow
			 * or died holding the cell).  pop: empty for p.  Either way,
			 * unless the index moved meanwhile, there is nothing to do. */
			uint64_t now = atomic_load_explicit(idx, memory_order_relaxed); /* a hint */
			if (now == p)
				return push && d == 0 ? -EBADMSG : 0;
			p = now;
			continue;
		}
		if (!push && d == -1)
			return 0; /* the previous lap's popper has not stored it yet: not ready */
		/* A lap ahead: our index is stale, or the cell is garbage. */
		uint64_t now = atomic_load_explicit(idx, memory_order_relaxed); /* a hint */
		if (now == p)
			return -EBADMSG;
		p = now;
	}
	return -EBADMSG;
}

/* claim_pos made for each side (its loops compiled for one). */
static IPCX_NOINLINE int claim_push(ipcx_mq *mq, uint32_t r, uint64_t *pos, uint32_t want)
{
	uint64_t cell;
	return claim_pos(mq, r, true, pos, &cell, 0, want, NULL, NULL);
}

static IPCX_NOINLINE int claim_pop(ipcx_mq *mq, uint32_t r, uint64_t *pos, uint64_t *cell,
				   uint64_t maxlen, uint32_t want, const ipcx_mq_vec *caps,
				   uint64_t *vals)
{
	return claim_pos(mq, r, false, pos, cell, maxlen, want, caps, vals);
}

/* How long a push waits for a cell a popper claimed a lap ago and has not
 * given back (it is slow, or dead and repaired by the liveness check)
 * before it asks whether a live process holds it. */
#define MQ_CLAIM_PATIENCE_NS (2ull * 1000 * 1000 * 1000)

/* Whether a live attach entry's pop intent covers the position a push to
 * ring r waits for: the one a lap behind the tail. */
static bool live_pop_holds(ipcx_mq *mq, uint32_t r)
{
	/* relaxed: the position we wait at stays until that cell is given back */
	uint64_t want = atomic_load_explicit(&idx_of(mq, r)->tail, memory_order_relaxed) -
			(mq->cap_mask + 1);
	for (uint32_t k = 0; k < IPCX_MQ_ATTACH_MAX; k++) {
		struct mq_attach *e = &mq->h->att[k];
		/* relaxed: a hint, read again at the next round */
		uint64_t x = atomic_load_explicit(&e->intent_pop, memory_order_relaxed);
		int64_t d = behind(want, intent_pos(x));
		if (x && e->pid && !e->dead && intent_ring(x) == r && d >= 0 &&
		    d < (int64_t)intent_len(x))
			return true;
	}
	return false;
}

int ipcx__mq_claim(ipcx_mq *mq, uint32_t r, uint32_t i, uint64_t *pos)
{
	uint64_t t0 = 0, checked = 0;
	int rc;
	for (unsigned n = 0; (rc = claim_push(mq, r, pos, 1)) == 0; n++) {
		/* The ring cannot hold every slot while we hold one: a popper of
		 * the previous lap is in the middle of giving the cell back. */
		if (n < 4096) {
			ipcx__cpu_relax();
			continue;
		}
		uint64_t now = ipcx__now_ns();
		if (!t0)
			t0 = checked = now;
		if (now - t0 > MQ_CLAIM_PATIENCE_NS) {
			/* Long past what a running popper takes: unless a live
			 * process holds the cell (stopped, or in a debugger: then
			 * we wait for it, sleeping), the ring is damaged. */
			if (!live_pop_holds(mq, r))
				return -EBADMSG;
			struct timespec ts = { 0, 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		if (now - checked >= IPCX__LIVENESS_SLICE_NS) {
			/* Perhaps it died: reclaim (without our busy flag, which
			 * the reclaimer takes; we hold no claim now). */
			ipcx__mq_idle(mq);
			(void)ipcx__mq_check(mq);
			ipcx__mq_busy(mq);
			checked = now;
		}
		sched_yield();
	}
	if (rc < 0)
		return rc;
	uint32_t st = r == MQ_RING_FREE ? S_FREE : S_LEVEL, lvl = r == MQ_RING_FREE ? 0 : r - 1;
	/* relaxed: published with the cell (publish's release) */
	atomic_store_explicit(mq_wordp(mq, i), mq_word(st, mq->idx, lvl, *pos),
			      memory_order_relaxed);
	return 0;
}

void ipcx__mq_publish(ipcx_mq *mq, uint32_t r, uint64_t pos, uint32_t i)
{
	/* release: the word, payload and fields before the cell shows the slot
	 * (pairs with the popper's acquire of the cell) */
	atomic_store_explicit(cell_of(mq, r, pos), cell_full(mq, pos, i), memory_order_release);
	/* release: a reclaimer that sees the intent cleared sees the cell */
	atomic_store_explicit(&me(mq)->intent_push, 0, memory_order_release);
}

void ipcx__mq_abandon(ipcx_mq *mq, uint32_t r, uint64_t pos)
{
	/* release: as in publish; poppers step over a skip */
	atomic_store_explicit(cell_of(mq, r, pos), cell_full(mq, pos, 0) | MQ_CELL_SKIP,
			      memory_order_release);
	atomic_store_explicit(&me(mq)->intent_push, 0, memory_order_release); /* as publish */
}

int ipcx__mq_push(ipcx_mq *mq, uint32_t r, uint32_t i)
{
	uint64_t pos;
	int rc = ipcx__mq_claim(mq, r, i, &pos);
	if (!rc)
		ipcx__mq_publish(mq, r, pos, i);
	return rc;
}

/* Give a popped cell back for the next lap. */
static void release_cell(ipcx_mq *mq, uint32_t r, uint64_t pos)
{
	/* release: our reads of the cell and slot are done before a sender
	 * reuses the cell (pairs with its acquire) */
	atomic_store_explicit(cell_of(mq, r, pos), cell_empty(mq, pos + mq->cap_mask + 1),
			      memory_order_release);
	atomic_store_explicit(&me(mq)->intent_pop, 0, memory_order_release); /* as publish */
}

int ipcx__mq_pop(ipcx_mq *mq, uint32_t r, uint32_t state, uint64_t maxlen, uint32_t *out,
		 uint64_t *w)
{
	uint32_t lvl = r == MQ_RING_FREE ? 0 : r - 1;
	for (;;) {
		uint64_t pos, v;
		int rc = claim_pop(mq, r, &pos, &v, maxlen, 1, NULL, NULL);
		if (rc <= 0)
			return rc;
		if (v & MQ_CELL_SKIP) {
			release_cell(mq, r, pos);
			continue;
		}
		uint32_t i = (uint32_t)(v & MQ_IDX_MASK);
		uint64_t nw = mq_word(state, mq->idx, lvl, pos);
		/* release: pairs with the acquire of readers of the word (give_back,
		 * getattr); the slot is ours from the claim on */
		atomic_store_explicit(mq_wordp(mq, i), nw, memory_order_release);
		release_cell(mq, r, pos);
		*out = i;
		*w = nw;
		return 1;
	}
}

bool ipcx__mq_own(ipcx_mq *mq, uint32_t i, uint64_t from, uint32_t state, uint64_t *w)
{
	uint64_t nw = mq_word(state, mq->idx, mq_w_level(from), mq_w_pos(from));
	/* acq_rel: acquire the previous owner's writes to the slot, release ours
	 * made while we held it in `from` */
	if (!atomic_compare_exchange_strong_explicit(mq_wordp(mq, i), &from, nw,
						     memory_order_acq_rel, memory_order_relaxed))
		return false;
	*w = nw;
	return true;
}

bool ipcx__mq_in_ring(ipcx_mq *mq, uint32_t i, uint64_t w)
{
	uint32_t r = mq_w_state(w) == S_FREE ? MQ_RING_FREE : MQ_RING_LEVEL(mq_w_level(w));
	uint64_t pos = mq_w_pos(w);
	/* acquire: pairs with the pusher's release store */
	uint64_t v = atomic_load_explicit(cell_of(mq, r, pos), memory_order_acquire);
	/* The word keeps 47 bits of the position, the cell 42 bits of the lap:
	 * compare the bits both have. */
	uint32_t bits = MQ_POS_BITS - mq->cap_log2 < MQ_LAP_BITS ? MQ_POS_BITS - mq->cap_log2
								  : MQ_LAP_BITS;
	uint64_t m = (1ull << bits) - 1;
	return (v & MQ_CELL_FULL) && !(v & MQ_CELL_SKIP) && (uint32_t)(v & MQ_IDX_MASK) == i &&
	       (((v >> 20) ^ (pos >> mq->cap_log2)) & m) == 0;
}

/* Whether a live entry other than o has an intent on the same ring and
 * side whose run overlaps `in`'s (a claim that won the CAS `in`'s maker
 * lost, not yet stored, or one that lost and has not yet cleared it). */
static bool shared_intent(ipcx_mq *mq, uint32_t o, bool push, uint64_t in)
{
	for (uint32_t k = 0; k < IPCX_MQ_ATTACH_MAX; k++) {
		struct mq_attach *e = &mq->h->att[k];
		/* acquire: as in repair_intents */
		uint64_t x = atomic_load_explicit(push ? &e->intent_push : &e->intent_pop,
						  memory_order_acquire);
		if (k == o || !x || !e->pid || e->dead || intent_ring(x) != intent_ring(in))
			continue;
		/* [a, a + na) and [b, b + nb) overlap, positions modulo 2^51 */
		int64_t gap = behind(intent_pos(x), intent_pos(in)); /* x's start - in's */
		if (gap >= 0 ? gap < (int64_t)intent_len(in) : -gap < (int64_t)intent_len(x))
			return true;
	}
	return false;
}

/* Finish or undo position q of ring r that a dead handle had claimed. */
static void repair_pos(ipcx_mq *mq, uint32_t r, bool push, uint64_t q)
{
	_Atomic uint64_t *c = cell_of(mq, r, q);
	/* acquire: the cell's last store */
	uint64_t v = atomic_load_explicit(c, memory_order_acquire);
	if (push && v == cell_empty(mq, q)) {
		/* Claimed, never stored: a skip.  The slot, which its word (or
		 * the dead loan) still names, is the caller's. */
		atomic_store_explicit(c, cell_full(mq, q, 0) | MQ_CELL_SKIP,
				      memory_order_release); /* as abandon */
	} else if (!push && lap_diff(mq, v, q) == 0 && (v & MQ_CELL_FULL)) {
		/* Popped, never released.  A slot still in its ring state was
		 * not taken yet: re-home it. */
		uint32_t i = (uint32_t)(v & MQ_IDX_MASK);
		uint64_t w = i < mq->depth ? atomic_load_explicit(mq_wordp(mq, i),
								  memory_order_acquire)
					   : 0; /* acquire: its last owner */
		bool home = !(v & MQ_CELL_SKIP) && i < mq->depth &&
			    mq_w_state(w) == (r == MQ_RING_FREE ? S_FREE : S_LEVEL) &&
			    mq_w_pos(w) == (q & MQ_POS_MASK);
		/* release: as release_cell */
		atomic_store_explicit(c, cell_empty(mq, q + mq->cap_mask + 1), memory_order_release);
		if (home && r == MQ_RING_FREE)
			(void)ipcx__mq_push(mq, MQ_RING_FREE, i);
		else if (home)
			ipcx__mq_redo_put(mq, i, w);
	}
}

void ipcx__mq_repair_intents(ipcx_mq *mq, uint32_t o)
{
	struct mq_attach *e = &mq->h->att[o];
	for (int side = 0; side < 2; side++) {
		bool push = side == 0;
		_Atomic uint64_t *ip = push ? &e->intent_push : &e->intent_pop;
		/* acquire: pairs with the release of the claim's CAS */
		uint64_t in = atomic_load_explicit(ip, memory_order_acquire);
		if (!in)
			continue;
		uint32_t r = intent_ring(in);
		if (r <= IPCX_MQ_PRIO_LEVELS && !shared_intent(mq, o, push, in)) {
			struct mq_ring_idx *x = idx_of(mq, r);
			/* acquire: the claim's CAS, if it happened, and so (read
			 * after it) the intent its maker wrote before it */
			uint64_t at = atomic_load_explicit(push ? &x->tail : &x->head,
							   memory_order_acquire);
			/* The run's positions that the index has passed were
			 * claimed (by the dead handle: no live intent overlaps). */
			for (uint32_t j = 0; j < intent_len(in); j++) {
				int64_t d = behind(at, intent_pos(in) + j);
				if (d > 0)
					repair_pos(mq, r, push, at - (uint64_t)d);
			}
		}
		atomic_store_explicit(ip, 0, memory_order_relaxed); /* lock held; entry dead */
	}
}

bool ipcx__mq_ring_busy(ipcx_mq *mq, uint32_t r)
{
	struct mq_ring_idx *x = idx_of(mq, r);
	/* acquire (both): a hint read with the cell below */
	uint64_t h = atomic_load_explicit(&x->head, memory_order_acquire);
	uint64_t t = atomic_load_explicit(&x->tail, memory_order_acquire);
	if (t != h)
		return true;
	/* acquire: as in a pop */
	uint64_t v = atomic_load_explicit(cell_of(mq, r, h), memory_order_acquire);
	return (v & MQ_CELL_FULL) && lap_diff(mq, v, h) == 0;
}

void ipcx__mq_mark(ipcx_mq *mq, uint32_t p)
{
	uint64_t bit = 1ull << p;
	/* Orders our push before the read of the bits (pairs with the
	 * sleeper fence in ipcx__mq_fix_bits, which clears bits). */
	ipcx__waker_fence();
	/* relaxed: the cell carries the data; the bit is where to look */
	if (!(atomic_load_explicit(&mq->h->bits.nonempty, memory_order_relaxed) & bit))
		atomic_fetch_or_explicit(&mq->h->bits.nonempty, bit, memory_order_relaxed);
}

void ipcx__mq_fix_bits(ipcx_mq *mq)
{
	_Atomic uint64_t *bits = &mq->h->bits.nonempty;
	/* relaxed: a snapshot; the fence below orders what matters */
	uint64_t b = atomic_load_explicit(bits, memory_order_relaxed), stale = 0, lost = 0;
	for (uint32_t p = 0; p < IPCX_MQ_PRIO_LEVELS; p++) {
		bool busy = ipcx__mq_ring_busy(mq, MQ_RING_LEVEL(p));
		if ((b >> p & 1) && !busy)
			stale |= 1ull << p;
		else if (!(b >> p & 1) && busy)
			lost |= 1ull << p; /* a sender died before marking */
	}
	if (stale) {
		atomic_fetch_and_explicit(bits, ~stale, memory_order_relaxed); /* ordered by: */
		/* Either a racing sender sees the cleared bit after its push
		 * (and sets it again), or we see its push here. */
		ipcx__sleeper_fence();
		for (uint32_t p = 0; p < IPCX_MQ_PRIO_LEVELS; p++)
			if ((stale >> p & 1) && ipcx__mq_ring_busy(mq, MQ_RING_LEVEL(p)))
				lost |= 1ull << p;
	}
	if (lost)
		atomic_fetch_or_explicit(bits, lost, memory_order_relaxed); /* a hint, as above */
}

bool ipcx__mq_readable(ipcx_mq *mq)
{
	/* relaxed (both): hints, re-checked by the receive itself */
	if (atomic_load_explicit(&mq->h->bits.redo, memory_order_relaxed))
		return true;
	uint64_t b = atomic_load_explicit(&mq->h->bits.nonempty, memory_order_relaxed);
	while (b) {
		uint32_t p = 63u - (uint32_t)__builtin_clzll(b);
		if (ipcx__mq_ring_busy(mq, MQ_RING_LEVEL(p)))
			return true;
		b &= ~(1ull << p);
	}
	return false;
}

/* ---- the copying paths of a plain mailbox ---------------------------------
 * A copying send or receive makes both its claims (two CASes, on lines only
 * its own side writes) before any store to a line the other side reads, so
 * that no atomic operation waits for those stores' cache misses; then it
 * writes the slot word, the payload and the cells with plain stores. */

/* Start the cache misses of the cells a claim will read (the positions are
 * hints, read from lines our side owns). */
static inline void prefetch_cell(ipcx_mq *mq, uint32_t r, bool push)
{
	struct mq_ring_idx *x = idx_of(mq, r);
	/* relaxed: a hint */
	uint64_t p = atomic_load_explicit(push ? &x->tail : &x->head, memory_order_relaxed);
	__builtin_prefetch((const void *)cell_of(mq, r, p), 1, 3);
}

/* For writing: the slot a send will fill. */
static inline void prefetch_slot(ipcx_mq *mq, uint32_t i)
{
	if (i < mq->depth) {
		__builtin_prefetch(mq_slot(mq, i), 1, 3);
		__builtin_prefetch(mq_buf(mq, i), 1, 3);
	}
}

int ipcx__mq_fast_send(ipcx_mq *mq, uint32_t prio, const void *buf, uint32_t len,
		       uint32_t *loaned)
{
	uint32_t r = MQ_RING_LEVEL(prio);
	uint64_t hf, vf, t;
	prefetch_cell(mq, MQ_RING_FREE, false);
	prefetch_cell(mq, r, true);
	ipcx__mq_busy(mq);
	int rc = claim_pop(mq, MQ_RING_FREE, &hf, &vf, UINT64_MAX, 1, NULL, NULL);
	if (rc <= 0 || (vf & MQ_CELL_SKIP)) {
		if (rc > 0) /* a skip: give it back and let the general path look on */
			release_cell(mq, MQ_RING_FREE, hf);
		ipcx__mq_idle(mq);
		return rc < 0 ? rc : 0;
	}
	uint32_t i = (uint32_t)(vf & MQ_IDX_MASK);
	prefetch_slot(mq, i);
	struct mq_slot *s = mq_slot(mq, i);
	uint64_t w = mq_word(S_LOANED, mq->idx, 0, hf);
	rc = claim_push(mq, r, &t, 1);
	if (rc <= 0) {
		/* Not now: hold the slot as a plain loan; the caller goes on. */
		/* release: as in ipcx__mq_pop */
		atomic_store_explicit(mq_wordp(mq, i), w, memory_order_release);
		release_cell(mq, MQ_RING_FREE, hf);
		ipcx__mq_idle(mq);
		*loaned = i;
		return rc < 0 ? rc : 2;
	}
	/* A memory-only mailbox numbers messages by the free-ring position their
	 * slot was taken from: unique, and increasing in the order of loans,
	 * without an atomic operation on a shared counter. */
	uint64_t seq = (hf & MQ_POS_MASK) + 1;
	struct mq_attach *e = me(mq);
	/* relaxed (both): only this handle writes it, under its busy flag */
	atomic_store_explicit(&e->sent, atomic_load_explicit(&e->sent, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	/* relaxed: published with the level cell below */
	atomic_store_explicit(mq_wordp(mq, i), mq_word(S_LEVEL, mq->idx, prio, t), memory_order_relaxed);
	release_cell(mq, MQ_RING_FREE, hf);
	s->len = len;
	s->prio = prio;
	s->flags = 0;
	s->sender = MQ_NONE;
	s->seq = seq;
	if (len)
		mq_copy(mq_buf(mq, i), buf, len);
	ipcx__mq_publish(mq, r, t, i);
	ipcx__mq_idle(mq);
	ipcx__mq_mark(mq, prio);
	ipcx__wake(&mq->h->ne.seq, &mq->h->ne.sleepers);
	return 1;
}

int ipcx__mq_fast_recv(ipcx_mq *mq, uint32_t p, void *buf, uint64_t cap, ipcx_mq_msg *m)
{
	uint32_t r = MQ_RING_LEVEL(p);
	uint64_t h, v, tf;
	prefetch_cell(mq, r, false);
	prefetch_cell(mq, MQ_RING_FREE, true);
	ipcx__mq_busy(mq);
	int rc;
	for (;;) {
		rc = claim_pop(mq, r, &h, &v, cap, 1, NULL, NULL);
		if (rc <= 0 || !(v & MQ_CELL_SKIP))
			break;
		release_cell(mq, r, h);
	}
	if (rc <= 0) {
		ipcx__mq_idle(mq);
		return rc;
	}
	uint32_t i = (uint32_t)(v & MQ_IDX_MASK);
	struct mq_slot *s = mq_slot(mq, i);
	uint64_t w = mq_word(S_TAKEN, mq->idx, p, h);
	int rf = claim_push(mq, MQ_RING_FREE, &tf, 1);
	/* release: as in ipcx__mq_pop; a death from here on redelivers it */
	atomic_store_explicit(mq_wordp(mq, i), w, memory_order_release);
	release_cell(mq, r, h);
	uint32_t len = s->len;
	if (len > mq->max_msg) { /* damaged: drop it */
		if (rf > 0)
			ipcx__mq_abandon(mq, MQ_RING_FREE, tf);
		(void)ipcx__mq_push(mq, MQ_RING_FREE, i);
		ipcx__mq_idle(mq);
		return -EBADMSG;
	}
	mq_copy(buf, mq_buf(mq, i), len);
	m->len = len;
	m->prio = p;
	m->flags = s->flags;
	m->seq = s->seq;
	struct mq_attach *e = me(mq);
	/* relaxed (both): only this handle writes it, under its busy flag */
	atomic_store_explicit(&e->received,
			      atomic_load_explicit(&e->received, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	if (rf > 0) {
		/* relaxed: published with the free cell */
		atomic_store_explicit(mq_wordp(mq, i), mq_word(S_FREE, mq->idx, 0, tf),
				      memory_order_relaxed);
		ipcx__mq_publish(mq, MQ_RING_FREE, tf, i);
	} else {
		(void)ipcx__mq_push(mq, MQ_RING_FREE, i);
	}
	ipcx__mq_idle(mq);
	ipcx__wake(&mq->h->nf.seq, &mq->h->nf.sleepers);
	return 1;
}

/* ---- runs: the copying paths of ipcx_mq_send_batch / recv_batch ----------
 * The same steps as the single paths above, in the same order for every
 * slot, made for a run of positions at a time: one claim (one CAS, one
 * intent naming the run) per ring, so a death anywhere is repaired position
 * by position as for single messages. */

/* Store n cells from pos full with slots[], the first last: a popper can
 * take nothing before the first, so it then finds the whole run there and
 * takes it in one claim, instead of chasing the stores one by one. */
static void publish_run(const struct rv *g, uint64_t pos, const uint32_t *slots, uint32_t n)
{
	if (!n)
		return;
	struct walk w = walk_from(g, pos);
	_Atomic uint64_t *first = walk_cell(&w);
	uint64_t v0 = MQ_CELL_FULL | w.lap | slots[0];
	for (uint32_t j = 1; j < n; j++) {
		walk_next(&w);
		/* release: the words, payloads and fields before the cells */
		atomic_store_explicit(walk_cell(&w), MQ_CELL_FULL | w.lap | slots[j],
				      memory_order_release);
	}
	atomic_store_explicit(first, v0, memory_order_release); /* as above */
}

/* Slot i (ours, outside every ring) back to the free ring. */
static void refree(ipcx_mq *mq, uint32_t i)
{
	(void)ipcx__mq_push(mq, MQ_RING_FREE, i); /* only fails on garbage indices */
}

/* Publish the nc positions of ring r claimed from t for slots[0..nc) (their
 * words written; finish_claimed: already published), then push slots[nc..n),
 * which found no position at once,
 * one by one, waiting for a popper of the last lap as a single push does
 * (busy held).  A push that fails (garbage indices) leaves the rest to the
 * reclaimer. */
static void finish_claimed(ipcx_mq *mq, uint32_t r, const uint32_t *slots, uint32_t nc,
			   uint32_t n)
{
	if (nc) /* release: as in publish */
		atomic_store_explicit(&me(mq)->intent_push, 0, memory_order_release);
	for (uint32_t j = nc; j < n; j++)
		if (ipcx__mq_push(mq, r, slots[j]))
			break;
}

static void publish_claimed(ipcx_mq *mq, uint32_t r, uint64_t t, const uint32_t *slots,
			    uint32_t nc, uint32_t n)
{
	const struct rv g = rv_of(mq, r);
	publish_run(&g, t, slots, nc);
	finish_claimed(mq, r, slots, nc, n);
}

/* Claim up to n full positions of ring r to pop (busy held), stepping
 * over skips (a skip is a run of one, given back at once): as claim_pos. */
static int claim_run(ipcx_mq *mq, uint32_t r, uint64_t maxlen, uint32_t n,
		     const ipcx_mq_vec *caps, uint64_t *h, uint64_t *cells)
{
	uint64_t v;
	for (;;) {
		int k = claim_pop(mq, r, h, &v, maxlen, n, caps, cells);
		if (k <= 0 || !(v & MQ_CELL_SKIP))
			return k;
		release_cell(mq, r, *h);
	}
}

/* Make the k slots of a run popped from ring r at h ours (words `state`,
 * level p, positions h + j; slots[] from cells[]), then give the cells
 * back for the next lap and drop the claim's intent (busy held). */
static void own_run(ipcx_mq *mq, uint32_t r, uint32_t state, uint32_t p, uint64_t h,
		    const uint64_t *cells, uint32_t k, uint32_t *slots)
{
	const struct rv g = rv_of(mq, r);
	const uint64_t w0 = mq_word(state, mq->idx, p, 0);
	struct walk w = walk_from(&g, h);
	for (uint32_t j = 0; j < k; j++, walk_next(&w)) {
		slots[j] = (uint32_t)(cells[j] & MQ_IDX_MASK);
		/* release: as in ipcx__mq_pop; a death from here on gives the
		 * slot back (a loan) or redelivers its message (a take) */
		atomic_store_explicit(mq_wordp(mq, slots[j]), mq_word_at(w0, h + j),
				      memory_order_release);
		/* release: as release_cell */
		atomic_store_explicit(walk_cell(&w), walk_next_lap(&w), memory_order_release);
	}
	/* release: the words before a reclaimer sees the run given back */
	atomic_store_explicit(&me(mq)->intent_pop, 0, memory_order_release);
}

/* Take up to n free slots as loans (S_LOANED: a death gives them back):
 * how many (slots[]), 0 none free, -EBADMSG. */
static int loan_run(ipcx_mq *mq, uint32_t n, uint32_t *slots)
{
	uint64_t hf, cells[MQ_RUN_MAX];
	ipcx__mq_busy(mq);
	int kf = claim_run(mq, MQ_RING_FREE, UINT64_MAX, n, NULL, &hf, cells);
	if (kf > 0) {
		own_run(mq, MQ_RING_FREE, S_LOANED, 0, hf, cells, (uint32_t)kf, slots);
		for (int j = 0; j < kf; j++)
			prefetch_slot(mq, slots[j]);
	}
	ipcx__mq_idle(mq);
	return kf;
}

/* A run of one priority into a persistent mailbox, as commit_slot sends
 * one message: loans; the records reserved at the log's tail (which may
 * take the lock, so without the busy flag); numbered and COMMITTING (a
 * death from here on owes removals); payloads and records written; then
 * the level positions claimed and published.  How many were sent (0: no
 * free slot), or -errno if none. */
static IPCX_NOINLINE int send_run_logged(ipcx_mq *mq, const ipcx_mq_vec *v, uint32_t n)
{
	struct mq_hdr *h = mq->h;
	uint32_t slots[MQ_RUN_MAX], prio = v[0].prio, r = MQ_RING_LEVEL(prio);
	/* relaxed: a flag that only goes 0 -> 1 (as in reserve) */
	if (atomic_load_explicit(&h->log.failed, memory_order_relaxed))
		return -EIO;
	int kf = loan_run(mq, n, slots);
	if (kf <= 0)
		return kf;
	uint64_t bytes = 0, off;
	for (int j = 0; j < kf; j++)
		bytes += mq_rec_size((uint32_t)v[j].len);
	int rc = ipcx__mq_log_reserve_run(mq, bytes, true, &off);
	if (rc) {
		for (int j = 0; j < kf; j++)
			refree(mq, slots[j]);
		ipcx__wake(&h->nf.seq, &h->nf.sleepers);
		return rc;
	}
	/* The records go where the file has room, or nowhere: a run whose
	 * records cannot be written is not sent (its reservation is a hole). */
	unsigned char *rec = ipcx__mq_log_at(mq, off, bytes), *recs[MQ_RUN_MAX];
	uint32_t k = rec ? (uint32_t)kf : 0, sizes[MQ_RUN_MAX];
	/* After the reservation, as in commit_slot (a compaction either waits
	 * for our records or came before them and before these numbers). */
	uint64_t seq = k ? atomic_fetch_add_explicit(&h->seq_next, (uint64_t)k,
						     memory_order_relaxed)
			 : 0;
	uint32_t epoch = ipcx__mq_log_epoch(mq);
	const uint64_t wc = mq_word(S_COMMITTING, mq->idx, 0, 0);
	for (uint32_t j = 0; j < k; j++) {
		const ipcx_mq_vec *m = &v[j];
		uint32_t i = slots[j], len = (uint32_t)m->len;
		struct mq_slot *s = mq_slot(mq, i);
		s->len = len;
		s->prio = prio;
		s->flags = 0;
		s->sender = MQ_NONE;
		s->seq = seq + j;
		s->log_off = (uint64_t)(rec - mq->log_map);
		/* release: a reclaimer that sees COMMITTING sees the seq it owes a
		 * removal for */
		atomic_store_explicit(mq_wordp(mq, i), wc, memory_order_release);
		/* Both copies from the caller's buffer, which is in cache. */
		mq_copy(mq_buf(mq, i), m->buf, len);
		recs[j] = rec;
		sizes[j] = (uint32_t)mq_rec_write(rec, seq + j, prio, m->buf, len, epoch);
		rec += sizes[j];
	}
	ipcx__mq_rec_seal(recs, sizes, k);
	ipcx__mq_log_written(mq);
	if (!k) {
		for (uint32_t j = 0; j < (uint32_t)kf; j++)
			refree(mq, slots[j]);
		ipcx__wake(&h->nf.seq, &h->nf.sleepers);
		return -EBADMSG;
	}
	uint64_t t;
	ipcx__mq_busy(mq);
	int kl = claim_push(mq, r, &t, k);
	uint32_t nl = kl > 0 ? (uint32_t)kl : 0;
	const uint64_t wl = mq_word(S_LEVEL, mq->idx, prio, 0);
	for (uint32_t j = 0; j < nl; j++)
		/* relaxed: published with the level cell */
		atomic_store_explicit(mq_wordp(mq, slots[j]), mq_word_at(wl, t + j),
				      memory_order_relaxed);
	/* (What a failed push leaves stays COMMITTING: reclaimed, cancelled
	 * and its removal logged, after us.) */
	publish_claimed(mq, r, t, slots, nl, k);
	struct mq_attach *e = me(mq);
	/* relaxed (both): only this handle writes it, under its busy flag */
	atomic_store_explicit(&e->sent, atomic_load_explicit(&e->sent, memory_order_relaxed) + k,
			      memory_order_relaxed);
	ipcx__mq_idle(mq);
	ipcx__mq_mark(mq, prio);
	ipcx__wake(&h->ne.seq, &h->ne.sleepers);
	/* Sync batch: the run that completes a batch syncs it.  Should that
	 * fail, the run is not acknowledged although queued (as a single send
	 * reports -EIO), and the log is marked failed. */
	int src = ipcx__mq_log_after_writes(mq, k);
	ipcx__mq_log_maybe_compact(mq);
	return src ? src : (int)k;
}

int ipcx__mq_fast_send_many(ipcx_mq *mq, const ipcx_mq_vec *v, uint32_t n)
{
	const struct rv gf = rv_of(mq, MQ_RING_FREE);
	const uint32_t self = mq->idx;
	struct mq_attach *e = me(mq);
	uint32_t done = 0;
	while (done < n) {
		uint32_t prio = v[done].prio, run = 1;
		while (done + run < n && run < MQ_RUN_MAX && v[done + run].prio == prio)
			run++;
		if (mq->h->persistent) {
			int k = send_run_logged(mq, v + done, run);
			if (k <= 0)
				return done ? (int)done : k;
			done += (uint32_t)k;
			if ((uint32_t)k < run)
				break;
			continue;
		}
		uint32_t r = MQ_RING_LEVEL(prio);
		const struct rv gl = rv_of(mq, r);
		uint64_t hf, vf, t, cells[MQ_RUN_MAX];
		prefetch_cell(mq, MQ_RING_FREE, false);
		prefetch_cell(mq, r, true);
		ipcx__mq_busy(mq);
		int kf = claim_pop(mq, MQ_RING_FREE, &hf, &vf, UINT64_MAX, run, NULL, cells);
		if (kf <= 0 || (vf & MQ_CELL_SKIP)) {
			if (kf > 0) { /* a skip (a run of one): give it back, look again */
				release_cell(mq, MQ_RING_FREE, hf);
				ipcx__mq_idle(mq);
				continue;
			}
			ipcx__mq_idle(mq);
			return kf < 0 ? (done ? (int)done : kf) : (int)done;
		}
		int kl = claim_push(mq, r, &t, (uint32_t)kf);
		uint32_t k = kl > 0 ? (uint32_t)kl : 0, extra = (uint32_t)kf - k;
		uint32_t slots[MQ_RUN_MAX];
		const uint64_t wl = mq_word(S_LEVEL, self, prio, 0), wo = mq_word(S_LOANED, self, 0, 0);
		struct walk wf = walk_from(&gf, hf);
		for (uint32_t j = 0; j < (uint32_t)kf; j++, walk_next(&wf)) {
			uint32_t i = (uint32_t)(cells[j] & MQ_IDX_MASK);
			slots[j] = i;
			prefetch_slot(mq, i);
			/* relaxed: published with the level cell (or, for a slot
			 * without a level position, ours alone: a plain loan) */
			atomic_store_explicit(mq_wordp(mq, i),
					      j < k ? mq_word_at(wl, t + j) : mq_word_at(wo, hf + j),
					      memory_order_relaxed);
			/* release: as release_cell (the free cell, for its next lap) */
			atomic_store_explicit(walk_cell(&wf), walk_next_lap(&wf), memory_order_release);
		}
		/* release: the words before a reclaimer sees the run given back */
		atomic_store_explicit(&e->intent_pop, 0, memory_order_release);
		/* Each slot filled, then its level cell; the run's first cell
		 * last, so that it is published when it is all written. */
		struct walk wp = walk_from(&gl, t);
		_Atomic uint64_t *first = walk_cell(&wp);
		uint64_t first_v = MQ_CELL_FULL | wp.lap | slots[0];
		for (uint32_t j = 0; j < k; j++) {
			const ipcx_mq_vec *m = &v[done + j];
			struct mq_slot *s = mq_slot(mq, slots[j]);
			s->len = (uint32_t)m->len;
			s->prio = prio;
			s->flags = 0;
			s->sender = MQ_NONE;
			s->seq = ((hf + j) & MQ_POS_MASK) + 1; /* as in fast_send */
			if (m->len)
				mq_copy(mq_buf(mq, slots[j]), m->buf, m->len);
			if (j) /* release: the word, fields and payload before the cell */
				atomic_store_explicit(walk_cell(&wp), MQ_CELL_FULL | wp.lap | slots[j],
						      memory_order_release);
			walk_next(&wp);
		}
		if (k) /* release: as above, for the whole run */
			atomic_store_explicit(first, first_v, memory_order_release);
		if (k) {
			/* relaxed (both): only this handle writes it, under busy */
			atomic_store_explicit(&e->sent,
					      atomic_load_explicit(&e->sent, memory_order_relaxed) + k,
					      memory_order_relaxed);
			/* release: as in publish */
			atomic_store_explicit(&e->intent_push, 0, memory_order_release);
		}
		/* Slots that found no level position at once go back. */
		for (uint32_t j = k; j < (uint32_t)kf; j++)
			refree(mq, slots[j]);
		ipcx__mq_idle(mq);
		if (k) {
			ipcx__mq_mark(mq, prio);
			ipcx__wake(&mq->h->ne.seq, &mq->h->ne.sleepers);
		}
		if (extra)
			ipcx__wake(&mq->h->nf.seq, &mq->h->nf.sleepers);
		done += k;
		if (kl < 0)
			return done ? (int)done : kl;
		if (extra)
			break; /* the level is not ready (a popper of the last lap) */
	}
	return (int)done;
}

/* Give n slots we hold back to the free ring (busy held): one claim for
 * as many as it has room for at once, the rest one by one. */
static IPCX_NOINLINE void free_run(ipcx_mq *mq, const uint32_t *slots, uint32_t n)
{
	uint64_t tf;
	int kf = claim_push(mq, MQ_RING_FREE, &tf, n);
	uint32_t nf = kf > 0 ? (uint32_t)kf : 0;
	const uint64_t wf = mq_word(S_FREE, mq->idx, 0, 0);
	for (uint32_t j = 0; j < nf; j++)
		/* relaxed: published with the free cell */
		atomic_store_explicit(mq_wordp(mq, slots[j]), mq_word_at(wf, tf + j),
				      memory_order_relaxed);
	/* release (in publish_run): our reads of the slots before a sender
	 * reuses them */
	publish_claimed(mq, MQ_RING_FREE, tf, slots, nf, n);
}

/* Log the removals of n slots we hold RELEASING: one record for each run
 * of consecutive sequence numbers (a sender's run is numbered so).  0 or
 * the log's error. */
static IPCX_NOINLINE int log_dels(ipcx_mq *mq, const uint32_t *slots, uint32_t n)
{
	uint64_t seqs[MQ_RUN_MAX], off;
	uint32_t nr = 0;
	for (uint32_t j = 0; j < n; j++) {
		seqs[j] = mq_slot(mq, slots[j])->seq; /* read once: the record names it */
		nr += !j || seqs[j] != seqs[j - 1] + 1;
	}
	int rc = ipcx__mq_log_reserve_run(mq, (uint64_t)nr * MQ_REC_HDR, false, &off);
	if (rc)
		return rc;
	unsigned char *rec = ipcx__mq_log_at(mq, off, (uint64_t)nr * MQ_REC_HDR);
	uint32_t epoch = ipcx__mq_log_epoch(mq);
	for (uint32_t j = 0; rec && j < n;) {
		uint32_t run = 1;
		while (j + run < n && seqs[j + run] == seqs[j] + run)
			run++;
		ipcx__mq_rec_del(rec, seqs[j], run, epoch);
		rec += MQ_REC_HDR;
		j += run;
	}
	ipcx__mq_log_written(mq);
	return rec ? 0 : -EBADMSG;
}

/* Log the removal of n taken slots of level p (popped from position h
 * on), which become RELEASING first.  0 or the log's error. */
static IPCX_NOINLINE int log_removals(ipcx_mq *mq, uint32_t p, uint64_t h, const uint32_t *slots,
				      uint32_t n)
{
	const uint64_t wr = mq_word(S_RELEASING, mq->idx, p, 0);
	for (uint32_t j = 0; j < n; j++)
		/* release: as in ipcx__mq_pop */
		atomic_store_explicit(mq_wordp(mq, slots[j]), mq_word_at(wr, h + j),
				      memory_order_release);
	return log_dels(mq, slots, n);
}

int ipcx__mq_fast_recv_many(ipcx_mq *mq, uint32_t p, ipcx_mq_vec *v, uint32_t n, bool roomy,
			    bool *too_long)
{
	uint32_t r = MQ_RING_LEVEL(p);
	const uint32_t self = mq->idx, max_msg = mq->max_msg;
	const bool logged = mq->h->persistent;
	uint64_t h, cells[MQ_RUN_MAX];
	if (n > MQ_RUN_MAX)
		n = MQ_RUN_MAX;
	prefetch_cell(mq, r, false);
	prefetch_cell(mq, MQ_RING_FREE, true);
	ipcx__mq_busy(mq);
	int k = claim_run(mq, r, v[0].cap, n, roomy ? NULL : v, &h, cells);
	if (k <= 0) {
		ipcx__mq_idle(mq);
		*too_long = k == -EMSGSIZE;
		return k == -EMSGSIZE ? 0 : k;
	}
	*too_long = false;
	/* In memory the slots' free positions are claimed now, so that the
	 * claim's misses overlap the copies'; with a log, after them (below). */
	uint64_t tf = 0;
	int kf = logged ? 0 : claim_push(mq, MQ_RING_FREE, &tf, (uint32_t)k);
	uint32_t nf = kf > 0 ? (uint32_t)kf : 0;
	uint32_t slots[MQ_RUN_MAX];
	own_run(mq, r, S_TAKEN, p, h, cells, (uint32_t)k, slots);
	struct mq_attach *e = me(mq);
	if (logged)
		ipcx__mq_idle(mq); /* the log may take the lock: not while busy */
	uint32_t got = 0;
	const uint64_t wf = mq_word(S_FREE, self, 0, 0);
	/* In memory each slot goes back to the free ring once read, the run's
	 * first cell last (as publish_run). */
	const struct rv gf = rv_of(mq, MQ_RING_FREE);
	struct walk wp = walk_from(&gf, tf);
	_Atomic uint64_t *first = walk_cell(&wp);
	const uint64_t first_v = MQ_CELL_FULL | wp.lap | slots[0];
	for (uint32_t j = 0; j < (uint32_t)k; j++) {
		struct mq_slot *s = mq_slot(mq, slots[j]);
		ipcx_mq_vec *m = &v[got];
		/* Read once: checked at the claim, but the memory is shared. */
		uint32_t len = s->len;
		if (len <= m->cap && len <= max_msg) { /* else damaged: dropped */
			mq_copy(m->buf, mq_buf(mq, slots[j]), len);
			m->len = len;
			m->prio = p;
			m->flags = 0; /* redelivered messages wait in the redo list, not here */
			got++;
		}
		if (j < nf) { /* (none with a log) */
			/* relaxed: published with the free cell */
			atomic_store_explicit(mq_wordp(mq, slots[j]), mq_word_at(wf, tf + j),
					      memory_order_relaxed);
			if (j) /* release: our reads of the slot before a sender reuses it */
				atomic_store_explicit(walk_cell(&wp), MQ_CELL_FULL | wp.lap | slots[j],
						      memory_order_release);
			walk_next(&wp);
		}
	}
	/* A persistent mailbox logs the removals before the slots are freed,
	 * as ipcx_mq_release does: RELEASING says a removal is owed, so that a
	 * death from here on is completed by the reclaimer (the log never
	 * keeps a message the mailbox let go, nor loses one it holds). */
	int lrc = 0;
	if (logged) {
		lrc = log_removals(mq, p, h, slots, (uint32_t)k);
		ipcx__mq_busy(mq);
		free_run(mq, slots, (uint32_t)k);
	} else {
		if (nf) /* release: as above, for the whole run */
			atomic_store_explicit(first, first_v, memory_order_release);
		finish_claimed(mq, MQ_RING_FREE, slots, nf, (uint32_t)k);
	}
	/* relaxed (both): only this handle writes it, under its busy flag */
	atomic_store_explicit(&e->received,
			      atomic_load_explicit(&e->received, memory_order_relaxed) + got,
			      memory_order_relaxed);
	ipcx__mq_idle(mq);
	ipcx__wake(&mq->h->nf.seq, &mq->h->nf.sleepers);
	if (logged) {
		if (!lrc) /* a failed sync marks the log failed (as a single receive) */
			(void)ipcx__mq_log_after_writes(mq, (uint32_t)k);
		ipcx__mq_log_maybe_compact(mq);
	}
	return got ? (int)got : -EBADMSG;
}

int ipcx__mq_fast_take_many(ipcx_mq *mq, uint32_t p, ipcx_mq_msg *m, uint32_t n)
{
	uint32_t r = MQ_RING_LEVEL(p);
	const uint32_t max_msg = mq->max_msg;
	uint64_t h, cells[MQ_RUN_MAX];
	uint32_t slots[MQ_RUN_MAX];
	if (n > MQ_RUN_MAX)
		n = MQ_RUN_MAX;
	prefetch_cell(mq, r, false);
	ipcx__mq_busy(mq);
	int k = claim_run(mq, r, UINT64_MAX, n, NULL, &h, cells);
	if (k <= 0) {
		ipcx__mq_idle(mq);
		return k;
	}
	own_run(mq, r, S_TAKEN, p, h, cells, (uint32_t)k, slots);
	uint32_t got = 0;
	for (uint32_t j = 0; j < (uint32_t)k; j++) {
		const struct mq_slot *s = mq_slot(mq, slots[j]);
		/* Read once: the memory is shared. */
		uint32_t len = s->len;
		if (len > max_msg) { /* damaged: dropped */
			(void)ipcx__mq_push(mq, MQ_RING_FREE, slots[j]);
			continue;
		}
		m[got++] = (ipcx_mq_msg){ .data = mq_buf(mq, slots[j]),
					  .len = len,
					  .prio = p,
					  .flags = s->flags,
					  .seq = s->seq,
					  .slot = slots[j],
					  .gen = (uint32_t)((h + j) & MQ_POS_MASK) };
	}
	ipcx__mq_idle(mq);
	return got ? (int)got : -EBADMSG;
}

int ipcx__mq_fast_release_many(ipcx_mq *mq, ipcx_mq_msg *m, uint32_t n)
{
	const bool logged = mq->h->persistent;
	const uint32_t self = mq->idx;
	uint32_t slots[MQ_RUN_MAX], k = 0;
	int rc = 0;
	if (n > MQ_RUN_MAX)
		n = MQ_RUN_MAX;
	/* Under our busy flag, no other thread of this handle can release a
	 * message meanwhile (ipcx_mq_release makes its claim under it too), and
	 * no other handle owns ours: each is checked and marked RELEASING
	 * without an atomic read-modify-write, so a message named twice is
	 * released once. */
	ipcx__mq_busy(mq);
	for (uint32_t j = 0; j < n; j++) {
		uint32_t i = m[j].slot;
		uint64_t w;
		if (!mq_held(mq, &m[j], S_TAKEN, &w)) {
			rc = -EINVAL;
			continue;
		}
		/* release: as in ipcx__mq_pop (a death from here on finishes the
		 * release, and logs the removal owed) */
		atomic_store_explicit(mq_wordp(mq, i),
				      mq_word(S_RELEASING, self, mq_w_level(w), mq_w_pos(w)),
				      memory_order_release);
		slots[k++] = i;
		m[j].data = NULL;
	}
	int lrc = 0;
	if (logged && k) {
		ipcx__mq_idle(mq); /* the log may take the lock: not while busy */
		lrc = log_dels(mq, slots, k);
		ipcx__mq_busy(mq);
	}
	if (k)
		free_run(mq, slots, k);
	struct mq_attach *e = me(mq);
	/* relaxed (both): only this handle writes it, under its busy flag */
	atomic_store_explicit(&e->received, atomic_load_explicit(&e->received, memory_order_relaxed) + k,
			      memory_order_relaxed);
	ipcx__mq_idle(mq);
	if (!k)
		return rc;
	ipcx__wake(&mq->h->nf.seq, &mq->h->nf.sleepers);
	if (logged) {
		if (!lrc) /* a failed sync marks the log failed (as a single release) */
			lrc = ipcx__mq_log_after_writes(mq, k);
		ipcx__mq_log_maybe_compact(mq);
	}
	return rc ? rc : lrc;
}
