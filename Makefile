# Tessera: `make demo` runs a local grid end to end; `make test` runs the whole suite.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo
PREFIX ?= /usr/local
CTEST_FLAGS ?=

.PHONY: all deps build demo test test-sanitize install packages package-test fuzz clean

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

# The C suite again, built with ASan + UBSan in a build dir of its own. Every process writes its
# reports to SANITIZE_BUILD/sanitizer-logs (the servers and clients that the integration tests
# start included, whose exit status and logs the tests do not keep); any report fails the run,
# and UBSan stops at its first. Left out: test_browser (JavaScript driving the same server),
# fuzz_api_smoke (clang ASan + UBSan already) and test_kern_aarch64 (cross-built by
# scripts/cross-arm.sh with its own flags). -O2 as in the release build: the same warnings, and
# timings in the integration tests close to theirs.
SANITIZE_BUILD ?= build-sanitize
SANITIZE_LOGS = $(abspath $(SANITIZE_BUILD))/sanitizer-logs
test-sanitize:
	@rm -rf $(SANITIZE_LOGS) && mkdir -p $(SANITIZE_LOGS)
	@ASAN_OPTIONS=log_path=$(SANITIZE_LOGS)/asan \
	 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$(SANITIZE_LOGS)/ubsan \
	 $(MAKE) --no-print-directory test BUILD=$(SANITIZE_BUILD) \
	   CMAKE_FLAGS='-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTESSERA_SANITIZE=ON' \
	   CTEST_FLAGS='-E "^(test_browser|fuzz_api_smoke|test_kern_aarch64)"'; \
	 rc=$$?; \
	 for f in $(SANITIZE_LOGS)/*; do [ -f "$$f" ] && { echo "== $$f"; cat "$$f"; rc=1; }; done; \
	 [ $$rc -eq 0 ] && echo "test-sanitize: no ASan or UBSan report"; \
	 exit $$rc

# tessera-server, tessera-client and tessera into $(DESTDIR)$(PREFIX)/bin.
install: build
	@DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

# Debian packages (tessera-server, tessera-client, tessera) for amd64, arm64 and armhf into dist/
# (scripts/packages.sh: cross builds against cached Debian 12 sysroots, lintian on each);
# ARCHS=amd64 for one. package-test installs, upgrades and purges the amd64 ones in a fresh
# Debian 12 root (scripts/package-test.sh; root and the Debian archive needed).
ARCHS ?= amd64 arm64 armhf
packages: deps
	@./scripts/packages.sh $(ARCHS)

package-test: deps
	@./scripts/package-test.sh

FUZZ_SECONDS ?= 600
fuzz: deps
	@./scripts/fuzz.sh $(FUZZ_SECONDS) build-fuzz

clean:
	rm -rf $(BUILD)
