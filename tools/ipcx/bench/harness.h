/* Internals of the bench harness (not for mechanisms). */
#ifndef IPCX_BENCH_HARNESS_H
#define IPCX_BENCH_HARNESS_H

#include "bench.h"

#define BENCH_MAX_MECHS 64

unsigned bench_mechs(const struct bench_mech ***out);
const struct bench_mech *bench_find(const char *name);

#endif
