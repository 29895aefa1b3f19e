#!/usr/bin/env bash
# Step 6 of scripts/package-test.sh: the packages' units under a real systemd. A copy of the
# fresh Debian 12 root gets systemd, bubblewrap and the packages, and is booted with
# `systemd-nspawn -b` (its own pid namespace, this machine's network; /proc/sys writable as on a
# host: SYSTEMD_NSPAWN_API_VFS_WRITABLE). There tessera-server.service runs as installed,
# tessera-client.service enrolls through its ExecStartPre and computes a montecarlo_pi job with
# its hardening in force (checked in /proc: no_new_privs, seccomp, no capabilities, SCHED_IDLE),
# and with --programs it runs a user's program in bubblewrap.
#
# Usage: scripts/package-test-systemd.sh BASE DIR VERSION   (BASE: the pristine root; DIR: where
#        DIR/sdroot goes and DIR/dist-2 holds the .deb files of VERSION)
# Prints "package-test: ok: ..." lines; exit status 1 on a failure, 0 with "package-test: SKIP"
# where systemd-nspawn is missing or cannot boot a root here.
set -euo pipefail
base=$1 dir=$2 version=$3
root=$dir/sdroot
log() { echo "package-test: $*"; }
fail() {
	echo "package-test: FAIL: $*"
	[ -n "${leader:-}" ] && nsenter -t "$leader" -a journalctl -n 30 --no-pager -o short-monotonic 2>/dev/null | sed 's/^/  /'
	exit 1
}
command -v systemd-nspawn >/dev/null || { log "SKIP: no systemd-nspawn (systemd-container): units not run"; exit 0; }

nspawn_pid='' leader=''
cleanup() {
	if [ -n "$leader" ]; then
		nsenter -t "$leader" -a systemctl poweroff 2>/dev/null || true
		for _ in $(seq 100); do
			kill -0 "$nspawn_pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	[ -n "$nspawn_pid" ] && kill -KILL "$nspawn_pid" 2>/dev/null || true
}
trap cleanup EXIT

rm -rf "$root"
cp -a "$base" "$root"
rm -f "$root"/etc/apt/sources.list.d/* "$root/etc/apt/sources.list"
cp /etc/apt/sources.list.d/*.sources "$root/etc/apt/sources.list.d/" 2>/dev/null || true
cp /etc/apt/sources.list "$root/etc/apt/sources.list" 2>/dev/null || true
[ -f /etc/resolv.conf ] && cp -L /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/root/debs"
cp "$dir"/dist-2/*_"$version"_amd64.deb "$root/root/debs/"
# A free port for the server, on this machine's loopback (the root shares its network).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
nspawn=(systemd-nspawn -q --register=no --keep-unit -D "$root"
	--bind="$dir/apt-archives:/var/cache/apt/archives")
"${nspawn[@]}" /bin/sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	--no-install-recommends systemd bubblewrap /root/debs/*.deb' >"$dir/systemd-install.log" 2>&1 ||
	{ tail -20 "$dir/systemd-install.log"; fail "installing systemd and the packages in $root"; }
sed -i "s/^TESSERA_LISTEN=.*/TESSERA_LISTEN=127.0.0.1:$port/" "$root/etc/default/tessera-server"
sed -i 's/^TESSERA_CLIENT_OPTS=.*/TESSERA_CLIENT_OPTS="--programs"/' "$root/etc/default/tessera-client"
printf 'echo "hello from the sandbox: uid $(id -u), host $(hostname)"\ntouch /usr/x 2>/dev/null || echo "/usr read-only"\n' \
	>"$root/root/hello.sh"

SYSTEMD_NSPAWN_API_VFS_WRITABLE=1 "${nspawn[@]}" -b </dev/null >"$dir/systemd-boot.log" 2>&1 &
nspawn_pid=$!
for _ in $(seq 300); do
	leader=$(pgrep -P "$nspawn_pid" -x systemd || true)
	[ -n "$leader" ] && break
	kill -0 "$nspawn_pid" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$leader" ]; then
	tail -5 "$dir/systemd-boot.log"
	log "SKIP: systemd-nspawn cannot boot a root here: units not run"
	exit 0
fi
in_root() { nsenter -t "$leader" -a env HOME=/root "$@"; }
for _ in $(seq 300); do
	state=$(in_root systemctl is-system-running 2>/dev/null || true)
	case $state in running | degraded) break ;; esac
	sleep 0.1
done
log "systemd $(in_root systemctl --version | awk 'NR == 1 { print $2 }') booted in $root ($state)"

in_root systemctl is-active -q tessera-server || fail "tessera-server.service is not active"
url=https://127.0.0.1:$port
for _ in $(seq 50); do
	[ -s "$root/var/lib/tessera/server.port" ] && break
	sleep 0.1
done
password=$(sed -n 's/^admin password (shown once): //p' "$root/var/lib/tessera/initial-admin.txt")
pin=$(sed -n 's/^pin: //p' "$root/var/lib/tessera/initial-admin.txt")
TESSERA_PASSWORD=$password in_root tessera login "$url" --user admin --pin "$pin" >/dev/null ||
	fail "login to the server of tessera-server.service"
log "ok: tessera-server.service active (user $(in_root systemctl show -p User --value tessera-server)), serving $url"

token=$(in_root tessera token create 2>/dev/null) || fail "token create"
in_root tessera-client-enroll "$url" "$token" >/dev/null || fail "tessera-client-enroll"
for _ in $(seq 100); do
	in_root systemctl is-active -q tessera-client && [ -f "$root/var/lib/tessera-client/node.json" ] && break
	sleep 0.2
done
in_root systemctl is-active -q tessera-client || fail "tessera-client.service is not active"
pid=$(in_root systemctl show -p MainPID --value tessera-client)
status=$(in_root cat "/proc/$pid/status")
grep -q '^NoNewPrivs:[[:space:]]*1' <<<"$status" || fail "the node runs without no_new_privs"
grep -q '^Seccomp:[[:space:]]*2' <<<"$status" || fail "the node runs without its seccomp filter"
grep -q '^CapBnd:[[:space:]]*0000000000000000' <<<"$status" || fail "the node keeps capabilities"
in_root chrt -p "$pid" | grep -q SCHED_IDLE || fail "the node is not SCHED_IDLE"
nice=$(in_root awk '{ print $19 }' "/proc/$pid/stat") # (comm, "tessera-client", has no spaces)
[ "$nice" = 19 ] || fail "the node is at nice $nice, not 19"
log "ok: tessera-client.service enrolled and active: no_new_privs, seccomp, no capabilities, SCHED_IDLE, nice 19"

job=$(in_root tessera submit pi --samples 1e7 --seed 5 --units 4) || fail "submit"
in_root tessera wait "$job" --timeout 60 >/dev/null 2>&1 || fail "job $job did not finish on the unit's node"
log "ok: montecarlo_pi job $job done by tessera-client.service"
out=$(timeout 120 nsenter -t "$leader" -a env HOME=/root tessera run /root/hello.sh --time 30 2>/dev/null) ||
	fail "tessera run: the program did not run in the unit's sandbox ($out)"
grep -q '^hello from the sandbox' <<<"$out" && grep -q '^/usr read-only' <<<"$out" ||
	fail "the program's output: $out"
log "ok: a user's program ran in bubblewrap under tessera-client.service: $(tr '\n' ';' <<<"$out")"
