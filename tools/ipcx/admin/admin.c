/* Admin commands: ls, stat, rm for every ipcx object; ring and queue create/send/recv. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ipcx/ipcx.h>

#include "../cli.h"

#define SHM_DIR "/dev/shm"
#define PREFIX "ipcx."

static int want_help(int argc, char **argv, const char *usage)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: %s\n", usage);
			return 1;
		}
	return 0;
}

static const char *pid_state(int32_t pid)
{
	if (pid <= 0)
		return "";
	return kill(pid, 0) == 0 || errno == EPERM ? "" : " (gone)";
}

static void fmt_time(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000ull);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int ls_main(int argc, char **argv)
{
	if (want_help(argc, argv, "ipcx ls [--json]\n\nList the ipcx objects in " SHM_DIR "."))
		return CLI_OK;
	int json = argc > 1 && !strcmp(argv[1], "--json");
	DIR *d = opendir(SHM_DIR);
	if (!d) {
		fprintf(stderr, "ipcx ls: %s: %s\n", SHM_DIR, strerror(errno));
		return CLI_FAIL;
	}
	if (!json)
		printf("%-32s %-6s %12s %5s %6s %8s  %s\n", "NAME", "KIND", "BYTES", "MODE", "UID",
		       "CREATOR", "CREATED");
	struct dirent *e;
	int n = 0;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, PREFIX, strlen(PREFIX)))
			continue;
		const char *name = e->d_name + strlen(PREFIX);
		ipcx_region_info info;
		int rc = ipcx_region_peek(name, &info);
		n++;
		if (json) {
			printf("{\"name\":\"%s\"", name); /* names are [A-Za-z0-9._-] */
			if (rc)
				printf(",\"error\":\"%s\"}\n", ipcx_strerror(rc));
			else
				printf(",\"kind\":\"%s\",\"bytes\":%llu,\"mode\":\"%04o\",\"uid\":%u,"
				       "\"creator_pid\":%d,\"created_ns\":%llu}\n",
				       ipcx_kind_name(info.kind), (unsigned long long)info.data_size,
				       info.mode, info.creator_uid, info.creator_pid,
				       (unsigned long long)info.created_ns);
			continue;
		}
		if (rc) {
			printf("%-32s %s\n", name, ipcx_strerror(rc));
			continue;
		}
		char when[32];
		fmt_time(info.created_ns, when, sizeof when);
		printf("%-32s %-6s %12llu %05o %6u %8d  %s%s\n", name, ipcx_kind_name(info.kind),
		       (unsigned long long)info.data_size, info.mode, info.creator_uid,
		       info.creator_pid, when, pid_state(info.creator_pid));
	}
	closedir(d);
	if (!json && !n)
		printf("(no ipcx objects)\n");
	return CLI_OK;
}

static int stat_main(int argc, char **argv)
{
	if (want_help(argc, argv, "ipcx stat NAME\n\nShow an object's header, validated, and its state."))
		return CLI_OK;
	if (argc != 2) {
		fprintf(stderr, "usage: ipcx stat NAME\n");
		return CLI_USAGE;
	}
	ipcx_region_info info;
	int rc = ipcx_region_peek(argv[1], &info);
	if (rc) {
		fprintf(stderr, "ipcx stat: %s: %s\n", argv[1], ipcx_strerror(rc));
		return CLI_FAIL;
	}
	char when[32];
	fmt_time(info.created_ns, when, sizeof when);
	printf("name:        %s\nkind:        %s\nabi:         %u\ndata bytes:  %llu\n"
	       "mapped:      %llu\npage size:   %llu%s\nmode:        %04o\ncreator:     pid %d%s, uid %u\n"
	       "created:     %s\n",
	       argv[1], ipcx_kind_name(info.kind), info.abi, (unsigned long long)info.data_size,
	       (unsigned long long)info.map_size, (unsigned long long)info.page_size,
	       info.huge == 1 ? " (hugetlb)" : info.huge == 2 ? " (THP)" : "", info.mode,
	       info.creator_pid, pid_state(info.creator_pid), info.creator_uid, when);
	if (info.kind == IPCX_KIND_MQ)
		return cli_mq_stat(0, NULL, argv[1]);
	if (info.kind == IPCX_KIND_RING) {
		ipcx_ring *r;
		ipcx_ring_stats s;
		static const char *const states[] = { "none", "attached", "closed" };
		rc = ipcx_ring_open(&r, argv[1], IPCX_RING_NOROLE, NULL);
		if (!rc)
			rc = ipcx_ring_stat(r, &s);
		ipcx_ring_close(r);
		if (rc) {
			fprintf(stderr, "ipcx stat: %s: ring: %s\n", argv[1], ipcx_strerror(rc));
			return CLI_FAIL;
		}
		printf("capacity:    %llu\nmax message: %llu\nqueued:      %llu bytes\n"
		       "sent:        %llu bytes\nreceived:    %llu bytes\n"
		       "producer:    %s pid %d%s\nconsumer:    %s pid %d%s\n",
		       (unsigned long long)s.capacity, (unsigned long long)s.max_msg,
		       (unsigned long long)s.used, (unsigned long long)s.sent_bytes,
		       (unsigned long long)s.recv_bytes, states[s.producer_state % 3], s.producer_pid,
		       pid_state(s.producer_pid), states[s.consumer_state % 3], s.consumer_pid,
		       pid_state(s.consumer_pid));
	}
	if (info.kind == IPCX_KIND_QUEUE) {
		ipcx_queue *q;
		ipcx_queue_stats s;
		rc = ipcx_queue_open(&q, argv[1], 0, NULL);
		if (!rc)
			rc = ipcx_queue_stat(q, &s);
		ipcx_queue_close(q);
		if (rc) {
			fprintf(stderr, "ipcx stat: %s: queue: %s\n", argv[1], ipcx_strerror(rc));
			return CLI_FAIL;
		}
		printf("slots:       %u\nmax message: %u\nqueued:      %llu\n"
		       "producers:   %u\nconsumers:   %u\nskipped:     %llu\nlost:        %llu\n",
		       s.capacity, s.msg_max, (unsigned long long)s.depth, s.producers, s.consumers,
		       (unsigned long long)s.skipped, (unsigned long long)s.lost);
	}
	return CLI_OK;
}

static int rm_main(int argc, char **argv)
{
	if (want_help(argc, argv, "ipcx rm NAME...\n\nRemove objects' names (mapped users keep them)."))
		return CLI_OK;
	if (argc < 2) {
		fprintf(stderr, "usage: ipcx rm NAME...\n");
		return CLI_USAGE;
	}
	int status = CLI_OK;
	for (int i = 1; i < argc; i++) {
		/* Remove only what is an ipcx object, or what is too broken to tell. */
		ipcx_region_info info;
		int rc = ipcx_region_peek(argv[i], &info);
		if (rc == -ENOENT || rc == -EINVAL) {
			fprintf(stderr, "ipcx rm: %s: %s\n", argv[i], ipcx_strerror(rc));
			status = CLI_FAIL;
			continue;
		}
		rc = ipcx_region_unlink(argv[i]);
		if (rc) {
			fprintf(stderr, "ipcx rm: %s: %s\n", argv[i], ipcx_strerror(rc));
			status = CLI_FAIL;
		}
	}
	return status;
}

/* ---- ring and queue: create, send, recv ----------------------------------
 * One command shape for both channel kinds; the table says how each is
 * created, opened and used. */
struct chan_kind {
	const char *kind;  /* "ring" or "queue" */
	const char *usage;
	/* size: ring capacity or queue slots (0: default); msg: queue msg_max */
	int (*create)(void **h, const char *name, unsigned long long size, unsigned long long msg);
	int (*open)(void **h, const char *name, int consumer, const ipcx_wait *w);
	int (*send)(void *h, const void *buf, size_t len);
	ssize_t (*recv)(void *h, void *buf, size_t cap);
	size_t (*max_msg)(const void *h);
	void (*close)(void *h);
};

static int ring_create_k(void **h, const char *name, unsigned long long size, unsigned long long msg)
{
	(void)msg;
	ipcx_ring_opts o = { .capacity = (size_t)size };
	int rc = ipcx_ring_create((ipcx_ring **)h, name, &o, IPCX_RING_NOROLE);
	if (!rc)
		printf("created ring %s: %zu bytes, messages up to %zu bytes\n", name,
		       size ? (size_t)size : (size_t)1 << 20, ipcx_ring_max_msg(*h));
	return rc;
}
static int ring_open_k(void **h, const char *name, int consumer, const ipcx_wait *w)
{
	return ipcx_ring_open((ipcx_ring **)h, name,
			      consumer ? IPCX_RING_CONSUMER : IPCX_RING_PRODUCER, w);
}
static int ring_send_k(void *h, const void *buf, size_t len)
{
	return ipcx_ring_send(h, buf, len, 0, NULL);
}
static ssize_t ring_recv_k(void *h, void *buf, size_t cap)
{
	return ipcx_ring_recv(h, buf, cap, NULL);
}
static size_t ring_max_k(const void *h)
{
	return ipcx_ring_max_msg(h);
}
static void ring_close_k(void *h)
{
	ipcx_ring_close(h);
}

static int queue_create_k(void **h, const char *name, unsigned long long size,
			  unsigned long long msg)
{
	if (size > UINT32_MAX || msg > UINT32_MAX)
		return -EINVAL;
	ipcx_queue_opts o = { .capacity = (uint32_t)size, .msg_max = (uint32_t)msg };
	int rc = ipcx_queue_create((ipcx_queue **)h, name, 0, &o);
	if (!rc) {
		ipcx_queue_stats st;
		ipcx_queue_stat(*h, &st);
		printf("created queue %s: %u slots, messages up to %u bytes\n", name, st.capacity,
		       st.msg_max);
	}
	return rc;
}
static int queue_open_k(void **h, const char *name, int consumer, const ipcx_wait *w)
{
	return ipcx_queue_open((ipcx_queue **)h, name,
			       consumer ? IPCX_QUEUE_CONSUMER : IPCX_QUEUE_PRODUCER, w);
}
static int queue_send_k(void *h, const void *buf, size_t len)
{
	return ipcx_queue_send(h, buf, len, NULL);
}
static ssize_t queue_recv_k(void *h, void *buf, size_t cap)
{
	return ipcx_queue_recv(h, buf, cap, NULL);
}
static size_t queue_max_k(const void *h)
{
	return ipcx_queue_msg_max(h);
}
static void queue_close_k(void *h)
{
	ipcx_queue_close(h);
}

static const struct chan_kind ring_kind = {
	"ring",
	"ipcx ring create NAME [CAPACITY]\n"
	"       ipcx ring send NAME TEXT...   (one message per argument)\n"
	"       ipcx ring recv NAME [--timeout MS] [--count N]",
	ring_create_k, ring_open_k, ring_send_k, ring_recv_k, ring_max_k, ring_close_k,
};
static const struct chan_kind queue_kind = {
	"queue",
	"ipcx queue create NAME [SLOTS [MSG_MAX]]\n"
	"       ipcx queue send NAME TEXT...   (one message per argument)\n"
	"       ipcx queue recv NAME [--timeout MS] [--count N]",
	queue_create_k, queue_open_k, queue_send_k, queue_recv_k, queue_max_k, queue_close_k,
};

static int chan_main(const struct chan_kind *k, int argc, char **argv)
{
	if (want_help(argc, argv, k->usage))
		return CLI_OK;
	if (argc < 3) {
		fprintf(stderr, "usage: %s\n", k->usage);
		return CLI_USAGE;
	}
	const char *verb = argv[1], *name = argv[2];
	void *h = NULL;
	int rc;
	if (!strcmp(verb, "create")) {
		unsigned long long size[2] = { 0, 0 };
		for (int i = 3; i < argc && i < 5; i++)
			if (cli_parse_size(argv[i], &size[i - 3])) {
				fprintf(stderr, "ipcx %s: bad size '%s'\n", k->kind, argv[i]);
				return CLI_USAGE;
			}
		rc = k->create(&h, name, size[0], size[1]);
	} else if (!strcmp(verb, "send")) {
		rc = k->open(&h, name, 0, NULL);
		for (int i = 3; !rc && i < argc; i++)
			rc = k->send(h, argv[i], strlen(argv[i]));
	} else if (!strcmp(verb, "recv")) {
		long timeout_ms = 0, count = 0;
		for (int i = 3; i + 1 < argc; i += 2) {
			if (!strcmp(argv[i], "--timeout"))
				timeout_ms = strtol(argv[i + 1], NULL, 10);
			else if (!strcmp(argv[i], "--count"))
				count = strtol(argv[i + 1], NULL, 10);
		}
		ipcx_wait w = { IPCX_WAIT_BLOCK, 0, timeout_ms * 1000000ll };
		rc = k->open(&h, name, 1, &w);
		size_t cap = rc ? 0 : k->max_msg(h);
		char *buf = rc ? NULL : malloc(cap + 1);
		for (long n = 0; !rc && buf && (!count || n < count); n++) {
			ssize_t len = k->recv(h, buf, cap);
			if (len < 0) {
				/* Nothing more within the time allowed is the normal end. */
				rc = (len == -ETIMEDOUT || len == -EPIPE) && n > 0 ? 0 : (int)len;
				break;
			}
			fwrite(buf, 1, (size_t)len, stdout);
			putchar('\n');
		}
		free(buf);
	} else {
		fprintf(stderr, "usage: %s\n", k->usage);
		return CLI_USAGE;
	}
	if (h)
		k->close(h);
	if (rc) {
		fprintf(stderr, "ipcx %s %s: %s: %s\n", k->kind, verb, name, ipcx_strerror(rc));
		return CLI_FAIL;
	}
	return CLI_OK;
}

static int ring_main(int argc, char **argv)
{
	return chan_main(&ring_kind, argc, argv);
}

static int queue_main(int argc, char **argv)
{
	return chan_main(&queue_kind, argc, argv);
}

/* ---- send and recv by kind -------------------------------------------------
 * `ipcx send NAME ...` and `ipcx recv NAME ...` look at what NAME is and run
 * that kind's command (`ipcx ring|queue|mq send|recv NAME ...`), with its
 * options. */
static int by_kind(const char *verb, int argc, char **argv)
{
	char usage[256];
	snprintf(usage, sizeof usage,
		 "ipcx %s NAME [OPTIONS]%s\n\nRun `ipcx ring|queue|mq %s NAME ...` for what NAME is "
		 "(a ring, a queue or a mailbox), with that command's options.",
		 verb, strcmp(verb, "send") ? "" : " TEXT...", verb);
	if (want_help(argc, argv, usage))
		return CLI_OK;
	if (argc < 2) {
		fprintf(stderr, "usage: %s\n", usage);
		return CLI_USAGE;
	}
	ipcx_region_info info;
	int rc = ipcx_region_peek(argv[1], &info);
	if (rc) {
		fprintf(stderr, "ipcx %s: %s: %s\n", verb, argv[1], ipcx_strerror(rc));
		return CLI_FAIL;
	}
	int (*run)(int, char **) = info.kind == IPCX_KIND_RING	? ring_main
				   : info.kind == IPCX_KIND_QUEUE ? queue_main
				   : info.kind == IPCX_KIND_MQ	  ? cli_mq_main
								  : NULL;
	if (!run) {
		fprintf(stderr, "ipcx %s: %s: a %s has no %s (rings, queues and mailboxes do)\n",
			verb, argv[1], ipcx_kind_name(info.kind), verb);
		return CLI_FAIL;
	}
	/* argv as the kind's command sees it: KIND VERB NAME ARGS... */
	char **av = calloc((size_t)argc + 2, sizeof *av);
	if (!av) {
		fprintf(stderr, "ipcx %s: %s\n", verb, ipcx_strerror(-ENOMEM));
		return CLI_FAIL;
	}
	av[0] = (char *)ipcx_kind_name(info.kind);
	av[1] = (char *)verb;
	for (int i = 1; i < argc; i++)
		av[i + 1] = argv[i];
	int status = run(argc + 1, av);
	free(av);
	return status;
}

static int send_main(int argc, char **argv)
{
	return by_kind("send", argc, argv);
}

static int recv_main(int argc, char **argv)
{
	return by_kind("recv", argc, argv);
}

static const struct cli_command ls_cmd = { "ls", "[--json]", "list ipcx objects", ls_main };
static const struct cli_command stat_cmd = { "stat", "NAME", "show an object's header and state",
					     stat_main };
static const struct cli_command rm_cmd = { "rm", "NAME...", "remove objects", rm_main };
static const struct cli_command ring_cmd = { "ring", "create|send|recv NAME ...",
					     "create a ring, send to it, receive from it", ring_main };
static const struct cli_command queue_cmd = { "queue", "create|send|recv NAME ...",
					      "create a queue, send to it, receive from it",
					      queue_main };
static const struct cli_command send_cmd = { "send", "NAME [OPTIONS] TEXT...",
					     "send to a ring, queue or mailbox (by its kind)",
					     send_main };
static const struct cli_command recv_cmd = { "recv", "NAME [OPTIONS]",
					     "receive from a ring, queue or mailbox (by its kind)",
					     recv_main };
CLI_COMMAND(ls_cmd)
CLI_COMMAND(send_cmd)
CLI_COMMAND(recv_cmd)
CLI_COMMAND(stat_cmd)
CLI_COMMAND(rm_cmd)
CLI_COMMAND(ring_cmd)
CLI_COMMAND(queue_cmd)
