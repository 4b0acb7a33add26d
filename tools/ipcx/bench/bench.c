/* ipcx bench: command line (placeholder until the harness lands). */
#include <stdio.h>
#include <string.h>

#include "../cli.h"
#include "harness.h"

static int bench_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	const struct bench_mech **m;
	unsigned n = bench_mechs(&m);
	for (unsigned i = 0; i < n; i++)
		printf("%-22s %s\n", m[i]->name, m[i]->desc);
	return CLI_OK;
}

static const struct cli_command bench_cmd = {
	.name = "bench",
	.args = "[--mech LIST] [--mode M] [--size LIST] ...",
	.summary = "measure every mechanism side by side",
	.run = bench_main,
};
CLI_COMMAND(bench_cmd)
