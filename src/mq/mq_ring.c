/*
 * The mailbox's lock-free rings: one free ring of slot indices and one ring
 * per priority level, each a bounded MPMC queue of capacity cap >= depth.
 *
 * A cell is one 64-bit word: "empty for position pos", "claimed for slot x
 * at pos" or "holds slot x at position pos" (the lap, pos / cap, tells
 * positions of one cell apart).  A slot's word says where the slot is.  The
 * commit points are:
 *
 *   push  the owner stores the slot's word FREE/LEVEL(pos) and then CASes
 *         cell[pos] from empty to claimed (a failed CAS retries at a later
 *         pos), and later stores it full: the message is queued.  A sender
 *         that dies in between leaves a claimed cell whose slot word names
 *         it; the reclaimer frees the slot and marks the cell popped.
 *   pop   the popper CASes the slot's word from FREE/LEVEL(pos) to its own
 *         LOANED/TAKEN; the cell is then recycled (full -> empty for the
 *         next lap) and head advanced.
 *
 * head and tail are only hints of where to look: anyone who finds a cell
 * already filled (tail) or already popped (head) moves them on, and anyone
 * who finds a popped cell not yet recycled recycles it.  So a process that
 * dies anywhere leaves the rings usable, and what it held is told by the
 * slot words alone: a word it owns outside the rings (LOANED, TAKEN, ...),
 * or a FREE/LEVEL word whose cell does not hold it (a push cut short),
 * which mq_reclaim finds and finishes.
 *
 * Every position is unique in its ring (they only grow), so a slot word or
 * a cell can never come back to a value a stalled thread read earlier: the
 * CASes are free of ABA (positions are compared on 47 bits, laps on 42).
 */
#include "mq_internal.h"

/* Loops that help others along are bounded: each round some position
 * moved; more rounds than this means the indices are garbage. */
#define MQ_SPIN_LIMIT (1u << 22)

static inline _Atomic uint64_t *cell_of(const ipcx_mq *mq, uint32_t r, uint64_t pos)
{
	return &mq->cells[((uint64_t)r << mq->cap_log2) + (pos & mq->cap_mask)];
}

static inline struct mq_ring_idx *idx_of(const ipcx_mq *mq, uint32_t r)
{
	return r == MQ_RING_FREE ? &mq->h->freer : &mq->h->lv[r - 1];
}

static inline uint64_t lap_of(const ipcx_mq *mq, uint64_t pos)
{
	return (pos >> mq->cap_log2) & MQ_LAP_MASK;
}

static inline uint64_t cell_empty(const ipcx_mq *mq, uint64_t pos)
{
	return lap_of(mq, pos) << 20;
}

static inline uint64_t cell_full(const ipcx_mq *mq, uint64_t pos, uint32_t i)
{
	return MQ_CELL_FULL | cell_empty(mq, pos) | i;
}

/* The cell's lap minus pos's lap, sign-extended from MQ_LAP_BITS. */
static inline int64_t lap_diff(const ipcx_mq *mq, uint64_t v, uint64_t pos)
{
	uint64_t d = (((v >> 20) & MQ_LAP_MASK) - lap_of(mq, pos)) & MQ_LAP_MASK;
	return (int64_t)(d << (64 - MQ_LAP_BITS)) >> (64 - MQ_LAP_BITS);
}

static inline uint64_t cell_claimed(const ipcx_mq *mq, uint64_t pos, uint32_t i)
{
	return MQ_CELL_CLAIMED | cell_full(mq, pos, i);
}

/* The word a slot has while it sits in ring r at pos. */
static inline bool word_at(uint64_t w, uint32_t r, uint64_t pos)
{
	return mq_w_state(w) == (r == MQ_RING_FREE ? S_FREE : S_LEVEL) &&
	       (r == MQ_RING_FREE || mq_w_level(w) == r - 1) && mq_w_pos(w) == (pos & MQ_POS_MASK);
}

uint64_t ipcx__mq_ring_bytes(uint32_t cap_log2)
{
	return (uint64_t)(1u + IPCX_MQ_PRIO_LEVELS) * 8u << cap_log2;
}

int ipcx__mq_claim(ipcx_mq *mq, uint32_t r, uint32_t i, uint64_t *pos)
{
	struct mq_ring_idx *x = idx_of(mq, r);
	_Atomic uint64_t *word = &mq->slots[i].word;
	uint32_t st = r == MQ_RING_FREE ? S_FREE : S_LEVEL, lvl = r == MQ_RING_FREE ? 0 : r - 1;
	uint64_t cap = mq->cap_mask + 1;
	/* relaxed: a stale tail only costs a round below */
	uint64_t t = atomic_load_explicit(&x->tail, memory_order_relaxed);
	for (uint32_t n = 0; n < MQ_SPIN_LIMIT; n++) {
		_Atomic uint64_t *c = cell_of(mq, r, t);
		/* acquire: pairs with the release of whoever wrote the cell last
		 * (a recycle: the popper is done with the slot index it held) */
		uint64_t v = atomic_load_explicit(c, memory_order_acquire);
		int64_t d = lap_diff(mq, v, t);
		if (v == cell_empty(mq, t)) {
			/* Say where the slot goes before it can be found there. */
			/* release: the payload and fields before the word */
			atomic_store_explicit(word, mq_word(st, mq->idx, lvl, t), memory_order_release);
			/* release: the word before the claim (a reclaimer that finds
			 * the claim finds whose it is) */
			if (atomic_compare_exchange_strong_explicit(c, &v, cell_claimed(mq, t, i),
								    memory_order_release,
								    memory_order_relaxed)) {
				*pos = t;
				/* relaxed: tail is a hint (see above) */
				atomic_compare_exchange_strong_explicit(&x->tail, &t, t + 1,
									memory_order_relaxed,
									memory_order_relaxed);
				return 0;
			}
			continue; /* someone else filled t: look again */
		}
		if (d == 0 || d == 1) {
			/* Position t is filled (or even popped): move tail on. */
			/* relaxed: a hint; on failure t is the current tail */
			if (atomic_compare_exchange_strong_explicit(&x->tail, &t, t + 1,
								    memory_order_relaxed,
								    memory_order_relaxed))
				t++;
			continue;
		}
		if (d == -1 && (v & MQ_CELL_FULL) && !(v & MQ_CELL_CLAIMED)) {
			/* The previous lap's slot: popped but not yet recycled (its
			 * popper is slow or dead), or the ring holds cap slots, which
			 * it cannot (there are only depth <= cap). */
			uint32_t o = (uint32_t)(v & MQ_IDX_MASK);
			if (o >= mq->depth)
				return -EBADMSG;
			/* acquire: pairs with the popper's CAS of the word */
			uint64_t ow = atomic_load_explicit(&mq->slots[o].word, memory_order_acquire);
			if (word_at(ow, r, t - cap))
				return -EBADMSG;
			/* release: as the popper's own recycle */
			atomic_compare_exchange_strong_explicit(c, &v, cell_empty(mq, t),
								memory_order_release,
								memory_order_relaxed);
			continue;
		}
		/* Our t is stale, or the cell is garbage. */
		uint64_t nt = atomic_load_explicit(&x->tail, memory_order_relaxed); /* a hint */
		if (nt == t)
			return -EBADMSG;
		t = nt;
	}
	return -EBADMSG;
}

void ipcx__mq_publish(ipcx_mq *mq, uint32_t r, uint64_t pos, uint32_t i)
{
	/* release: the word, payload and fields before the cell shows the slot
	 * (pairs with the popper's acquire of the cell).  A plain store: the
	 * claimed cell is ours alone. */
	atomic_store_explicit(cell_of(mq, r, pos), cell_full(mq, pos, i), memory_order_release);
}

void ipcx__mq_abandon(ipcx_mq *mq, uint32_t r, uint64_t pos, uint32_t i)
{
	/* release: the slot's new word first: poppers then take the cell for
	 * one already popped (pairs with their acquire of the cell) */
	atomic_store_explicit(cell_of(mq, r, pos), cell_full(mq, pos, i), memory_order_release);
}

bool ipcx__mq_claimed(ipcx_mq *mq, uint32_t i, uint64_t w)
{
	uint32_t r = mq_w_state(w) == S_FREE ? MQ_RING_FREE : MQ_RING_LEVEL(mq_w_level(w));
	uint64_t pos = mq_w_pos(w);
	/* acquire: pairs with the claimer's release CAS */
	uint64_t v = atomic_load_explicit(cell_of(mq, r, pos), memory_order_acquire);
	uint32_t bits = MQ_POS_BITS - mq->cap_log2 < MQ_LAP_BITS ? MQ_POS_BITS - mq->cap_log2
								  : MQ_LAP_BITS;
	return (v & MQ_CELL_CLAIMED) && (uint32_t)(v & MQ_IDX_MASK) == i &&
	       (((v >> 20) ^ (pos >> mq->cap_log2)) & ((1ull << bits) - 1)) == 0;
}

int ipcx__mq_push(ipcx_mq *mq, uint32_t r, uint32_t i)
{
	uint64_t pos;
	int rc = ipcx__mq_claim(mq, r, i, &pos);
	if (!rc)
		ipcx__mq_publish(mq, r, pos, i);
	return rc;
}

int ipcx__mq_pop(ipcx_mq *mq, uint32_t r, uint32_t state, uint64_t maxlen, uint32_t *out,
		 uint64_t *w)
{
	struct mq_ring_idx *x = idx_of(mq, r);
	uint32_t lvl = r == MQ_RING_FREE ? 0 : r - 1;
	uint64_t cap = mq->cap_mask + 1;
	/* relaxed: a stale head only costs a round below */
	uint64_t h = atomic_load_explicit(&x->head, memory_order_relaxed);
	for (uint32_t n = 0; n < MQ_SPIN_LIMIT; n++) {
		_Atomic uint64_t *c = cell_of(mq, r, h);
		/* acquire: pairs with the pusher's release CAS of the cell: the
		 * slot's word and payload are visible */
		uint64_t v = atomic_load_explicit(c, memory_order_acquire);
		int64_t d = lap_diff(mq, v, h);
		if (d == 0 && (!(v & MQ_CELL_FULL) || (v & MQ_CELL_CLAIMED)))
			return 0; /* empty, or the next message is still being written */
		if (d == 0) {
			uint32_t i = (uint32_t)(v & MQ_IDX_MASK);
			if (i >= mq->depth)
				return -EBADMSG;
			_Atomic uint64_t *word = &mq->slots[i].word;
			/* acquire: as the cell's */
			uint64_t ow = atomic_load_explicit(word, memory_order_acquire);
			bool mine = word_at(ow, r, h);
			if (mine) {
				/* The fields are the pusher's (acquired with the cell); a
				 * CAS that succeeds below proves they did not change. */
				if (mq->slots[i].len > maxlen)
					return -EMSGSIZE;
				uint64_t nw = mq_word(state, mq->idx, lvl, h);
				/* acquire: the slot's payload and fields are the pusher's
				 * (pairs with its release store of the word) */
				if (!atomic_compare_exchange_strong_explicit(word, &ow, nw,
									     memory_order_acquire,
									     memory_order_relaxed))
					continue; /* another popper won: look again */
				*out = i;
				*w = nw;
			}
			/* Popped, by us or before: recycle the cell for the next lap
			 * and move head on (either may have been done already). */
			/* release: pairs with the pusher's acquire of the cell */
			atomic_compare_exchange_strong_explicit(c, &v, cell_empty(mq, h + cap),
								memory_order_release,
								memory_order_relaxed);
			uint64_t hh = h;
			/* relaxed: head is a hint */
			atomic_compare_exchange_strong_explicit(&x->head, &hh, h + 1,
								memory_order_relaxed,
								memory_order_relaxed);
			if (mine)
				return 1;
			h = atomic_load_explicit(&x->head, memory_order_relaxed); /* a hint */
			continue;
		}
		if (d == 1) {
			/* Position h was popped and its cell recycled: move head on. */
			/* relaxed: a hint; on failure h is the current head */
			if (atomic_compare_exchange_strong_explicit(&x->head, &h, h + 1,
								    memory_order_relaxed,
								    memory_order_relaxed))
				h++;
			continue;
		}
		uint64_t nh = atomic_load_explicit(&x->head, memory_order_relaxed); /* a hint */
		if (nh == h)
			return -EBADMSG;
		h = nh;
	}
	return -EBADMSG;
}

bool ipcx__mq_own(ipcx_mq *mq, uint32_t i, uint64_t from, uint32_t state, uint64_t *w)
{
	uint64_t nw = mq_word(state, mq->idx, mq_w_level(from), mq_w_pos(from));
	/* acq_rel: acquire the previous owner's writes to the slot, release ours
	 * made while we held it in `from` */
	if (!atomic_compare_exchange_strong_explicit(&mq->slots[i].word, &from, nw,
						     memory_order_acq_rel, memory_order_relaxed))
		return false;
	*w = nw;
	return true;
}

bool ipcx__mq_in_ring(ipcx_mq *mq, uint32_t i, uint64_t w)
{
	uint32_t r = mq_w_state(w) == S_FREE ? MQ_RING_FREE : MQ_RING_LEVEL(mq_w_level(w));
	uint64_t pos = mq_w_pos(w);
	/* acquire: pairs with the pusher's release CAS */
	uint64_t v = atomic_load_explicit(cell_of(mq, r, pos), memory_order_acquire);
	/* The word keeps 47 bits of the position, the cell 42 bits of the lap:
	 * compare the bits both have. */
	uint32_t bits = MQ_POS_BITS - mq->cap_log2 < MQ_LAP_BITS ? MQ_POS_BITS - mq->cap_log2
								  : MQ_LAP_BITS;
	uint64_t m = (1ull << bits) - 1;
	return (v & MQ_CELL_FULL) && !(v & MQ_CELL_CLAIMED) && (uint32_t)(v & MQ_IDX_MASK) == i &&
	       (((v >> 20) ^ (pos >> mq->cap_log2)) & m) == 0;
}

bool ipcx__mq_ring_busy(ipcx_mq *mq, uint32_t r)
{
	struct mq_ring_idx *x = idx_of(mq, r);
	/* acquire (both): a hint read with the cell below */
	uint64_t h = atomic_load_explicit(&x->head, memory_order_acquire);
	uint64_t t = atomic_load_explicit(&x->tail, memory_order_acquire);
	if (t != h)
		return true;
	/* acquire: as in pop; tail may lag behind a push */
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
