/* Regions: names, modes, headers, corrupted and foreign objects. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

static void test_create_open_close(void **st)
{
	(void)st;
	const char *name = t_name("rg");
	ipcx_region *a = NULL, *b = NULL;
	assert_int_equal(ipcx_region_create(&a, name, IPCX_KIND_RAW, 10000, NULL), 0);
	assert_true(ipcx_region_size(a) >= 10000);
	assert_int_equal((uintptr_t)ipcx_region_data(a) % 4096, 0);
	strcpy(ipcx_region_data(a), "hello");
	assert_int_equal(ipcx_region_open(&b, name, IPCX_KIND_RAW), 0);
	assert_string_equal(ipcx_region_data(b), "hello");
	assert_int_equal(ipcx_region_size(a), ipcx_region_size(b));
	ipcx_region *c = (ipcx_region *)1;
	assert_int_equal(ipcx_region_create(&c, name, IPCX_KIND_RAW, 100, NULL), -EEXIST);
	assert_null(c);
	ipcx_region_info info;
	assert_int_equal(ipcx_region_stat(a, &info), 0);
	assert_int_equal(info.kind, IPCX_KIND_RAW);
	assert_int_equal(info.creator_pid, getpid());
	assert_int_equal(info.mode, 0600);
	assert_int_equal(ipcx_region_unlink(name), 0);
	assert_int_equal(ipcx_region_unlink(name), -ENOENT);
	assert_int_equal(ipcx_region_close(a), 0);
	assert_int_equal(ipcx_region_close(b), 0);
	assert_int_equal(ipcx_region_close(NULL), 0);
	assert_int_equal(t_check_no_leaks(), 0);
}

static void test_bad_names(void **st)
{
	(void)st;
	ipcx_region *r = (ipcx_region *)1;
	char longname[IPCX_NAME_MAX + 2];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	const char *bad[] = { "", "a/b", "/x", ".", "..", "sp ace", "nl\n", longname };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(ipcx_region_create(&r, bad[i], IPCX_KIND_RAW, 64, NULL), -EINVAL);
		assert_null(r);
		assert_int_equal(ipcx_region_open(&r, bad[i], IPCX_KIND_RAW), -EINVAL);
	}
	assert_int_equal(ipcx_region_create(&r, NULL, IPCX_KIND_RAW, 64, NULL), -EINVAL);
	longname[IPCX_NAME_MAX] = 0; /* exactly the maximum is fine */
	assert_int_equal(ipcx_name_check(longname), 0);
	assert_int_equal(ipcx_region_open(&r, "no-such-region-ipcx", IPCX_KIND_ANY), -ENOENT);
	assert_int_equal(ipcx_region_create(&r, t_name("z"), IPCX_KIND_RAW, 0, NULL), -EINVAL);
	assert_int_equal(ipcx_region_create(&r, t_name("k"), 99, 64, NULL), -EINVAL);
}

static void test_umask_mode(void **st)
{
	(void)st;
	mode_t old = umask(0);
	const char *name = t_name("um");
	ipcx_region *r;
	assert_int_equal(ipcx_region_create(&r, name, IPCX_KIND_RAW, 64, NULL), 0);
	char path[256];
	snprintf(path, sizeof path, "/dev/shm/ipcx.%s", name);
	struct stat s;
	assert_int_equal(stat(path, &s), 0);
	assert_int_equal(s.st_mode & 07777, 0600);
	ipcx_region_close(r);
	ipcx_region_unlink(name);
	/* An explicit wider mode is applied exactly, even under a narrow umask. */
	umask(077);
	ipcx_region_opts o = { .mode = 0640 };
	assert_int_equal(ipcx_region_create(&r, name, IPCX_KIND_RAW, 64, &o), 0);
	assert_int_equal(stat(path, &s), 0);
	assert_int_equal(s.st_mode & 07777, 0640);
	ipcx_region_close(r);
	ipcx_region_unlink(name);
	umask(old);
}

/* Write a fake object straight into /dev/shm. */
static void write_object(const char *name, const void *bytes, size_t len, size_t total)
{
	char path[256];
	snprintf(path, sizeof path, "/dev/shm/ipcx.%s", name);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)total), 0);
	if (len)
		assert_int_equal(pwrite(fd, bytes, len, 0), (ssize_t)len);
	close(fd);
}

static void test_foreign_and_corrupt(void **st)
{
	(void)st;
	const char *name = t_name("bad");
	ipcx_region *r = NULL;
	char junk[8192];
	memset(junk, 0x5a, sizeof junk);
	write_object(name, junk, sizeof junk, sizeof junk);
	assert_int_equal(ipcx_region_open(&r, name, IPCX_KIND_ANY), -EPROTO);
	/* too small to hold a header */
	write_object(name, junk, 100, 100);
	assert_int_equal(ipcx_region_open(&r, name, IPCX_KIND_ANY), -EPROTO);
	ipcx_region_unlink(name);

	/* A real region, then damage each field in turn. */
	ipcx_region *a;
	assert_int_equal(ipcx_region_create(&a, name, IPCX_KIND_RAW, 4096, NULL), 0);
	char path[256];
	snprintf(path, sizeof path, "/dev/shm/ipcx.%s", name);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	unsigned char hdr[120], orig[120];
	assert_int_equal(pread(fd, orig, sizeof orig, 0), (ssize_t)sizeof orig);

	struct {
		size_t off, len;
		uint64_t val;
		int want;
	} cases[] = {
		{ 8, 4, 99, -EPROTONOSUPPORT },                 /* abi */
		{ 12, 4, IPCX_KIND_RING, -EMEDIUMTYPE },        /* kind */
		{ 16, 4, 8192, -EBADMSG },                      /* hdr_bytes */
		{ 20, 4, 0x12345678, -EBADMSG },                /* state */
		{ 24, 8, 1ull << 40, -EBADMSG },                /* data_size beyond the object */
		{ 24, 8, ~0ull, -EBADMSG },                     /* data_size overflowing */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		memcpy(hdr, orig, sizeof hdr);
		memcpy(hdr + cases[i].off, &cases[i].val, cases[i].len);
		assert_int_equal(pwrite(fd, hdr, sizeof hdr, 0), (ssize_t)sizeof hdr);
		assert_int_equal(ipcx_region_open(&r, name, IPCX_KIND_RAW), cases[i].want);
		assert_null(r);
	}
	/* Shrunk under its header's feet: detected, not a SIGBUS. */
	assert_int_equal(pwrite(fd, orig, sizeof orig, 0), (ssize_t)sizeof orig);
	assert_int_equal(ftruncate(fd, 4096), 0);
	assert_int_equal(ipcx_region_open(&r, name, IPCX_KIND_RAW), -EBADMSG);
	close(fd);
	ipcx_region_close(a);
	ipcx_region_unlink(name);
}

static void test_anon_and_fd(void **st)
{
	(void)st;
	ipcx_region *a, *b;
	int fds = t_count_fds();
	assert_int_equal(ipcx_region_create_anon(&a, IPCX_KIND_RAW, 1 << 20, NULL), 0);
	assert_null(ipcx_region_name(a));
	memset(ipcx_region_data(a), 7, 1 << 20);
	assert_int_equal(ipcx_region_open_fd(&b, ipcx_region_fd(a), IPCX_KIND_RAW), 0);
	assert_int_equal(((unsigned char *)ipcx_region_data(b))[12345], 7);
	ipcx_region *c = NULL;
	assert_int_equal(ipcx_region_open_fd(&c, ipcx_region_fd(a), IPCX_KIND_RING), -EMEDIUMTYPE);
	assert_int_equal(ipcx_region_open_fd(&c, -1, IPCX_KIND_RAW), -EBADF);
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	assert_int_equal(ipcx_region_open_fd(&c, pfd[0] /* not a regular file */, IPCX_KIND_RAW),
			 -EPROTO);
	close(pfd[0]);
	close(pfd[1]);
	assert_null(c);
	ipcx_region_close(a);
	assert_int_equal(t_count_fds(), fds + 1); /* b still open */
	ipcx_region_close(b);
	assert_int_equal(t_count_fds(), fds);
}

static void test_huge_fallback(void **st)
{
	(void)st;
	ipcx_region *r;
	ipcx_region_opts o = { .flags = IPCX_REGION_HUGE };
	assert_int_equal(ipcx_region_create_anon(&r, IPCX_KIND_RAW, 4 << 20, &o), 0);
	ipcx_region_info info;
	ipcx_region_stat(r, &info);
	if (info.huge == 1)
		assert_true(info.page_size >= 2u << 20);
	else
		assert_true(strlen(info.note) > 0); /* said why it fell back */
	ipcx_region_close(r);
}

int main(void)
{
	t_watchdog(60);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_open_close), cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_umask_mode),	  cmocka_unit_test(test_foreign_and_corrupt),
		cmocka_unit_test(test_anon_and_fd),	  cmocka_unit_test(test_huge_fallback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
