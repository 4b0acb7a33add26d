/* CRC32C: published test vectors, both implementations, chaining. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "core/internal.h"
#include "testutil.h"

/* RFC 3720 (iSCSI) appendix B.4 and the classic check value. */
static void test_vectors(void **st)
{
	(void)st;
	unsigned char buf[48];
	assert_int_equal(ipcx__crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(ipcx__crc32c(0, "", 0), 0);
	memset(buf, 0, 32);
	assert_int_equal(ipcx__crc32c(0, buf, 32), 0x8A9136AAu);
	memset(buf, 0xff, 32);
	assert_int_equal(ipcx__crc32c(0, buf, 32), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (unsigned char)i;
	assert_int_equal(ipcx__crc32c(0, buf, 32), 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (unsigned char)(31 - i);
	assert_int_equal(ipcx__crc32c(0, buf, 32), 0x113FDB5Cu);
	static const unsigned char scsi_read[48] = {
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
		0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	assert_int_equal(ipcx__crc32c(0, scsi_read, 48), 0xD9963A56u);
	assert_int_equal(ipcx__crc32c_sw(0, scsi_read, 48), 0xD9963A56u);
	assert_int_equal(ipcx__crc32c_sw(0, "123456789", 9), 0xE3069283u);
}

/* Hardware and table agree at every length and alignment, and chaining a
 * buffer in pieces equals one pass. */
static void test_agree_and_chain(void **st)
{
	(void)st;
	static unsigned char buf[4096 + 16];
	uint32_t x = 12345;
	for (size_t i = 0; i < sizeof buf; i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (unsigned char)(x >> 16);
	}
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len < 300; len += 7) {
			uint32_t a = ipcx__crc32c(0, buf + off, len);
			assert_int_equal(a, ipcx__crc32c_sw(0, buf + off, len));
			for (size_t cut = 0; cut <= len; cut += 13)
				assert_int_equal(
					ipcx__crc32c(ipcx__crc32c(0, buf + off, cut), buf + off + cut,
						     len - cut),
					a);
		}
	assert_int_equal(ipcx__crc32c(0, buf, 4096), ipcx__crc32c_sw(0, buf, 4096));
	/* A single flipped bit changes the value. */
	uint32_t before = ipcx__crc32c(0, buf, 4096);
	buf[1000] ^= 0x10;
	assert_int_not_equal(ipcx__crc32c(0, buf, 4096), before);
}

/* n buffers of their own lengths, four chains at a time and the rest, equal n
 * calls, at every alignment. */
static void test_four(void **st)
{
	(void)st;
	static unsigned char buf[4][600];
	uint32_t x = 99;
	for (int k = 0; k < 4; k++)
		for (size_t i = 0; i < sizeof buf[k]; i++) {
			x = x * 1103515245u + 12345u;
			buf[k][i] = (unsigned char)(x >> 16);
		}
	for (uint32_t base = 0; base < 300; base += 7)
		for (uint32_t n = 0; n <= 9; n++) {
			const void *q[9];
			uint32_t len[9], got[9];
			for (uint32_t k = 0; k < n; k++) {
				q[k] = buf[k % 4] + k;
				len[k] = base + 8 * (k % 3) + (k == 5 ? 3 : 0);
			}
			ipcx__crc32c_n(q, len, got, n);
			for (uint32_t k = 0; k < n; k++)
				assert_int_equal(got[k], ipcx__crc32c(0, q[k], len[k]));
		}
}
int main(void)
{
	t_watchdog(30);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_agree_and_chain),
		cmocka_unit_test(test_four),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
