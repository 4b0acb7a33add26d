/* Direct messaging over UNIX SOCK_SEQPACKET sockets: endpoints, credentials,
 * messages and fd passing. */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sock_internal.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* Sent by accept(): the outcome of the policy check. */
struct wire_hello {
	uint32_t version;
	int32_t status; /* 0 accepted, -EACCES refused */
};

struct ipcx_listener {
	int fd;
	ipcx_wait wait;
	ipcx_sock_policy policy;
	int has_policy;
	dev_t dev; /* identity of the socket file, to remove only our own */
	ino_t ino;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* ---- the endpoint directory ---------------------------------------------- */

static int dir_is_private(const char *path, uid_t uid)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != uid || (st.st_mode & 077))
		return -EPERM;
	return 0;
}

IPCX_API int ipcx_sock_dir(char *buf, size_t len)
{
	uid_t uid = geteuid();
	const char *xdg = secure_getenv("XDG_RUNTIME_DIR");
	int n;
	if (xdg && xdg[0] == '/' && dir_is_private(xdg, uid) == 0)
		n = snprintf(buf, len, "%s/ipcx", xdg);
	else
		n = snprintf(buf, len, "/tmp/ipcx-%u", (unsigned)uid);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	/* mkdir honours the umask, which can only narrow 0700; then check what
	 * is there, since someone else may have made it first. */
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	return dir_is_private(buf, uid);
}

static int endpoint_addr(struct sockaddr_un *sa, const char *name, const ipcx_sock_opts *opts)
{
	char dir[sizeof sa->sun_path];
	int rc = ipcx_name_check(name);
	if (rc)
		return rc;
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	if (opts && opts->dir) {
		if (snprintf(dir, sizeof dir, "%s", opts->dir) >= (int)sizeof dir)
			return -ENAMETOOLONG;
	} else if ((rc = ipcx_sock_dir(dir, sizeof dir))) {
		return rc;
	}
	if (snprintf(sa->sun_path, sizeof sa->sun_path, "%s/%s", dir, name) >=
	    (int)sizeof sa->sun_path)
		return -ENAMETOOLONG;
	return 0;
}

static void pid_name(char *buf, size_t len, pid_t pid)
{
	snprintf(buf, len, "pid.%d", (int)pid);
}

/* ---- credentials and policy --------------------------------------------- */

static int read_cred(int fd, ipcx_cred *c)
{
	struct ucred uc;
	socklen_t l = sizeof uc;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &l) < 0)
		return -errno;
	c->pid = uc.pid;
	c->uid = uc.uid;
	c->gid = uc.gid;
	c->pidfd = -1;
	int pfd;
	l = sizeof pfd;
	/* The kernel's pidfd names the very process that connected, unlike a
	 * pidfd_open(pid) made now, which a recycled pid could fool. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pfd, &l) == 0 && pfd >= 0) {
		(void)fcntl(pfd, F_SETFD, FD_CLOEXEC);
		c->pidfd = pfd;
	}
	return 0;
}

static int policy_allows(const ipcx_sock_policy *p, const ipcx_cred *c)
{
	int ok = c->uid == geteuid() || c->uid == 0;
	for (size_t i = 0; p && !ok && i < p->n_uids; i++)
		ok = p->uids[i] == c->uid;
	for (size_t i = 0; p && !ok && i < p->n_gids; i++)
		ok = p->gids[i] == c->gid;
	if (!ok)
		return -EACCES;
	if (p && p->check) {
		int rc = p->check(c, p->check_arg);
		return rc < 0 ? rc : 0;
	}
	return 0;
}

static ipcx_wait default_wait(const ipcx_sock_opts *opts)
{
	if (opts && opts->wait.mode != IPCX_WAIT_DEFAULT)
		return opts->wait;
	return IPCX_WAIT_INIT(IPCX_WAIT_BLOCK);
}

/* ---- socket objects ----------------------------------------------------- */

static void sock_free(ipcx_sock *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	if (s->peer.pidfd >= 0)
		close(s->peer.pidfd);
	ipcx__sock_regions_free(s);
	free(s);
}

/*
 * Largest payload the kernel builds into one SEQPACKET message, besides the
 * send buffer limit: the skb allocator has its own ceiling (a few MiB,
 * depending on the build) and answers ENOBUFS above it.  Found once per
 * process by bisection with a NULL buffer: a length the kernel accepts
 * fails later with EFAULT, so nothing is copied and nothing is sent.
 */
static size_t kernel_max_msg(int fd)
{
	static _Atomic size_t cached;
	size_t c = atomic_load_explicit(&cached, memory_order_relaxed); /* a plain value */
	if (c)
		return c;
	size_t lo = 1, hi = (size_t)1 << 28;
	while (lo < hi) {
		size_t mid = lo + (hi - lo + 1) / 2;
		struct iovec iov = { NULL, mid };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n = sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EFAULT)
			lo = mid;
		else if (n < 0 && (errno == ENOBUFS || errno == EMSGSIZE))
			hi = mid - 1;
		else
			return hi; /* unexpected (sent?): do not cache a guess */
	}
	atomic_store_explicit(&cached, lo, memory_order_relaxed);
	return lo;
}

/* Wrap a connected fd (taking it).  The send buffer is raised as far as the
 * system allows, since it bounds the largest message. */
static int sock_wrap(ipcx_sock **out, int fd, const ipcx_sock_opts *opts)
{
	ipcx_sock *s = calloc(1, sizeof *s);
	if (!s) {
		close(fd);
		return -ENOMEM;
	}
	/* Data sockets block; every call that must not passes MSG_DONTWAIT.
	 * So an untimed blocking wait is one system call (recvmsg or sendmsg
	 * sleeping in the kernel), not a failed try, a poll and a retry. */
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && (fl & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	s->fd = fd;
	s->peer.pidfd = -1;
	s->wait = default_wait(opts);
	int rc = read_cred(fd, &s->peer);
	if (rc) {
		sock_free(s);
		return rc;
	}
	int want = 4 << 20, got = 0;
	socklen_t l = sizeof got;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
	if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &got, &l) < 0)
		got = 0;
	/* unix_dgram_sendmsg refuses len > sk_sndbuf - 32 */
	size_t lim = got > 64 ? (size_t)got - 32 : 0, kmax = kernel_max_msg(fd);
	if (kmax < lim)
		lim = kmax;
	s->max_msg = lim > sizeof(struct wire_hdr) ? lim - sizeof(struct wire_hdr) : 0;
	*out = s;
	return 0;
}

/* ---- sending ------------------------------------------------------------ */

/* An untimed IPCX_WAIT_BLOCK: the kernel's own blocking call serves it. */
static bool untimed_block(const ipcx_wait *w)
{
	return w->mode == IPCX_WAIT_BLOCK && w->timeout_ns < 0;
}

/* Run op as one blocking system call (*block set for its duration); a
 * signal (-EAGAIN from EINTR) retries it, so signals never end the wait. */
static int blocking_op(int (*op)(void *), void *arg, int *block)
{
	*block = 1;
	int r;
	while ((r = op(arg)) == -EAGAIN)
		;
	*block = 0;
	return r;
}

struct send_args {
	int fd;
	struct msghdr *m;
	int block;
};

static int send_op(void *arg)
{
	struct send_args *a = arg;
	ssize_t n = sendmsg(a->fd, a->m, MSG_NOSIGNAL | (a->block ? 0 : MSG_DONTWAIT));
	if (n >= 0)
		return 0;
	switch (errno) {
	case EAGAIN:
	case EINTR: /* nothing was queued: try again */
		return -EAGAIN;
	case ECONNRESET:
	case ECONNREFUSED:
	case ENOTCONN:
		return -EPIPE;
	default:
		return -errno;
	}
}

IPCX_HIDDEN int ipcx__sock_sendmsg(ipcx_sock *s, struct wire_hdr *h, const void *buf, size_t len,
				   const int *fds, unsigned nfds, const ipcx_wait *w)
{
	if (!s || (len && !buf) || nfds > IPCX_SOCK_MAX_FDS || (nfds && !fds))
		return -EINVAL;
	if (len > s->max_msg)
		return -EMSGSIZE;
	h->magic = WIRE_MAGIC;
	h->version = WIRE_VERSION;
	h->nfds = (uint8_t)nfds;
	struct iovec iov[2] = { { h, sizeof *h }, { (void *)buf, len } };
	union {
		char buf[CMSG_SPACE(sizeof(int) * IPCX_SOCK_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	if (nfds) {
		memset(&ctl, 0, sizeof ctl);
		m.msg_control = ctl.buf;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	ipcx_wait pw = ipcx__wait_resolve(w, &s->wait);
	struct send_args a = { s->fd, &m, 0 };
	if (untimed_block(&pw))
		return blocking_op(send_op, &a, &a.block);
	return ipcx__fd_wait_op(&pw, ipcx__deadline(&pw), s->fd, POLLOUT, send_op, &a);
}

static int do_send(ipcx_sock *s, uint8_t type, const void *buf, size_t len, const int *fds,
		   unsigned nfds, const ipcx_wait *w)
{
	struct wire_hdr h = { .type = type };
	return ipcx__sock_sendmsg(s, &h, buf, len, fds, nfds, w);
}

IPCX_API int ipcx_sock_send(ipcx_sock *s, const void *buf, size_t len, const ipcx_wait *w)
{
	return do_send(s, WIRE_DATA, buf, len, NULL, 0, w);
}

IPCX_API int ipcx_sock_sendfds(ipcx_sock *s, const void *buf, size_t len, const int *fds,
			       unsigned nfds, const ipcx_wait *w)
{
	return do_send(s, WIRE_DATA, buf, len, fds, nfds, w);
}

/* ---- receiving ---------------------------------------------------------- */

IPCX_HIDDEN void ipcx__sock_close_fds(const int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

/* One recvmsg.  Collects every fd that arrived into a->fds, closing any
 * beyond the limit, so that no path below can leak one. */
static int recv_op(void *arg)
{
	struct recv_args *a = arg;
	union {
		char buf[CMSG_SPACE(sizeof(int) * IPCX_SOCK_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov[2] = { { &a->h, sizeof a->h }, { a->buf, a->cap } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = a->cap ? 2 : 1 };
	if (!a->peek) {
		m.msg_control = ctl.buf;
		m.msg_controllen = sizeof ctl.buf;
	}
	int flags = (a->block ? 0 : MSG_DONTWAIT) | MSG_CMSG_CLOEXEC | MSG_TRUNC |
		    (a->peek ? MSG_PEEK : 0);
	ssize_t n = recvmsg(a->fd, &m, flags);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return -EAGAIN;
		return errno == ECONNRESET ? -EPIPE : -errno;
	}
	a->nfds = 0;
	for (struct cmsghdr *c = m.msg_controllen ? CMSG_FIRSTHDR(&m) : NULL; c;
	     c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		unsigned k = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (unsigned i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
			if (a->nfds < IPCX_SOCK_MAX_FDS)
				a->fds[a->nfds++] = fd;
			else
				close(fd);
		}
	}
	if (n == 0)
		return -EPIPE; /* every ipcx message has a header: this is the end */
	int rc = 0;
	if ((size_t)n < sizeof a->h || a->h.magic != WIRE_MAGIC || a->h.version != WIRE_VERSION ||
	    a->h.nfds > IPCX_SOCK_MAX_FDS)
		rc = -EBADMSG;
	else if (!a->peek && (m.msg_flags & MSG_CTRUNC))
		/* Our control buffer holds every fd a valid message carries, so a
		 * truncation means the kernel could not install them here (the
		 * fd limit), or the sender sent more than it announced. */
		rc = a->nfds < a->h.nfds ? -EMFILE : -EBADMSG;
	else if (!a->peek && a->nfds != a->h.nfds)
		rc = -EBADMSG;
	else if (!a->peek && (size_t)n - sizeof a->h > a->cap)
		rc = -EMSGSIZE;
	if (rc == -EMSGSIZE && a->h.type == WIRE_REGION_INTRO)
		return rc; /* its fd kept: ipcx__sock_recvmsg registers the region */
	if (rc) {
		ipcx__sock_close_fds(a->fds, a->nfds);
		a->nfds = 0;
		return rc;
	}
	return (int)((size_t)n - sizeof a->h);
}

IPCX_HIDDEN ssize_t ipcx__sock_recvmsg(ipcx_sock *s, struct recv_args *a, const ipcx_wait *w)
{
	ipcx_wait pw = ipcx__wait_resolve(w, &s->wait);
	a->fd = s->fd;
	if (a->cap > INT32_MAX)
		a->cap = INT32_MAX; /* lengths come back as an int */
	ssize_t n = untimed_block(&pw)
			    ? blocking_op(recv_op, a, &a->block)
			    : ipcx__fd_wait_op(&pw, ipcx__deadline(&pw), s->fd, POLLIN, recv_op, a);
	/* An introduction whose small message did not fit: the message is lost
	 * but the region is still registered, or the connection's later
	 * references to it could never resolve. */
	if (n == -EMSGSIZE && a->nfds)
		(void)ipcx__sock_region_stray(s, a);
	return n;
}

IPCX_API ssize_t ipcx_sock_recvfds(ipcx_sock *s, void *buf, size_t cap, int *fds,
				   unsigned maxfds, unsigned *nfds, const ipcx_wait *w)
{
	if (nfds)
		*nfds = 0;
	if (!s || (cap && !buf) || (maxfds && (!fds || !nfds)))
		return -EINVAL;
	struct recv_args a = { .buf = buf, .cap = cap };
	ssize_t n = ipcx__sock_recvmsg(s, &a, w);
	if (n < 0)
		return n;
	if (a.h.type == WIRE_REGION_INTRO || a.h.type == WIRE_REGION_REF)
		return ipcx__sock_region_stray(s, &a);
	if (a.h.type != WIRE_DATA && a.h.type != WIRE_REGION) {
		ipcx__sock_close_fds(a.fds, a.nfds);
		return -EBADMSG;
	}
	if (a.nfds > maxfds) {
		ipcx__sock_close_fds(a.fds, a.nfds);
		return -EMSGSIZE;
	}
	if (a.nfds)
		memcpy(fds, a.fds, sizeof(int) * a.nfds);
	if (nfds)
		*nfds = a.nfds;
	return n;
}

IPCX_API ssize_t ipcx_sock_recv(ipcx_sock *s, void *buf, size_t cap, const ipcx_wait *w)
{
	int fds[IPCX_SOCK_MAX_FDS];
	unsigned n = 0;
	ssize_t rc = ipcx_sock_recvfds(s, buf, cap, fds, IPCX_SOCK_MAX_FDS, &n, w);
	ipcx__sock_close_fds(fds, n);
	return rc;
}

IPCX_API ssize_t ipcx_sock_next_size(ipcx_sock *s, const ipcx_wait *w)
{
	if (!s)
		return -EINVAL;
	struct recv_args a = { .peek = 1 };
	return ipcx__sock_recvmsg(s, &a, w);
}

/* ---- listening and connecting ------------------------------------------- */

/* Is a live listener behind this socket file?  (A stale file refuses.) */
static int endpoint_alive(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	int rc = connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0 ? 1 : -errno;
	close(fd);
	if (rc == -EAGAIN)
		rc = 1; /* alive, just busy */
	return rc == -ECONNREFUSED ? 0 : rc;
}

static int listen_at(ipcx_listener **out, const char *name, const ipcx_sock_opts *opts)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (opts && (opts->mode & ~0777u))
		return -EINVAL;
	struct sockaddr_un sa, tmp;
	int rc = endpoint_addr(&sa, name, opts);
	if (rc)
		return rc;
	/* Bind under a temporary name, set the mode, then rename into place
	 * without replacing: the endpoint never exists with the umask's mode,
	 * and two listeners cannot both win the name.  The temporary name is
	 * short (so any endpoint name that fits has room for it), unique per
	 * process and call, and holds a '~', which endpoint names cannot. */
	static _Atomic unsigned tmp_seq;
	tmp = sa;
	char *slash = strrchr(tmp.sun_path, '/');
	size_t room = sizeof tmp.sun_path - (size_t)(slash + 1 - tmp.sun_path);
	/* relaxed: only uniqueness matters */
	unsigned seq = atomic_fetch_add_explicit(&tmp_seq, 1, memory_order_relaxed);
	if ((size_t)snprintf(slash + 1, room, ".~%x.%x", (unsigned)getpid(), seq) >= room)
		return -ENAMETOOLONG;
	ipcx_listener *l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	l->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (l->fd < 0) {
		rc = -errno;
		free(l);
		return rc;
	}
	(void)unlink(tmp.sun_path); /* our own leftover from a crash with this pid */
	if (bind(l->fd, (struct sockaddr *)&tmp, sizeof tmp) < 0 ||
	    chmod(tmp.sun_path, opts && opts->mode ? opts->mode : 0600) < 0 ||
	    listen(l->fd, opts && opts->backlog > 0 ? opts->backlog : 64) < 0) {
		rc = -errno;
		goto fail;
	}
	for (int tries = 0;; tries++) {
		if (renameat2(AT_FDCWD, tmp.sun_path, AT_FDCWD, sa.sun_path, RENAME_NOREPLACE) == 0)
			break;
		rc = -errno;
		if (rc != -EEXIST || tries > 2)
			goto fail;
		int alive = endpoint_alive(&sa);
		if (alive != 0) {
			rc = alive > 0 ? -EEXIST : alive;
			goto fail;
		}
		(void)unlink(sa.sun_path); /* stale: its listener is gone */
	}
	memcpy(l->path, sa.sun_path, sizeof l->path);
	struct stat st;
	if (stat(l->path, &st) == 0) {
		l->dev = st.st_dev;
		l->ino = st.st_ino;
	}
	l->wait = default_wait(opts);
	if (opts && opts->policy) {
		l->policy = *opts->policy;
		l->has_policy = 1;
	}
	*out = l;
	return 0;
fail:
	(void)unlink(tmp.sun_path);
	close(l->fd);
	free(l);
	return rc;
}

IPCX_API int ipcx_listen(ipcx_listener **out, const char *name, const ipcx_sock_opts *opts)
{
	return listen_at(out, name, opts);
}

IPCX_API int ipcx_listen_pid(ipcx_listener **out, const ipcx_sock_opts *opts)
{
	char name[32];
	pid_name(name, sizeof name, getpid());
	return listen_at(out, name, opts);
}

static int accept_op(void *arg)
{
	int *fd = arg;
	int c = accept4(*fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (c >= 0)
		return c;
	/* A connection that went away before we took it: wait for the next. */
	if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
		return -EAGAIN;
	return -errno;
}

IPCX_API int ipcx_accept(ipcx_listener *l, ipcx_sock **out, const ipcx_wait *w)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!l)
		return -EINVAL;
	ipcx_wait pw = ipcx__wait_resolve(w, &l->wait);
	uint64_t deadline = ipcx__deadline(&pw);
	for (;;) {
		int fd = ipcx__fd_wait_op(&pw, deadline, l->fd, POLLIN, accept_op, &l->fd);
		if (fd < 0)
			return fd;
		ipcx_sock *s;
		ipcx_sock_opts o = { .wait = l->wait };
		int rc = sock_wrap(&s, fd, &o);
		if (rc)
			return rc;
		int verdict = policy_allows(l->has_policy ? &l->policy : NULL, &s->peer);
		struct wire_hello hello = { .version = WIRE_VERSION, .status = verdict ? -EACCES : 0 };
		/* A fresh connection always has room for this; never wait on a
		 * peer we may be refusing. */
		rc = do_send(s, WIRE_HELLO, &hello, sizeof hello, NULL, 0,
			     &IPCX_WAIT_INIT(IPCX_WAIT_NONBLOCK));
		if (!verdict && !rc) {
			*out = s;
			return 0;
		}
		sock_free(s);
		if (verdict)
			return -EACCES;
		if (rc != -EPIPE)
			return rc;
		/* The peer gave up before our verdict: wait for the next one. */
	}
}

struct connect_args {
	int fd;
	const struct sockaddr_un *sa;
};

static int connect_op(void *arg)
{
	struct connect_args *a = arg;
	if (connect(a->fd, (const struct sockaddr *)a->sa, sizeof *a->sa) == 0 || errno == EISCONN)
		return 0;
	/* EAGAIN: the listener's queue is full (not pollable: the caller retries). */
	return errno == EINTR ? -EAGAIN : -errno;
}

static int connect_at(ipcx_sock **out, const char *name, const ipcx_sock_opts *opts,
		      const ipcx_wait *w)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	struct sockaddr_un sa;
	int rc = endpoint_addr(&sa, name, opts);
	if (rc)
		return rc;
	ipcx_wait dflt = default_wait(opts);
	ipcx_wait pw = ipcx__wait_resolve(w, &dflt);
	if (pw.mode > IPCX_WAIT_NONBLOCK)
		return -EINVAL;
	uint64_t deadline = ipcx__deadline(&pw);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	struct connect_args ca = { fd, &sa };
	for (;;) {
		rc = connect_op(&ca);
		if (rc != -EAGAIN || pw.mode == IPCX_WAIT_NONBLOCK)
			break;
		if (ipcx__now_ns() >= deadline) {
			rc = -ETIMEDOUT;
			break;
		}
		struct timespec ts = { 0, 1000000 }; /* a full backlog: retry each ms */
		nanosleep(&ts, NULL);
	}
	if (rc) {
		close(fd);
		return rc;
	}
	ipcx_sock *s;
	if ((rc = sock_wrap(&s, fd, opts)))
		return rc;
	if (policy_allows(opts ? opts->policy : NULL, &s->peer)) {
		sock_free(s);
		return -EPERM;
	}
	/* Wait for the listener's verdict, within what is left of the deadline. */
	struct wire_hello hello;
	struct recv_args a = { .buf = &hello, .cap = sizeof hello };
	ipcx_wait hw = pw;
	if (deadline != UINT64_MAX) {
		uint64_t now = ipcx__now_ns();
		hw.timeout_ns = deadline > now ? (int64_t)(deadline - now) : 0;
	}
	ssize_t n = ipcx__sock_recvmsg(s, &a, &hw);
	if (n >= 0) {
		ipcx__sock_close_fds(a.fds, a.nfds);
		if (a.h.type != WIRE_HELLO || n != (ssize_t)sizeof hello ||
		    hello.version != WIRE_VERSION)
			n = -EPROTO;
		else if (hello.status)
			n = hello.status == -EACCES ? -EACCES : -EPROTO;
	} else if (n == -EPIPE) {
		n = -ECONNREFUSED; /* the listener closed without a verdict */
	}
	if (n < 0) {
		sock_free(s);
		return (int)n;
	}
	*out = s;
	return 0;
}

IPCX_API int ipcx_connect(ipcx_sock **out, const char *name, const ipcx_sock_opts *opts,
			  const ipcx_wait *w)
{
	return connect_at(out, name, opts, w);
}

IPCX_API int ipcx_connect_pid(ipcx_sock **out, pid_t pid, const ipcx_sock_opts *opts,
			      const ipcx_wait *w)
{
	char name[32];
	if (pid <= 0) {
		if (out)
			*out = NULL;
		return -EINVAL;
	}
	pid_name(name, sizeof name, pid);
	return connect_at(out, name, opts, w);
}

IPCX_API int ipcx_sock_pair(ipcx_sock **a, ipcx_sock **b, const ipcx_sock_opts *opts)
{
	if (!a || !b)
		return -EINVAL;
	*a = *b = NULL;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		return -errno;
	int rc = sock_wrap(a, sv[0], opts);
	if (rc) {
		close(sv[1]);
		return rc;
	}
	if ((rc = sock_wrap(b, sv[1], opts))) {
		sock_free(*a);
		*a = NULL;
	}
	return rc;
}

/* ---- accessors ---------------------------------------------------------- */

IPCX_API int ipcx_listener_fd(const ipcx_listener *l)
{
	return l ? l->fd : -EINVAL;
}

IPCX_API const char *ipcx_listener_path(const ipcx_listener *l)
{
	return l ? l->path : NULL;
}

IPCX_API int ipcx_listener_close(ipcx_listener *l)
{
	if (!l)
		return 0;
	/* Remove the name only if it is still ours (a successor may hold it). */
	struct stat st;
	if (stat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
		(void)unlink(l->path);
	close(l->fd);
	free(l);
	return 0;
}

IPCX_API int ipcx_sock_peer(const ipcx_sock *s, ipcx_cred *cred)
{
	if (!s || !cred)
		return -EINVAL;
	*cred = s->peer;
	return 0;
}

IPCX_API int ipcx_sock_fd(const ipcx_sock *s)
{
	return s ? s->fd : -EINVAL;
}

IPCX_API size_t ipcx_sock_max_msg(const ipcx_sock *s)
{
	return s ? s->max_msg : 0;
}

IPCX_API int ipcx_sock_close(ipcx_sock *s)
{
	sock_free(s);
	return 0;
}
