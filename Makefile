# uvhttpd: the two commands are `make run` and `make test`; `make check` is
# the fast inner loop (incremental release build, unit, integration and
# conformance tests). Both install what they need from Debian first (as
# root, or through sudo).

BUILD      ?= build
# One sanitizer tree serves the e2e tests and the fuzzer: clang with ASan,
# UBSan and libFuzzer's coverage instrumentation (-DUVH_FUZZ=ON), so
# uvhttpd and fuzz_request come from the same objects. GCC cannot be that
# tree: libFuzzer needs clang's -fsanitize=fuzzer(-no-link) coverage, and
# GCC's libasan and clang's ASan runtime cannot be linked into one binary.
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= $(ASAN_BUILD)
FUZZ_SECONDS ?= 60
# make test-full: the heaviest cases at full size (tests read UVH_FULL=1;
# README.md, "Testing").
UVH_FULL   ?=
# Where `make test` and `make check` leave each stage's results (CTest JUnit
# files, the exit codes of the TSan and fuzz stages) for the summary line.
RESULTS    ?= $(BUILD)/test-results
SOAK_SECONDS ?= 600
PORT       ?= 8080
JOBS       ?= $(shell nproc)
DEMO_SITE  ?= $(BUILD)/demo-site

# Build and test dependencies, all from Debian.
PACKAGES := cmake g++ make pkgconf python3 python3-pytest curl \
            libuv1-dev node-llhttp libfmt-dev libexpat1-dev catch2 nlohmann-json3-dev \
            wrk apache2-utils nghttp2-client litmus haproxy slowhttptest \
            chromium fonts-liberation nodejs dpkg-dev \
            clang libclang-rt-14-dev llvm strace \
            rclone cadaver davfs2 fuse3 \
            zlib1g-dev libbrotli-dev libzstd-dev libjs-jquery \
            libpq-dev postgresql libssl-dev

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build asan tsan fuzz-build run check test test-full test-check test-load test-asan test-tsan \
        test-fuzz fuzz bench bench-deps soak clean

all: build

# Installs the Debian packages named in $(1) that are not installed yet.
define install_missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

deps:
	$(call install_missing,$(PACKAGES))

# What bench/run and bench/costs.py use beyond PACKAGES (bench/README.md):
# the servers compared (nginx, h2o, Apache httpd with mod_dav), valgrind
# (callgrind) and strace for costs.py, gnuplot for the plot, perf for
# looking at where the CPU goes, and PostgreSQL's pgbench (in postgresql).
# Only `make bench` installs them: `make test` does not need them.
BENCH_PACKAGES := nginx h2o apache2 apache2-utils valgrind strace gnuplot-nox slowhttptest wrk \
                  postgresql linux-perf

bench-deps:
	$(call install_missing,$(BENCH_PACKAGES))

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j $(JOBS)

# -O1 with assertions on (no NDEBUG): fast enough to fuzz, and the e2e
# tests see the asserts. UBSan is recoverable in this tree (UVH_FUZZ, for
# test/fuzz/ubsan.supp); test-asan sets halt_on_error=1, so any finding
# fails. Only what the stages use is built: the server, its man page (for
# test_install) and the fuzz target; no unit tests (they run in `check`).
# CMAKE_SKIP_INSTALL_ALL_DEPENDENCY: test_install's cpack packages what
# was built here instead of first building every unit test under ASan
# (which took past its 5-minute bound on 2 cores).
asan: deps
	CC=clang CXX=clang++ cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
	  -DUVH_FUZZ=ON -DUVH_PCH=OFF -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target uvhttpd man fuzz_request

# Serves a copy of the demo site, so posting records leaves the tree clean.
run: build
	@mkdir -p $(DEMO_SITE) && cp -rn docs/demo/. $(DEMO_SITE)/
	./$(BUILD)/uvhttpd --port $(PORT) --root $(DEMO_SITE)

# The gate (.ci/run). Stages, each run even when an earlier one failed, each
# with its wall time printed and left in $(RESULTS)/STAGE.time:
#   check  the inner loop below, on the release build
#   load   the load test, on the release build only (too slow under ASan)
#   asan   every other e2e and client test once, against the ASan+UBSan build
#   tsan   the integration tests under ThreadSanitizer
#   fuzz   the regressions and FUZZ_SECONDS of libFuzzer, from the ASan tree
# The last line counts them all: `N passed, N failed, N skipped`
# (test/summarize.py). The exit status is non-zero when any stage failed or
# did not run. UVH_REQUIRE_ALL=1 makes an e2e test that skips (no tmpfs
# mount, no IPv6...) fail: on a CI machine every one of them must run
# (README.md names those that may skip elsewhere).
TEST_STAGES := check load asan tsan fuzz
test:
	@rm -rf $(RESULTS) && mkdir -p $(RESULTS); status=0; \
	for stage in $(TEST_STAGES); do \
	  t0=$$(date +%s); \
	  UVH_REQUIRE_ALL=1 $(MAKE) --no-print-directory test-$$stage RESULTS=$(abspath $(RESULTS)) || status=1; \
	  t=$$(( $$(date +%s) - t0 )); echo $$t > $(RESULTS)/$$stage.time; \
	  echo "==== stage $$stage: $$t s"; \
	done; \
	python3 test/summarize.py $(RESULTS) $(TEST_STAGES) || status=1; \
	exit $$status

# The same with the heaviest cases at full size (UVH_FULL=1, read by the
# tests that scale: a big stream, a large directory...).
test-full:
	@UVH_FULL=1 $(MAKE) --no-print-directory test

# The inner loop, under 4 minutes after a first build: the incremental
# release build, the unit and integration tests and the conformance e2e
# tests (every e2e test not labelled "gate" in test/CMakeLists.txt). A skip
# is reported as skipped here, not failed.
check:
	@rm -rf $(RESULTS) && mkdir -p $(RESULTS); status=0; t0=$$(date +%s); \
	$(MAKE) --no-print-directory test-check RESULTS=$(abspath $(RESULTS)) || status=1; \
	t=$$(( $$(date +%s) - t0 )); echo $$t > $(RESULTS)/check.time; \
	python3 test/summarize.py $(RESULTS) check || status=1; \
	exit $$status

# Playwright for the browser test, from the lock file (the browser itself
# is Debian's chromium, above; npm comes with nodejs).
BROWSER_DEPS := test/e2e/browser/node_modules/.package-lock.json
$(BROWSER_DEPS): test/e2e/browser/package-lock.json | deps
	cd test/e2e/browser && npm ci --no-audit --no-fund

# tus-js-client 4.3.1 for the resumable-upload test (test/e2e/test_uploads.py),
# from its own lock file.
UPLOAD_DEPS := test/e2e/uploads/node_modules/.package-lock.json
$(UPLOAD_DEPS): test/e2e/uploads/package-lock.json | deps
	cd test/e2e/uploads && npm ci --no-audit --no-fund

JUNIT = $(if $(RESULTS),--output-junit $(abspath $(RESULTS))/$(1).xml)

test-check: build
	@mkdir -p $(RESULTS)
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE gate $(call JUNIT,check)

test-load: build
	@mkdir -p $(RESULTS)
	cd $(BUILD) && UVH_REQUIRE_ALL=1 ctest --output-on-failure -L load $(call JUNIT,load)

# quarantine_size_mb=16 (default 256): freed memory ASan holds back counts
# in the RSS that the memory-bound e2e tests measure (stalled listings).
test-asan: asan $(BROWSER_DEPS) $(UPLOAD_DEPS)
	@mkdir -p $(RESULTS)
	cd $(ASAN_BUILD) && UVH_REQUIRE_ALL=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=16 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS) -L e2e -LE load \
	  $(call JUNIT,asan)

# The in-process integration tests under ThreadSanitizer: the threadpool
# hands every result back to the loop thread; TSan proves it does so safely.
# test/tsan.supp: descriptor-number reuse after openat(), which libtsan does
# not intercept (the file says why; memory races are still reported).
tsan: deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DUVH_TSAN=ON
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target integration_tests

# One test in the summary: the whole integration binary under TSan.
test-tsan: tsan
	@mkdir -p $(RESULTS); status=0; \
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(abspath test/tsan.supp) \
	  $(TSAN_BUILD)/test/integration/integration_tests \
	  || status=$$?; \
	echo $$status > $(RESULTS)/tsan.status; exit $$status

# libFuzzer over the whole request path (test/fuzz/README.md): the
# fuzz_request target of the ASan tree (clang, ASan, UBSan). `make test`
# fuzzes for 60 s; `make fuzz FUZZ_SECONDS=3600` for longer.
fuzz-build: asan

fuzz: fuzz-build
	test/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BUILD)/test/fuzz/fuzz_request

# One test in the summary: the regressions replayed and FUZZ_SECONDS of fuzzing.
test-fuzz: fuzz-build
	@mkdir -p $(RESULTS); status=0; \
	test/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BUILD)/test/fuzz/fuzz_request || status=$$?; \
	echo $$status > $(RESULTS)/fuzz.status; exit $$status

bench: build bench-deps
	bench/run

# Ten minutes of mixed load; the result goes in docs/reliability.md.
soak: build
	test/soak/soak.py --binary $(BUILD)/uvhttpd --seconds $(SOAK_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD) build-fuzz
