/*
 * pipe-capacity: how much a pipe holds, how far it can be resized, and the
 * per-user limits that quietly shrink new pipes.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ipcx/pipe.h>

#include "lab.h"

#define NOBODY 65534

/* Bytes a fresh pipe takes before a non-blocking write says EAGAIN. */
static long fill_count(int wfd)
{
	static char buf[4096];
	long total = 0;
	for (;;) {
		ssize_t n = write(wfd, buf, sizeof buf);
		if (n < 0)
			return errno == EAGAIN ? total : -errno;
		total += n;
	}
}

/* Results a child reports through a pipe. */
struct user_report {
	long got_max;       /* F_SETPIPE_SZ(max_size) as that user */
	long got_over;      /* F_SETPIPE_SZ(2 * max_size) */
	long pipes_made;    /* pipes created to pass the soft limit */
	long cap_after;     /* capacity of a new pipe past the soft limit, -1 untested */
	long grow_after;    /* F_SETPIPE_SZ(1 MiB) past the soft limit */
	int dropped;        /* ran as another (unprivileged) user */
};

struct child_arg {
	int report_fd;
	ipcx_pipe_limits lim;
};

static int as_ordinary_user(void *arg)
{
	struct child_arg *a = arg;
	struct user_report r = { .cap_after = -1, .grow_after = -1 };
	if (geteuid() == 0) {
		if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
			return 2;
		r.dropped = 1;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK))
		return 3;
	r.got_max = fcntl(p[1], F_SETPIPE_SZ, (int)a->lim.max_size);
	if (r.got_max < 0)
		r.got_max = -errno;
	r.got_over = a->lim.max_size * 2 <= INT_MAX ? fcntl(p[1], F_SETPIPE_SZ, (int)(a->lim.max_size * 2)) : -EINVAL;
	if (r.got_over < 0)
		r.got_over = -errno;
	close(p[0]);
	close(p[1]);
	/* Past pipe-user-pages-soft, an unprivileged user's new pipes get a
	 * minimal buffer.  Reach it if the fd limit lets us (two fds a pipe). */
	size_t pages_per_pipe = a->lim.default_size / a->lim.page_size;
	if (a->lim.user_pages_soft && pages_per_pipe) {
		long need = (long)(a->lim.user_pages_soft / pages_per_pipe) + 1;
		struct rlimit rl;
		getrlimit(RLIMIT_NOFILE, &rl);
		rlim_t want = (rlim_t)(2 * need + 64);
		if (rl.rlim_cur < want && rl.rlim_max >= want) {
			rl.rlim_cur = want;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
		getrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur >= want) {
			long made = 0;
			for (; made < need; made++)
				if (pipe2(p, O_CLOEXEC | O_NONBLOCK))
					break;
			r.pipes_made = made;
			if (made == need && pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0) {
				r.cap_after = fcntl(p[1], F_GETPIPE_SZ);
				r.grow_after = fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
				if (r.grow_after < 0)
					r.grow_after = -errno;
			}
		}
	}
	return write(a->report_fd, &r, sizeof r) == (ssize_t)sizeof r ? 0 : 4;
}

/* A size in bytes, or the error that refused it. */
static void fact_bytes(struct lab_out *out, const char *key, long v)
{
	if (v < 0)
		lab_fact(out, key, "refused: %s", ipcx_strerror((int)v));
	else
		lab_fact_num(out, key, (double)v, "bytes");
}

static int run(struct lab_out *out)
{
	ipcx_pipe_limits lim;
	int rc = ipcx_pipe_limits_get(&lim);
	if (rc)
		return rc;
	int p[2];
	if ((rc = ipcx_pipe_create(p, IPCX_PIPE_NONBLOCK)))
		return rc;
	long filled = fill_count(p[1]);
	close(p[0]);
	close(p[1]);
	lab_fact_num(out, "PIPE_BUF (atomic write limit)", (double)lim.pipe_buf, "bytes");
	lab_fact_num(out, "default capacity (F_GETPIPE_SZ)", (double)lim.default_size, "bytes");
	lab_fact_num(out, "bytes a new pipe took before EAGAIN", (double)filled, "bytes");

	/* Rounding: ask odd sizes, see what the kernel gives. */
	size_t asks[] = { 1, 5000, 100000, 3 * lim.page_size };
	for (unsigned i = 0; i < sizeof asks / sizeof asks[0]; i++) {
		if ((rc = ipcx_pipe_create(p, 0)))
			return rc;
		ssize_t got = ipcx_pipe_set_capacity(p[1], asks[i], NULL);
		close(p[0]);
		close(p[1]);
		char key[80];
		snprintf(key, sizeof key, "F_SETPIPE_SZ(%zu) gives", asks[i]);
		fact_bytes(out, key, got);
	}
	lab_fact_num(out, "pipe-max-size", (double)lim.max_size, "bytes");
	lab_fact_num(out, "pipe-user-pages-soft", (double)lim.user_pages_soft, "pages");
	lab_fact_num(out, "pipe-user-pages-hard", (double)lim.user_pages_hard, "pages");

	/* What an ordinary user gets (a child that drops to nobody when we are
	 * root, else ourselves). */
	int rp[2];
	if ((rc = ipcx_pipe_create(rp, 0)))
		return rc;
	struct child_arg ca = { rp[1], lim };
	int pid = lab_spawn(as_ordinary_user, &ca);
	close(rp[1]);
	struct user_report r;
	int st = pid > 0 ? lab_wait(pid, 10000) : pid;
	ssize_t n = read(rp[0], &r, sizeof r);
	close(rp[0]);
	if (st != 0 || n != (ssize_t)sizeof r) {
		lab_fact(out, "ordinary user", "could not be measured (child status %d)", st);
		lab_verdict(out, LAB_INCONCLUSIVE, "the per-user part could not run here");
		return 0;
	}
	const char *who = r.dropped ? "as uid 65534" : "as this (unprivileged) user";
	char key[96];
	snprintf(key, sizeof key, "%s: F_SETPIPE_SZ(pipe-max-size)", who);
	fact_bytes(out, key, r.got_max);
	snprintf(key, sizeof key, "%s: F_SETPIPE_SZ(2 x pipe-max-size)", who);
	fact_bytes(out, key, r.got_over);
	if (r.cap_after >= 0) {
		snprintf(key, sizeof key, "%s: capacity of pipe number %ld", who, r.pipes_made + 1);
		lab_fact_num(out, key, (double)r.cap_after, "bytes");
		snprintf(key, sizeof key, "%s: then F_SETPIPE_SZ(1 MiB)", who);
		fact_bytes(out, key, r.grow_after);
	} else {
		lab_fact(out, "past the soft limit", "not measured (the fd limit is too low)");
	}
	int fixed_4k = lim.default_size == 4096 && filled == 4096;
	char shrink[160] = "";
	if (r.cap_after >= 0 && (size_t)r.cap_after < lim.default_size)
		snprintf(shrink, sizeof shrink,
			 "; past %zu pages in pipes an ordinary user's new pipes hold only %ld bytes",
			 lim.user_pages_soft, r.cap_after);
	lab_verdict(out, fixed_4k ? LAB_HOLDS : LAB_DOES_NOT_HOLD,
		    "a new pipe holds %zu bytes (PIPE_BUF, %zu, is only the atomicity limit); "
		    "F_SETPIPE_SZ rounds up to a power-of-two number of pages, and an ordinary user "
		    "may go up to pipe-max-size (%zu)%s",
		    lim.default_size, lim.pipe_buf, lim.max_size, shrink);
	return 0;
}

static const struct lab_experiment exp_pipe_capacity = {
	.name = "pipe-capacity",
	.claim = "A pipe holds PIPE_BUF (4 KiB) bytes of data, and its size is fixed.",
	.order = 40,
	.run = run,
};
LAB_EXPERIMENT(exp_pipe_capacity)
