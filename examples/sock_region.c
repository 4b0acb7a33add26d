/*
 * A child process connects to its parent by PID and receives a 16 MiB
 * payload as a sealed memory region: only the file descriptor travels.
 *
 *   ./sock_region
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#define SIZE (16u << 20)

static int child(pid_t parent)
{
	ipcx_sock *s;
	ipcx_wait w = { .mode = IPCX_WAIT_BLOCK, .timeout_ns = 5000000000 };
	int rc = ipcx_connect_pid(&s, parent, NULL, &w);
	if (rc) {
		fprintf(stderr, "connect: %s\n", ipcx_strerror(rc));
		return 1;
	}
	ipcx_region *r;
	char note[64] = "";
	ssize_t n = ipcx_sock_recv_region(s, &r, IPCX_KIND_RAW, note, sizeof note - 1, &w);
	if (n < 0) {
		fprintf(stderr, "recv_region: %s\n", ipcx_strerror((int)n));
		return 1;
	}
	const unsigned char *d = ipcx_region_data(r);
	printf("child: got \"%s\", %zu bytes, first %u last %u\n", note, ipcx_region_size(r),
	       d[0], d[SIZE - 1]);
	ipcx_region_close(r);
	ipcx_sock_close(s);
	return 0;
}

int main(void)
{
	ipcx_listener *l;
	fflush(stdout);
	int rc = ipcx_listen_pid(&l, NULL); /* before fork: the child can connect at once */
	if (rc) {
		fprintf(stderr, "listen: %s\n", ipcx_strerror(rc));
		return 1;
	}
	pid_t parent = getpid(), pid = fork();
	if (pid == 0) { /* leaves the listener alone: closing it would remove the name */
		int st = child(parent);
		fflush(stdout);
		_exit(st);
	}
	ipcx_sock *s;
	ipcx_wait w = { .mode = IPCX_WAIT_BLOCK, .timeout_ns = 5000000000 };
	if ((rc = ipcx_accept(l, &s, &w)) == 0) {
		ipcx_cred c;
		ipcx_sock_peer(s, &c);
		printf("parent: accepted pid %d (uid %u)\n", c.pid, c.uid);
		ipcx_region *r;
		if ((rc = ipcx_region_create_anon(&r, IPCX_KIND_RAW, SIZE, NULL)) == 0) {
			memset(ipcx_region_data(r), 7, SIZE);
			rc = ipcx_sock_send_region(s, r, "frame 1", 7, NULL);
			ipcx_region_close(r);
		}
		ipcx_sock_close(s);
	}
	if (rc)
		fprintf(stderr, "parent: %s\n", ipcx_strerror(rc));
	int st;
	waitpid(pid, &st, 0);
	ipcx_listener_close(l);
	return rc || !WIFEXITED(st) || WEXITSTATUS(st) ? 1 : 0;
}
