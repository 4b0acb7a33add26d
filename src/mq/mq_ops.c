/* Mailboxes: sending and receiving, flow control, shaping and fair share.
 *
 * The paths of a mailbox with default options (and of a persistent one) take
 * no lock: a send pops a free slot, fills it and pushes it into its level's
 * ring; a receive pops the highest non-empty level and pushes the slot back
 * to the free ring (mq_ring.c).  Token buckets, the first use of a handle in
 * a role, redelivered messages and the log's growth take the lock. */
#include <string.h>
#include <time.h>

#include "mq_internal.h"

/* ---- token buckets (GCRA) -----------------------------------------------
 * A bucket is one theoretical arrival time (tat).  A unit of cost c may go
 * at `now` if (max(tat, now) - now) + c <= limit, where limit is the burst
 * expressed in time; it then advances tat by c.  Exact for any rate, O(1),
 * one word of state. */

static uint64_t bucket_wait(uint64_t tat, uint64_t now, uint64_t cost, uint64_t limit)
{
	uint64_t t = tat > now ? tat : now;
	if (limit < cost)
		limit = cost;
	return t - now + cost > limit ? t - now + cost - limit : 0;
}

static void bucket_take(uint64_t *tat, uint64_t now, uint64_t cost)
{
	*tat = (*tat > now ? *tat : now) + cost;
}

struct costs {
	uint64_t msg, msg_lim, byte, byte_lim;
};

static struct costs costs_of(const ipcx_mq_rate *r, uint32_t len)
{
	struct costs c = { 0, 0, 0, 0 };
	if (r->msgs_per_s) {
		c.msg = 1000000000ull / r->msgs_per_s;
		c.msg_lim = (uint64_t)(r->burst_msgs ? r->burst_msgs : 1) * c.msg;
	}
	if (r->bytes_per_s) {
		c.byte = (uint64_t)((unsigned __int128)len * 1000000000u / r->bytes_per_s);
		c.byte_lim = (uint64_t)((unsigned __int128)r->burst_bytes * 1000000000u /
					r->bytes_per_s);
	}
	return c;
}

/* ns to wait before both buckets admit the message, or 0. */
static uint64_t shape_wait(const struct mq_bucket *b, const struct costs *c, uint64_t now)
{
	uint64_t w = 0, x;
	if (c->msg && (x = bucket_wait(b->tat_msgs, now, c->msg, c->msg_lim)) > w)
		w = x;
	if (c->byte && (x = bucket_wait(b->tat_bytes, now, c->byte, c->byte_lim)) > w)
		w = x;
	return w;
}

static void shape_take(struct mq_bucket *b, const struct costs *c, uint64_t now)
{
	if (c->msg)
		bucket_take(&b->tat_msgs, now, c->msg);
	if (c->byte)
		bucket_take(&b->tat_bytes, now, c->byte);
}

/* ---- small helpers ------------------------------------------------------ */

static void add_role_slow(ipcx_mq *mq, uint32_t role)
{
	if (ipcx__mq_lock(mq))
		return;
	struct mq_attach *e = &mq->h->att[mq->idx];
	if (!(e->roles & role)) {
		e->roles |= role;
		if (role == ROLE_SEND) /* read without the lock by the fair share */
			__atomic_store_n(&mq->h->st.nsenders, mq->h->st.nsenders + 1,
					 __ATOMIC_RELAXED);
	}
	ipcx__mq_unlock(mq);
	atomic_fetch_or_explicit(&mq->roles, role, memory_order_relaxed); /* ours only */
}

static inline void add_role(ipcx_mq *mq, uint32_t role)
{
	/* relaxed: a per-handle cache of what the entry (under the lock) says */
	if (ipcx__unlikely(!(atomic_load_explicit(&mq->roles, memory_order_relaxed) & role)))
		add_role_slow(mq, role);
}

static inline struct mq_attach *me(ipcx_mq *mq)
{
	return &mq->h->att[mq->idx];
}

/* max_bytes: count len bytes in, if they fit.  true if they did. */
static bool bytes_get(ipcx_mq *mq, uint32_t len)
{
	if (!mq->bytes_limited)
		return true;
	_Atomic uint64_t *b = &mq->h->bytes_held;
	/* relaxed: a bound on a count; the slots carry the data */
	uint64_t v = atomic_load_explicit(b, memory_order_relaxed);
	do {
		if (v + len > mq->h->bytes_max)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(b, &v, v + len, memory_order_relaxed,
							memory_order_relaxed));
	return true;
}

static void bytes_put(ipcx_mq *mq, uint32_t len)
{
	if (mq->bytes_limited) /* relaxed: as in bytes_get */
		atomic_fetch_sub_explicit(&mq->h->bytes_held, len, memory_order_relaxed);
}

/* Give slot i (ours) back to the free ring and wake a waiting sender. */
static void free_slot(ipcx_mq *mq, uint32_t i)
{
	bytes_put(mq, mq_slot(mq, i)->len);
	ipcx__mq_busy(mq);
	(void)ipcx__mq_push(mq, MQ_RING_FREE, i); /* only fails on garbage indices */
	ipcx__mq_idle(mq);
	ipcx__wake(&mq->h->nf.seq, &mq->h->nf.sleepers);
}

/* A message left the queue: give its sender's fair share back. */
static void unqueue(ipcx_mq *mq, uint32_t i)
{
	uint32_t o = mq_slot(mq, i)->sender;
	if (mq->h->fair && o < IPCX_MQ_ATTACH_MAX) /* relaxed: a count */
		atomic_fetch_sub_explicit(&mq->h->att[o].queued, 1, memory_order_relaxed);
}

static void count(_Atomic uint64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed); /* a count */
}

/* Free taken slot i, logging its removal in a persistent mailbox.  0 or
 * the log's error (the slot is freed all the same). */
static int discard(ipcx_mq *mq, uint32_t i)
{
	if (!mq->h->persistent) {
		free_slot(mq, i);
		return 0;
	}
	/* As ipcx_mq_release: the removal is logged before the slot is freed,
	 * and RELEASING says it is owed, so that the reclaimer completes a
	 * death in between.  (Freeing first would let the log keep messages
	 * the mailbox let go: recovery would bring them back, more than the
	 * mailbox holds after enough such deaths.) */
	/* relaxed: our own word, written by our pop */
	uint64_t w = atomic_load_explicit(mq_wordp(mq, i), memory_order_relaxed);
	(void)ipcx__mq_own(mq, i, w, S_RELEASING, &w);
	uint64_t seq = mq_slot(mq, i)->seq, off = ipcx__mq_log_reserve(mq, MQ_REC_HDR);
	int rc = ipcx__mq_log_del(mq, seq, off);
	if (off != MQ_LOG_NONE)
		ipcx__mq_log_written(mq);
	free_slot(mq, i);
	return rc;
}

/* ---- reserving a buffer ----------------------------------------------- */

enum { R_WAIT = 0, R_OK = 1, R_SHAPED = 2, R_RETRY = 3 };

struct rctx {
	ipcx_mq *mq;
	uint32_t len, prio;
	uint32_t slot;
	uint64_t word;
	uint64_t shaped_ns; /* R_SHAPED: how long to wait */
	int counted_shaped, counted_fair;
};

/* Token buckets (lock): 0 admitted (tokens taken), R_SHAPED, or -errno. */
static int shape(struct rctx *c)
{
	ipcx_mq *mq = c->mq;
	struct mq_hdr *h = mq->h;
	int rc = ipcx__mq_lock(mq);
	if (rc)
		return rc;
	uint64_t now = ipcx__now_ns();
	struct costs cm = costs_of(&h->shape, c->len), cs = costs_of(&h->shape_sender, c->len);
	uint64_t w = shape_wait(&h->st.shape, &cm, now), ws = shape_wait(&mq->shape, &cs, now);
	if (ws > w)
		w = ws;
	if (w) {
		if (!c->counted_shaped++)
			count(&h->stats.shaped);
		ipcx__mq_unlock(mq);
		c->shaped_ns = w;
		return R_SHAPED;
	}
	shape_take(&h->st.shape, &cm, now);
	shape_take(&mq->shape, &cs, now);
	ipcx__mq_unlock(mq);
	return 0;
}

/* FULL_DROP: discard the oldest message of the lowest level not above ours.
 * R_RETRY, -ENOBUFS (nothing to discard: the new message is), -errno. */
static int drop_one(ipcx_mq *mq, uint32_t prio)
{
	uint64_t mask = prio >= 63 ? ~0ull : (2ull << prio) - 1;
	/* relaxed: where to look; the rings decide */
	uint64_t levels = atomic_load_explicit(&mq->h->bits.nonempty, memory_order_relaxed) & mask;
	count(&mq->h->stats.dropped);
	while (levels) {
		uint32_t p = (uint32_t)__builtin_ctzll(levels), i;
		uint64_t w;
		ipcx__mq_busy(mq);
		int r = ipcx__mq_pop(mq, MQ_RING_LEVEL(p), S_TAKEN, UINT64_MAX, &i, &w);
		ipcx__mq_idle(mq);
		if (r < 0)
			return r;
		if (r) {
			unqueue(mq, i);
			int rc = discard(mq, i);
			if (!rc && mq->h->persistent)
				rc = ipcx__mq_log_after_write(mq);
			return rc ? rc : R_RETRY;
		}
		levels &= levels - 1;
	}
	return -ENOBUFS;
}

static int reserve(void *arg)
{
	struct rctx *c = arg;
	ipcx_mq *mq = c->mq;
	struct mq_hdr *h = mq->h;
	/* relaxed: a flag that only goes 0 -> 1; a send racing it is a send
	 * that began before the failure */
	if (h->persistent && atomic_load_explicit(&h->log.failed, memory_order_relaxed))
		return -EIO;
	if (h->fair && h->full != IPCX_MQ_FULL_DROP) {
		uint32_t n = __atomic_load_n(&h->st.nsenders, __ATOMIC_RELAXED); /* a hint */
		uint32_t quota = n > 1 ? mq->depth / n : UINT32_MAX;
		/* relaxed: our own count (receivers lower it) */
		if (n > 1 && atomic_load_explicit(&me(mq)->queued, memory_order_relaxed) >=
				     (quota ? quota : 1)) {
			if (!c->counted_fair++)
				count(&h->stats.fair_waits);
			return h->full == IPCX_MQ_FULL_FAIL ? -EAGAIN : R_WAIT;
		}
	}
	int r = 0;
	if (bytes_get(mq, c->len)) {
		ipcx__mq_busy(mq);
		r = ipcx__mq_pop(mq, MQ_RING_FREE, S_LOANED, UINT64_MAX, &c->slot, &c->word);
		ipcx__mq_idle(mq);
		if (r <= 0)
			bytes_put(mq, c->len);
		if (r < 0)
			return r;
	}
	if (r == 0) {
		if (h->full == IPCX_MQ_FULL_FAIL)
			return -EAGAIN;
		if (h->full == IPCX_MQ_FULL_BLOCK)
			return R_WAIT;
		return drop_one(mq, c->prio);
	}
	struct mq_slot *s = mq_slot(mq, c->slot);
	s->len = c->len;
	s->log_off = 0; /* no record yet (see compact in mq_log.c) */
	if (mq->shaping && (r = shape(c)) != 0) {
		free_slot(mq, c->slot); /* not a cancel: the send did not happen yet */
		return r;
	}
	s->prio = c->prio;
	s->flags = 0;
	s->sender = h->fair ? mq->idx : MQ_NONE;
	return R_OK;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { (time_t)(t / 1000000000u), (long)(t % 1000000000u) };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int acquire(ipcx_mq *mq, ipcx_mq_msg *m, size_t len, unsigned prio,
		   const ipcx_wait *call)
{
	if (!mq || !m)
		return -EINVAL;
	if (len > mq->max_msg)
		return -EMSGSIZE;
	if (prio >= IPCX_MQ_PRIO_LEVELS || (call && call->mode > IPCX_WAIT_NONBLOCK))
		return -EINVAL;
	add_role(mq, ROLE_SEND);
	struct rctx c = { .mq = mq, .len = (uint32_t)len, .prio = prio };
	int r = reserve(&c);
	if (ipcx__unlikely(r != R_OK)) {
		ipcx_wait w = ipcx__wait_resolve(call, &mq->wait);
		if (w.mode > IPCX_WAIT_NONBLOCK)
			return -EINVAL;
		uint64_t deadline = ipcx__deadline(&w);
		ipcx__waitspec ws = { &mq->h->nf.seq, &mq->h->nf.sleepers, reserve, &c,
				      ipcx__mq_check, mq };
		for (;;) {
			if (r == R_WAIT) {
				if (w.mode == IPCX_WAIT_NONBLOCK)
					return -EAGAIN;
				uint64_t now = ipcx__now_ns();
				if (now >= deadline)
					return -ETIMEDOUT;
				ipcx_wait ww = w;
				ww.timeout_ns = deadline == UINT64_MAX ? -1 : (int64_t)(deadline - now);
				r = ipcx__wait(&ww, &ws);
			}
			if (r == R_SHAPED) {
				if (w.mode == IPCX_WAIT_NONBLOCK)
					return -EAGAIN;
				uint64_t now = ipcx__now_ns();
				if (now >= deadline)
					return -ETIMEDOUT;
				uint64_t until = now + c.shaped_ns;
				sleep_until(until < deadline ? until : deadline);
				r = reserve(&c);
				continue;
			}
			if (r == R_RETRY) {
				r = reserve(&c);
				continue;
			}
			if (r < 0)
				return r;
			if (r == R_OK)
				break;
		}
	}
	m->data = mq_buf(mq, c.slot);
	m->len = len;
	m->prio = prio;
	m->flags = 0;
	m->seq = 0;
	m->slot = c.slot;
	m->gen = (uint32_t)mq_w_pos(c.word);
	return 0;
}

IPCX_API int ipcx_mq_loan(ipcx_mq *mq, ipcx_mq_msg *m, size_t len, unsigned prio,
			  const ipcx_wait *wait)
{
	return acquire(mq, m, len, prio, wait);
}

/* A loan that will not be sent (ours, in any owned state). */
static void drop_loan(ipcx_mq *mq, uint32_t i)
{
	count(&mq->h->stats.cancelled);
	free_slot(mq, i);
}

IPCX_API int ipcx_mq_cancel(ipcx_mq *mq, ipcx_mq_msg *m)
{
	uint64_t w;
	if (!mq || !m || !mq_held(mq, m, S_LOANED, &w))
		return -EINVAL;
	/* The CAS makes one of two racing calls on one message the winner. */
	if (!ipcx__mq_own(mq, m->slot, w, S_COMMITTING, &w))
		return -EINVAL;
	drop_loan(mq, m->slot);
	return 0;
}

/*
 * Queue loaned slot i (ours; word w), copying len bytes from buf into it
 * first if buf is not NULL.  The atomic operations come before the copy,
 * the publication after it is a plain store: with a receiver reading the
 * previous messages on another CPU, the copy's cache misses then overlap
 * instead of each atomic operation waiting for them.  In a persistent
 * mailbox the message's record is written before it is published (sync
 * "always": made durable before its position is even claimed).  A message
 * the log cannot take is not sent.
 */
static int commit_slot(ipcx_mq *mq, uint32_t i, uint64_t w, const void *buf, size_t len)
{
	struct mq_hdr *h = mq->h;
	struct mq_slot *s = mq_slot(mq, i);
	uint32_t p = s->prio, r = MQ_RING_LEVEL(p);
	bool persistent = h->persistent, late = persistent && h->sync == IPCX_MQ_SYNC_ALWAYS;
	uint64_t off = 0, pos = 0;
	int rc = 0;
	/* relaxed: the numbers only need to be unique and, per sender,
	 * increasing; the rings order the messages.  In memory, the loan's
	 * free-ring position (as ipcx__mq_fast_send). */
	s->seq = mq_w_pos(w) + 1;
	if (persistent) {
		if ((rc = ipcx__mq_log_reserve_put(mq, s->len, &off))) {
			drop_loan(mq, i); /* no room in the log: the message is not sent */
			return rc;
		}
		/* After the reservation: a compaction of the log (which makes
		 * the next number its seq_base) either waits for our record, or
		 * came before it and before this number. */
		s->seq = atomic_fetch_add_explicit(&h->seq_next, 1, memory_order_relaxed);
		/* release: a reclaimer that sees COMMITTING sees the seq it owes
		 * a removal for */
		atomic_store_explicit(mq_wordp(mq, i), mq_word(S_COMMITTING, mq->idx, 0, mq_w_pos(w)),
				      memory_order_release);
	}
	if (h->fair) /* relaxed: a count; before the claim, so receivers never see it below 0 */
		atomic_fetch_add_explicit(&me(mq)->queued, 1, memory_order_relaxed);
	if (late) {
		/* Sync "always": durable before the message can be seen. */
		if (buf && len)
			memcpy(mq_buf(mq, i), buf, len);
		rc = ipcx__mq_log_put(mq, i, s->seq, off);
		ipcx__mq_log_written(mq);
		if (!rc)
			rc = ipcx__mq_log_after_write(mq);
		if (rc)
			goto unlog;
	}
	ipcx__mq_busy(mq);
	if ((rc = ipcx__mq_claim(mq, r, i, &pos))) {
		ipcx__mq_idle(mq);
		if (late)
			goto unlog;
		if (persistent)
			ipcx__mq_log_written(mq);
		goto fail;
	}
	if (!late && buf && len)
		memcpy(mq_buf(mq, i), buf, len);
	if (persistent && !late) {
		rc = ipcx__mq_log_put(mq, i, s->seq, off);
		ipcx__mq_log_written(mq);
		if (rc) {
			ipcx__mq_abandon(mq, r, pos);
			ipcx__mq_idle(mq);
			goto unlog;
		}
	}
	count(&me(mq)->sent);
	ipcx__mq_publish(mq, r, pos, i);
	ipcx__mq_idle(mq);
	ipcx__mq_mark(mq, p);
	ipcx__wake(&h->ne.seq, &h->ne.sleepers);
	/* Batch mode: the send that completes a batch syncs it.  Should that
	 * fail, the send reports -EIO although the message is queued. */
	if (!persistent)
		return 0;
	rc = h->sync == IPCX_MQ_SYNC_BATCH ? ipcx__mq_log_after_write(mq) : 0;
	ipcx__mq_log_maybe_compact(mq); /* (removals alone grow the log too) */
	return rc;
unlog: {
	/* Not acknowledged: the message goes away, and so does its record if
	 * it reached the file (best effort: the log may be failing). */
	uint64_t seq = s->seq, doff = ipcx__mq_log_reserve(mq, MQ_REC_HDR);
	drop_loan(mq, i);
	(void)ipcx__mq_log_del(mq, seq, doff);
	if (doff != MQ_LOG_NONE)
		ipcx__mq_log_written(mq);
	goto uncount;
}
fail:
	drop_loan(mq, i);
uncount:
	if (h->fair) /* relaxed: as above */
		atomic_fetch_sub_explicit(&me(mq)->queued, 1, memory_order_relaxed);
	return rc;
}

IPCX_API int ipcx_mq_commit(ipcx_mq *mq, ipcx_mq_msg *m)
{
	uint64_t w;
	if (!mq || !m || m->prio >= IPCX_MQ_PRIO_LEVELS || !mq_held(mq, m, S_LOANED, &w))
		return -EINVAL;
	struct mq_slot *s = mq_slot(mq, m->slot);
	if (m->len > s->len || m->len > mq->max_msg)
		return -EMSGSIZE;
	/* The CAS makes one of two racing calls on one message the winner. */
	if (!ipcx__mq_own(mq, m->slot, w, S_COMMITTING, &w))
		return -EINVAL;
	bytes_put(mq, s->len - (uint32_t)m->len);
	s->len = (uint32_t)m->len;
	s->prio = m->prio;
	return commit_slot(mq, m->slot, w, NULL, 0);
}

IPCX_API int ipcx_mq_send(ipcx_mq *mq, const void *buf, size_t len, unsigned prio,
			  const ipcx_wait *wait)
{
	ipcx_mq_msg m;
	if ((len && !buf) || !mq)
		return -EINVAL;
	if (mq->plain && len <= mq->max_msg && prio < IPCX_MQ_PRIO_LEVELS &&
	    (!wait || wait->mode <= IPCX_WAIT_NONBLOCK)) {
		add_role(mq, ROLE_SEND);
		uint32_t i;
		int r = ipcx__mq_fast_send(mq, prio, buf, (uint32_t)len, &i);
		if (r == 1 || r < 0)
			return r < 0 ? r : 0;
		if (r == 2) {
			/* A slot, but its level was busy: go the general way. */
			struct mq_slot *s = mq_slot(mq, i);
			s->len = (uint32_t)len;
			s->prio = prio;
			s->flags = 0;
			s->sender = MQ_NONE;
			/* relaxed: our own word, written by our pop */
			uint64_t w = atomic_load_explicit(mq_wordp(mq, i), memory_order_relaxed);
			return commit_slot(mq, i, w, buf, len);
		}
	}
	int rc = acquire(mq, &m, len, prio, wait);
	if (rc)
		return rc;
	/* relaxed: our own word, written by our pop */
	uint64_t w = atomic_load_explicit(mq_wordp(mq, m.slot), memory_order_relaxed);
	return commit_slot(mq, m.slot, w, buf, len);
}

/* ---- receiving -------------------------------------------------------- */

/* Pop the next message: the highest level first, and within a level the
 * messages redelivered after their taker died before the ring's.  1 (*i,
 * *w: TAKEN by us), 0 none, -EMSGSIZE (the next is longer than cap), -errno. */
static int take_next(ipcx_mq *mq, uint64_t cap, uint32_t *i, uint64_t *w)
{
	struct mq_hdr *h = mq->h;
	for (unsigned round = 0; round <= IPCX_MQ_PRIO_LEVELS; round++) {
		/* relaxed (both): where to look; the rings decide (their cells
		 * are read with acquire) */
		uint64_t redo = atomic_load_explicit(&h->bits.redo, memory_order_relaxed);
		uint64_t b = atomic_load_explicit(&h->bits.nonempty, memory_order_relaxed);
		int pr = redo ? 63 - __builtin_clzll(redo) : -1;
		while (b) {
			uint32_t p = 63u - (uint32_t)__builtin_clzll(b);
			if ((int)p <= pr)
				break;
			ipcx__mq_busy(mq);
			int r = ipcx__mq_pop(mq, MQ_RING_LEVEL(p), S_TAKEN, cap, i, w);
			ipcx__mq_idle(mq);
			if (r)
				return r;
			b &= ~(1ull << p);
		}
		if (pr < 0)
			return 0;
		int r = ipcx__mq_lock(mq);
		if (r)
			return r;
		r = ipcx__mq_redo_take(mq, (uint32_t)pr, i, w);
		if (r == 1 && mq_slot(mq, *i)->len > cap)
			r = -EMSGSIZE;
		else if (r == 1 && !ipcx__mq_own(mq, *i, *w, S_TAKEN, w))
			r = -EBADMSG;
		ipcx__mq_unlock(mq);
		if (r)
			return r;
	}
	return -EBADMSG; /* the redo bits keep coming back: garbage */
}

struct tctx {
	ipcx_mq *mq;
	ipcx_mq_msg *m;
	size_t cap; /* SIZE_MAX for take */
	void *buf;  /* copying receive: copy here and free the slot */
	bool copied;
	int log_rc; /* ... and the result of logging its removal */
};

/* The copying receive of a plain mailbox (no redelivered messages
 * waiting): the highest level first. */
static int fast_take(struct tctx *c)
{
	ipcx_mq *mq = c->mq;
	/* relaxed: where to look; the rings decide */
	uint64_t b = atomic_load_explicit(&mq->h->bits.nonempty, memory_order_relaxed);
	while (b) {
		uint32_t p = 63u - (uint32_t)__builtin_clzll(b);
		int r = ipcx__mq_fast_recv(mq, p, c->buf, c->cap, c->m);
		if (r) {
			c->copied = r > 0;
			return r;
		}
		b &= ~(1ull << p);
	}
	return 0;
}

static int try_take(void *arg)
{
	struct tctx *c = arg;
	ipcx_mq *mq = c->mq;
	/* relaxed: a hint; redelivered messages go the general way */
	if (mq->plain && c->buf && !atomic_load_explicit(&mq->h->bits.redo, memory_order_relaxed))
		return fast_take(c);
	uint32_t i;
	uint64_t w;
	int r = take_next(mq, c->cap, &i, &w);
	if (r <= 0)
		return r;
	struct mq_slot *s = mq_slot(mq, i);
	uint32_t len = s->len;
	if (len > mq->max_msg) {
		free_slot(mq, i); /* damaged: drop it */
		return -EBADMSG;
	}
	unqueue(mq, i);
	ipcx_mq_msg *m = c->m;
	m->len = len;
	m->prio = mq_w_level(w);
	m->flags = s->flags;
	m->seq = s->seq;
	if (c->buf) {
		memcpy(c->buf, mq_buf(mq, i), len);
		c->copied = true;
		count(&me(mq)->received);
		c->log_rc = discard(mq, i);
		return 1;
	}
	m->data = mq_buf(mq, i);
	m->slot = i;
	m->gen = (uint32_t)mq_w_pos(w);
	return 1;
}

/* Wait as the policy says until ready(arg) receives something: what it
 * returned (> 0), or -EAGAIN (the readiness fd is then re-armed),
 * -ETIMEDOUT, or its error. */
static int wait_readable(ipcx_mq *mq, const ipcx_wait *call, ipcx__ready_fn ready, void *arg)
{
	ipcx_wait w = ipcx__wait_resolve(call, &mq->wait);
	ipcx__waitspec ws = { &mq->h->ne.seq, &mq->h->ne.sleepers, ready, arg, ipcx__mq_check,
			      mq };
	int rc = ipcx__wait(&w, &ws);
	if (rc == -EAGAIN && mq->efd >= 0)
		ipcx__mq_notify_rearm(mq);
	return rc;
}

/* 0 taken (m filled), 1 copied into buf and freed, or -errno. */
static int take(ipcx_mq *mq, ipcx_mq_msg *m, size_t cap, void *buf, const ipcx_wait *call)
{
	if (call && call->mode > IPCX_WAIT_NONBLOCK)
		return -EINVAL;
	add_role(mq, ROLE_RECV);
	struct tctx c = { mq, m, cap, buf, false, 0 };
	int rc = try_take(&c);
	if (ipcx__unlikely(rc == 0))
		rc = wait_readable(mq, call, try_take, &c);
	if (rc < 0)
		return rc;
	if (c.copied && mq->h->persistent) {
		if (!c.log_rc)
			(void)ipcx__mq_log_after_write(mq); /* a failure marks the log */
		ipcx__mq_log_maybe_compact(mq);
	}
	return c.copied;
}

IPCX_API int ipcx_mq_take(ipcx_mq *mq, ipcx_mq_msg *m, const ipcx_wait *wait)
{
	if (!mq || !m)
		return -EINVAL;
	return take(mq, m, SIZE_MAX, NULL, wait);
}

IPCX_API int ipcx_mq_release(ipcx_mq *mq, ipcx_mq_msg *m)
{
	uint64_t w;
	if (!mq || !m || !mq_held(mq, m, S_TAKEN, &w))
		return -EINVAL;
	/* The CAS makes one of two racing calls on one message the winner; in
	 * a persistent mailbox RELEASING also says a removal is owed.  Under
	 * the busy flag, as ipcx_mq_release_batch checks and marks. */
	ipcx__mq_busy(mq);
	bool won = ipcx__mq_own(mq, m->slot, w, S_RELEASING, &w);
	ipcx__mq_idle(mq);
	if (!won)
		return -EINVAL;
	int lrc = 0;
	if (mq->h->persistent) {
		/* The removal record goes to the log before the slot is freed, so
		 * the log never holds a message the mailbox has let go.  Should we
		 * die meanwhile, whoever reclaims the slot finishes the release. */
		uint64_t off = ipcx__mq_log_reserve(mq, MQ_REC_HDR);
		lrc = ipcx__mq_log_del_done(mq, mq_slot(mq, m->slot)->seq, off);
	}
	count(&me(mq)->received);
	free_slot(mq, m->slot);
	if (mq->h->persistent)
		ipcx__mq_log_maybe_compact(mq);
	m->data = NULL;
	return lrc;
}

struct zctx {
	ipcx_mq *mq;
	ipcx_mq_msg *m;
	unsigned n;
};

/* Take into c->m what is queued now, without waiting.  > 0 how many, 0
 * none, < 0 error (before any message). */
static int take_now(void *arg)
{
	struct zctx *c = arg;
	ipcx_mq *mq = c->mq;
	unsigned got = 0;
	/* relaxed: a hint; redelivered messages go the general way */
	if (mq->runs && !atomic_load_explicit(&mq->h->bits.redo, memory_order_relaxed)) {
		/* relaxed: where to look; the rings decide */
		uint64_t b = atomic_load_explicit(&mq->h->bits.nonempty, memory_order_relaxed);
		while (b && got < c->n) {
			uint32_t p = 63u - (uint32_t)__builtin_clzll(b);
			int r = ipcx__mq_fast_take_many(mq, p, c->m + got, c->n - got);
			if (r < 0) {
				if (got)
					break;
				return r;
			}
			if (r == 0) {
				b &= ~(1ull << p);
				continue;
			}
			got += (unsigned)r;
			/* A higher level may have filled meanwhile: look again. */
			b = atomic_load_explicit(&mq->h->bits.nonempty, memory_order_relaxed);
		}
		return (int)got;
	}
	for (; got < c->n; got++) {
		struct tctx t = { mq, &c->m[got], SIZE_MAX, NULL, false, 0 };
		int r = try_take(&t);
		if (r <= 0) {
			if (got)
				break;
			return r;
		}
	}
	return (int)got;
}

IPCX_API int ipcx_mq_take_batch(ipcx_mq *mq, ipcx_mq_msg *m, unsigned n, const ipcx_wait *wait)
{
	if (!mq || !m || !n || n > IPCX_MQ_BATCH_MAX || (wait && wait->mode > IPCX_WAIT_NONBLOCK))
		return -EINVAL;
	add_role(mq, ROLE_RECV);
	struct zctx c = { mq, m, n };
	int rc = take_now(&c);
	return rc == 0 ? wait_readable(mq, wait, take_now, &c) : rc;
}

IPCX_API int ipcx_mq_release_batch(ipcx_mq *mq, ipcx_mq_msg *m, unsigned n)
{
	if (!mq || (n && !m) || n > IPCX_MQ_BATCH_MAX)
		return -EINVAL;
	int rc = 0;
	for (unsigned k = 0; k < n;) {
		unsigned c = n - k < MQ_RUN_MAX ? n - k : MQ_RUN_MAX;
		int r = 0;
		if (mq->runs) {
			r = ipcx__mq_fast_release_many(mq, m + k, c);
		} else {
			for (unsigned j = 0; j < c; j++) {
				int x = ipcx_mq_release(mq, &m[k + j]);
				r = r ? r : x;
			}
		}
		rc = rc ? rc : r;
		k += c;
	}
	return rc;
}

/* One copying receive into buf (cap bytes), m telling what it was: as
 * ipcx_mq_recv. */
static int recv_one(ipcx_mq *mq, void *buf, size_t cap, ipcx_mq_msg *m, const ipcx_wait *wait)
{
	/* Sync "always": the removal is made durable before the slot is freed
	 * (take and release); otherwise copy and free at once. */
	bool copy = !mq->h->persistent || mq->h->sync != IPCX_MQ_SYNC_ALWAYS;
	int rc = take(mq, m, cap, copy ? buf : NULL, wait);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		if (m->len)
			memcpy(buf, m->data, m->len);
		/* The message is the caller's now: a failure to log its removal
		 * (the log is then marked failed) may make it reappear after
		 * recovery, but must not lose it. */
		(void)ipcx_mq_release(mq, m);
	}
	return (int)m->len;
}

IPCX_API int ipcx_mq_recv(ipcx_mq *mq, void *buf, size_t cap, unsigned *prio,
			  const ipcx_wait *wait)
{
	if (!mq || (cap && !buf))
		return -EINVAL;
	ipcx_mq_msg m;
	int rc = recv_one(mq, buf, cap, &m, wait);
	if (rc >= 0 && prio)
		*prio = m.prio;
	return rc;
}

/* ---- batches ----------------------------------------------------------
 * A batch waits the way single calls do, but what it waits for is a run:
 * the readiness callbacks move as many messages as are there at once, so
 * a waiting receiver wakes to a sender's whole run rather than to its
 * first message. */

static bool batch_args(const ipcx_mq *mq, const ipcx_mq_vec *v, unsigned n,
		       const ipcx_wait *wait)
{
	return mq && v && n && n <= IPCX_MQ_BATCH_MAX &&
	       (!wait || wait->mode <= IPCX_WAIT_NONBLOCK);
}

struct bctx {
	ipcx_mq *mq;
	const ipcx_mq_vec *out; /* send: the messages */
	ipcx_mq_vec *in;        /* receive: where they go */
	unsigned n;
	bool roomy;             /* receive: every in[k].cap >= max_msg */
};

/* How many of v[0..n) are valid messages, from the first. */
static unsigned valid_run(const ipcx_mq *mq, const ipcx_mq_vec *v, unsigned n)
{
	unsigned ok = 0;
	for (; ok < n; ok++, v++)
		if (v->len > mq->max_msg || v->prio >= IPCX_MQ_PRIO_LEVELS || (v->len && !v->buf))
			break;
	return ok;
}

/* Send what can go by runs at once of c->out[0..n) (valid messages).  > 0
 * how many, 0 none (full), < 0 an error. */
static int send_now(void *arg)
{
	struct bctx *c = arg;
	return ipcx__mq_fast_send_many(c->mq, c->out, c->n);
}

IPCX_API int ipcx_mq_send_batch(ipcx_mq *mq, const ipcx_mq_vec *v, unsigned n,
				const ipcx_wait *wait)
{
	if (!batch_args(mq, v, n, wait))
		return -EINVAL;
	add_role(mq, ROLE_SEND);
	unsigned done = 0;
	while (done < n) {
		/* An invalid message goes the general way, which says why. */
		unsigned ok = mq->runs ? valid_run(mq, v + done, n - done) : 0;
		if (ok) {
			struct bctx c = { mq, v + done, NULL, ok };
			int rc = send_now(&c);
			/* Full: a blocking mailbox waits for room for a run; the
			 * other policies go the general way (fail, or drop). */
			if (rc == 0 && mq->h->full == IPCX_MQ_FULL_BLOCK) {
				ipcx_wait w = ipcx__wait_resolve(wait, &mq->wait);
				ipcx__waitspec ws = { &mq->h->nf.seq, &mq->h->nf.sleepers, send_now, &c,
						      ipcx__mq_check, mq };
				rc = ipcx__wait(&w, &ws);
			}
			if (rc > 0) {
				done += (unsigned)rc;
				continue;
			}
			if (rc < 0)
				return done ? (int)done : rc;
		}
		/* A mailbox that does not go by runs, a message that is not
		 * valid, or full and not blocking: one as ipcx_mq_send (which
		 * says what is wrong with it, or applies the full policy). */
		const ipcx_mq_vec *m = &v[done];
		int rc = ipcx_mq_send(mq, m->buf, m->len, m->prio, wait);
		if (rc)
			return done ? (int)done : rc;
		done++;
	}
	return (int)done;
}

/* Receive into c->in what is queued now, without waiting.  > 0 how many, 0
 * none, < 0 error (before any message). */
static int recv_now(void *arg)
{
	struct bctx *c = arg;
	ipcx_mq *mq = c->mq;
	ipcx_mq_vec *v = c->in;
	unsigned got = 0;
	/* relaxed: a hint; redelivered messages go the general way */
	if (mq->runs && !atomic_load_explicit(&mq->h->bits.redo, memory_order_relaxed)) {
		/* relaxed: where to look; the rings decide */
		uint64_t b = atomic_load_explicit(&mq->h->bits.nonempty, memory_order_relaxed);
		while (b && got < c->n) {
			uint32_t p = 63u - (uint32_t)__builtin_clzll(b);
			bool too_long;
			int r = ipcx__mq_fast_recv_many(mq, p, v + got, c->n - got, c->roomy,
							&too_long);
			if (r < 0 || too_long) {
				if (got)
					break;
				return r < 0 ? r : -EMSGSIZE;
			}
			if (r == 0) {
				b &= ~(1ull << p);
				continue;
			}
			got += (unsigned)r;
			/* A higher level may have filled meanwhile: look again. */
			b = atomic_load_explicit(&mq->h->bits.nonempty, memory_order_relaxed);
		}
	} else {
		ipcx_wait nb = { IPCX_WAIT_NONBLOCK, 0, -1 };
		for (; got < c->n; got++) {
			ipcx_mq_msg m;
			int rc = recv_one(mq, v[got].buf, v[got].cap, &m, &nb);
			if (rc < 0) {
				if (got)
					break;
				return rc == -EAGAIN ? 0 : rc;
			}
			v[got].len = m.len;
			v[got].prio = m.prio;
			v[got].flags = m.flags;
		}
	}
	return (int)got;
}

IPCX_API int ipcx_mq_recv_batch(ipcx_mq *mq, ipcx_mq_vec *v, unsigned n, const ipcx_wait *wait)
{
	if (!batch_args(mq, v, n, wait))
		return -EINVAL;
	bool roomy = true;
	for (unsigned k = 0; k < n; k++) {
		if (v[k].cap && !v[k].buf)
			return -EINVAL;
		roomy &= v[k].cap >= mq->max_msg;
	}
	add_role(mq, ROLE_RECV);
	struct bctx c = { mq, NULL, v, n, roomy };
	int rc = recv_now(&c);
	return rc == 0 ? wait_readable(mq, wait, recv_now, &c) : rc;
}
