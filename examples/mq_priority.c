/*
 * A priority mailbox between two processes: the child queues a few jobs at
 * different priorities, the parent receives them most urgent first.
 *
 *   cc mq_priority.c $(pkg-config --cflags --libs ipcx)
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

int main(void)
{
	char name[64];
	snprintf(name, sizeof name, "example-mq-%d", (int)getpid());
	ipcx_mq_opts o = { .max_msg = 256, .depth = 16 };
	ipcx_mq *mq;
	int rc = ipcx_mq_create(&mq, name, &o);
	if (rc) {
		fprintf(stderr, "ipcx_mq_create: %s\n", ipcx_strerror(rc));
		return 1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		/* A handle is per process: open our own. */
		ipcx_mq *tx;
		if (ipcx_mq_open(&tx, name, NULL))
			_exit(1);
		static const struct { unsigned prio; const char *text; } jobs[] = {
			{ 1, "rotate the logs" }, { 9, "the disk is on fire" },
			{ 5, "reply to the customer" }, { 1, "water the plants" },
		};
		for (size_t i = 0; i < sizeof jobs / sizeof jobs[0]; i++)
			ipcx_mq_send(tx, jobs[i].text, strlen(jobs[i].text), jobs[i].prio, NULL);
		ipcx_mq_close(tx);
		_exit(0);
	}
	waitpid(pid, NULL, 0); /* all four are queued now */
	char buf[256];
	unsigned prio;
	ipcx_wait nonblock = IPCX_WAIT_INIT(IPCX_WAIT_NONBLOCK);
	int n;
	while ((n = ipcx_mq_recv(mq, buf, sizeof buf, &prio, &nonblock)) >= 0)
		printf("[%u] %.*s\n", prio, n, buf);
	ipcx_mq_close(mq);
	ipcx_mq_unlink(name);
	return n == -EAGAIN ? 0 : 1;
}
