/* Admin commands for mailboxes: ipcx mq create|send|recv|stat NAME ... */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ipcx/ipcx.h>

#include "../cli.h"

static const char usage[] =
	"ipcx mq create NAME [--depth N] [--max-msg SIZE] [--max-bytes SIZE]\n"
	"                    [--full block|fail|drop] [--fair] [--rate MSGS_PER_S[:BURST]]\n"
	"                    [--log PATH [--sync none|batch|always]] [--mode OCTAL]\n"
	"       ipcx mq send NAME [--prio N] [--timeout MS] TEXT...  (one message per TEXT)\n"
	"       ipcx mq recv NAME [--timeout MS] [--count N] [--prio]\n"
	"       ipcx mq stat NAME [--json]\n"
	"\n"
	"Priorities are 0..63, higher first.  recv prints one message per line (with\n"
	"--prio, prefixed by its priority) and stops at --count messages or when none\n"
	"arrives within --timeout (default 0: only what is queued now).  `ipcx rm NAME`\n"
	"removes a mailbox; the log file of a persistent one stays.";

static int bad(const char *what, const char *arg)
{
	fprintf(stderr, "ipcx mq: bad %s '%s'\n%s\n", what, arg ? arg : "", usage);
	return CLI_USAGE;
}

static int num(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

static int fail(const char *verb, const char *name, int rc)
{
	fprintf(stderr, "ipcx mq %s: %s: %s\n", verb, name, ipcx_strerror(rc));
	return CLI_FAIL;
}

static int mq_create_cmd(int argc, char **argv, const char *name)
{
	ipcx_mq_opts o = { 0 };
	unsigned long long v;
	for (int i = 3; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--fair")) {
			o.fair = 1;
			continue;
		}
		if (!val)
			return bad("option", a);
		i++;
		if (!strcmp(a, "--depth")) {
			if (num(val, IPCX_MQ_DEPTH_MAX, &v) || !v)
				return bad("depth", val);
			o.depth = (uint32_t)v;
		} else if (!strcmp(a, "--max-msg")) {
			if (cli_parse_size(val, &v) || v > IPCX_MQ_MSG_MAX)
				return bad("size", val);
			o.max_msg = (uint32_t)v;
		} else if (!strcmp(a, "--max-bytes")) {
			if (cli_parse_size(val, &v))
				return bad("size", val);
			o.max_bytes = v;
		} else if (!strcmp(a, "--full")) {
			if (!strcmp(val, "block"))
				o.full = IPCX_MQ_FULL_BLOCK;
			else if (!strcmp(val, "fail"))
				o.full = IPCX_MQ_FULL_FAIL;
			else if (!strcmp(val, "drop"))
				o.full = IPCX_MQ_FULL_DROP;
			else
				return bad("--full policy", val);
		} else if (!strcmp(a, "--sync")) {
			if (!strcmp(val, "none"))
				o.sync = IPCX_MQ_SYNC_NONE;
			else if (!strcmp(val, "batch"))
				o.sync = IPCX_MQ_SYNC_BATCH;
			else if (!strcmp(val, "always"))
				o.sync = IPCX_MQ_SYNC_ALWAYS;
			else
				return bad("--sync mode", val);
		} else if (!strcmp(a, "--rate")) {
			char *end;
			o.shape.msgs_per_s = strtoull(val, &end, 10);
			if (*end == ':')
				o.shape.burst_msgs = (uint32_t)strtoul(end + 1, &end, 10);
			if (*end || !o.shape.msgs_per_s)
				return bad("rate", val);
		} else if (!strcmp(a, "--log")) {
			o.log_path = val;
		} else if (!strcmp(a, "--mode")) {
			char *end;
			o.mode = (uint32_t)strtoul(val, &end, 8);
			if (*end || o.mode > 07777 || !o.mode)
				return bad("mode", val);
		} else {
			return bad("option", a);
		}
	}
	ipcx_mq *mq;
	int rc = ipcx_mq_create(&mq, name, &o);
	if (rc && o.log_path && (rc == -EMEDIUMTYPE || rc == -EPROTO || rc == -EBADMSG ||
				 rc == -EBUSY || rc == -EOVERFLOW)) {
		const char *why = rc == -EMEDIUMTYPE ? "is on tmpfs/ramfs, which does not survive a "
						       "reboot: put it on a real file system"
				  : rc == -EBUSY     ? "is in use by another mailbox"
				  : rc == -EOVERFLOW ? "holds more than this mailbox's limits "
						       "(raise --depth, --max-msg or --max-bytes)"
						     : ipcx_strerror(rc);
		fprintf(stderr, "ipcx mq create: %s: log %s: %s\n", name, o.log_path, why);
		return CLI_FAIL;
	}
	if (rc)
		return fail("create", name, rc);
	ipcx_mq_attr at;
	if (!ipcx_mq_getattr(mq, &at)) {
		printf("created mailbox %s: %u messages of up to %u bytes, %llu bytes in all", name,
		       at.depth_max, at.max_msg, (unsigned long long)at.bytes_max);
		if (at.persistent)
			printf(", log %s (%llu messages recovered)", at.log_path,
			       (unsigned long long)at.recovered);
		printf("\n");
	}
	ipcx_mq_close(mq);
	return CLI_OK;
}

static int mq_send_cmd(int argc, char **argv, const char *name)
{
	unsigned long long prio = 0, tmo = 0;
	int i = 3;
	for (; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--prio")) {
			if (num(argv[i + 1], IPCX_MQ_PRIO_LEVELS - 1, &prio))
				return bad("priority", argv[i + 1]);
		} else if (!strcmp(argv[i], "--timeout")) {
			if (num(argv[i + 1], 86400000, &tmo))
				return bad("timeout", argv[i + 1]);
		} else {
			break;
		}
	}
	if (i >= argc)
		return bad("arguments: no TEXT", NULL);
	ipcx_mq *mq;
	int rc = ipcx_mq_open(&mq, name, NULL);
	if (rc)
		return fail("send", name, rc);
	ipcx_wait w = { IPCX_WAIT_BLOCK, 0, (int64_t)tmo * 1000000 };
	for (; !rc && i < argc; i++)
		rc = ipcx_mq_send(mq, argv[i], strlen(argv[i]), (unsigned)prio, &w);
	int crc = ipcx_mq_close(mq);
	if (rc == -EAGAIN || rc == -ENOBUFS) {
		fprintf(stderr, "ipcx mq send: %s: mailbox full (%s)\n", name,
			rc == -EAGAIN ? "its policy is to fail" : "the message was dropped");
		return CLI_FAIL;
	}
	if (rc || crc)
		return fail("send", name, rc ? rc : crc);
	return CLI_OK;
}

static int mq_recv_cmd(int argc, char **argv, const char *name)
{
	unsigned long long tmo = 0, count = 0;
	int show_prio = 0;
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--prio")) {
			show_prio = 1;
		} else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			if (num(argv[++i], 86400000, &tmo))
				return bad("timeout", argv[i]);
		} else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
			if (num(argv[++i], ~0ull, &count))
				return bad("count", argv[i]);
		} else {
			return bad("option", argv[i]);
		}
	}
	ipcx_mq *mq;
	int rc = ipcx_mq_open(&mq, name, NULL);
	if (rc)
		return fail("recv", name, rc);
	ipcx_mq_attr at;
	rc = ipcx_mq_getattr(mq, &at);
	char *buf = rc ? NULL : malloc((size_t)at.max_msg + 1);
	ipcx_wait w = { tmo ? IPCX_WAIT_BLOCK : IPCX_WAIT_NONBLOCK, 0, (int64_t)tmo * 1000000 };
	unsigned long long n = 0;
	while (!rc && buf && (!count || n < count)) {
		unsigned prio;
		int len = ipcx_mq_recv(mq, buf, at.max_msg, &prio, &w);
		if (len < 0) {
			/* Nothing (more) within the time allowed ends the listing; an
			 * empty result is an error only when something was asked for. */
			if ((len == -ETIMEDOUT || len == -EAGAIN) && (n > 0 || !count))
				break;
			rc = len;
			break;
		}
		if (show_prio)
			printf("%u ", prio);
		fwrite(buf, 1, (size_t)len, stdout);
		putchar('\n');
		n++;
	}
	free(buf);
	ipcx_mq_close(mq);
	if (rc)
		return fail("recv", name, rc);
	return CLI_OK;
}

int cli_mq_stat(int argc, char **argv, const char *name)
{
	int json = argc > 3 && !strcmp(argv[3], "--json");
	ipcx_mq *mq;
	int rc = ipcx_mq_open(&mq, name, NULL);
	ipcx_mq_attr a;
	if (!rc)
		rc = ipcx_mq_getattr(mq, &a);
	ipcx_mq_close(mq);
	if (rc)
		return fail("stat", name, rc);
	static const char *const full[] = { "block", "fail", "drop" };
	static const char *const sync[] = { "none", "batch", "always" };
	/* The attach that stat itself made is not counted as a live handle. */
	if (a.attached)
		a.attached--;
	if (json) {
		printf("{\"name\":\"%s\",\"depth\":%u,\"depth_max\":%u,\"bytes\":%llu,"
		       "\"bytes_max\":%llu,\"max_msg\":%u,\"full\":\"%s\",\"fair\":%u,"
		       "\"loaned\":%u,\"taken\":%u,\"sent\":%llu,\"received\":%llu,\"dropped\":%llu,"
		       "\"redelivered\":%llu,\"cancelled\":%llu,\"shaped\":%llu,\"fair_waits\":%llu,"
		       "\"senders\":%u,\"receivers\":%u,\"attached\":%u,\"per_prio\":{",
		       name, a.depth, a.depth_max, (unsigned long long)a.bytes,
		       (unsigned long long)a.bytes_max, a.max_msg, full[a.full % 3], a.fair, a.loaned,
		       a.taken, (unsigned long long)a.sent, (unsigned long long)a.received,
		       (unsigned long long)a.dropped, (unsigned long long)a.redelivered,
		       (unsigned long long)a.cancelled, (unsigned long long)a.shaped,
		       (unsigned long long)a.fair_waits, a.senders, a.receivers, a.attached);
		const char *sep = "";
		for (unsigned p = 0; p < IPCX_MQ_PRIO_LEVELS; p++)
			if (a.per_prio[p]) {
				printf("%s\"%u\":%u", sep, p, a.per_prio[p]);
				sep = ",";
			}
		printf("}");
		if (a.persistent)
			printf(",\"log\":\"%s\",\"sync\":\"%s\",\"log_bytes\":%llu,\"recovered\":%llu,"
			       "\"log_skipped_bytes\":%llu,\"log_failed\":%u,\"log_compactions\":%u",
			       a.log_path, sync[a.sync % 3], (unsigned long long)a.log_bytes,
			       (unsigned long long)a.recovered, (unsigned long long)a.log_skipped_bytes,
			       a.log_failed, a.log_compactions);
		printf("}\n");
		return CLI_OK;
	}
	printf("mailbox:     %s\nqueued:      %u of %u messages, %llu of %llu bytes\n"
	       "max message: %u bytes\nwhen full:   %s%s\nin flight:   %u loaned, %u taken\n"
	       "sent:        %llu\nreceived:    %llu\ndropped:     %llu\nredelivered: %llu\n"
	       "cancelled:   %llu\nshaped:      %llu\nfair waits:  %llu\n"
	       "handles:     %u alive (%u sent, %u received)\n",
	       name, a.depth, a.depth_max, (unsigned long long)a.bytes,
	       (unsigned long long)a.bytes_max, a.max_msg, full[a.full % 3],
	       a.fair ? ", fair share" : "", a.loaned, a.taken, (unsigned long long)a.sent,
	       (unsigned long long)a.received, (unsigned long long)a.dropped,
	       (unsigned long long)a.redelivered, (unsigned long long)a.cancelled,
	       (unsigned long long)a.shaped, (unsigned long long)a.fair_waits, a.attached,
	       a.senders, a.receivers);
	printf("priorities: ");
	int any = 0;
	for (unsigned p = IPCX_MQ_PRIO_LEVELS; p-- > 0;)
		if (a.per_prio[p]) {
			printf(" %u:%u", p, a.per_prio[p]);
			any = 1;
		}
	printf("%s\n", any ? "" : " (empty)");
	if (a.persistent)
		printf("log:         %s (sync %s), %llu bytes, compacted %u times%s\n"
		       "recovered:   %llu messages, %llu bytes of torn or corrupt records cut\n",
		       a.log_path, sync[a.sync % 3], (unsigned long long)a.log_bytes,
		       a.log_compactions,
		       a.log_failed ? ", FAILED (an fdatasync failed: sends are refused)" : "",
		       (unsigned long long)a.recovered, (unsigned long long)a.log_skipped_bytes);
	return CLI_OK;
}

int cli_mq_main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: %s\n", usage);
			return CLI_OK;
		}
	if (argc < 3) {
		fprintf(stderr, "usage: %s\n", usage);
		return CLI_USAGE;
	}
	const char *verb = argv[1], *name = argv[2];
	if (!strcmp(verb, "create"))
		return mq_create_cmd(argc, argv, name);
	if (!strcmp(verb, "send"))
		return mq_send_cmd(argc, argv, name);
	if (!strcmp(verb, "recv"))
		return mq_recv_cmd(argc, argv, name);
	if (!strcmp(verb, "stat"))
		return cli_mq_stat(argc, argv, name);
	fprintf(stderr, "ipcx mq: unknown verb '%s'\nusage: %s\n", verb, usage);
	return CLI_USAGE;
}

static const struct cli_command mq_cmd = { "mq", "create|send|recv|stat NAME ...",
					   "priority mailboxes: create, send, receive, inspect",
					   cli_mq_main };
CLI_COMMAND(mq_cmd)
