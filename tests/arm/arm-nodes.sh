#!/usr/bin/env bash
# ARM nodes on a real grid (ctest test_arm_nodes): tessera-client cross-built for aarch64 and
# armhf (cmake/toolchain-*.cmake against scripts/sysroot.sh's Debian 12 roots) runs under
# qemu-user (-L the sysroot) beside an x86-64 client, against the x86-64 server on loopback.
# A montecarlo_pi and a prime_count job must each be computed by all three nodes, and their
# results must equal those of the same jobs computed by the x86-64 node alone.
# Prints "arm-nodes: PASS" or "arm-nodes: FAIL: ..."; "arm-nodes: SKIP: ..." only where qemu
# cannot run an ARM program here at all.
#
# Usage: tests/arm/arm-nodes.sh BUILD_DIR   (the native build: its tessera-server, tessera,
#        tessera-client; the ARM builds go to BUILD_DIR/arm-nodes)
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: arm-nodes.sh BUILD_DIR}" && pwd)
out=$build/arm-nodes
mkdir -p "$out"
t_start=$(date +%s)

log() { echo "arm-nodes: $*"; }
fail() {
	echo "arm-nodes: FAIL: $*"
	for f in "$work"/*.log; do
		[ -f "$f" ] && { echo "== $f"; tail -15 "$f"; }
	done
	exit 1
}
work=$(mktemp -d /tmp/tessera-test-armnodes-XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

# Cross builds: arch, toolchain, qemu.
declare -A toolchain=([arm64]=aarch64 [armhf]=armhf) qemu=([arm64]=qemu-aarch64-static [armhf]=qemu-arm-static)
declare -A sysroot
for arch in arm64 armhf; do
	command -v "${qemu[$arch]}" >/dev/null || fail "no ${qemu[$arch]} (qemu-user-static); run make deps"
	sysroot[$arch]=$("$src/scripts/sysroot.sh" "$arch") || fail "no $arch sysroot (scripts/sysroot.sh $arch)"
	b=$out/$arch
	# A build dir configured against another sysroot (a new package list) caches its paths.
	# ($b/.sysroot names the one it was configured against.)
	if [ -f "$b/CMakeCache.txt" ] && [ "$(cat "$b/.sysroot" 2>/dev/null)" != "${sysroot[$arch]}" ]; then
		rm -rf "$b"
	fi
	mkdir -p "$b"
	echo "${sysroot[$arch]}" >"$b/.sysroot"
	if ! { cmake -S "$src" -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DCMAKE_TOOLCHAIN_FILE="$src/cmake/toolchain-${toolchain[$arch]}.cmake" \
		-DTESSERA_SYSROOT="${sysroot[$arch]}" && cmake --build "$b" --target tessera-client -j 2; } \
		>"$out/$arch-build.log" 2>&1; then
		tail -20 "$out/$arch-build.log"
		fail "cross build for $arch ($out/$arch-build.log)"
	fi
	if ! probe=$("${qemu[$arch]}" -L "${sysroot[$arch]}" "$b/tessera-client" --help 2>&1 | head -1) ||
		[ -z "$probe" ]; then
		echo "arm-nodes: SKIP: ${qemu[$arch]} cannot run the $arch tessera-client here: $probe"
		exit 0
	fi
done
log "built tessera-client for arm64 and armhf in $(($(date +%s) - t_start)) s"

# The server, x86-64, on a free loopback port.
server=$build/tessera-server
export TESSERA_ADMIN_PASSWORD=arm-nodes-admin-password TESSERA_CONFIG=$work/cli
"$server" init --data "$work/data" >"$work/init.log" 2>&1 || fail "tessera-server init"
pin=$(sed -n 's/^pin: //p' "$work/init.log")
"$server" run --data "$work/data" --listen 127.0.0.1:0 --quiet >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	[ -s "$work/data/server.port" ] && break
	sleep 0.1
done
[ -s "$work/data/server.port" ] || fail "the server did not start"
url=https://127.0.0.1:$(cat "$work/data/server.port")
cli() { "$build/tessera" "$@"; }
TESSERA_PASSWORD=$TESSERA_ADMIN_PASSWORD cli login "$url" --user admin --pin "$pin" >/dev/null || fail "login"
token=$(cli token create --uses 3 2>/dev/null) || fail "token create"

# The nodes: name -> command prefix. One compute thread each (2 cores shared), no benchmark
# (slow under qemu; the server then sizes units by its own estimate), at most 2 units a fetch.
declare -A node=([x86-64]="" [arm64]="${qemu[arm64]} -L ${sysroot[arm64]}" [armhf]="${qemu[armhf]} -L ${sysroot[armhf]}")
declare -A node_pid
declare -A bin=([x86-64]=$build/tessera-client [arm64]=$out/arm64/tessera-client [armhf]=$out/armhf/tessera-client)
# Every node reports no faster than 1e6 indices a second (a second per pi unit, half one per
# primes unit; qemu's nodes compute them in a tenth of that), so that the 3 nodes waiting for
# work when a job comes take 2 of its 6 units each (--max-units 2), none of them all.
start_node() { # NAME
	local n=$1
	# shellcheck disable=SC2086 # the qemu prefix is words
	${node[$n]} "${bin[$n]}" run --state "$work/node-$n" --threads 1 --max-units 2 --no-bench \
		--max-rate 1e6 \
		--wait 10 --heartbeat 10 >>"$work/node-$n.log" 2>&1 &
	pids+=($!)
	node_pid[$n]=$!
}
for n in x86-64 arm64 armhf; do
	# shellcheck disable=SC2086
	${node[$n]} "${bin[$n]}" enroll "$url" "$token" --state "$work/node-$n" --name "$n" --threads 1 \
		--no-bench >"$work/node-$n.log" 2>&1 || fail "enrollment of the $n node"
done
log "three nodes enrolled (x86-64 native, arm64 and armhf under qemu)"

# The jobs: 6 small units each, so that every node gets some.
jobs_spec=("pi --samples 6e6 --seed 42 --units 6" "primes --from 0 --to 3e6 --units 6")
# One job at a time, each submitted while the nodes wait for work; prints the ids.
submit_all() { # TIMEOUT
	local spec id
	for spec in "${jobs_spec[@]}"; do
		sleep 1
		# shellcheck disable=SC2086
		id=$(cli submit $spec) || fail "submit $spec"
		cli wait "$id" --timeout "$1" >/dev/null 2>&1 || fail "job $id ($spec) did not finish"
		echo "$id"
	done
}
result_of() { # ID -> the job's result as the API gives it
	cli status "$1" --json | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["result"], sort_keys=True))'
}
units_by_node() { # ID -> "name=units ..."
	cli status "$1" --json |
		python3 -c 'import json,sys; print(" ".join("%s=%d" % (n["name"], n["units"]) for n in json.load(sys.stdin)["nodes"]))'
}

for n in x86-64 arm64 armhf; do start_node "$n"; done
sleep 2 # qemu's nodes started and waiting for work
t0=$(date +%s)
mapfile -t mixed < <(submit_all 120)
[ ${#mixed[@]} -eq 2 ] || fail "the jobs on the mixed grid did not finish"
log "mixed grid: both jobs done in $(($(date +%s) - t0)) s"
for id in "${mixed[@]}"; do
	by=$(units_by_node "$id")
	log "job $id units by node: $by"
	for n in x86-64 arm64 armhf; do
		[[ " $by" == *" $n="[1-9]* ]] || fail "job $id: the $n node computed no unit ($by)"
	done
done

# The same jobs on the x86-64 node alone.
kill -TERM "${node_pid[arm64]}" "${node_pid[armhf]}" 2>/dev/null || true
wait "${node_pid[arm64]}" "${node_pid[armhf]}" 2>/dev/null || true
mapfile -t alone < <(submit_all 60)
[ ${#alone[@]} -eq 2 ] || fail "the jobs on the x86-64 node alone did not finish"
for id in "${alone[@]}"; do
	[ "$(units_by_node "$id")" = "x86-64=6" ] || fail "job $id: not all on x86-64 ($(units_by_node "$id"))"
done
for i in 0 1; do
	a=$(result_of "${mixed[i]}") b=$(result_of "${alone[i]}")
	[ -n "$a" ] && [ "$a" != null ] || fail "job ${mixed[i]} has no result"
	[ "$a" = "$b" ] || fail "${jobs_spec[i]%% *}: mixed grid $a, x86-64 alone $b"
	log "${jobs_spec[i]%% *}: $a on both"
done
log "PASS (in $(($(date +%s) - t_start)) s)"
