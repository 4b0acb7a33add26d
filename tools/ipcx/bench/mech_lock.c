/*
 * lock-spin, lock-futex, lock-sem, lock-sysv: how fast a lock passes from one
 * process to another.
 *
 * Ping-pong through three locks (lockhandoff.h), never anything else: every
 * "send" releases a lock the other process is blocked acquiring, every
 * "recv" is that acquisition.  The message itself sits in a shared buffer written under the lock
 * before the release and read after the acquisition, so the usual stamp check proves the hand-off
 * carried the data.  The one-way latency reported is therefore one unlock-to-lock hand-off plus a
 * 64-byte copy.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <ipcx/sync.h>

#include "../lockhandoff.h"
#include "bench.h"

#define MSG_MAX 64u

struct lock_shared {
	struct handoff h;
	unsigned char msg[MSG_MAX];
};

struct lock_state {
	uint32_t kind;
	struct lock_shared *sh;
	uint64_t k; /* hand-offs seen by this process so far */
};

static int lock_setup(const struct bench_case *c, void **state, uint32_t kind)
{
	(void)c;
	struct lock_state *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->kind = kind;
	s->sh =
	    mmap(NULL, sizeof *s->sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s->sh == MAP_FAILED) {
		free(s);
		return -errno;
	}
	int rc = handoff_init(&s->sh->h, kind);
	if (rc) {
		munmap(s->sh, sizeof *s->sh);
		free(s);
		return rc;
	}
	*state = s;
	return 0;
}

static int lock_attach(void *state, struct bench_proc *p)
{
	struct lock_state *s = state;
	s->k = 0;
	return handoff_start(&s->sh->h, p->role == BENCH_A);
}

static int lock_send(void *state, struct bench_proc *p, uint64_t seq)
{
	struct lock_state *s = state;
	bench_stamp(s->sh->msg, p->c->size, p->index, seq);
	return ipcx_lock_release(handoff_lock(&s->sh->h, s->k++));
}

static int lock_recv(void *state, struct bench_proc *p, unsigned *producer, uint64_t *seq)
{
	struct lock_state *s = state;
	int rc = ipcx_lock_acquire(handoff_lock(&s->sh->h, s->k++));
	if (rc)
		return rc;
	return bench_check(s->sh->msg, p->c->size, producer, seq);
}

static void lock_teardown(void *state)
{
	struct lock_state *s = state;
	handoff_destroy(&s->sh->h);
	munmap(s->sh, sizeof *s->sh);
	free(s);
}

#define LOCK_MECH(var, nm, ord, kind, text)                                                        \
	static int var##_setup(const struct bench_case *c, void **state, char *why, size_t whylen) \
	{                                                                                          \
		(void)why;                                                                         \
		(void)whylen;                                                                      \
		return lock_setup(c, state, kind);                                                 \
	}                                                                                          \
	static const struct bench_mech var = {                                                     \
	    .name = nm,                                                                            \
	    .desc = text,                                                                          \
	    .order = ord,                                                                          \
	    .modes = BENCH_PINGPONG,                                                               \
	    .max_size = MSG_MAX,                                                                   \
	    .in_default = 1,                                                                       \
	    .setup = var##_setup,                                                                  \
	    .attach = lock_attach,                                                                 \
	    .send = lock_send,                                                                     \
	    .recv = lock_recv,                                                                     \
	    .teardown = lock_teardown,                                                             \
	    .note = "lock-*: one-way = one unlock-to-lock hand-off between processes "             \
		    "(three locks in rotation) plus the message copy",                             \
	};                                                                                         \
	BENCH_MECH(var)

LOCK_MECH(lock_spin, "lock-spin", 60, IPCX_LOCK_SPIN, "lock hand-off: ipcx spinlock (TTAS)")
LOCK_MECH(lock_futex, "lock-futex", 61, IPCX_LOCK_MUTEX, "lock hand-off: ipcx futex mutex")
LOCK_MECH(lock_sem, "lock-sem", 62, IPCX_LOCK_PSEM, "lock hand-off: POSIX sem_t (pshared)")
LOCK_MECH(lock_sysv, "lock-sysv", 63, IPCX_LOCK_SYSV, "lock hand-off: System V semaphore")
