# uvhttpd: the two commands are `make run` and `make test`.
# Both install what they need from Debian first (as root, or through sudo).

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
SOAK_SECONDS ?= 600
PORT       ?= 8080
JOBS       ?= $(shell nproc)
DEMO_SITE  ?= $(BUILD)/demo-site

# Build and test dependencies, all from Debian.
PACKAGES := cmake g++ make pkgconf python3 curl \
            libuv1-dev node-llhttp libfmt-dev catch2 nlohmann-json3-dev \
            wrk apache2-utils nghttp2-client litmus haproxy slowhttptest \
            chromium fonts-liberation nodejs dpkg-dev \
            clang libclang-rt-14-dev llvm

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build asan tsan fuzz-build run test test-release test-asan test-tsan test-fuzz fuzz bench soak clean

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

test: test-release test-asan test-tsan test-fuzz

# Playwright for the browser test, from the lock file (the browser itself
# is Debian's chromium, above; npm comes with nodejs).
BROWSER_DEPS := test/e2e/browser/node_modules/.package-lock.json
$(BROWSER_DEPS): test/e2e/browser/package-lock.json | deps
	cd test/e2e/browser && npm ci --no-audit --no-fund

test-release: build $(BROWSER_DEPS)
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: asan $(BROWSER_DEPS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS) -LE load

# The in-process integration tests under ThreadSanitizer: the threadpool
# hands every result back to the loop thread; TSan proves it does so safely.
tsan: deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DUVH_TSAN=ON
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target integration_tests

test-tsan: tsan
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 $(TSAN_BUILD)/test/integration/integration_tests

# libFuzzer over the whole request path (test/fuzz/README.md), built with
# clang, ASan and UBSan. `make test` fuzzes for 60 s; `make fuzz
# FUZZ_SECONDS=3600` for longer.
fuzz-build: deps
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DUVH_FUZZ=ON -DUVH_TESTS=OFF -DUVH_PCH=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_request

fuzz test-fuzz: fuzz-build
	test/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BUILD)/test/fuzz/fuzz_request

bench: build
	bench/run

# Ten minutes of mixed load; the result goes in docs/reliability.md.
soak: build
	test/soak/soak.py --binary $(BUILD)/uvhttpd --seconds $(SOAK_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
