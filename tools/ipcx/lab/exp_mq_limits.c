/*
 * mq-limits: the kernel message queues' limits, read and then exercised.
 * Everything is created privately (IPC_PRIVATE, a unique POSIX name) and
 * removed; no system setting is changed.
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/msg.h>
#include <time.h>
#include <unistd.h>

#include "lab.h"

static long read_long(const char *path)
{
	FILE *f = fopen(path, "re");
	long v = -1;
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* Record a sysctl read from /proc/sys as a fact; returns its value. */
static long sysctl_fact(struct lab_out *out, const char *key, const char *path, const char *unit)
{
	long v = read_long(path);
	lab_fact_num(out, key, (double)v, unit);
	return v;
}

/* Try mq_open with the given attributes; 0 or errno. */
static int try_posix(const char *name, long maxmsg, long msgsize)
{
	struct mq_attr a = { .mq_maxmsg = maxmsg, .mq_msgsize = msgsize };
	mqd_t q = mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK, 0600, &a);
	if (q == (mqd_t)-1)
		return errno;
	mq_close(q);
	mq_unlink(name);
	return 0;
}

static int over_cap_rc = -1; /* mq_open above msg_max: 0 accepted, else errno */

static int run_posix(struct lab_out *out, int *posix_ok)
{
	char name[64];
	snprintf(name, sizeof name, "/ipcx-lab-limits-%d", (int)getpid());
	long msg_max = sysctl_fact(out, "posix msg_max (fs.mqueue.msg_max)",
				   "/proc/sys/fs/mqueue/msg_max", "messages");
	long msgsize_max = sysctl_fact(out, "posix msgsize_max (fs.mqueue.msgsize_max)",
				       "/proc/sys/fs/mqueue/msgsize_max", "bytes");
	sysctl_fact(out, "posix msg_default", "/proc/sys/fs/mqueue/msg_default", "messages");
	sysctl_fact(out, "posix msgsize_default", "/proc/sys/fs/mqueue/msgsize_default", "bytes");
	sysctl_fact(out, "posix queues_max", "/proc/sys/fs/mqueue/queues_max", "queues");

	/* Defaults a queue gets when mq_open is given no attributes. */
	mqd_t q = mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK, 0600, NULL);
	if (q == (mqd_t)-1) {
		lab_fact(out, "posix mq_open", "failed: %s", strerror(errno));
		*posix_ok = 0;
		return 0;
	}
	*posix_ok = 1;
	struct mq_attr a;
	mq_getattr(q, &a);
	lab_fact(out, "posix queue opened without attributes", "%ld messages of %ld bytes",
		 a.mq_maxmsg, a.mq_msgsize);
	mq_close(q);
	mq_unlink(name);

	/* Above the sysctl limits: refused unless CAP_SYS_RESOURCE; the hard
	 * ceilings (HARD_MSGMAX, HARD_MSGSIZEMAX) hold for everyone. */
	int rc = over_cap_rc = try_posix(name, msg_max + 1, 64);
	lab_fact(out, "posix mq_maxmsg = msg_max + 1", "%s", rc ? strerror(rc) : "accepted");
	rc = try_posix(name, 4, msgsize_max + 1);
	lab_fact(out, "posix mq_msgsize = msgsize_max + 1", "%s", rc ? strerror(rc) : "accepted");
	long hi = 1 << 20, lo = msg_max; /* largest accepted maxmsg: binary search */
	if (!try_posix(name, lo + 1, 1)) {
		while (lo + 1 < hi) {
			long mid = lo + (hi - lo) / 2;
			if (try_posix(name, mid, 1) == 0)
				lo = mid;
			else
				hi = mid;
		}
		lab_fact_num(out, "posix largest mq_maxmsg accepted here (1-byte messages)",
			     (double)lo, "messages");
	}

	/* What a full queue does, and a message that is too large. */
	struct mq_attr small = { .mq_maxmsg = 4, .mq_msgsize = 64 };
	q = mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK, 0600, &small);
	if (q == (mqd_t)-1)
		return -errno;
	int n = 0;
	char buf[128] = { 0 };
	while (n < 100 && mq_send(q, buf, 8, 0) == 0)
		n++;
	lab_fact(out, "posix queue of 4: non-blocking sends accepted", "%d, then %s", n,
		 strerror(errno));
	errno = 0;
	lab_fact(out, "posix 65-byte message to a 64-byte queue", "%s",
		 mq_send(q, buf, 65, 0) ? strerror(errno) : "accepted");
	lab_fact(out, "posix mq_receive with a 63-byte buffer (8-byte message queued)", "%s",
		 mq_receive(q, buf, 63, NULL) < 0 ? strerror(errno) : "accepted");
	/* A blocking send to the full queue, bounded by mq_timedsend. */
	struct mq_attr blk = small;
	blk.mq_flags = 0;
	mq_setattr(q, &blk, NULL);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 20 * 1000 * 1000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	double t0 = lab_now_ns();
	rc = mq_timedsend(q, buf, 8, 0, &ts) ? errno : 0;
	lab_fact(out, "posix blocking send to a full queue (20 ms deadline)", "%s after %.1f ms",
		 rc ? strerror(rc) : "accepted", (lab_now_ns() - t0) / 1e6);
	mq_close(q);
	mq_unlink(name);
	return 0;
}

static int run_sysv(struct lab_out *out, long *count_limited)
{
	long msgmax = sysctl_fact(out, "sysv msgmax (kernel.msgmax)", "/proc/sys/kernel/msgmax", "");
	long msgmnb = sysctl_fact(out, "sysv msgmnb (kernel.msgmnb)", "/proc/sys/kernel/msgmnb", "");
	sysctl_fact(out, "sysv msgmni (kernel.msgmni)", "/proc/sys/kernel/msgmni", "queues");
	int id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	if (id < 0) {
		lab_fact(out, "sysv msgget", "failed: %s", strerror(errno));
		return 0;
	}
	size_t big = (size_t)msgmax + 1;
	struct {
		long mtype;
		char text[];
	} *m = calloc(1, sizeof(long) + big + 1);
	if (!m) {
		msgctl(id, IPC_RMID, NULL);
		return -ENOMEM;
	}
	m->mtype = 1;
	errno = 0;
	lab_fact(out, "sysv msgsnd of msgmax bytes", "%s",
		 msgsnd(id, m, (size_t)msgmax, IPC_NOWAIT) ? strerror(errno) : "accepted");
	msgrcv(id, m, big, 0, IPC_NOWAIT);
	lab_fact(out, "sysv msgsnd of msgmax + 1 bytes", "%s",
		 msgsnd(id, m, big, IPC_NOWAIT) ? strerror(errno) : "accepted");
	/* How many empty messages fit: no bytes are queued, so only a limit
	 * on the number of messages can stop them. */
	long n = 0;
	while (n < 4 * msgmnb && msgsnd(id, m, 0, IPC_NOWAIT) == 0)
		n++;
	int err = errno;
	struct msqid_ds ds;
	msgctl(id, IPC_STAT, &ds);
	lab_fact(out, "sysv 0-byte messages accepted by one queue", "%ld (%lu bytes queued), then %s",
		 n, (unsigned long)ds.__msg_cbytes, strerror(err));
	*count_limited = n;
	msgctl(id, IPC_RMID, NULL);
	free(m);
	return 0;
}

static int mq_limits_run(struct lab_out *out)
{
	int posix_ok = 0;
	long sysv_count = 0;
	int rc = run_posix(out, &posix_ok);
	if (!rc)
		rc = run_sysv(out, &sysv_count);
	if (rc)
		return rc;
	long msgmax = read_long("/proc/sys/kernel/msgmax"), msgmnb = read_long("/proc/sys/kernel/msgmnb");
	char count[160];
	if (sysv_count == msgmnb)
		snprintf(count, sizeof count, "and, on Linux, also its number of messages (%ld empty "
					      "messages fit, then EAGAIN)", sysv_count);
	else
		snprintf(count, sizeof count, "(%ld empty messages fit)", sysv_count);
	lab_verdict(out, LAB_HOLDS_WITH_CORRECTIONS,
		    "System V msgmax (%ld) is the largest message in BYTES (a larger msgsnd fails "
		    "with EINVAL), not a number of messages; msgmnb (%ld) bounds a queue's bytes %s; "
		    "msgmni is the number of queues. POSIX: 10 x 8192 are the defaults "
		    "(msg_default, msgsize_default) and msg_max / msgsize_max the sysctl caps, which "
		    "are tunable (mq_overview(7): CAP_SYS_RESOURCE may exceed them; this process "
		    "%s). A full queue makes a blocking sender wait (measured with "
		    "mq_timedsend) and a non-blocking one fail with EAGAIN (both queues); POSIX also "
		    "refuses a receive buffer smaller than the queue's message size (EMSGSIZE)%s.",
		    msgmax, msgmnb, count,
		    over_cap_rc == 0 ? "could" : over_cap_rc > 0 ? "could not" : "was not tried",
		    posix_ok ? "" : " (POSIX queues unavailable here)");
	return 0;
}

static const struct lab_experiment mq_limits = {
	.name = "mq-limits",
	.claim = "A POSIX message queue holds at most 10 messages of at most 8192 bytes; in System V, "
		 "msgmax is the maximum number of messages on a queue, msgmnb its size in bytes and "
		 "msgmni the number of queues; a sender to a full queue blocks.",
	.order = 40,
	.run = mq_limits_run,
};
LAB_EXPERIMENT(mq_limits)
