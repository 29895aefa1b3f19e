#!/bin/bash
# The part of scripts/package-test.sh that runs inside the fresh root (as root, its own pid
# namespace): package-test-inner.sh V1 V2, with the .deb files of both versions in /tmp/debs.
set -euo pipefail
v1=$1 v2=$2
debs=/tmp/debs
export DEBIAN_FRONTEND=noninteractive
step() { echo "package-test: == $*"; }
ok() { echo "package-test: ok: $*"; }
fail() { echo "package-test: FAIL: $*"; exit 1; }
t0=$(date +%s)

apt_install() {
	apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$@" </dev/null >/tmp/apt.log 2>&1 ||
		{ tail -30 /tmp/apt.log; fail "apt-get install $*"; }
}
pids=()
# Each background service runs in a process group of its own (setsid): SIGTERM to the group
# (runuser passes it on, but a node between retries may take its time), SIGKILL after 10 s.
stop_all() {
	local p
	for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do
		for _ in $(seq 100); do
			kill -0 -- "-$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL -- "-$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	pids=()
}
trap stop_all EXIT

# The server as tessera-server.service runs it (its user, its settings), on a free port.
start_server() {
	rm -f /var/lib/tessera/server.port
	(
		set -a
		. /etc/default/tessera-server
		set +a
		# shellcheck disable=SC2086
		exec setsid runuser -u tessera -- /usr/bin/tessera-server run --data /var/lib/tessera \
			--listen 127.0.0.1:0 $TESSERA_SERVER_OPTS
	) >>/tmp/server.log 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do
		[ -s /var/lib/tessera/server.port ] && break
		sleep 0.1
	done
	[ -s /var/lib/tessera/server.port ] || { cat /tmp/server.log; fail "the server did not start"; }
	url=https://127.0.0.1:$(cat /var/lib/tessera/server.port)
}
# A command as tessera-client.service runs its ExecStart and ExecStartPre: its user, the
# settings of /etc/default/tessera-client, Nice=19, CPUSchedulingPolicy=idle,
# IOSchedulingClass=idle and NoNewPrivileges=yes.
# as_node_exec replaces the shell it runs in: in the background (CMD &) it is the process $!
# names, its own process group (setsid).
as_node_exec() {
	set -a
	. /etc/default/tessera-client
	set +a
	export TESSERA_CLIENT_STATE=/var/lib/tessera-client
	exec setsid runuser -u tessera-client -- setpriv --no-new-privs nice -n 19 chrt -i 0 ionice -c 3 "$@"
}
as_node() { (as_node_exec "$@"); }

step "1. apt install the three packages, $v1 (Depends from the archive)"
apt-get -o DPkg::Lock::Timeout=600 update -qq >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "apt-get update"; }
apt_install "$debs/tessera-server_${v1}_amd64.deb" "$debs/tessera-client_${v1}_amd64.deb" \
	"$debs/tessera_${v1}_amd64.deb" bubblewrap
grep -E '^(Get|Unpacking|Setting up).*tessera|tessera-server:' /tmp/apt.log || true
for p in tessera-server tessera-client tessera; do
	[ "$(dpkg-query -W -f='${Version}' "$p")" = "$v1" ] || fail "$p is not at $v1"
done
ok "installed: $(dpkg-query -W -f='${Package} ${Version}, ' tessera-server tessera-client tessera)"
echo "package-test: with them came $(grep -c '^Setting up' /tmp/apt.log) packages from the archive"

step "2. users, state dirs, conffiles, --help"
for u in tessera tessera-client; do
	getent passwd "$u" >/dev/null || fail "no user $u"
	shell=$(getent passwd "$u" | cut -d: -f7)
	[ "$shell" = /usr/sbin/nologin ] || fail "$u has shell $shell"
done
[ "$(stat -c '%U %a' /var/lib/tessera)" = "tessera 700" ] || fail "/var/lib/tessera: $(stat -c '%U %a' /var/lib/tessera)"
[ "$(stat -c '%U %a' /var/lib/tessera-client)" = "tessera-client 700" ] || fail "/var/lib/tessera-client"
[ -f /var/lib/tessera/tessera.db ] || fail "postinst did not initialise the server"
[ "$(stat -c '%U %a' /var/lib/tessera/initial-admin.txt)" = "root 600" ] || fail "initial-admin.txt is not root's 0600"
password=$(sed -n 's/^admin password (shown once): //p' /var/lib/tessera/initial-admin.txt)
pin=$(sed -n 's/^pin: //p' /var/lib/tessera/initial-admin.txt)
[ -n "$password" ] && [ -n "$pin" ] || fail "no pin or admin password in initial-admin.txt"
for f in /etc/default/tessera-server /etc/default/tessera-client; do
	dpkg-query -W -f='${Conffiles}\n' tessera-server tessera-client | grep -q " $f " || fail "$f is not a conffile"
done
tessera-server --help >/dev/null && tessera-client --help >/dev/null && tessera --help >/dev/null ||
	fail "--help"
ok "users tessera and tessera-client, /var/lib/tessera{,-client} 0700, conffiles, --help of all three"

step "3. server, login, enrollment, a montecarlo_pi job on the packaged node"
start_server
TESSERA_PASSWORD=$password tessera login "$url" --user admin --pin "$pin" >/dev/null || fail "admin login"
token=$(tessera token create 2>/dev/null) || fail "tessera token create"
tessera-client-enroll "$url" "$token" || fail "tessera-client-enroll URL TOKEN"
[ "$(stat -c '%U:%G %a' /etc/tessera/enroll-token)" = "root:tessera-client 640" ] || fail "enroll-token mode"
as_node /usr/sbin/tessera-client-enroll >/tmp/enroll.log 2>&1 || { cat /tmp/enroll.log; fail "enrollment as tessera-client"; }
[ -f /var/lib/tessera-client/node.json ] || fail "no node.json after enrollment"
as_node /usr/sbin/tessera-client-enroll || fail "a second start (already enrolled)"
as_node_exec /usr/bin/tessera-client run --max-units 4 >/tmp/client.log 2>&1 &
pids+=($!)
job=$(tessera submit pi --samples 4e6 --seed 7 --units 4) || fail "tessera submit"
tessera wait "$job" --timeout 120 >/tmp/result.txt 2>/dev/null || { cat /tmp/client.log; fail "job $job did not finish"; }
ok "job $job done on the node: $(tr '\n' ' ' </tmp/result.txt)"
node_md5=$(md5sum </var/lib/tessera-client/node.json)
stop_all

step "4. upgrade to $v2"
echo "# a local change, kept over upgrades" >>/etc/default/tessera-server
apt_install "$debs/tessera-server_${v2}_amd64.deb" "$debs/tessera-client_${v2}_amd64.deb" \
	"$debs/tessera_${v2}_amd64.deb"
for p in tessera-server tessera-client tessera; do
	[ "$(dpkg-query -W -f='${Version}' "$p")" = "$v2" ] || fail "$p is not at $v2"
done
grep -q '^# a local change' /etc/default/tessera-server || fail "the local conffile change is lost"
[ "$(md5sum </var/lib/tessera-client/node.json)" = "$node_md5" ] || fail "node.json changed"
[ "$(sed -n 's/^pin: //p' /var/lib/tessera/initial-admin.txt)" = "$pin" ] || fail "initial-admin.txt changed"
start_server
[ "$(tessera-server pin --data /var/lib/tessera)" = "$pin" ] ||
	fail "the server's key changed"
TESSERA_PASSWORD=$password tessera login "$url" --user admin --pin "$pin" >/dev/null || fail "login after the upgrade"
tessera status "$job" | grep -qi 'done' || { tessera status "$job"; fail "job $job is not there after the upgrade"; }
stop_all
ok "at $v2: store, key, node key, local conffile change and job $job kept"

step "5. remove, then purge"
apt-get remove -y -q tessera-server tessera-client tessera </dev/null >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "remove"; }
getent passwd tessera >/dev/null && [ -f /var/lib/tessera/tessera.db ] && [ -f /etc/default/tessera-server ] ||
	fail "remove took the user, the store or the conffiles"
ok "remove kept the users, /var/lib/tessera and the conffiles"
# (tessera has no conffiles: remove took all of it already)
apt-get purge -y -q tessera-server tessera-client </dev/null >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "purge"; }
left=()
for u in tessera tessera-client; do
	getent passwd "$u" >/dev/null && left+=("user $u")
	getent group "$u" >/dev/null && left+=("group $u")
done
for f in /var/lib/tessera /var/lib/tessera-client /etc/default/tessera-server /etc/default/tessera-client /etc/tessera; do
	[ -e "$f" ] && left+=("$f")
done
for p in tessera-server tessera-client tessera; do
	dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q . && left+=("package $p")
done
[ ${#left[@]} -eq 0 ] || { cat /tmp/apt.log; ls -l /proc/[0-9]*/exe 2>/dev/null; fail "purge left: ${left[*]}"; }
ok "purge removed the users and groups, /var/lib/tessera{,-client}, /etc/default/tessera-*, /etc/tessera"
echo "package-test: steps 1-5 passed ($v1, upgraded to $v2, in $(($(date +%s) - t0))s)"
