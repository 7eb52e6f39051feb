# uvhttpd: the two commands are `make run` and `make test`; `make check` is
# the fast inner loop (release build, unit, integration and quick e2e tests).
# Both install what they need from Debian first (as root, or through sudo).

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
# Where `make test` and `make check` leave each stage's results (CTest JUnit
# files, the exit codes of the TSan and fuzz stages) for the summary line.
RESULTS    ?= $(BUILD)/test-results
SOAK_SECONDS ?= 600
PORT       ?= 8080
JOBS       ?= $(shell nproc)
DEMO_SITE  ?= $(BUILD)/demo-site

# Build and test dependencies, all from Debian.
PACKAGES := cmake g++ make pkgconf python3 python3-pytest curl \
            libuv1-dev node-llhttp libfmt-dev catch2 nlohmann-json3-dev \
            wrk apache2-utils nghttp2-client litmus haproxy slowhttptest \
            chromium fonts-liberation nodejs dpkg-dev \
            clang libclang-rt-14-dev llvm strace

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build asan tsan fuzz-build run check test test-release test-asan test-tsan test-fuzz fuzz bench \
        soak clean

all: build

deps:
	@missing=""; for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j $(JOBS)

asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DUVH_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# Serves a copy of the demo site, so posting records leaves the tree clean.
run: build
	@mkdir -p $(DEMO_SITE) && cp -rn docs/demo/. $(DEMO_SITE)/
	./$(BUILD)/uvhttpd --port $(PORT) --root $(DEMO_SITE)

# Every stage runs even when an earlier one failed, so the last line counts
# them all: `N passed, N failed, N skipped` (test/summarize.py). The exit
# status is non-zero when any stage failed or did not run. UVH_REQUIRE_ALL=1
# makes an e2e test that skips (no tmpfs mount, no IPv6...) fail: on a CI
# machine every one of them must run (README.md names those that may skip
# elsewhere).
test:
	@rm -rf $(RESULTS) && mkdir -p $(RESULTS); status=0; \
	for stage in release asan tsan fuzz; do \
	  $(MAKE) --no-print-directory test-$$stage RESULTS=$(abspath $(RESULTS)) || status=1; \
	done; \
	python3 test/summarize.py $(RESULTS) release asan tsan fuzz || status=1; \
	exit $$status

# The inner loop, a few minutes: the release build, the unit and integration
# tests and the e2e tests labelled quick (not load, litmus, HAProxy, the
# browser or packaging). A skip is reported as skipped here, not failed.
check: build
	@rm -rf $(RESULTS) && mkdir -p $(RESULTS); status=0; \
	(cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE slow \
	  --output-junit $(abspath $(RESULTS))/check.xml) || status=1; \
	python3 test/summarize.py $(RESULTS) check || status=1; \
	exit $$status

# Playwright for the browser test, from the lock file (the browser itself
# is Debian's chromium, above; npm comes with nodejs).
BROWSER_DEPS := test/e2e/browser/node_modules/.package-lock.json
$(BROWSER_DEPS): test/e2e/browser/package-lock.json | deps
	cd test/e2e/browser && npm ci --no-audit --no-fund

JUNIT = $(if $(RESULTS),--output-junit $(abspath $(RESULTS))/$(1).xml)

test-release: build $(BROWSER_DEPS)
	@mkdir -p $(RESULTS)
	cd $(BUILD) && UVH_REQUIRE_ALL=1 ctest --output-on-failure -j $(JOBS) $(call JUNIT,release)

test-asan: asan $(BROWSER_DEPS)
	@mkdir -p $(RESULTS)
	cd $(ASAN_BUILD) && UVH_REQUIRE_ALL=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS) -LE load \
	  $(call JUNIT,asan)

# The in-process integration tests under ThreadSanitizer: the threadpool
# hands every result back to the loop thread; TSan proves it does so safely.
tsan: deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DUVH_TSAN=ON
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target integration_tests

# One test in the summary: the whole integration binary under TSan.
test-tsan: tsan
	@mkdir -p $(RESULTS); status=0; \
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 $(TSAN_BUILD)/test/integration/integration_tests \
	  || status=$$?; \
	echo $$status > $(RESULTS)/tsan.status; exit $$status

# libFuzzer over the whole request path (test/fuzz/README.md), built with
# clang, ASan and UBSan. `make test` fuzzes for 60 s; `make fuzz
# FUZZ_SECONDS=3600` for longer.
fuzz-build: deps
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DUVH_FUZZ=ON -DUVH_TESTS=OFF -DUVH_PCH=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_request

fuzz: fuzz-build
	test/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BUILD)/test/fuzz/fuzz_request

# One test in the summary: the regressions replayed and FUZZ_SECONDS of fuzzing.
test-fuzz: fuzz-build
	@mkdir -p $(RESULTS); status=0; \
	test/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BUILD)/test/fuzz/fuzz_request || status=$$?; \
	echo $$status > $(RESULTS)/fuzz.status; exit $$status

bench: build
	bench/run

# Ten minutes of mixed load; the result goes in docs/reliability.md.
soak: build
	test/soak/soak.py --binary $(BUILD)/uvhttpd --seconds $(SOAK_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
