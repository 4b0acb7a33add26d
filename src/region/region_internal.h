/* Region internals shared with the modules that build on regions. */
#ifndef IPCX_REGION_INTERNAL_H
#define IPCX_REGION_INTERNAL_H

#include <ipcx/region.h>

#include "../core/internal.h"

/* "IPCXRGN1" little-endian */
#define IPCX_REGION_MAGIC 0x314e475258435049ull
#define IPCX_REGION_ABI 1u
#define IPCX_REGION_HDR_BYTES 4096u

enum { IPCX_REGION_INITIALISING = 0, IPCX_REGION_READY = 0x52454459u /* "REDY" */ };

/* The header page: an ABI.  Fixed-width fields only; never reorder. */
struct ipcx__region_hdr {
	uint64_t magic;
	uint32_t abi;
	uint32_t kind;
	uint32_t hdr_bytes;       /* offset of the data area */
	_Atomic uint32_t state;   /* INITIALISING until the creator publishes */
	uint64_t data_size;       /* bytes of data after the header */
	int32_t creator_pid;
	uint32_t creator_uid;
	uint64_t created_ns;
	uint32_t flags;           /* enum ipcx_region_flags asked at creation */
	uint32_t reserved0;
	uint8_t reserved[64];
};
_Static_assert(sizeof(struct ipcx__region_hdr) == 120, "region header is an ABI");

struct ipcx_region {
	struct ipcx__region_hdr *hdr;
	void *data;
	size_t data_size;
	size_t map_size;
	int fd;
	int huge;
	uint64_t page_size;
	char note[256];
	char *name; /* NULL if anonymous */
};

/* Create without publishing: the module initialises the data area, then
 * calls ipcx__region_publish().  Openers see -EAGAIN until then. */
IPCX_HIDDEN int ipcx__region_create(ipcx_region **out, const char *name, uint32_t kind,
				    size_t size, const ipcx_region_opts *opts);
IPCX_HIDDEN int ipcx__region_create_anon(ipcx_region **out, uint32_t kind, size_t size,
					 const ipcx_region_opts *opts);
IPCX_HIDDEN void ipcx__region_publish(ipcx_region *r);

#endif
