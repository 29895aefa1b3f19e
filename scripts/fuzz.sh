#!/usr/bin/env bash
# Builds the libFuzzer target with clang (ASan + UBSan) and runs it for SECONDS (default 30)
# on a copy of the seed corpus. Usage: scripts/fuzz.sh [SECONDS] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
build=${2:-build-fuzz}
command -v clang >/dev/null || { echo "fuzz: clang is not installed (make deps)" >&2; exit 1; }
# ASan and UBSan traces name functions and lines only through llvm-symbolizer: Debian's is
# versioned (llvm-14 has /usr/lib/llvm-14/bin/llvm-symbolizer), so point them at clang's own.
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ]; then
  symbolizer=$(command -v llvm-symbolizer || clang -print-prog-name=llvm-symbolizer)
  if [ -x "$symbolizer" ]; then
    export ASAN_SYMBOLIZER_PATH=$symbolizer UBSAN_SYMBOLIZER_PATH=$symbolizer
  else
    echo "fuzz: no llvm-symbolizer (Debian's llvm-14, make deps): traces will show addresses only" >&2
  fi
fi
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DTESSERA_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target fuzz_api -j "$(nproc)" >/dev/null
corpus="$build/corpus"
mkdir -p "$corpus" "$build/crashes"
cp -n tests/fuzz/corpus/* "$corpus/" 2>/dev/null || true
echo "fuzz: running fuzz_api for ${seconds}s"
"$build/fuzz_api" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$build/crashes/" -print_final_stats=1 "$corpus" 2>"$build/fuzz.log" || {
  echo "fuzz: fuzz_api found a crash; see $build/fuzz.log and $build/crashes/" >&2
  tail -40 "$build/fuzz.log" >&2
  exit 1
}
grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb|stat::new_units_added)" "$build/fuzz.log" || true
echo "fuzz: no crash in ${seconds}s; corpus $(ls "$corpus" | wc -l) inputs"
