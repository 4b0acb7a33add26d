/* Mailboxes: creation, attachment, the lock, repair and reclaiming of dead owners. */
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mq_internal.h"

/* ---- the lock ------------------------------------------------------------ */

static int lock_init(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	int rc = pthread_mutexattr_init(&a);
	if (rc)
		return -rc;
	rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	if (!rc)
		rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (!rc)
		rc = pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT);
	if (!rc)
		rc = pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
	return -rc;
}

static void mq_repair(ipcx_mq *mq);

/* Critical sections are a few list operations (~100 ns), while a contended
 * PI mutex goes to the kernel (FUTEX_LOCK_PI) and sleeps: try for about a
 * microsecond first. */
#define LOCK_SPINS 2000

/* Whether the lock looks free, read without writing to its cache line (glibc
 * keeps the owner's TID in __data.__lock; elsewhere, just try). */
static inline bool lock_looks_free(pthread_mutex_t *m)
{
#ifdef __GLIBC__
	return (__atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED) & 0x3fffffff) == 0;
#else
	(void)m;
	return true;
#endif
}

/*
 * The lock lives in memory other processes can write, and glibc trusts it:
 * a wrong mutex kind, or an owner TID that is our own or no longer exists,
 * would make pthread_mutex_lock assert or sleep forever.  So before taking
 * it, check what glibc would trust (glibc layout; elsewhere, nothing).
 * 0 ok, or -EBADMSG.
 */
static pthread_once_t kind_once = PTHREAD_ONCE_INIT;
static int lock_kind = -1;

static void kind_init(void)
{
	pthread_mutex_t t;
	if (lock_init(&t) == 0) {
#ifdef __GLIBC__
		lock_kind = t.__data.__kind;
#endif
		pthread_mutex_destroy(&t);
	}
}

static int kind_check(pthread_mutex_t *m)
{
#ifdef __GLIBC__
	pthread_once(&kind_once, kind_init);
	if (__atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED) != lock_kind)
		return -EBADMSG;
#else
	(void)m;
#endif
	return 0;
}

/* Before sleeping on the lock: is its owner plausible? */
static int owner_check(pthread_mutex_t *m)
{
#ifdef __GLIBC__
	unsigned w = __atomic_load_n((unsigned *)&m->__data.__lock, __ATOMIC_RELAXED);
	pid_t tid = (pid_t)(w & FUTEX_TID_MASK);
	if (!tid || (w & FUTEX_OWNER_DIED))
		return 0;
	if (tid == gettid())
		return -EBADMSG; /* we never lock twice: the word is garbage */
	if (kill(tid, 0) < 0 && errno == ESRCH) {
		/* An owner that is gone without the kernel marking the lock (a
		 * damaged robust list, or a forged word): mark it as the kernel
		 * would, so the next locker gets EOWNERDEAD and repairs. */
		__atomic_compare_exchange_n((unsigned *)&m->__data.__lock, &w,
					    (w & FUTEX_WAITERS) | FUTEX_OWNER_DIED, false,
					    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
	}
#else
	(void)m;
#endif
	return 0;
}

int ipcx__mq_lock(ipcx_mq *mq)
{
	pthread_mutex_t *m = &mq->h->lock;
	int rc = kind_check(m);
	if (rc)
		return rc;
	rc = pthread_mutex_trylock(m);
	for (int i = 0; rc == EBUSY && i < LOCK_SPINS; i++) {
		ipcx__cpu_relax();
		if (lock_looks_free(m))
			rc = pthread_mutex_trylock(m);
	}
	if (rc == EBUSY && !(rc = owner_check(m)))
		rc = pthread_mutex_lock(m);
	if (rc < 0)
		return rc;
	if (ipcx__likely(rc == 0))
		return 0;
	if (rc == EOWNERDEAD) {
		/* The holder died inside a critical section: rebuild what the
		 * lock guards. */
		mq_repair(mq);
		pthread_mutex_consistent(&mq->h->lock);
		return 0;
	}
	if (rc == ENOTRECOVERABLE)
		return -ENOTRECOVERABLE;
	return -EBADMSG; /* EINVAL, EDEADLK...: the lock word is not a lock we made */
}

void ipcx__mq_unlock(ipcx_mq *mq)
{
	pthread_mutex_unlock(&mq->h->lock);
}

/* ---- repair after a death inside the lock -------------------------------- */

/* What the lock guards is small: recount and rebuild it.  The rings and slot
 * words need nothing (they take no lock). */
static void mq_repair(ipcx_mq *mq)
{
	struct mq_hdr *h = mq->h;
	uint64_t redo = 0;
	for (uint32_t i = 0; i < mq->depth; i++) {
		/* relaxed: the lock orders what the dead holder wrote; the words
		 * the lock-free paths write are only read here */
		uint64_t w = atomic_load_explicit(mq_wordp(mq, i), memory_order_relaxed);
		if (mq_w_state(w) == S_REDO)
			redo |= 1ull << mq_w_level(w);
	}
	atomic_store_explicit(&h->bits.redo, redo, memory_order_relaxed); /* lock held */
	uint32_t n = 0;
	for (uint32_t i = 0; i < IPCX_MQ_ATTACH_MAX; i++)
		if (h->att[i].pid && !h->att[i].dead && (h->att[i].roles & ROLE_SEND))
			n++;
	__atomic_store_n(&h->st.nsenders, n, __ATOMIC_RELAXED); /* as in detach */
	if (h->persistent)
		ipcx__mq_log_repair(mq);
	h->st.repairs++;
}

/* ---- redelivery ------------------------------------------------------------ */

void ipcx__mq_redo_put(ipcx_mq *mq, uint32_t i, uint64_t w)
{
	struct mq_hdr *h = mq->h;
	struct mq_slot *s = mq_slot(mq, i);
	uint32_t p = mq_w_level(w);
	if (s->prio != p || s->len > mq->max_msg) {
		/* damaged: the message cannot be trusted; drop it */
		atomic_fetch_add_explicit(&h->stats.dropped, 1, memory_order_relaxed); /* a count */
		(void)ipcx__mq_push(mq, MQ_RING_FREE, i);
		return;
	}
	s->flags |= IPCX_MQ_REDELIVERED;
	s->sender = MQ_NONE; /* its sender's share was given back when it was taken */
	/* release: the fields above before the word (pairs with redo_take's
	 * acquire under the lock; the CAS keeps a racing owner out) */
	if (!atomic_compare_exchange_strong_explicit(mq_wordp(mq, i), &w,
						     mq_word(S_REDO, 0, p, h->st.redo_next++),
						     memory_order_release, memory_order_relaxed))
		return;
	atomic_fetch_or_explicit(&h->bits.redo, 1ull << p, memory_order_relaxed); /* lock held */
	atomic_fetch_add_explicit(&h->stats.redelivered, 1, memory_order_relaxed); /* a count */
}

int ipcx__mq_redo_take(ipcx_mq *mq, uint32_t p, uint32_t *out, uint64_t *w)
{
	uint32_t best = MQ_NONE;
	uint64_t bw = 0;
	for (uint32_t i = 0; i < mq->depth; i++) {
		/* acquire: pairs with the release in ipcx__mq_redo_put */
		uint64_t x = atomic_load_explicit(mq_wordp(mq, i), memory_order_acquire);
		if (mq_w_state(x) == S_REDO && mq_w_level(x) == p &&
		    (best == MQ_NONE || mq_w_pos(x) < mq_w_pos(bw)))
			best = i, bw = x;
	}
	if (best == MQ_NONE) {
		atomic_fetch_and_explicit(&mq->h->bits.redo, ~(1ull << p),
					  memory_order_relaxed); /* lock held */
		return 0;
	}
	*out = best;
	*w = bw;
	return 1;
}

/* ---- reclaiming what dead processes held --------------------------------- */

/* Removal records owed to the log for messages given back (lock held while
 * collecting; written after unlocking). */
#define MQ_DELS_MAX 64
struct mq_dels {
	unsigned n;
	uint64_t seq[MQ_DELS_MAX], off[MQ_DELS_MAX];
};

static void owe_del(ipcx_mq *mq, struct mq_dels *d, uint64_t seq)
{
	if (!mq->h->persistent || d->n >= MQ_DELS_MAX)
		return;
	d->seq[d->n] = seq;
	d->off[d->n++] = ipcx__mq_log_reserve_locked(mq);
}

static void write_dels(ipcx_mq *mq, const struct mq_dels *d)
{
	for (unsigned k = 0; k < d->n; k++)
		(void)ipcx__mq_log_del_done(mq, d->seq[k], d->off[k]);
}

/* Free slot i that a dead (or closing) owner held: a release it was
 * finishing counts as received, anything else as cancelled; `logged`: its
 * record may be in the log, so a removal is owed. */
static void free_held(ipcx_mq *mq, uint32_t i, bool released, bool logged, struct mq_dels *d)
{
	struct mq_hdr *h = mq->h;
	struct mq_slot *s = mq_slot(mq, i);
	if (released)
		h->st.received_gone++;
	else /* relaxed: a count */
		atomic_fetch_add_explicit(&h->stats.cancelled, 1, memory_order_relaxed);
	if (logged)
		owe_del(mq, d, s->seq);
	if (mq->bytes_limited) /* relaxed: a count */
		atomic_fetch_sub_explicit(&h->bytes_held, s->len, memory_order_relaxed);
	(void)ipcx__mq_push(mq, MQ_RING_FREE, i);
}

/* Whether slot i, whose word was w (FREE or LEVEL), is in its ring, or was
 * popped from it meanwhile (a popper changes the word before it gives the
 * cell back, so a word read again after the cell tells). */
static bool in_ring(ipcx_mq *mq, uint32_t i, uint64_t w)
{
	if (ipcx__mq_in_ring(mq, i, w))
		return true;
	/* acquire: pairs with the popper's release of the cell read above */
	return atomic_load_explicit(mq_wordp(mq, i), memory_order_acquire) != w;
}

/* Give back (lock held) every slot that attach entries in `gone` (a bit
 * per entry) hold outside the rings:
 *  loaned     -> cancelled
 *  committing -> cancelled; its record may be in the log: owe a removal
 *  taken      -> redelivered
 *  releasing  -> the release completes; owe the removal it was writing
 *  free/level outside its ring (a push cut short) -> the push completes.
 * Returns how many. */
static int give_back(ipcx_mq *mq, const uint64_t gone[2], struct mq_dels *d)
{
	int done = 0;
	ipcx__mq_busy(mq);
	for (uint32_t i = 0; i < IPCX_MQ_ATTACH_MAX; i++)
		if (gone[i >> 6] >> (i & 63) & 1)
			ipcx__mq_repair_intents(mq, i);
	for (uint32_t i = 0; i < mq->depth; i++) {
		/* acquire: what the owner wrote to the slot before its last word */
		uint64_t w = atomic_load_explicit(mq_wordp(mq, i), memory_order_acquire);
		uint32_t o = mq_w_owner(w), state = mq_w_state(w);
		if (!(gone[o >> 6] >> (o & 63) & 1) || state == S_REDO)
			continue;
		switch (state) {
		case S_FREE:
			if (in_ring(mq, i, w))
				continue;
			if (ipcx__mq_push(mq, MQ_RING_FREE, i)) /* a push cut short: redo it */
				continue;
			break;
		case S_LEVEL:
			if (in_ring(mq, i, w))
				continue;
			/* A send cut short (the message may be half written; a
			 * position it claimed is a skip by now): cancel it. */
			free_held(mq, i, false, true, d);
			break;
		case S_TAKEN:
			ipcx__mq_redo_put(mq, i, w);
			break;
		case S_LOANED:
		case S_COMMITTING:
		case S_RELEASING:
			free_held(mq, i, state == S_RELEASING, state != S_LOANED, d);
			break;
		default:
			continue; /* garbage: leave it */
		}
		done++;
	}
	ipcx__mq_idle(mq);
	return done;
}

/* A dead sender's fair-share count may be off (it died between counting a
 * message and queueing it): count its queued messages again (lock held).
 * A receiver taking one meanwhile may leave it one too high, until the next
 * recount. */
static void recount(ipcx_mq *mq, uint32_t o)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < mq->depth; i++) {
		/* relaxed: a count; the sender field goes with the word */
		uint64_t w = atomic_load_explicit(mq_wordp(mq, i), memory_order_relaxed);
		n += mq_w_state(w) == S_LEVEL && mq_slot(mq, i)->sender == o;
	}
	atomic_store_explicit(&mq->h->att[o].queued, n, memory_order_relaxed); /* a count */
}

struct cand {
	uint32_t idx;
	int32_t pid;
	uint64_t start;
};

static int owner_alive(int32_t pid, uint64_t start)
{
	return pid > 0 && ipcx__proc_start(pid) == start;
}

/*
 * Find attach entries of processes that no longer exist and give back what
 * they held.  The liveness checks (a /proc read each) run outside the lock
 * on a snapshot; the entry's pid and start time tell whether it changed
 * meanwhile.  Returns the number of things reclaimed.
 */
static int mq_reclaim(ipcx_mq *mq)
{
	struct mq_hdr *h = mq->h;
	struct cand a[IPCX_MQ_ATTACH_MAX];
	unsigned na = 0;
	int done = 0;
	if (ipcx__mq_lock(mq))
		return 0;
	for (uint32_t i = 0; i < IPCX_MQ_ATTACH_MAX; i++) {
		struct mq_attach *e = &h->att[i];
		if (e->dead && atomic_load_explicit(&e->queued, memory_order_relaxed))
			recount(mq, i); /* a count (lock held) */
		if (e->dead && !atomic_load_explicit(&e->queued, memory_order_relaxed))
			memset(e, 0, sizeof *e); /* drained: free it (lock held) */
		else if (e->pid && !e->dead && e->pid != mq->pid)
			a[na++] = (struct cand){ i, e->pid, e->start };
	}
	ipcx__mq_unlock(mq);

	unsigned da = 0;
	for (unsigned k = 0; k < na; k++)
		if (!owner_alive(a[k].pid, a[k].start))
			a[da++] = a[k];
	if (!da)
		return 0;

	struct mq_dels dels = { 0 };
	uint64_t gone[2] = { 0, 0 };
	if (ipcx__mq_lock(mq))
		return 0;
	for (unsigned k = 0; k < da; k++) {
		struct mq_attach *e = &h->att[a[k].idx];
		if (e->pid == a[k].pid && e->start == a[k].start && !e->dead)
			gone[a[k].idx >> 6] |= 1ull << (a[k].idx & 63);
	}
	done = give_back(mq, gone, &dels);
	for (uint32_t i = 0; i < IPCX_MQ_ATTACH_MAX; i++)
		if (gone[i >> 6] >> (i & 63) & 1) {
			ipcx__mq_detach_entry(mq, i);
			done++;
		}
	ipcx__mq_unlock(mq);
	write_dels(mq, &dels);
	ipcx__wake(&h->ne.seq, &h->ne.sleepers);
	ipcx__wake(&h->nf.seq, &h->nf.sleepers);
	return done;
}

/* The liveness hook of every wait on a mailbox: reclaim from the dead, and
 * repair the non-empty bits (stale ones, or ones a dead sender never set). */
int ipcx__mq_check(void *arg)
{
	(void)mq_reclaim(arg);
	ipcx__mq_fix_bits(arg);
	return 0;
}

void ipcx__mq_detach_entry(ipcx_mq *mq, uint32_t idx)
{
	struct mq_hdr *h = mq->h;
	struct mq_attach *e = &h->att[idx];
	if (e->roles & ROLE_SEND) /* read without the lock by the fair share */
		__atomic_store_n(&h->st.nsenders, h->st.nsenders - 1, __ATOMIC_RELAXED);
	/* relaxed (all): the entry is ours to retire (lock held); the counters
	 * are only summed */
	h->st.sent_gone += atomic_exchange_explicit(&e->sent, 0, memory_order_relaxed);
	h->st.received_gone += atomic_exchange_explicit(&e->received, 0, memory_order_relaxed);
	if (atomic_load_explicit(&e->queued, memory_order_relaxed)) {
		e->dead = 1; /* keep the entry until its messages are gone */
		e->roles = 0;
		atomic_store_explicit(&e->inflight, 0, memory_order_relaxed);
	} else {
		memset(e, 0, sizeof *e);
	}
}

/* ---- create / open ------------------------------------------------------ */

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static uint32_t stride_of(uint32_t max_msg)
{
	return (uint32_t)(max_msg >= 4096 ? round_up(max_msg, 4096)
					  : round_up(max_msg ? max_msg : 1, 64));
}

/* Ring capacity: twice the depth (rounded up to a power of two), so that
 * a push never lands on the cell whose previous lap a popper may still be
 * giving back: a ring holds at most depth slots. */
static uint32_t cap_log2_of(uint32_t depth)
{
	uint32_t k = 0;
	while ((1u << k) < depth)
		k++;
	return k + 1;
}

/*
 * Layout after the header: the rings, then the slots.  Below 4 KiB a slot's
 * descriptor sits just before its buffer (one 128-byte block for messages of
 * up to 64 bytes: a message costs the other CPU one transfer, not two);
 * from 4 KiB on the descriptors form a table and the buffers are
 * page-aligned.
 */
static bool inline_slots(uint32_t max_msg)
{
	return max_msg < 4096;
}

static uint64_t ring_off(void)
{
	return round_up(sizeof(struct mq_hdr), IPCX_CACHELINE);
}

static uint64_t words_off(uint32_t depth)
{
	return ring_off() + ipcx__mq_ring_bytes(cap_log2_of(depth));
}

static uint64_t slots_off(uint32_t depth, uint32_t max_msg)
{
	uint64_t end = words_off(depth) + (uint64_t)depth * sizeof(uint64_t);
	return inline_slots(max_msg) ? round_up(end, 4096) : round_up(end, IPCX_CACHELINE);
}

static uint64_t data_off(uint32_t depth, uint32_t max_msg)
{
	uint64_t so = slots_off(depth, max_msg);
	return inline_slots(max_msg) ? so + sizeof(struct mq_slot)
				     : round_up(so + (uint64_t)depth * sizeof(struct mq_slot), 4096);
}

static uint64_t pitch_of(uint32_t max_msg)
{
	return inline_slots(max_msg) ? sizeof(struct mq_slot) + stride_of(max_msg)
				     : stride_of(max_msg);
}

static uint64_t region_size(uint32_t depth, uint32_t max_msg)
{
	return data_off(depth, max_msg) + (uint64_t)depth * pitch_of(max_msg);
}

static void add_entry(struct mq_attach *e, ipcx_mq *mq)
{
	memset(e, 0, sizeof *e);
	e->pid = mq->pid;
	e->start = mq->start;
}

static int register_self(ipcx_mq *mq)
{
	int rc = ipcx__mq_lock(mq);
	if (rc)
		return rc;
	for (uint32_t i = 0; i < IPCX_MQ_ATTACH_MAX; i++) {
		struct mq_attach *e = &mq->h->att[i];
		if (!e->pid && !e->dead) {
			add_entry(e, mq);
			mq->idx = i;
			ipcx__mq_unlock(mq);
			return 0;
		}
	}
	ipcx__mq_unlock(mq);
	return -EUSERS;
}

static ipcx_mq *mq_alloc(void)
{
	ipcx_mq *mq = calloc(1, sizeof *mq);
	if (!mq)
		return NULL;
	mq->log_fd = -1;
	mq->efd = -1;
	mq->idx = MQ_NONE;
	mq->pid = (int32_t)getpid();
	mq->start = ipcx__proc_start(mq->pid);
	pthread_mutex_init(&mq->nlock, NULL);
	return mq;
}

static void mq_free(ipcx_mq *mq)
{
	ipcx__mq_log_unmap(mq);
	if (mq->log_fd >= 0)
		close(mq->log_fd);
	ipcx_region_close(mq->region);
	pthread_mutex_destroy(&mq->nlock);
	free(mq);
}

/* Point the handle into the region (the configuration is validated). */
static void bind_region(ipcx_mq *mq, uint32_t depth, uint32_t max_msg, uint32_t stride)
{
	char *d = ipcx_region_data(mq->region);
	mq->h = (struct mq_hdr *)d;
	mq->depth = depth;
	mq->max_msg = max_msg;
	mq->stride = stride;
	mq->cap_log2 = cap_log2_of(depth);
	mq->cap_mask = (1ull << mq->cap_log2) - 1;
	mq->cells = (_Atomic uint64_t *)(d + ring_off());
	mq->words = (_Atomic uint64_t *)(d + words_off(depth));
	mq->slot_base = (unsigned char *)d + slots_off(depth, max_msg);
	mq->buf_base = (unsigned char *)d + data_off(depth, max_msg);
	mq->buf_pitch = pitch_of(max_msg);
	mq->slot_pitch = inline_slots(max_msg) ? mq->buf_pitch : sizeof(struct mq_slot);
	const struct mq_hdr *h = mq->h;
	mq->bytes_limited = h->bytes_max < (uint64_t)depth * max_msg;
	mq->shaping = h->shape.msgs_per_s || h->shape.bytes_per_s || h->shape_sender.msgs_per_s ||
		      h->shape_sender.bytes_per_s;
	mq->plain = !h->persistent && !mq->shaping && !h->fair && !mq->bytes_limited;
	mq->runs = !mq->shaping && !h->fair && !mq->bytes_limited &&
		   (!h->persistent || h->sync != IPCX_MQ_SYNC_ALWAYS);
}

static int check_rate(const ipcx_mq_rate *r)
{
	return r->reserved ? -EINVAL : 0;
}

IPCX_API int ipcx_mq_create(ipcx_mq **out, const char *name, const ipcx_mq_opts *opts)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	ipcx_mq_opts o = opts ? *opts : (ipcx_mq_opts){ 0 };
	if (!o.max_msg)
		o.max_msg = 8192;
	if (!o.depth)
		o.depth = 64;
	if (!o.batch_msgs)
		o.batch_msgs = 64;
	if (!o.batch_ms)
		o.batch_ms = 10;
	uint64_t all = (uint64_t)o.depth * o.max_msg;
	if (!o.max_bytes || o.max_bytes > all)
		o.max_bytes = all;
	if (o.max_msg > IPCX_MQ_MSG_MAX || o.depth > IPCX_MQ_DEPTH_MAX ||
	    o.full > IPCX_MQ_FULL_DROP || o.fair > 1 || o.sync > IPCX_MQ_SYNC_ALWAYS ||
	    (o.mode & ~07777u) || o.reserved || check_rate(&o.shape) ||
	    check_rate(&o.shape_sender) || o.wait.mode > IPCX_WAIT_NONBLOCK ||
	    (o.max_bytes < o.max_msg && o.max_bytes != all))
		return -EINVAL;
	if (o.log_path && (!o.log_path[0] || strlen(o.log_path) >= IPCX_MQ_LOG_PATH_MAX))
		return -EINVAL;
	if (o.wait.mode == IPCX_WAIT_DEFAULT && !o.wait.spin_ns && !o.wait.timeout_ns)
		o.wait = IPCX_WAIT_INIT(IPCX_WAIT_ADAPTIVE);

	uint32_t stride = stride_of(o.max_msg);
	uint64_t size = region_size(o.depth, o.max_msg);
	ipcx_region_opts ro = { .mode = o.mode, .flags = 0 };
	ipcx_mq *mq = mq_alloc();
	if (!mq)
		return -ENOMEM;
	int rc = ipcx__region_create(&mq->region, name, IPCX_KIND_MQ, size, &ro);
	if (rc) {
		mq_free(mq);
		return rc;
	}
	struct mq_hdr *h = ipcx_region_data(mq->region);
	h->magic = MQ_MAGIC;
	h->abi = MQ_ABI;
	h->hdr_bytes = (uint32_t)ring_off();
	h->max_msg = o.max_msg;
	h->depth = o.depth;
	h->bytes_max = o.max_bytes;
	h->stride = stride;
	h->full = o.full;
	h->fair = o.fair;
	h->sync = o.sync;
	h->batch_msgs = o.batch_msgs;
	h->batch_ms = o.batch_ms;
	h->data_off = data_off(o.depth, o.max_msg);
	h->ring_off = slots_off(o.depth, o.max_msg);
	h->cap_log2 = cap_log2_of(o.depth);
	h->shape = o.shape;
	h->shape_sender = o.shape_sender;
	h->wait = o.wait;
	h->mode = o.mode ? o.mode : 0600;
	bind_region(mq, o.depth, o.max_msg, stride);
	mq->wait = o.wait;
	if ((rc = lock_init(&h->lock)))
		goto fail;
	/* Not yet published: plain initialisation (relaxed stores). */
	atomic_store_explicit(&h->seq_next, 1, memory_order_relaxed);
	for (uint32_t i = 0; i < o.depth; i++) {
		mq_slot(mq, i)->sender = MQ_NONE;
		atomic_store_explicit(mq_wordp(mq, i), mq_word(S_FREE, 0, 0, i),
				      memory_order_relaxed);
	}
	ipcx__mq_ring_init(mq);
	if (o.log_path) {
		/* Other processes open the log by this path: make it absolute. */
		char cwd[IPCX_MQ_LOG_PATH_MAX];
		int n = o.log_path[0] == '/' ? snprintf(h->log_path, sizeof h->log_path, "%s",
							o.log_path)
			: getcwd(cwd, sizeof cwd)
				? snprintf(h->log_path, sizeof h->log_path, "%s/%s", cwd, o.log_path)
				: -1;
		if (n < 0 || (size_t)n >= sizeof h->log_path) {
			rc = -ENAMETOOLONG;
			goto fail;
		}
		h->persistent = 1;
		mq->plain = false;
		if ((rc = ipcx__mq_log_create(mq, h->log_path, h->mode)))
			goto fail;
	}
	if ((rc = register_self(mq)))
		goto fail;
	ipcx__region_publish(mq->region);
	*out = mq;
	return 0;
fail:
	ipcx_region_unlink(name);
	mq_free(mq);
	return rc;
}

/* Read the configuration once and check it against the mapping. */
static int validate(ipcx_mq *mq)
{
	const struct mq_hdr *h = ipcx_region_data(mq->region);
	uint64_t size = ipcx_region_size(mq->region);
	if (size < sizeof *h)
		return -EBADMSG;
	uint64_t magic = h->magic;
	uint32_t abi = h->abi, hb = h->hdr_bytes, max_msg = h->max_msg, depth = h->depth;
	uint32_t stride = h->stride, full = h->full, cl = h->cap_log2;
	uint64_t doff = h->data_off, roff = h->ring_off, bmax = h->bytes_max;
	if (magic != MQ_MAGIC)
		return -EPROTO;
	if (abi != MQ_ABI)
		return -EPROTONOSUPPORT;
	if (hb != ring_off() || max_msg > IPCX_MQ_MSG_MAX || depth == 0 ||
	    depth > IPCX_MQ_DEPTH_MAX || stride != stride_of(max_msg) ||
	    doff != data_off(depth, max_msg) || roff != slots_off(depth, max_msg) ||
	    cl != cap_log2_of(depth) || full > IPCX_MQ_FULL_DROP ||
	    region_size(depth, max_msg) > size || bmax > (uint64_t)depth * max_msg)
		return -EBADMSG;
	if (h->persistent && !memchr(h->log_path, 0, sizeof h->log_path))
		return -EBADMSG;
	bind_region(mq, depth, max_msg, stride);
	return 0;
}

IPCX_API int ipcx_mq_open(ipcx_mq **out, const char *name, const ipcx_wait *wait)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (wait && wait->mode > IPCX_WAIT_NONBLOCK)
		return -EINVAL;
	ipcx_mq *mq = mq_alloc();
	if (!mq)
		return -ENOMEM;
	int rc = ipcx_region_open(&mq->region, name, IPCX_KIND_MQ);
	if (!rc)
		rc = validate(mq);
	/* The log before the lock: repairing after a holder died needs it. */
	if (!rc && mq->h->persistent)
		rc = ipcx__mq_log_attach(mq);
	/* Validate the lock too: a lock word we cannot take is corruption. */
	if (!rc && !(rc = ipcx__mq_lock(mq)))
		ipcx__mq_unlock(mq);
	if (!rc) {
		ipcx_wait w = mq->h->wait;
		mq->wait = ipcx__wait_resolve(wait, &w);
		/* Attached first, so that what reclaiming does (records it
		 * reserves, pushes it makes) is ours should we die meanwhile. */
		rc = register_self(mq);
		if (rc == -EUSERS && mq_reclaim(mq) > 0)
			rc = register_self(mq);
		if (!rc)
			(void)mq_reclaim(mq);
	}
	if (rc) {
		mq_free(mq);
		return rc;
	}
	*out = mq;
	return 0;
}

IPCX_API int ipcx_mq_close(ipcx_mq *mq)
{
	if (!mq)
		return 0;
	ipcx__mq_notify_stop(mq);
	int rc = 0;
	if (mq->log_fd >= 0 && mq->h->sync != IPCX_MQ_SYNC_NONE)
		rc = ipcx_mq_sync(mq);
	if (mq->idx != MQ_NONE && !ipcx__mq_lock(mq)) {
		/* Give back what this handle still holds. */
		struct mq_dels dels = { 0 };
		uint64_t me[2] = { 0, 0 };
		me[mq->idx >> 6] = 1ull << (mq->idx & 63);
		(void)give_back(mq, me, &dels);
		ipcx__mq_unlock(mq);
		/* The removals while our entry still counts them in flight. */
		write_dels(mq, &dels);
		if (!ipcx__mq_lock(mq)) {
			ipcx__mq_detach_entry(mq, mq->idx);
			ipcx__mq_unlock(mq);
		}
		ipcx__wake(&mq->h->ne.seq, &mq->h->ne.sleepers);
		ipcx__wake(&mq->h->nf.seq, &mq->h->nf.sleepers);
	}
	mq_free(mq);
	return rc;
}

IPCX_API int ipcx_mq_unlink(const char *name)
{
	ipcx_region_info info;
	int rc = ipcx_region_peek(name, &info);
	if (rc == 0 && info.kind != IPCX_KIND_MQ)
		return -EMEDIUMTYPE;
	if (rc && rc != -EAGAIN && rc != -EBADMSG && rc != -EPROTO && rc != -EPROTONOSUPPORT)
		return rc;
	return ipcx_region_unlink(name);
}

IPCX_API int ipcx_mq_getattr(ipcx_mq *mq, ipcx_mq_attr *a)
{
	if (!mq || !a)
		return -EINVAL;
	(void)mq_reclaim(mq); /* so that "alive" means alive */
	memset(a, 0, sizeof *a);
	struct mq_hdr *h = mq->h;
	a->max_msg = mq->max_msg;
	a->depth_max = mq->depth;
	a->bytes_max = h->bytes_max;
	a->full = h->full;
	a->fair = h->fair;
	a->sync = h->sync;
	a->persistent = h->persistent;
	/* The slot words say where every message is (a snapshot: concurrent
	 * sends and receives may move some meanwhile). */
	for (uint32_t i = 0; i < mq->depth; i++) {
		/* acquire: the slot's length is the owner's */
		uint64_t w = atomic_load_explicit(mq_wordp(mq, i), memory_order_acquire);
		switch (mq_w_state(w)) {
		case S_LEVEL:
		case S_REDO:
			a->depth++;
			a->per_prio[mq_w_level(w)]++;
			a->bytes += mq_slot(mq, i)->len;
			break;
		case S_LOANED:
		case S_COMMITTING:
			a->loaned++;
			break;
		case S_TAKEN:
		case S_RELEASING:
			a->taken++;
			break;
		default:
			break;
		}
	}
	int rc = ipcx__mq_lock(mq);
	if (rc)
		return rc;
	a->sent = h->st.sent_gone;
	a->received = h->st.received_gone;
	for (uint32_t i = 0; i < IPCX_MQ_ATTACH_MAX; i++) {
		const struct mq_attach *e = &h->att[i];
		/* relaxed (both): counts */
		a->sent += atomic_load_explicit(&e->sent, memory_order_relaxed);
		a->received += atomic_load_explicit(&e->received, memory_order_relaxed);
		if (!e->pid || e->dead)
			continue;
		a->attached++;
		a->senders += !!(e->roles & ROLE_SEND);
		a->receivers += !!(e->roles & ROLE_RECV);
	}
	ipcx__mq_unlock(mq);
	/* relaxed (all): counts */
	a->dropped = atomic_load_explicit(&h->stats.dropped, memory_order_relaxed);
	a->redelivered = atomic_load_explicit(&h->stats.redelivered, memory_order_relaxed);
	a->cancelled = atomic_load_explicit(&h->stats.cancelled, memory_order_relaxed);
	a->shaped = atomic_load_explicit(&h->stats.shaped, memory_order_relaxed);
	a->fair_waits = atomic_load_explicit(&h->stats.fair_waits, memory_order_relaxed);
	a->recovered = atomic_load_explicit(&h->stats.recovered, memory_order_relaxed);
	a->log_skipped_bytes = atomic_load_explicit(&h->stats.log_skipped, memory_order_relaxed);
	a->log_compactions = (uint32_t)atomic_load_explicit(&h->stats.compactions,
							    memory_order_relaxed);
	if (h->persistent) {
		uint64_t t = atomic_load_explicit(&h->log.tail, memory_order_relaxed);
		a->log_bytes = t & ~MQ_LOG_BUSY;
		memcpy(a->log_path, h->log_path, sizeof a->log_path);
	}
	a->log_path[sizeof a->log_path - 1] = 0;
	a->log_failed = atomic_load_explicit(&h->log.failed, memory_order_relaxed);
	return 0;
}

int ipcx__mq_put_recovered(ipcx_mq *mq, const void *data, uint32_t len, uint32_t prio,
			   uint64_t seq, uint64_t log_off)
{
	struct mq_hdr *h = mq->h;
	uint64_t held = mq->bytes_limited ? atomic_load_explicit(&h->bytes_held,
								 memory_order_relaxed)
					  : 0; /* not yet published: relaxed */
	if (len > mq->max_msg || held + len > h->bytes_max)
		return -EOVERFLOW; /* the log holds more than this mailbox's limits */
	uint32_t i;
	uint64_t w;
	/* Not yet published: nobody else uses the rings (the busy flag is
	 * for form). */
	ipcx__mq_busy(mq);
	int r = ipcx__mq_pop(mq, MQ_RING_FREE, S_LOANED, UINT64_MAX, &i, &w);
	ipcx__mq_idle(mq);
	if (r != 1)
		return -EOVERFLOW;
	struct mq_slot *s = mq_slot(mq, i);
	memcpy(mq_buf(mq, i), data, len);
	s->len = len;
	s->prio = prio;
	s->seq = seq;
	s->flags = 0;
	s->sender = MQ_NONE;
	s->log_off = log_off;
	if (mq->bytes_limited)
		atomic_store_explicit(&h->bytes_held, held + len, memory_order_relaxed);
	ipcx__mq_busy(mq);
	r = ipcx__mq_push(mq, MQ_RING_LEVEL(prio), i);
	ipcx__mq_idle(mq);
	if (r)
		return -EBADMSG;
	ipcx__mq_mark(mq, prio);
	atomic_fetch_add_explicit(&h->stats.recovered, 1, memory_order_relaxed); /* a count */
	return 0;
}

IPCX_API int ipcx_mq_sync(ipcx_mq *mq)
{
	if (!mq)
		return -EINVAL;
	return ipcx__mq_log_sync(mq);
}
