/* Regions over a socket: passed by fd each time (ipcx_sock_send_region), or
 * introduced once and then referenced by id (ipcx_sock_send_region_ref). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sock_internal.h"

#define REGION_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

/* Seal an anonymous region's memfd so that the receiver's mapping can never
 * lose its pages under it (sealing twice is harmless).  Returns its fd. */
static int seal_region(ipcx_region *r)
{
	if (!r || ipcx_region_name(r))
		return -EINVAL;
	int fd = ipcx_region_fd(r);
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return errno == EINVAL ? -EINVAL : -errno;
	if ((seals & REGION_SEALS) != REGION_SEALS &&
	    fcntl(fd, F_ADD_SEALS, REGION_SEALS | F_SEAL_SEAL) < 0)
		return -errno; /* -EPERM: someone sealed it without these */
	return fd;
}

/* Without these seals the sender could shrink the object under our mapping
 * and turn our next access into SIGBUS. */
static int check_seals(int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);
	return seals >= 0 && (seals & REGION_SEALS) == REGION_SEALS ? 0 : -EBADMSG;
}

IPCX_API int ipcx_sock_send_region(ipcx_sock *s, ipcx_region *r, const void *buf, size_t len,
				   const ipcx_wait *w)
{
	if (!s)
		return -EINVAL;
	int fd = seal_region(r);
	if (fd < 0)
		return fd;
	struct wire_hdr h = { .type = WIRE_REGION };
	return ipcx__sock_sendmsg(s, &h, buf, len, &fd, 1, w);
}

IPCX_API ssize_t ipcx_sock_recv_region(ipcx_sock *s, ipcx_region **out, uint32_t kind,
				       void *buf, size_t cap, const ipcx_wait *w)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	int fd = -1;
	unsigned nfds = 0;
	ssize_t n = ipcx_sock_recvfds(s, buf, cap, &fd, 1, &nfds, w);
	if (n < 0)
		return n;
	int rc = nfds != 1 ? -EBADMSG /* a plain message */ : check_seals(fd);
	if (!rc)
		rc = ipcx_region_open_fd(out, fd, kind);
	if (nfds)
		close(fd);
	return rc ? rc : n;
}

/* ---- by reference ------------------------------------------------------- */

IPCX_HIDDEN void ipcx__sock_regions_free(ipcx_sock *s)
{
	for (unsigned i = 0; s->got && i < IPCX_SOCK_MAX_REGIONS; i++)
		ipcx_region_close(s->got->r[i].r);
	free(s->got);
	free(s->sent);
	s->got = NULL;
	s->sent = NULL;
}

/* The id this connection gave region (dev, ino), or 0 if it has none. */
static uint32_t sent_id(struct sock_sent *t, dev_t dev, ino_t ino)
{
	unsigned i = t->last;
	if (i < t->n && t->r[i].ino == ino && t->r[i].dev == dev)
		return i + 1;
	for (i = 0; i < t->n; i++)
		if (t->r[i].ino == ino && t->r[i].dev == dev) {
			t->last = i;
			return i + 1;
		}
	return 0;
}

IPCX_API int ipcx_sock_send_region_ref(ipcx_sock *s, ipcx_region *r, size_t off, size_t len,
				       const void *buf, size_t buflen, const ipcx_wait *w)
{
	if (!s || !r || ipcx_region_name(r))
		return -EINVAL;
	uint64_t end;
	if (ipcx__add_overflow(off, len, &end) || end > ipcx_region_size(r))
		return -EINVAL;
	if (!s->sent && !(s->sent = calloc(1, sizeof *s->sent)))
		return -ENOMEM;
	struct sock_sent *t = s->sent;
	/* The memfd's identity, not the handle's address or fd number: those
	 * are reused by the next region once this one is closed, while the
	 * peer still holds this one under its id.  The inode stays allocated
	 * (so its number unique) while the peer's mapping keeps it alive. */
	struct stat st;
	if (fstat(ipcx_region_fd(r), &st) < 0)
		return -errno;
	struct wire_hdr h = { .type = WIRE_REGION_REF, .offset = off, .length = len };
	h.region_id = sent_id(t, st.st_dev, st.st_ino);
	if (h.region_id)
		return ipcx__sock_sendmsg(s, &h, buf, buflen, NULL, 0, w);
	if (t->n == IPCX_SOCK_MAX_REGIONS)
		return -ENOSPC;
	int fd = seal_region(r);
	if (fd < 0)
		return fd;
	h.type = WIRE_REGION_INTRO;
	h.region_id = t->n + 1;
	int rc = ipcx__sock_sendmsg(s, &h, buf, buflen, &fd, 1, w);
	if (rc)
		return rc; /* nothing was queued: the peer does not know it */
	t->r[t->n].dev = st.st_dev;
	t->r[t->n].ino = st.st_ino;
	t->last = t->n++;
	return 0;
}

/* Register the region an INTRO carries under its id.  Takes the fd. */
static int introduce(ipcx_sock *s, const struct wire_hdr *h, int fd)
{
	uint32_t id = h->region_id;
	int rc = 0;
	if (!s->got && !(s->got = calloc(1, sizeof *s->got)))
		rc = -ENOMEM;
	else if (id == 0 || id > IPCX_SOCK_MAX_REGIONS || s->got->r[id - 1].r)
		rc = -EBADMSG; /* an honest sender never reuses or exceeds ids */
	else if (!(rc = check_seals(fd)))
		rc = ipcx_region_open_fd(&s->got->r[id - 1].r, fd, IPCX_KIND_ANY);
	if (!rc) {
		ipcx_region_info info;
		rc = ipcx_region_stat(s->got->r[id - 1].r, &info);
		s->got->r[id - 1].kind = info.kind;
		if (rc) {
			ipcx_region_close(s->got->r[id - 1].r);
			s->got->r[id - 1].r = NULL;
		}
	}
	close(fd);
	return rc;
}

/* Process a received INTRO or REF message into *v: 0 or -errno.  Every fd
 * that came with it is consumed. */
static int resolve(ipcx_sock *s, struct recv_args *a, ipcx_sock_view *v, uint32_t kind)
{
	const struct wire_hdr *h = &a->h;
	int rc;
	if (h->type == WIRE_REGION_INTRO && a->nfds == 1) {
		rc = introduce(s, h, a->fds[0]);
		a->nfds = 0;
		if (rc)
			return rc;
	} else if (h->type != WIRE_REGION_REF || a->nfds) {
		ipcx__sock_close_fds(a->fds, a->nfds);
		a->nfds = 0;
		return -EBADMSG;
	}
	/* The peer wrote id, offset and length: bounds-check all three against
	 * our own copy of the region's size before forming a pointer. */
	uint32_t id = h->region_id;
	uint64_t off = h->offset, len = h->length, end;
	const ipcx_region *r =
		s->got && id >= 1 && id <= IPCX_SOCK_MAX_REGIONS ? s->got->r[id - 1].r : NULL;
	if (!r || ipcx__add_overflow(off, len, &end) || end > ipcx_region_size(r))
		return -EBADMSG;
	if (kind != IPCX_KIND_ANY && kind != s->got->r[id - 1].kind)
		return -EMEDIUMTYPE;
	v->data = (char *)ipcx_region_data(r) + off;
	v->len = (size_t)len;
	v->offset = (size_t)off;
	v->region_id = id;
	v->region = r;
	return 0;
}

IPCX_HIDDEN int ipcx__sock_region_stray(ipcx_sock *s, struct recv_args *a)
{
	ipcx_sock_view v;
	(void)resolve(s, a, &v, IPCX_KIND_ANY);
	return -EBADMSG;
}

IPCX_API ssize_t ipcx_sock_recv_region_ref(ipcx_sock *s, ipcx_sock_view *v, uint32_t kind,
					   void *buf, size_t cap, const ipcx_wait *w)
{
	if (v)
		memset(v, 0, sizeof *v);
	if (!s || !v || (cap && !buf))
		return -EINVAL;
	struct recv_args a = { .buf = buf, .cap = cap };
	ssize_t n = ipcx__sock_recvmsg(s, &a, w);
	if (n < 0)
		return n;
	int rc = resolve(s, &a, v, kind);
	if (rc) {
		memset(v, 0, sizeof *v);
		return rc;
	}
	return n;
}
