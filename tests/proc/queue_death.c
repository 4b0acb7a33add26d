/* The MPMC queue when peers die: a producer SIGKILLed holding a reserved
 * slot (consumers skip it, never deliver it), producers killed mid-stream
 * (nothing torn, order kept, -EPIPE in bounded time), a consumer killed
 * holding a message (producers free its slot; counted lost), and every
 * consumer gone (-EPIPE for a producer facing a full queue).
 * ipcx-test-timeout: 120
 */
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

static ipcx_queue *q0;
static _Atomic uint32_t *flag;
static uint32_t round_no;
static const ipcx_wait nb = {IPCX_WAIT_NONBLOCK, 0, -1};
/* Generous bound for "returns instead of hanging": the liveness slice is
 * 40 ms; seconds only on a badly overloaded machine. */
static const ipcx_wait bounded = {IPCX_WAIT_BLOCK, 0, 5000000000ll};

static void wait_flag(uint32_t v)
{
	while (atomic_load(flag) != v)
		sched_yield();
}

static int reserving_producer(void *arg)
{
	(void)arg;
	ipcx_queue *q;
	void *slot;
	if (ipcx_queue_open_fd(&q, ipcx_queue_fd(q0), IPCX_QUEUE_PRODUCER, &nb) ||
	    ipcx_queue_reserve(q, &slot, NULL))
		return 10;
	memset(slot, 0xee, ipcx_queue_msg_max(q)); /* half a message, never committed */
	atomic_store(flag, round_no);
	for (;;)
		pause();
}

static void killed_reservation(void)
{
	ipcx_queue *p, *c;
	T_CHECK_RC(ipcx_queue_open_fd(&p, ipcx_queue_fd(q0), IPCX_QUEUE_PRODUCER, &nb), 0);
	T_CHECK_RC(ipcx_queue_open_fd(&c, ipcx_queue_fd(q0), IPCX_QUEUE_CONSUMER, &nb), 0);
	uint64_t worst = 0;
	for (round_no = 1; round_no <= 100; round_no++) {
		pid_t pid = t_spawn(reserving_producer, NULL);
		wait_flag(round_no);
		uint64_t v = round_no;
		T_CHECK_RC(ipcx_queue_send(p, &v, sizeof v, NULL), 0);
		/* Held back behind the live producer's reservation. */
		T_CHECK_RC(ipcx_queue_recv(c, &(char[64]){0}, 64, &nb), -EAGAIN);
		T_CHECK(kill(pid, SIGKILL) == 0);
		T_CHECK(t_wait(pid) == 128 + SIGKILL);
		uint64_t t0 = t_now_ns(), got = 0;
		char buf[64];
		T_CHECK_RC(ipcx_queue_recv(c, buf, sizeof buf, &bounded), sizeof v);
		memcpy(&got, buf, sizeof got);
		T_CHECK(got == v);
		if (t_now_ns() - t0 > worst)
			worst = t_now_ns() - t0;
		ipcx_queue_stats st;
		ipcx_queue_stat(c, &st);
		T_CHECK(st.skipped == round_no && st.depth == 0);
	}
	printf(
	    "100 producers killed holding a reservation: all skipped, slowest recovery %.1f ms\n",
	    worst / 1e6);
	ipcx_queue_close(p);
	ipcx_queue_close(c);
}

struct msg {
	uint64_t seq, check;
	unsigned char fill[40];
};

static int streaming_producer(void *arg)
{
	(void)arg;
	ipcx_queue *q;
	if (ipcx_queue_open_fd(&q, ipcx_queue_fd(q0), IPCX_QUEUE_PRODUCER, NULL))
		return 10;
	atomic_store(flag, round_no);
	for (uint64_t s = 0;; s++) {
		struct msg m = {s, ~s};
		memset(m.fill, (int)(s & 0xff), sizeof m.fill);
		if (ipcx_queue_send(q, &m, sizeof m, NULL))
			return 11;
	}
}

static void killed_midstream(void)
{
	ipcx_queue *c;
	T_CHECK_RC(ipcx_queue_open_fd(&c, ipcx_queue_fd(q0), IPCX_QUEUE_CONSUMER, NULL), 0);
	uint64_t delivered = 0;
	for (round_no = 1001; round_no <= 1040; round_no++) {
		pid_t pid = t_spawn(streaming_producer, NULL);
		wait_flag(round_no);
		int64_t next = 0;
		/* Consume for a moment, then kill the producer wherever it is. */
		uint64_t stop = t_now_ns() + 1000000ull * (1 + round_no % 5);
		pid_t victim = pid;
		for (;;) {
			char buf[64];
			ssize_t n = ipcx_queue_recv(c, buf, sizeof buf, &bounded);
			if (n == -EPIPE)
				break;
			T_CHECK_RC(n, sizeof(struct msg));
			struct msg m;
			memcpy(&m, buf, sizeof m);
			T_CHECK(m.seq == (uint64_t)next && m.check == ~m.seq);
			for (size_t i = 0; i < sizeof m.fill; i++)
				T_CHECK(m.fill[i] == (unsigned char)(m.seq & 0xff));
			next++;
			delivered++;
			if (victim > 0 && t_now_ns() >= stop) {
				kill(victim, SIGKILL);
				T_CHECK(t_wait(victim) == 128 + SIGKILL);
				victim = -1;
			}
		}
		T_CHECK(victim < 0);
	}
	ipcx_queue_stats st;
	ipcx_queue_stat(c, &st);
	printf("40 producers killed mid-stream: %llu messages delivered in order, none torn, "
	       "%llu claimed slots skipped\n",
	       (unsigned long long)delivered, (unsigned long long)st.skipped - 100);
	ipcx_queue_close(c);
}

static int peeking_consumer(void *arg)
{
	(void)arg;
	ipcx_queue *q;
	const void *m;
	if (ipcx_queue_open_fd(&q, ipcx_queue_fd(q0), IPCX_QUEUE_CONSUMER, NULL) ||
	    ipcx_queue_peek(q, &m, NULL) < 0)
		return 10;
	atomic_store(flag, round_no);
	for (;;)
		pause();
}

static int quitting_consumer(void *arg)
{
	(void)arg;
	ipcx_queue *q;
	if (ipcx_queue_open_fd(&q, ipcx_queue_fd(q0), IPCX_QUEUE_CONSUMER, NULL))
		return 10;
	_exit(0); /* not even closed */
}

static void dead_consumers(void)
{
	ipcx_queue_opts o = {.capacity = 4, .msg_max = 8};
	ipcx_queue *p, *c;
	T_CHECK_RC(ipcx_queue_create(&p, NULL, IPCX_QUEUE_PRODUCER, &o), 0);
	T_CHECK_RC(ipcx_queue_open_fd(&c, ipcx_queue_fd(p), IPCX_QUEUE_CONSUMER, &nb), 0);
	ipcx_queue *save = q0;
	q0 = p;
	round_no = 2001;
	uint64_t v = 0;
	T_CHECK_RC(ipcx_queue_send(p, &v, 8, &nb), 0);
	pid_t pid = t_spawn(peeking_consumer, NULL);
	wait_flag(round_no);
	kill(pid, SIGKILL);
	t_wait(pid);
	for (v = 1; v < 4; v++)
		T_CHECK_RC(ipcx_queue_send(p, &v, 8, &nb), 0);
	/* Full, and the slot we need is held by a dead consumer: freed. */
	T_CHECK_RC(ipcx_queue_send(p, &v, 8, &bounded), 0);
	ipcx_queue_stats st;
	ipcx_queue_stat(p, &st);
	T_CHECK(st.lost == 1 && st.depth == 4);
	for (uint64_t want = 1; want <= 4; want++) {
		uint64_t got;
		T_CHECK_RC(ipcx_queue_recv(c, &got, 8, &nb), 8);
		T_CHECK(got == (want == 4 ? 4 : want));
	}
	/* Every consumer gone while the queue is full: -EPIPE, not a hang. */
	ipcx_queue_close(c);
	pid = t_spawn(quitting_consumer, NULL);
	T_CHECK(t_wait(pid) == 0);
	for (v = 0; v < 4; v++)
		T_CHECK_RC(ipcx_queue_send(p, &v, 8, &nb), 0);
	T_CHECK_RC(ipcx_queue_send(p, &v, 8, &bounded), -EPIPE);
	printf("consumer killed holding a message: slot freed, 1 counted lost; no consumer left: "
	       "-EPIPE\n");
	ipcx_queue_close(p);
	q0 = save;
}

int main(void)
{
	t_watchdog(110);
	setvbuf(stdout, NULL, _IONBF, 0);
	flag = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	T_CHECK(flag != MAP_FAILED);
	ipcx_queue_opts o = {.capacity = 8, .msg_max = 64};
	T_CHECK_RC(ipcx_queue_create(&q0, NULL, 0, &o), 0);
	int fds = t_count_fds();
	killed_reservation();
	killed_midstream();
	dead_consumers();
	T_CHECK(t_count_fds() == fds);
	ipcx_queue_close(q0);
	return T_PASS;
}
