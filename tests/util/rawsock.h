/* Writing raw messages into a socket, as a hostile peer of an ipcx socket
 * does in the tests and the fuzz target (header-only: the fuzz target links
 * nothing but the library). */
#ifndef IPCX_TEST_RAWSOCK_H
#define IPCX_TEST_RAWSOCK_H

#include <string.h>
#include <sys/socket.h>

/* sendmsg(len bytes of buf, and fd in SCM_RIGHTS unless it is < 0),
 * non-blocking, without SIGPIPE.  Returns what sendmsg returns. */
static inline ssize_t t_raw_send(int sock, const void *buf, size_t len, int fd)
{
	union {
		char c[CMSG_SPACE(sizeof(int))];
		struct cmsghdr a;
	} ctl;
	memset(&ctl, 0, sizeof ctl);
	struct iovec iov = { (void *)buf, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (fd >= 0) {
		m.msg_control = ctl.c;
		m.msg_controllen = sizeof ctl.c;
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof fd);
	}
	return sendmsg(sock, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
}

#endif
