# Tessera: `make demo` runs a local grid end to end; `make test` runs the whole suite.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo
PREFIX ?= /usr/local
CTEST_FLAGS ?=

.PHONY: all deps build demo test test-sanitize install fuzz clean

all: build

deps:
	@./scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory

demo: build
	@./scripts/demo.sh $(BUILD)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_FLAGS)

# The C suite again, built with ASan + UBSan in a build dir of its own; any finding fails the test
# that hit it (UBSan stops at its first report instead of going on). Left out: test_browser
# (JavaScript driving the same server), fuzz_api_smoke (clang ASan + UBSan already) and
# test_kern_aarch64 (cross-built by scripts/cross-arm.sh with its own flags). -O2 as in the
# release build: the same warnings, and the integration tests' timings stay close to theirs.
SANITIZE_BUILD ?= build-sanitize
test-sanitize:
	@UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 $(MAKE) --no-print-directory test \
	  BUILD=$(SANITIZE_BUILD) CMAKE_FLAGS='-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTESSERA_SANITIZE=ON' \
	  CTEST_FLAGS='-E "^(test_browser|fuzz_api_smoke|test_kern_aarch64)$$"'

# tessera-server, tessera-client and tessera into $(DESTDIR)$(PREFIX)/bin.
install: build
	@DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

FUZZ_SECONDS ?= 600
fuzz: deps
	@./scripts/fuzz.sh $(FUZZ_SECONDS) build-fuzz

clean:
	rm -rf $(BUILD)
