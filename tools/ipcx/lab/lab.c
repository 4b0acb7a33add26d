/* ipcx lab: the harness (registry, fact collection, text and JSON output). */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../cli.h"
#include "lab.h"

#define MAX_EXPERIMENTS 64
#define MAX_FACTS 128

static const struct lab_experiment *experiments[MAX_EXPERIMENTS];
static unsigned nexperiments;

void lab_register(const struct lab_experiment *e)
{
	if (nexperiments < MAX_EXPERIMENTS)
		experiments[nexperiments++] = e;
}

struct lab_fact_rec {
	char key[96];
	char value[256];
	int numeric;
	double num;
	char unit[24];
};

struct lab_out {
	struct lab_fact_rec facts[MAX_FACTS];
	unsigned nfacts;
	enum lab_verdict verdict;
	char correction[1024];
	int json;
};

static struct lab_fact_rec *new_fact(struct lab_out *out, const char *key)
{
	if (out->nfacts >= MAX_FACTS)
		return NULL;
	struct lab_fact_rec *f = &out->facts[out->nfacts++];
	memset(f, 0, sizeof *f);
	snprintf(f->key, sizeof f->key, "%s", key);
	return f;
}

void lab_fact(struct lab_out *out, const char *key, const char *fmt, ...)
{
	struct lab_fact_rec *f = new_fact(out, key);
	if (!f)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->value, sizeof f->value, fmt, ap);
	va_end(ap);
}

void lab_fact_num(struct lab_out *out, const char *key, double value, const char *unit)
{
	struct lab_fact_rec *f = new_fact(out, key);
	if (!f)
		return;
	f->numeric = 1;
	f->num = value;
	snprintf(f->unit, sizeof f->unit, "%s", unit ? unit : "");
	const char *u = unit ? unit : "";
	if (value == (double)(long long)value && value < 1e15 && value > -1e15)
		snprintf(f->value, sizeof f->value, "%lld%s%s", (long long)value, *u ? " " : "", u);
	else
		snprintf(f->value, sizeof f->value, "%.4g%s%s", value, *u ? " " : "", u);
}

void lab_verdict(struct lab_out *out, enum lab_verdict v, const char *fmt, ...)
{
	out->verdict = v;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out->correction, sizeof out->correction, fmt, ap);
	va_end(ap);
}

double lab_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int lab_spawn(int (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		_exit(fn(arg));
	return pid < 0 ? -errno : pid;
}

int lab_wait(int pid, int timeout_ms)
{
	double deadline = lab_now_ns() + (double)timeout_ms * 1e6;
	int st;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (lab_now_ns() >= deadline) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
			return -ETIMEDOUT;
		}
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

static const char *verdict_name(enum lab_verdict v)
{
	switch (v) {
	case LAB_HOLDS:
		return "holds";
	case LAB_DOES_NOT_HOLD:
		return "does not hold";
	case LAB_HOLDS_WITH_CORRECTIONS:
		return "holds with corrections";
	case LAB_INCONCLUSIVE:
		return "inconclusive";
	}
	return "no verdict";
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static int run_one(const struct lab_experiment *e, int json)
{
	struct lab_out *out = calloc(1, sizeof *out);
	if (!out)
		return CLI_FAIL;
	out->json = json;
	if (!json) {
		printf("== %s\nclaim:   %s\n", e->name, e->claim);
		fflush(stdout);
	}
	int rc = e->run(out);
	if (json) {
		printf("{\"name\":");
		json_str(e->name);
		printf(",\"claim\":");
		json_str(e->claim);
		printf(",\"facts\":[");
		for (unsigned i = 0; i < out->nfacts; i++) {
			struct lab_fact_rec *f = &out->facts[i];
			printf("%s{\"key\":", i ? "," : "");
			json_str(f->key);
			printf(",\"value\":");
			if (f->numeric) {
				printf("%.17g,\"unit\":", f->num);
				json_str(f->unit);
			} else {
				json_str(f->value);
			}
			putchar('}');
		}
		printf("],\"verdict\":");
		json_str(verdict_name(out->verdict));
		printf(",\"statement\":");
		json_str(out->correction);
		if (rc < 0)
			printf(",\"error\":%d", rc);
		printf("}\n");
	} else {
		size_t w = 0;
		for (unsigned i = 0; i < out->nfacts; i++)
			if (strlen(out->facts[i].key) > w)
				w = strlen(out->facts[i].key);
		for (unsigned i = 0; i < out->nfacts; i++)
			printf("  %-*s  %s\n", (int)w, out->facts[i].key, out->facts[i].value);
		printf("verdict: %s\n", verdict_name(out->verdict));
		if (out->correction[0])
			printf("         %s\n", out->correction);
		if (rc < 0)
			printf("error:   the experiment failed: %s\n", strerror(-rc));
		printf("\n");
	}
	fflush(stdout);
	int ok = rc >= 0 && out->verdict != 0;
	free(out);
	return ok ? CLI_OK : CLI_FAIL;
}

static int by_order(const void *a, const void *b)
{
	const struct lab_experiment *x = *(const struct lab_experiment *const *)a;
	const struct lab_experiment *y = *(const struct lab_experiment *const *)b;
	return x->order != y->order ? (x->order > y->order) - (x->order < y->order)
				    : strcmp(x->name, y->name);
}

static int lab_main(int argc, char **argv)
{
	qsort(experiments, nexperiments, sizeof experiments[0], by_order);
	int json = 0;
	const char *what = NULL, *sub = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: ipcx lab list\n       ipcx lab run NAME|all [--json]\n\n"
			       "Experiments that check classic claims about IPC on this machine.\n");
			return CLI_OK;
		} else if (!sub)
			sub = argv[i];
		else if (!what)
			what = argv[i];
		else {
			fprintf(stderr, "ipcx lab: unexpected argument '%s'\n", argv[i]);
			return CLI_USAGE;
		}
	}
	if (!sub || !strcmp(sub, "list")) {
		for (unsigned i = 0; i < nexperiments; i++)
			printf("%-20s %s\n", experiments[i]->name, experiments[i]->claim);
		return CLI_OK;
	}
	if (strcmp(sub, "run") || !what) {
		fprintf(stderr, "usage: ipcx lab list | ipcx lab run NAME|all [--json]\n");
		return CLI_USAGE;
	}
	int status = CLI_OK, found = 0;
	for (unsigned i = 0; i < nexperiments; i++) {
		if (strcmp(what, "all") && strcmp(what, experiments[i]->name))
			continue;
		found = 1;
		if (run_one(experiments[i], json) != CLI_OK)
			status = CLI_FAIL;
	}
	if (!found) {
		fprintf(stderr, "ipcx lab: no experiment named '%s' (see: ipcx lab list)\n", what);
		return CLI_USAGE;
	}
	return status;
}

static const struct cli_command lab_cmd = {
	.name = "lab",
	.args = "list | run NAME|all [--json]",
	.summary = "experiments that check classic IPC claims",
	.run = lab_main,
};
CLI_COMMAND(lab_cmd)
