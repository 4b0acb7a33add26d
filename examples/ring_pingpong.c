/*
 * A first ipcx program: two processes, one named ring each way.
 *
 *   cc ring_pingpong.c $(pkg-config --cflags --libs ipcx) -o ring_pingpong
 *
 * The parent creates both rings, forks, and sends numbered greetings; the
 * child answers each one.  Every call's result is checked and explained
 * with ipcx_strerror().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

static void die(const char *what, int rc)
{
	fprintf(stderr, "%s: %s\n", what, ipcx_strerror(rc));
	exit(1);
}

static void child(const char *ping, const char *pong)
{
	ipcx_ring *in, *out;
	int rc;
	if ((rc = ipcx_ring_open(&in, ping, IPCX_RING_CONSUMER, NULL)))
		die("child: open ping", rc);
	if ((rc = ipcx_ring_open(&out, pong, IPCX_RING_PRODUCER, NULL)))
		die("child: open pong", rc);
	char buf[256];
	ssize_t n;
	/* -EPIPE: the parent closed its end and everything it sent was read. */
	while ((n = ipcx_ring_recv(in, buf, sizeof buf - 1, NULL)) >= 0) {
		buf[n] = 0;
		char reply[300];
		int len = snprintf(reply, sizeof reply, "pong for \"%s\"", buf);
		if ((rc = ipcx_ring_send(out, reply, (size_t)len, 0, NULL)))
			die("child: send", rc);
	}
	if (n != -EPIPE)
		die("child: recv", (int)n);
	ipcx_ring_close(in);
	ipcx_ring_close(out);
	exit(0);
}

int main(void)
{
	char ping[64], pong[64];
	snprintf(ping, sizeof ping, "example-ping-%d", (int)getpid());
	snprintf(pong, sizeof pong, "example-pong-%d", (int)getpid());

	ipcx_ring *out, *in;
	int rc;
	ipcx_ring_opts opts = { .capacity = 64 * 1024 }; /* mode 0600, adaptive waits */
	if ((rc = ipcx_ring_create(&out, ping, &opts, IPCX_RING_PRODUCER)))
		die("create ping", rc);
	if ((rc = ipcx_ring_create(&in, pong, &opts, IPCX_RING_CONSUMER)))
		die("create pong", rc);

	pid_t pid = fork();
	if (pid == 0)
		child(ping, pong);

	for (int i = 1; i <= 3; i++) {
		char msg[64], reply[512];
		int len = snprintf(msg, sizeof msg, "hello #%d", i);
		if ((rc = ipcx_ring_send(out, msg, (size_t)len, 0, NULL)))
			die("send", rc);
		/* Wait at most a second for the answer. */
		ipcx_wait w = { IPCX_WAIT_ADAPTIVE, 0, 1000 * 1000 * 1000 };
		ssize_t n = ipcx_ring_recv(in, reply, sizeof reply - 1, &w);
		if (n < 0)
			die("recv", (int)n);
		reply[n] = 0;
		printf("%s -> %s\n", msg, reply);
	}
	ipcx_ring_close(out); /* the child sees -EPIPE and exits */
	int status;
	waitpid(pid, &status, 0);
	ipcx_ring_close(in);
	ipcx_ring_unlink(ping);
	ipcx_ring_unlink(pong);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
