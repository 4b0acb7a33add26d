/*
 * Streaming through a mailbox in batches: the child sends a million small
 * records 256 at a time, the parent receives them in batches, checks their
 * order and says how fast they came.
 *
 *   cc mq_stream.c $(pkg-config --cflags --libs ipcx)
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#define RECORDS 1000000u
#define BATCH 256u

struct record {
	uint64_t seq;
	double value;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int produce(const char *name)
{
	ipcx_mq *tx; /* a handle is per process: open our own */
	if (ipcx_mq_open(&tx, name, NULL))
		return 1;
	static struct record rec[BATCH];
	ipcx_mq_vec v[BATCH];
	for (uint64_t seq = 0; seq < RECORDS;) {
		unsigned n = 0;
		for (; n < BATCH && seq + n < RECORDS; n++) {
			rec[n] = (struct record){ seq + n, (double)(seq + n) * 0.5 };
			v[n] = (ipcx_mq_vec){ .buf = &rec[n], .len = sizeof rec[n], .prio = 1 };
		}
		/* Returns how many went before an error: send the rest again. */
		for (unsigned done = 0; done < n;) {
			int k = ipcx_mq_send_batch(tx, v + done, n - done, NULL);
			if (k < 0) {
				fprintf(stderr, "send: %s\n", ipcx_strerror(k));
				return 1;
			}
			done += (unsigned)k;
		}
		seq += n;
	}
	ipcx_mq_close(tx);
	return 0;
}

int main(void)
{
	char name[64];
	snprintf(name, sizeof name, "example-stream-%d", (int)getpid());
	ipcx_mq_opts o = { .max_msg = sizeof(struct record), .depth = 1024 };
	ipcx_mq *rx;
	int rc = ipcx_mq_create(&rx, name, &o);
	if (rc) {
		fprintf(stderr, "ipcx_mq_create: %s\n", ipcx_strerror(rc));
		return 1;
	}
	pid_t pid = fork();
	if (pid == 0)
		_exit(produce(name));
	static struct record rec[BATCH];
	ipcx_mq_vec v[BATCH];
	for (unsigned k = 0; k < BATCH; k++)
		v[k] = (ipcx_mq_vec){ .buf = &rec[k], .cap = sizeof rec[k] };
	ipcx_wait w = { IPCX_WAIT_ADAPTIVE, 0, 5 * 1000 * 1000 * 1000ll }; /* give up after 5 s */
	double t0 = now();
	uint64_t next = 0;
	while (next < RECORDS) {
		int n = ipcx_mq_recv_batch(rx, v, BATCH, &w); /* waits for one, takes what is there */
		if (n < 0) {
			fprintf(stderr, "recv: %s\n", ipcx_strerror(n));
			break;
		}
		for (int k = 0; k < n; k++, next++)
			if (v[k].len != sizeof rec[k] || rec[k].seq != next) {
				fprintf(stderr, "record %llu out of order\n", (unsigned long long)next);
				return 1;
			}
	}
	double t = now() - t0;
	int st = 0;
	waitpid(pid, &st, 0);
	ipcx_mq_close(rx);
	ipcx_mq_unlink(name);
	if (next < RECORDS || !WIFEXITED(st) || WEXITSTATUS(st))
		return 1;
	printf("%u records in order, %.1f M records/s\n", RECORDS, RECORDS / t / 1e6);
	return 0;
}
