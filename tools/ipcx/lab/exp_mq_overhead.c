/*
 * mq-overhead: what each queue charges per message beyond the payload.
 *  - POSIX: mq_open charges maxmsg x (msgsize + metadata) against
 *    RLIMIT_MSGQUEUE at creation.  A child lowers its own limit and finds
 *    the largest msgsize it may open; the difference is the metadata.
 *  - System V: what IPC_STAT counts against msgmnb (the kernel's own memory
 *    per message is not visible to a process, so it is not reported).
 *  - ipcx: the region's size per slot, and the log's bytes per message.
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "lab.h"

#define MAXMSG 8
#define PER_MSG_BUDGET 1024

struct posix_res {
	long largest; /* largest msgsize accepted, or -errno */
	long limit;
};

static int posix_probe(void *arg)
{
	int fd = *(int *)arg;
	struct posix_res r = { 0, MAXMSG * PER_MSG_BUDGET };
	struct rlimit rl = { (rlim_t)r.limit, (rlim_t)r.limit };
	if (setrlimit(RLIMIT_MSGQUEUE, &rl) < 0) {
		r.largest = -errno;
	} else {
		char name[64];
		snprintf(name, sizeof name, "/ipcx-lab-ovh-%d", (int)getpid());
		long lo = 0, hi = PER_MSG_BUDGET + 1; /* lo accepted (or 0), hi refused */
		while (lo + 1 < hi) {
			long mid = (lo + hi) / 2;
			struct mq_attr a = { .mq_maxmsg = MAXMSG, .mq_msgsize = mid };
			mqd_t q = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &a);
			if (q == (mqd_t)-1) {
				if (errno != EMFILE) { /* EMFILE: over RLIMIT_MSGQUEUE */
					r.largest = -errno;
					break;
				}
				hi = mid;
			} else {
				mq_close(q);
				mq_unlink(name);
				lo = mid;
			}
		}
		if (r.largest == 0)
			r.largest = lo;
	}
	ssize_t w = write(fd, &r, sizeof r);
	return w == (ssize_t)sizeof r ? 0 : 1;
}

static void sysv(struct lab_out *out)
{
	int id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	if (id < 0) {
		lab_fact(out, "sysv msgget", "failed: %s", strerror(errno));
		return;
	}
	struct {
		long mtype;
		char text[64];
	} m = { 1, { 0 } };
	struct msqid_ds ds;
	/* room for the test whatever msgmnb is (raising needs privilege; try) */
	msgctl(id, IPC_STAT, &ds);
	ds.msg_qbytes = 1 << 20;
	(void)msgctl(id, IPC_SET, &ds);
	msgctl(id, IPC_STAT, &ds);
	long n_max = (long)ds.msg_qbytes / (long)sizeof m.text;
	if (n_max > 4096)
		n_max = 4096;
	long n = 0;
	while (n < n_max && msgsnd(id, &m, sizeof m.text, IPC_NOWAIT) == 0)
		n++;
	msgctl(id, IPC_STAT, &ds);
	lab_fact(out, "sysv: bytes counted against msgmnb for 64-byte messages",
		 "%lu for %ld messages = %.1f per message", (unsigned long)ds.__msg_cbytes, n,
		 n ? (double)ds.__msg_cbytes / (double)n : 0.0);
	msgctl(id, IPC_RMID, NULL);
}

static void ipcx_side(struct lab_out *out, double *slot_overhead)
{
	char name[64];
	snprintf(name, sizeof name, "lab-ovh-%d", (int)getpid());
	const uint32_t depth = 1024, size = 64;
	ipcx_mq_opts o = { .depth = depth, .max_msg = size };
	ipcx_mq *mq;
	int rc = ipcx_mq_create(&mq, name, &o);
	if (rc) {
		lab_fact(out, "ipcx mailbox", "cannot create: %s", ipcx_strerror(rc));
		return;
	}
	ipcx_region_info ri;
	if (!ipcx_region_peek(name, &ri)) {
		*slot_overhead = ((double)ri.data_size - (double)depth * size) / depth;
		lab_fact(out, "ipcx: shared memory per 64-byte slot beyond the payload",
			 "%.1f bytes (%llu bytes for %u slots, header included)", *slot_overhead,
			 (unsigned long long)ri.data_size, depth);
	}
	ipcx_mq_close(mq);
	ipcx_mq_unlink(name);

	/* The log: bytes written per message sent and per message received. */
	char path[128];
	snprintf(path, sizeof path, "/var/tmp/ipcx-lab-ovh-%d.log", (int)getpid());
	o.log_path = path;
	if ((rc = ipcx_mq_create(&mq, name, &o))) {
		lab_fact(out, "ipcx log", "cannot create a log in /var/tmp: %s", ipcx_strerror(rc));
		return;
	}
	ipcx_mq_attr a0, a1, a2;
	char buf[64] = { 0 };
	ipcx_mq_getattr(mq, &a0);
	for (unsigned i = 0; i < 100; i++)
		ipcx_mq_send(mq, buf, sizeof buf, 0, NULL);
	ipcx_mq_getattr(mq, &a1);
	ipcx_wait nb = IPCX_WAIT_INIT(IPCX_WAIT_NONBLOCK);
	for (unsigned i = 0; i < 100; i++)
		ipcx_mq_recv(mq, buf, sizeof buf, NULL, &nb);
	ipcx_mq_getattr(mq, &a2);
	lab_fact(out, "ipcx: log bytes per 64-byte message sent / received",
		 "%.0f / %.0f (record header, CRC32C, padding)",
		 (double)(a1.log_bytes - a0.log_bytes) / 100, (double)(a2.log_bytes - a1.log_bytes) / 100);
	/* A batch receive removes a run of consecutive numbers with one record. */
	ipcx_mq_vec v[50];
	char bufs[50][64] = { { 0 } };
	for (unsigned i = 0; i < 50; i++)
		v[i] = (ipcx_mq_vec){ .buf = bufs[i], .len = sizeof bufs[i], .cap = sizeof bufs[i] };
	ipcx_mq_send_batch(mq, v, 50, NULL);
	ipcx_mq_attr a3, a4;
	ipcx_mq_getattr(mq, &a3);
	int got = ipcx_mq_recv_batch(mq, v, 50, &nb);
	ipcx_mq_getattr(mq, &a4);
	if (got > 0)
		lab_fact(out, "ipcx: log bytes per message received in a batch",
			 "%.1f (%d messages: one removal record for the run)",
			 (double)(a4.log_bytes - a3.log_bytes) / got, got);
	ipcx_mq_close(mq);
	ipcx_mq_unlink(name);
	unlink(path);
}

static int mq_overhead_run(struct lab_out *out)
{
	int pfd[2];
	if (pipe(pfd) < 0)
		return -errno;
	struct posix_res r = { -EIO, 0 };
	int pid = lab_spawn(posix_probe, &pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return pid;
	}
	int st = lab_wait(pid, 10000);
	close(pfd[1]);
	if (st != 0 || read(pfd[0], &r, sizeof r) != (ssize_t)sizeof r)
		r.largest = -EIO;
	close(pfd[0]);
	double posix_meta = -1;
	if (r.largest > 0) {
		posix_meta = (double)r.limit / MAXMSG - (double)r.largest;
		lab_fact(out, "posix: RLIMIT_MSGQUEUE set to", "%ld bytes for %d-message queues",
			 r.limit, MAXMSG);
		lab_fact_num(out, "posix: largest mq_msgsize that fits", (double)r.largest, "bytes");
		lab_fact(out, "posix: charged per message slot beyond the payload",
			 "%.0f bytes (charged for every slot at mq_open, used or not; other POSIX "
			 "queues of this user at the same time would show up here)",
			 posix_meta);
	} else {
		lab_fact(out, "posix: RLIMIT_MSGQUEUE probe", "failed: %s", strerror((int)-r.largest));
	}
	sysv(out);
	double ipcx_slot = -1;
	ipcx_side(out, &ipcx_slot);
	if (posix_meta < 0) {
		lab_verdict(out, LAB_INCONCLUSIVE, "the POSIX charge could not be measured here");
		return 0;
	}
	lab_verdict(out, LAB_HOLDS_WITH_CORRECTIONS,
		    "Limits are not only payload. POSIX charges every slot of a queue at mq_open, "
		    "used or not, at the payload size plus %.0f bytes of kernel metadata, against "
		    "RLIMIT_MSGQUEUE. System V counts only payload bytes against msgmnb (a queue "
		    "also holds at most msgmnb messages: see mq-limits). An ipcx mailbox costs %.0f bytes of shared memory per slot beyond "
		    "the payload, in the caller's own memory, and a persistent one writes a record "
		    "header per message to its log.",
		    posix_meta, ipcx_slot);
	return 0;
}

static const struct lab_experiment mq_overhead = {
	.name = "mq-overhead",
	.claim = "A message queue's size limits count message payload; the per-message bookkeeping "
		 "is negligible.",
	.order = 41,
	.run = mq_overhead_run,
};
LAB_EXPERIMENT(mq_overhead)
