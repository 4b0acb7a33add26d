/*
 * uds-stream and uds-seqpacket: a UNIX-domain socketpair, one full-duplex
 * connection for both directions.  SOCK_SEQPACKET keeps message boundaries,
 * so several producers may share its sending end (each send is one record).
 */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdmech.h"

static int uds_pair(int type, int fd[2])
{
	return socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fd) ? -errno : 0;
}

static int uds_stream_open(const struct bench_case *c, int d, int fd[2], char *why, size_t whylen)
{
	(void)c, (void)d, (void)why, (void)whylen;
	return uds_pair(SOCK_STREAM, fd);
}

/* A record must fit the sender's buffer whole: the kernel refuses one larger
 * than SO_SNDBUF - 32 with EMSGSIZE.  Ask for room for a few records
 * (SO_SNDBUFFORCE beyond net.core.wmem_max, which needs CAP_NET_ADMIN) and
 * skip when that is not granted. */
static int uds_seqpacket_open(const struct bench_case *c, int d, int fd[2], char *why,
			      size_t whylen)
{
	(void)d;
	int rc = uds_pair(SOCK_SEQPACKET, fd);
	if (rc)
		return rc;
	int want = c->size > (1u << 28) ? 1 << 30 : (int)(4 * c->size + 4096), got = 0;
	for (int i = 0; i < 2; i++) {
		socklen_t len = sizeof got;
		if (setsockopt(fd[i], SOL_SOCKET, SO_SNDBUF, &want, sizeof want) ||
		    getsockopt(fd[i], SOL_SOCKET, SO_SNDBUF, &got, &len))
			rc = -errno;
		else if (c->size + 32 > (size_t)got &&
			 !setsockopt(fd[i], SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof want))
			getsockopt(fd[i], SOL_SOCKET, SO_SNDBUF, &got, &len);
		if (!rc && c->size + 32 > (size_t)got)
			rc = fdmech_skip(why, whylen,
					 "EMSGSIZE: a %zu-byte record does not fit SO_SNDBUF %d "
					 "(raise /proc/sys/net/core/wmem_max as root)",
					 c->size, got);
		if (rc)
			break;
	}
	if (rc) {
		close(fd[0]);
		close(fd[1]);
		fd[0] = fd[1] = -1;
	}
	return rc;
}

static int uds_stream_setup(const struct bench_case *c, void **state, char *why, size_t whylen)
{
	return fdmech_setup(c, state, FDMECH_SOCKET | FDMECH_DUPLEX, uds_stream_open, why, whylen);
}

static int uds_seqpacket_setup(const struct bench_case *c, void **state, char *why, size_t whylen)
{
	return fdmech_setup(c, state, FDMECH_SOCKET | FDMECH_DUPLEX | FDMECH_RECORD,
			    uds_seqpacket_open, why, whylen);
}

static const struct bench_mech mech_uds_stream = {
	.name = "uds-stream",
	.desc = "UNIX-domain SOCK_STREAM socketpair",
	.order = 102,
	.modes = BENCH_PINGPONG | BENCH_STREAM,
	.in_default = 1,
	.setup = uds_stream_setup,
	FDMECH_OPS,
};
BENCH_MECH(mech_uds_stream)

static const struct bench_mech mech_uds_seqpacket = {
	.name = "uds-seqpacket",
	.desc = "UNIX-domain SOCK_SEQPACKET socketpair (one record per message)",
	.order = 103,
	.modes = BENCH_PINGPONG | BENCH_STREAM,
	.max_producers = 16,
	.max_consumers = 16,
	.in_default = 1,
	.setup = uds_seqpacket_setup,
	FDMECH_OPS,
};
BENCH_MECH(mech_uds_seqpacket)
