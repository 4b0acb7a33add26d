/* Mailboxes: sending and receiving, flow control, shaping and fair share. */
#include <string.h>
#include <time.h>

#include "mq_internal.h"

/* Compact an empty log once it has grown past this. */
#define MQ_COMPACT_BYTES (16ull << 20)

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

/* ---- reserving a buffer ----------------------------------------------- */

enum { R_WAIT = 0, R_OK = 1, R_SHAPED = 2, R_RETRY = 3 };

struct rctx {
	ipcx_mq *mq;
	uint32_t len, prio;
	uint32_t slot, gen;
	uint64_t shaped_ns; /* R_SHAPED: how long to wait */
	int counted_shaped, counted_fair;
	bool hold; /* on R_OK, return with the lock still held */
};

/* Messages up to this size are copied under the lock by the copying send and
 * receive of a memory-only mailbox: one lock round trip instead of two,
 * for a copy that costs less than the round trip it saves. */
#define MQ_SMALL 1024u

/* Make slot s ours, in `state` (lock held; the state is the commit point). */
static void own(ipcx_mq *mq, struct mq_slot *s, uint32_t state)
{
	s->owner = mq->idx;
	s->owner_pid = mq->pid;
	s->owner_start = mq->start;
	s->gen++;
	s->state = state;
}

static void add_role(ipcx_mq *mq, uint32_t role)
{
	if (mq->roles & role)
		return;
	mq->h->att[mq->idx].roles |= role;
	if (role == ROLE_SEND)
		mq->h->st.nsenders++;
	mq->roles |= role;
}

/* Unlink the head of level p (lock held). */
static uint32_t pop_level(ipcx_mq *mq, uint32_t p)
{
	struct mq_state *st = &mq->h->st;
	uint32_t i = st->lv[p].head;
	if (i >= mq->depth)
		return MQ_NONE;
	struct mq_slot *s = &mq->slots[i];
	if (s->state != S_QUEUED || s->prio != p || s->len > mq->max_msg)
		return MQ_NONE;
	st->lv[p].head = s->next;
	if (st->lv[p].head == MQ_NONE)
		st->lv[p].tail = MQ_NONE;
	if (--st->lv[p].cnt == 0 || st->lv[p].head == MQ_NONE)
		st->nonempty &= ~(1ull << p);
	st->count--;
	st->bytes -= s->len;
	if (s->sender < IPCX_MQ_ATTACH_MAX) {
		struct mq_attach *e = &mq->h->att[s->sender];
		if (e->queued && --e->queued == 0 && e->dead)
			memset(e, 0, sizeof *e);
	}
	return i;
}

static int reserve(void *arg)
{
	struct rctx *c = arg;
	ipcx_mq *mq = c->mq;
	struct mq_hdr *h = mq->h;
	struct mq_state *st = &h->st;
	/* Cheap pre-check without the lock when no slot is free (relaxed: a
	 * hint; the decision is made under the lock). */
	if (h->full == IPCX_MQ_FULL_BLOCK &&
	    atomic_load_explicit(&h->ne.space, memory_order_relaxed) == 0)
		return R_WAIT;
	int rc = ipcx__mq_lock(mq);
	if (rc)
		return rc;
	add_role(mq, ROLE_SEND);
	if (h->persistent && atomic_load_explicit(&h->log.failed, memory_order_relaxed)) {
		ipcx__mq_unlock(mq);
		return -EIO;
	}
	uint64_t now = 0;
	struct costs cm = { 0 }, cs = { 0 };
	bool shaping = h->shape.msgs_per_s || h->shape.bytes_per_s ||
		       h->shape_sender.msgs_per_s || h->shape_sender.bytes_per_s;
	if (shaping) {
		now = ipcx__now_ns();
		cm = costs_of(&h->shape, c->len);
		cs = costs_of(&h->shape_sender, c->len);
		uint64_t w = shape_wait(&st->shape, &cm, now), ws = shape_wait(&mq->shape, &cs, now);
		if (ws > w)
			w = ws;
		if (w) {
			if (!c->counted_shaped++)
				st->shaped++;
			ipcx__mq_unlock(mq);
			c->shaped_ns = w;
			return R_SHAPED;
		}
	}
	if (h->fair && h->full != IPCX_MQ_FULL_DROP && st->nsenders > 1) {
		uint32_t quota = mq->depth / st->nsenders;
		if (h->att[mq->idx].queued >= (quota ? quota : 1)) {
			if (!c->counted_fair++)
				st->fair_waits++;
			ipcx__mq_unlock(mq);
			return h->full == IPCX_MQ_FULL_FAIL ? -EAGAIN : R_WAIT;
		}
	}
	uint32_t i = st->bytes_held + c->len <= h->bytes_max ? ipcx__mq_alloc_slot(mq) : MQ_NONE;
	if (i == MQ_BAD) {
		ipcx__mq_unlock(mq);
		return -EBADMSG;
	}
	if (i != MQ_NONE) {
		struct mq_slot *s = &mq->slots[i];
		s->len = c->len;
		s->prio = c->prio;
		s->flags = 0;
		s->sender = mq->idx;
		own(mq, s, S_LOANED);
		st->nloaned++;
		st->bytes_held += c->len;
		if (shaping) {
			shape_take(&st->shape, &cm, now);
			shape_take(&mq->shape, &cs, now);
		}
		c->slot = i;
		c->gen = s->gen;
		if (!c->hold)
			ipcx__mq_unlock(mq);
		return R_OK;
	}
	if (h->full == IPCX_MQ_FULL_FAIL) {
		ipcx__mq_unlock(mq);
		return -EAGAIN;
	}
	if (h->full == IPCX_MQ_FULL_BLOCK) {
		ipcx__mq_unlock(mq);
		return R_WAIT;
	}
	/* FULL_DROP: the oldest message of the lowest level not above ours. */
	uint64_t mask = c->prio >= 63 ? ~0ull : (2ull << c->prio) - 1;
	uint64_t levels = st->nonempty & mask;
	st->dropped++;
	if (!levels) {
		ipcx__mq_unlock(mq);
		return -ENOBUFS;
	}
	uint32_t v = pop_level(mq, (uint32_t)__builtin_ctzll(levels));
	if (v == MQ_NONE) {
		ipcx__mq_unlock(mq);
		return -EBADMSG;
	}
	uint64_t seq = mq->slots[v].seq, off = 0;
	st->bytes_held -= mq->slots[v].len;
	ipcx__mq_free_slot(mq, v);
	if (h->persistent)
		off = ipcx__mq_log_reserve(mq, MQ_REC_HDR);
	ipcx__mq_publish_avail(mq);
	ipcx__mq_unlock(mq);
	if (h->persistent && (rc = ipcx__mq_log_del_done(mq, seq, off)))
		return rc;
	return R_RETRY;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { (time_t)(t / 1000000000u), (long)(t % 1000000000u) };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int acquire(ipcx_mq *mq, ipcx_mq_msg *m, size_t len, unsigned prio,
		   const ipcx_wait *call, bool hold)
{
	if (!mq || !m)
		return -EINVAL;
	if (len > mq->max_msg)
		return -EMSGSIZE;
	if (prio >= IPCX_MQ_PRIO_LEVELS)
		return -EINVAL;
	ipcx_wait w = ipcx__wait_resolve(call, &mq->wait);
	if (w.mode > IPCX_WAIT_NONBLOCK)
		return -EINVAL;
	uint64_t deadline = ipcx__deadline(&w);
	struct rctx c = { .mq = mq, .len = (uint32_t)len, .prio = prio, .hold = hold };
	ipcx__waitspec ws = { &mq->h->nf.seq, &mq->h->nf.sleepers, reserve, &c, ipcx__mq_check, mq };
	for (;;) {
		int r = reserve(&c);
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
			continue;
		}
		if (r == R_RETRY)
			continue;
		if (r < 0)
			return r;
		break;
	}
	m->data = mq->bufs + (size_t)c.slot * mq->stride;
	m->len = len;
	m->prio = prio;
	m->flags = 0;
	m->seq = 0;
	m->slot = c.slot;
	m->gen = c.gen;
	return 0;
}

IPCX_API int ipcx_mq_loan(ipcx_mq *mq, ipcx_mq_msg *m, size_t len, unsigned prio,
			  const ipcx_wait *wait)
{
	return acquire(mq, m, len, prio, wait, false);
}

/* The slot m names, if this handle holds it in `state` (lock held). */
static struct mq_slot *held(ipcx_mq *mq, const ipcx_mq_msg *m, uint32_t state)
{
	if (m->slot >= mq->depth)
		return NULL;
	struct mq_slot *s = &mq->slots[m->slot];
	if (s->state != state || s->gen != m->gen || s->owner != mq->idx || s->owner_pid != mq->pid)
		return NULL;
	return s;
}

static void drop_loan(ipcx_mq *mq, struct mq_slot *s, uint32_t i)
{
	mq->h->st.nloaned--;
	mq->h->st.bytes_held -= s->len;
	mq->h->st.cancelled++;
	ipcx__mq_free_slot(mq, i);
}

IPCX_API int ipcx_mq_cancel(ipcx_mq *mq, ipcx_mq_msg *m)
{
	if (!mq || !m)
		return -EINVAL;
	int rc = ipcx__mq_lock(mq);
	if (rc)
		return rc;
	struct mq_slot *s = held(mq, m, S_LOANED);
	if (s)
		drop_loan(mq, s, m->slot);
	ipcx__mq_unlock(mq);
	if (!s)
		return -EINVAL;
	ipcx__wake(&mq->h->nf.seq, &mq->h->nf.sleepers);
	return 0;
}

/* Append loaned slot i to its level (lock held). */
static void enqueue(ipcx_mq *mq, uint32_t i)
{
	struct mq_state *st = &mq->h->st;
	struct mq_slot *s = &mq->slots[i];
	uint32_t p = s->prio % IPCX_MQ_PRIO_LEVELS; /* in range unless damaged meanwhile */
	s->prio = p;
	s->next = MQ_NONE;
	if (st->lv[p].tail == MQ_NONE)
		st->lv[p].head = i;
	else if (st->lv[p].tail < mq->depth)
		mq->slots[st->lv[p].tail].next = i;
	st->lv[p].tail = i;
	st->lv[p].cnt++;
	st->count++;
	st->bytes += s->len;
	st->nonempty |= 1ull << p;
	st->nloaned--;
	st->sent++;
	mq->h->att[mq->idx].queued++;
	s->owner_pid = 0;
	s->gen++;
	s->state = S_QUEUED;
	ipcx__mq_publish_avail(mq);
}

IPCX_API int ipcx_mq_commit(ipcx_mq *mq, ipcx_mq_msg *m)
{
	if (!mq || !m || m->prio >= IPCX_MQ_PRIO_LEVELS)
		return -EINVAL;
	struct mq_hdr *h = mq->h;
	struct mq_state *st = &h->st;
	uint32_t i = m->slot;
	int rc = ipcx__mq_lock(mq);
	if (rc)
		return rc;
	struct mq_slot *s = held(mq, m, S_LOANED);
	if (!s || m->len > s->len || m->len > mq->max_msg) {
		ipcx__mq_unlock(mq);
		return s ? -EMSGSIZE : -EINVAL;
	}
	st->bytes_held -= s->len - m->len;
	s->len = (uint32_t)m->len;
	s->prio = m->prio;
	if (h->persistent) {
		/* Sequence and log position are taken together, so the log's
		 * records are in sequence order. */
		uint64_t off;
		if ((rc = ipcx__mq_log_reserve_put(mq, s->len, &off))) {
			/* No room in the log: the message is not sent. */
			drop_loan(mq, s, i);
			ipcx__mq_unlock(mq);
			ipcx__wake(&h->nf.seq, &h->nf.sleepers);
			return rc;
		}
		s->state = S_COMMITTING;
		s->seq = st->seq_next++;
		uint64_t seq = s->seq;
		uint32_t gen = s->gen;
		ipcx__mq_unlock(mq);
		rc = ipcx__mq_log_put(mq, i, seq, off);
		ipcx__mq_log_written(mq);
		if (!rc)
			rc = ipcx__mq_log_after_write(mq);
		int lrc = ipcx__mq_lock(mq);
		if (lrc)
			return lrc;
		if (s->state != S_COMMITTING || s->gen != gen) {
			ipcx__mq_unlock(mq);
			return -EBADMSG;
		}
		if (rc) {
			/* Not acknowledged: the message goes away, and so does its
			 * record if it reached the file (best effort: the log may
			 * be failing). */
			drop_loan(mq, s, i);
			uint64_t doff = ipcx__mq_log_reserve(mq, MQ_REC_HDR);
			ipcx__mq_unlock(mq);
			ipcx__wake(&h->nf.seq, &h->nf.sleepers);
			(void)ipcx__mq_log_del(mq, seq, doff);
			if (doff != MQ_LOG_NONE)
				ipcx__mq_log_written(mq);
			return rc;
		}
	} else {
		s->seq = st->seq_next++;
	}
	enqueue(mq, i);
	ipcx__mq_unlock(mq);
	ipcx__wake(&h->ne.seq, &h->ne.sleepers);
	return 0;
}

IPCX_API int ipcx_mq_send(ipcx_mq *mq, const void *buf, size_t len, unsigned prio,
			  const ipcx_wait *wait)
{
	ipcx_mq_msg m;
	if (len && !buf)
		return -EINVAL;
	if (!mq)
		return -EINVAL;
	struct mq_hdr *h = mq->h;
	/* Small messages go in one critical section: slot, copy, log record
	 * (a store into the mapped log) and queueing.  Not in sync "always",
	 * where the message must be durable before anyone can see it. */
	bool small = len <= MQ_SMALL && (!h->persistent || h->sync != IPCX_MQ_SYNC_ALWAYS);
	int rc = acquire(mq, &m, len, prio, wait, small);
	if (rc)
		return rc;
	if (len)
		memcpy(m.data, buf, len);
	if (!small)
		return ipcx_mq_commit(mq, &m);
	struct mq_slot *s = &mq->slots[m.slot];
	if (h->persistent) {
		uint64_t off;
		if ((rc = ipcx__mq_log_reserve_put(mq, s->len, &off))) {
			drop_loan(mq, s, m.slot);
			ipcx__mq_unlock(mq);
			ipcx__wake(&h->nf.seq, &h->nf.sleepers);
			return rc;
		}
		s->state = S_COMMITTING; /* a death from here on owes a removal record */
		s->seq = h->st.seq_next++;
		rc = ipcx__mq_log_put(mq, m.slot, s->seq, off);
		ipcx__mq_log_written(mq);
		if (rc) {
			drop_loan(mq, s, m.slot);
			ipcx__mq_unlock(mq);
			return rc;
		}
	} else {
		s->seq = h->st.seq_next++;
	}
	enqueue(mq, m.slot);
	ipcx__mq_unlock(mq);
	ipcx__wake(&h->ne.seq, &h->ne.sleepers);
	/* Batch mode: the send that completes a batch syncs it.  Should that
	 * fail, the send reports -EIO although the message is queued. */
	return h->persistent ? ipcx__mq_log_after_write(mq) : 0;
}

/* ---- receiving -------------------------------------------------------- */

static void compact_if_empty(ipcx_mq *mq)
{
	struct mq_state *st = &mq->h->st;
	if (!st->count && !st->nloaned && !st->ntaken && st->log_tail >= MQ_COMPACT_BYTES &&
	    !atomic_load_explicit(&mq->h->log.inflight, memory_order_relaxed))
		ipcx__mq_log_compact(mq);
}


struct tctx {
	ipcx_mq *mq;
	ipcx_mq_msg *m;
	size_t cap; /* SIZE_MAX for take */
	void *buf;  /* small copying receive: copy here and free the slot */
	bool copied;
	int log_rc; /* ... and the result of logging its removal */
};

static int try_take(void *arg)
{
	struct tctx *c = arg;
	ipcx_mq *mq = c->mq;
	struct mq_state *st = &mq->h->st;
	/* acquire: pairs with ipcx__mq_publish_avail; a hint, re-checked below */
	if (atomic_load_explicit(&mq->h->ne.avail, memory_order_acquire) == 0)
		return 0;
	int rc = ipcx__mq_lock(mq);
	if (rc)
		return rc;
	add_role(mq, ROLE_RECV);
	if (!st->nonempty) {
		ipcx__mq_unlock(mq);
		return 0;
	}
	uint32_t p = 63u - (uint32_t)__builtin_clzll(st->nonempty);
	uint32_t hi = st->lv[p].head;
	if (hi < mq->depth && mq->slots[hi].len > c->cap) {
		ipcx__mq_unlock(mq);
		return -EMSGSIZE;
	}
	uint32_t i = pop_level(mq, p);
	if (i == MQ_NONE) {
		ipcx__mq_unlock(mq);
		return -EBADMSG;
	}
	struct mq_slot *s = &mq->slots[i];
	if (c->buf && s->len <= MQ_SMALL) {
		memcpy(c->buf, mq->bufs + (size_t)i * mq->stride, s->len);
		c->m->len = s->len;
		c->m->prio = s->prio;
		c->copied = true;
		st->bytes_held -= s->len;
		st->received++;
		uint64_t seq = s->seq;
		ipcx__mq_free_slot(mq, i);
		if (mq->h->persistent) {
			/* After the slot is freed: a death in between leaves a
			 * message the log may deliver again, never one it lost. */
			uint64_t off = ipcx__mq_log_reserve(mq, MQ_REC_HDR);
			c->log_rc = ipcx__mq_log_del(mq, seq, off);
			if (off != MQ_LOG_NONE)
				ipcx__mq_log_written(mq);
			compact_if_empty(mq);
		}
		ipcx__mq_publish_avail(mq);
		ipcx__mq_unlock(mq);
		return 1;
	}
	own(mq, s, S_TAKEN);
	st->ntaken++;
	ipcx__mq_publish_avail(mq);
	ipcx_mq_msg *m = c->m;
	m->data = mq->bufs + (size_t)i * mq->stride;
	m->len = s->len;
	m->prio = s->prio;
	m->flags = s->flags;
	m->seq = s->seq;
	m->slot = i;
	m->gen = s->gen;
	ipcx__mq_unlock(mq);
	return 1;
}

/* 0 taken (m filled), 1 copied into buf and freed, or -errno. */
static int take(ipcx_mq *mq, ipcx_mq_msg *m, size_t cap, void *buf, const ipcx_wait *call)
{
	ipcx_wait w = ipcx__wait_resolve(call, &mq->wait);
	struct tctx c = { mq, m, cap, buf, false, 0 };
	ipcx__waitspec ws = { &mq->h->ne.seq, &mq->h->ne.sleepers, try_take, &c, ipcx__mq_check, mq };
	int rc = ipcx__wait(&w, &ws);
	if (rc == -EAGAIN && mq->efd >= 0)
		ipcx__mq_notify_rearm(mq);
	if (rc < 0)
		return rc;
	if (c.copied) {
		ipcx__wake(&mq->h->nf.seq, &mq->h->nf.sleepers);
		if (mq->h->persistent && !c.log_rc)
			(void)ipcx__mq_log_after_write(mq); /* a failure marks the log */
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
	if (!mq || !m)
		return -EINVAL;
	struct mq_hdr *h = mq->h;
	struct mq_state *st = &h->st;
	int rc = ipcx__mq_lock(mq);
	if (rc)
		return rc;
	struct mq_slot *s = held(mq, m, S_TAKEN);
	if (!s) {
		ipcx__mq_unlock(mq);
		return -EINVAL;
	}
	int lrc = 0;
	if (h->persistent) {
		/* The removal record goes to the log before the slot is freed, so
		 * the log never holds a message the mailbox has let go.  Should we
		 * die meanwhile, whoever reclaims the slot finishes the release. */
		uint64_t seq = s->seq, off = ipcx__mq_log_reserve(mq, MQ_REC_HDR);
		s->state = S_RELEASING;
		ipcx__mq_unlock(mq);
		lrc = ipcx__mq_log_del_done(mq, seq, off);
		if ((rc = ipcx__mq_lock(mq)))
			return rc;
		if (s->state != S_RELEASING || s->gen != m->gen) {
			ipcx__mq_unlock(mq);
			return -EBADMSG;
		}
	}
	st->ntaken--;
	st->bytes_held -= s->len;
	st->received++;
	ipcx__mq_free_slot(mq, m->slot);
	if (h->persistent)
		compact_if_empty(mq);
	ipcx__mq_unlock(mq);
	ipcx__wake(&h->nf.seq, &h->nf.sleepers);
	m->data = NULL;
	return lrc;
}

IPCX_API int ipcx_mq_recv(ipcx_mq *mq, void *buf, size_t cap, unsigned *prio,
			  const ipcx_wait *wait)
{
	if (!mq || (cap && !buf))
		return -EINVAL;
	ipcx_mq_msg m;
	bool small_ok = !mq->h->persistent || mq->h->sync != IPCX_MQ_SYNC_ALWAYS;
	int rc = take(mq, &m, cap, small_ok ? buf : NULL, wait);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		if (prio)
			*prio = m.prio;
		return (int)m.len;
	}
	if (m.len)
		memcpy(buf, m.data, m.len);
	if (prio)
		*prio = m.prio;
	/* The message is the caller's now: a failure to log its removal (the
	 * log is then marked failed) may make it reappear after recovery, but
	 * must not lose it. */
	(void)ipcx_mq_release(mq, &m);
	return (int)m.len;
}
