/*
 * The CTest side of a fuzz target: replay every file of the corpus
 * directory (argv[1]), then `seeded` inputs from a fixed xorshift sequence,
 * each 3 to 48 bytes plus `prefix` bytes.  Include it at the end of a
 * target that defines LLVMFuzzerTestOneInput; under libFuzzer
 * (IPCX_LIBFUZZER) it compiles to nothing.
 */
#ifndef IPCX_FUZZ_REPLAY_H
#define IPCX_FUZZ_REPLAY_H
#ifndef IPCX_LIBFUZZER
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

static int fuzz_replay(int argc, char **argv, const char *target, unsigned seeded, size_t prefix)
{
	alarm(580);
	unsigned runs = 0;
	DIR *d = argc > 1 ? opendir(argv[1]) : NULL;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char file[4096];
		snprintf(file, sizeof file, "%s/%s", argv[1], e->d_name);
		FILE *f = fopen(file, "rb");
		if (!f)
			continue;
		uint8_t buf[4096];
		size_t n = fread(buf, 1, sizeof buf, f);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, n);
		runs++;
	}
	if (d)
		closedir(d);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (unsigned i = 0; i < seeded; i++) {
		uint8_t buf[64];
		size_t n = prefix + 3 * (1 + (size_t)(i % 16));
		for (size_t k = 0; k < n; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			buf[k] = (uint8_t)x;
		}
		LLVMFuzzerTestOneInput(buf, n);
		runs++;
	}
	printf("%s: %u inputs, no crash\n", target, runs);
	return 0;
}
#endif
#endif
