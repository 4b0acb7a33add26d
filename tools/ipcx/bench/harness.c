/*
 * The bench harness: fork, pin, run, time, gather.
 *
 * Every case runs in fresh processes forked from the tool.  A shared
 * anonymous mapping (struct control) carries the start barrier, the stop
 * signal and each process's results back to the parent.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../cpu.h"
#include "harness.h"

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- histogram: log-linear, 64 sub-buckets per power of two (±0.8%) ------ */

static unsigned hist_index(uint64_t v)
{
	if (v < HIST_SUB)
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - HIST_SUB_BITS;
	unsigned sub = (unsigned)(v >> shift) & (HIST_SUB - 1);
	return (shift + 1) * HIST_SUB + sub;
}

static uint64_t hist_value(unsigned idx)
{
	if (idx < HIST_SUB)
		return idx;
	unsigned shift = idx / HIST_SUB - 1;
	uint64_t sub = idx % HIST_SUB;
	uint64_t lo = (HIST_SUB + sub) << shift;
	return lo + ((1ull << shift) >> 1); /* bucket midpoint */
}

static void hist_add(struct hist *h, uint64_t v)
{
	unsigned i = hist_index(v);
	if (i >= HIST_BUCKETS)
		i = HIST_BUCKETS - 1;
	h->count[i]++;
	h->n++;
	if (v > h->max)
		h->max = v;
	if (!h->min || v < h->min)
		h->min = v;
}

static uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t want = (uint64_t)((double)h->n * q);
	if (want >= h->n)
		want = h->n ? h->n - 1 : 0;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->count[i];
		if (seen > want) {
			uint64_t v = hist_value(i);
			return v > h->max ? h->max : v < h->min ? h->min : v;
		}
	}
	return h->max;
}

/* ---- control block ------------------------------------------------------- */

#define MAX_PROCS 16

struct proc_result {
	int status;        /* 0 ok, else -errno */
	char what[96];     /* the failing step */
	uint64_t msgs;     /* messages moved (sent by A / received by B) */
	uint64_t warm_msgs;/* received before the window opened (stream B) */
	uint64_t t_first;  /* stream B: window start */
	uint64_t t_last;   /* stream B: last data message */
	uint64_t cpu_ns;   /* user + system */
	uint64_t csw;      /* voluntary + involuntary context switches */
	uint64_t bad_seq;  /* out-of-order or duplicate messages seen */
};

struct control {
	_Atomic unsigned ready;
	_Atomic unsigned go;
	_Atomic unsigned producers_done;
	uint64_t t_start;
	uint64_t t_end;   /* producers stop sending at this time */
	uint64_t warmup_ns;
	struct proc_result res[MAX_PROCS];
	struct hist hist; /* ping-pong A */
};

static void rusage_now(uint64_t *cpu, uint64_t *csw)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	*cpu = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
	*csw = (uint64_t)(ru.ru_nvcsw + ru.ru_nivcsw);
}

static void fail(struct proc_result *res, int rc, const char *what)
{
	res->status = rc ? rc : -EIO;
	snprintf(res->what, sizeof res->what, "%s", what);
}

static void barrier(struct control *ctl, unsigned nprocs)
{
	atomic_fetch_add(&ctl->ready, 1);
	while (!atomic_load_explicit(&ctl->go, memory_order_acquire)) {
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL);
	}
	(void)nprocs;
}

#define MIN_SAMPLES 16

static int pingpong_a(void *st, struct bench_proc *p, struct control *ctl, struct proc_result *res)
{
	const struct bench_mech *m = p->c->mech;
	uint64_t seq = 1, now = bench_now_ns();
	uint64_t warm_end = now + ctl->warmup_ns;
	uint64_t end = warm_end + (ctl->t_end - ctl->t_start);
	for (;;) {
		uint64_t t0 = now;
		int rc = m->send(st, p, seq);
		if (rc) {
			fail(res, rc, "send");
			return rc;
		}
		unsigned prod;
		uint64_t got;
		rc = m->recv(st, p, &prod, &got);
		if (rc) {
			fail(res, rc, "recv");
			return rc;
		}
		if (got != seq) {
			fail(res, -EBADMSG, "echo carried the wrong sequence number");
			return -EBADMSG;
		}
		now = bench_now_ns();
		if (t0 >= warm_end) {
			hist_add(&ctl->hist, (now - t0) / 2);
			res->msgs++;
		}
		seq++;
		/* A stalled machine may eat the whole window: keep going until a
		 * few samples exist, so every case reports something measured. */
		if (now >= end && res->msgs >= MIN_SAMPLES)
			break;
	}
	int rc = m->send(st, p, BENCH_SEQ_STOP);
	if (rc)
		fail(res, rc, "send stop");
	return rc;
}

static int pingpong_b(void *st, struct bench_proc *p, struct proc_result *res)
{
	const struct bench_mech *m = p->c->mech;
	uint64_t expect = 1;
	for (;;) {
		unsigned prod;
		uint64_t seq;
		int rc = m->recv(st, p, &prod, &seq);
		if (rc) {
			fail(res, rc, "recv");
			return rc;
		}
		if (seq == BENCH_SEQ_STOP)
			return 0;
		if (seq != expect) {
			res->bad_seq++;
			fail(res, -EBADMSG, "message lost or reordered");
			return -EBADMSG;
		}
		expect++;
		rc = m->send(st, p, seq);
		if (rc) {
			fail(res, rc, "send");
			return rc;
		}
		res->msgs++;
	}
}

static int stream_a(void *st, struct bench_proc *p, struct control *ctl, struct proc_result *res)
{
	const struct bench_mech *m = p->c->mech;
	uint64_t end = ctl->t_end, seq = 1;
	int rc = 0;
	for (;; seq++) {
		rc = m->send(st, p, seq);
		if (rc) {
			fail(res, rc, "send");
			return rc;
		}
		/* Look at the clock every 32 messages, or every one when large. */
		if (((seq & 31) == 0 || p->c->size >= 65536) && bench_now_ns() >= end)
			break;
	}
	if (m->flush && (rc = m->flush(st, p)) != 0) {
		fail(res, rc, "flush");
		return rc;
	}
	res->msgs = seq;
	atomic_fetch_add(&ctl->producers_done, 1);
	if (p->index == 0) {
		/* Every producer's data goes before the first STOP. */
		while (atomic_load(&ctl->producers_done) < p->c->producers) {
			struct timespec ts = { 0, 50000 };
			nanosleep(&ts, NULL);
		}
		for (unsigned i = 0; i < p->c->consumers; i++) {
			rc = m->send(st, p, BENCH_SEQ_STOP);
			if (rc) {
				fail(res, rc, "send stop");
				return rc;
			}
		}
	}
	return 0;
}

static int stream_b(void *st, struct bench_proc *p, struct control *ctl, struct proc_result *res)
{
	const struct bench_mech *m = p->c->mech;
	uint64_t *last = calloc(p->c->producers, sizeof *last);
	if (!last) {
		fail(res, -ENOMEM, "calloc");
		return -ENOMEM;
	}
	uint64_t window = ctl->t_start + ctl->warmup_ns;
	int rc = 0;
	for (;;) {
		unsigned prod;
		uint64_t seq;
		rc = m->recv(st, p, &prod, &seq);
		if (rc) {
			fail(res, rc, "recv");
			break;
		}
		if (seq == BENCH_SEQ_STOP)
			break;
		/* Per producer, sequence numbers must rise by exactly one for a
		 * lone consumer and strictly for each of several consumers. */
		if (prod >= p->c->producers || seq <= last[prod] ||
		    (p->c->consumers == 1 && seq != last[prod] + 1)) {
			res->bad_seq++;
			rc = -EBADMSG;
			fail(res, rc, "message lost, duplicated or reordered");
			break;
		}
		last[prod] = seq;
		res->msgs++;
		if (!res->t_first && ((res->msgs & 15) == 0 || p->c->size >= 65536)) {
			uint64_t now = bench_now_ns();
			if (now >= window) {
				res->t_first = now;
				res->warm_msgs = res->msgs;
			}
		}
	}
	res->t_last = bench_now_ns();
	if (!res->t_first || res->msgs - res->warm_msgs < MIN_SAMPLES) {
		/* The stream (nearly) ended inside the warm-up (a stalled machine
		 * or very large messages): time it all rather than report nothing. */
		res->t_first = ctl->t_start;
		res->warm_msgs = 0;
	}
	free(last);
	return rc;
}

static int child_main(const struct bench_case *c, void *st, struct control *ctl, int slot,
		      enum bench_role role, unsigned index, int cpu)
{
	struct proc_result *res = &ctl->res[slot];
	struct bench_proc p = { .role = role, .index = index, .c = c };
	const struct bench_mech *m = c->mech;
	cpu_pin(cpu);
	int rc = m->attach ? m->attach(st, &p) : 0;
	if (rc) {
		fail(res, rc, "attach");
		atomic_fetch_add(&ctl->ready, 1);
		return 1;
	}
	barrier(ctl, 0);
	uint64_t cpu0, csw0, cpu1, csw1;
	rusage_now(&cpu0, &csw0);
	if (c->mode == BENCH_PINGPONG)
		rc = role == BENCH_A ? pingpong_a(st, &p, ctl, res) : pingpong_b(st, &p, res);
	else
		rc = role == BENCH_A ? stream_a(st, &p, ctl, res) : stream_b(st, &p, ctl, res);
	rusage_now(&cpu1, &csw1);
	res->cpu_ns = cpu1 - cpu0;
	res->csw = csw1 - csw0;
	if (m->detach)
		m->detach(st, &p);
	return rc ? 1 : 0;
}

int bench_run_case(const struct bench_case *c, const struct bench_opts *o, struct bench_result *out)
{
	memset(out, 0, sizeof *out);
	const struct bench_mech *m = c->mech;
	unsigned np = c->mode == BENCH_PINGPONG ? 1 : c->producers;
	unsigned nc = c->mode == BENCH_PINGPONG ? 1 : c->consumers;
	if (np + nc > MAX_PROCS) {
		snprintf(out->reason, sizeof out->reason, "more than %d processes", MAX_PROCS);
		out->status = BENCH_FAILED;
		return -EINVAL;
	}
	void *st = NULL;
	int rc = m->setup(c, &st, out->reason, sizeof out->reason);
	if (rc == BENCH_SKIP) {
		out->status = BENCH_SKIPPED;
		return 0;
	}
	if (rc) {
		out->status = BENCH_FAILED;
		if (!out->reason[0])
			snprintf(out->reason, sizeof out->reason, "setup: %s", strerror(-rc));
		return rc;
	}
	struct control *ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ctl == MAP_FAILED) {
		m->teardown(st);
		out->status = BENCH_FAILED;
		snprintf(out->reason, sizeof out->reason, "mmap: %s", strerror(errno));
		return -errno;
	}
	uint64_t run_ns = (uint64_t)(o->seconds * 1e9);
	ctl->warmup_ns = run_ns / 5 < 20000000ull ? run_ns / 5 : 20000000ull;

	int cpus[64], ncpu = cpu_allowed(cpus, 64);
	pid_t pids[MAX_PROCS];
	unsigned n = 0;
	fflush(NULL);
	for (unsigned i = 0; i < np + nc; i++) {
		enum bench_role role = i < np ? BENCH_A : BENCH_B;
		unsigned index = i < np ? i : i - np;
		/* A side on the first CPU, B side on the second (or all on one). */
		int cpu = -1;
		if (ncpu > 0)
			cpu = c->same_cpu || ncpu == 1 ? cpus[0]
			      : role == BENCH_A	    ? cpus[index % ncpu]
						    : cpus[(index + 1) % ncpu];
		pid_t pid = fork();
		if (pid == 0)
			_exit(child_main(c, st, ctl, (int)i, role, index, cpu));
		if (pid < 0)
			break;
		pids[n++] = pid;
	}
	/* Start when all are attached (or some failed to). */
	uint64_t deadline = bench_now_ns() + 10000000000ull;
	while (atomic_load(&ctl->ready) < n && bench_now_ns() < deadline) {
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL);
	}
	ctl->t_start = bench_now_ns();
	ctl->t_end = ctl->t_start + ctl->warmup_ns + run_ns;
	atomic_store_explicit(&ctl->go, 1, memory_order_release);

	/* Reap; a failed child or an overrun kills the rest. */
	deadline = ctl->t_end + 20000000000ull + run_ns * 4;
	unsigned alive = n;
	int killed = 0, timed_out = 0;
	while (alive) {
		int stw;
		pid_t pid = waitpid(-1, &stw, WNOHANG);
		if (pid > 0) {
			for (unsigned i = 0; i < n; i++)
				if (pids[i] == pid) {
					pids[i] = 0;
					alive--;
				}
			if ((!WIFEXITED(stw) || WEXITSTATUS(stw)) && !killed) {
				for (unsigned i = 0; i < n; i++)
					if (pids[i])
						kill(pids[i], SIGKILL);
				killed = 1;
			}
			continue;
		}
		if (bench_now_ns() > deadline && !killed) {
			for (unsigned i = 0; i < n; i++)
				if (pids[i])
					kill(pids[i], SIGKILL);
			killed = timed_out = 1;
		}
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	m->teardown(st);

	out->status = BENCH_OK;
	for (unsigned i = 0; i < np + nc; i++) {
		struct proc_result *r = &ctl->res[i];
		if (r->status) {
			out->status = BENCH_FAILED;
			snprintf(out->reason, sizeof out->reason, "%s %u: %s: %s",
				 i < np ? "sender" : "receiver", i < np ? i : i - np, r->what,
				 strerror(-r->status));
			break;
		}
	}
	if (out->status == BENCH_OK && (timed_out || n < np + nc)) {
		out->status = BENCH_FAILED;
		snprintf(out->reason, sizeof out->reason, "%s",
			 timed_out ? "timed out (a process hung)" : "fork failed");
	}
	if (out->status == BENCH_OK && c->mode == BENCH_PINGPONG) {
		const struct hist *h = &ctl->hist;
		out->samples = h->n;
		out->p50 = hist_quantile(h, 0.50);
		out->p99 = hist_quantile(h, 0.99);
		out->p999 = hist_quantile(h, 0.999);
		out->max = h->max;
		out->min = h->min;
		if (!h->n) {
			out->status = BENCH_FAILED;
			snprintf(out->reason, sizeof out->reason, "no sample in the window");
		}
	} else if (out->status == BENCH_OK) {
		uint64_t sent = 0, recvd = 0, cpu = 0, csw = 0;
		double rate = 0;
		for (unsigned i = 0; i < np + nc; i++) {
			struct proc_result *r = &ctl->res[i];
			cpu += r->cpu_ns;
			csw += r->csw;
			if (i < np) {
				sent += r->msgs;
				continue;
			}
			recvd += r->msgs;
			if (r->t_first && r->t_last > r->t_first && r->msgs > r->warm_msgs)
				rate += (double)(r->msgs - r->warm_msgs) /
					((double)(r->t_last - r->t_first) / 1e9);
		}
		if (sent != recvd) {
			out->status = BENCH_FAILED;
			snprintf(out->reason, sizeof out->reason,
				 "%llu messages sent, %llu received",
				 (unsigned long long)sent, (unsigned long long)recvd);
		} else if (rate <= 0) {
			out->status = BENCH_FAILED;
			snprintf(out->reason, sizeof out->reason, "too few messages to time");
		}
		out->samples = recvd;
		out->msgs_per_s = rate;
		out->mib_per_s = rate * (double)c->size / (1024.0 * 1024.0);
		out->csw_per_msg = recvd ? (double)csw / (double)recvd : 0;
		out->cpu_ns_per_msg = recvd ? (double)cpu / (double)recvd : 0;
	}
	munmap(ctl, sizeof *ctl);
	return out->status == BENCH_FAILED ? -EIO : 0;
}
