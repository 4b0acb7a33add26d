/*
 * ipcx regions: shared memory that other processes can map.
 *
 * A region is a mapping with a small validated header followed by a data
 * area.  It is either named (POSIX shared memory, visible as
 * /dev/shm/ipcx.NAME, found by any process that knows the name) or anonymous
 * (a memfd, reachable only through its file descriptor, which can be
 * inherited across fork or passed over a UNIX socket).
 *
 * Every ipcx object that lives in shared memory (ring, queue, mailbox) is a
 * region of its own kind; a region of kind IPCX_KIND_RAW is plain memory for
 * the caller's own layout.
 *
 * Layout (ABI version 1): one 4096-byte header page, then the data area.  The
 * data area starts page aligned.  See docs/region.md.
 */
#ifndef IPCX_REGION_H
#define IPCX_REGION_H

#include <ipcx/common.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest name accepted (without the "ipcx." prefix the library adds). */
#define IPCX_NAME_MAX 200

/* Kinds of region.  IPCX_KIND_ANY matches any kind when opening. */
enum ipcx_kind {
	IPCX_KIND_ANY = 0,
	IPCX_KIND_RAW = 1,
	IPCX_KIND_RING = 2,
	IPCX_KIND_QUEUE = 3,
	IPCX_KIND_MQ = 4,
	IPCX_KIND_SYNC = 5,
};

/* Name of a kind ("raw", "ring", ...), or "unknown". */
IPCX_API const char *ipcx_kind_name(uint32_t kind);

/* Region creation flags. */
enum ipcx_region_flags {
	/* Back the region with huge pages (hugetlb) if a pool has room; else
	 * fall back to normal pages and say why in ipcx_region_info.note. */
	IPCX_REGION_HUGE = 1u << 0,
	/* Like IPCX_REGION_HUGE, but fail with -ENOMEM instead of falling back. */
	IPCX_REGION_HUGE_REQUIRE = 1u << 1,
	/* Ask for transparent huge pages (madvise MADV_HUGEPAGE) where the
	 * kernel allows them for shared memory. */
	IPCX_REGION_THP = 1u << 2,
	/* Pre-fault every page at creation (no page faults on the data path). */
	IPCX_REGION_PREFAULT = 1u << 3,
};

typedef struct ipcx_region_opts {
	uint32_t mode;  /* permission bits; 0 means 0600. Applied exactly,
	                   whatever the umask. */
	uint32_t flags; /* enum ipcx_region_flags */
} ipcx_region_opts;

typedef struct ipcx_region ipcx_region;

/* What a region is, read back from the kernel and the header. */
typedef struct ipcx_region_info {
	uint32_t kind;        /* enum ipcx_kind */
	uint32_t abi;         /* layout version of the header */
	uint64_t data_size;   /* bytes usable at ipcx_region_data() */
	uint64_t map_size;    /* bytes mapped, header included */
	uint64_t page_size;   /* page size backing the mapping, read back */
	int32_t creator_pid;
	uint32_t creator_uid;
	uint64_t created_ns;  /* CLOCK_REALTIME at creation */
	uint32_t mode;        /* permission bits of the object */
	int huge;             /* 0 normal pages, 1 hugetlb, 2 transparent huge pages */
	char note[256];       /* why huge pages were not used, or "" */
} ipcx_region_info;

/*
 * Create a named region of `size` data bytes (> 0).  The object is created
 * exclusively: -EEXIST if the name is taken.  Mode 0600 unless opts->mode
 * says otherwise.  opts may be NULL.
 *
 * Errors: -EINVAL bad name (empty, longer than IPCX_NAME_MAX, characters
 * other than [A-Za-z0-9._-], "." or ".."), bad kind or size; -EEXIST;
 * -ENOMEM / -ENOSPC when the memory cannot be had (IPCX_REGION_HUGE_REQUIRE
 * without a pool gives -ENOMEM); -EACCES.
 */
IPCX_API int ipcx_region_create(ipcx_region **out, const char *name, uint32_t kind,
				size_t size, const ipcx_region_opts *opts);

/*
 * Open an existing named region.  `kind` must match the creator's unless it
 * is IPCX_KIND_ANY.  The header is read once and validated.
 *
 * Errors: -ENOENT; -EINVAL bad name; -EACCES; -EPROTO not an ipcx object;
 * -EPROTONOSUPPORT other ABI version; -EMEDIUMTYPE kind mismatch; -EBADMSG
 * header inconsistent with the object (e.g. a size larger than the object);
 * -EAGAIN the creator has not finished initialising it.
 */
IPCX_API int ipcx_region_open(ipcx_region **out, const char *name, uint32_t kind);

/* Create an anonymous region (memfd, close-on-exec).  Same opts and errors
 * as ipcx_region_create except the name ones. */
IPCX_API int ipcx_region_create_anon(ipcx_region **out, uint32_t kind, size_t size,
				     const ipcx_region_opts *opts);

/* Map the region behind `fd` (one received from another process, say).  The
 * region keeps its own duplicate of fd; the caller still owns fd.  Same
 * validation and errors as ipcx_region_open, plus -EBADF. */
IPCX_API int ipcx_region_open_fd(ipcx_region **out, int fd, uint32_t kind);

/* Unmap and close.  The object lives on while it is named or mapped
 * elsewhere.  NULL is a no-op.  Returns 0. */
IPCX_API int ipcx_region_close(ipcx_region *r);

/* Remove the name; processes that have it mapped keep using it.
 * Errors: -EINVAL, -ENOENT, -EACCES. */
IPCX_API int ipcx_region_unlink(const char *name);

/* The data area and its size. */
IPCX_API void *ipcx_region_data(const ipcx_region *r);
IPCX_API size_t ipcx_region_size(const ipcx_region *r);

/* The file descriptor behind the region (owned by the region; dup it to keep
 * it beyond ipcx_region_close). */
IPCX_API int ipcx_region_fd(const ipcx_region *r);

/* The region's name, or NULL for an anonymous region. */
IPCX_API const char *ipcx_region_name(const ipcx_region *r);

/* Fill *info.  Returns 0. */
IPCX_API int ipcx_region_stat(const ipcx_region *r, ipcx_region_info *info);

/* 0 if `name` is a valid ipcx object name, else -EINVAL. */
IPCX_API int ipcx_name_check(const char *name);

/* Read the header of the named object without keeping it open (for admin
 * tools): same validation and errors as ipcx_region_open with IPCX_KIND_ANY. */
IPCX_API int ipcx_region_peek(const char *name, ipcx_region_info *info);

#ifdef __cplusplus
}
#endif

#endif /* IPCX_REGION_H */
