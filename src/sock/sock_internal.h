/* Socket internals shared by sock.c (connections, messages) and
 * sock_region.c (regions passed by fd and by reference). */
#ifndef IPCX_SOCK_INTERNAL_H
#define IPCX_SOCK_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>

#include <ipcx/sock.h>

#include "../core/internal.h"

/*
 * Wire format (version 1).  Every message starts with this 64-byte header,
 * sent in the same sendmsg as the payload (an iovec, no copy).  It makes a
 * 0-byte message distinct from the end of the connection (recvmsg returns 0
 * for both), says how many fds travel with the message, and tells a region
 * from plain data.  It is 64 bytes so that the payload stays cache-line
 * aligned inside the kernel's buffer: with a 4- or 8-byte header the
 * kernel's copies of a 1 MiB payload were measured 4 to 8 times slower.
 *
 * WIRE_REGION_INTRO and WIRE_REGION_REF name bytes of a region by the
 * sender's id for it on this connection: an INTRO carries the region's fd
 * (once per region and connection), a REF carries none.  region_id, offset
 * and length are meaningful for those two types only and zero otherwise.
 */
enum {
	WIRE_DATA = 1,
	WIRE_REGION = 2,
	WIRE_HELLO = 3,
	WIRE_REGION_INTRO = 4,
	WIRE_REGION_REF = 5,
};
#define WIRE_MAGIC 0x7849u /* "Ix" */
#define WIRE_VERSION 1u

struct wire_hdr {
	uint16_t magic;
	uint8_t version;
	uint8_t type;
	uint8_t nfds;
	uint8_t reserved0[3];
	uint32_t region_id; /* 1..IPCX_SOCK_MAX_REGIONS */
	uint32_t reserved1;
	uint64_t offset;    /* into the region's data area */
	uint64_t length;
	uint8_t reserved[32]; /* zero; ignored by version 1 receivers */
};
_Static_assert(sizeof(struct wire_hdr) == 64, "wire header is an ABI");
_Static_assert(offsetof(struct wire_hdr, region_id) == 8, "wire header is an ABI");
_Static_assert(offsetof(struct wire_hdr, offset) == 16, "wire header is an ABI");
_Static_assert(offsetof(struct wire_hdr, length) == 24, "wire header is an ABI");

/* Regions this end introduced to the peer (send side).  Allocated on first
 * use, touched by the sending thread only. */
struct sock_sent {
	struct {
		dev_t dev; /* identity of the memfd: the sender's key */
		ino_t ino;
	} r[IPCX_SOCK_MAX_REGIONS];
	unsigned n;    /* ids 1..n are taken */
	unsigned last; /* index of the last hit, tried first */
};

/* The peer's regions this end holds mapped (receive side).  Allocated on
 * first use, touched by the receiving thread only. */
struct sock_got {
	struct {
		ipcx_region *r; /* our own mapping; NULL: id unknown */
		uint32_t kind;
	} r[IPCX_SOCK_MAX_REGIONS]; /* r[id - 1] */
};

struct ipcx_sock {
	int fd;
	ipcx_wait wait;
	ipcx_cred peer;
	size_t max_msg;
	struct sock_sent *sent; /* two halves: one thread may send while */
	struct sock_got *got;   /* another receives */
};

struct recv_args {
	int fd;
	struct wire_hdr h;
	void *buf;
	size_t cap;
	int fds[IPCX_SOCK_MAX_FDS];
	unsigned nfds;
	int peek;
	int block; /* a blocking recvmsg (an untimed IPCX_WAIT_BLOCK) */
};

/* Send one message whose header fields beyond magic, version and nfds are
 * already set in *h (type, region fields). */
IPCX_HIDDEN int ipcx__sock_sendmsg(ipcx_sock *s, struct wire_hdr *h, const void *buf, size_t len,
				   const int *fds, unsigned nfds, const ipcx_wait *w);
/* Receive one message into *a (fds collected, header checked). */
IPCX_HIDDEN ssize_t ipcx__sock_recvmsg(ipcx_sock *s, struct recv_args *a, const ipcx_wait *w);
IPCX_HIDDEN void ipcx__sock_close_fds(const int *fds, unsigned n);
/* A region message reached a receive that does not take regions by
 * reference: an introduction is still registered (so that the connection's
 * later references resolve), its fd closed; returns -EBADMSG. */
IPCX_HIDDEN int ipcx__sock_region_stray(ipcx_sock *s, struct recv_args *a);
IPCX_HIDDEN void ipcx__sock_regions_free(ipcx_sock *s);

#endif
