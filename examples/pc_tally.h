/*
 * Bookkeeping shared by the producer-consumer examples (bounded_buffer.c and
 * queue_pc.c): each consumer checks that it sees every producer's items in
 * order and tallies them; at the end the tallies prove that every item
 * arrived exactly once.  Lives in shared memory (MAP_SHARED).
 */
#ifndef PC_TALLY_H
#define PC_TALLY_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_PRODUCERS 16
#define MAX_CONSUMERS 16

/* [PRODUCERS [CONSUMERS [ITEMS_PER_PRODUCER]]], defaults 3 2 100000.  0, or
 * -1 after printing the usage. */
static inline int pc_args(int argc, char **argv, int *np, int *nc, uint64_t *items)
{
	*np = argc > 1 ? atoi(argv[1]) : 3;
	*nc = argc > 2 ? atoi(argv[2]) : 2;
	*items = argc > 3 ? strtoull(argv[3], NULL, 10) : 100000;
	if (*np < 1 || *np > MAX_PRODUCERS || *nc < 1 || *nc > MAX_CONSUMERS || *items < 1) {
		fprintf(stderr, "usage: %s [PRODUCERS<=16 [CONSUMERS<=16 [ITEMS>=1]]]\n", argv[0]);
		return -1;
	}
	return 0;
}

struct pc_tally {
	/* Per consumer and producer: how many items, and the sums of their
	 * sequence numbers and squares (loss or duplication changes them). */
	uint64_t got[MAX_CONSUMERS][MAX_PRODUCERS];
	uint64_t sum[MAX_CONSUMERS][MAX_PRODUCERS], sq[MAX_CONSUMERS][MAX_PRODUCERS];
	uint32_t bad[MAX_CONSUMERS];
};

/* One consumer's view: the last sequence number seen from each producer. */
struct pc_seen {
	int64_t last[MAX_PRODUCERS];
};

static inline void pc_seen_init(struct pc_seen *s)
{
	for (int p = 0; p < MAX_PRODUCERS; p++)
		s->last[p] = -1;
}

/* Consumer c received item (producer, seq): it must come after the previous
 * one from that producer (a subsequence of its items when there are several
 * consumers). */
static inline void pc_tally_item(struct pc_tally *t, struct pc_seen *s, int c, int np,
				 uint32_t producer, uint64_t seq)
{
	if (producer >= (uint32_t)np || (int64_t)seq <= s->last[producer]) {
		t->bad[c]++;
		return;
	}
	s->last[producer] = (int64_t)seq;
	t->got[c][producer]++;
	t->sum[c][producer] += seq;
	t->sq[c][producer] += seq * seq;
}

/* 0 if every producer's items 0..items-1 arrived exactly once; the number
 * of items received in *total. */
static inline int pc_tally_check(const struct pc_tally *t, int np, int nc, uint64_t items,
				 uint64_t *total)
{
	/* 0 + 1 + ... + (items-1) and the sum of squares, modulo 2^64 */
	uint64_t want_sum = items * (items - 1) / 2, want_sq = 0;
	for (uint64_t s = 0; s < items; s++)
		want_sq += s * s;
	int failed = 0;
	*total = 0;
	for (int p = 0; p < np; p++) {
		uint64_t n = 0, sum = 0, sq = 0;
		for (int c = 0; c < nc; c++) {
			n += t->got[c][p];
			sum += t->sum[c][p];
			sq += t->sq[c][p];
		}
		failed |= n != items || sum != want_sum || sq != want_sq;
		*total += n;
	}
	for (int c = 0; c < nc; c++)
		failed |= t->bad[c] != 0;
	return failed;
}

#endif
