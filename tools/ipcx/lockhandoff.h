/*
 * Lock ping-pong between two processes through three locks (used by the
 * lock-* bench rows and the spin-vs-sem experiment).
 *
 * Every hand-off releases a lock the other process is blocked acquiring.  A
 * holds L0 and L1 and B holds L2 at the start; hand-off k (counted from 0 by
 * both sides) releases L[-k mod 3] and the other side acquires it.  After
 * three round trips the pattern repeats; nobody ever re-takes a lock it has
 * just released, so each acquisition really waits for the other process.
 */
#ifndef IPCX_TOOL_LOCKHANDOFF_H
#define IPCX_TOOL_LOCKHANDOFF_H

#include <ipcx/sync.h>

struct handoff {
	ipcx_lock l[3];
};

static inline int handoff_init(struct handoff *h, uint32_t kind)
{
	for (int i = 0; i < 3; i++) {
		int rc = ipcx_lock_init(&h->l[i], kind);
		if (rc) {
			while (i-- > 0)
				ipcx_lock_destroy(&h->l[i]);
			return rc;
		}
	}
	return 0;
}

static inline void handoff_destroy(struct handoff *h)
{
	for (int i = 0; i < 3; i++)
		ipcx_lock_destroy(&h->l[i]);
}

/* Each side, before the first hand-off: first != 0 for the side that
 * releases first. */
static inline int handoff_start(struct handoff *h, int first)
{
	if (!first)
		return ipcx_lock_acquire(&h->l[2]);
	int rc = ipcx_lock_acquire(&h->l[0]);
	return rc ? rc : ipcx_lock_acquire(&h->l[1]);
}

static inline ipcx_lock *handoff_lock(struct handoff *h, uint64_t k)
{
	return &h->l[(3 - k % 3) % 3];
}

#endif
