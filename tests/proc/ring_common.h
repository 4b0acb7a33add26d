/* Message contents the ring process tests generate and verify: the whole
 * payload is a function of the sequence number, so a torn, lost, duplicated
 * or reordered message is caught byte for byte. */
#ifndef RING_COMMON_H
#define RING_COMMON_H

#include <stdint.h>
#include <string.h>

static inline uint64_t rc_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

/* Length of message seq, 0..maxlen (16 bytes at least, for the seq). */
static inline size_t rc_len(uint64_t seq, size_t maxlen)
{
	return 16 + (size_t)(rc_mix(seq) % (maxlen - 15));
}

static inline void rc_fill(uint8_t *p, size_t len, uint64_t seq)
{
	memcpy(p, &seq, 8);
	uint64_t x = rc_mix(seq + 1);
	for (size_t i = 8; i + 8 <= len; i += 8) {
		memcpy(p + i, &x, 8);
		x += 0x9e3779b97f4a7c15ull;
	}
	for (size_t i = len & ~7ul; i < len; i++)
		if (i >= 8)
			p[i] = (uint8_t)seq;
}

/* 1 if p holds message seq of length len. */
static inline int rc_check(const uint8_t *p, size_t len, uint64_t seq, size_t maxlen)
{
	uint64_t got;
	if (len != rc_len(seq, maxlen))
		return 0;
	memcpy(&got, p, 8);
	if (got != seq)
		return 0;
	uint64_t x = rc_mix(seq + 1);
	for (size_t i = 8; i + 8 <= len; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		if (v != x)
			return 0;
		x += 0x9e3779b97f4a7c15ull;
	}
	for (size_t i = len & ~7ul; i < len; i++)
		if (i >= 8 && p[i] != (uint8_t)seq)
			return 0;
	return 1;
}

#endif
