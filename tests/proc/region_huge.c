/* Huge pages for regions: the fallback says why and how to fix it; as root,
 * with a hugetlb pool raised for the test (and restored), anonymous and named
 * (hugetlbfs, mounted in a private mount namespace) regions get 2 MiB pages,
 * read back from the kernel; shmem THP likewise when the knob allows it.
 * ipcx-test-timeout: 60
 * ipcx-test-serial
 */
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

#define MIB (1u << 20)

static long meminfo(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[128];
	long v = -1;
	size_t n = strlen(key);
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, key, n) && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

static void fallback(void)
{
	ipcx_region *r;
	ipcx_region_info info;
	ipcx_region_opts o = {.flags = IPCX_REGION_HUGE};
	const char *name = t_name("hf");
	T_CHECK_RC(ipcx_region_create(&r, name, IPCX_KIND_RAW, 4 * MIB, &o), 0);
	T_CHECK_RC(ipcx_region_stat(r, &info), 0);
	T_CHECK(info.huge == 0 && info.page_size == (uint64_t)sysconf(_SC_PAGESIZE));
	T_CHECK(strstr(info.note, "nr_hugepages") || strstr(info.note, "hugetlbfs"));
	printf("fallback: %s\n", info.note);
	ipcx_region_close(r);
	T_CHECK_RC(ipcx_region_unlink(name), 0);
	o.flags = IPCX_REGION_HUGE_REQUIRE;
	T_CHECK_RC(ipcx_region_create(&r, name, IPCX_KIND_RAW, 4 * MIB, &o), -ENOMEM);
	T_CHECK_RC(ipcx_region_create_anon(&r, IPCX_KIND_RAW, 4 * MIB, &o), -ENOMEM);
	T_CHECK(r == NULL);
}

static int open_and_check(void *arg)
{
	ipcx_region *r;
	ipcx_region_info info;
	if (ipcx_region_open(&r, arg, IPCX_KIND_RAW) || ipcx_region_stat(r, &info))
		return 1;
	int ok = info.huge == 1 && info.page_size == 2 * MIB &&
		 !strcmp((char *)ipcx_region_data(r) + MIB, "on a huge page");
	ipcx_region_close(r);
	return ok ? 0 : 2;
}

/* In a private mount namespace, so the hugetlbfs mount is nobody else's. */
static int with_pool(void *arg)
{
	(void)arg;
	alarm(40);
	ipcx_region *r;
	ipcx_region_info info;
	ipcx_region_opts o = {.flags = IPCX_REGION_HUGE_REQUIRE};
	T_CHECK_RC(ipcx_region_create_anon(&r, IPCX_KIND_RAW, 3 * MIB, &o), 0);
	T_CHECK_RC(ipcx_region_stat(r, &info), 0);
	T_CHECK(info.huge == 1 && info.page_size == 2 * MIB && info.note[0] == 0);
	memset(ipcx_region_data(r), 1, ipcx_region_size(r));
	ipcx_region_close(r);

	const char *name = t_name("hn");
	o.flags = IPCX_REGION_HUGE;
	T_CHECK_RC(ipcx_region_create(&r, name, IPCX_KIND_RAW, 3 * MIB, &o), 0);
	T_CHECK_RC(ipcx_region_stat(r, &info), 0);
	T_CHECK(info.huge == 0 && strstr(info.note, "mount -t hugetlbfs"));
	ipcx_region_close(r);
	T_CHECK_RC(ipcx_region_unlink(name), 0);

	char dir[] = "/tmp/ipcx-hugetlbfs-XXXXXX";
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    !mkdtemp(dir) || mount("none", dir, "hugetlbfs", 0, "mode=0700")) {
		printf("SKIP part: cannot mount hugetlbfs in a private namespace\n");
		return T_SKIP;
	}
	T_CHECK_RC(ipcx_region_create(&r, name, IPCX_KIND_RAW, 3 * MIB, &o), 0);
	T_CHECK_RC(ipcx_region_stat(r, &info), 0);
	T_CHECK(info.huge == 1 && info.page_size == 2 * MIB && info.mode == 0600);
	T_CHECK(ipcx_region_size(r) % (2 * MIB) == 2 * MIB - 4096);
	strcpy((char *)ipcx_region_data(r) + MIB, "on a huge page");
	ipcx_region *dup;
	T_CHECK_RC(ipcx_region_create(&dup, name, IPCX_KIND_RAW, 64, NULL), -EEXIST);
	T_CHECK_RC(t_wait(t_spawn(open_and_check, (void *)name)), 0);
	ipcx_region_close(r);
	T_CHECK_RC(ipcx_region_unlink(name), 0);
	T_CHECK_RC(ipcx_region_open(&r, name, IPCX_KIND_RAW), -ENOENT);
	umount(dir);
	rmdir(dir);
	printf("hugetlb: anonymous and named (hugetlbfs) regions on 2 MiB pages, read back\n");
	return T_PASS;
}

static int thp(void *arg)
{
	(void)arg;
	ipcx_region *r;
	ipcx_region_info info;
	ipcx_region_opts o = {.flags = IPCX_REGION_THP | IPCX_REGION_PREFAULT};
	T_CHECK_RC(ipcx_region_create_anon(&r, IPCX_KIND_RAW, 16 * MIB, &o), 0);
	T_CHECK_RC(ipcx_region_stat(r, &info), 0);
	printf("shmem THP: huge=%d page_size=%llu note='%s'\n", info.huge,
	       (unsigned long long)info.page_size, info.note);
	/* Read back: either PMD-mapped huge pages, or normal pages and a note. */
	T_CHECK((info.huge == 2 && info.page_size == 2 * MIB) ||
		(info.huge == 0 && info.page_size == 4096 && info.note[0]));
	ipcx_region_close(r);
	return T_PASS;
}

int main(void)
{
	t_watchdog(55);
	setvbuf(stdout, NULL, _IONBF, 0);
	if (meminfo("HugePages_Free") == 0)
		fallback();
	if (geteuid() != 0) {
		printf("SKIP rest: raising a hugetlb pool needs root\n");
		return T_PASS;
	}
	char old[64], knob[128];
	int rc = T_PASS;
	if (read_file("/proc/sys/vm/nr_hugepages", old, sizeof old) == 0) {
		char want[32];
		snprintf(want, sizeof want, "%ld", atol(old) + 8);
		if (write_file("/proc/sys/vm/nr_hugepages", want) == 0 &&
		    meminfo("HugePages_Free") >= 8 && meminfo("Hugepagesize") == 2048) {
			int st = t_wait(t_spawn(with_pool, NULL));
			if (st != T_PASS && st != T_SKIP)
				rc = T_FAIL;
		} else {
			printf(
			    "SKIP part: could not raise the hugetlb pool to 8 free 2 MiB pages\n");
		}
		write_file("/proc/sys/vm/nr_hugepages", old);
	}
	const char *k = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";
	if (read_file(k, knob, sizeof knob) == 0 && write_file(k, "advise") == 0) {
		if (t_wait(t_spawn(thp, NULL)) != T_PASS)
			rc = T_FAIL;
		char *sel = strchr(knob, '['), *end = sel ? strchr(sel, ']') : NULL;
		if (sel && end) {
			*end = 0;
			write_file(k, sel + 1);
		}
	}
	T_CHECK(t_check_no_leaks() == 0);
	return rc;
}
