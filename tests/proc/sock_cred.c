/* Credentials enforced: as root, a child that drops to another uid is
 * refused -- by the private directory, and by the accept policy in a shared
 * directory -- and accepted once its uid is allowed.  Skipped when not root.
 * ipcx-test-timeout: 30 */
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ipcx/sock.h>

#include "testutil.h"

#define NOBODY 65534u

static const ipcx_wait five_s = { .mode = IPCX_WAIT_BLOCK, .timeout_ns = 5000000000 };

struct child_arg {
	const char *name;
	const char *dir;
	int want; /* expected result of connect */
};

static int as_nobody(void *arg)
{
	const struct child_arg *a = arg;
	if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
		return 20;
	if (geteuid() != NOBODY)
		return 21;
	ipcx_sock_opts o = { .dir = a->dir };
	ipcx_sock *s = NULL;
	int rc = -ENOENT;
	for (int i = 0; i < 300 && rc == -ENOENT; i++) {
		rc = ipcx_connect(&s, a->name, &o, &five_s);
		if (rc == -ENOENT)
			t_sleep_ms(10);
	}
	if (rc != a->want) {
		fprintf(stderr, "connect as nobody: %d (%s), wanted %d\n", rc, ipcx_strerror(rc),
			a->want);
		return 1;
	}
	if (rc == 0) {
		/* The listener is root: our default policy trusts root. */
		ipcx_cred c;
		ipcx_sock_peer(s, &c);
		if (c.uid != 0 || c.pid != getppid())
			return 2;
		if (ipcx_sock_send(s, "hi", 2, &five_s))
			return 3;
		ipcx_sock_close(s);
	}
	return 0;
}

int main(void)
{
	t_watchdog(25);
	if (geteuid() != 0) {
		fprintf(stderr, "skipped: needs root to drop to another uid\n");
		return T_SKIP;
	}
	int fds0 = t_count_fds();
	char priv[64], shared[64];
	snprintf(priv, sizeof priv, "/tmp/ipcx-cred-%d", (int)getpid());
	snprintf(shared, sizeof shared, "/tmp/ipcx-shared-%d", (int)getpid());
	T_CHECK(mkdir(priv, 0700) == 0);
	T_CHECK(mkdir(shared, 0700) == 0 && chmod(shared, 0711) == 0);
	setenv("XDG_RUNTIME_DIR", priv, 1);
	char dir[256];
	T_CHECK_RC(ipcx_sock_dir(dir, sizeof dir), 0);

	/* 1. The private directory: the other uid cannot even reach the socket. */
	ipcx_listener *l;
	T_CHECK_RC(ipcx_listen(&l, "svc", NULL), 0);
	struct child_arg a1 = { "svc", dir, -EACCES };
	T_CHECK_RC(t_wait(t_spawn(as_nobody, &a1)), 0);
	ipcx_listener_close(l);

	/* 2. A shared directory and a socket anyone may connect to: the accept
	 *    policy (same uid or root by default) refuses, and says so. */
	ipcx_sock_opts o = { .dir = shared, .mode = 0666 };
	T_CHECK_RC(ipcx_listen(&l, "svc", &o), 0);
	struct child_arg a2 = { "svc", shared, -EACCES };
	pid_t kid = t_spawn(as_nobody, &a2);
	ipcx_sock *s = NULL;
	T_CHECK_RC(ipcx_accept(l, &s, &five_s), -EACCES);
	T_CHECK(s == NULL);
	T_CHECK_RC(t_wait(kid), 0);
	ipcx_listener_close(l);

	/* 3. The same with the uid on the allow-list: accepted, and the
	 *    credentials are the kernel's. */
	uint32_t allow[] = { NOBODY };
	ipcx_sock_policy pol = { .uids = allow, .n_uids = 1 };
	o.policy = &pol;
	T_CHECK_RC(ipcx_listen(&l, "svc", &o), 0);
	struct child_arg a3 = { "svc", shared, 0 };
	kid = t_spawn(as_nobody, &a3);
	T_CHECK_RC(ipcx_accept(l, &s, &five_s), 0);
	ipcx_cred c;
	T_CHECK_RC(ipcx_sock_peer(s, &c), 0);
	T_CHECK(c.uid == NOBODY && c.gid == NOBODY && c.pid == kid);
	char buf[8];
	T_CHECK_RC(ipcx_sock_recv(s, buf, sizeof buf, &five_s), 2);
	T_CHECK_RC(t_wait(kid), 0);
	ipcx_sock_close(s);
	ipcx_listener_close(l);

	rmdir(dir);
	rmdir(priv);
	rmdir(shared);
	T_CHECK(t_count_fds() == fds0);
	return T_PASS;
}
