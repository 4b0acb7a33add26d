/*
 * ipcx lab: experiments that check a textbook claim on this machine.
 *
 * An experiment states the claim, runs, records facts (measured values and
 * observations), and gives a verdict.  It must never hang: anything that can
 * block is bounded by a timeout, and children are reaped.  Facts are only
 * what was measured or observed in this run -- never a constant.
 */
#ifndef IPCX_LAB_H
#define IPCX_LAB_H

#include <stddef.h>

enum lab_verdict {
	LAB_HOLDS = 1,
	LAB_DOES_NOT_HOLD = 2,
	LAB_HOLDS_WITH_CORRECTIONS = 3,
	LAB_INCONCLUSIVE = 4, /* could not be checked here; the reason is a fact */
};

struct lab_out; /* opaque: collects facts for text or JSON output */

struct lab_experiment {
	const char *name;  /* "pipe-capacity" */
	const char *claim; /* the claim as a textbook puts it */
	int order;         /* position in `lab list` */
	/* Run; record facts and exactly one verdict.  0, or -errno if the
	 * experiment itself broke (that makes `ipcx lab run` exit non-zero). */
	int (*run)(struct lab_out *out);
};

void lab_register(const struct lab_experiment *e);

#define LAB_EXPERIMENT(var)                                                              \
	static void __attribute__((constructor)) var##_register(void) { lab_register(&var); }

/* A fact with a free-text value ("64 KiB (65536 bytes)"). */
void lab_fact(struct lab_out *out, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A numeric fact: value with a unit ("bytes", "ns", "msgs/s", ""). */
void lab_fact_num(struct lab_out *out, const char *key, double value, const char *unit);
/* The verdict and, for LAB_HOLDS_WITH_CORRECTIONS / LAB_DOES_NOT_HOLD, the
 * corrected statement (what is actually true). */
void lab_verdict(struct lab_out *out, enum lab_verdict v, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Small helpers for experiments. */
double lab_now_ns(void);
/* fork a child that runs fn(arg) and _exits with its return value. */
int lab_spawn(int (*fn)(void *), void *arg);
/* Wait for pid at most timeout_ms; kill -9 it if it is still running then.
 * Returns its exit status, 128+signal, or -ETIMEDOUT (after the kill). */
int lab_wait(int pid, int timeout_ms);

#endif
