/*
 * The ipcx command-line tool: subcommands register themselves, so each
 * module's commands live in their own file.
 */
#ifndef IPCX_CLI_H
#define IPCX_CLI_H

struct cli_command {
	const char *name;    /* "bench", "ls", ... */
	const char *args;    /* one-line synopsis of the arguments */
	const char *summary; /* one line */
	int (*run)(int argc, char **argv); /* argv[0] is the command name; returns the exit status */
};

void cli_register(const struct cli_command *cmd);

#define CLI_COMMAND(var)                                                                 \
	static void __attribute__((constructor)) var##_register(void) { cli_register(&var); }

/* Exit statuses of the tool. */
#define CLI_OK 0
#define CLI_FAIL 1  /* the operation failed, or a check (sequence, payload) failed */
#define CLI_USAGE 2 /* bad command line */

/* "12.3 µs"-style human formatting of nanoseconds into buf. */
const char *cli_fmt_ns(double ns, char *buf, unsigned len);

/* Parse a size such as "64", "4k", "4KiB", "1M", "1MiB".  0 or -1. */
int cli_parse_size(const char *s, unsigned long long *out);

/* `ipcx mq stat NAME [--json]`'s report (argv[3] == "--json" selects JSON),
 * also shown by `ipcx stat` for a mailbox. */
int cli_mq_stat(int argc, char **argv, const char *name);

/* `ipcx mq ARGS...` (argv[0] "mq"), also run by `ipcx send` and `ipcx recv`
 * for a mailbox. */
int cli_mq_main(int argc, char **argv);

#endif
