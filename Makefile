# Make drives CMake.  `make bench` and `make test` are the README's Quick start.
BUILD      ?= build
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all deps build bench test test-sanitize test-asan test-tsan ci install clean fuzz

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DIPCX_WERROR=ON $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)

# The default suite: every mechanism, in under two minutes.
bench: build
	./$(BUILD)/ipcx bench $(BENCH_ARGS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# The same tests under AddressSanitizer + UndefinedBehaviorSanitizer, and the
# tests labelled "tsan" under ThreadSanitizer.
test-asan: deps
	cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DIPCX_WERROR=ON -DIPCX_SANITIZE=address,undefined
	cmake --build $(BUILD)-asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(BUILD)-asan --output-on-failure -j $(JOBS) -LE nosan $(CTEST_ARGS)

test-tsan: deps
	cmake -S . -B $(BUILD)-tsan -DCMAKE_BUILD_TYPE=Debug -DIPCX_WERROR=ON -DIPCX_SANITIZE=thread
	cmake --build $(BUILD)-tsan -j $(JOBS)
	TSAN_OPTIONS=halt_on_error=1 ctest --test-dir $(BUILD)-tsan --output-on-failure -j $(JOBS) -L tsan $(CTEST_ARGS)

test-sanitize: test-asan test-tsan

# What CI runs.
ci: test test-sanitize

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-tsan

# Coverage-guided fuzzing of the shared-memory validation (needs clang):
# FUZZ_SECONDS per target; new inputs go to the corpus under tests/fuzz/.
FUZZ_SECONDS ?= 60
fuzz:
	mkdir -p $(BUILD)-fuzz
	for f in tests/fuzz/fuzz_*.c; do n=$$(basename $$f .c); \
	  clang -std=gnu11 -O1 -g -fsanitize=fuzzer,address,undefined -DIPCX_LIBFUZZER \
	    -D_GNU_SOURCE -DIPCX_BUILDING_LIBRARY -Iinclude src/*/*.c $$f -o $(BUILD)-fuzz/$$n -lpthread && \
	  $(BUILD)-fuzz/$$n -max_total_time=$(FUZZ_SECONDS) tests/fuzz/corpus/$$n || exit 1; done
