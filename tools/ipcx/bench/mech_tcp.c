/*
 * tcp: one loopback connection (127.0.0.1, an ephemeral port), TCP_NODELAY
 * on both ends, carrying both directions as applications use it.  The
 * listening socket is closed once the connection is accepted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdmech.h"

static int nodelay(int fd)
{
	int one = 1;
	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int tcp_open(const struct bench_case *c, int d, int fd[2], char *why, size_t whylen)
{
	(void)c, (void)d, (void)why, (void)whylen;
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sa;
	int rc = 0, lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -errno;
	/* The connect completes against the listen backlog, so the parent can
	 * play both sides without blocking. */
	if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len) ||
	    (fd[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd[0], (struct sockaddr *)&sa, sizeof sa) ||
	    (fd[1] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0 || nodelay(fd[0]) ||
	    nodelay(fd[1])) {
		rc = -errno;
		for (int i = 0; i < 2; i++)
			if (fd[i] >= 0)
				close(fd[i]);
		fd[0] = fd[1] = -1;
	}
	close(lfd);
	return rc;
}

static int tcp_setup(const struct bench_case *c, void **state, char *why, size_t whylen)
{
	return fdmech_setup(c, state, FDMECH_SOCKET | FDMECH_DUPLEX, tcp_open, why, whylen);
}

static const struct bench_mech mech_tcp = {
	.name = "tcp",
	.desc = "TCP over loopback (127.0.0.1), TCP_NODELAY",
	.order = 107,
	.modes = BENCH_PINGPONG | BENCH_STREAM,
	.in_default = 1,
	.setup = tcp_setup,
	FDMECH_OPS,
};
BENCH_MECH(mech_tcp)
