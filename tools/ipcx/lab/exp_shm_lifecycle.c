/*
 * shm-lifecycle: remove shared memory while it is still in use.
 *
 * System V: a segment is attached by this process and by a child; the parent
 * removes it with IPC_RMID, then checks what stays usable (the child's writes
 * still reach it), what the kernel shows (IPC_STAT and /proc/sysvipc/shm,
 * which `ipcs -m` reads: the key becomes IPC_PRIVATE and the mode gains
 * SHM_DEST, shown as status "dest"), whether the key still finds it
 * (shmget), whether a new shmat() by id still works, and that it is gone
 * after the last detach.  POSIX: an object is mapped by this process and a
 * child; shm_unlink removes it; the name, the mapping, the descriptor and a
 * new object of the same name are checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lab.h"

#define SEG_SIZE 4096
#define CHILD_MARK 0xc0ffee11u
#define REPLY_TIMEOUT_MS 5000

/* A child that shares a mapping with us and writes CHILD_MARK into slot when
 * asked, to show another process's view after the removal. */
struct helper {
	volatile uint32_t *slot;
	int cmd[2], reply[2];
	int pid;
};

static int wait_byte(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char b;
	int n = poll(&p, 1, timeout_ms);
	if (n == 0)
		return -ETIMEDOUT;
	if (n < 0)
		return -errno;
	n = (int)read(fd, &b, 1);
	return n == 1 ? b : n == 0 ? -EPIPE : -errno;
}

static int helper_main(void *arg)
{
	struct helper *h = arg;
	close(h->cmd[1]);
	close(h->reply[0]);
	/* 'w': write the mark; anything else (or EOF, or a timeout): exit */
	while (wait_byte(h->cmd[0], 2 * REPLY_TIMEOUT_MS) == 'w') {
		*h->slot = CHILD_MARK;
		if (write(h->reply[1], "k", 1) != 1)
			return 1;
	}
	return 0;
}

static int helper_start(struct helper *h, volatile uint32_t *slot)
{
	h->slot = slot;
	if (pipe2(h->cmd, O_CLOEXEC))
		return -errno;
	if (pipe2(h->reply, O_CLOEXEC)) {
		int rc = -errno;
		close(h->cmd[0]);
		close(h->cmd[1]);
		return rc;
	}
	h->pid = lab_spawn(helper_main, h);
	close(h->cmd[0]);
	close(h->reply[1]);
	if (h->pid < 0) {
		close(h->cmd[1]);
		close(h->reply[0]);
		return h->pid;
	}
	return 0;
}

/* Ask the child to write its mark; whether it then shows in our mapping. */
static int helper_write_seen(struct helper *h, volatile uint32_t *ours)
{
	*ours = 0;
	if (write(h->cmd[1], "w", 1) != 1)
		return -errno;
	int rc = wait_byte(h->reply[0], REPLY_TIMEOUT_MS);
	if (rc < 0)
		return rc;
	return *ours == CHILD_MARK;
}

/* Words for what helper_write_seen returned. */
static const char *seen_words(int rc)
{
	return rc == 1 ? "seen by this one (still shared)" : rc == 0 ? "not seen" : strerror(-rc);
}

/* Stop the child (it detaches and unmaps by exiting). */
static int helper_stop(struct helper *h)
{
	close(h->cmd[1]);
	close(h->reply[0]);
	int st = lab_wait(h->pid, REPLY_TIMEOUT_MS);
	return st == 0 ? 0 : st < 0 ? st : -ECHILD;
}

/* The /proc/sysvipc/shm line of segment id: 1 found, 0 absent, -errno. */
static int proc_shm(int id, int *key, unsigned *perms, unsigned long *nattch)
{
	FILE *f = fopen("/proc/sysvipc/shm", "re");
	if (!f)
		return -errno;
	char line[512];
	int found = 0, k, shmid;
	unsigned mode;
	unsigned long n;
	while (!found && fgets(line, sizeof line, f))
		if (sscanf(line, "%d %d %o %*s %*s %*s %lu", &k, &shmid, &mode, &n) == 4 &&
		    shmid == id) {
			*key = k, *perms = mode, *nattch = n;
			found = 1;
		}
	fclose(f);
	return found;
}

/* The path column of the /proc/self/maps line of the mapping at addr. */
static int maps_line(const void *addr, char *buf, size_t len)
{
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return -errno;
	char line[512];
	int rc = -ENOENT;
	while (rc && fgets(line, sizeof line, f)) {
		unsigned long lo;
		int off = 0;
		if (sscanf(line, "%lx-%*x %*s %*s %*s %*s %n", &lo, &off) < 1 || !off ||
		    lo != (unsigned long)addr)
			continue;
		line[strcspn(line, "\n")] = 0;
		snprintf(buf, len, "%s", line + off);
		rc = 0;
	}
	fclose(f);
	return rc;
}

struct results {
	int sysv_usable, key_private, dest, shmget_enoent, new_attach, gone;
	int posix_usable, name_gone, nlink0, fresh_object;
};

static int sysv_part(struct lab_out *out, struct results *r)
{
	/* A key of our own (never IPC_PRIVATE), so that what happens to it shows. */
	key_t key = 0;
	int id = -1;
	for (unsigned i = 1; i <= 64 && id < 0; i++) {
		key = (key_t)((((unsigned)getpid() & 0x7ffffu) << 12) | i);
		id = shmget(key, SEG_SIZE, IPC_CREAT | IPC_EXCL | 0600);
		if (id < 0 && errno != EEXIST)
			return -errno;
	}
	if (id < 0)
		return -EEXIST;
	volatile uint32_t *p = shmat(id, NULL, 0);
	if (p == (void *)-1) {
		int rc = -errno;
		shmctl(id, IPC_RMID, NULL);
		return rc;
	}
	struct helper h;
	int rc = helper_start(&h, p);
	if (rc) {
		shmdt((void *)p);
		shmctl(id, IPC_RMID, NULL);
		return rc;
	}
	lab_fact(out, "sysv: segment", "key 0x%08x, id %d, %d bytes, attached by 2 processes",
		 (unsigned)key, id, SEG_SIZE);

	if (shmctl(id, IPC_RMID, NULL)) {
		rc = -errno;
		helper_stop(&h);
		shmdt((void *)p);
		return rc;
	}
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds) == 0) {
		r->key_private = ds.shm_perm.__key == IPC_PRIVATE;
		r->dest = !!(ds.shm_perm.mode & SHM_DEST);
		lab_fact(out, "sysv: IPC_STAT after IPC_RMID", "key 0x%08x, mode %o, nattch %lu",
			 (unsigned)ds.shm_perm.__key, (unsigned)ds.shm_perm.mode,
			 (unsigned long)ds.shm_nattch);
	} else {
		lab_fact(out, "sysv: IPC_STAT after IPC_RMID", "fails: %s", strerror(errno));
	}
	int pkey;
	unsigned perms;
	unsigned long nattch;
	if (proc_shm(id, &pkey, &perms, &nattch) == 1)
		lab_fact(out, "sysv: ipcs -m after IPC_RMID",
			 "key 0x%08x, perms %o, nattch %lu, status %s (/proc/sysvipc/shm)",
			 (unsigned)pkey, perms & 0777, nattch, perms & SHM_DEST ? "dest" : "-");
	else
		lab_fact(out, "sysv: ipcs -m after IPC_RMID", "not listed");

	rc = helper_write_seen(&h, p);
	r->sysv_usable = rc == 1;
	lab_fact(out, "sysv: other process writes after IPC_RMID", "%s", seen_words(rc));

	errno = 0;
	r->shmget_enoent = shmget(key, 0, 0) < 0 && errno == ENOENT;
	lab_fact(out, "sysv: shmget(key) after IPC_RMID", "%s",
		 r->shmget_enoent ? "ENOENT (the key is gone)"
		 : errno	  ? strerror(errno)
				  : "still finds the segment");

	volatile uint32_t *q = shmat(id, NULL, 0);
	r->new_attach = q != (void *)-1;
	if (r->new_attach) {
		q[1] = 0x5a5a5a5a;
		lab_fact(out, "sysv: new shmat(id) after IPC_RMID",
			 "succeeds (Linux-specific); same memory: %s",
			 p[1] == 0x5a5a5a5a ? "yes" : "no");
		shmdt((void *)q);
	} else {
		lab_fact(out, "sysv: new shmat(id) after IPC_RMID", "fails: %s", strerror(errno));
	}

	int stop = helper_stop(&h);
	shmdt((void *)p);
	r->gone = shmctl(id, IPC_STAT, &ds) < 0 && (errno == EINVAL || errno == EIDRM) &&
		  proc_shm(id, &pkey, &perms, &nattch) == 0;
	lab_fact(out, "sysv: after the last detach", "%s",
		 r->gone ? "destroyed (IPC_STAT: EINVAL; not in /proc/sysvipc/shm)"
			 : "still there");
	return stop;
}

static int posix_part(struct lab_out *out, struct results *r)
{
	char name[64], path[80];
	snprintf(name, sizeof name, "/ipcx.lab-shm-%d", (int)getpid());
	snprintf(path, sizeof path, "/dev/shm%s", name);
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	volatile uint32_t *p = MAP_FAILED;
	int rc = ftruncate(fd, SEG_SIZE) ? -errno : 0;
	if (!rc) {
		p = mmap(NULL, SEG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		rc = p == MAP_FAILED ? -errno : 0;
	}
	struct helper h;
	if (!rc)
		rc = helper_start(&h, p);
	shm_unlink(name);
	if (rc) {
		if (p != MAP_FAILED)
			munmap((void *)p, SEG_SIZE);
		close(fd);
		return rc;
	}
	lab_fact(out, "posix: object", "%s, %d bytes, mapped by 2 processes, then shm_unlink()",
		 name, SEG_SIZE);

	int again = shm_open(name, O_RDWR | O_CLOEXEC, 0);
	r->name_gone = again < 0 && errno == ENOENT && access(path, F_OK) < 0;
	lab_fact(out, "posix: name after shm_unlink", "%s",
		 r->name_gone ? "gone (shm_open: ENOENT; not in /dev/shm)" : "still there");
	if (again >= 0)
		close(again);

	struct stat st;
	if (fstat(fd, &st) == 0) {
		r->nlink0 = st.st_nlink == 0;
		lab_fact(out, "posix: open descriptor after shm_unlink", "valid, st_nlink %ld",
			 (long)st.st_nlink);
	} else {
		lab_fact(out, "posix: open descriptor after shm_unlink", "fstat: %s",
			 strerror(errno));
	}
	char maps[256];
	if (maps_line((const void *)p, maps, sizeof maps) == 0)
		lab_fact(out, "posix: the mapping in /proc/self/maps", "%s", maps);

	rc = helper_write_seen(&h, p);
	r->posix_usable = rc == 1;
	lab_fact(out, "posix: other process writes after shm_unlink", "%s", seen_words(rc));

	/* The name is free again: a new object under it is a different one. */
	int nfd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (nfd >= 0) {
		volatile uint32_t *n = MAP_FAILED;
		if (ftruncate(nfd, SEG_SIZE) == 0)
			n = mmap(NULL, SEG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, nfd, 0);
		shm_unlink(name);
		close(nfd);
		if (n != MAP_FAILED) {
			n[0] = 0x77777777;
			r->fresh_object = p[0] != 0x77777777;
			munmap((void *)n, SEG_SIZE);
		}
	}
	lab_fact(out, "posix: shm_open(O_CREAT|O_EXCL) of the same name", "%s",
		 r->fresh_object ? "creates a new, separate object"
				 : "did not give a separate object");

	rc = helper_stop(&h);
	munmap((void *)p, SEG_SIZE);
	close(fd);
	return rc;
}

static int shm_lifecycle_run(struct lab_out *out)
{
	struct results r = { 0 };
	int rc = sysv_part(out, &r);
	if (!rc)
		rc = posix_part(out, &r);
	if (rc) {
		lab_fact(out, "error", "%s", strerror(-rc));
		lab_verdict(out, LAB_INCONCLUSIVE, "the experiment could not finish");
		return rc;
	}
	int sysv_ok = r.sysv_usable && r.key_private && r.dest && r.shmget_enoent && r.gone;
	int posix_ok = r.posix_usable && r.name_gone && r.nlink0 && r.fresh_object;
	if (!sysv_ok || !posix_ok)
		lab_verdict(out, LAB_DOES_NOT_HOLD,
			    "Not as claimed here:%s%s%s%s%s%s%s%s%s",
			    r.sysv_usable ? "" : " the System V segment was no longer shared;",
			    r.key_private ? "" : " its key was kept;",
			    r.dest ? "" : " it was not marked SHM_DEST;",
			    r.shmget_enoent ? "" : " shmget(key) did not fail with ENOENT;",
			    r.gone ? "" : " it survived the last detach;",
			    r.posix_usable ? "" : " the POSIX mapping was no longer shared;",
			    r.name_gone ? "" : " its name survived shm_unlink;",
			    r.nlink0 ? "" : " its link count was not 0;",
			    r.fresh_object ? "" : " its name gave no separate new object;");
	else if (r.new_attach)
		lab_verdict(out, LAB_HOLDS_WITH_CORRECTIONS,
			    "Removal is deferred as claimed -- both kinds stay usable and shared "
			    "until the last detach or unmap -- but on Linux IPC_RMID does not stop "
			    "new attaches: shmat() by id still succeeds while anyone is attached. "
			    "Only the key is gone (it becomes IPC_PRIVATE, 0x00000000 in ipcs -m, "
			    "status \"dest\"; shmget(key) fails with ENOENT). shm_unlink frees the "
			    "name at once: a new object of that name is a different one.");
	else
		lab_verdict(out, LAB_HOLDS, "%s", "");
	return 0;
}

static const struct lab_experiment exp_shm_lifecycle = {
	.name = "shm-lifecycle",
	.claim = "Removing shared memory that is in use only marks it: after shmctl(IPC_RMID) "
		 "the attached processes keep the System V segment but no process can attach it "
		 "any more, and it is destroyed at the last detach; shm_unlink() removes only the "
		 "POSIX object's name, and existing mappings keep working.",
	.order = 10,
	.run = shm_lifecycle_run,
};
LAB_EXPERIMENT(exp_shm_lifecycle)
