/*
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as used by iSCSI,
 * ext4 and SSE4.2's crc32 instruction.  The instruction is used when the CPU
 * has it (checked once at run time); otherwise a slicing-by-8 table.
 *
 * Convention: crc is the running value returned by a previous call (0 to
 * start); the pre- and post-inversion happen inside, so
 * crc32c(crc32c(0, a), b) == crc32c(0, a ++ b).
 */
#include <pthread.h>
#include <string.h>

#include "internal.h"

static uint32_t table[8][256];

static void table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
		table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

static uint32_t crc_table(uint32_t c, const unsigned char *p, size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
		len--;
	}
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		w ^= c; /* little-endian: the low word meets the running CRC */
		c = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
		    table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^
		    table[2][(w >> 40) & 0xff] ^ table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
	return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const unsigned char *p,
							  size_t len)
{
	uint64_t c64 = c;
	while (len && ((uintptr_t)p & 7)) {
		c64 = __builtin_ia32_crc32qi((uint32_t)c64, *p++);
		len--;
	}
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c64 = __builtin_ia32_crc32di(c64, w);
		p += 8;
		len -= 8;
	}
	while (len--)
		c64 = __builtin_ia32_crc32qi((uint32_t)c64, *p++);
	return (uint32_t)c64;
}

/* Four independent streams of len bytes each: the instruction's latency
 * is three cycles and its throughput one per cycle, so four chains run in
 * the time of one (the log checks a run of records at once). */
__attribute__((target("sse4.2"))) static void crc_hw4(uint32_t c[4], const unsigned char *const p[4],
						       size_t len)
{
	uint64_t a = c[0], b = c[1], x = c[2], y = c[3];
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t wa, wb, wx, wy;
		memcpy(&wa, p[0] + i, 8);
		memcpy(&wb, p[1] + i, 8);
		memcpy(&wx, p[2] + i, 8);
		memcpy(&wy, p[3] + i, 8);
		a = __builtin_ia32_crc32di(a, wa);
		b = __builtin_ia32_crc32di(b, wb);
		x = __builtin_ia32_crc32di(x, wx);
		y = __builtin_ia32_crc32di(y, wy);
	}
	c[0] = (uint32_t)a;
	c[1] = (uint32_t)b;
	c[2] = (uint32_t)x;
	c[3] = (uint32_t)y;
	if (i < len)
		for (int k = 0; k < 4; k++)
			c[k] = crc_hw(c[k], p[k] + i, len - i);
}
#endif

typedef uint32_t (*crc_fn)(uint32_t, const unsigned char *, size_t);
static _Atomic(crc_fn) impl;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void pick(void)
{
	table_init();
	crc_fn f = crc_table;
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("sse4.2"))
		f = crc_hw;
#endif
	/* release: the table before the pointer that may use it */
	atomic_store_explicit(&impl, f, memory_order_release);
}

uint32_t ipcx__crc32c(uint32_t crc, const void *buf, size_t len)
{
	/* acquire: pairs with pick's release (no pthread_once per call: a log
	 * record computes two of these) */
	crc_fn f = atomic_load_explicit(&impl, memory_order_acquire);
	if (!f) {
		pthread_once(&once, pick);
		f = atomic_load_explicit(&impl, memory_order_acquire);
	}
	return ~f(~crc, buf, len);
}

void ipcx__crc32c_n(const void *const *buf, const uint32_t *len, uint32_t *crc, uint32_t n)
{
	crc_fn f = atomic_load_explicit(&impl, memory_order_acquire); /* as above */
	if (!f) {
		pthread_once(&once, pick);
		f = atomic_load_explicit(&impl, memory_order_acquire);
	}
	uint32_t j = 0;
#if defined(__x86_64__)
	for (; f == crc_hw && j + 4 <= n; j += 4) {
		uint32_t c[4] = { ~0u, ~0u, ~0u, ~0u }, m = len[j];
		for (int k = 1; k < 4; k++)
			m = len[j + k] < m ? len[j + k] : m;
		crc_hw4(c, (const unsigned char *const *)buf + j, m);
		for (int k = 0; k < 4; k++)
			crc[j + k] = ~(len[j + k] == m ? c[k]
						   : f(c[k], (const unsigned char *)buf[j + k] + m,
						       len[j + k] - m));
	}
#endif
	for (; j < n; j++)
		crc[j] = ~f(~0u, buf[j], len[j]);
}

uint32_t ipcx__crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&once, pick);
	return ~crc_table(~crc, buf, len);
}
