/*
 * pipe-semantics: what read and write on a pipe really do -- blocking,
 * end-of-file, SIGPIPE / EPIPE, O_NONBLOCK -- and PIPE_BUF atomicity with
 * concurrent writers, counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ipcx/pipe.h>

#include "lab.h"

/* ---- read on an empty pipe ----------------------------------------------- */

struct reader {
	int rfd, report_fd;
	int writers[2]; /* our copies of the write ends: closed in the child */
};

static int blocking_reader(void *arg)
{
	struct reader *r = arg;
	close(r->writers[0]);
	close(r->writers[1]);
	char c;
	ssize_t n;
	do
		n = read(r->rfd, &c, 1);
	while (n < 0 && errno == EINTR);
	char rep = n == 0 ? 'e' : n > 0 ? 'd' : 'x'; /* eof, data, error */
	return write(r->report_fd, &rep, 1) == 1 ? 0 : 2;
}

/* Is the reader still blocked after `ms`?  Returns its report char or 0. */
static char report_within(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c = 0;
	if (poll(&p, 1, ms) == 1 && read(fd, &c, 1) != 1)
		c = '?';
	return c;
}

/* ---- write with no reader ------------------------------------------------ */

static int write_no_reader(void *arg)
{
	int ignore = *(int *)arg;
	signal(SIGPIPE, ignore ? SIG_IGN : SIG_DFL);
	int p[2];
	if (pipe(p))
		return 2;
	close(p[0]);
	ssize_t n = write(p[1], "x", 1);
	return n < 0 && errno == EPIPE ? 10 : 3; /* 10: EPIPE returned */
}

/* ---- atomicity ------------------------------------------------------------ */

#define WRITERS 4

struct writer {
	int wfd;
	size_t rec;
	unsigned count;
	unsigned char id;
};

/* Each record is `rec` bytes all equal to the writer's id. */
static int atomic_writer(void *arg)
{
	struct writer *w = arg;
	char *buf = malloc(w->rec);
	if (!buf)
		return 2;
	memset(buf, w->id, w->rec);
	for (unsigned i = 0; i < w->count; i++) {
		size_t done = 0;
		while (done < w->rec) {
			ssize_t n = write(w->wfd, buf + done, w->rec - done);
			if (n < 0)
				return 3;
			done += (size_t)n;
		}
	}
	free(buf);
	return 0;
}

/* Records of `rec` bytes from WRITERS concurrent writers; returns how many
 * records came out mixed (or < 0). */
static long count_torn(size_t rec, unsigned per_writer, long *total)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		return -errno;
	int pids[WRITERS];
	struct writer w[WRITERS];
	for (int i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){ p[1], rec, per_writer, (unsigned char)(i + 1) };
		pids[i] = lab_spawn(atomic_writer, &w[i]);
	}
	close(p[1]);
	/* Read slowly at first so the pipe fills and writers contend. */
	usleep(20000);
	char *buf = malloc(rec);
	long torn = 0, n = 0;
	for (;;) {
		size_t got = 0;
		while (got < rec) {
			/* Small reads: a writer waiting for room gets a little at a
			 * time, and others get their turn in between. */
			size_t want = rec - got < 1024 ? rec - got : 1024;
			ssize_t r = read(p[0], buf + got, want);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		if (got < rec)
			break;
		n++;
		for (size_t i = 1; i < rec; i++)
			if (buf[i] != buf[0]) {
				torn++;
				break;
			}
	}
	free(buf);
	close(p[0]);
	for (int i = 0; i < WRITERS; i++)
		if (pids[i] > 0)
			lab_wait(pids[i], 5000);
	*total = n;
	return torn;
}

static int run(struct lab_out *out)
{
	int p[2], rp[2], rc;
	if ((rc = ipcx_pipe_create(p, 0)) || (rc = ipcx_pipe_create(rp, 0)))
		return rc;
	/* 1. Empty pipe, writer open: the reader blocks.  Then EOF only when
	 *    the last writer closes. */
	int extra = dup(p[1]); /* a second writer */
	struct reader r = { p[0], rp[1], { p[1], extra } };
	int pid = lab_spawn(blocking_reader, &r);
	char c = report_within(rp[0], 100);
	lab_fact(out, "read() on an empty pipe, writer open", "%s",
		 c ? "returned at once" : "blocked (still blocked after 100 ms; no signal involved)");
	int blocks = c == 0;
	close(p[1]);
	c = report_within(rp[0], 100);
	lab_fact(out, "one of two writers closes", "%s",
		 c ? "the reader returned" : "the reader stays blocked (another writer is open)");
	int waits_for_all = c == 0;
	double t0 = lab_now_ns();
	close(extra);
	c = report_within(rp[0], 2000);
	lab_fact(out, "the last writer closes",
		 c == 'e' ? "read() returns 0 (end-of-file) after %.0f us" : "unexpected: %.0f us",
		 (lab_now_ns() - t0) / 1e3);
	int eof = c == 'e';
	lab_wait(pid, 1000);
	close(p[0]);
	close(rp[0]);
	close(rp[1]);

	/* 2. Write with no reader. */
	int ign = 0;
	int st = lab_wait(lab_spawn(write_no_reader, &ign), 2000);
	lab_fact(out, "write() with no reader, SIGPIPE default", "%s",
		 st == 128 + SIGPIPE ? "the process is killed by SIGPIPE"
		 : st == 10	    ? "write fails with EPIPE (not killed)"
				    : "unexpected");
	int killed = st == 128 + SIGPIPE;
	ign = 1;
	st = lab_wait(lab_spawn(write_no_reader, &ign), 2000);
	lab_fact(out, "write() with no reader, SIGPIPE ignored", "%s",
		 st == 10 ? "write fails with EPIPE" : "unexpected");
	int epipe = st == 10;

	/* 3. O_NONBLOCK. */
	if ((rc = ipcx_pipe_create(p, IPCX_PIPE_NONBLOCK)))
		return rc;
	ssize_t n = read(p[0], &c, 1);
	int e = errno;
	lab_fact(out, "O_NONBLOCK read, empty pipe", "%s", n < 0 ? strerror(e) : "data?");
	int nb_read = n < 0 && e == EAGAIN;
	static char page[65536];
	long filled = 0;
	while ((n = write(p[1], page, sizeof page)) > 0)
		filled += n;
	e = errno;
	lab_fact(out, "O_NONBLOCK write, full pipe", "%s after %ld bytes", strerror(e), filled);
	int nb_write = n < 0 && e == EAGAIN;
	close(p[0]);
	close(p[1]);

	/* 4. PIPE_BUF atomicity with 4 concurrent writers. */
	long total = 0, torn_small = count_torn(PIPE_BUF, 2000, &total);
	if (torn_small < 0)
		return (int)torn_small;
	lab_fact(out, "records of PIPE_BUF bytes, 4 writers", "%ld of %ld interleaved", torn_small,
		 total);
	long total_big = 0, torn_big = count_torn(16 * PIPE_BUF, 400, &total_big);
	if (torn_big < 0)
		return (int)torn_big;
	lab_fact(out, "records of 16 x PIPE_BUF bytes, 4 writers", "%ld of %ld interleaved",
		 torn_big, total_big);

	int as_expected = blocks && waits_for_all && eof && killed && epipe && nb_read && nb_write &&
			  torn_small == 0;
	lab_verdict(out, as_expected ? LAB_DOES_NOT_HOLD : LAB_INCONCLUSIVE,
		    "reading an empty pipe blocks while any writer is open and returns 0 (end-of-file) "
		    "once the last one closes -- no signal is involved; it is the writer without a "
		    "reader that gets SIGPIPE (killed by default) or EPIPE when SIGPIPE is ignored; "
		    "O_NONBLOCK turns both waits into EAGAIN; writes of at most PIPE_BUF (%d) bytes "
		    "never interleave (%ld of %ld), larger ones can (%ld of %ld here)",
		    PIPE_BUF, torn_small, total, torn_big, total_big);
	return 0;
}

static const struct lab_experiment exp_pipe_semantics = {
	.name = "pipe-semantics",
	.claim = "Reading an empty pipe blocks until an EPIPE signal arrives; pipe writes are "
		 "atomic.",
	.order = 41,
	.run = run,
};
LAB_EXPERIMENT(exp_pipe_semantics)
