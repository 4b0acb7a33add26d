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

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* ---- process identity ---------------------------------------------------- */

static int owner_alive(int32_t pid, uint64_t start)
{
	return pid > 0 && ipcx__proc_start(pid) == start;
}

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
		/* The holder died inside a critical section: rebuild the lists
		 * from the slot states, which are each operation's commit point. */
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

/* ---- lists (lock held) ------------------------------------------------- */

void ipcx__mq_publish_avail(ipcx_mq *mq)
{
	/* release: pairs with the acquire load of readiness checks, which then
	 * take the lock anyway; only the count itself is published here. */
	atomic_store_explicit(&mq->h->ne.avail, mq->h->st.count, memory_order_release);
}

static int cmp_seq(const void *a, const void *b, void *arg)
{
	const struct mq_slot *s = arg;
	uint64_t x = s[*(const uint32_t *)a].seq, y = s[*(const uint32_t *)b].seq;
	return x < y ? -1 : x > y;
}

/* Rebuild every list and count from the slot states. */
static void mq_repair(ipcx_mq *mq)
{
	struct mq_state *st = &mq->h->st;
	struct mq_slot *s = mq->slots;
	uint32_t n = mq->depth;
	uint32_t *order = malloc((size_t)n * sizeof *order);
	uint32_t nq = 0, nfree = 0;
	st->free_head = MQ_NONE;
	st->count = st->nloaned = st->ntaken = 0;
	st->bytes = st->bytes_held = 0;
	st->nonempty = 0;
	for (uint32_t p = 0; p < IPCX_MQ_PRIO_LEVELS; p++)
		st->lv[p].head = st->lv[p].tail = MQ_NONE, st->lv[p].cnt = 0;
	for (uint32_t i = 0; i < IPCX_MQ_ATTACH_MAX; i++)
		mq->h->att[i].queued = 0;
	for (uint32_t i = n; i-- > 0;) {
		uint32_t state = s[i].state;
		if (s[i].len > mq->max_msg || s[i].prio >= IPCX_MQ_PRIO_LEVELS)
			state = S_FREE; /* unreadable: drop it */
		if (state == S_QUEUED && !order)
			state = S_FREE; /* no memory to sort: lose the message, keep the mailbox */
		switch (state) {
		case S_LOANED:
		case S_COMMITTING:
			st->nloaned++;
			st->bytes_held += s[i].len;
			break;
		case S_TAKEN:
		case S_RELEASING:
			st->ntaken++;
			st->bytes_held += s[i].len;
			break;
		case S_QUEUED:
			order[nq++] = i;
			break;
		default:
			s[i].state = S_FREE;
			s[i].next = st->free_head;
			st->free_head = i;
			nfree++;
		}
	}
	if (nq)
		qsort_r(order, nq, sizeof *order, cmp_seq, s);
	for (uint32_t k = 0; k < nq; k++) {
		uint32_t i = order[k], p = s[i].prio;
		s[i].next = MQ_NONE;
		if (st->lv[p].tail == MQ_NONE)
			st->lv[p].head = i;
		else
			s[st->lv[p].tail].next = i;
		st->lv[p].tail = i;
		st->lv[p].cnt++;
		st->count++;
		st->bytes += s[i].len;
		st->bytes_held += s[i].len;
		st->nonempty |= 1ull << p;
		if (s[i].sender < IPCX_MQ_ATTACH_MAX)
			mq->h->att[s[i].sender].queued++;
	}
	free(order);
	atomic_store_explicit(&mq->h->ne.space, nfree, memory_order_relaxed);
	st->nsenders = 0;
	for (uint32_t i = 0; i < IPCX_MQ_ATTACH_MAX; i++)
		if (mq->h->att[i].pid && !mq->h->att[i].dead && (mq->h->att[i].roles & ROLE_SEND))
			st->nsenders++;
	st->repairs++;
	ipcx__mq_publish_avail(mq);
}

/* ---- reclaiming what dead processes held --------------------------------- */

struct cand {
	uint32_t idx, gen;
	int32_t pid;
	uint64_t start;
};

#define RECLAIM_BATCH 256

static void requeue_head(ipcx_mq *mq, uint32_t i);

/* Removal records owed to the log for messages given back (lock held while
 * collecting; written after unlocking). */
#define MQ_DELS_MAX 64
struct mq_dels {
	unsigned n;
	uint64_t seq[MQ_DELS_MAX], off[MQ_DELS_MAX];
};

/* Give back slot i of a dead or closing owner (lock held):
 *  taken      -> redelivered at the head of its level
 *  loaned     -> cancelled
 *  committing -> cancelled; its record may be in the log: owe a removal
 *  releasing  -> the release completes; owe the removal it was writing */
static void give_back(ipcx_mq *mq, uint32_t i, struct mq_dels *d)
{
	struct mq_state *st = &mq->h->st;
	struct mq_slot *s = &mq->slots[i];
	uint32_t state = s->state;
	if (state == S_TAKEN) {
		requeue_head(mq, i);
		st->redelivered++;
		return;
	}
	if (state != S_LOANED && state != S_COMMITTING && state != S_RELEASING)
		return;
	if (state == S_RELEASING) {
		st->ntaken--;
		st->received++;
	} else {
		st->nloaned--;
		st->cancelled++;
	}
	st->bytes_held -= s->len;
	if (state != S_LOANED && mq->h->persistent && d->n < MQ_DELS_MAX) {
		d->seq[d->n] = s->seq;
		d->off[d->n++] = ipcx__mq_log_reserve(mq, MQ_REC_HDR);
	}
	ipcx__mq_free_slot(mq, i);
}

static void write_dels(ipcx_mq *mq, const struct mq_dels *d)
{
	for (unsigned k = 0; k < d->n; k++)
		(void)ipcx__mq_log_del_done(mq, d->seq[k], d->off[k]);
}

/*
 * Find slots and attach entries owned by processes that no longer exist and
 * give them back: loans are cancelled, taken messages redelivered.  The
 * liveness checks (a /proc read each) run outside the lock on a snapshot;
 * the generation counter tells whether a slot changed meanwhile.
 * Returns the number of things reclaimed.
 */
static int mq_reclaim(ipcx_mq *mq)
{
	struct cand c[RECLAIM_BATCH];
	struct cand a[IPCX_MQ_ATTACH_MAX];
	unsigned nc = 0, na = 0;
	int done = 0;
	if (ipcx__mq_lock(mq))
		return 0;
	for (uint32_t i = 0; i < mq->depth && nc < RECLAIM_BATCH; i++) {
		struct mq_slot *s = &mq->slots[i];
		if (s->state != S_FREE && s->state != S_QUEUED && s->owner_pid != mq->pid)
			c[nc++] = (struct cand){ i, s->gen, s->owner_pid, s->owner_start };
	}
	for (uint32_t i = 0; i < IPCX_MQ_ATTACH_MAX; i++) {
		struct mq_attach *e = &mq->h->att[i];
		if (e->pid && !e->dead && e->pid != mq->pid)
			a[na++] = (struct cand){ i, 0, e->pid, e->start };
	}
	ipcx__mq_unlock(mq);

	unsigned dc = 0, da = 0;
	for (unsigned k = 0; k < nc; k++)
		if (!owner_alive(c[k].pid, c[k].start))
			c[dc++] = c[k];
	for (unsigned k = 0; k < na; k++)
		if (!owner_alive(a[k].pid, a[k].start))
			a[da++] = a[k];
	if (!dc && !da)
		return 0;

	struct mq_dels dels = { 0 };
	if (ipcx__mq_lock(mq))
		return 0;
	for (unsigned k = 0; k < dc; k++) {
		uint32_t i = c[k].idx;
		struct mq_slot *s = &mq->slots[i];
		if (s->gen != c[k].gen || s->owner_pid != c[k].pid)
			continue;
		give_back(mq, i, &dels);
		done++;
	}
	for (unsigned k = 0; k < da; k++) {
		struct mq_attach *e = &mq->h->att[a[k].idx];
		if (e->pid == a[k].pid && e->start == a[k].start && !e->dead) {
			ipcx__mq_detach_entry(mq, a[k].idx);
			done++;
		}
	}
	ipcx__mq_publish_avail(mq);
	ipcx__mq_unlock(mq);
	write_dels(mq, &dels);
	ipcx__wake(&mq->h->ne.seq, &mq->h->ne.sleepers);
	ipcx__wake(&mq->h->nf.seq, &mq->h->nf.sleepers);
	return done;
}

/* The liveness hook of every wait on a mailbox: reclaim from the dead. */
int ipcx__mq_check(void *arg)
{
	(void)mq_reclaim(arg);
	return 0;
}

/* The free-slot count lives only in its atomic mirror; it changes under the
 * lock, so a relaxed load and store suffice (readers use it as a hint). */
static void space_add(ipcx_mq *mq, int d)
{
	_Atomic uint32_t *sp = &mq->h->ne.space;
	atomic_store_explicit(sp, atomic_load_explicit(sp, memory_order_relaxed) + (uint32_t)d,
			      memory_order_relaxed);
}

void ipcx__mq_free_slot(ipcx_mq *mq, uint32_t i)
{
	struct mq_slot *s = &mq->slots[i];
	s->state = S_FREE;
	s->gen++;
	s->owner_pid = 0;
	s->next = mq->h->st.free_head;
	mq->h->st.free_head = i;
	space_add(mq, 1);
}

uint32_t ipcx__mq_alloc_slot(ipcx_mq *mq)
{
	uint32_t i = mq->h->st.free_head;
	if (i == MQ_NONE)
		return MQ_NONE;
	if (i >= mq->depth || mq->slots[i].state != S_FREE)
		return MQ_BAD;
	mq->h->st.free_head = mq->slots[i].next;
	mq->slots[i].next = MQ_NONE;
	space_add(mq, -1);
	return i;
}

static void requeue_head(ipcx_mq *mq, uint32_t i)
{
	struct mq_state *st = &mq->h->st;
	struct mq_slot *s = &mq->slots[i];
	uint32_t p = s->prio;
	st->ntaken--;
	if (p >= IPCX_MQ_PRIO_LEVELS || s->len > mq->max_msg) {
		/* damaged: the message cannot be trusted; drop it */
		st->dropped++;
		ipcx__mq_free_slot(mq, i);
		return;
	}
	s->flags |= IPCX_MQ_REDELIVERED;
	s->next = st->lv[p].head;
	st->lv[p].head = i;
	if (st->lv[p].tail == MQ_NONE)
		st->lv[p].tail = i;
	st->lv[p].cnt++;
	st->count++;
	st->bytes += s->len;
	st->nonempty |= 1ull << p;
	s->sender = MQ_NONE; /* its sender's share was already given back */
	s->owner_pid = 0;
	s->gen++;
	s->state = S_QUEUED;
}

void ipcx__mq_detach_entry(ipcx_mq *mq, uint32_t idx)
{
	struct mq_attach *e = &mq->h->att[idx];
	if (e->roles & ROLE_SEND)
		mq->h->st.nsenders--;
	if (e->queued) {
		e->dead = 1; /* keep the slot until its messages are gone */
	} else {
		memset(e, 0, sizeof *e);
	}
}

/* ---- create / open ------------------------------------------------------ */

static uint32_t stride_of(uint32_t max_msg)
{
	return (uint32_t)(max_msg >= 4096 ? round_up(max_msg, 4096)
					  : round_up(max_msg ? max_msg : 1, 64));
}

static uint64_t slots_off(void)
{
	return round_up(sizeof(struct mq_hdr), IPCX_CACHELINE);
}

static uint64_t data_off(uint32_t depth)
{
	return round_up(slots_off() + (uint64_t)depth * sizeof(struct mq_slot), 4096);
}

static int register_self(ipcx_mq *mq)
{
	int rc = ipcx__mq_lock(mq);
	if (rc)
		return rc;
	for (uint32_t i = 0; i < IPCX_MQ_ATTACH_MAX; i++) {
		struct mq_attach *e = &mq->h->att[i];
		if (!e->pid) {
			e->pid = mq->pid;
			e->start = mq->start;
			e->roles = 0;
			e->queued = 0;
			e->dead = 0;
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

static void bind_region(ipcx_mq *mq)
{
	char *d = ipcx_region_data(mq->region);
	mq->h = (struct mq_hdr *)d;
	mq->slots = (struct mq_slot *)(d + slots_off());
	mq->bufs = (unsigned char *)d + mq->h->data_off;
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
	uint64_t size = data_off(o.depth) + (uint64_t)o.depth * stride;
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
	h->hdr_bytes = (uint32_t)slots_off();
	h->max_msg = o.max_msg;
	h->depth = o.depth;
	h->bytes_max = o.max_bytes;
	h->stride = stride;
	h->full = o.full;
	h->fair = o.fair;
	h->sync = o.sync;
	h->batch_msgs = o.batch_msgs;
	h->batch_ms = o.batch_ms;
	h->data_off = data_off(o.depth);
	h->shape = o.shape;
	h->shape_sender = o.shape_sender;
	h->wait = o.wait;
	h->mode = o.mode ? o.mode : 0600;
	bind_region(mq);
	mq->depth = o.depth;
	mq->max_msg = o.max_msg;
	mq->stride = stride;
	mq->wait = o.wait;
	if ((rc = lock_init(&h->lock)))
		goto fail;
	h->st.seq_next = 1;
	h->st.free_head = MQ_NONE;
	for (uint32_t p = 0; p < IPCX_MQ_PRIO_LEVELS; p++)
		h->st.lv[p].head = h->st.lv[p].tail = MQ_NONE;
	for (uint32_t i = o.depth; i-- > 0;) {
		mq->slots[i].sender = MQ_NONE;
		mq->slots[i].next = h->st.free_head;
		h->st.free_head = i;
	}
	atomic_store_explicit(&h->ne.space, o.depth, memory_order_relaxed);
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
	uint32_t stride = h->stride, full = h->full;
	uint64_t doff = h->data_off, bmax = h->bytes_max;
	if (magic != MQ_MAGIC)
		return -EPROTO;
	if (abi != MQ_ABI)
		return -EPROTONOSUPPORT;
	if (hb != slots_off() || max_msg > IPCX_MQ_MSG_MAX || depth == 0 ||
	    depth > IPCX_MQ_DEPTH_MAX || stride != stride_of(max_msg) || doff != data_off(depth) ||
	    full > IPCX_MQ_FULL_DROP || doff + (uint64_t)depth * stride > size ||
	    bmax > (uint64_t)depth * max_msg)
		return -EBADMSG;
	if (h->persistent && !memchr(h->log_path, 0, sizeof h->log_path))
		return -EBADMSG;
	mq->depth = depth;
	mq->max_msg = max_msg;
	mq->stride = stride;
	bind_region(mq);
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
	/* Validate the lock too: a lock word we cannot take is corruption. */
	if (!rc && !(rc = ipcx__mq_lock(mq)))
		ipcx__mq_unlock(mq);
	if (!rc && mq->h->persistent)
		rc = ipcx__mq_log_attach(mq);
	if (!rc) {
		ipcx_wait w = mq->h->wait;
		mq->wait = ipcx__wait_resolve(wait, &w);
		(void)mq_reclaim(mq);
		rc = register_self(mq);
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
		for (uint32_t i = 0; i < mq->depth; i++) {
			struct mq_slot *s = &mq->slots[i];
			if (s->owner == mq->idx && s->owner_pid == mq->pid && s->state != S_FREE &&
			    s->state != S_QUEUED)
				give_back(mq, i, &dels);
		}
		ipcx__mq_detach_entry(mq, mq->idx);
		ipcx__mq_publish_avail(mq);
		ipcx__mq_unlock(mq);
		write_dels(mq, &dels);
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
	int rc = ipcx__mq_lock(mq);
	if (rc)
		return rc;
	const struct mq_state *st = &h->st;
	a->max_msg = mq->max_msg;
	a->depth_max = mq->depth;
	a->bytes_max = h->bytes_max;
	a->full = h->full;
	a->fair = h->fair;
	a->sync = h->sync;
	a->persistent = h->persistent;
	a->depth = st->count;
	a->loaned = st->nloaned;
	a->taken = st->ntaken;
	a->bytes = st->bytes;
	for (uint32_t p = 0; p < IPCX_MQ_PRIO_LEVELS; p++)
		a->per_prio[p] = st->lv[p].cnt;
	a->sent = st->sent;
	a->received = st->received;
	a->dropped = st->dropped;
	a->redelivered = st->redelivered;
	a->cancelled = st->cancelled;
	a->shaped = st->shaped;
	a->fair_waits = st->fair_waits;
	a->log_bytes = h->persistent ? st->log_tail : 0;
	a->recovered = st->recovered;
	a->log_skipped_bytes = st->log_skipped;
	for (uint32_t i = 0; i < IPCX_MQ_ATTACH_MAX; i++) {
		const struct mq_attach *e = &h->att[i];
		if (!e->pid || e->dead)
			continue;
		a->attached++;
		a->senders += !!(e->roles & ROLE_SEND);
		a->receivers += !!(e->roles & ROLE_RECV);
	}
	if (h->persistent)
		memcpy(a->log_path, h->log_path, sizeof a->log_path);
	a->log_path[sizeof a->log_path - 1] = 0;
	ipcx__mq_unlock(mq);
	a->log_failed = atomic_load_explicit(&h->log.failed, memory_order_relaxed);
	return 0;
}

int ipcx__mq_put_recovered(ipcx_mq *mq, const void *data, uint32_t len, uint32_t prio,
			   uint64_t seq)
{
	struct mq_state *st = &mq->h->st;
	if (len > mq->max_msg || st->bytes_held + len > mq->h->bytes_max)
		return -EOVERFLOW; /* the log holds more than this mailbox's limits */
	uint32_t i = ipcx__mq_alloc_slot(mq);
	if (i >= mq->depth)
		return -EOVERFLOW;
	struct mq_slot *s = &mq->slots[i];
	memcpy(mq->bufs + (size_t)i * mq->stride, data, len);
	s->len = len;
	s->prio = prio;
	s->seq = seq;
	s->flags = 0;
	s->sender = MQ_NONE;
	s->next = MQ_NONE;
	if (st->lv[prio].tail == MQ_NONE)
		st->lv[prio].head = i;
	else
		mq->slots[st->lv[prio].tail].next = i;
	st->lv[prio].tail = i;
	st->lv[prio].cnt++;
	st->count++;
	st->bytes += len;
	st->bytes_held += len;
	st->nonempty |= 1ull << prio;
	st->recovered++;
	s->state = S_QUEUED;
	ipcx__mq_publish_avail(mq);
	return 0;
}

IPCX_API int ipcx_mq_sync(ipcx_mq *mq)
{
	if (!mq)
		return -EINVAL;
	return ipcx__mq_log_sync(mq);
}
