/* Sockets: endpoints, messages, fd and region passing, bad input.
 * ipcx-test-timeout: 60 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "testutil.h"

static const ipcx_wait nb = { .mode = IPCX_WAIT_NONBLOCK, .timeout_ns = -1 };

static int setup_dir(void **st)
{
	(void)st;
	/* A private runtime directory of our own, removed at the end. */
	static char dir[64];
	snprintf(dir, sizeof dir, "/tmp/ipcx-test-%d", (int)getpid());
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -1;
	setenv("XDG_RUNTIME_DIR", dir, 1);
	return 0;
}

static int teardown_dir(void **st)
{
	(void)st;
	char sub[96];
	snprintf(sub, sizeof sub, "%s/ipcx", getenv("XDG_RUNTIME_DIR"));
	rmdir(sub);
	rmdir(getenv("XDG_RUNTIME_DIR"));
	return 0;
}

static void test_pair_messages(void **st)
{
	(void)st;
	int fds0 = t_count_fds();
	ipcx_sock *a, *b;
	assert_int_equal(ipcx_sock_pair(&a, &b, NULL), 0);
	char buf[256];
	/* Boundaries kept; an empty message is a message, not the end. */
	assert_int_equal(ipcx_sock_send(a, "hello", 5, NULL), 0);
	assert_int_equal(ipcx_sock_send(a, NULL, 0, NULL), 0);
	assert_int_equal(ipcx_sock_send(a, "world!", 6, NULL), 0);
	assert_int_equal(ipcx_sock_next_size(b, NULL), 5);
	assert_int_equal(ipcx_sock_recv(b, buf, sizeof buf, NULL), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(ipcx_sock_recv(b, buf, sizeof buf, NULL), 0);
	/* Too small a buffer: -EMSGSIZE, and the message is gone. */
	assert_int_equal(ipcx_sock_recv(b, buf, 3, NULL), -EMSGSIZE);
	assert_int_equal(ipcx_sock_recv(b, buf, sizeof buf, &nb), -EAGAIN);
	ipcx_wait bad = { .mode = 99, .timeout_ns = -1 };
	assert_int_equal(ipcx_sock_recv(b, buf, sizeof buf, &bad), -EINVAL);
	ipcx_wait t = { .mode = IPCX_WAIT_BLOCK, .timeout_ns = 20000000 };
	uint64_t t0 = t_now_ns();
	assert_int_equal(ipcx_sock_recv(b, buf, sizeof buf, &t), -ETIMEDOUT);
	assert_true(t_now_ns() - t0 >= 20000000);
	/* Credentials of a pair are our own. */
	ipcx_cred c;
	assert_int_equal(ipcx_sock_peer(b, &c), 0);
	assert_int_equal(c.pid, getpid());
	assert_int_equal(c.uid, geteuid());
	assert_true(ipcx_sock_max_msg(a) > 1000);
	/* Oversize: refused whole. */
	size_t big = ipcx_sock_max_msg(a) + 1;
	char *p = calloc(1, big);
	assert_int_equal(ipcx_sock_send(a, p, big, NULL), -EMSGSIZE);
	assert_int_equal(ipcx_sock_send(a, p, big - 1, NULL), 0);
	assert_int_equal(ipcx_sock_recv(b, p, big, NULL), (ssize_t)(big - 1));
	free(p);
	/* The peer goes away: -EPIPE, never SIGPIPE (default disposition here). */
	signal(SIGPIPE, SIG_DFL);
	ipcx_sock_close(b);
	assert_int_equal(ipcx_sock_send(a, "x", 1, NULL), -EPIPE);
	assert_int_equal(ipcx_sock_recv(a, buf, sizeof buf, NULL), -EPIPE);
	ipcx_sock_close(a);
	assert_int_equal(ipcx_sock_close(NULL), 0);
	assert_int_equal(t_count_fds(), fds0);
}

static void test_fd_passing(void **st)
{
	(void)st;
	int fds0 = t_count_fds();
	ipcx_sock *a, *b;
	assert_int_equal(ipcx_sock_pair(&a, &b, NULL), 0);
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(ipcx_sock_sendfds(a, "fd", 2, p, 2, NULL), 0);
	int got[4];
	unsigned n = 99;
	char buf[8];
	assert_int_equal(ipcx_sock_recvfds(b, buf, sizeof buf, got, 4, &n, NULL), 2);
	assert_int_equal(n, 2);
	/* Close-on-exec, and they work. */
	assert_true(fcntl(got[0], F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(got[1], F_GETFD) & FD_CLOEXEC);
	assert_int_equal(write(got[1], "z", 1), 1);
	assert_int_equal(read(p[0], buf, 1), 1);
	assert_int_equal(buf[0], 'z');
	close(got[0]);
	close(got[1]);
	/* More fds than the receiver takes: an error, none leaked. */
	int before = t_count_fds();
	assert_int_equal(ipcx_sock_sendfds(a, "x", 1, p, 2, NULL), 0);
	assert_int_equal(ipcx_sock_recvfds(b, buf, sizeof buf, got, 1, &n, NULL), -EMSGSIZE);
	assert_int_equal(n, 0);
	assert_int_equal(t_count_fds(), before);
	/* Plain recv closes any fds that came. */
	assert_int_equal(ipcx_sock_sendfds(a, "y", 1, p, 2, NULL), 0);
	assert_int_equal(ipcx_sock_recv(b, buf, sizeof buf, NULL), 1);
	assert_int_equal(t_count_fds(), before);
	/* Bad arguments. */
	int bad = 12345;
	assert_int_equal(ipcx_sock_sendfds(a, "x", 1, &bad, 1, NULL), -EBADF);
	assert_int_equal(ipcx_sock_sendfds(a, "x", 1, p, IPCX_SOCK_MAX_FDS + 1, NULL), -EINVAL);
	close(p[0]);
	close(p[1]);
	ipcx_sock_close(a);
	ipcx_sock_close(b);
	assert_int_equal(t_count_fds(), fds0);
}

static void test_region_passing(void **st)
{
	(void)st;
	int fds0 = t_count_fds();
	ipcx_sock *a, *b;
	assert_int_equal(ipcx_sock_pair(&a, &b, NULL), 0);
	ipcx_region *r, *got;
	assert_int_equal(ipcx_region_create_anon(&r, IPCX_KIND_RAW, 1 << 20, NULL), 0);
	memset(ipcx_region_data(r), 0xab, 1 << 20);
	assert_int_equal(ipcx_sock_send_region(a, r, "meta", 4, NULL), 0);
	/* Sealed now: it can neither shrink nor grow. */
	int fd = ipcx_region_fd(r);
	assert_int_equal(ftruncate(fd, 4096), -1);
	assert_int_equal(errno, EPERM);
	char buf[16];
	assert_int_equal(ipcx_sock_recv_region(b, &got, IPCX_KIND_RAW, buf, sizeof buf, NULL), 4);
	assert_memory_equal(buf, "meta", 4);
	assert_int_equal(ipcx_region_size(got), ipcx_region_size(r));
	unsigned char *d = ipcx_region_data(got);
	assert_int_equal(d[0], 0xab);
	assert_int_equal(d[(1 << 20) - 1], 0xab);
	/* Shared both ways, no copy. */
	((unsigned char *)ipcx_region_data(r))[5] = 7;
	assert_int_equal(d[5], 7);
	ipcx_region_close(got);
	/* Again: already sealed is fine. */
	assert_int_equal(ipcx_sock_send_region(a, r, NULL, 0, NULL), 0);
	assert_int_equal(ipcx_sock_recv_region(b, &got, IPCX_KIND_RING, NULL, 0, NULL), -EMEDIUMTYPE);
	assert_null(got);
	ipcx_region_close(r);

	/* An unsealed memfd where a region is expected: refused, no leak. */
	int m = memfd_create("x", MFD_CLOEXEC);
	assert_true(m >= 0);
	assert_int_equal(ftruncate(m, 8192), 0);
	assert_int_equal(ipcx_sock_sendfds(a, NULL, 0, &m, 1, NULL), 0);
	assert_int_equal(ipcx_sock_recv_region(b, &got, IPCX_KIND_ANY, NULL, 0, NULL), -EBADMSG);
	close(m);
	/* A plain message where a region is expected. */
	assert_int_equal(ipcx_sock_send(a, "p", 1, NULL), 0);
	assert_int_equal(ipcx_sock_recv_region(b, &got, IPCX_KIND_ANY, buf, sizeof buf, NULL), -EBADMSG);
	/* A named region cannot be sealed. */
	const char *name = t_name("sr");
	assert_int_equal(ipcx_region_create(&r, name, IPCX_KIND_RAW, 64, NULL), 0);
	assert_int_equal(ipcx_sock_send_region(a, r, NULL, 0, NULL), -EINVAL);
	ipcx_region_close(r);
	ipcx_region_unlink(name);
	ipcx_sock_close(a);
	ipcx_sock_close(b);
	assert_int_equal(t_count_fds(), fds0);
	assert_int_equal(t_check_no_leaks(), 0);
}

static void test_foreign_messages(void **st)
{
	(void)st;
	/* A raw peer sending junk, and more fds than any ipcx message has. */
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	ipcx_sock *a, *b;
	assert_int_equal(ipcx_sock_pair(&a, &b, NULL), 0);
	int raw = ipcx_sock_fd(a);
	int fds0 = t_count_fds();
	char buf[64];
	assert_int_equal(send(raw, "ab", 2, 0), 2); /* shorter than a header */
	assert_int_equal(ipcx_sock_recv(b, buf, sizeof buf, NULL), -EBADMSG);
	char junk[80];
	memset(junk, 'j', sizeof junk);
	assert_int_equal(send(raw, junk, sizeof junk, 0), (ssize_t)sizeof junk); /* wrong magic */
	assert_int_equal(ipcx_sock_recv(b, buf, sizeof buf, NULL), -EBADMSG);
	/* Header says 0 fds, 20 arrive. */
	int many[20];
	for (int i = 0; i < 20; i++)
		many[i] = sv[0];
	union {
		char c[CMSG_SPACE(sizeof many)];
		struct cmsghdr a;
	} ctl;
	unsigned char hdr[64] = { 0x49, 0x78, 1, 1, 0 }; /* magic, version, data, 0 fds */
	struct iovec iov = { hdr, sizeof hdr };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.c,
			    .msg_controllen = sizeof ctl.c };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof many);
	memcpy(CMSG_DATA(c), many, sizeof many);
	assert_int_equal(sendmsg(raw, &m, 0), 64);
	assert_int_equal(ipcx_sock_recv(b, buf, sizeof buf, NULL), -EBADMSG);
	assert_int_equal(t_count_fds(), fds0);
	ipcx_sock_close(a);
	ipcx_sock_close(b);
	close(sv[0]);
	close(sv[1]);
}

static void test_listen_connect(void **st)
{
	(void)st;
	int fds0 = t_count_fds();
	const char *name = t_name("ep");
	ipcx_listener *l, *l2;
	assert_int_equal(ipcx_listen(&l, name, NULL), 0);
	/* Mode 0600 whatever the umask, in a 0700 directory of ours. */
	struct stat s;
	assert_int_equal(stat(ipcx_listener_path(l), &s), 0);
	assert_true(S_ISSOCK(s.st_mode));
	assert_int_equal(s.st_mode & 0777, 0600);
	char dir[256];
	assert_int_equal(ipcx_sock_dir(dir, sizeof dir), 0);
	assert_int_equal(stat(dir, &s), 0);
	assert_int_equal(s.st_mode & 0777, 0700);
	assert_int_equal(ipcx_listen(&l2, name, NULL), -EEXIST);
	assert_null(l2);
	ipcx_sock *c, *srv;
	assert_int_equal(ipcx_accept(l, &srv, &nb), -EAGAIN);
	/* connect waits for the listener's verdict, which needs an accept. */
	ipcx_wait quick = { .mode = IPCX_WAIT_BLOCK, .timeout_ns = 20000000 };
	assert_int_equal(ipcx_connect(&c, name, NULL, &quick), -ETIMEDOUT);
	assert_null(c);
	/* The abandoned connection is dropped by accept, which waits on. */
	assert_int_equal(ipcx_accept(l, &srv, &quick), -ETIMEDOUT);
	assert_int_equal(ipcx_listener_close(l), 0);
	assert_int_equal(ipcx_connect(&c, name, NULL, &quick), -ENOENT);
	assert_int_equal(ipcx_connect(&c, "bad/name", NULL, NULL), -EINVAL);
	assert_int_equal(ipcx_listen(&l, "", NULL), -EINVAL);
	assert_int_equal(ipcx_connect_pid(&c, 0, NULL, NULL), -EINVAL);

	/* A stale socket file (its listener died) is replaced. */
	char path[400];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	assert_true(strlen(path) < sizeof(struct sockaddr_un) - 2);
	int raw = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, path, strlen(path) + 1);
	assert_int_equal(bind(raw, (struct sockaddr *)&sa, sizeof sa), 0);
	close(raw);
	assert_int_equal(ipcx_connect(&c, name, NULL, &quick), -ECONNREFUSED);
	assert_int_equal(ipcx_listen(&l, name, NULL), 0);
	assert_int_equal(ipcx_listener_close(l), 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(ipcx_listener_close(NULL), 0);
	assert_int_equal(t_count_fds(), fds0);
}

static int child_by_pid(void *arg)
{
	pid_t parent = *(pid_t *)arg;
	ipcx_sock *s;
	ipcx_wait w = { .mode = IPCX_WAIT_BLOCK, .timeout_ns = 5000000000 };
	int rc;
	/* The parent may not be listening yet. */
	for (int i = 0; i < 500; i++) {
		rc = ipcx_connect_pid(&s, parent, NULL, &w);
		if (rc != -ENOENT)
			break;
		t_sleep_ms(10);
	}
	if (rc)
		return 10;
	ipcx_cred c;
	ipcx_sock_peer(s, &c);
	if (c.pid != parent)
		return 11;
	char buf[32];
	ssize_t n = ipcx_sock_recv(s, buf, sizeof buf, &w);
	if (n != 4 || memcmp(buf, "ping", 4))
		return 12;
	if (ipcx_sock_send(s, "pong", 4, &w))
		return 13;
	ipcx_sock_close(s);
	return 0;
}

/* An endpoint whose path takes all of sun_path (107 bytes and the NUL) can
 * be listened on and connected to; one byte more is -ENAMETOOLONG. */
static void test_longest_name(void **st)
{
	(void)st;
	char dir[64];
	snprintf(dir, sizeof dir, "/tmp/ipcx-t%d-long", (int)getpid());
	assert_int_equal(mkdir(dir, 0700), 0);
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1 - strlen(dir) - 1;
	char name[128];
	memset(name, 'n', max + 1);
	name[max + 1] = 0;
	ipcx_sock_opts o = { .dir = dir };
	ipcx_listener *l;
	assert_int_equal(ipcx_listen(&l, name, &o), -ENAMETOOLONG);
	name[max] = 0;
	assert_int_equal(ipcx_listen(&l, name, &o), 0);
	assert_int_equal(strlen(ipcx_listener_path(l)), sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	ipcx_sock *srv = NULL;
	ipcx_wait quick = { .mode = IPCX_WAIT_BLOCK, .timeout_ns = 2000000000 };
	pid_t pid = fork();
	if (pid == 0) {
		ipcx_sock *cc;
		_exit(ipcx_connect(&cc, name, &o, &quick) == 0 ? 0 : 1);
	}
	assert_int_equal(ipcx_accept(l, &srv, &quick), 0);
	assert_int_equal(t_wait(pid), 0);
	ipcx_sock_close(srv);
	assert_int_equal(ipcx_listener_close(l), 0);
	assert_int_equal(rmdir(dir), 0); /* nothing left behind, the temporary name included */
}

static void test_connect_by_pid(void **st)
{
	(void)st;
	int fds0 = t_count_fds();
	pid_t me = getpid();
	pid_t kid = t_spawn(child_by_pid, &me);
	ipcx_listener *l;
	assert_int_equal(ipcx_listen_pid(&l, NULL), 0);
	ipcx_sock *s;
	ipcx_wait w = { .mode = IPCX_WAIT_BLOCK, .timeout_ns = 5000000000 };
	assert_int_equal(ipcx_accept(l, &s, &w), 0);
	ipcx_cred c;
	assert_int_equal(ipcx_sock_peer(s, &c), 0);
	assert_int_equal(c.pid, kid);
	assert_int_equal(c.uid, geteuid());
	assert_int_equal(ipcx_sock_send(s, "ping", 4, NULL), 0);
	char buf[8];
	assert_int_equal(ipcx_sock_recv(s, buf, sizeof buf, &w), 4);
	assert_memory_equal(buf, "pong", 4);
	assert_int_equal(t_wait(kid), 0);
	assert_int_equal(ipcx_sock_recv(s, buf, sizeof buf, &w), -EPIPE);
	ipcx_sock_close(s);
	ipcx_listener_close(l);
	assert_int_equal(t_count_fds(), fds0);
}

static int refuse_all(const ipcx_cred *c, void *arg)
{
	(void)c;
	++*(int *)arg;
	return -EACCES;
}

static int child_connect(void *arg)
{
	ipcx_sock *s;
	ipcx_wait w = { .mode = IPCX_WAIT_BLOCK, .timeout_ns = 5000000000 };
	int rc;
	for (int i = 0; i < 500; i++) {
		rc = ipcx_connect(&s, arg, NULL, &w);
		if (rc != -ENOENT)
			break;
		t_sleep_ms(10);
	}
	if (rc == 0)
		ipcx_sock_close(s);
	return rc == -EACCES ? 0 : 1;
}

static void test_policy_callback(void **st)
{
	(void)st;
	const char *name = t_name("pol");
	int calls = 0;
	ipcx_sock_policy pol = { .check = refuse_all, .check_arg = &calls };
	ipcx_sock_opts o = { .policy = &pol };
	ipcx_listener *l;
	assert_int_equal(ipcx_listen(&l, name, &o), 0);
	pid_t kid = t_spawn(child_connect, (void *)name);
	ipcx_sock *s;
	ipcx_wait w = { .mode = IPCX_WAIT_BLOCK, .timeout_ns = 5000000000 };
	assert_int_equal(ipcx_accept(l, &s, &w), -EACCES);
	assert_null(s);
	assert_int_equal(calls, 1);
	assert_int_equal(t_wait(kid), 0);
	ipcx_listener_close(l);
}

int main(void)
{
	t_watchdog(50);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pair_messages),	cmocka_unit_test(test_fd_passing),
		cmocka_unit_test(test_region_passing),	cmocka_unit_test(test_foreign_messages),
		cmocka_unit_test(test_listen_connect),	cmocka_unit_test(test_longest_name), cmocka_unit_test(test_connect_by_pid),
		cmocka_unit_test(test_policy_callback),
	};
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
