/* Shared by the N x M queue tests (processes and threads): producers send
 * numbered, checksummed messages; consumers check per-producer order and
 * mark each (producer, seq) seen exactly once. */
#ifndef QUEUE_LOAD_H
#define QUEUE_LOAD_H

#include <stdatomic.h>
#include <string.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

#define QL_MAX_PRODUCERS 8
#define QL_MSG 48

struct ql_msg {
	uint32_t producer;
	uint32_t len;
	uint64_t seq;
	uint64_t check; /* seq * golden ^ producer, repeated at the end */
};

struct ql_shared {
	_Atomic uint64_t received;
	_Atomic uint32_t errors;
	_Atomic uint8_t seen[QL_MAX_PRODUCERS][1u << 20]; /* per (producer, seq) */
};

static inline uint64_t ql_check(uint32_t p, uint64_t seq)
{
	return seq * 0x9e3779b97f4a7c15ull ^ p;
}

/* Send per_producer messages with the given handle. */
static inline int ql_produce(ipcx_queue *q, uint32_t p, uint64_t per_producer)
{
	unsigned char buf[QL_MSG];
	for (uint64_t s = 0; s < per_producer; s++) {
		uint32_t len = (uint32_t)(sizeof(struct ql_msg) + 8 +
					  s % (QL_MSG - sizeof(struct ql_msg) - 7));
		struct ql_msg m = {p, len, s, ql_check(p, s)};
		memcpy(buf, &m, sizeof m);
		memcpy(buf + len - 8, &m.check, 8);
		int rc = ipcx_queue_send(q, buf, len, NULL);
		if (rc)
			return rc;
	}
	return 0;
}

/* Receive until total messages have been received by all consumers
 * together, checking everything. */
static inline int ql_consume(ipcx_queue *q, struct ql_shared *sh, uint64_t total)
{
	unsigned char buf[QL_MSG];
	int64_t last[QL_MAX_PRODUCERS];
	for (int i = 0; i < QL_MAX_PRODUCERS; i++)
		last[i] = -1;
	ipcx_wait w = {IPCX_WAIT_ADAPTIVE, 0, 20000000};
	while (atomic_load(&sh->received) < total) {
		ssize_t n = ipcx_queue_recv(q, buf, sizeof buf, &w);
		if (n == -ETIMEDOUT)
			continue;
		if (n == -EPIPE) /* every producer has finished: the rest is counted */
			break;
		if (n < 0)
			return (int)n;
		struct ql_msg m;
		uint64_t tail;
		if ((size_t)n < sizeof m + 8) {
			atomic_fetch_add(&sh->errors, 1);
			continue;
		}
		memcpy(&m, buf, sizeof m);
		memcpy(&tail, buf + n - 8, 8);
		if (m.len != (uint32_t)n || m.producer >= QL_MAX_PRODUCERS ||
		    m.check != ql_check(m.producer, m.seq) || tail != m.check ||
		    m.seq >= (1u << 20) || (int64_t)m.seq <= last[m.producer] ||
		    atomic_exchange(&sh->seen[m.producer][m.seq], 1) != 0) {
			atomic_fetch_add(&sh->errors, 1);
			continue;
		}
		last[m.producer] = (int64_t)m.seq;
		atomic_fetch_add(&sh->received, 1);
	}
	return 0;
}

/* After the run: every (producer, seq) seen once. */
static inline int ql_verify(struct ql_shared *sh, unsigned producers, uint64_t per)
{
	if (atomic_load(&sh->errors))
		return -1;
	for (unsigned p = 0; p < producers; p++)
		for (uint64_t s = 0; s < per; s++)
			if (!atomic_load_explicit(&sh->seen[p][s], memory_order_relaxed))
				return -2;
	return 0;
}

#endif
