#!/usr/bin/env bash
# The kernels on ARM, tested rather than assumed: cross-builds tests/arm/kern_golden.c with the
# kernels for aarch64 (Debian's aarch64-linux-gnu-gcc, static, jansson for arm64 by multiarch),
# runs it under qemu-user (NEON path included) and ends with its "aarch64: N passed, M failed".
# ctest runs it as test_kern_aarch64; scripts/deps.sh installs what it needs.
#
# Usage: scripts/cross-arm.sh [OUT_DIR [DRIVER_ARGS...]]   (OUT_DIR: default build/arm)
# Exit status: the driver's; 1 when the cross compiler, arm64 jansson or qemu is missing; 0 with
# a line "cross-arm: SKIP ..." only where qemu cannot run even a trivial aarch64 program here.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/arm}
shift || true
mkdir -p "$out/obj"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { printf '%d.%d' $(($1 / 1000)) $(($1 % 1000 / 100)); }
fail() {
	echo "cross-arm: FAIL: $*"
	exit 1
}

cc=aarch64-linux-gnu-gcc
command -v "$cc" >/dev/null || fail "no $cc (Debian's gcc-aarch64-linux-gnu); run make deps"
qemu=
for q in qemu-aarch64-static qemu-aarch64; do
	if command -v "$q" >/dev/null; then
		qemu=$q
		break
	fi
done
[ -n "$qemu" ] || fail "no qemu-aarch64-static nor qemu-aarch64 (Debian's qemu-user-static); run make deps"
[ -f "$("$cc" -print-file-name=libc.a)" ] ||
	fail "$cc has no C library (Debian's libc6-dev-arm64-cross); run make deps"
[ -f "$("$cc" -print-file-name=libjansson.a)" ] ||
	fail "no jansson for arm64 (Debian's libjansson-dev:arm64, multiarch); run make deps"

# The project's flags (CMakeLists.txt): C11 with GNU extensions, its warnings as errors, and -O3
# for the kernels as ts_kern has; the driver and common/ts_err.c at -O2.
flags=(-std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -D_GNU_SOURCE
       -DKERN_NO_PROGRAMS -I"$root/kernels" -I"$root/common")
t0=$(now_ms)
objs=()
for src in "$root"/kernels/*.c; do
	[ "$(basename "$src")" = kern_program.c ] && continue # users' programs: not a kernel a node computes
	obj=$out/obj/$(basename "${src%.c}").o
	"$cc" "${flags[@]}" -O3 -c -o "$obj" "$src"
	objs+=("$obj")
done
for src in "$root/tests/arm/kern_golden.c" "$root/common/ts_err.c"; do
	obj=$out/obj/$(basename "${src%.c}").o
	"$cc" "${flags[@]}" -O2 -c -o "$obj" "$src"
	objs+=("$obj")
done
"$cc" -static -o "$out/kern_golden" "${objs[@]}" -ljansson -lpthread -lm
t1=$(now_ms)

# Can qemu run anything here? A trivial static program tells an emulator that cannot run at all
# (exec or mmap refused, as in some sandboxes) from a driver that fails.
printf '#include <stdio.h>\nint main(void) { puts("cross-arm probe ok"); return 0; }\n' >"$out/probe.c"
"$cc" -static -O2 -o "$out/probe" "$out/probe.c"
if ! probe=$("$qemu" "$out/probe" 2>&1) || [ "$probe" != "cross-arm probe ok" ]; then
	echo "cross-arm: SKIP: $qemu cannot run an aarch64 program on this machine: ${probe:-no output}"
	exit 0
fi

echo "cross-arm: built for aarch64 in $(secs $((t1 - t0))) s; running under $qemu ($("$qemu" --version 2>/dev/null | head -n1 || true))"
set +e
"$qemu" "$out/kern_golden" "$@" | tee "$out/kern_golden.log"
rc=${PIPESTATUS[0]}
set -e
t2=$(now_ms)
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out/kern_golden.log" | tail -1 || true)
echo "cross-arm: ran in $(secs $((t2 - t1))) s, exit status $rc"
if [ -z "$summary" ]; then
	echo "cross-arm: FAIL: the driver stopped (status $rc) before its summary"
	exit "$((rc ? rc : 1))"
fi
echo "aarch64: $summary"
exit "$rc"
