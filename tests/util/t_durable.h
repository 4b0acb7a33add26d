/* A directory on a real (not tmpfs) file system, for persistence tests. */
#ifndef IPCX_T_DURABLE_H
#define IPCX_T_DURABLE_H

#include <dirent.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

/* A fresh directory under /var/tmp, or else the working directory (the build
 * tree); NULL if neither is on a real file system (the test then skips). */
static inline const char *t_durable_dir(void)
{
	static char buf[4096];
	const char *bases[] = { "/var/tmp", "." };
	for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
		struct statfs sf;
		if (statfs(bases[i], &sf) < 0 || sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC)
			continue;
		snprintf(buf, sizeof buf, "%s/ipcx-test-%d-XXXXXX", bases[i], (int)getpid());
		if (mkdtemp(buf))
			return buf;
	}
	return NULL;
}

/* In a test's main: set dir to t_durable_dir(), or say why the test skips
 * and return T_SKIP (testutil.h). */
#define T_DURABLE_DIR_OR_SKIP(dir)                                                       \
	do {                                                                             \
		if (!((dir) = t_durable_dir())) {                                        \
			fprintf(stderr, "no real file system for the log: skipped\n");  \
			return T_SKIP;                                                   \
		}                                                                        \
	} while (0)

/* dir/tag.log, in one of 8 buffers used in turn. */
static inline const char *t_durable_log(const char *dir, const char *tag)
{
	static char buf[8][4600];
	static unsigned n;
	char *b = buf[n++ % 8];
	snprintf(b, sizeof buf[0], "%s/%s.log", dir, tag);
	return b;
}

/* Remove dir and the files in it. */
static inline void t_rmdir_all(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096 + 512];
	if (!d)
		return;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
			unlink(path);
		}
	closedir(d);
	rmdir(dir);
}

#endif
