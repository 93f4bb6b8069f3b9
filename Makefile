# efcnet: two commands on a fresh Debian machine
#   make run    installs what is missing, builds, fuses the built-in demo phantom
#   make test   installs what is missing, builds, runs the whole suite (unit, parity, sanitizers, fuzz)
#   make install-python   builds the Python package and installs it into the system Python's dist-packages
BUILD      ?= build
JOBS       ?= $(shell nproc)
DEMO_DIR   ?= $(BUILD)/demo
FUZZ_SECONDS ?= 30

CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

.PHONY: all deps deps-build build build-tests run install-python test test-unit test-asan fuzz bench format clean

all: build

deps-build:
	@scripts/install-deps --build

deps:
	@scripts/install-deps

# `make run` needs no test framework: a fresh build directory is configured without the tests
# (one configured by `make test` keeps them).
build: deps-build
	@$(call configure,$(if $(wildcard $(BUILD)/CMakeCache.txt),,-DEFCNET_TESTS=OFF))
	@cmake --build $(BUILD) -j $(JOBS)

build-tests: deps
	@$(call configure,-DEFCNET_TESTS=ON)
	@cmake --build $(BUILD) -j $(JOBS)

# cmake's log goes to $(BUILD)/configure.log; shown are its list of optional features, or all of it
# when configuring fails.
define configure
mkdir -p $(BUILD) && cmake -S . -B $(BUILD) $(CMAKE_FLAGS) $(1) >$(BUILD)/configure.log 2>&1 \
  || { cat $(BUILD)/configure.log; exit 1; }; \
sed -n '/efcnet optional features/,/^-- Configuring done/p' $(BUILD)/configure.log | grep -v '^-- Configuring done' || true
endef

run: build
	@scripts/run-demo $(BUILD) $(DEMO_DIR)

# `import efcnet` for the system python3 (Debian packages only): builds just the module and installs
# the python component (the package, its stubs and the default weights) into its dist-packages.
install-python: deps-build
	@$(call configure,$(if $(wildcard $(BUILD)/CMakeCache.txt),,-DEFCNET_TESTS=OFF))
	@cmake --build $(BUILD) -j $(JOBS) --target efcnet_python efcnet_python_cpu
	@$(if $(filter 0,$(shell id -u)),,sudo) cmake --install $(BUILD) --component python

test: deps build-tests test-unit test-asan fuzz

# Every ctest call refuses to find no tests: a suite that silently did not build fails.
CTEST = ctest --output-on-failure --no-tests=error -j $(JOBS)

# Each part of `make test` builds what it runs, so `make -j test` runs nothing before it is built.
test-unit: build-tests
	@cd $(BUILD) && $(CTEST)

# The LibTorch-free loader code (pickle records, zip directory) under AddressSanitizer + UBSan.
test-asan:
	@cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DEFCNET_TORCH=OFF -DEFCNET_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD)-asan -j $(JOBS) --target test_weights_records
	@cd $(BUILD)-asan && $(CTEST) -R '^(Pickle|Records|ZipDirectory)'

# libFuzzer targets (tests/fuzz/<name>_fuzz.cpp), each for FUZZ_SECONDS from its seeds in
# tests/fuzz/seeds/<name>; any crash, sanitizer report or leak fails the target and `make fuzz`.
FUZZ_TARGETS ?= pickle zip image volume

fuzz:
	@CXX=clang++ cmake -S . -B $(BUILD)-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEFCNET_TORCH=OFF -DEFCNET_TESTS=ON -DEFCNET_FUZZ=ON >/dev/null
	@cmake --build $(BUILD)-fuzz -j $(JOBS) --target $(FUZZ_TARGETS:%=%_fuzz)
	@failed=""; for t in $(FUZZ_TARGETS); do \
	   mkdir -p $(BUILD)-fuzz/corpus/$$t; \
	   $(BUILD)-fuzz/tests/$${t}_fuzz -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	     -artifact_prefix=$(BUILD)-fuzz/$${t}- $(BUILD)-fuzz/corpus/$$t tests/fuzz/seeds/$$t \
	     >$(BUILD)-fuzz/$$t.log 2>&1; status=$$?; \
	   if [ $$status -eq 0 ]; then echo "fuzz: $${t}_fuzz clean for $(FUZZ_SECONDS) s"; \
	   else tail -n 80 $(BUILD)-fuzz/$$t.log; failed="$$failed $$t"; \
	     echo "fuzz: $${t}_fuzz failed (exit $$status); crash input saved as $(BUILD)-fuzz/$${t}-crash-*" >&2; fi; \
	 done; [ -z "$$failed" ]

bench: build-tests
	@for b in $(BUILD)/tests/*_bench; do $$b --benchmark_format=json; done

# Applies .clang-format to the C++ sources (the suite checks them: Format.SourcesFollowClangFormat).
format:
	@scripts/format

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-fuzz
