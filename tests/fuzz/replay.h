/*
 * The deterministic replay of a fuzz target for CTest: every file of the
 * corpus directory (argv[1]), then `n_random` seeded random inputs of 3 to
 * 48 bytes, each passed through aim() first so the target can point most
 * patches at the bytes that matter.  Include after defining
 * LLVMFuzzerTestOneInput, outside IPCX_LIBFUZZER builds.
 */
#ifndef IPCX_FUZZ_REPLAY_H
#define IPCX_FUZZ_REPLAY_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

static int fuzz_replay(int argc, char **argv, unsigned n_random, uint64_t seed,
		       void (*aim)(uint8_t *buf, size_t n))
{
	alarm(580);
	unsigned runs = 0;
	DIR *d = argc > 1 ? opendir(argv[1]) : NULL;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char path[4096];
		uint8_t buf[4096];
		snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name);
		FILE *f = e->d_name[0] == '.' ? NULL : fopen(path, "rb");
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
		uint8_t buf[48];
		size_t n = 3 * (1 + (size_t)(i % 16));
		for (size_t k = 0; k < n; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			buf[k] = (uint8_t)x;
		}
		aim(buf, n);
		LLVMFuzzerTestOneInput(buf, n);
		runs++;
	}
	printf("%u inputs, no crash\n", runs);
	return 0;
}

#endif
