/* pipe: one anonymous pipe per direction. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "fdmech.h"

static int pipe_open(const struct bench_case *c, int d, int fd[2], char *why, size_t whylen)
{
	(void)c, (void)d, (void)why, (void)whylen;
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		return -errno;
	fd[0] = p[1];
	fd[1] = p[0];
	return 0;
}

static int pipe_setup(const struct bench_case *c, void **state, char *why, size_t whylen)
{
	return fdmech_setup(c, state, 0, pipe_open, why, whylen);
}

static const struct bench_mech mech_pipe = {
	.name = "pipe",
	.desc = "anonymous pipe, one per direction",
	.order = 100,
	.modes = BENCH_PINGPONG | BENCH_STREAM,
	.in_default = 1,
	.setup = pipe_setup,
	FDMECH_OPS,
	.note = "the kernel's default pipe buffer (no F_SETPIPE_SZ)",
};
BENCH_MECH(mech_pipe)
