/*
 * ipcx sockets: direct messaging between processes over UNIX SOCK_SEQPACKET
 * sockets.
 *
 * A process listens on an endpoint named by a string, or by its own PID, and
 * other processes connect to that name or PID.  Each connection carries
 * whole messages (boundaries kept, never merged or split), the credentials
 * of the peer (uid, gid, pid and a pidfd), and can pass file descriptors --
 * any fd, or an ipcx region so a large payload moves without being copied.
 *
 * Endpoints are sockets in a directory only their owner can enter:
 * $XDG_RUNTIME_DIR/ipcx when XDG_RUNTIME_DIR is a private directory of the
 * caller, else /tmp/ipcx-<euid>; the directory is created 0700 and checked
 * (owner, mode, not a symlink) before every use.  A service for other users
 * gives an explicit directory (opts.dir) and a socket mode, and relies on the
 * accept policy: every connection is checked against it and a refused peer
 * learns so (-EACCES) before it can send anything.
 *
 * Errors follow <ipcx/common.h>.  Writing to a peer that went away returns
 * -EPIPE; SIGPIPE is never raised.  Every fd the library creates or receives
 * is close-on-exec.  See docs/sock.md.
 */
#ifndef IPCX_SOCK_H
#define IPCX_SOCK_H

#include <ipcx/common.h>
#include <ipcx/region.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ipcx_listener ipcx_listener;
typedef struct ipcx_sock ipcx_sock;

/* Most file descriptors one message carries. */
#define IPCX_SOCK_MAX_FDS 16

/* Who the peer is, as the kernel recorded it when the connection was made
 * (SO_PEERCRED): a peer cannot lie about it. */
typedef struct ipcx_cred {
	int32_t pid;
	uint32_t uid;
	uint32_t gid;
	int pidfd; /* a pidfd for pid (owned by the socket), or -1 where the
	              kernel offers none (SO_PEERPIDFD, Linux 6.5) */
} ipcx_cred;

/*
 * Which peers accept() lets in.  A peer is accepted when its uid is the
 * listener's effective uid or 0 (root), or is listed in uids, or its gid is
 * listed in gids; and then, if check is set, check returns 0.  A NULL policy
 * accepts the listener's own uid and root only.  connect() applies the same
 * rule to the listener it reaches.  The listener copies this struct, but the
 * arrays and check_arg it points to must stay valid while it is open.
 */
typedef struct ipcx_sock_policy {
	const uint32_t *uids;
	size_t n_uids;
	const uint32_t *gids;
	size_t n_gids;
	/* Optional: 0 to accept, a negative errno to refuse. */
	int (*check)(const ipcx_cred *peer, void *arg);
	void *check_arg;
} ipcx_sock_policy;

typedef struct ipcx_sock_opts {
	/* Directory of the endpoint; NULL for the private per-user directory.
	 * An explicit directory must exist; it is not checked for privacy. */
	const char *dir;
	/* Permission bits of the socket file (listen); 0 means 0600.  Other
	 * users can connect only if this mode and dir let them. */
	uint32_t mode;
	/* Accept / connect policy; NULL for "same uid or root". */
	const ipcx_sock_policy *policy;
	/* Default wait policy of the sockets made with these options; all
	 * zero means IPCX_WAIT_BLOCK without a deadline. */
	ipcx_wait wait;
	/* listen: queue length of connections not yet accepted; 0 = 64. */
	int backlog;
} ipcx_sock_opts;

/*
 * Listen on the endpoint `name` (the rules of ipcx_name_check).  The socket
 * file is created exclusively with opts->mode: -EEXIST if a live listener
 * holds the name.  A stale socket file left by a listener that died is
 * replaced.  opts may be NULL.
 *
 * Errors: -EINVAL bad name; -EEXIST; -ENAMETOOLONG the path does not fit a
 * socket address; -EPERM the per-user directory exists but is not private
 * (wrong owner, group/other access, or a symlink); -EACCES; -ENOMEM.
 */
IPCX_API int ipcx_listen(ipcx_listener **out, const char *name, const ipcx_sock_opts *opts);

/* Listen on the endpoint of this process's PID ("pid.<pid>"). */
IPCX_API int ipcx_listen_pid(ipcx_listener **out, const ipcx_sock_opts *opts);

/*
 * Accept one connection, check the peer against the policy and tell it the
 * outcome.  Waits as w says (NULL: the listener's default).
 *
 * Returns 0 with *out set, or: -EACCES the peer was refused by the policy
 * (it was told and disconnected; call again for the next one); -EAGAIN
 * (non-blocking) / -ETIMEDOUT nothing to accept; -EMFILE / -ENFILE; -ENOMEM.
 * One thread at a time per listener.
 */
IPCX_API int ipcx_accept(ipcx_listener *l, ipcx_sock **out, const ipcx_wait *w);

/* An fd that polls readable when a connection is waiting (owned by l). */
IPCX_API int ipcx_listener_fd(const ipcx_listener *l);

/* The path of the socket file (owned by l). */
IPCX_API const char *ipcx_listener_path(const ipcx_listener *l);

/* Stop listening: close the socket and remove its file.  Connections
 * already accepted are unaffected.  NULL is a no-op.  Returns 0. */
IPCX_API int ipcx_listener_close(ipcx_listener *l);

/*
 * Connect to the endpoint `name` and wait for the listener to accept
 * (w, NULL = the options' default wait).  The listener's credentials are
 * checked against opts->policy.
 *
 * Errors: -EINVAL bad name; -ENOENT no such endpoint; -ECONNREFUSED nobody
 * listens there (a stale file); -EACCES refused by the listener's policy, or
 * by the file system; -EPERM the listener's credentials fail our policy, or
 * the private directory is not private; -EPROTO the listener does not speak
 * the ipcx protocol; -EAGAIN / -ETIMEDOUT the listener did not accept in
 * time (the connection is abandoned).
 */
IPCX_API int ipcx_connect(ipcx_sock **out, const char *name, const ipcx_sock_opts *opts,
			  const ipcx_wait *w);

/* Connect to the endpoint of process `pid` (see ipcx_listen_pid). */
IPCX_API int ipcx_connect_pid(ipcx_sock **out, pid_t pid, const ipcx_sock_opts *opts,
			      const ipcx_wait *w);

/* A connected pair in this process (socketpair), to hand one end to a child
 * across fork.  Credentials are those of this process. */
IPCX_API int ipcx_sock_pair(ipcx_sock **a, ipcx_sock **b, const ipcx_sock_opts *opts);

/*
 * Send one message of len bytes (0 allowed) with nfds file descriptors
 * (0..IPCX_SOCK_MAX_FDS; fds may be NULL when nfds is 0).  The descriptors
 * stay owned by the caller: the peer receives duplicates.  Either the whole
 * message is queued or nothing is.
 *
 * Returns 0, or -EPIPE the peer closed or died; -EMSGSIZE larger than the
 * socket accepts (see ipcx_sock_max_msg); -EAGAIN / -ETIMEDOUT no room in
 * time; -EBADF an fd in fds is not open; -ETOOMANYREFS / -EINVAL.
 * Safe to call from one thread while another thread receives.
 */
IPCX_API int ipcx_sock_send(ipcx_sock *s, const void *buf, size_t len, const ipcx_wait *w);
IPCX_API int ipcx_sock_sendfds(ipcx_sock *s, const void *buf, size_t len, const int *fds,
			       unsigned nfds, const ipcx_wait *w);

/*
 * Receive one message into buf (cap bytes).  Returns its length (0 is a
 * valid, empty message), or -EPIPE the peer closed and every message it sent
 * has been received; -EMSGSIZE the message was longer than cap (it is
 * discarded, and any fds it carried are closed: use ipcx_sock_next_size
 * first when sizes are not known); -EAGAIN / -ETIMEDOUT; -EBADMSG the
 * message is not an ipcx message, carried fds it did not announce (they
 * are closed), or is a region reference (ipcx_sock_recv_region_ref).
 *
 * ipcx_sock_recvfds also returns the descriptors that came with it into
 * fds[0..*nfds) (close-on-exec; the caller owns and must close them).  A
 * message with more descriptors than maxfds is an error (-EMSGSIZE) and
 * leaks none.  ipcx_sock_recv closes any descriptor that arrives.
 */
IPCX_API ssize_t ipcx_sock_recv(ipcx_sock *s, void *buf, size_t cap, const ipcx_wait *w);
IPCX_API ssize_t ipcx_sock_recvfds(ipcx_sock *s, void *buf, size_t cap, int *fds,
				   unsigned maxfds, unsigned *nfds, const ipcx_wait *w);

/* Length of the next message without receiving it (waits like recv). */
IPCX_API ssize_t ipcx_sock_next_size(ipcx_sock *s, const ipcx_wait *w);

/*
 * Pass an anonymous region (ipcx_region_create_anon) with an optional small
 * message.  The region's memfd is sealed against shrinking and growing (and
 * further sealing) before it leaves, so the receiver can map it without risk
 * of SIGBUS; the sender keeps using its mapping.  -EINVAL for a named region
 * (it cannot be sealed: pass ipcx_region_fd() with ipcx_sock_sendfds, or its
 * name).  Other errors as ipcx_sock_sendfds.
 */
IPCX_API int ipcx_sock_send_region(ipcx_sock *s, ipcx_region *r, const void *buf, size_t len,
				   const ipcx_wait *w);

/*
 * Receive a region passed with ipcx_sock_send_region: its seals are checked
 * (-EBADMSG if it could still shrink or grow) and its header validated (as
 * ipcx_region_open_fd, with `kind`), then it is mapped into *out.  The small
 * message, if any, goes to buf (returns its length, as ipcx_sock_recv).  A
 * plain message where a region was expected is -EBADMSG (and is consumed).
 */
IPCX_API ssize_t ipcx_sock_recv_region(ipcx_sock *s, ipcx_region **out, uint32_t kind,
				       void *buf, size_t cap, const ipcx_wait *w);

/*
 * Regions by reference: introduce a region to the peer once, then name it.
 *
 * The first ipcx_sock_send_region_ref of a region on a connection passes its
 * memfd (sealed as by ipcx_sock_send_region) with an id the sender assigns
 * (1, 2, ... in order); every later send of the same region carries only
 * the id, an offset and a length -- no descriptor, no mapping work on either
 * side.  The receiver maps a region when it is introduced (seals checked,
 * header validated, once) and keeps that mapping in a per-connection table
 * until the socket is closed.  See docs/sock.md ("Regions by reference").
 */

/* Most distinct regions one connection introduces (per direction). */
#define IPCX_SOCK_MAX_REGIONS 64

/*
 * Send bytes [off, off + len) of the data area of anonymous region r, with
 * an optional small message (buf, buflen), by reference.  The sender knows
 * a region by its memfd's identity (st_dev, st_ino): the first send of it on
 * this connection passes the fd, later ones do not.  The bytes are not
 * copied: the peer reads them in place, so the caller must not rewrite them
 * until the peer says it is done (an application-level acknowledgement).
 *
 * Returns 0, or -EINVAL a named region, or off + len beyond the data area;
 * -ENOSPC this connection has already introduced IPCX_SOCK_MAX_REGIONS
 * other regions (the peer keeps every one mapped until the connection
 * closes: reuse a pool, or open another connection); -EPERM the memfd was
 * sealed without F_SEAL_SHRINK|F_SEAL_GROW; -EBADF; and the errors of
 * ipcx_sock_sendfds.  A send that fails leaves the region unintroduced.
 * One thread at a time sends by reference on a socket.
 */
IPCX_API int ipcx_sock_send_region_ref(ipcx_sock *s, ipcx_region *r, size_t off, size_t len,
				       const void *buf, size_t buflen, const ipcx_wait *w);

/* What ipcx_sock_recv_region_ref received: a borrowed view. */
typedef struct ipcx_sock_view {
	void *data;       /* the named bytes, inside the socket's mapping */
	size_t len;       /* how many */
	size_t offset;    /* where they start in the region's data area */
	uint32_t region_id; /* the sender's id for the region (1..64) */
	const ipcx_region *region; /* the mapping (owned by the socket) */
} ipcx_sock_view;

/*
 * Receive a region reference sent with ipcx_sock_send_region_ref into *v;
 * the small message, if any, goes to buf (returns its length, as
 * ipcx_sock_recv).
 *
 * Ownership: the mapping behind v->data and v->region belongs to the
 * socket.  It stays valid until ipcx_sock_close(s) -- not only until the
 * next receive -- whatever the sender does meanwhile: a sender that closes
 * its region, or exits, does not take the receiver's mapping away (a memfd
 * lives while anyone maps it), and the seals stop it from shrinking the
 * object.  Never ipcx_region_close(v->region).  The bytes are shared with
 * the sender, who may still write them: copy or finish with them before
 * telling the sender it may reuse them.
 *
 * Errors: -EBADMSG the message names an id this connection never
 * introduced, an out-of-range id, bytes beyond the region, re-introduces a
 * known id, carries an fd without the seals, or is not a region reference
 * (a plain message or a region passed by ipcx_sock_send_region; consumed,
 * its fds closed); -EMEDIUMTYPE the region is not of `kind` (IPCX_KIND_ANY
 * takes any; the message is consumed, the region stays known); an
 * introduction that cannot be mapped here returns its error (-EMFILE,
 * -ENOMEM, as ipcx_region_open_fd) and that region stays unknown on this
 * connection (its later references are -EBADMSG); otherwise as
 * ipcx_sock_recv.  On error *v is zeroed.
 *
 * Once references are in use on a connection, receive on it from one
 * thread at a time.  A plain receive (ipcx_sock_recv, _recvfds,
 * _recv_region) that meets a region reference returns -EBADMSG, but still
 * registers an introduction, so later references keep resolving.
 */
IPCX_API ssize_t ipcx_sock_recv_region_ref(ipcx_sock *s, ipcx_sock_view *v, uint32_t kind,
					   void *buf, size_t cap, const ipcx_wait *w);

/* The peer's credentials (both ends of a connection have them).  The pidfd
 * in *cred stays owned by the socket. */
IPCX_API int ipcx_sock_peer(const ipcx_sock *s, ipcx_cred *cred);

/* An fd that polls readable when a message (or the peer's close) is waiting
 * and writable when a send would not block (owned by s).  The socket itself
 * is in blocking mode -- an untimed IPCX_WAIT_BLOCK call is then a single
 * blocking system call -- and every ipcx call that must not block passes
 * MSG_DONTWAIT; poll it, but do not read or write it directly. */
IPCX_API int ipcx_sock_fd(const ipcx_sock *s);

/* Largest message this connection accepts (bytes of payload), from the
 * socket's send buffer size. */
IPCX_API size_t ipcx_sock_max_msg(const ipcx_sock *s);

/* Close the connection; the peer's receives end with -EPIPE after what was
 * already sent.  The regions the peer introduced (ipcx_sock_recv_region_ref)
 * are unmapped: views into them end here.  NULL is a no-op.  Returns 0. */
IPCX_API int ipcx_sock_close(ipcx_sock *s);

/* The private per-user endpoint directory (created if needed and checked)
 * into buf.  0 or -errno as ipcx_listen. */
IPCX_API int ipcx_sock_dir(char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* IPCX_SOCK_H */
