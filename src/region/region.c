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

/* The first hugetlbfs mount point, into buf.  0 or -ENOENT. */
static int hugetlbfs_mount(char *buf, size_t len)
{
	FILE *f = fopen("/proc/self/mounts", "re");
	char line[1024], dir[512], type[64];
	int rc = -ENOENT;
	if (!f)
		return rc;
	while (rc && fgets(line, sizeof line, f))
		if (sscanf(line, "%*s %511s %63s", dir, type) == 2 && !strcmp(type, "hugetlbfs") &&
		    (size_t)snprintf(buf, len, "%s", dir) < len)
			rc = 0;
	fclose(f);
	return rc;
}

/* DIR/ipcx.NAME of a named huge region, if a hugetlbfs is mounted. */
static int hugetlbfs_path(const char *name, char *buf, size_t len)
{
	char dir[512];
	if (hugetlbfs_mount(dir, sizeof dir) ||
	    (size_t)snprintf(buf, len, "%s/ipcx.%s", dir, name) >= len)
		return -ENOENT;
	return 0;
}

/* Create a named region on hugetlbfs: the pool must have room and a
 * hugetlbfs must be mounted.  On failure r->note says why and how to fix it.
 * 0 (r->fd set, hpath filled), -ENOMEM, -EEXIST or another -errno. */
static int hugetlb_named(ipcx_region *r, const char *name, size_t size, char *hpath, size_t len)
{
	long page_kb = 0, free_pages = hugetlb_free_pages(&page_kb);
	uint64_t hp = page_kb > 0 ? (uint64_t)page_kb * 1024 : 1;
	long need = (long)(round_up((uint64_t)size + IPCX_REGION_HDR_BYTES, hp) / hp);
	if (!page_kb || free_pages < need) {
		snprintf(r->note, sizeof r->note,
			 "no hugetlb pool with room (%ld free %ld kB pages, %ld needed); "
			 "add pages: echo N > /proc/sys/vm/nr_hugepages",
			 free_pages, page_kb, need);
		return -ENOMEM;
	}
	if (hugetlbfs_path(name, hpath, len)) {
		snprintf(r->note, sizeof r->note,
			 "named huge regions live on hugetlbfs and none is mounted: "
			 "mkdir -p /dev/hugepages && mount -t hugetlbfs none /dev/hugepages");
		return -ENOMEM;
	}
	int fd = open(hpath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		int rc = -errno;
		snprintf(r->note, sizeof r->note, "cannot create %s: %s", hpath, strerror(-rc));
		return rc;
	}
	r->fd = fd;
	r->page_size = hp;
	r->huge = 1;
	return 0;
}

/* The mount options of /dev/shm into buf ("" if not found). */
static void shm_mount_opts(char *buf, size_t len)
{
	FILE *f = fopen("/proc/self/mounts", "re");
	char line[1024], dir[256], o[256];
	buf[0] = 0;
	if (!f)
		return;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "%*s %255s %*s %255s", dir, o) == 2 && !strcmp(dir, "/dev/shm"))
			snprintf(buf, len, "%s", o); /* the last mount wins */
	fclose(f);
}

#define THP_ALIGN (2u << 20)

static int map_fd(ipcx_region *r, size_t map_size)
{
	void *p;
	if (map_size >= THP_ALIGN && r->page_size < THP_ALIGN) {
		/* Start large mappings on a 2 MiB boundary, so transparent huge
		 * pages can back them where the kernel allows (it only aligns
		 * shared mappings itself when THP is on for every mapping). */
		char *res = mmap(NULL, map_size + THP_ALIGN, PROT_NONE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (res == MAP_FAILED)
			return -errno;
		char *at = (char *)(((uintptr_t)res + THP_ALIGN - 1) & ~(uintptr_t)(THP_ALIGN - 1));
		p = mmap(at, map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, r->fd, 0);
		if (p == MAP_FAILED) {
			int rc = -errno;
			munmap(res, map_size + THP_ALIGN);
			return rc;
		}
		if (at > res)
			munmap(res, (size_t)(at - res));
		munmap(at + map_size, (size_t)(res + map_size + THP_ALIGN - (at + map_size)));
	} else {
		p = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	}
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
	int rc = map_fd(r, total);
	if (rc)
		return rc;
	if ((flags & IPCX_REGION_THP) && !r->huge) {
		/* Who decides: for memfd (anonymous regions) the shmem_enabled knob;
		 * for /dev/shm its mount's huge= option, unless the knob forces or
		 * denies.  The page size is read back by ipcx_region_stat. */
		char knob[96], opts[300] = "";
		read_sysfs("/sys/kernel/mm/transparent_hugepage/shmem_enabled", knob, sizeof knob);
		if (r->name)
			shm_mount_opts(opts, sizeof opts);
		int allowed = strstr(knob, "[force]") != NULL;
		if (!strstr(knob, "[deny]") && !allowed)
			allowed = r->name ? strstr(opts, "huge=always") || strstr(opts, "huge=advise") ||
						    strstr(opts, "huge=within_size")
					  : strstr(knob, "[always]") || strstr(knob, "[advise]") ||
						    strstr(knob, "[within_size]");
		if (allowed && madvise(r->hdr, total, MADV_HUGEPAGE) == 0)
			r->huge = 2;
		else if (r->name)
			snprintf(r->note, sizeof r->note,
				 "/dev/shm is mounted without huge= (shmem_enabled: %s), so named "
				 "regions get no transparent huge pages; "
				 "mount -o remount,huge=advise /dev/shm",
				 knob[0] ? knob : "unknown");
		else
			snprintf(
			    r->note, sizeof r->note,
			    "transparent huge pages for shared memory are off (shmem_enabled: %s); "
			    "echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled",
			    knob[0] ? knob : "unknown");
	}
	/* Reserve the memory now: a tmpfs that fills up later would kill us
	 * with SIGBUS on first touch instead of failing here.  fallocate
	 * would allocate small pages before THP could apply, so a THP region
	 * is reserved by touching it through its (huge-page-advised) mapping. */
	if (r->huge == 2) {
		if (madvise(r->hdr, total, MADV_POPULATE_WRITE) < 0)
			return errno == EINVAL ? -EINVAL : -ENOMEM;
	} else {
		rc = posix_fallocate(r->fd, 0, (off_t)total);
		if (rc && rc != EOPNOTSUPP && rc != EINVAL)
			return rc == ENOSPC ? -ENOMEM : -rc;
		if (flags & IPCX_REGION_PREFAULT)
			(void)madvise(r->hdr, total, MADV_POPULATE_WRITE);
	}

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

	ipcx_region *r = region_alloc(name);
	if (!r)
		return -ENOMEM;
	/* A name is one object, whichever file system holds it. */
	char hpath[768] = "";
	struct stat st;
	if (hugetlbfs_path(name, hpath, sizeof hpath) == 0 && stat(hpath, &st) == 0) {
		region_free(r);
		return -EEXIST;
	}
	hpath[0] = 0;
	if (flags & (IPCX_REGION_HUGE | IPCX_REGION_HUGE_REQUIRE)) {
		char shm[IPCX_NAME_MAX + 16];
		snprintf(shm, sizeof shm, "/dev/shm%s", path);
		rc = stat(shm, &st) == 0 ? -EEXIST : hugetlb_named(r, name, size, hpath, sizeof hpath);
		if (rc && (rc == -EEXIST || (flags & IPCX_REGION_HUGE_REQUIRE))) {
			region_free(r);
			return rc;
		}
		if (rc)
			hpath[0] = 0; /* fall back to tmpfs; the note says why */
	}
	if (r->fd < 0)
		r->fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (r->fd < 0) {
		rc = -errno;
		region_free(r);
		return rc;
	}
	/* The umask narrowed the creation mode; set exactly what was asked. */
	if (fchmod(r->fd, mode) < 0 || (rc = region_init(r, kind, size, flags))) {
		if (!rc)
			rc = -errno;
		if (hpath[0])
			unlink(hpath);
		else
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
	int fd = shm_open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0);
	char hpath[768];
	if (fd < 0 && errno == ENOENT && hugetlbfs_path(name, hpath, sizeof hpath) == 0) {
		fd = open(hpath, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 && errno == ELOOP)
			errno = EACCES; /* a symlink where the object should be */
	}
	return region_open_with(out, r, fd, kind);
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
	if (shm_unlink(path) == 0)
		return 0;
	rc = -errno;
	char hpath[768];
	if (rc == -ENOENT && hugetlbfs_path(name, hpath, sizeof hpath) == 0)
		return unlink(hpath) < 0 ? -errno : 0;
	return rc;
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

/* Read back from /proc/self/smaps how the mapping at `start` is backed: the
 * kernel page size (hugetlb shows its huge size) and how much of it is mapped
 * by PMD-sized transparent huge pages.  0 or -ENOENT. */
static int smaps_readback(const void *start, uint64_t *page_bytes, uint64_t *pmd_kb)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[256];
	int in = 0, found = -ENOENT;
	unsigned long lo, hi, v;
	if (!f)
		return found;
	*page_bytes = 0;
	*pmd_kb = 0;
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			if (in)
				break;
			in = lo == (unsigned long)(uintptr_t)start;
			continue;
		}
		if (!in)
			continue;
		found = 0;
		if (sscanf(line, "KernelPageSize: %lu kB", &v) == 1)
			*page_bytes = (uint64_t)v * 1024;
		else if (sscanf(line, "ShmemPmdMapped: %lu kB", &v) == 1 ||
			 sscanf(line, "FilePmdMapped: %lu kB", &v) == 1)
			*pmd_kb += v;
	}
	fclose(f);
	return found;
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
	/* What the kernel actually gave, not what was asked for. */
	uint64_t kps, pmd_kb;
	if (smaps_readback(r->hdr, &kps, &pmd_kb) == 0 && kps) {
		if (kps > (uint64_t)sysconf(_SC_PAGESIZE)) {
			info->huge = 1;
			info->page_size = kps;
		} else if (pmd_kb) {
			char pmd[32];
			read_sysfs("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", pmd,
				   sizeof pmd);
			info->huge = 2;
			info->page_size = strtoull(pmd, NULL, 10) ? strtoull(pmd, NULL, 10) : 2u << 20;
		} else {
			info->page_size = kps;
			if (r->huge == 2) {
				info->huge = 0;
				snprintf(info->note, sizeof info->note,
					 "transparent huge pages are allowed for this mapping but none "
					 "is mapped yet: shmem THP is allocated at first touch of an "
					 "aligned %s extent",
					 "2 MiB");
			}
		}
	}
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
