/* Named and anonymous shared-memory regions with a validated header. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "region_internal.h"

IPCX_API const char *ipcx_kind_name(uint32_t kind)
{
	static const char *const names[] = { "any", "raw", "ring", "queue", "mq", "sync" };
	return kind < IPCX_ARRAY_LEN(names) ? names[kind] : "unknown";
}

IPCX_API int ipcx_name_check(const char *name)
{
	if (!name)
		return -EINVAL;
	size_t n = strnlen(name, IPCX_NAME_MAX + 1);
	if (n == 0 || n > IPCX_NAME_MAX)
		return -EINVAL;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return -EINVAL;
	}
	return 0;
}

int ipcx__shm_path(const char *name, char *buf, size_t len)
{
	int rc = ipcx_name_check(name);
	if (rc)
		return rc;
	if ((size_t)snprintf(buf, len, "/ipcx.%s", name) >= len)
		return -EINVAL;
	return 0;
}

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* Free huge pages of the default size, or 0. */
static long hugetlb_free_pages(long *page_kb)
{
	FILE *f = fopen("/proc/meminfo", "re");
	long free_pages = 0, kb = 0;
	char line[128];
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f)) {
		sscanf(line, "HugePages_Free: %ld", &free_pages);
		sscanf(line, "Hugepagesize: %ld kB", &kb);
	}
	fclose(f);
	*page_kb = kb;
	return free_pages;
}

static void read_sysfs(const char *path, char *buf, size_t len)
{
	buf[0] = 0;
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	if (!fgets(buf, (int)len, f))
		buf[0] = 0;
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
}

static int map_fd(ipcx_region *r, size_t map_size)
{
	void *p = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	r->hdr = p;
	r->map_size = map_size;
	return 0;
}

static void region_free(ipcx_region *r)
{
	if (!r)
		return;
	if (r->hdr)
		munmap(r->hdr, r->map_size);
	if (r->fd >= 0)
		close(r->fd);
	free(r->name);
	free(r);
}

static ipcx_region *region_alloc(const char *name)
{
	ipcx_region *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->fd = -1;
	r->page_size = (uint64_t)sysconf(_SC_PAGESIZE);
	if (name && !(r->name = strdup(name))) {
		free(r);
		return NULL;
	}
	return r;
}

/* Size the object, map it, fill the header.  The fd is already in r->fd. */
static int region_init(ipcx_region *r, uint32_t kind, size_t size, uint32_t flags)
{
	uint64_t total;
	if (ipcx__add_overflow(size, IPCX_REGION_HDR_BYTES, &total))
		return -EINVAL;
	total = round_up(total, r->page_size);
	if (total > (uint64_t)INT64_MAX)
		return -EINVAL;
	if (ftruncate(r->fd, (off_t)total) < 0)
		return errno == EFBIG ? -EINVAL : -errno;
	/* Reserve the memory now: a tmpfs that fills up later would kill us
	 * with SIGBUS on first touch instead of failing here. */
	int rc = posix_fallocate(r->fd, 0, (off_t)total);
	if (rc && rc != EOPNOTSUPP && rc != EINVAL)
		return rc == ENOSPC ? -ENOMEM : -rc;
	rc = map_fd(r, total);
	if (rc)
		return rc;
	if (flags & IPCX_REGION_THP) {
		char shmem_thp[64];
		read_sysfs("/sys/kernel/mm/transparent_hugepage/shmem_enabled", shmem_thp,
			   sizeof shmem_thp);
		if (madvise(r->hdr, total, MADV_HUGEPAGE) == 0 &&
		    (strstr(shmem_thp, "[always]") || strstr(shmem_thp, "[advise]") ||
		     strstr(shmem_thp, "[within_size]") || strstr(shmem_thp, "[force]"))) {
			r->huge = 2;
		} else if (!r->huge) {
			snprintf(r->note, sizeof r->note,
				 "transparent huge pages for shared memory are off (shmem_enabled: %s); "
				 "echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled",
				 shmem_thp[0] ? shmem_thp : "unknown");
		}
	}
	if (flags & IPCX_REGION_PREFAULT)
		(void)madvise(r->hdr, total, MADV_POPULATE_WRITE);

	struct ipcx__region_hdr *h = r->hdr;
	h->magic = IPCX_REGION_MAGIC;
	h->abi = IPCX_REGION_ABI;
	h->kind = kind;
	h->hdr_bytes = IPCX_REGION_HDR_BYTES;
	h->data_size = total - IPCX_REGION_HDR_BYTES;
	h->creator_pid = (int32_t)getpid();
	h->creator_uid = (uint32_t)getuid();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	h->created_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	h->flags = flags;
	atomic_store_explicit(&h->state, IPCX_REGION_INITIALISING, memory_order_relaxed);
	r->data = (char *)h + IPCX_REGION_HDR_BYTES;
	r->data_size = h->data_size;
	return 0;
}

static int check_create_args(uint32_t kind, size_t size, const ipcx_region_opts *opts)
{
	if (kind == IPCX_KIND_ANY || kind > IPCX_KIND_SYNC || size == 0)
		return -EINVAL;
	if (opts && (opts->mode & ~07777u))
		return -EINVAL;
	if (opts && (opts->flags & ~(uint32_t)(IPCX_REGION_HUGE | IPCX_REGION_HUGE_REQUIRE |
					       IPCX_REGION_THP | IPCX_REGION_PREFAULT)))
		return -EINVAL;
	return 0;
}

int ipcx__region_create(ipcx_region **out, const char *name, uint32_t kind, size_t size,
			const ipcx_region_opts *opts)
{
	char path[IPCX_NAME_MAX + 8];
	if (!out)
		return -EINVAL;
	*out = NULL;
	int rc = check_create_args(kind, size, opts);
	if (rc || (rc = ipcx__shm_path(name, path, sizeof path)))
		return rc;
	uint32_t flags = opts ? opts->flags : 0;
	mode_t mode = opts && opts->mode ? opts->mode : 0600;
	if (flags & IPCX_REGION_HUGE_REQUIRE)
		return -ENOMEM; /* POSIX shm lives on tmpfs: hugetlb needs an anonymous region */

	ipcx_region *r = region_alloc(name);
	if (!r)
		return -ENOMEM;
	r->fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (r->fd < 0) {
		rc = -errno;
		region_free(r);
		return rc;
	}
	if (flags & IPCX_REGION_HUGE)
		snprintf(r->note, sizeof r->note,
			 "named regions live on tmpfs, which has no hugetlb pages; "
			 "use an anonymous region or IPCX_REGION_THP");
	/* The umask narrowed the creation mode; set exactly what was asked. */
	if (fchmod(r->fd, mode) < 0 || (rc = region_init(r, kind, size, flags))) {
		if (!rc)
			rc = -errno;
		shm_unlink(path);
		region_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

int ipcx__region_create_anon(ipcx_region **out, uint32_t kind, size_t size,
			     const ipcx_region_opts *opts)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	int rc = check_create_args(kind, size, opts);
	if (rc)
		return rc;
	uint32_t flags = opts ? opts->flags : 0;
	mode_t mode = opts && opts->mode ? opts->mode : 0600;
	ipcx_region *r = region_alloc(NULL);
	if (!r)
		return -ENOMEM;

	if (flags & (IPCX_REGION_HUGE | IPCX_REGION_HUGE_REQUIRE)) {
		long page_kb = 0, free_pages = hugetlb_free_pages(&page_kb);
		uint64_t hp = page_kb > 0 ? (uint64_t)page_kb * 1024 : 1;
		long need = (long)(round_up((uint64_t)size + IPCX_REGION_HDR_BYTES, hp) / hp);
		if (page_kb && free_pages >= need) {
			r->fd = memfd_create("ipcx", MFD_CLOEXEC | MFD_HUGETLB | MFD_ALLOW_SEALING);
			if (r->fd >= 0) {
				r->page_size = (uint64_t)page_kb * 1024;
				r->huge = 1;
			}
		}
		if (r->fd < 0) {
			snprintf(r->note, sizeof r->note,
				 "no hugetlb pool with room (%ld free %ld kB pages, %ld needed); "
				 "add pages: echo N > /proc/sys/vm/nr_hugepages",
				 free_pages, page_kb, need);
			if (flags & IPCX_REGION_HUGE_REQUIRE) {
				region_free(r);
				return -ENOMEM;
			}
		}
	}
	if (r->fd < 0)
		r->fd = memfd_create("ipcx", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (r->fd < 0) {
		rc = -errno;
		region_free(r);
		return rc;
	}
	if (fchmod(r->fd, mode) < 0 || (rc = region_init(r, kind, size, flags))) {
		if (!rc)
			rc = -errno;
		region_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void ipcx__region_publish(ipcx_region *r)
{
	/* release: everything the creator wrote is visible to whoever sees READY */
	atomic_store_explicit(&r->hdr->state, IPCX_REGION_READY, memory_order_release);
}

IPCX_API int ipcx_region_create(ipcx_region **out, const char *name, uint32_t kind, size_t size,
				const ipcx_region_opts *opts)
{
	int rc = ipcx__region_create(out, name, kind, size, opts);
	if (rc == 0)
		ipcx__region_publish(*out);
	return rc;
}

IPCX_API int ipcx_region_create_anon(ipcx_region **out, uint32_t kind, size_t size,
				     const ipcx_region_opts *opts)
{
	int rc = ipcx__region_create_anon(out, kind, size, opts);
	if (rc == 0)
		ipcx__region_publish(*out);
	return rc;
}

/* Validate and map an object whose fd is in r->fd.  Every header field is
 * read once into a local before it is trusted. */
static int region_attach(ipcx_region *r, uint32_t kind)
{
	struct stat st;
	if (fstat(r->fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EPROTO;
	if (st.st_blksize > 0 && (uint64_t)st.st_blksize > r->page_size) {
		r->page_size = (uint64_t)st.st_blksize; /* hugetlbfs reports its page size */
		r->huge = 1;
	}
	uint64_t obj = (uint64_t)st.st_size;
	if (obj == 0)
		return -EAGAIN; /* the creator has not sized it yet */
	if (obj < IPCX_REGION_HDR_BYTES)
		return -EPROTO;

	/* Map only the object's real size, so no header value can send us
	 * past its end (which would raise SIGBUS). */
	int rc = map_fd(r, (size_t)obj);
	if (rc)
		return rc;
	const struct ipcx__region_hdr *h = r->hdr;
	uint64_t magic = h->magic;
	uint32_t abi = h->abi, hkind = h->kind, hdr_bytes = h->hdr_bytes;
	uint32_t state = atomic_load_explicit(&((struct ipcx__region_hdr *)h)->state,
					      memory_order_acquire);
	uint64_t data_size = h->data_size;
	if (magic != IPCX_REGION_MAGIC)
		return state == IPCX_REGION_INITIALISING && magic == 0 ? -EAGAIN : -EPROTO;
	if (abi != IPCX_REGION_ABI)
		return -EPROTONOSUPPORT;
	if (state != IPCX_REGION_READY)
		return state == IPCX_REGION_INITIALISING ? -EAGAIN : -EBADMSG;
	if (kind != IPCX_KIND_ANY && hkind != kind)
		return -EMEDIUMTYPE;
	uint64_t end;
	if (hdr_bytes != IPCX_REGION_HDR_BYTES || ipcx__add_overflow(hdr_bytes, data_size, &end) ||
	    end > obj)
		return -EBADMSG;
	r->data = (char *)r->hdr + hdr_bytes;
	r->data_size = (size_t)data_size;
	return 0;
}

/* Attach r to the object behind fd (-1 with errno set on a failed open). */
static int region_open_with(ipcx_region **out, ipcx_region *r, int fd, uint32_t kind)
{
	int rc = fd < 0 ? -errno : 0;
	r->fd = fd;
	if (rc || (rc = region_attach(r, kind))) {
		region_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

IPCX_API int ipcx_region_open(ipcx_region **out, const char *name, uint32_t kind)
{
	char path[IPCX_NAME_MAX + 8];
	if (!out)
		return -EINVAL;
	*out = NULL;
	int rc = ipcx__shm_path(name, path, sizeof path);
	if (rc)
		return rc;
	ipcx_region *r = region_alloc(name);
	if (!r)
		return -ENOMEM;
	return region_open_with(out, r, shm_open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0), kind);
}

IPCX_API int ipcx_region_open_fd(ipcx_region **out, int fd, uint32_t kind)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	ipcx_region *r = region_alloc(NULL);
	if (!r)
		return -ENOMEM;
	return region_open_with(out, r, fcntl(fd, F_DUPFD_CLOEXEC, 0), kind);
}

IPCX_API int ipcx_region_close(ipcx_region *r)
{
	region_free(r);
	return 0;
}

IPCX_API int ipcx_region_unlink(const char *name)
{
	char path[IPCX_NAME_MAX + 8];
	int rc = ipcx__shm_path(name, path, sizeof path);
	if (rc)
		return rc;
	return shm_unlink(path) < 0 ? -errno : 0;
}

IPCX_API void *ipcx_region_data(const ipcx_region *r)
{
	return r ? r->data : NULL;
}

IPCX_API size_t ipcx_region_size(const ipcx_region *r)
{
	return r ? r->data_size : 0;
}

IPCX_API int ipcx_region_fd(const ipcx_region *r)
{
	return r ? r->fd : -EINVAL;
}

IPCX_API const char *ipcx_region_name(const ipcx_region *r)
{
	return r ? r->name : NULL;
}

IPCX_API int ipcx_region_stat(const ipcx_region *r, ipcx_region_info *info)
{
	if (!r || !info)
		return -EINVAL;
	memset(info, 0, sizeof *info);
	const struct ipcx__region_hdr *h = r->hdr;
	info->kind = h->kind;
	info->abi = h->abi;
	info->data_size = r->data_size;
	info->map_size = r->map_size;
	info->page_size = r->page_size;
	info->creator_pid = h->creator_pid;
	info->creator_uid = h->creator_uid;
	info->created_ns = h->created_ns;
	struct stat st;
	info->mode = fstat(r->fd, &st) == 0 ? (uint32_t)(st.st_mode & 07777) : 0;
	info->huge = r->huge;
	snprintf(info->note, sizeof info->note, "%s", r->note);
	return 0;
}

IPCX_API int ipcx_region_peek(const char *name, ipcx_region_info *info)
{
	ipcx_region *r;
	int rc = ipcx_region_open(&r, name, IPCX_KIND_ANY);
	if (rc)
		return rc;
	rc = ipcx_region_stat(r, info);
	ipcx_region_close(r);
	return rc;
}
