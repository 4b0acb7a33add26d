/*
 * The log of a persistent mailbox.
 *
 * File layout (little-endian):
 *   a 64-byte header: magic "IPCXMQLG", version (2; 1 is read too), header
 *   size, seq_base (no recovered mailbox numbers a message below it),
 *   created, epoch, CRC32C of the header;
 *   then records, each 8-byte aligned:
 *     u32 type ("MPUT" a message, "MDEL" removals)  u32 len
 *     u64 seq   u32 arg   u32 epoch   u32 crc   u32 reserved (0)
 *     len bytes of payload (PUT only), zero padding to 8 bytes
 *   arg is a PUT's priority; a DEL removes seq .. seq + arg (arg below
 *   MQ_DEL_RANGE_MAX: a batch receive logs one record for a run of
 *   consecutive numbers).  crc is CRC32C over the whole record, padding
 *   included, with crc itself as zero.  Only records of the header's epoch
 *   count (see compaction below).
 *   Version 1 had no epochs (0 everywhere), arg 0 in every DEL, the CRC over
 *   the first 24 header bytes and the payload, and counted records numbered
 *   from seq_base on; such a log is rewritten as version 2 when opened.
 *
 * Writers reserve a record's offset with a CAS on the log's tail (the lock
 * only to grow the file), then store it into the mapped file.  A writer
 * that dies or fails half-way leaves a hole (zeros or a torn record) that
 * later records follow: recovery therefore resynchronises, stepping 8 bytes
 * at a time past anything that does not check out, and cuts the file after
 * the last valid record.  A message is live when its PUT is present and no
 * DEL names its sequence number.
 */
#include <fcntl.h>
#include <libgen.h>
#include <sched.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "mq_internal.h"
#include "mq_sys.h"

#define LOG_MAGIC 0x474c514d58435049ull /* "IPCXMQLG" */
#define LOG_VERSION 2u /* reads 1 too: its records are version 2's with arg 0 */

struct log_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_bytes;
	uint64_t seq_base;
	uint64_t created_ns;
	uint32_t epoch; /* version 2: the records' epoch (version 1: 0) */
	uint8_t reserved[24];
	uint32_t crc; /* over the 60 bytes before it */
};
_Static_assert(sizeof(struct log_hdr) == MQ_LOG_HDR, "log header is a file format");

_Static_assert(sizeof(struct mq_rec) == MQ_REC_HDR, "record header is a file format");
_Static_assert(offsetof(struct mq_rec, crc) == MQ_REC_CRC, "crc is where rec_crc skips it");


/* The CRC of the rs-byte record at p, its crc field taken as zero. */
static uint32_t rec_crc(const unsigned char *p, uint64_t rs)
{
	static const unsigned char zero[4];
	uint32_t c = ipcx__crc32c(0, p, MQ_REC_CRC);
	c = ipcx__crc32c(c, zero, 4);
	return ipcx__crc32c(c, p + MQ_REC_CRC + 4, rs - MQ_REC_CRC - 4);
}

/* Version 1's. */
static uint32_t rec_crc_v1(const struct mq_rec *r, const void *payload, uint32_t len)
{
	return ipcx__crc32c(ipcx__crc32c(0, r, 24), payload, len);
}

/* Write everything or fail (a short write is retried; 0 bytes is -EIO). */
static int write_all(int fd, struct iovec *iov, int n, uint64_t off)
{
	while (n > 0) {
		ssize_t w = ipcx__mq_sys.pwritev(fd, iov, n, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		off += (uint64_t)w;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++, n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int write_hdr(int fd, uint64_t seq_base, uint32_t epoch)
{
	struct log_hdr hd;
	memset(&hd, 0, sizeof hd);
	hd.magic = LOG_MAGIC;
	hd.version = LOG_VERSION;
	hd.hdr_bytes = MQ_LOG_HDR;
	hd.seq_base = seq_base;
	hd.epoch = epoch;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	hd.created_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	hd.crc = ipcx__crc32c(0, &hd, offsetof(struct log_hdr, crc));
	struct iovec iov = { &hd, sizeof hd };
	return write_all(fd, &iov, 1, 0);
}

static int read_hdr(int fd, struct log_hdr *hd);

static int sync_fd(ipcx_mq *mq)
{
	if (ipcx__mq_sys.fdatasync(mq->log_fd) == 0) {
		atomic_store_explicit(&mq->h->log.unsynced, 0, memory_order_relaxed);
		atomic_store_explicit(&mq->h->log.last_sync_ns, ipcx__now_ns(),
				      memory_order_relaxed);
		return 0;
	}
	/* After a failed fdatasync the page cache may have dropped the data
	 * and a later fdatasync may succeed anyway: never trust the log again
	 * (relaxed: a flag, ordered by the error return that follows). */
	atomic_store_explicit(&mq->h->log.failed, 1, memory_order_relaxed);
	return errno == ENOSPC ? -ENOSPC : -EIO;
}

int ipcx__mq_log_sync(ipcx_mq *mq)
{
	return mq->log_fd < 0 ? 0 : sync_fd(mq);
}

int ipcx__mq_log_after_write(ipcx_mq *mq)
{
	return ipcx__mq_log_after_writes(mq, 1);
}

int ipcx__mq_log_after_writes(ipcx_mq *mq, uint32_t records)
{
	struct mq_hdr *h = mq->h;
	switch (h->sync) {
	case IPCX_MQ_SYNC_ALWAYS:
		return sync_fd(mq);
	case IPCX_MQ_SYNC_BATCH: {
		uint32_t n = atomic_fetch_add_explicit(&h->log.unsynced, records,
						       memory_order_relaxed) + records;
		uint64_t last = atomic_load_explicit(&h->log.last_sync_ns, memory_order_relaxed);
		if (n >= h->batch_msgs || ipcx__now_ns() - last >= (uint64_t)h->batch_ms * 1000000u)
			return sync_fd(mq);
		return 0;
	}
	default:
		return 0;
	}
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
/* The log's pages are made writable in our mapping ahead of the records, a
 * window at a time: one madvise instead of a write fault per page (each of
 * which, on a shared file mapping, also runs the file system's mkwrite).
 * Below the highest window so far they stay so (compaction brings the
 * records back there): a page the kernel has since written back or evicted
 * takes one fault, as it would anyway. */
#define MQ_LOG_AHEAD (1ull << 20)

static void populate(ipcx_mq *mq, uint64_t off, uint64_t size)
{
	/* relaxed (both): a per-handle hint; a race only populates twice */
	uint64_t hi = atomic_load_explicit(&mq->log_ready_hi, memory_order_relaxed);
	if (off < hi)
		return;
	uint64_t from = off - hi <= MQ_LOG_AHEAD ? hi & ~4095ull : off & ~4095ull;
	uint64_t to = (off & ~4095ull) + MQ_LOG_AHEAD;
	if (to > size)
		to = size & ~4095ull;
	if (to <= off)
		return;
	atomic_store_explicit(&mq->log_ready_hi, to, memory_order_relaxed);
	(void)madvise(mq->log_map + from, to - from, MADV_POPULATE_WRITE); /* best effort */
}

/* Room at [off, off + len) of the mapped file, checked against the file's
 * real size (never the shared state alone: writing past the end of a
 * mapped file raises SIGBUS). */
unsigned char *ipcx__mq_log_at(ipcx_mq *mq, uint64_t off, uint64_t len)
{
	uint64_t end;
	if (ipcx__add_overflow(off, len, &end) || end > MQ_LOG_WINDOW || off < MQ_LOG_HDR)
		return NULL;
	/* relaxed (both): a per-handle cache of the file size */
	uint64_t size = atomic_load_explicit(&mq->log_size, memory_order_relaxed);
	if (end > size) {
		struct stat sb;
		if (fstat(mq->log_fd, &sb) < 0 || (uint64_t)sb.st_size < end)
			return NULL;
		size = (uint64_t)sb.st_size;
		atomic_store_explicit(&mq->log_size, size, memory_order_relaxed);
	}
	populate(mq, off, size);
	return mq->log_map + off;
}

static void store_crc(unsigned char *p, uint32_t crc)
{
	memcpy(p + MQ_REC_CRC, &crc, sizeof crc);
}

/* Records are stored into the mapped file (mq_rec_write): page cache, like
 * pwrite, without a system call per message.  The CRC is computed over what
 * the file holds and written last; a run's, four records at a time. */
void ipcx__mq_rec_seal(unsigned char *const *rec, const uint32_t *rs, uint32_t n)
{
	uint32_t crc[MQ_RUN_MAX];
	for (uint32_t j = 0; j < n; j += MQ_RUN_MAX) {
		uint32_t k = n - j < MQ_RUN_MAX ? n - j : MQ_RUN_MAX;
		ipcx__crc32c_n((const void *const *)(rec + j), rs + j, crc, k);
		for (uint32_t i = 0; i < k; i++)
			store_crc(rec[j + i], crc[i]);
	}
}

static uint64_t rec_put(unsigned char *p, uint64_t seq, uint32_t prio, const void *data,
		       uint32_t len, uint32_t epoch)
{
	uint32_t rs = (uint32_t)mq_rec_write(p, seq, prio, data, len, epoch);
	ipcx__mq_rec_seal(&p, &rs, 1);
	return rs;
}

void ipcx__mq_rec_del(unsigned char *p, uint64_t seq, uint32_t n, uint32_t epoch)
{
	struct mq_rec r = { MQ_REC_DEL, 0, seq, n - 1, epoch, 0, 0 };
	memcpy(p, &r, sizeof r);
	store_crc(p, ipcx__crc32c(0, p, MQ_REC_HDR));
}

uint32_t ipcx__mq_log_epoch(ipcx_mq *mq)
{
	/* relaxed: after a reservation, ordered by its CAS (see compact) */
	return atomic_load_explicit(&mq->h->log.epoch, memory_order_relaxed);
}

int ipcx__mq_log_put(ipcx_mq *mq, uint32_t slot, uint64_t seq, uint64_t off)
{
	struct mq_slot *s = mq_slot(mq, slot);
	uint32_t len = s->len; /* checked by the caller (its own slot) */
	unsigned char *p = ipcx__mq_log_at(mq, off, mq_rec_size(len));
	if (!p)
		return -EBADMSG;
	s->log_off = off;
	rec_put(p, seq, s->prio, mq_buf(mq, slot), len, ipcx__mq_log_epoch(mq));
	return 0;
}

int ipcx__mq_log_del(ipcx_mq *mq, uint64_t seq, uint64_t off)
{
	if (off == MQ_LOG_NONE)
		return -ENOSPC;
	unsigned char *p = ipcx__mq_log_at(mq, off, MQ_REC_HDR);
	if (!p)
		return -EBADMSG;
	ipcx__mq_rec_del(p, seq, 1, ipcx__mq_log_epoch(mq));
	return 0;
}

/* Grow the file to at least `need` bytes, a chunk at a time (lock held). */
static int grow(ipcx_mq *mq, uint64_t need)
{
	_Atomic uint64_t *alloc = &mq->h->log.alloc;
	/* relaxed: written under the lock we hold */
	uint64_t have = atomic_load_explicit(alloc, memory_order_relaxed);
	if (need <= have)
		return 0;
	if (need > MQ_LOG_WINDOW)
		return -EFBIG;
	uint64_t chunk = ipcx__mq_log_chunk ? ipcx__mq_log_chunk : 4096;
	uint64_t to = (need + chunk - 1) / chunk * chunk;
	if (to > MQ_LOG_WINDOW)
		to = MQ_LOG_WINDOW;
	/* Allocate the blocks now: stores into a mapped file that has none
	 * would meet a full disk as SIGBUS. */
	int e = ipcx__mq_sys.fallocate(mq->log_fd, (off_t)have, (off_t)(to - have));
	if (e)
		return e == ENOSPC || e == EDQUOT ? -ENOSPC : e == EFBIG ? -EFBIG : -e;
	/* release: the blocks exist before anyone reserves a record in them
	 * (pairs with the acquire in reserve) */
	atomic_store_explicit(alloc, to, memory_order_release);
	return 0;
}

static _Atomic uint32_t *inflight(ipcx_mq *mq)
{
	static _Atomic uint32_t none; /* the creator, before it is attached */
	return mq->idx < IPCX_MQ_ATTACH_MAX ? &mq->h->att[mq->idx].inflight : &none;
}

/*
 * Reserve `bytes` at the log's tail with `room` more bytes allocated after
 * them.  Lock-free unless the file must grow (or is being compacted, which
 * holds the lock with MQ_LOG_BUSY set in the tail).  The record counts in
 * our entry's inflight from before the reservation until it is written, so
 * a compaction (which sets MQ_LOG_BUSY, then waits for every inflight to
 * drain) never happens under a record being written; while we wait for the
 * lock we are not counted.  locked: the caller holds the lock.
 */
static int reserve(ipcx_mq *mq, uint64_t bytes, uint64_t room, bool locked, uint64_t *off)
{
	struct mq_hdr *h = mq->h;
	/* seq_cst: before the tail CAS, in the order compaction reads them */
	atomic_fetch_add_explicit(inflight(mq), 1, memory_order_seq_cst);
	/* seq_cst: as the CAS below */
	uint64_t t = atomic_load_explicit(&h->log.tail, memory_order_seq_cst);
	for (unsigned n = 0;; n++) {
		uint64_t end;
		if (n > 1000000 || (!(t & MQ_LOG_BUSY) &&
				    (ipcx__add_overflow(t, bytes + room, &end) || end > MQ_LOG_WINDOW))) {
			atomic_fetch_sub_explicit(inflight(mq), 1, memory_order_relaxed); /* ours */
			return t & MQ_LOG_BUSY ? -EBADMSG : -EFBIG;
		}
		if (t & MQ_LOG_BUSY) {
			if (locked) /* we are the compactor's caller: cannot be */
				return atomic_fetch_sub_explicit(inflight(mq), 1,
								 memory_order_relaxed),
				       -EBADMSG;
			/* The compactor holds the lock: wait for it there (not
			 * counted in inflight meanwhile: it waits for inflight
			 * to drain, and so does a repair of a dead one). */
			atomic_fetch_sub_explicit(inflight(mq), 1, memory_order_relaxed);
			if (!ipcx__mq_lock(mq))
				ipcx__mq_unlock(mq);
			atomic_fetch_add_explicit(inflight(mq), 1, memory_order_seq_cst); /* as above */
			t = atomic_load_explicit(&h->log.tail, memory_order_seq_cst); /* as above */
			continue;
		}
		/* acquire: pairs with grow's release: the blocks exist */
		if (end > atomic_load_explicit(&h->log.alloc, memory_order_acquire)) {
			int rc;
			if (locked) {
				rc = grow(mq, end);
			} else { /* (not counted in inflight meanwhile, as above) */
				atomic_fetch_sub_explicit(inflight(mq), 1, memory_order_relaxed);
				rc = ipcx__mq_lock(mq);
				if (!rc) {
					rc = grow(mq, end);
					ipcx__mq_unlock(mq);
				}
				atomic_fetch_add_explicit(inflight(mq), 1, memory_order_seq_cst);
			}
			if (rc) {
				atomic_fetch_sub_explicit(inflight(mq), 1, memory_order_relaxed);
				return rc;
			}
			t = atomic_load_explicit(&h->log.tail, memory_order_seq_cst); /* as above */
			continue;
		}
		/* seq_cst: ordered after our inflight increment for compaction */
		if (atomic_compare_exchange_weak_explicit(&h->log.tail, &t, t + bytes,
							  memory_order_seq_cst,
							  memory_order_seq_cst)) {
			*off = t;
			return 0;
		}
	}
}

int ipcx__mq_log_reserve_put(ipcx_mq *mq, uint32_t len, uint64_t *off)
{
	/* This record, and one removal record for every message that could
	 * still need one (at most depth of them, this one included). */
	return reserve(mq, mq_rec_size(len), (uint64_t)mq->depth * MQ_REC_HDR, false, off);
}

int ipcx__mq_log_reserve_run(ipcx_mq *mq, uint64_t bytes, bool puts, uint64_t *off)
{
	return reserve(mq, bytes, puts ? (uint64_t)mq->depth * MQ_REC_HDR : 0, false, off);
}

static uint64_t reserve_del(ipcx_mq *mq, bool locked)
{
	uint64_t off;
	return reserve(mq, MQ_REC_HDR, 0, locked, &off) ? MQ_LOG_NONE : off;
}

uint64_t ipcx__mq_log_reserve(ipcx_mq *mq, uint64_t bytes)
{
	(void)bytes;
	return reserve_del(mq, false);
}

uint64_t ipcx__mq_log_reserve_locked(ipcx_mq *mq)
{
	return reserve_del(mq, true);
}

void ipcx__mq_log_written(ipcx_mq *mq)
{
	/* release: our record's stores before compaction may see us done */
	atomic_fetch_sub_explicit(inflight(mq), 1, memory_order_release);
}

int ipcx__mq_log_del_done(ipcx_mq *mq, uint64_t seq, uint64_t off)
{
	int rc = ipcx__mq_log_del(mq, seq, off);
	if (off != MQ_LOG_NONE)
		ipcx__mq_log_written(mq);
	return rc ? rc : ipcx__mq_log_after_write(mq);
}

/* ---- compaction -----------------------------------------------------------
 * The log is rewound once it has grown past a threshold, whether or not the
 * mailbox is empty: under the lock, with the tail marked MQ_LOG_BUSY (no
 * new reservation) and every record being written finished, the live
 * messages (whose payloads are in their slots) are written again as the
 * first records of a new epoch, then the header names that epoch; records
 * of any other epoch are dead to recovery.  The copies go to the start of
 * the file when no live record lies there, else after the tail (the next
 * compaction then finds the start free).  With sync batch or always the
 * copies are made durable before the header, and the header before any new
 * record.  A compactor that dies is finished by the next holder of the lock
 * (ipcx__mq_log_repair). */

/* Copies cost at most the live messages' records: with the threshold at
 * twice the most they can take, compaction writes at most half as much
 * again as the messages did, and usually far less.  At least 1 MiB, so
 * that a stream of small messages keeps its records in the caches. */
#define MQ_COMPACT_MIN (1ull << 20)

static uint64_t live_bound(const ipcx_mq *mq)
{
	uint64_t b = (uint64_t)mq->depth * mq_rec_size(mq->max_msg);
	if (mq->bytes_limited) {
		uint64_t c = mq->h->bytes_max + (uint64_t)mq->depth * (MQ_REC_HDR + 8);
		if (c < b)
			b = c;
	}
	return b;
}

static uint64_t compact_bytes(const ipcx_mq *mq)
{
	if (ipcx__mq_compact_bytes)
		return ipcx__mq_compact_bytes;
	uint64_t b = 2 * live_bound(mq);
	return b < MQ_COMPACT_MIN ? MQ_COMPACT_MIN : b > MQ_LOG_WINDOW / 4 ? MQ_LOG_WINDOW / 4 : b;
}

/* Wait (lock held, tail busy) until no record is being written: they take
 * no lock to finish.  A writer that died holding one is cleared by the
 * reclaimer, which needs the lock: give up after a while. */
static bool drained(ipcx_mq *mq)
{
	uint64_t deadline = 0;
	for (unsigned n = 0;; n++) {
		uint32_t i = 0;
		/* seq_cst: after our MQ_LOG_BUSY CAS (see reserve) */
		while (i < IPCX_MQ_ATTACH_MAX &&
		       !atomic_load_explicit(&mq->h->att[i].inflight, memory_order_seq_cst))
			i++;
		if (i == IPCX_MQ_ATTACH_MAX)
			return true;
		if (n < 64) {
			ipcx__cpu_relax();
			continue;
		}
		uint64_t now = ipcx__now_ns();
		if (!deadline)
			deadline = now + 5000000u;
		else if (now > deadline)
			return false;
		sched_yield();
	}
}

static bool live_state(uint32_t st)
{
	return st == S_COMMITTING || st == S_LEVEL || st == S_TAKEN || st == S_RELEASING ||
	       st == S_REDO;
}

/* Write the live messages as epoch `epoch` (lock held, tail t busy and
 * drained) and switch the header to it.  0 and the new tail, or -errno
 * (nothing switched). */
static int compact(ipcx_mq *mq, uint64_t t, uint64_t floor, uint32_t epoch, uint64_t *to)
{
	struct mq_hdr *h = mq->h;
	uint32_t depth = mq->depth, n = 0;
	uint64_t bytes = 0, lowest = UINT64_MAX;
	uint32_t *live = malloc((size_t)depth * (sizeof(uint32_t) * 2 + sizeof(void *)));
	if (!live)
		return -ENOMEM;
	uint32_t *lens = live + depth;
	unsigned char **recs = (unsigned char **)(void *)(lens + depth);
	/* The set of live messages cannot grow (a new one needs a
	 * reservation) nor shrink (a removal is logged first): their slots
	 * are stable, although receivers may take them meanwhile. */
	for (uint32_t i = 0; i < depth; i++) {
		/* acquire: live states only move among themselves now; the fields
		 * of a loan its owner set before it became COMMITTING */
		uint64_t w = atomic_load_explicit(mq_wordp(mq, i), memory_order_acquire);
		const struct mq_slot *s = mq_slot(mq, i);
		uint32_t len = s->len, st = mq_w_state(w);
		/* A loan being committed or cancelled is COMMITTING before it
		 * reserves its record (log_off still 0 from the loan): it has no
		 * record to keep, and writes it after us if it goes on. */
		if (!live_state(st) || (st == S_COMMITTING && !s->log_off))
			continue;
		if (len > mq->max_msg || s->prio >= IPCX_MQ_PRIO_LEVELS)
			continue; /* (a damaged one is not kept) */
		live[n] = i;
		lens[n++] = len;
		bytes += mq_rec_size(len);
		if (s->log_off < lowest)
			lowest = s->log_off;
	}
	uint64_t dest = MQ_LOG_HDR + bytes <= lowest && MQ_LOG_HDR >= floor ? MQ_LOG_HDR
									   : (t > floor ? t : floor);
	/* Room for the copies and for the removal of every message after them
	 * (as every message record reserves). */
	int rc = grow(mq, dest + bytes + (uint64_t)depth * MQ_REC_HDR);
	unsigned char *p = NULL;
	if (!rc && bytes && !(p = ipcx__mq_log_at(mq, dest, bytes)))
		rc = -EBADMSG;
	for (uint32_t k = 0; !rc && k < n; k++) {
		const struct mq_slot *s = mq_slot(mq, live[k]);
		recs[k] = p;
		uint64_t rs = mq_rec_write(p, s->seq, s->prio, mq_buf(mq, live[k]), lens[k], epoch);
		lens[k] = (uint32_t)rs; /* (sealed by size) */
		p += rs;
	}
	if (!rc)
		ipcx__mq_rec_seal(recs, lens, n);
	if (!rc && bytes && h->sync != IPCX_MQ_SYNC_NONE)
		rc = sync_fd(mq);
	if (!rc)
		rc = write_hdr(mq->log_fd, atomic_load_explicit(&h->seq_next, memory_order_relaxed),
			       epoch);
	if (!rc && h->sync != IPCX_MQ_SYNC_NONE)
		rc = sync_fd(mq);
	if (!rc) {
		/* relaxed: read by writers after their reservation, which the
		 * release of the tail orders after this */
		atomic_store_explicit(&h->log.epoch, epoch, memory_order_relaxed);
		for (uint32_t k = 0; k < n; k++)
			mq_slot(mq, live[k])->log_off = (uint64_t)(recs[k] - mq->log_map);
		*to = dest + bytes;
		atomic_fetch_add_explicit(&h->stats.compactions, 1, memory_order_relaxed); /* a count */
	}
	free(live);
	return rc;
}

/* Take the lock and the tail for a compaction: the tail, or 0. */
static uint64_t begin(ipcx_mq *mq)
{
	struct mq_hdr *h = mq->h;
	uint64_t t = atomic_load_explicit(&h->log.tail, memory_order_seq_cst); /* as in reserve */
	if (t < compact_bytes(mq) || (t & MQ_LOG_BUSY) ||
	    !atomic_compare_exchange_strong_explicit(&h->log.tail, &t, t | MQ_LOG_BUSY,
						     memory_order_seq_cst, memory_order_relaxed))
		return 0;
	return t;
}

void ipcx__mq_log_maybe_compact(ipcx_mq *mq)
{
	struct mq_hdr *h = mq->h;
	/* relaxed (both): hints, decided below under the lock */
	uint64_t t = atomic_load_explicit(&h->log.tail, memory_order_relaxed);
	if (t < compact_bytes(mq) || (t & MQ_LOG_BUSY) ||
	    t < atomic_load_explicit(&h->log.retry_at, memory_order_relaxed))
		return;
	if (ipcx__mq_lock(mq))
		return;
	if (!(t = begin(mq))) {
		ipcx__mq_unlock(mq);
		return;
	}
	uint64_t to = t;
	/* The epoch is taken before anything is written, never to be used
	 * again: copies of a compaction that died are dead forever. */
	uint32_t epoch = atomic_fetch_add_explicit(&h->log.next_epoch, 1, memory_order_relaxed);
	bool ok = drained(mq) && !compact(mq, t, MQ_LOG_HDR, epoch, &to);
	/* relaxed: a hint (lock held) */
	atomic_store_explicit(&h->log.retry_at, ok ? 0 : t + compact_bytes(mq) / 4,
			      memory_order_relaxed);
	/* release: the header and epoch before reservations resume (pairs
	 * with the seq_cst CAS in reserve) */
	atomic_store_explicit(&h->log.tail, to, memory_order_release);
	ipcx__mq_unlock(mq);
}

void ipcx__mq_log_repair(ipcx_mq *mq)
{
	struct mq_hdr *h = mq->h;
	/* relaxed (all): under the lock, after its holder died */
	uint64_t t = atomic_load_explicit(&h->log.tail, memory_order_relaxed);
	if (!(t & MQ_LOG_BUSY))
		return;
	t &= ~MQ_LOG_BUSY;
	/* A compactor died.  Trust only the blocks the file has. */
	struct stat sb;
	uint64_t alloc = atomic_load_explicit(&h->log.alloc, memory_order_relaxed);
	if (mq->log_fd < 0 || fstat(mq->log_fd, &sb) < 0)
		alloc = MQ_LOG_HDR; /* unknown: the next reservation grows it again */
	else if ((uint64_t)sb.st_size < alloc)
		alloc = (uint64_t)sb.st_size;
	atomic_store_explicit(&h->log.alloc, alloc, memory_order_relaxed);
	/* If its header was written, the file's epoch is the new one and its
	 * copies (at the start, below t, or from t on) are the live records;
	 * where they went is not known.  Compact again, after anything it can
	 * have written: a new epoch, every record in the right place.  Should
	 * that fail, keep the file's epoch, put the tail after its copies and
	 * have the slots' record offsets say "from the start" (the next
	 * compaction appends). */
	struct log_hdr hd;
	uint32_t cur = atomic_load_explicit(&h->log.epoch, memory_order_relaxed);
	uint32_t file = mq->log_fd >= 0 && !read_hdr(mq->log_fd, &hd) ? hd.epoch : cur + 1;
	uint64_t floor = t + live_bound(mq), to = floor;
	uint32_t epoch = atomic_fetch_add_explicit(&h->log.next_epoch, 1, memory_order_relaxed);
	if (file == cur || (drained(mq) && !compact(mq, t, floor, epoch, &to))) {
		if (file == cur)
			to = t; /* nothing switched: its copies (if any) are dead */
	} else {
		atomic_store_explicit(&h->log.epoch, file, memory_order_relaxed);
		for (uint32_t i = 0; i < mq->depth; i++) /* somewhere from the start */
			if (mq_slot(mq, i)->log_off)
				mq_slot(mq, i)->log_off = MQ_LOG_HDR;
	}
	atomic_store_explicit(&h->log.tail, to, memory_order_relaxed);
}

/* ---- opening and recovery ------------------------------------------------ */

static int check_fs(int fd)
{
	struct statfs sf;
	if (fstatfs(fd, &sf) < 0)
		return -errno;
	if (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC)
		return -EMEDIUMTYPE;
	return 0;
}

static int read_hdr(int fd, struct log_hdr *hd)
{
	ssize_t n = pread(fd, hd, sizeof *hd, 0);
	if (n < 0)
		return -errno;
	if ((size_t)n < sizeof *hd)
		return -EBADMSG;
	if (hd->magic != LOG_MAGIC)
		return -EPROTO;
	if (hd->version != LOG_VERSION && hd->version != 1)
		return -EPROTONOSUPPORT;
	if (hd->hdr_bytes != MQ_LOG_HDR || hd->crc != ipcx__crc32c(0, hd, offsetof(struct log_hdr, crc)))
		return -EBADMSG;
	return 0;
}

static void fsync_dir(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return;
	int d = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (d >= 0) {
		(void)fsync(d);
		close(d);
	}
}

struct put {
	uint64_t seq, off;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Scan the log, queue the live messages, cut the invalid tail.  *epochs
 * gets one more than the largest epoch any record names (never reused). */
static int recover(ipcx_mq *mq, int fd, uint64_t size, const struct log_hdr *hd,
		   uint32_t *epochs)
{
	const unsigned char *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	size_t cap_p = 1024, cap_d = 1024, np = 0, nd = 0;
	struct put *puts = malloc(cap_p * sizeof *puts);
	uint64_t *dels = malloc(cap_d * sizeof *dels);
	uint64_t off = MQ_LOG_HDR, valid_end = MQ_LOG_HDR, skipped = 0, max_seq = 0;
	/* Bytes since the last record of the epoch that are no record: damage
	 * (zeros are not: space allocated ahead, or reserved by a writer that
	 * died before it wrote). */
	uint64_t bad = 0;
	uint32_t top = hd->epoch;
	int rc = 0;
	if (!puts || !dels) {
		rc = -ENOMEM;
		goto out;
	}
	while (off + MQ_REC_HDR <= size) {
		struct mq_rec r;
		memcpy(&r, map + off, sizeof r);
		uint64_t rs = mq_rec_size(r.len);
		bool ok = (r.type == MQ_REC_PUT && r.len <= IPCX_MQ_MSG_MAX &&
			   r.arg < IPCX_MQ_PRIO_LEVELS) ||
			  (r.type == MQ_REC_DEL && r.len == 0 && r.arg < MQ_DEL_RANGE_MAX);
		ok = ok && off + rs <= size &&
		     r.crc == (hd->version == 1 ? rec_crc_v1(&r, map + off + MQ_REC_HDR, r.len)
						: rec_crc(map + off, rs));
		if (!ok) {
			uint64_t w;
			memcpy(&w, map + off, 8);
			bad += w ? 8 : 0;
			off += 8;
			continue;
		}
		if (r.epoch - top < 0x80000000u)
			top = r.epoch; /* (serial-number order: epochs may wrap) */
		if (r.epoch != hd->epoch || (hd->version == 1 && r.seq < hd->seq_base)) {
			/* Another epoch's (or, version 1, from before a rewind):
			 * dead, perhaps partly overwritten.  So are, most
			 * likely, the bytes before it that are no record
			 * (what is left of the dead records the current epoch
			 * overwrote): not counted as damage. */
			bad = 0;
			off += rs;
			continue;
		} else if (r.type == MQ_REC_PUT) {
			if (np == cap_p) {
				struct put *n = realloc(puts, (cap_p *= 2) * sizeof *puts);
				if (!n) {
					rc = -ENOMEM;
					goto out;
				}
				puts = n;
			}
			puts[np++] = (struct put){ r.seq, off };
			if (r.seq > max_seq)
				max_seq = r.seq;
		} else {
			while (nd + r.arg >= cap_d) {
				uint64_t *n = realloc(dels, (cap_d *= 2) * sizeof *dels);
				if (!n) {
					rc = -ENOMEM;
					goto out;
				}
				dels = n;
			}
			for (uint32_t k = 0; k <= r.arg; k++)
				dels[nd++] = r.seq + k;
		}
		skipped += bad;
		bad = 0;
		off += rs;
		valid_end = off;
	}
	/* After the last record: a torn or corrupt tail, unless only zeros. */
	skipped += bad;
	*epochs = top + 1;
	qsort(dels, nd, sizeof *dels, cmp_u64);
	/* Records are in sequence order except across a hole; queue in
	 * sequence order so each level keeps its FIFO. */
	qsort(puts, np, sizeof *puts, cmp_u64);
	for (size_t k = 0; k < np && !rc; k++) {
		if (bsearch(&puts[k].seq, dels, nd, sizeof *dels, cmp_u64))
			continue;
		if (k && puts[k].seq == puts[k - 1].seq)
			continue;
		struct mq_rec r;
		memcpy(&r, map + puts[k].off, sizeof r);
		rc = ipcx__mq_put_recovered(mq, map + puts[k].off + MQ_REC_HDR, r.len, r.arg,
					    r.seq, puts[k].off);
	}
	if (rc)
		goto out;
	/* relaxed (both): not yet published */
	atomic_store_explicit(&mq->h->seq_next, hd->seq_base > max_seq + 1 ? hd->seq_base : max_seq + 1,
			      memory_order_relaxed);
	atomic_store_explicit(&mq->h->stats.log_skipped, skipped, memory_order_relaxed);
	if (valid_end < size) {
		if (ipcx__mq_sys.ftruncate(fd, (off_t)valid_end) < 0) {
			rc = -errno;
			goto out;
		}
	}
	atomic_store_explicit(&mq->h->log.tail, valid_end, memory_order_relaxed); /* as above */
out:
	free(puts);
	free(dels);
	munmap((void *)map, size);
	return rc;
}

static int map_log(ipcx_mq *mq)
{
	/* Address space for the largest log, once: the file grows under it. */
	void *p = mmap(NULL, MQ_LOG_WINDOW, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
		       mq->log_fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	mq->log_map = p;
	return 0;
}

void ipcx__mq_log_unmap(ipcx_mq *mq)
{
	if (mq->log_map)
		munmap(mq->log_map, MQ_LOG_WINDOW);
	mq->log_map = NULL;
}

int ipcx__mq_log_create(ipcx_mq *mq, const char *path, mode_t mode)
{
	bool created = true;
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 && errno == EEXIST) {
		created = false;
		fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0)
		return -errno;
	int rc = check_fs(fd);
	struct stat sb;
	if (!rc && created && fchmod(fd, mode) < 0)
		rc = -errno;
	if (!rc && flock(fd, LOCK_EX | LOCK_NB) < 0)
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
	if (!rc && fstat(fd, &sb) < 0)
		rc = -errno;
	if (!rc && !S_ISREG(sb.st_mode))
		rc = -EPROTO;
	mq->log_fd = fd;
	uint32_t epochs = 1, version = LOG_VERSION;
	if (!rc && sb.st_size == 0) {
		rc = write_hdr(fd, 1, 0);
		if (!rc && ipcx__mq_sys.fdatasync(fd) < 0)
			rc = -errno;
		if (!rc)
			fsync_dir(path);
		atomic_store_explicit(&mq->h->log.tail, MQ_LOG_HDR, memory_order_relaxed);
	} else if (!rc) {
		struct log_hdr hd;
		if (sb.st_size < (off_t)MQ_LOG_HDR)
			rc = -EBADMSG;
		else
			rc = read_hdr(fd, &hd);
		if (!rc) {
			rc = recover(mq, fd, (uint64_t)sb.st_size, &hd, &epochs);
			version = hd.version;
			/* relaxed: not yet published */
			atomic_store_explicit(&mq->h->log.epoch, hd.epoch, memory_order_relaxed);
		}
		if (!rc && mq->h->sync != IPCX_MQ_SYNC_NONE && ipcx__mq_sys.fdatasync(fd) < 0)
			rc = -errno;
	}
	atomic_store_explicit(&mq->h->log.last_sync_ns, ipcx__now_ns(), memory_order_relaxed);
	/* Not yet published: relaxed. */
	uint64_t tail = atomic_load_explicit(&mq->h->log.tail, memory_order_relaxed);
	if (!rc) {
		atomic_store_explicit(&mq->h->log.alloc, tail, memory_order_relaxed);
		atomic_store_explicit(&mq->log_size, tail, memory_order_relaxed);
		rc = map_log(mq);
	}
	/* Room for the removal records of the recovered messages (and of any
	 * message that can be live, as every message record reserves). */
	if (!rc)
		rc = grow(mq, tail + (uint64_t)mq->depth * MQ_REC_HDR);
	/* relaxed: not yet published */
	atomic_store_explicit(&mq->h->log.next_epoch, epochs, memory_order_relaxed);
	/* A version 1 log is rewritten as version 2 at once: its records
	 * copied after its tail as the first epoch that old ones cannot be
	 * mistaken for. */
	if (!rc && version != LOG_VERSION) {
		rc = compact(mq, tail, tail, epochs, &tail);
		atomic_store_explicit(&mq->h->log.next_epoch, epochs + 1, memory_order_relaxed);
		atomic_store_explicit(&mq->h->log.tail, tail, memory_order_relaxed);
	}
	/* Shared from now on: every process with the mailbox open holds it. */
	if (!rc && flock(fd, LOCK_SH) < 0)
		rc = -errno;
	if (rc && created)
		unlink(path);
	return rc;
}

int ipcx__mq_log_attach(ipcx_mq *mq)
{
	int fd = open(mq->h->log_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	mq->log_fd = fd;
	struct log_hdr hd;
	if (flock(fd, LOCK_SH | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	int rc = read_hdr(fd, &hd);
	return rc ? rc : map_log(mq);
}
