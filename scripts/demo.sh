#!/usr/bin/env bash
# make demo: a local grid in a temp dir — a server, two enrolled clients, a Monte Carlo Pi job.
set -euo pipefail

build=${1:-build}
bin=$(cd "$build" && pwd)
samples=${DEMO_SAMPLES:-2e10}
units=${DEMO_UNITS:-200}
work=$(mktemp -d /tmp/tessera-demo-XXXXXX)
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${DEMO_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Bold headings on a terminal only: a log or a pipe gets plain text.
if [ -t 1 ]; then
  say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
else
  say() { printf '==> %s\n' "$*"; }
fi

say "starting a server in $work"
init_out=$(env -u TESSERA_ADMIN_PASSWORD "$bin/tessera-server" init --data "$work/data")
pin=$(sed -n 's/^pin: //p' <<<"$init_out")
password=$(sed -n 's/^admin password (shown once): //p' <<<"$init_out")
"$bin/tessera-server" run --data "$work/data" --listen 127.0.0.1:0 --quiet 2>"$work/server.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/data/server.port" ] && break; sleep 0.1; done
[ -s "$work/data/server.port" ] || { echo "demo: the server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
url="https://127.0.0.1:$(cat "$work/data/server.port")"
echo "    $url  pin $pin"

export TESSERA_CONFIG="$work/cli"
say "logging in as admin and making an enrollment token"
TESSERA_PASSWORD="$password" "$bin/tessera" login "$url" --user admin --pin "$pin"
token=$("$bin/tessera" token create --uses 2 2>/dev/null)

say "enrolling two clients (one thread each; node-1 also runs users' programs, sandboxed)"
for n in 1 2; do
  "$bin/tessera-client" enroll "$url" "$token" --state "$work/node$n" --name "node-$n" --threads 1
  programs=()
  [ "$n" = 1 ] && programs=(--programs --slots 2)
  "$bin/tessera-client" run --state "$work/node$n" --threads 1 --seconds 1 --quiet "${programs[@]}" \
    >"$work/node$n.log" 2>&1 &
  pids+=($!)
done

say "submitting montecarlo_pi: $samples samples, seed 1, $units units"
id=$("$bin/tessera" submit pi --samples "$samples" --seed 1 --units "$units")
echo "    job $id"
"$bin/tessera" wait "$id"

src=$(cd "$(dirname "$0")/.." && pwd)
say "running your own program: tessera run examples/mpi_pi.py -n 2"
if kill -0 "${pids[1]}" 2>/dev/null; then
  "$bin/tessera" run "$src/examples/mpi_pi.py" -n 2
else
  # node-1 refuses --programs where the sandbox cannot run, and says why.
  echo "    skipped: node-1 cannot run programs here:"
  sed 's/^/    /' "$work/node1.log" | tail -3
fi

say "stopping the grid"
