#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* "t<pid>.<start>-": this process's prefix.  The start time (in ticks since
 * boot) tells it from an earlier process of the same pid, whose objects a
 * killed run may have left behind. */
static const char *own_prefix(void)
{
	static __thread char buf[64];
	static __thread pid_t for_pid;
	pid_t pid = getpid();
	if (for_pid != pid) { /* first call, or a forked child */
		snprintf(buf, sizeof buf, "t%d.%llu-", (int)pid,
			 (unsigned long long)t_proc_start(pid));
		for_pid = pid;
	}
	return buf;
}

const char *t_name(const char *tag)
{
	static __thread char buf[8][96];
	static __thread unsigned n;
	char *b = buf[n % 8];
	snprintf(b, sizeof buf[0], "%s%s-%u", own_prefix(), tag, n);
	n++;
	return b;
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "watchdog: test timed out\n";
	ssize_t w = write(2, msg, sizeof msg - 1);
	(void)w;
	kill(0, SIGKILL);
	_exit(T_FAIL);
}

void t_watchdog(unsigned seconds)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	/* Our own process group, so the watchdog kills our children and nothing else. */
	if (getpgrp() != getpid())
		setpgid(0, 0);
	alarm(seconds);
}

int t_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	struct dirent *e;
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the DIR's own fd */
}

int t_check_no_leaks(void)
{
	char prefix[80];
	snprintf(prefix, sizeof prefix, "ipcx.%s", own_prefix());
	DIR *d = opendir("/dev/shm");
	int leaks = 0;
	struct dirent *e;
	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, prefix, strlen(prefix))) {
			fprintf(stderr, "leaked shared-memory object: /dev/shm/%s\n", e->d_name);
			leaks++;
		}
	closedir(d);
	return leaks;
}

pid_t t_spawn(int (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		/* Never hand -1 to a caller that may kill(pid, SIGKILL) it. */
		perror("fork");
		exit(T_FAIL);
	}
	if (pid == 0) {
		int rc = fn(arg);
		fflush(NULL);
		_exit(rc);
	}
	return pid;
}

int t_wait(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -1;
}

int t_idle(void *arg)
{
	(void)arg;
	alarm(30);
	pause();
	return 0;
}

uint64_t t_proc_start(pid_t pid)
{
	char path[64], line[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(line, 1, sizeof line - 1, f);
	fclose(f);
	line[n] = 0;
	char *p = strrchr(line, ')');
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	return p ? strtoull(p + 1, NULL, 10) : 0;
}

uint64_t t_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void t_sleep_ms(unsigned ms)
{
	/* An absolute deadline: restarting a relative sleep after each signal
	 * would add the timer slack every time and, under a signal storm,
	 * never finish. */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}
