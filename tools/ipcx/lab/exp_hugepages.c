/*
 * hugepages: a dependent random walk over a large shared region, one access
 * per step on a random page, backed by 4 KiB pages, by hugetlb pages and by
 * transparent huge pages where the machine allows each.  The page size of
 * each region is read back from the kernel, not assumed.  TLB-miss counters
 * are read through perf_event_open where the CPU exposes them.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ipcx/region.h>

#include "lab.h"

#define WALK_BYTES (128ull << 20)
#define PAGE 4096u
#define STEPS 2000000u

static int perf_dtlb(void)
{
	struct perf_event_attr a;
	memset(&a, 0, sizeof a);
	a.size = sizeof a;
	a.type = PERF_TYPE_HW_CACHE;
	a.config = PERF_COUNT_HW_CACHE_DTLB | (PERF_COUNT_HW_CACHE_OP_READ << 8) |
		   (PERF_COUNT_HW_CACHE_RESULT_MISS << 16);
	a.disabled = 1;
	a.exclude_kernel = 1;
	a.exclude_hv = 1;
	int fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* The same random cycle through every page (one line per page at a random
 * offset) in any region: next offsets are stored in the pages themselves. */
static void build_chain(char *base, uint32_t pages, uint32_t *perm, uint32_t *line)
{
	for (uint32_t i = 0; i < pages; i++)
		perm[i] = i;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (uint32_t i = pages - 1; i > 0; i--) { /* Sattolo: one cycle */
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint32_t j = (uint32_t)(x % i);
		uint32_t t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (uint32_t i = 0; i < pages; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		line[i] = (uint32_t)(x % (PAGE / 64)) * 64;
	}
	for (uint32_t i = 0; i < pages; i++) {
		uint64_t here = (uint64_t)i * PAGE + line[i];
		uint64_t next = (uint64_t)perm[i] * PAGE + line[perm[i]];
		memcpy(base + here, &next, sizeof next);
	}
}

struct walk {
	double ns_per_step;
	long long dtlb_misses; /* -1 if unavailable */
};

static struct walk walk(char *base, uint64_t start, int perf_fd)
{
	struct walk w = {0, -1};
	uint64_t off = start;
	/* warm: one pass over a part, so page faults are not measured */
	for (uint32_t i = 0; i < STEPS / 8; i++)
		memcpy(&off, base + off, sizeof off);
	if (perf_fd >= 0) {
		ioctl(perf_fd, PERF_EVENT_IOC_RESET, 0);
		ioctl(perf_fd, PERF_EVENT_IOC_ENABLE, 0);
	}
	double t0 = lab_now_ns();
	for (uint32_t i = 0; i < STEPS; i++)
		off = *(volatile uint64_t *)(base + off);
	double t1 = lab_now_ns();
	if (perf_fd >= 0) {
		ioctl(perf_fd, PERF_EVENT_IOC_DISABLE, 0);
		long long v;
		if (read(perf_fd, &v, sizeof v) == (ssize_t)sizeof v)
			w.dtlb_misses = v;
	}
	w.ns_per_step = (t1 - t0) / STEPS + (off == 1 ? 1e-9 : 0); /* keep off alive */
	return w;
}

static int read_str(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? write(fd, s, strlen(s)) : -1;
	if (fd >= 0)
		close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

static int run(struct lab_out *out)
{
	uint32_t pages = (uint32_t)(WALK_BYTES / PAGE);
	uint32_t *perm = malloc(pages * sizeof *perm), *line = malloc(pages * sizeof *line);
	if (!perm || !line) {
		free(perm);
		free(line);
		return -ENOMEM;
	}
	lab_fact(out, "walk", "%u dependent loads, each on a random page of a %llu MiB region",
		 STEPS, WALK_BYTES >> 20);

	int pfd = perf_dtlb();
	if (pfd < 0)
		lab_fact(out, "dTLB miss counter",
			 "not available here (perf_event_open: %s); a virtual machine without a "
			 "virtual PMU exposes none, so only times are reported",
			 strerror(-pfd));

	/* A hugetlb pool for the run if there is none: raised, then restored. */
	char old_pool[32] = "";
	int raised = 0;
	const char *pool = "/proc/sys/vm/nr_hugepages";
	if (read_str(pool, old_pool, sizeof old_pool) == 0) {
		char want[32];
		snprintf(want, sizeof want, "%ld", atol(old_pool) + (long)(WALK_BYTES >> 21) + 2);
		raised = write_str(pool, want) == 0;
		if (!raised)
			lab_fact(out, "hugetlb pool",
				 "cannot be raised here (%s); as root: echo %s > %s",
				 strerror(errno), want, pool);
	}

	static const struct {
		const char *label;
		uint32_t flags;
	} kinds[] = {
	    {"4 KiB pages", IPCX_REGION_PREFAULT},
	    {"hugetlb", IPCX_REGION_HUGE_REQUIRE | IPCX_REGION_PREFAULT},
	    {"transparent huge pages", IPCX_REGION_THP | IPCX_REGION_PREFAULT},
	};
	double base_ns = 0, best_huge = 0;
	const char *best_label = NULL;
	char key[96];
	for (unsigned k = 0; k < 3; k++) {
		ipcx_region *r;
		ipcx_region_opts o = {.flags = kinds[k].flags};
		int rc = ipcx_region_create_anon(&r, IPCX_KIND_RAW, WALK_BYTES, &o);
		if (rc) {
			snprintf(key, sizeof key, "%s", kinds[k].label);
			lab_fact(out, key, "unavailable: %s%s", ipcx_strerror(rc),
				 k == 1 ? " (no pool with room; echo N > /proc/sys/vm/nr_hugepages)"
					: "");
			continue;
		}
		ipcx_region_info info;
		ipcx_region_stat(r, &info);
		char *base = ipcx_region_data(r);
		build_chain(base, pages, perm, line);
		/* Read back after the chain touched every page. */
		ipcx_region_stat(r, &info);
		struct walk w = walk(base, line[0], pfd);
		snprintf(key, sizeof key, "%s", kinds[k].label);
		if (info.page_size <= PAGE && k > 0) {
			lab_fact(out, key, "not obtained: %s",
				 info.note[0] ? info.note : "4 KiB pages");
			ipcx_region_close(r);
			continue;
		}
		if (w.dtlb_misses >= 0)
			lab_fact(out, key,
				 "%.1f ns/access, %.3f dTLB misses/access, page size %llu KiB "
				 "(read back)",
				 w.ns_per_step, (double)w.dtlb_misses / STEPS,
				 (unsigned long long)info.page_size >> 10);
		else
			lab_fact(out, key, "%.1f ns/access, page size %llu KiB (read back)",
				 w.ns_per_step, (unsigned long long)info.page_size >> 10);
		if (k == 0)
			base_ns = w.ns_per_step;
		else if (!best_label || w.ns_per_step < best_huge) {
			best_huge = w.ns_per_step;
			best_label = kinds[k].label;
		}
		ipcx_region_close(r);
	}
	if (raised)
		write_str(pool, old_pool);
	if (pfd >= 0)
		close(pfd);
	free(perm);
	free(line);

	if (!best_label || base_ns <= 0) {
		lab_verdict(
		    out, LAB_INCONCLUSIVE,
		    "no huge-page backing could be had here: raise a hugetlb pool (echo N > "
		    "/proc/sys/vm/nr_hugepages) or allow shmem THP (echo advise > "
		    "/sys/kernel/mm/transparent_hugepage/shmem_enabled) and run again");
		return 0;
	}
	double gain = base_ns / best_huge;
	lab_fact(out, "4 KiB / best huge", "%.2fx", gain);
	if (gain > 1.1)
		lab_verdict(
		    out, LAB_HOLDS,
		    "each random access took %.1f ns on 4 KiB pages and %.1f ns on %s (%.2fx): "
		    "the difference is what the 4 KiB pages' TLB misses cost in page walks%s",
		    base_ns, best_huge, best_label, gain,
		    pfd < 0 ? " (TLB counters unavailable: inferred from time only)" : "");
	else
		lab_verdict(
		    out, LAB_HOLDS_WITH_CORRECTIONS,
		    "huge pages (%s) changed the cost of a random access only %.2fx (%.1f vs "
		    "%.1f ns): on this machine the cache misses dominate the page walks",
		    best_label, gain, best_huge, base_ns);
	return 0;
}

static const struct lab_experiment hugepages = {
    .name = "hugepages",
    .claim = "Huge pages make random access over a large region faster by cutting TLB misses",
    .order = 33,
    .run = run,
};
LAB_EXPERIMENT(hugepages)
