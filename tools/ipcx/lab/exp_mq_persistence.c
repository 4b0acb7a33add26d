/*
 * mq-persistence: what durability costs, and what a crash loses.
 *  1. 64-byte messages sent and received in batches of 64 by one process:
 *     the in-memory mailbox, the persistent one in each sync mode, and, as
 *     the floor of "writing to a file", stores into a memory-mapped file.
 *  2. A sender is killed (-9) mid-stream in each sync mode; the shared
 *     memory is then removed and the mailbox recovered from its log; every
 *     acknowledged message must be there.
 * Logs go to /var/tmp (a real file system) and are removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "lab.h"

#define MSG 64
#define BATCH 64
#define RUN_NS 200000000.0
#define MAX_SAMPLES 200000

static char name[64], path[128];

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct perf {
	double msgs_per_s, p50, p99;
	int rc;
};

static struct perf measure_mq(int persistent, uint32_t sync)
{
	struct perf p = { 0, 0, 0, 0 };
	ipcx_mq_opts o = { .depth = BATCH, .max_msg = MSG, .sync = sync,
			   .log_path = persistent ? path : NULL };
	unlink(path);
	ipcx_mq *mq;
	if ((p.rc = ipcx_mq_create(&mq, name, &o)))
		return p;
	double *lat = malloc(MAX_SAMPLES * sizeof *lat);
	if (!lat) {
		p.rc = -ENOMEM;
		goto out;
	}
	char buf[MSG] = { 0 };
	ipcx_wait nb = IPCX_WAIT_INIT(IPCX_WAIT_NONBLOCK);
	uint64_t n = 0, ns = 0;
	double t0 = lab_now_ns(), t = t0;
	while (t - t0 < RUN_NS) {
		for (int i = 0; i < BATCH; i++) {
			double a = lab_now_ns();
			if ((p.rc = ipcx_mq_send(mq, buf, MSG, 0, NULL)))
				goto out;
			if (ns < MAX_SAMPLES)
				lat[ns++] = lab_now_ns() - a;
		}
		for (int i = 0; i < BATCH; i++)
			if (ipcx_mq_recv(mq, buf, MSG, NULL, &nb) != MSG) {
				p.rc = -EBADMSG;
				goto out;
			}
		n += BATCH;
		t = lab_now_ns();
	}
	p.msgs_per_s = (double)n / ((t - t0) / 1e9);
	qsort(lat, ns, sizeof *lat, cmp_d);
	p.p50 = lat[ns / 2];
	p.p99 = lat[ns * 99 / 100];
out:
	free(lat);
	ipcx_mq_close(mq);
	ipcx_mq_unlink(name);
	unlink(path);
	return p;
}

/* The floor: 8-byte header + 64-byte payload stored into a mapped file. */
static struct perf measure_mmap(void)
{
	struct perf p = { 0, 0, 0, 0 };
	const size_t len = 64u << 20, rec = 8 + MSG;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)len) < 0) {
		p.rc = -errno;
		if (fd >= 0)
			close(fd);
		return p;
	}
	unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		p.rc = -errno;
		unlink(path);
		return p;
	}
	char buf[MSG] = { 0 };
	uint64_t n = 0, off = 0;
	double t0 = lab_now_ns(), t = t0;
	while (t - t0 < RUN_NS) {
		for (int i = 0; i < BATCH; i++) {
			if (off + rec > len)
				off = 0;
			uint64_t h = n + (uint64_t)i;
			memcpy(m + off, &h, 8);
			memcpy(m + off + 8, buf, MSG);
			off += rec;
		}
		n += BATCH;
		t = lab_now_ns();
	}
	p.msgs_per_s = (double)n / ((t - t0) / 1e9);
	munmap(m, len);
	unlink(path);
	return p;
}

/* ---- kill -9 during writes -------------------------------------------- */

struct crash {
	_Atomic uint64_t acked;
};

static int crash_sender(void *arg)
{
	struct crash *c = arg;
	ipcx_mq *mq;
	if (ipcx_mq_open(&mq, name, NULL))
		return 2;
	char buf[MSG] = { 0 };
	for (uint64_t i = 0;; i++) {
		memcpy(buf, &i, sizeof i);
		if (ipcx_mq_send(mq, buf, MSG, (unsigned)(i % 8), NULL))
			return 3;
		atomic_store(&c->acked, i + 1);
	}
}

/* Returns recovered - acked (>= 0 when nothing acknowledged was lost), or
 * a large negative number on error. */
static long crash_run(uint32_t sync, uint64_t *acked, uint64_t *recovered)
{
	struct crash *c = mmap(NULL, sizeof *c, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			       -1, 0);
	if (c == MAP_FAILED)
		return -1000000;
	atomic_store(&c->acked, 0);
	unlink(path);
	ipcx_mq_opts o = { .depth = 1u << 16, .max_msg = MSG, .sync = sync, .log_path = path };
	ipcx_mq *mq;
	long rc = -1000000;
	if (ipcx_mq_create(&mq, name, &o))
		goto out;
	int pid = lab_spawn(crash_sender, c);
	if (pid < 0)
		goto out_close;
	struct timespec ts = { 0, 100 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	kill(pid, SIGKILL);
	lab_wait(pid, 2000);
	*acked = atomic_load(&c->acked);
	/* Everything gone but the log. */
	ipcx_mq_close(mq);
	ipcx_mq_unlink(name);
	if (ipcx_mq_create(&mq, name, &o))
		goto out;
	ipcx_mq_attr a;
	ipcx_mq_getattr(mq, &a);
	*recovered = a.recovered;
	rc = (long)a.recovered - (long)*acked;
out_close:
	ipcx_mq_close(mq);
	ipcx_mq_unlink(name);
out:
	unlink(path);
	munmap(c, sizeof *c);
	return rc;
}

static int mq_persistence_run(struct lab_out *out)
{
	snprintf(name, sizeof name, "lab-persist-%d", (int)getpid());
	snprintf(path, sizeof path, "/var/tmp/ipcx-lab-persist-%d.log", (int)getpid());
	static const char *const modes[] = { "none", "batch", "always" };
	struct perf mem = measure_mq(0, 0), per[3];
	for (uint32_t s = 0; s < 3; s++)
		per[s] = measure_mq(1, s);
	struct perf raw = measure_mmap();
	if (per[0].rc == -EMEDIUMTYPE) {
		lab_verdict(out, LAB_INCONCLUSIVE, "/var/tmp is not on a real file system here");
		return 0;
	}
	if (mem.rc || per[0].rc || per[1].rc || per[2].rc || raw.rc) {
		lab_fact(out, "error", "%s", ipcx_strerror(mem.rc ? mem.rc : per[0].rc ? per[0].rc
							 : per[1].rc ? per[1].rc
							 : per[2].rc ? per[2].rc : raw.rc));
		lab_verdict(out, LAB_INCONCLUSIVE, "a measurement failed");
		return 0;
	}
	lab_fact(out, "workload", "64-byte messages, one process, sent and received in batches of %d, "
				  "%.1f s per case; latency is of each send",
		 BATCH, RUN_NS / 1e9);
	char key[96];
	lab_fact(out, "in-memory mailbox", "%.0f msgs/s, send p50 %.0f ns, p99 %.0f ns",
		 mem.msgs_per_s, mem.p50, mem.p99);
	for (int s = 0; s < 3; s++) {
		snprintf(key, sizeof key, "persistent, sync %s", modes[s]);
		lab_fact(out, key, "%.0f msgs/s (%.3gx in-memory), send p50 %.0f ns, p99 %.0f ns",
			 per[s].msgs_per_s, per[s].msgs_per_s / mem.msgs_per_s, per[s].p50,
			 per[s].p99);
	}
	lab_fact(out, "stores into a memory-mapped file (no sync)", "%.0f msgs/s", raw.msgs_per_s);

	int lost_any = 0;
	char lost[128] = "";
	for (uint32_t s = 0; s < 3; s++) {
		uint64_t acked = 0, rec = 0;
		long d = crash_run(s, &acked, &rec);
		snprintf(key, sizeof key, "kill -9 after 100 ms, sync %s", modes[s]);
		if (d <= -1000000) {
			lab_fact(out, key, "could not run");
			lost_any = -1;
			continue;
		}
		lab_fact(out, key, "%llu acknowledged, %llu recovered from the log%s",
			 (unsigned long long)acked, (unsigned long long)rec,
			 d > 0 ? " (the extra one was written, not yet acknowledged)" : "");
		if (d < 0) {
			lost_any = 1;
			snprintf(lost + strlen(lost), sizeof lost - strlen(lost), " %s lost %ld;",
				 modes[s], -d);
		}
	}
	lab_fact(out, "not tested here", "power loss: it needs a machine to switch off. In sync "
					 "always each acknowledged send was fdatasync'ed first");
	if (lost_any < 0) {
		lab_verdict(out, LAB_INCONCLUSIVE, "a crash run could not be made");
	} else if (lost_any) {
		lab_verdict(out, LAB_DOES_NOT_HOLD, "acknowledged messages were lost:%s", lost);
	} else {
		lab_verdict(out, LAB_HOLDS_WITH_CORRECTIONS,
			    "Durability per message is expensive: fdatasync on every send ran at "
			    "%.3gx the in-memory rate, batching at %.3gx. But a process crash loses "
			    "nothing that reached the page cache: with no sync at all (%.3gx the "
			    "in-memory rate) every acknowledged message was recovered after kill -9. "
			    "Only power loss or a kernel crash needs the sync, and that is what the "
			    "modes trade.",
			    per[2].msgs_per_s / mem.msgs_per_s, per[1].msgs_per_s / mem.msgs_per_s,
			    per[0].msgs_per_s / mem.msgs_per_s);
	}
	return 0;
}

static const struct lab_experiment mq_persistence = {
	.name = "mq-persistence",
	.claim = "A durable message queue must fsync every message, which costs orders of magnitude "
		 "in throughput; without it, messages are lost when the process crashes.",
	.order = 43,
	.run = mq_persistence_run,
};
LAB_EXPERIMENT(mq_persistence)
