/*
 * The log of a persistent mailbox.
 *
 * File layout (little-endian):
 *   a 64-byte header: magic "IPCXMQLG", version, header size, seq_base (the
 *   first sequence number a recovered mailbox may use; records numbered
 *   below it are dead, written before the last rewind), CRC32C of the header;
 *   then records, each 8-byte aligned:
 *     u32 type ("MPUT" a message, "MDEL" its removal)  u32 len
 *     u64 seq   u32 prio   u32 flags   u32 crc   u32 reserved
 *     len bytes of payload (PUT only), zero padding to 8 bytes
 *   crc is CRC32C over the first 24 header bytes and the payload.
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
#define LOG_VERSION 1u

struct log_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_bytes;
	uint64_t seq_base;
	uint64_t created_ns;
	uint8_t reserved[28];
	uint32_t crc; /* over the 60 bytes before it */
};
_Static_assert(sizeof(struct log_hdr) == MQ_LOG_HDR, "log header is a file format");

struct log_rec {
	uint32_t type;
	uint32_t len;
	uint64_t seq;
	uint32_t prio;
	uint32_t flags;
	uint32_t crc;
	uint32_t reserved;
};
_Static_assert(sizeof(struct log_rec) == MQ_REC_HDR, "record header is a file format");

uint64_t ipcx__mq_rec_size(uint32_t len)
{
	return ((uint64_t)MQ_REC_HDR + len + 7) & ~7ull;
}

static uint32_t rec_crc(const struct log_rec *r, const void *payload, uint32_t len)
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

static int write_hdr(int fd, uint64_t seq_base)
{
	struct log_hdr hd;
	memset(&hd, 0, sizeof hd);
	hd.magic = LOG_MAGIC;
	hd.version = LOG_VERSION;
	hd.hdr_bytes = MQ_LOG_HDR;
	hd.seq_base = seq_base;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	hd.created_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	hd.crc = ipcx__crc32c(0, &hd, offsetof(struct log_hdr, crc));
	struct iovec iov = { &hd, sizeof hd };
	return write_all(fd, &iov, 1, 0);
}

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
 * which, on a shared file mapping, also runs the file system's mkwrite). */
#define MQ_LOG_AHEAD (1ull << 20)

static void populate(ipcx_mq *mq, uint64_t off, uint64_t size)
{
	/* relaxed (all): a per-handle hint; a race only populates twice */
	uint64_t lo = atomic_load_explicit(&mq->log_ready_lo, memory_order_relaxed);
	uint64_t hi = atomic_load_explicit(&mq->log_ready_hi, memory_order_relaxed);
	if (off >= lo && off < hi)
		return;
	uint64_t from = off & ~4095ull, to = from + MQ_LOG_AHEAD;
	if (to > size)
		to = size & ~4095ull;
	if (to <= from)
		return;
	atomic_store_explicit(&mq->log_ready_lo, from, memory_order_relaxed);
	atomic_store_explicit(&mq->log_ready_hi, to, memory_order_relaxed);
	(void)madvise(mq->log_map + from, to - from, MADV_POPULATE_WRITE); /* best effort */
}

/* Room at [off, off + len) of the mapped file, checked against the file's
 * real size (never the shared state alone: writing past the end of a
 * mapped file raises SIGBUS). */
static unsigned char *log_at(ipcx_mq *mq, uint64_t off, uint64_t len)
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

/* Records are stored into the mapped file: page cache, like pwrite, without
 * a system call per message.  The CRC is written last, so a record torn by
 * a crash does not check out. */
int ipcx__mq_log_put(ipcx_mq *mq, uint32_t slot, uint64_t seq, uint64_t off)
{
	const struct mq_slot *s = mq_slot(mq, slot);
	uint32_t len = s->len;
	const void *payload = mq_buf(mq, slot);
	uint64_t rs = ipcx__mq_rec_size(len);
	unsigned char *p = log_at(mq, off, rs);
	if (!p)
		return -EBADMSG;
	struct log_rec r = { MQ_REC_PUT, len, seq, s->prio, 0, 0, 0 };
	memcpy(p + MQ_REC_HDR, payload, len);
	memset(p + MQ_REC_HDR + len, 0, rs - MQ_REC_HDR - len);
	r.crc = rec_crc(&r, p + MQ_REC_HDR, len); /* what the file holds */
	memcpy(p, &r, sizeof r);
	return 0;
}

int ipcx__mq_log_del(ipcx_mq *mq, uint64_t seq, uint64_t off)
{
	if (off == MQ_LOG_NONE)
		return -ENOSPC;
	unsigned char *p = log_at(mq, off, MQ_REC_HDR);
	if (!p)
		return -EBADMSG;
	struct log_rec r = { MQ_REC_DEL, 0, seq, 0, 0, 0, 0 };
	r.crc = rec_crc(&r, NULL, 0);
	memcpy(p, &r, sizeof r);
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
 * them.  Lock-free unless the file must grow (or is being rewound, which
 * holds the lock with MQ_LOG_BUSY set in the tail).  The record counts in
 * our entry's inflight from before the reservation until it is written, so
 * a rewind (which sets MQ_LOG_BUSY, then reads every inflight) never
 * happens under a record being written.  locked: the caller holds the lock.
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
			/* The compactor holds the lock: wait for it there. */
			if (!ipcx__mq_lock(mq))
				ipcx__mq_unlock(mq);
			t = atomic_load_explicit(&h->log.tail, memory_order_seq_cst); /* as above */
			continue;
		}
		/* acquire: pairs with grow's release: the blocks exist */
		if (end > atomic_load_explicit(&h->log.alloc, memory_order_acquire)) {
			int rc = locked ? 0 : ipcx__mq_lock(mq);
			if (!rc) {
				rc = grow(mq, end);
				if (!locked)
					ipcx__mq_unlock(mq);
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
	return reserve(mq, ipcx__mq_rec_size(len), (uint64_t)mq->depth * MQ_REC_HDR, false, off);
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

/* Rewind an empty log once it has grown past this. */
#define MQ_COMPACT_BYTES (16ull << 20)

/* Whether no message has a record in the log (lock held, tail busy):
 * every slot free or loaned, and no record being written. */
static bool log_idle(ipcx_mq *mq)
{
	for (uint32_t i = 0; i < IPCX_MQ_ATTACH_MAX; i++)
		/* seq_cst: after our MQ_LOG_BUSY CAS (see reserve) */
		if (atomic_load_explicit(&mq->h->att[i].inflight, memory_order_seq_cst))
			return false;
	for (uint32_t i = 0; i < mq->depth; i++) {
		/* relaxed: a message's state; its record is covered by inflight */
		uint32_t st = mq_w_state(atomic_load_explicit(mq_wordp(mq, i),
							      memory_order_relaxed));
		if (st != S_FREE && st != S_LOANED)
			return false;
	}
	return true;
}

void ipcx__mq_log_maybe_compact(ipcx_mq *mq)
{
	struct mq_hdr *h = mq->h;
	/* relaxed: a hint, decided below under the lock */
	uint64_t t = atomic_load_explicit(&h->log.tail, memory_order_relaxed);
	if (t < MQ_COMPACT_BYTES || (t & MQ_LOG_BUSY) || ipcx__mq_readable(mq))
		return;
	if (ipcx__mq_lock(mq))
		return;
	t = atomic_load_explicit(&h->log.tail, memory_order_seq_cst); /* as in reserve */
	if (t < MQ_COMPACT_BYTES || (t & MQ_LOG_BUSY) ||
	    !atomic_compare_exchange_strong_explicit(&h->log.tail, &t, t | MQ_LOG_BUSY,
						     memory_order_seq_cst, memory_order_relaxed)) {
		ipcx__mq_unlock(mq);
		return;
	}
	uint64_t to = t;
	/* Rewind: the header's seq_base becomes the next sequence number, so
	 * recovery ignores every record before it, and the next records
	 * overwrite the old ones in place (the file keeps its blocks and its
	 * pages, which a truncation would make every process fault in again).
	 * With sync batch or always the header is made durable first: new
	 * records must not reach the disk under an old header that would take
	 * old ones for live.  Sync none makes no promise for power loss (the
	 * header is written back with the records, within the same window). */
	if (log_idle(mq) &&
	    !write_hdr(mq->log_fd, atomic_load_explicit(&h->seq_next, memory_order_relaxed)) &&
	    (h->sync == IPCX_MQ_SYNC_NONE || !sync_fd(mq)))
		to = MQ_LOG_HDR;
	/* release: the header before reservations resume (pairs with the
	 * seq_cst CAS in reserve) */
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
	/* A rewinder died: the header may or may not have its new seq_base.
	 * Keep the tail (records go after whatever is there: the old ones are
	 * all dead, numbered below any new one) and trust only the blocks the
	 * file has. */
	struct stat sb;
	uint64_t alloc = atomic_load_explicit(&h->log.alloc, memory_order_relaxed);
	if (mq->log_fd < 0 || fstat(mq->log_fd, &sb) < 0)
		alloc = MQ_LOG_HDR; /* unknown: the next reservation grows it again */
	else if ((uint64_t)sb.st_size < alloc)
		alloc = (uint64_t)sb.st_size;
	atomic_store_explicit(&h->log.alloc, alloc, memory_order_relaxed);
	atomic_store_explicit(&h->log.tail, t & ~MQ_LOG_BUSY, memory_order_relaxed);
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
	if (hd->version != LOG_VERSION)
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

/* Scan the log, queue the live messages, cut the invalid tail. */
static int recover(ipcx_mq *mq, int fd, uint64_t size, const struct log_hdr *hd)
{
	const unsigned char *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	size_t cap_p = 1024, cap_d = 1024, np = 0, nd = 0;
	struct put *puts = malloc(cap_p * sizeof *puts);
	uint64_t *dels = malloc(cap_d * sizeof *dels);
	uint64_t off = MQ_LOG_HDR, valid_end = MQ_LOG_HDR, skipped = 0, max_seq = 0;
	int rc = 0;
	if (!puts || !dels) {
		rc = -ENOMEM;
		goto out;
	}
	while (off + MQ_REC_HDR <= size) {
		struct log_rec r;
		memcpy(&r, map + off, sizeof r);
		uint64_t rs = ipcx__mq_rec_size(r.len);
		bool ok = (r.type == MQ_REC_PUT && r.len <= IPCX_MQ_MSG_MAX &&
			   r.prio < IPCX_MQ_PRIO_LEVELS) ||
			  (r.type == MQ_REC_DEL && r.len == 0);
		ok = ok && off + rs <= size && r.crc == rec_crc(&r, map + off + MQ_REC_HDR, r.len);
		if (!ok) {
			off += 8;
			continue;
		}
		if (r.seq < hd->seq_base) {
			/* Before the last rewind: deleted, and perhaps partly
			 * overwritten since. */
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
			if (nd == cap_d) {
				uint64_t *n = realloc(dels, (cap_d *= 2) * sizeof *dels);
				if (!n) {
					rc = -ENOMEM;
					goto out;
				}
				dels = n;
			}
			dels[nd++] = r.seq;
		}
		skipped += off - valid_end;
		off += rs;
		valid_end = off;
	}
	/* What follows the last record: space allocated ahead (zeros) is not
	 * damage; anything else is a torn or corrupt tail. */
	uint64_t tail_end = size;
	while (tail_end > valid_end && map[tail_end - 1] == 0)
		tail_end--;
	skipped += tail_end - valid_end;
	qsort(dels, nd, sizeof *dels, cmp_u64);
	/* Records are in sequence order except across a hole; queue in
	 * sequence order so each level keeps its FIFO. */
	qsort(puts, np, sizeof *puts, cmp_u64);
	for (size_t k = 0; k < np && !rc; k++) {
		if (bsearch(&puts[k].seq, dels, nd, sizeof *dels, cmp_u64))
			continue;
		if (k && puts[k].seq == puts[k - 1].seq)
			continue;
		struct log_rec r;
		memcpy(&r, map + puts[k].off, sizeof r);
		rc = ipcx__mq_put_recovered(mq, map + puts[k].off + MQ_REC_HDR, r.len, r.prio,
					    r.seq);
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
	if (!rc && sb.st_size == 0) {
		rc = write_hdr(fd, 1);
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
		if (!rc)
			rc = recover(mq, fd, (uint64_t)sb.st_size, &hd);
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
