/* Shared by the mailbox load tests: a self-checking message, a record of
 * every delivery in shared memory, and the checks run over the records. */
#ifndef MQ_LOAD_H
#define MQ_LOAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

#define ML_SENDERS_MAX 8
#define ML_DELIV_MAX (1u << 21)
#define ML_HELD (1u << 31) /* ml_record flag: taken; ml_released() when released */

struct ml_msg {
	uint32_t sender, inc; /* inc: which incarnation of the sender (kill tests) */
	uint64_t seq;
	uint32_t prio;
	uint32_t fill[3]; /* a function of the above */
};

struct ml_deliv {
	uint32_t sender, inc, prio, consumer;
	uint64_t seq;
	uint32_t redelivered, order; /* order: the consumer's count so far */
	_Atomic uint32_t valid;      /* written last: a record a kill cut short is not */
	_Atomic uint32_t held;       /* taken, and not (yet) released */
};

struct ml_shared {
	_Atomic uint64_t acked[ML_SENDERS_MAX]; /* highest acknowledged seq + 1 */
	_Atomic uint32_t inc[ML_SENDERS_MAX];
	_Atomic uint32_t ndeliv;
	_Atomic uint32_t bad; /* a corrupted payload was received */
	struct ml_deliv d[ML_DELIV_MAX];
};

static inline struct ml_shared *ml_map(void)
{
	struct ml_shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	T_CHECK(sh != MAP_FAILED);
	return sh;
}

static inline void ml_fill(struct ml_msg *m)
{
	for (int i = 0; i < 3; i++)
		m->fill[i] = (uint32_t)(m->seq * 2654435761u) ^ m->sender ^ (m->inc << 8) ^
			     (m->prio << 16) ^ (uint32_t)i;
}

/* Send m (filled): copying, or (zero_copy) loaned, written and committed. */
static inline int ml_send(ipcx_mq *mq, const struct ml_msg *m, bool zero_copy)
{
	if (!zero_copy)
		return ipcx_mq_send(mq, m, sizeof *m, m->prio, NULL);
	ipcx_mq_msg l;
	int rc = ipcx_mq_loan(mq, &l, sizeof *m, m->prio, NULL);
	if (rc)
		return rc;
	memcpy(l.data, m, sizeof *m);
	return ipcx_mq_commit(mq, &l);
}

/* Send m[0..n) (filled) with ipcx_mq_send_batch: how many were sent
 * before an error (all n: n), or the error if none. */
static inline int ml_send_batch(ipcx_mq *mq, const struct ml_msg *m, unsigned n)
{
	ipcx_mq_vec v[64];
	T_CHECK(n <= 64);
	for (unsigned k = 0; k < n; k++)
		v[k] = (ipcx_mq_vec){ .buf = (void *)(uintptr_t)&m[k], .len = sizeof m[k],
				      .prio = m[k].prio };
	unsigned done = 0;
	while (done < n) {
		int r = ipcx_mq_send_batch(mq, v + done, n - done, NULL);
		if (r < 0)
			return done ? (int)done : r;
		done += (unsigned)r;
	}
	return (int)done;
}

/* Send m[0..n) (filled) the way `how` says: 0 one copying send each, 1
 * one loan each, 2 one batch.  0 or -errno. */
static inline int ml_send_some(ipcx_mq *mq, const struct ml_msg *m, unsigned n, unsigned how)
{
	if (how == 2) {
		int r = ml_send_batch(mq, m, n);
		return r < 0 ? r : (unsigned)r == n ? 0 : -EIO;
	}
	for (unsigned k = 0; k < n; k++) {
		int rc = ml_send(mq, &m[k], how == 1);
		if (rc)
			return rc;
	}
	return 0;
}

/* Receive one message into *m: copying into buf (64 bytes; m->flags is then
 * 0: ipcx_mq_recv does not report it), or (take) zero-copy, to be released
 * by the caller.  0 or -errno. */
static inline int ml_receive(ipcx_mq *mq, ipcx_mq_msg *m, void *buf, bool take,
			     const ipcx_wait *w)
{
	if (take)
		return ipcx_mq_take(mq, m, w);
	int rc = ipcx_mq_recv(mq, buf, 64, &m->prio, w);
	m->data = buf;
	m->len = rc > 0 ? (size_t)rc : 0;
	m->flags = 0;
	return rc < 0 ? rc : 0;
}

#define ML_SOME 5

/* Receive the way `how` says: 0 take one (m[0] then to be released by
 * the caller), 1 copy one, 2 a batch of up to ML_SOME; copies go to buf.
 * How many (m[] filled), or -errno. */
static inline int ml_receive_some(ipcx_mq *mq, ipcx_mq_msg m[ML_SOME],
				  unsigned char buf[ML_SOME][64], unsigned how, const ipcx_wait *w)
{
	if (how != 2) {
		int rc = ml_receive(mq, &m[0], buf[0], how == 0, w);
		return rc < 0 ? rc : 1;
	}
	ipcx_mq_vec v[ML_SOME];
	for (int j = 0; j < ML_SOME; j++)
		v[j] = (ipcx_mq_vec){ .buf = buf[j], .cap = 64 };
	int n = ipcx_mq_recv_batch(mq, v, ML_SOME, w);
	for (int j = 0; j < n; j++)
		m[j] = (ipcx_mq_msg){ .data = buf[j], .len = v[j].len, .prio = v[j].prio,
				      .flags = v[j].flags };
	return n;
}

/* Record a delivery of len bytes at p (priority prio); its index, or -1 if
 * the payload is corrupted. */
static inline int ml_record(struct ml_shared *sh, const void *p, size_t len, unsigned prio,
			    uint32_t flags, uint32_t consumer, uint32_t order)
{
	struct ml_msg x, y;
	if (len != sizeof x) {
		atomic_store(&sh->bad, 1);
		return -1;
	}
	memcpy(&x, p, sizeof x);
	y = x;
	ml_fill(&y);
	if (memcmp(&x, &y, sizeof x) || x.sender >= ML_SENDERS_MAX || x.prio != prio) {
		atomic_store(&sh->bad, 1);
		return -1;
	}
	uint32_t k = atomic_fetch_add(&sh->ndeliv, 1);
	if (k >= ML_DELIV_MAX)
		return -1;
	struct ml_deliv *d = &sh->d[k];
	d->sender = x.sender;
	d->inc = x.inc;
	d->prio = x.prio;
	d->consumer = consumer;
	d->seq = x.seq;
	d->redelivered = !!(flags & IPCX_MQ_REDELIVERED);
	d->order = order;
	atomic_store(&d->held, !!(flags & ML_HELD));
	atomic_store(&d->valid, 1);
	return (int)k;
}

/* Delivery k (recorded with ML_HELD) was released. */
static inline void ml_released(struct ml_shared *sh, int k)
{
	atomic_store(&sh->d[k].held, 0);
}

/* Per consumer from..to-1, per sender and priority: first deliveries in
 * send order.  (Only for consumers that see IPCX_MQ_REDELIVERED: a message
 * redelivered after its taker died goes back to the head of its level.) */
static inline int ml_check_fifo(struct ml_shared *sh, uint32_t from, uint32_t to)
{
	uint32_t n = atomic_load(&sh->ndeliv);
	for (uint32_t c = from; c < to; c++) {
		for (uint32_t s = 0; s < ML_SENDERS_MAX; s++) {
			uint64_t last[IPCX_MQ_PRIO_LEVELS] = { 0 };
			uint32_t linc[IPCX_MQ_PRIO_LEVELS] = { 0 };
			for (uint32_t k = 0; k < n; k++) {
				struct ml_deliv *d = &sh->d[k];
				if (d->consumer != c || d->sender != s || d->redelivered ||
				    !atomic_load(&d->valid))
					continue;
				uint32_t p = d->prio % IPCX_MQ_PRIO_LEVELS;
				if (d->inc < linc[p] || (d->inc == linc[p] && d->seq < last[p])) {
					fprintf(stderr,
						"consumer %u: sender %u prio %u seq %llu (inc %u) "
						"after seq %llu (inc %u)\n",
						c, s, p, (unsigned long long)d->seq, d->inc,
						(unsigned long long)last[p], linc[p]);
					return T_FAIL;
				}
				linc[p] = d->inc;
				last[p] = d->seq;
			}
		}
	}
	return T_PASS;
}

static inline int ml_cmp(const void *a, const void *b)
{
	const struct ml_deliv *x = a, *y = b;
	if (x->sender != y->sender)
		return x->sender < y->sender ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Every message of senders 0..nsenders-1 below acked[] delivered; at most
 * `may_lose` of them missing in all; a second delivery only if one copy is
 * flagged redelivered, or one copy was taken and never released (its taker
 * was killed: the other copy is the redelivery, unflagged when a copying
 * receiver got it), or the message was sent again by a new incarnation (not
 * acknowledged the first time).  exact: no duplicates at all. */
static inline int ml_check_delivered(struct ml_shared *sh, uint32_t nsenders, uint64_t may_lose,
				     bool exact)
{
	uint32_t n = atomic_load(&sh->ndeliv);
	struct ml_deliv *v = malloc((size_t)n * sizeof *v + 1);
	T_CHECK(v);
	uint32_t nv = 0;
	for (uint32_t k = 0; k < n; k++)
		if (atomic_load(&sh->d[k].valid))
			memcpy(&v[nv++], &sh->d[k], sizeof *v);
	n = nv;
	qsort(v, n, sizeof *v, ml_cmp);
	uint64_t lost = 0, dups = 0;
	for (uint32_t s = 0; s < nsenders; s++) {
		uint64_t acked = atomic_load(&sh->acked[s]), want = 0;
		struct ml_deliv *p = NULL;
		for (uint32_t k = 0; k < n; k++) {
			struct ml_deliv *d = &v[k];
			if (d->sender != s)
				continue;
			if (d->seq > want && want < acked)
				lost += (d->seq < acked ? d->seq : acked) - want;
			if (p && d->seq + 1 == want) {
				if (exact || !(d->inc != p->inc || d->redelivered || p->redelivered ||
					       d->held || p->held)) {
					fprintf(stderr,
						"sender %u seq %llu delivered twice: to consumer %u "
						"(#%u%s%s) and consumer %u (#%u%s%s)\n",
						s, (unsigned long long)d->seq, p->consumer, p->order,
						p->redelivered ? ", redelivered" : "",
						p->held ? ", never released" : "", d->consumer,
						d->order, d->redelivered ? ", redelivered" : "",
						d->held ? ", never released" : "");
					free(v);
					return T_FAIL;
				}
				dups++;
			}
			want = d->seq + 1 > want ? d->seq + 1 : want;
			p = d;
		}
		if (want < acked)
			lost += acked - want;
	}
	free(v);
	printf("%u deliveries, %llu duplicates within the rules, %llu lost (at most %llu "
	       "allowed)\n",
	       n, (unsigned long long)dups, (unsigned long long)lost, (unsigned long long)may_lose);
	return lost <= may_lose ? T_PASS : T_FAIL;
}

#endif
