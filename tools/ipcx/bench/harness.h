/* Internals of the bench harness (not for mechanisms). */
#ifndef IPCX_BENCH_HARNESS_H
#define IPCX_BENCH_HARNESS_H

#include "bench.h"

#define BENCH_MAX_MECHS 64

#define HIST_SUB_BITS 6u
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS (HIST_SUB * 40u) /* up to ~2^40 ns */

struct hist {
	uint64_t n, min, max;
	uint64_t count[HIST_BUCKETS];
};

struct bench_opts {
	double seconds;
	unsigned repeat;
};

enum bench_status { BENCH_OK = 0, BENCH_SKIPPED = 1, BENCH_FAILED = 2 };

struct bench_result {
	enum bench_status status;
	char reason[200];
	uint64_t samples;
	/* ping-pong: one-way latency (round trip / 2), ns */
	uint64_t p50, p99, p999, max, min;
	/* stream */
	double msgs_per_s, mib_per_s, csw_per_msg, cpu_ns_per_msg;
};

uint64_t bench_now_ns(void);
int bench_run_case(const struct bench_case *c, const struct bench_opts *o, struct bench_result *out);
unsigned bench_mechs(const struct bench_mech ***out);
const struct bench_mech *bench_find(const char *name);

#endif
