/*
 * kill -9 against the senders and receivers of a persisted mailbox, 240
 * rounds, then "power loss" (the shared memory is removed) and recovery from
 * the log.  One sender sends single messages, the other batches; the
 * receiver takes and releases, or receives copying batches, in turn.
 * Checks, over every delivery recorded by the receivers:
 *  - every acknowledged message is delivered at least once, except at most
 *    RECV_BATCH per kill of the receiver (what a copying batch had removed
 *    and not yet returned when it died);
 *  - a message is delivered twice only by the documented rules: a copy
 *    flagged IPCX_MQ_REDELIVERED (its first receiver died before releasing
 *    it), a copy recovered from the log whose earlier release had not
 *    returned, or an unacknowledged send that the next sender retried;
 *  - per sender, first deliveries come in send order;
 *  - no payload is corrupted.
 * The log is compacted every few dozen messages (ipcx__mq_compact_bytes),
 * so that kills land inside compactions too.
 * ipcx-test-timeout: 120
 * ipcx-test-serial
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "mq/mq_sys.h"
#include "t_durable.h"
#include "testutil.h"

#define SENDERS 2
#define RECV_BATCH 4
#define ROUNDS 240
#define MAX_DELIV (1u << 22)

struct msg {
	uint32_t sender, inc;
	uint64_t seq;
	uint32_t fill[6]; /* a function of the above */
};

struct deliv {
	uint32_t sender, inc;
	uint64_t seq;
	uint32_t redelivered, phase;
	_Atomic uint32_t released;
	_Atomic uint32_t written; /* set last: the fields above are complete */
};

struct shared {
	_Atomic uint64_t acked[SENDERS]; /* highest acknowledged seq + 1 */
	_Atomic uint32_t ndeliv;
	_Atomic uint32_t inc[SENDERS];
	struct deliv d[MAX_DELIV];
};

static struct shared *sh;
static const char *name;
static const char *dir;
static pid_t parent;
static pid_t kids[SENDERS + 1];

/* Leave nothing behind, even when a check fails. */
static void cleanup(void)
{
	if (getpid() != parent)
		return;
	for (unsigned v = 0; v <= SENDERS; v++)
		if (kids[v] > 0 && kill(kids[v], SIGKILL) == 0)
			t_wait(kids[v]);
	ipcx_mq_unlink(name);
	t_rmdir_all(dir);
}

static void fill(struct msg *m)
{
	for (int i = 0; i < 6; i++)
		m->fill[i] = (uint32_t)(m->seq * 2654435761u) ^ m->sender ^ (m->inc << 8) ^ (uint32_t)i;
}

static int sender(void *arg)
{
	unsigned s = (unsigned)(uintptr_t)arg;
	ipcx_mq *mq;
	if (ipcx_mq_open(&mq, name, NULL))
		return 2;
	uint32_t inc = atomic_fetch_add(&sh->inc[s], 1) + 1;
	for (uint64_t seq = atomic_load(&sh->acked[s]);;) {
		/* The deliveries table is nearly full: send no more (and wait
		 * to be killed), so that it never overflows. */
		while (atomic_load(&sh->ndeliv) > MAX_DELIV - (1u << 16))
			t_sleep_ms(1);
		/* Sender 0 sends one message per call, sender 1 batches of 8. */
		struct msg m[8];
		ipcx_mq_vec v[8];
		unsigned n = s == 0 ? 1 : 8;
		for (unsigned k = 0; k < n; k++) {
			m[k] = (struct msg){ s, inc, seq + k, { 0 } };
			fill(&m[k]);
			v[k] = (ipcx_mq_vec){ .buf = &m[k], .len = sizeof m[k], .prio = 3 };
		}
		int sent = ipcx_mq_send_batch(mq, v, n, NULL);
		if (sent <= 0)
			return 3;
		seq += (unsigned)sent;
		atomic_store(&sh->acked[s], seq); /* what the call acknowledged */
	}
}

static int record(const ipcx_mq_msg *m, uint32_t phase, bool released)
{
	struct msg x;
	if (m->len != sizeof x)
		return -1;
	memcpy(&x, m->data, sizeof x);
	struct msg y = x;
	fill(&y);
	if (memcmp(&x, &y, sizeof x) || x.sender >= SENDERS)
		return -1;
	uint32_t k = atomic_fetch_add(&sh->ndeliv, 1);
	if (k >= MAX_DELIV) {
		fprintf(stderr, "the deliveries table is full\n");
		return -1;
	}
	struct deliv *d = &sh->d[k];
	d->sender = x.sender;
	d->inc = x.inc;
	d->seq = x.seq;
	d->redelivered = !!(m->flags & IPCX_MQ_REDELIVERED);
	d->phase = phase;
	atomic_store(&d->released, released);
	atomic_store(&d->written, 1);
	return (int)k;
}

static int receiver(void *arg)
{
	(void)arg;
	ipcx_mq *mq;
	if (ipcx_mq_open(&mq, name, NULL))
		return 2;
	for (unsigned turn = 0;; turn++) {
		ipcx_mq_msg m;
		if (turn % 2) {
			/* A copying batch: removed (released) by the call. */
			struct msg buf[RECV_BATCH];
			ipcx_mq_vec v[RECV_BATCH];
			for (unsigned k = 0; k < RECV_BATCH; k++)
				v[k] = (ipcx_mq_vec){ .buf = &buf[k], .cap = sizeof buf[k] };
			int n = ipcx_mq_recv_batch(mq, v, RECV_BATCH, NULL);
			if (n <= 0)
				return 3;
			for (int k = 0; k < n; k++) {
				m = (ipcx_mq_msg){ .data = &buf[k], .len = v[k].len,
						   .flags = v[k].flags };
				if (record(&m, 1, true) < 0)
					return 4; /* corrupted payload */
			}
			continue;
		}
		if (ipcx_mq_take(mq, &m, NULL))
			return 3;
		int k = record(&m, 1, false);
		if (k < 0)
			return 4; /* corrupted payload */
		if (ipcx_mq_release(mq, &m))
			return 5;
		atomic_store(&sh->d[k].released, 1);
	}
}

static int cmp_deliv(const void *a, const void *b)
{
	const struct deliv *x = a, *y = b;
	if (x->sender != y->sender)
		return x->sender < y->sender ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return 0;
}

/* may_lose: acknowledged messages that may be missing (a copying batch
 * receiver killed after the call removed them and before it recorded them). */
static int check(uint64_t may_lose)
{
	uint64_t lost = 0;
	/* First deliveries per sender in send order (inc, seq non-decreasing). */
	uint32_t n = atomic_load(&sh->ndeliv);
	uint64_t last_seq[SENDERS] = { 0 };
	uint32_t last_inc[SENDERS] = { 0 };
	for (uint32_t k = 0; k < n; k++) {
		struct deliv *d = &sh->d[k];
		/* Not written: a receiver killed while writing this record (it had
		 * not released the message, so it was redelivered). */
		if (!atomic_load(&d->written) || d->redelivered || d->phase == 2)
			continue;
		if (d->inc < last_inc[d->sender] ||
		    (d->inc == last_inc[d->sender] && d->seq < last_seq[d->sender])) {
			fprintf(stderr, "sender %u: seq %llu (inc %u) after seq %llu (inc %u)\n",
				d->sender, (unsigned long long)d->seq, d->inc,
				(unsigned long long)last_seq[d->sender], last_inc[d->sender]);
			return T_FAIL;
		}
		last_inc[d->sender] = d->inc;
		last_seq[d->sender] = d->seq;
	}
	/* Exactly once within the duplicate rules; every acknowledged one there. */
	struct deliv *sorted = malloc((size_t)n * sizeof *sorted);
	T_CHECK(sorted);
	memcpy(sorted, sh->d, (size_t)n * sizeof *sorted);
	qsort(sorted, n, sizeof *sorted, cmp_deliv); /* stable enough: ties keep no meaning */
	uint64_t dups = 0;
	for (unsigned s = 0; s < SENDERS; s++) {
		uint64_t acked = atomic_load(&sh->acked[s]), want = 0;
		bool any_prev_unreleased = false;
		struct deliv *p = NULL;
		for (uint32_t k = 0; k < n; k++) {
			struct deliv *d = &sorted[k];
			if (!atomic_load(&d->written) || d->sender != s)
				continue;
			if (d->seq > want && want < acked)
				lost += (d->seq < acked ? d->seq : acked) - want;
			if (p && d->seq + 1 == want) { /* another delivery of d->seq */
				bool retried = d->inc != p->inc; /* an unacknowledged send, retried */
				bool ok = retried || d->redelivered || p->redelivered ||
					  ((d->phase == 2 || p->phase == 2) && any_prev_unreleased);
				if (!ok) {
					fprintf(stderr, "sender %u seq %llu delivered twice\n", s,
						(unsigned long long)d->seq);
					return T_FAIL;
				}
				dups++;
			} else {
				any_prev_unreleased = false;
			}
			if (!atomic_load(&d->released))
				any_prev_unreleased = true;
			want = d->seq + 1;
			p = d;
		}
		if (want < acked)
			lost += acked - want;
		fprintf(stderr, "sender %u: %llu acknowledged\n", s, (unsigned long long)acked);
	}
	fprintf(stderr,
		"%u deliveries, %llu duplicates within the rules, %llu acknowledged lost "
		"(at most %llu allowed)\n",
		n, (unsigned long long)dups, (unsigned long long)lost,
		(unsigned long long)may_lose);
	free(sorted);
	return lost <= may_lose ? T_PASS : T_FAIL;
}

int main(void)
{
	t_watchdog(110);
	T_DURABLE_DIR_OR_SKIP(dir);
	parent = getpid();
	atexit(cleanup);
	ipcx__mq_compact_bytes = 8u << 10; /* every ~50 messages (inherited by the children) */
	char path[4200];
	snprintf(path, sizeof path, "%s/mq.log", dir);
	name = t_name("pk");
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	T_CHECK(sh != MAP_FAILED);
	ipcx_mq_opts o = { .depth = 32, .max_msg = 128, .log_path = path,
			   .sync = IPCX_MQ_SYNC_NONE };
	ipcx_mq *mq;
	T_CHECK_RC(ipcx_mq_create(&mq, name, &o), 0);

	for (unsigned s = 0; s < SENDERS; s++)
		kids[s] = t_spawn(sender, (void *)(uintptr_t)s);
	kids[SENDERS] = t_spawn(receiver, NULL);
	unsigned seed = (unsigned)getpid();
	uint64_t may_lose = RECV_BATCH; /* the final kill */
	for (int round = 0; round < ROUNDS; round++) {
		t_sleep_ms(1 + rand_r(&seed) % 4);
		unsigned v = rand_r(&seed) % (SENDERS + 1);
		kill(kids[v], SIGKILL);
		int st = t_wait(kids[v]);
		if (st != 128 + SIGKILL) {
			fprintf(stderr, "round %d: child %u exited with %d\n", round, v, st);
			return T_FAIL;
		}
		may_lose += v == SENDERS ? RECV_BATCH : 0;
		kids[v] = v < SENDERS ? t_spawn(sender, (void *)(uintptr_t)v) : t_spawn(receiver, NULL);
	}
	for (unsigned v = 0; v <= SENDERS; v++) {
		kill(kids[v], SIGKILL);
		T_CHECK(t_wait(kids[v]) == 128 + SIGKILL);
		kids[v] = 0;
	}
	ipcx_mq_attr at;
	T_CHECK_RC(ipcx_mq_getattr(mq, &at), 0);
	fprintf(stderr,
		"before power loss: sent %llu received %llu redelivered %llu cancelled %llu "
		"queued %u, log %llu bytes after %u compactions\n",
		(unsigned long long)at.sent, (unsigned long long)at.received,
		(unsigned long long)at.redelivered, (unsigned long long)at.cancelled, at.depth,
		(unsigned long long)at.log_bytes, at.log_compactions);
	T_CHECK(at.sent > 0 && at.received > 0);
	/* Compaction kept the log short (each message wrote ~100 bytes). */
	T_CHECK(at.log_compactions >= 10 && at.log_bytes < at.sent * 8);

	/* Power loss: the shared memory goes, the log stays. */
	T_CHECK_RC(ipcx_mq_close(mq), 0);
	T_CHECK_RC(ipcx_mq_unlink(name), 0);
	T_CHECK_RC(ipcx_mq_create(&mq, name, &o), 0);
	T_CHECK_RC(ipcx_mq_getattr(mq, &at), 0);
	fprintf(stderr, "recovered %llu messages, %llu bytes of torn records cut\n",
		(unsigned long long)at.recovered, (unsigned long long)at.log_skipped_bytes);
	ipcx_wait nb = { IPCX_WAIT_NONBLOCK, 0, -1 };
	ipcx_mq_msg m;
	int rc;
	while ((rc = ipcx_mq_take(mq, &m, &nb)) == 0) {
		int k = record(&m, 2, false);
		T_CHECK(k >= 0);
		T_CHECK_RC(ipcx_mq_release(mq, &m), 0);
		atomic_store(&sh->d[k].released, 1);
	}
	T_CHECK_RC(rc, -EAGAIN);
	int verdict = check(may_lose);
	T_CHECK_RC(ipcx_mq_close(mq), 0);
	T_CHECK_RC(ipcx_mq_unlink(name), 0);
	munmap(sh, sizeof *sh);
	return verdict == T_PASS && !t_check_no_leaks() ? T_PASS : T_FAIL;
}
