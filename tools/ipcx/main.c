/* ipcx: the command-line tool.  Subcommands register themselves (cli.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ipcx/ipcx.h>

#include "cli.h"

#define MAX_COMMANDS 64

static const struct cli_command *commands[MAX_COMMANDS];
static unsigned ncommands;

void cli_register(const struct cli_command *cmd)
{
	if (ncommands < MAX_COMMANDS)
		commands[ncommands++] = cmd;
}

static int by_name(const void *a, const void *b)
{
	return strcmp((*(const struct cli_command *const *)a)->name,
		      (*(const struct cli_command *const *)b)->name);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ipcx COMMAND [ARGS]\n\n"
		   "Inter-process communication for one Linux host: measure, experiment, administer.\n\n"
		   "commands:\n");
	for (unsigned i = 0; i < ncommands; i++)
		fprintf(f, "  %-8s %-34s %s\n", commands[i]->name, commands[i]->args,
			commands[i]->summary);
	fprintf(f, "\n  ipcx COMMAND --help   details of one command\n"
		   "  ipcx --version\n");
}

const char *cli_fmt_ns(double ns, char *buf, unsigned len)
{
	if (ns < 1e3)
		snprintf(buf, len, "%.0f ns", ns);
	else if (ns < 1e6)
		snprintf(buf, len, "%.2f us", ns / 1e3);
	else if (ns < 1e9)
		snprintf(buf, len, "%.2f ms", ns / 1e6);
	else
		snprintf(buf, len, "%.2f s", ns / 1e9);
	return buf;
}

int cli_parse_size(const char *s, unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	unsigned long long mul = 1;
	if (*end == 'k' || *end == 'K')
		mul = 1024, end++;
	else if (*end == 'm' || *end == 'M')
		mul = 1024 * 1024, end++;
	else if (*end == 'g' || *end == 'G')
		mul = 1024ull * 1024 * 1024, end++;
	if (mul > 1 && (!strcmp(end, "iB") || !strcmp(end, "B") || !strcmp(end, "ib")))
		end += strlen(end);
	if (*end)
		return -1;
	if (v && mul > ~0ull / v)
		return -1;
	*out = v * mul;
	return 0;
}

int main(int argc, char **argv)
{
	/* The library never raises SIGPIPE at us, but the tool also writes to
	 * stdout, which may be a closed pipe (ipcx ls | head). */
	signal(SIGPIPE, SIG_IGN);
	qsort(commands, ncommands, sizeof commands[0], by_name);
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("ipcx %s\n", ipcx_version());
		return CLI_OK;
	}
	for (unsigned i = 0; i < ncommands; i++)
		if (!strcmp(argv[1], commands[i]->name))
			return commands[i]->run(argc - 1, argv + 1);
	fprintf(stderr, "ipcx: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return CLI_USAGE;
}
