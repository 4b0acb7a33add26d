/*
 * fifo-open: named pipes against anonymous ones, and the rules of open(2)
 * on a FIFO: who blocks, ENXIO, O_RDWR, and the false end-of-file.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ipcx/pipe.h>

#include "lab.h"

static char path[96];

/* Child: open the FIFO with the given flags (blocking), report when done. */
struct opener {
	int flags;
	int report_fd;
};

static int open_and_report(void *arg)
{
	struct opener *o = arg;
	int fd = open(path, o->flags | O_CLOEXEC);
	char c = fd >= 0 ? 'y' : 'n';
	if (write(o->report_fd, &c, 1) != 1)
		return 3;
	/* Hold the end open a little, so the parent's own open can pair. */
	usleep(100000);
	return fd >= 0 ? 0 : 1;
}

/* Does a blocking open with `flags` wait for the other side?  Returns the
 * time it stayed blocked before `pair_flags` was opened here (ms; 0 if it
 * did not block), with *completed set to whether it then returned. */
static int blocking_open(int flags, int pair_flags, double *blocked_ms, int *completed)
{
	int rp[2];
	int rc = ipcx_pipe_create(rp, 0);
	if (rc)
		return rc;
	struct opener o = { flags, rp[1] };
	double t0 = lab_now_ns();
	int pid = lab_spawn(open_and_report, &o);
	close(rp[1]);
	if (pid < 0) {
		close(rp[0]);
		return pid;
	}
	struct pollfd p = { .fd = rp[0], .events = POLLIN };
	int early = poll(&p, 1, 100); /* still blocked after 100 ms? */
	*blocked_ms = (lab_now_ns() - t0) / 1e6;
	int fd = open(path, pair_flags | O_NONBLOCK | O_CLOEXEC);
	char c = 0;
	*completed = 0;
	if (poll(&p, 1, 2000) == 1 && read(rp[0], &c, 1) == 1 && c == 'y')
		*completed = 1;
	if (early == 1)
		*blocked_ms = 0;
	if (fd >= 0)
		close(fd);
	close(rp[0]);
	lab_wait(pid, 3000);
	return 0;
}

/* Record whether a blocking open for `flags` waits for the other side
 * (the peer is opened here, non-blocking, after 100 ms). */
static int open_blocks(struct lab_out *out, int flags, const char *peer, int *blocks)
{
	double ms;
	int done;
	int rc = blocking_open(flags, flags == O_RDONLY ? O_WRONLY : O_RDONLY, &ms, &done);
	if (rc)
		return rc;
	char key[64];
	snprintf(key, sizeof key, "open(%s), no %s", flags == O_RDONLY ? "O_RDONLY" : "O_WRONLY",
		 peer);
	if (ms > 0)
		lab_fact(out, key, "blocked (still waiting after %.0f ms); returned once a %s opened: %s",
			 ms, peer,
			 done ? "yes" : "no");
	else
		lab_fact(out, key, "did not block");
	*blocks = ms > 0 && done;
	return 0;
}

static int run(struct lab_out *out)
{
	snprintf(path, sizeof path, "/tmp/ipcx-lab-fifo-%d", (int)getpid());
	unlink(path);
	int rc = ipcx_fifo_create(path, 0600);
	if (rc)
		return rc;
	struct stat st;
	stat(path, &st);
	lab_fact(out, "mkfifo", "a file of type %s in the file system, mode %o",
		 S_ISFIFO(st.st_mode) ? "FIFO" : "other", (unsigned)(st.st_mode & 0777));

	int rd_blocks, wr_blocks;
	if ((rc = open_blocks(out, O_RDONLY, "writer", &rd_blocks)) ||
	    (rc = open_blocks(out, O_WRONLY, "reader", &wr_blocks)))
		goto out;

	int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	int enxio = fd < 0 && errno == ENXIO;
	lab_fact(out, "open(O_WRONLY | O_NONBLOCK), no reader", "%s",
		 fd >= 0 ? "succeeded" : strerror(errno));
	if (fd >= 0)
		close(fd);

	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	char buf[8];
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf) : -1;
	int false_eof = fd >= 0 && n == 0;
	lab_fact(out, "open(O_RDONLY | O_NONBLOCK), no writer",
		 "%s; read() then returns %zd %s", fd >= 0 ? "succeeds at once" : strerror(errno), n,
		 n == 0 ? "(end-of-file, though nobody has written or closed)" : "");
	if (fd >= 0)
		close(fd);

	double t0 = lab_now_ns();
	fd = open(path, O_RDWR | O_CLOEXEC);
	double rdwr_ms = (lab_now_ns() - t0) / 1e6;
	int rdwr_ok = fd >= 0;
	if (fd >= 0) {
		ssize_t w = write(fd, "x", 1);
		int fl = fcntl(fd, F_GETFL);
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
		ssize_t r1 = read(fd, buf, 1), r2 = read(fd, buf, 1);
		lab_fact(out, "open(O_RDWR)",
			 "succeeds at once (%.2f ms; POSIX leaves it undefined); wrote %zd, read %zd, "
			 "then read on the empty FIFO: %s (its own write end keeps end-of-file away)",
			 rdwr_ms, w, r1, r2 < 0 ? strerror(errno) : "0");
		close(fd);
	} else {
		lab_fact(out, "open(O_RDWR)", "%s", strerror(errno));
	}

	/* Named vs anonymous: same buffer, but data does not outlive the opens. */
	int r = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	int w = r >= 0 ? open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC) : -1;
	if (r >= 0 && w >= 0) {
		lab_fact_num(out, "FIFO capacity (F_GETPIPE_SZ)", (double)fcntl(w, F_GETPIPE_SZ),
			     "bytes");
		ssize_t wn = write(w, "persist?", 8);
		close(w);
		close(r);
		r = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		n = read(r, buf, sizeof buf);
		lab_fact(out, "wrote 8 bytes, closed both ends, reopened",
			 "read returns %zd: the %zd bytes are gone; only the name persists", n, wn);
		close(r);
	} else {
		if (r >= 0)
			close(r);
	}
	int p[2];
	if (ipcx_pipe_create(p, 0) == 0) {
		lab_fact_num(out, "anonymous pipe capacity", (double)fcntl(p[1], F_GETPIPE_SZ),
			     "bytes");
		close(p[0]);
		close(p[1]);
	}
	int holds = rd_blocks && wr_blocks;
	lab_verdict(out, holds ? LAB_HOLDS_WITH_CORRECTIONS : LAB_DOES_NOT_HOLD,
		    "a blocking open waits for the other side (%s/%s), without any timeout; with "
		    "O_NONBLOCK a writer gets %s and a reader succeeds but reads a false end-of-file "
		    "(%s) until a writer appears; O_RDWR %s on Linux; otherwise a FIFO is a pipe "
		    "with a name: data lives only while some end is open",
		    rd_blocks ? "reader: yes" : "reader: no", wr_blocks ? "writer: yes" : "writer: no",
		    enxio ? "ENXIO" : "no ENXIO", false_eof ? "observed" : "not observed",
		    rdwr_ok ? "opens at once" : "fails");
	rc = 0;
out:
	unlink(path);
	return rc;
}

static const struct lab_experiment exp_fifo_open = {
	.name = "fifo-open",
	.claim = "Opening a FIFO blocks until the other end is opened; otherwise a named pipe "
		 "behaves exactly like an anonymous one.",
	.order = 42,
	.run = run,
};
LAB_EXPERIMENT(exp_fifo_open)
