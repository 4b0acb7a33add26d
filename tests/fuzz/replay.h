/*
 * The CTest side of a fuzz target: replay every file of the corpus
 * directory (argv[1]), then `n_random` inputs from a seeded xorshift
 * sequence, each `prefix` + 3 to 48 bytes.  `aim_fn` (may be NULL) rewrites
 * each random input first, so a target can point most patches at the bytes
 * that matter.  Include after defining LLVMFuzzerTestOneInput; under
 * libFuzzer (IPCX_LIBFUZZER) it compiles to nothing.
 */
#ifndef IPCX_FUZZ_REPLAY_H
#define IPCX_FUZZ_REPLAY_H
#ifndef IPCX_LIBFUZZER
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

static int fuzz_replay(int argc, char **argv, unsigned n_random, uint64_t seed, size_t prefix,
		       void (*aim_fn)(uint8_t *buf, size_t n))
{
	alarm(580);
	unsigned runs = 0;
	DIR *d = argc > 1 ? opendir(argv[1]) : NULL;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char file[4096];
		uint8_t buf[4096];
		snprintf(file, sizeof file, "%s/%s", argv[1], e->d_name);
		FILE *f = e->d_name[0] == '.' ? NULL : fopen(file, "rb");
		if (!f)
			continue;
		size_t n = fread(buf, 1, sizeof buf, f);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, n);
		runs++;
	}
	if (d)
		closedir(d);
	uint64_t x = seed;
	for (unsigned i = 0; i < n_random; i++) {
		uint8_t buf[64 + 48];
		size_t n = (prefix < 64 ? prefix : 64) + 3 * (1 + (size_t)(i % 16));
		for (size_t k = 0; k < n; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			buf[k] = (uint8_t)x;
		}
		if (aim_fn)
			aim_fn(buf, n);
		LLVMFuzzerTestOneInput(buf, n);
		runs++;
	}
	printf("%s: %u inputs, no crash\n", argc > 0 ? argv[0] : "fuzz", runs);
	return 0;
}
#endif
#endif
