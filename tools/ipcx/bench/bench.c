/* ipcx bench: the command line, the case list and the report. */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "../cli.h"
#include "harness.h"

enum fmt { FMT_TABLE, FMT_JSON, FMT_CSV };

struct row {
	const struct bench_mech *mech;
	unsigned mode;
	size_t size;
	unsigned producers, consumers;
	struct bench_result r;
};

struct machine {
	char kernel[160], arch[80], cpu[128], virt[64], date[32];
	long cpus;
};

static void machine_describe(struct machine *m)
{
	struct utsname u;
	memset(m, 0, sizeof *m);
	if (uname(&u) == 0) {
		snprintf(m->kernel, sizeof m->kernel, "%s %s", u.sysname, u.release);
		snprintf(m->arch, sizeof m->arch, "%s", u.machine);
	}
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[512];
	int hypervisor = 0;
	while (f && fgets(line, sizeof line, f)) {
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		if (!m->cpu[0] && !strncmp(line, "model name", 10)) {
			snprintf(m->cpu, sizeof m->cpu, "%s", colon + 2);
			m->cpu[strcspn(m->cpu, "\n")] = 0;
		}
		if (!strncmp(line, "flags", 5) && strstr(colon, " hypervisor"))
			hypervisor = 1;
	}
	if (f)
		fclose(f);
	cpu_set_t set;
	m->cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
							      : sysconf(_SC_NPROCESSORS_ONLN);
	snprintf(m->virt, sizeof m->virt, "%s", hypervisor ? "yes" : "no");
#if defined(__x86_64__) || defined(__i386__)
	if (hypervisor) {
		unsigned a, b, c, d;
		__cpuid(0x40000000, a, b, c, d);
		char vendor[13];
		memcpy(vendor, &b, 4);
		memcpy(vendor + 4, &c, 4);
		memcpy(vendor + 8, &d, 4);
		vendor[12] = 0;
		for (int i = 0; i < 12; i++)
			if (vendor[i] < 0x20 || vendor[i] > 0x7e)
				vendor[i] = 0;
		if (vendor[0])
			snprintf(m->virt, sizeof m->virt, "yes (%s)", vendor);
	}
#endif
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(m->date, sizeof m->date, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static const char *mode_name(unsigned mode)
{
	return mode == BENCH_PINGPONG ? "pingpong" : "stream";
}

static const char *status_name(enum bench_status s)
{
	return s == BENCH_OK ? "ok" : s == BENCH_SKIPPED ? "skipped" : "failed";
}

static void size_str(size_t s, char *buf, size_t len)
{
	if (s >= 1048576 && s % 1048576 == 0)
		snprintf(buf, len, "%zu MiB", s / 1048576);
	else if (s >= 1024 && s % 1024 == 0)
		snprintf(buf, len, "%zu KiB", s / 1024);
	else
		snprintf(buf, len, "%zu B", s);
}

/* The reference rows a ratio is taken against: same mode, size and shape. */
static const struct row *find_row(const struct row *rows, unsigned n, const char *mech,
				  const struct row *like)
{
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(rows[i].mech->name, mech) && rows[i].mode == like->mode &&
		    rows[i].size == like->size && rows[i].r.status == BENCH_OK &&
		    rows[i].producers == 1 && rows[i].consumers == 1)
			return &rows[i];
	return NULL;
}

static int in_place(const struct row *w)
{
	return w->mech->in_place_from && w->size >= w->mech->in_place_from;
}

/* rounds: the row's results in round order (k of them), for the spread. */
static void print_json_row(const struct row *w, const struct bench_result *rounds, unsigned k)
{
	printf("{\"type\":\"result\",\"mech\":");
	json_str(stdout, w->mech->name);
	printf(",\"mode\":\"%s\",\"size\":%zu,\"producers\":%u,\"consumers\":%u,\"status\":\"%s\"",
	       mode_name(w->mode), w->size, w->producers, w->consumers, status_name(w->r.status));
	if (w->r.status != BENCH_OK) {
		printf(",\"reason\":");
		json_str(stdout, w->r.reason);
	} else if (w->mode == BENCH_PINGPONG) {
		printf(",\"samples\":%llu,\"p50_ns\":%llu,\"p99_ns\":%llu,\"p999_ns\":%llu,\"max_ns\":%llu,"
		       "\"min_ns\":%llu",
		       (unsigned long long)w->r.samples, (unsigned long long)w->r.p50,
		       (unsigned long long)w->r.p99, (unsigned long long)w->r.p999,
		       (unsigned long long)w->r.max, (unsigned long long)w->r.min);
	} else {
		printf(",\"messages\":%llu,\"msgs_per_s\":%.0f,\"mib_per_s\":%.1f,\"csw_per_msg\":%.4f,"
		       "\"cpu_ns_per_msg\":%.1f",
		       (unsigned long long)w->r.samples, w->r.msgs_per_s, w->r.mib_per_s,
		       w->r.csw_per_msg, w->r.cpu_ns_per_msg);
	}
	if (in_place(w))
		printf(",\"in_place\":true");
	if (w->r.status == BENCH_OK && k > 1) {
		int pp = w->mode == BENCH_PINGPONG;
		printf(",\"%s\":[", pp ? "round_p50_ns" : "round_msgs_per_s");
		for (unsigned i = 0; i < k; i++) {
			if (pp)
				printf("%s%llu", i ? "," : "", (unsigned long long)rounds[i].p50);
			else
				printf("%s%.0f", i ? "," : "", rounds[i].msgs_per_s);
		}
		printf("]");
	}
	printf("}\n");
	fflush(stdout);
}

static void print_csv_row(const struct row *w)
{
	printf("%s,%s,%zu,%u,%u,%s,", w->mech->name, mode_name(w->mode), w->size, w->producers,
	       w->consumers, status_name(w->r.status));
	if (w->r.status == BENCH_OK && w->mode == BENCH_PINGPONG)
		printf("%llu,%llu,%llu,%llu,%llu,,,,,", (unsigned long long)w->r.samples,
		       (unsigned long long)w->r.p50, (unsigned long long)w->r.p99,
		       (unsigned long long)w->r.p999, (unsigned long long)w->r.max);
	else if (w->r.status == BENCH_OK)
		printf("%llu,,,,,%.0f,%.1f,%.4f,%.1f,", (unsigned long long)w->r.samples,
		       w->r.msgs_per_s, w->r.mib_per_s, w->r.csw_per_msg, w->r.cpu_ns_per_msg);
	else
		printf(",,,,,,,,,");
	/* the reason may hold commas: quote it */
	printf("\"");
	for (const char *s = w->r.reason; *s; s++)
		printf(*s == '"' ? "\"\"" : "%c", *s);
	printf("\"\n");
	fflush(stdout);
}

static int cmp_dbl(const void *a, const void *b);

/* How row a compares with row b: the median over the rounds of each round's
 * ratio (a/b, b/a if inverse), so that both figures of a pair come from the
 * same round and drift on the machine between rounds cancels; with one round
 * the ratio of the two results.  0 if there is nothing to compare. */
static double paired_ratio(const struct row *rows, const struct bench_result *runs, unsigned k,
			   const struct row *a, const struct row *b, int inverse)
{
	double r[16];
	unsigned m = 0;
	const struct bench_result *ra = &runs[(size_t)(a - rows) * k];
	const struct bench_result *rb = &runs[(size_t)(b - rows) * k];
	for (unsigned i = 0; i < k; i++) {
		double x = a->mode == BENCH_PINGPONG ? (double)ra[i].p50 : ra[i].msgs_per_s;
		double y = a->mode == BENCH_PINGPONG ? (double)rb[i].p50 : rb[i].msgs_per_s;
		if (x > 0 && y > 0)
			r[m++] = inverse ? y / x : x / y;
	}
	if (!m)
		return 0;
	qsort(r, m, sizeof r[0], cmp_dbl);
	return m % 2 ? r[m / 2] : (r[m / 2 - 1] + r[m / 2]) / 2;
}

static void print_table(const struct row *rows, const struct bench_result *runs, unsigned n,
			const struct machine *mc, const struct bench_opts *o, int same_cpu)
{
	char a[32], b[32], c[32], d[32], sz[32];
	int any_in_place = 0;
	printf("\nipcx bench %s on %s (%s), %s, %ld CPUs, virtualised: %s\n", mc->date, mc->cpu,
	       mc->arch, mc->kernel, mc->cpus, mc->virt);
	printf("%.2f s per case after warm-up, %s; %s\n", o->seconds,
	       same_cpu ? "all processes on one CPU" : "sides pinned to different CPUs",
	       o->repeat > 1 ? "median of the repeats" : "one run per case");
	for (int mode = BENCH_PINGPONG; mode <= BENCH_STREAM; mode <<= 1) {
		int any = 0;
		for (unsigned i = 0; i < n; i++)
			any |= rows[i].mode == (unsigned)mode;
		if (!any)
			continue;
		if (mode == BENCH_PINGPONG)
			printf("\nPING-PONG  one-way latency = round trip / 2\n"
			       "%-22s %8s %10s %10s %10s %10s %9s %9s\n", "mechanism", "size", "p50",
			       "p99", "p99.9", "max", "vs floor", "vs pipe");
		else
			printf("\nSTREAM  one way, as fast as the receiver keeps up\n"
			       "%-22s %8s %5s %12s %10s %8s %10s %9s %9s\n", "mechanism", "size", "P:C",
			       "msgs/s", "MiB/s", "csw/msg", "cpu/msg", "vs floor", "vs pipe");
		for (unsigned i = 0; i < n; i++) {
			const struct row *w = &rows[i];
			if (w->mode != (unsigned)mode)
				continue;
			size_str(w->size, sz, sizeof sz);
			char name[64];
			snprintf(name, sizeof name, "%s", w->mech->name);
			/* Sizes a mechanism has no use for (a lock hand-off carries no
			 * payload) stay in --json and --csv, not in the table. */
			if (w->r.status == BENCH_SKIPPED && !strncmp(w->r.reason, "messages over", 13))
				continue;
			if (w->r.status != BENCH_OK) {
				printf("%-22s %8s  %s: %s\n", name, sz,
				       w->r.status == BENCH_SKIPPED ? "skipped" : "FAILED", w->r.reason);
				continue;
			}
			const struct row *fl = find_row(rows, n, "floor", w);
			const struct row *pp = find_row(rows, n, "pipe", w);
			char vf[16] = "", vp[16] = "";
			/* A reference that failed or was skipped compares with nothing. */
			double rf = fl && fl->r.status == BENCH_OK ? paired_ratio(rows, runs, o->repeat, w, fl, 0) : 0;
			/* vs pipe: how many times better, so latencies are inverted */
			double rp = pp && pp->r.status == BENCH_OK
					    ? paired_ratio(rows, runs, o->repeat, w, pp, mode == BENCH_PINGPONG)
					    : 0;
			if (mode == BENCH_PINGPONG) {
				if (rf > 0)
					snprintf(vf, sizeof vf, "%.2fx", rf);
				if (rp > 0)
					snprintf(vp, sizeof vp, "%.1fx", rp);
				printf("%-22s %8s %10s %10s %10s %10s %9s %9s\n", name, sz,
				       cli_fmt_ns((double)w->r.p50, a, sizeof a),
				       cli_fmt_ns((double)w->r.p99, b, sizeof b),
				       cli_fmt_ns((double)w->r.p999, c, sizeof c),
				       cli_fmt_ns((double)w->r.max, d, sizeof d), vf, vp);
			} else {
				if (rf > 0)
					snprintf(vf, sizeof vf, "%.2fx", rf);
				if (rp > 0)
					snprintf(vp, sizeof vp, "%.1fx", rp);
				char pc[16];
				snprintf(pc, sizeof pc, "%u:%u", w->producers, w->consumers);
				char mib[24];
				snprintf(mib, sizeof mib, "%.1f%s", w->r.mib_per_s, in_place(w) ? "*" : "");
				any_in_place |= in_place(w);
				printf("%-22s %8s %5s %12.0f %10s %8.3f %10s %9s %9s\n", name, sz, pc,
				       w->r.msgs_per_s, mib, w->r.csw_per_msg,
				       cli_fmt_ns(w->r.cpu_ns_per_msg, a, sizeof a), vf, vp);
			}
		}
	}
	printf("\nvs floor: latency / floor's (lower is better), or rate / floor's; "
	       "vs pipe: how many times better than pipe%s.\n",
	       o->repeat > 1 ? " (each the median of the rounds' own ratios)" : "");
	printf("Latency percentiles come from a log-linear histogram (buckets within 1.6%%).\n"
	       "cpu/msg: user+system time of all processes per message; csw/msg: context switches.\n");
	if (any_in_place)
		printf("*: handed over in place, not copied: MiB/s counts the bytes made available.\n");
	/* Each note once, even when several mechanisms share it. */
	for (unsigned i = 0; i < n; i++) {
		const char *note = rows[i].mech->note;
		int first = note != NULL;
		for (unsigned j = 0; j < i && first; j++)
			first = !rows[j].mech->note || strcmp(rows[j].mech->note, note);
		if (first)
			printf("%s: %s\n", rows[i].mech->name, note);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median of each statistic over the repeats. */
static void median_of(struct bench_result *rs, unsigned k, struct bench_result *out)
{
	*out = rs[0];
	if (k < 2)
		return;
	uint64_t u[16];
	double d[16];
#define MED_U(f)                                                                         \
	do {                                                                             \
		for (unsigned i = 0; i < k; i++)                                         \
			u[i] = rs[i].f;                                                  \
		qsort(u, k, sizeof u[0], cmp_u64);                                       \
		out->f = u[k / 2];                                                       \
	} while (0)
#define MED_D(f)                                                                         \
	do {                                                                             \
		for (unsigned i = 0; i < k; i++)                                         \
			d[i] = rs[i].f;                                                  \
		qsort(d, k, sizeof d[0], cmp_dbl);                                       \
		out->f = d[k / 2];                                                       \
	} while (0)
	MED_U(p50);
	MED_U(p99);
	MED_U(p999);
	MED_U(max);
	MED_U(min);
	MED_U(samples);
	MED_D(msgs_per_s);
	MED_D(mib_per_s);
	MED_D(csw_per_msg);
	MED_D(cpu_ns_per_msg);
#undef MED_U
#undef MED_D
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ipcx bench [options]\n\n"
		"Measure IPC mechanisms side by side: two (or more) processes, pinned to\n"
		"different CPUs, every message sequence-checked.\n\n"
		"  --mech LIST      mechanisms, comma-separated (default: the default suite; 'all')\n"
		"  --mode LIST      pingpong,stream (default: both)\n"
		"  --size LIST      message sizes (default 64,4096,65536,1048576; k/M suffixes)\n"
		"  --seconds S      measured time per case (default 0.3)\n"
		"  --repeat N       run each case N times, report the median (default 1)\n"
		"  --producers N    stream: sending processes (mechanisms that support it)\n"
		"  --consumers N    stream: receiving processes\n"
		"  --same-cpu       put all processes on one CPU\n"
		"  --json | --csv   machine-readable output (first line describes the machine)\n"
		"  --list           list the mechanisms\n\n"
		"Exit status: 0 all cases ran or were skipped; 1 a case failed (lost, torn or\n"
		"reordered message, error); 2 bad arguments.\n");
}

static int split(char *s, char **out, int max)
{
	int n = 0;
	for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ","))
		out[n++] = tok;
	return n;
}

static int bench_main(int argc, char **argv)
{
	const struct bench_mech **all;
	unsigned nall = bench_mechs(&all);
	struct bench_opts o = { .seconds = 0.3, .repeat = 1 };
	enum fmt fmt = FMT_TABLE;
	unsigned modes = BENCH_PINGPONG | BENCH_STREAM;
	size_t sizes[32] = { 64, 4096, 65536, 1048576 };
	unsigned nsizes = 4, producers = 1, consumers = 1;
	int same_cpu = 0;
	char *mechlist = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_ARG                                                                             \
	do {                                                                                 \
		if (!v) {                                                                    \
			fprintf(stderr, "ipcx bench: %s needs a value\n", a);                \
			return CLI_USAGE;                                                    \
		}                                                                            \
		i++;                                                                         \
	} while (0)
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return CLI_OK;
		} else if (!strcmp(a, "--list")) {
			for (unsigned k = 0; k < nall; k++)
				printf("%-22s %-9s %s\n", all[k]->name,
				       all[k]->in_default ? "default" : "", all[k]->desc);
			return CLI_OK;
		} else if (!strcmp(a, "--json")) {
			fmt = FMT_JSON;
		} else if (!strcmp(a, "--csv")) {
			fmt = FMT_CSV;
		} else if (!strcmp(a, "--same-cpu")) {
			same_cpu = 1;
		} else if (!strcmp(a, "--mech")) {
			NEED_ARG;
			mechlist = argv[i];
		} else if (!strcmp(a, "--mode")) {
			NEED_ARG;
			char buf[64], *parts[4];
			snprintf(buf, sizeof buf, "%s", v);
			int k = split(buf, parts, 4);
			modes = 0;
			for (int j = 0; j < k; j++) {
				if (!strcmp(parts[j], "pingpong"))
					modes |= BENCH_PINGPONG;
				else if (!strcmp(parts[j], "stream"))
					modes |= BENCH_STREAM;
				else {
					fprintf(stderr, "ipcx bench: unknown mode '%s'\n", parts[j]);
					return CLI_USAGE;
				}
			}
		} else if (!strcmp(a, "--size")) {
			NEED_ARG;
			char buf[512], *parts[32];
			snprintf(buf, sizeof buf, "%s", v);
			int k = split(buf, parts, 32);
			nsizes = 0;
			for (int j = 0; j < k; j++) {
				unsigned long long s;
				if (cli_parse_size(parts[j], &s) || s > (1ull << 30)) {
					fprintf(stderr, "ipcx bench: bad size '%s'\n", parts[j]);
					return CLI_USAGE;
				}
				sizes[nsizes++] = (size_t)s;
			}
		} else if (!strcmp(a, "--seconds")) {
			NEED_ARG;
			char *end;
			o.seconds = strtod(v, &end);
			if (*end || !(o.seconds > 0 && o.seconds <= 3600)) {
				fprintf(stderr, "ipcx bench: bad --seconds '%s'\n", v);
				return CLI_USAGE;
			}
		} else if (!strcmp(a, "--repeat") || !strcmp(a, "--producers") ||
			   !strcmp(a, "--consumers")) {
			NEED_ARG;
			char *end;
			long n = strtol(v, &end, 10);
			if (*end || n < 1 || n > (a[2] == 'r' ? 15 : 8)) {
				fprintf(stderr, "ipcx bench: bad %s '%s'\n", a, v);
				return CLI_USAGE;
			}
			if (a[2] == 'r')
				o.repeat = (unsigned)n;
			else if (a[2] == 'p')
				producers = (unsigned)n;
			else
				consumers = (unsigned)n;
		} else {
			fprintf(stderr, "ipcx bench: unknown option '%s'\n\n", a);
			usage(stderr);
			return CLI_USAGE;
		}
#undef NEED_ARG
	}

	/* Which mechanisms. */
	const struct bench_mech *sel[BENCH_MAX_MECHS];
	unsigned nsel = 0;
	if (!mechlist || !strcmp(mechlist, "all")) {
		for (unsigned k = 0; k < nall; k++)
			if (mechlist || all[k]->in_default)
				sel[nsel++] = all[k];
	} else {
		char *parts[BENCH_MAX_MECHS];
		int k = split(mechlist, parts, BENCH_MAX_MECHS);
		for (int j = 0; j < k; j++) {
			const struct bench_mech *m = bench_find(parts[j]);
			if (!m) {
				fprintf(stderr, "ipcx bench: unknown mechanism '%s' (see --list)\n",
					parts[j]);
				return CLI_USAGE;
			}
			sel[nsel++] = m;
		}
	}

	struct machine mc;
	machine_describe(&mc);
	if (fmt == FMT_JSON) {
		printf("{\"type\":\"machine\",\"kernel\":");
		json_str(stdout, mc.kernel);
		printf(",\"arch\":");
		json_str(stdout, mc.arch);
		printf(",\"cpu_model\":");
		json_str(stdout, mc.cpu);
		printf(",\"cpus\":%ld,\"virtualized\":", mc.cpus);
		json_str(stdout, mc.virt);
		printf(",\"date\":\"%s\",\"seconds\":%.3f,\"repeat\":%u,\"same_cpu\":%s}\n", mc.date,
		       o.seconds, o.repeat, same_cpu ? "true" : "false");
	} else if (fmt == FMT_CSV) {
		printf("# %s; %s; %s; %ld CPUs; virtualised: %s; %s\n", mc.kernel, mc.arch, mc.cpu,
		       mc.cpus, mc.virt, mc.date);
		printf("mech,mode,size,producers,consumers,status,samples,p50_ns,p99_ns,p999_ns,"
		       "max_ns,msgs_per_s,mib_per_s,csw_per_msg,cpu_ns_per_msg,reason\n");
	} else {
		fprintf(stderr, "ipcx bench: %u mechanism(s), %.2f s per case; progress on stderr\n",
			nsel, o.seconds);
	}

	unsigned cap = nsel * 2 * (nsizes + 1), n = 0;
	struct row *rows = calloc(cap, sizeof *rows);
	struct bench_result *runs = calloc((size_t)cap * o.repeat, sizeof *runs);
	if (!rows || !runs) {
		free(rows);
		free(runs);
		return CLI_FAIL;
	}
	/* The case list, with the cases that cannot run marked skipped. */
	for (unsigned k = 0; k < nsel; k++) {
		const struct bench_mech *m = sel[k];
		for (unsigned mode = BENCH_PINGPONG; mode <= BENCH_STREAM; mode <<= 1) {
			if (!(modes & mode) || !(m->modes & mode))
				continue;
			/* A mechanism whose messages are too small for a stamp
			 * (eventfd: 8 bytes) runs once, at its own size. */
			int own = m->max_size && m->max_size < BENCH_STAMP_MIN;
			for (unsigned s = 0; s < (own ? 1u : nsizes); s++) {
				struct row *w = &rows[n++];
				w->mech = m;
				w->mode = mode;
				w->size = own ? m->max_size : sizes[s];
				unsigned mp = m->max_producers ? m->max_producers : 1;
				unsigned mcn = m->max_consumers ? m->max_consumers : 1;
				w->producers = mode == BENCH_STREAM ? producers : 1;
				w->consumers = mode == BENCH_STREAM ? consumers : 1;
				if (w->producers > mp || w->consumers > mcn) {
					w->r.status = BENCH_SKIPPED;
					snprintf(w->r.reason, sizeof w->r.reason,
						 "supports at most %u:%u processes", mp, mcn);
				} else if (!own && w->size < BENCH_STAMP_MIN) {
					w->r.status = BENCH_SKIPPED;
					snprintf(w->r.reason, sizeof w->r.reason,
						 "messages under %u bytes cannot carry the check stamp",
						 BENCH_STAMP_MIN);
				} else if (m->max_size && w->size > m->max_size) {
					w->r.status = BENCH_SKIPPED;
					snprintf(w->r.reason, sizeof w->r.reason,
						 "messages over %zu bytes not supported", m->max_size);
				}
			}
		}
	}
	/* Repeats go round the whole list rather than case by case: on a
	 * shared or virtual machine the conditions drift (here the two vCPUs
	 * sometimes share a core complex and sometimes not, a 3x difference
	 * in cache-line latency), and each case's median should sample the
	 * same drift as the rows it is compared with.  Within a round the
	 * cases run grouped by mode and size, so that a row and the rows its
	 * ratios pair it with (floor, pipe: same mode and size) run seconds
	 * apart, not a whole suite apart; the report keeps the list's order. */
	unsigned *order = malloc((size_t)(n ? n : 1) * sizeof *order);
	if (!order) {
		free(runs);
		free(rows);
		return CLI_FAIL;
	}
	unsigned no = 0;
	for (unsigned mode = BENCH_PINGPONG; mode <= BENCH_STREAM; mode <<= 1)
		for (unsigned i = 0; i < n; i++) {
			if (rows[i].mode != mode)
				continue;
			/* first of its size in this mode: bring the others along */
			unsigned j = 0;
			while (j < i && !(rows[j].mode == mode && rows[j].size == rows[i].size))
				j++;
			if (j < i)
				continue;
			for (j = i; j < n; j++)
				if (rows[j].mode == mode && rows[j].size == rows[i].size)
					order[no++] = j;
		}
	int failed = 0;
	for (unsigned k = 0; k < o.repeat; k++) {
		for (unsigned q = 0; q < no; q++) {
			unsigned i = order[q];
			struct row *w = &rows[i];
			if (w->r.status != BENCH_OK)
				continue; /* skipped, or failed in an earlier round */
			if (fmt == FMT_TABLE)
				fprintf(stderr, "  round %u/%u  %-22s %-8s %8zu ...\r", k + 1, o.repeat,
					w->mech->name, mode_name(w->mode), w->size);
			struct bench_case c = { .mech = w->mech, .mode = w->mode, .size = w->size,
						.producers = w->producers, .consumers = w->consumers,
						.same_cpu = same_cpu };
			struct bench_result *r = &runs[(size_t)i * o.repeat + k];
			bench_run_case(&c, &o, r);
			if (r->status != BENCH_OK) {
				w->r = *r; /* a skip or a failure is reported as is */
				failed |= r->status == BENCH_FAILED;
			} else if (k + 1 == o.repeat) {
				median_of(&runs[(size_t)i * o.repeat], o.repeat, &w->r);
			}
		}
	}
	free(order);
	for (unsigned i = 0; i < n; i++) {
		if (fmt == FMT_JSON)
			print_json_row(&rows[i], &runs[(size_t)i * o.repeat], o.repeat);
		else if (fmt == FMT_CSV)
			print_csv_row(&rows[i]);
	}
	if (fmt == FMT_TABLE) {
		fprintf(stderr, "%60s\r", "");
		print_table(rows, runs, n, &mc, &o, same_cpu);
	}
	free(runs);
	free(rows);
	if (failed)
		fprintf(stderr, "ipcx bench: at least one case FAILED (see above)\n");
	return failed ? CLI_FAIL : CLI_OK;
}

static const struct cli_command bench_cmd = {
	.name = "bench",
	.args = "[--mech LIST] [--mode M] [--size LIST] ...",
	.summary = "measure every mechanism side by side",
	.run = bench_main,
};
CLI_COMMAND(bench_cmd)
