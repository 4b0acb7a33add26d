/*
 * aba: a Treiber lock-free stack of nodes in shared memory, popped by two
 * processes under one forced interleaving, first with a bare index at the top
 * (compare-and-swap on the index only), then with a version counter next to
 * the index (the fix; the ipcx queue gets the same protection from its
 * per-slot sequence numbers).
 *
 * The schedule, enforced with a shared step counter so it happens every run:
 *   V: pop begins: reads top = A and A.next = B, then stalls before its CAS
 *   I: pop -> A, pop -> B (I now uses B), push A back: stack is A -> C
 *   V: CAS(top: A -> B) -- top is A again, so a bare-index CAS succeeds
 * and the stack's top is B, a node I is using.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "lab.h"

#define NODES 4 /* indices 1..3 used: A, B, C; 0 is "none" */
enum { A = 1, B = 2, C = 3 };

struct stk {
	_Atomic uint64_t top; /* low 32 bits: index; high 32 bits: version (fixed stack only) */
	_Atomic uint32_t next[NODES];
	_Atomic uint32_t step;
	uint32_t v_got, i_got[2], v_cas_failures;
};

static struct stk *sh;
static int tagged;

static int wait_step(uint32_t want)
{
	double t0 = lab_now_ns();
	while (atomic_load(&sh->step) != want) {
		if (lab_now_ns() - t0 > 5e9)
			return -1;
		sched_yield();
	}
	return 0;
}

static uint64_t make_top(uint64_t old, uint32_t idx)
{
	return tagged ? (((old >> 32) + 1) << 32) | idx : idx;
}

/* Pop; if stall, pause between reading next and the CAS on the first try. */
static uint32_t pop(int stall, uint32_t *failures)
{
	for (int attempt = 0;; attempt++) {
		uint64_t top = atomic_load(&sh->top);
		uint32_t idx = (uint32_t)top;
		if (!idx || idx >= NODES)
			return 0;
		uint32_t next = atomic_load_explicit(&sh->next[idx], memory_order_relaxed);
		if (stall && attempt == 0) {
			atomic_store(&sh->step, 1);
			if (wait_step(2))
				return 0;
		}
		if (atomic_compare_exchange_strong(&sh->top, &top, make_top(top, next)))
			return idx;
		if (failures)
			(*failures)++;
	}
}

static void push(uint32_t idx)
{
	uint64_t top = atomic_load(&sh->top);
	do
		atomic_store_explicit(&sh->next[idx], (uint32_t)top, memory_order_relaxed);
	while (!atomic_compare_exchange_weak(&sh->top, &top, make_top(top, idx)));
}

static int victim(void *arg)
{
	(void)arg;
	sh->v_got = pop(1, &sh->v_cas_failures);
	return sh->v_got ? 0 : 1;
}

static int interferer(void *arg)
{
	(void)arg;
	if (wait_step(1))
		return 1;
	sh->i_got[0] = pop(0, NULL); /* A */
	sh->i_got[1] = pop(0, NULL); /* B: in use from now on */
	push(sh->i_got[0]);	     /* A goes back */
	atomic_store(&sh->step, 2);
	return 0;
}

static const char *node_name(uint32_t i)
{
	static const char *const n[] = {"-", "A", "B", "C"};
	return i < NODES ? n[i] : "?";
}

/* Run the schedule; describe the stack afterwards.  Returns 1 if every node
 * is accounted for exactly once (on the stack or held by one process). */
static int schedule(struct lab_out *out, const char *label)
{
	memset(sh, 0, sizeof *sh);
	atomic_store(&sh->next[C], 0);
	atomic_store(&sh->next[B], C);
	atomic_store(&sh->next[A], B);
	atomic_store(&sh->top, A);
	int pv = lab_spawn(victim, NULL), pi = lab_spawn(interferer, NULL);
	int sv = pv > 0 ? lab_wait(pv, 10000) : -1, si = pi > 0 ? lab_wait(pi, 10000) : -1;
	if (sv || si)
		return -1;
	unsigned owners[NODES] = {0};
	char stack[64] = "";
	uint64_t top = atomic_load(&sh->top);
	uint32_t idx = (uint32_t)top;
	for (int hops = 0; idx && idx < NODES && hops < 8; hops++) {
		owners[idx]++;
		snprintf(stack + strlen(stack), sizeof stack - strlen(stack), "%s%s",
			 hops ? " -> " : "", node_name(idx));
		idx = atomic_load(&sh->next[idx]);
	}
	owners[sh->v_got]++;
	owners[sh->i_got[1]]++;
	char key[96];
	snprintf(key, sizeof key, "%s: stack after the schedule", label);
	lab_fact(out, key, "%s", stack[0] ? stack : "(empty)");
	snprintf(key, sizeof key, "%s: V popped / I holds", label);
	lab_fact(out, key, "%s / %s (V's CAS failed %u time(s) first)", node_name(sh->v_got),
		 node_name(sh->i_got[1]), sh->v_cas_failures);
	int sound = 1;
	for (uint32_t i = 1; i < NODES; i++) {
		if (owners[i] != 1) {
			snprintf(key, sizeof key, "%s: node %s", label, node_name(i));
			lab_fact(out, key, "%s",
				 owners[i] ? "both on the stack and in use" : "lost");
			sound = 0;
		}
	}
	if (!sound) {
		/* The consequence: the next pop hands out a node already in use. */
		uint32_t again = pop(0, NULL);
		snprintf(key, sizeof key, "%s: next pop returns", label);
		lab_fact(out, key, "%s%s", node_name(again),
			 again == sh->i_got[1] ? " -- already held by I: allocated twice" : "");
	}
	return sound;
}

static int run(struct lab_out *out)
{
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return -errno;
	lab_fact(out, "schedule",
		 "V reads top=A, next=B and stalls; I pops A, pops B, pushes A; "
		 "V's CAS(A -> B) runs");
	tagged = 0;
	int naive = schedule(out, "bare index");
	tagged = 1;
	int fixed = schedule(out, "index + version");
	munmap(sh, sizeof *sh);
	if (naive < 0 || fixed < 0)
		return -EIO;
	if (!naive && fixed)
		lab_verdict(
		    out, LAB_HOLDS,
		    "with a bare index the stalled CAS succeeded and left a node in use on the "
		    "stack; with a version next to the index the same CAS failed, was retried, "
		    "and every node stayed accounted for once");
	else
		lab_verdict(out, LAB_DOES_NOT_HOLD, "the forced schedule did not %s",
			    naive ? "corrupt the naive stack" : "leave the fixed stack sound");
	return 0;
}

static const struct lab_experiment aba = {
    .name = "aba",
    .claim = "A lock-free stack whose CAS compares only the top pointer is corrupted by the "
	     "ABA interleaving; pairing the pointer with a version counter prevents it",
    .order = 32,
    .run = run,
};
LAB_EXPERIMENT(aba)
