/*
 * mq-priority: priority order, and starvation of a low-priority sender by a
 * flood, in an ipcx mailbox with no protection, with the fair share, and
 * with the fair share plus per-sender shaping.  Three processes per run: a
 * flooder (priority 10, as fast as it can), a quiet sender (priority 1, one
 * message every 2 ms, each send allowed 2 ms), and a receiver that spends
 * 20 us on each message (so the flood is more than it can take).
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "lab.h"

#define RUN_NS 400000000.0
#define WORK_NS 20000.0
#define QUIET_EVERY_NS 2000000.0

struct shared {
	_Atomic int stop;
	_Atomic int ready;
	char name[64];
	uint64_t quiet_tried, quiet_sent;
	uint64_t got_flood, got_quiet;
	double quiet_lat_sum, quiet_lat_max;
};

struct msg {
	uint32_t who; /* 0 flood, 1 quiet */
	uint32_t pad;
	double sent_ns;
};

static int open_wait(struct shared *sh, ipcx_mq **mq)
{
	atomic_fetch_add(&sh->ready, 1);
	return ipcx_mq_open(mq, sh->name, NULL);
}

static int flooder(void *arg)
{
	struct shared *sh = arg;
	ipcx_mq *mq;
	if (open_wait(sh, &mq))
		return 2;
	/* adaptive: refills a freed slot within microseconds, as a flood does */
	ipcx_wait w = { IPCX_WAIT_ADAPTIVE, 0, 50 * 1000 * 1000 };
	struct msg m = { 0, 0, 0 };
	while (!atomic_load(&sh->stop)) {
		m.sent_ns = lab_now_ns();
		(void)ipcx_mq_send(mq, &m, sizeof m, 10, &w);
	}
	ipcx_mq_close(mq);
	return 0;
}

static int quiet(void *arg)
{
	struct shared *sh = arg;
	ipcx_mq *mq;
	if (open_wait(sh, &mq))
		return 2;
	ipcx_wait w = { IPCX_WAIT_BLOCK, 0, 2 * 1000 * 1000 };
	struct msg m = { 1, 0, 0 };
	double next = lab_now_ns();
	while (!atomic_load(&sh->stop)) {
		m.sent_ns = lab_now_ns();
		sh->quiet_tried++;
		if (ipcx_mq_send(mq, &m, sizeof m, 1, &w) == 0)
			sh->quiet_sent++;
		next += QUIET_EVERY_NS;
		double now = lab_now_ns();
		if (next > now) {
			struct timespec ts = { 0, (long)(next - now) };
			nanosleep(&ts, NULL);
		}
	}
	ipcx_mq_close(mq);
	return 0;
}

static int receiver(void *arg)
{
	struct shared *sh = arg;
	ipcx_mq *mq;
	if (open_wait(sh, &mq))
		return 2;
	ipcx_wait w = { IPCX_WAIT_ADAPTIVE, 0, 50 * 1000 * 1000 };
	struct msg m;
	while (!atomic_load(&sh->stop)) {
		if (ipcx_mq_recv(mq, &m, sizeof m, NULL, &w) != (int)sizeof m)
			continue;
		double now = lab_now_ns();
		if (m.who == 1) {
			sh->got_quiet++;
			double lat = now - m.sent_ns;
			sh->quiet_lat_sum += lat;
			if (lat > sh->quiet_lat_max)
				sh->quiet_lat_max = lat;
		} else {
			sh->got_flood++;
		}
		while (lab_now_ns() - now < WORK_NS)
			; /* the receiver's work on each message */
	}
	ipcx_mq_close(mq);
	return 0;
}

struct result {
	uint64_t tried, sent, got_quiet, got_flood, fair_waits, shaped;
	double lat_mean, lat_max;
	int ok;
};

static struct result run(struct shared *sh, uint32_t fair, uint64_t shape_rate)
{
	struct result r = { 0 };
	memset(sh, 0, sizeof *sh);
	snprintf(sh->name, sizeof sh->name, "lab-prio-%d", (int)getpid());
	ipcx_mq_opts o = { .depth = 64, .max_msg = 64, .fair = fair };
	o.shape_sender.msgs_per_s = shape_rate;
	o.shape_sender.burst_msgs = 8;
	ipcx_mq *mq;
	if (ipcx_mq_create(&mq, sh->name, &o))
		return r;
	int pids[3] = { lab_spawn(receiver, sh), lab_spawn(flooder, sh), lab_spawn(quiet, sh) };
	double t0 = lab_now_ns();
	while (lab_now_ns() - t0 < RUN_NS) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	atomic_store(&sh->stop, 1);
	r.ok = 1;
	for (int i = 0; i < 3; i++)
		if (pids[i] < 0 || lab_wait(pids[i], 3000) != 0)
			r.ok = 0;
	ipcx_mq_attr a;
	if (!ipcx_mq_getattr(mq, &a)) {
		r.fair_waits = a.fair_waits;
		r.shaped = a.shaped;
	}
	ipcx_mq_close(mq);
	ipcx_mq_unlink(sh->name);
	r.tried = sh->quiet_tried;
	r.sent = sh->quiet_sent;
	r.got_quiet = sh->got_quiet;
	r.got_flood = sh->got_flood;
	r.lat_mean = sh->got_quiet ? sh->quiet_lat_sum / (double)sh->got_quiet : 0;
	r.lat_max = sh->quiet_lat_max;
	return r;
}

static void report(struct lab_out *out, const char *label, const struct result *r)
{
	char key[128];
	snprintf(key, sizeof key, "%s: quiet sender", label);
	if (r->got_quiet)
		lab_fact(out, key,
			 "%llu of %llu sends accepted, %llu received; latency mean %.2f ms, max %.2f ms",
			 (unsigned long long)r->sent, (unsigned long long)r->tried,
			 (unsigned long long)r->got_quiet, r->lat_mean / 1e6, r->lat_max / 1e6);
	else
		lab_fact(out, key, "%llu of %llu sends accepted, none received",
			 (unsigned long long)r->sent, (unsigned long long)r->tried);
	snprintf(key, sizeof key, "%s: flood messages received", label);
	lab_fact(out, key, "%llu (fair-share waits %llu, shaped sends %llu)",
		 (unsigned long long)r->got_flood, (unsigned long long)r->fair_waits,
		 (unsigned long long)r->shaped);
}

/* Starved: fewer than half its messages through, or waiting more than
 * 10 ms on average (five times its sending interval). */
static int starved(const struct result *r)
{
	return (double)r->got_quiet < 0.5 * (double)r->tried || r->lat_mean > 10e6;
}

/* Priority order in an ipcx mailbox and a POSIX queue: 1 if right. */
static int order_check(struct lab_out *out)
{
	static const unsigned prios[] = { 3, 1, 7, 1, 7, 0, 3 };
	const unsigned n = sizeof prios / sizeof prios[0];
	char name[64];
	snprintf(name, sizeof name, "lab-order-%d", (int)getpid());
	ipcx_mq *mq;
	int good = 0;
	if (ipcx_mq_create(&mq, name, NULL) == 0) {
		for (unsigned i = 0; i < n; i++)
			ipcx_mq_send(mq, &i, sizeof i, prios[i], NULL);
		char got[64] = "";
		ipcx_wait nb = IPCX_WAIT_INIT(IPCX_WAIT_NONBLOCK);
		unsigned v, p;
		while (ipcx_mq_recv(mq, &v, sizeof v, &p, &nb) == (int)sizeof v)
			snprintf(got + strlen(got), sizeof got - strlen(got), "%u/%u ", p, v);
		good = !strcmp(got, "7/2 7/4 3/0 3/6 1/1 1/3 0/5 ");
		lab_fact(out, "ipcx: priority/index received (sent 3,1,7,1,7,0,3)", "%s", got);
		ipcx_mq_close(mq);
		ipcx_mq_unlink(name);
	}
	char pname[64];
	snprintf(pname, sizeof pname, "/ipcx-lab-order-%d", (int)getpid());
	struct mq_attr a = { .mq_maxmsg = 8, .mq_msgsize = 8 };
	mqd_t q = mq_open(pname, O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK, 0600, &a);
	if (q != (mqd_t)-1) {
		for (unsigned i = 0; i < n; i++)
			mq_send(q, (const char *)&i, sizeof i, prios[i]);
		char got[64] = "", buf[8];
		unsigned p;
		while (mq_receive(q, buf, sizeof buf, &p) == (ssize_t)sizeof(unsigned)) {
			unsigned v;
			memcpy(&v, buf, sizeof v);
			snprintf(got + strlen(got), sizeof got - strlen(got), "%u/%u ", p, v);
		}
		lab_fact(out, "posix mq: priority/index received", "%s", got);
		mq_close(q);
		mq_unlink(pname);
	}
	return good;
}

static int mq_priority_run(struct lab_out *out)
{
	int ordered = order_check(out);
	struct shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
				 -1, 0);
	if (sh == MAP_FAILED)
		return -errno;
	lab_fact(out, "setup", "depth 64; flooder at priority 10 as fast as it can; quiet sender at "
			      "priority 1 every 2 ms (2 ms per send); receiver 20 us per message; "
			      "%.1f s per run",
		 RUN_NS / 1e9);
	struct result plain = run(sh, 0, 0);
	struct result fair = run(sh, 1, 0);
	struct result shaped = run(sh, 1, 10000);
	munmap(sh, sizeof *sh);
	if (!plain.ok || !fair.ok || !shaped.ok || !plain.tried || !shaped.tried) {
		lab_verdict(out, LAB_INCONCLUSIVE, "a run did not complete");
		return 0;
	}
	report(out, "no protection", &plain);
	report(out, "fair share", &fair);
	report(out, "fair share + shaping 10000 msgs/s per sender", &shaped);
	double through = (double)plain.got_quiet / (double)plain.tried;
	double served = (double)shaped.got_quiet / (double)shaped.tried;
	lab_fact(out, "starved means", "fewer than half of the quiet sender's messages received, "
				       "or a mean latency above 10 ms (five sending intervals)");
	if (!ordered) {
		lab_verdict(out, LAB_DOES_NOT_HOLD, "ipcx did not deliver in priority order (see facts)");
	} else if (starved(&plain) && !starved(&shaped)) {
		lab_verdict(out, LAB_HOLDS,
			    "Highest priority first, FIFO within a priority (ipcx and POSIX alike). "
			    "Under the flood the quiet sender was starved: %.0f%% received, mean "
			    "latency %.1f ms. The fair share keeps room for it in the mailbox but strict "
			    "priority still serves the flood first (mean latency %.1f ms). Shaping each "
			    "sender below what the receiver can take serves both: %.0f%% received, mean "
			    "latency %.2f ms.",
			    through * 100, plain.lat_mean / 1e6, fair.lat_mean / 1e6, served * 100,
			    shaped.lat_mean / 1e6);
	} else if (!starved(&plain)) {
		lab_verdict(out, LAB_HOLDS_WITH_CORRECTIONS,
			    "Highest priority first, FIFO within a priority; here the flood delayed the "
			    "quiet sender rather than starving it (%.0f%% received, mean latency %.2f "
			    "ms): the flooder could not keep the mailbox full all the time (two CPUs "
			    "for three busy processes). The fair share brought its latency to %.2f ms "
			    "and per-sender shaping to %.2f ms.",
			    through * 100, plain.lat_mean / 1e6, fair.lat_mean / 1e6,
			    shaped.lat_mean / 1e6);
	} else {
		lab_verdict(out, LAB_HOLDS,
			    "Highest priority first, FIFO within a priority; the flood starved the quiet "
			    "sender, and on this machine even shaping at 10000 msgs/s did not prevent it "
			    "(%.0f%% received, mean latency %.2f ms).",
			    served * 100, shaped.lat_mean / 1e6);
	}
	return 0;
}

static const struct lab_experiment mq_priority = {
	.name = "mq-priority",
	.claim = "A priority message queue delivers the highest priority first and FIFO within a "
		 "priority; a flood of high-priority messages starves a low-priority sender.",
	.order = 42,
	.run = mq_priority_run,
};
LAB_EXPERIMENT(mq_priority)
