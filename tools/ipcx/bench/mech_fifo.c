/*
 * fifo: one named pipe per direction, created with mkfifo in a private
 * (0700) temporary directory and opened by path in the parent.  The names
 * are removed as soon as both ends are open: the open descriptors keep the
 * FIFO alive, and nothing is left in the file system even if the bench is
 * killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdmech.h"

/* Both ends of the FIFO at path: the read end first, non-blocking (so that
 * open does not wait for a writer), then the write end, which finds the
 * reader; then the read end is made blocking again. */
static int fifo_ends(const char *path, int fd[2])
{
	if (mkfifo(path, 0600))
		return -errno;
	int rc = 0;
	fd[1] = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd[1] < 0 || (fd[0] = open(path, O_WRONLY | O_CLOEXEC)) < 0 ||
	    fcntl(fd[1], F_SETFL, 0) < 0) { /* clears O_NONBLOCK */
		rc = -errno;
		if (fd[1] >= 0)
			close(fd[1]);
		if (fd[0] >= 0)
			close(fd[0]);
	}
	unlink(path);
	return rc;
}

static int fifo_open(const struct bench_case *c, int d, int fd[2], char *why, size_t whylen)
{
	(void)c, (void)why, (void)whylen;
	const char *tmp = getenv("TMPDIR");
	char dir[256], path[300];
	if (snprintf(dir, sizeof dir, "%s/ipcx-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp") >=
	    (int)sizeof dir)
		return -ENAMETOOLONG;
	if (!mkdtemp(dir)) /* mode 0700 */
		return -errno;
	snprintf(path, sizeof path, "%s/%s", dir, d ? "b-to-a" : "a-to-b");
	int rc = fifo_ends(path, fd);
	rmdir(dir);
	return rc;
}

static int fifo_setup(const struct bench_case *c, void **state, char *why, size_t whylen)
{
	return fdmech_setup(c, state, 0, fifo_open, why, whylen);
}

static const struct bench_mech mech_fifo = {
	.name = "fifo",
	.desc = "named pipe (mkfifo), one per direction",
	.order = 101,
	.modes = BENCH_PINGPONG | BENCH_STREAM,
	.in_default = 1,
	.setup = fifo_setup,
	FDMECH_OPS,
	.note = "the kernel's default pipe buffer (no F_SETPIPE_SZ)",
};
BENCH_MECH(mech_fifo)
