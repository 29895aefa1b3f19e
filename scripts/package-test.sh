#!/usr/bin/env bash
# The amd64 packages on a fresh Debian 12 (`make package-test`; not part of make test): builds
# them (scripts/packages.sh) and a second version with a bumped version number, then in a
# debootstrapped bookworm root (entered as scripts/fresh-check.sh does: unshare + pivot_root,
# so that bwrap's user namespaces work there):
#   1. apt install ./tessera-server ./tessera-client ./tessera (Depends from the archive)
#   2. the users, state dirs and conffiles are there; the three programs answer --help
#   3. the server runs from its state dir as user tessera; the admin logs in with the password
#      postinst kept; the client enrolls the packaged way (tessera-client-enroll URL TOKEN, then
#      what the unit's ExecStartPre runs, as tessera-client) and computes a montecarlo_pi job as
#      user tessera-client, niced, idle-scheduled and with no_new_privs as the unit runs it
#   4. upgrade to the second version: the store, node key, admin password and a changed conffile
#      are kept, the job is still there
#   5. remove keeps the users and state; purge removes users, state dirs, conffiles, the token
#   (1-5 without systemd: the services' commands run by hand with the units' users and settings)
#   6. the units under a real systemd (scripts/package-test-systemd.sh: systemd-nspawn -b of a
#      copy of the root): the server's, and the node's with a sandboxed program; skipped, and
#      said so, without systemd-nspawn
# Prints "package-test: PASS" or "package-test: FAIL: ...".
#
# Usage: scripts/package-test.sh [-d DIR]   (DIR: default /var/tmp/tessera-pkgtest; DIR/base is
#        the pristine root, made once; DIR/root the one each run works in)
# Needs root and the Debian archive. Exit status 0 on PASS, 1 on FAIL, 2 on a usage error.
set -euo pipefail

dir=/var/tmp/tessera-pkgtest
while getopts d:h opt; do
	case $opt in
		d) dir=$OPTARG ;;
		*) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done
src=$(cd "$(dirname "$0")/.." && pwd)
suite=bookworm
mirror=${TESSERA_DEBIAN_MIRROR:-http://deb.debian.org/debian}

log() { echo "package-test: $*"; }
die() { echo "package-test: FAIL: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "package-test: needs root (debootstrap, mount, unshare)" >&2; exit 2; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
base=$dir/base
root=$dir/root

# The two versions: this tree's, and the same with a bumped version, to upgrade to.
upstream=$(sed -n 's/^set(TESSERA_VERSION "\([^"]*\)".*/\1/p' "$src/CMakeLists.txt")
v1=$upstream-1
v2=$upstream-1+pkgtest2
log "building the amd64 packages $v1 and $v2"
LINTIAN=0 DIST=$dir/dist-1 BUILD_ROOT=$dir/build TESSERA_PKG_VERSION=$v1 \
	"$src/scripts/packages.sh" amd64 >"$dir/packages-1.log" 2>&1 || { cat "$dir/packages-1.log"; die "packages.sh ($v1)"; }
LINTIAN=0 DIST=$dir/dist-2 BUILD_ROOT=$dir/build TESSERA_PKG_VERSION=$v2 \
	"$src/scripts/packages.sh" amd64 >"$dir/packages-2.log" 2>&1 || { cat "$dir/packages-2.log"; die "packages.sh ($v2)"; }

command -v debootstrap >/dev/null || die "no debootstrap; run make deps"
if [ ! -x "$base/usr/bin/apt-get" ]; then
	log "debootstrap $suite into $base (once; later runs reuse it)"
	rm -rf "$base.tmp"
	debootstrap --variant=minbase "$suite" "$base.tmp" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
		{ tail -20 "$dir/debootstrap.log"; die "debootstrap failed; see $dir/debootstrap.log"; }
	mv "$base.tmp" "$base"
fi

mounts=()
cleanup() {
	local p i
	for p in /proc/[0-9]*; do
		if tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qx "PACKAGE_TEST_RUN=$$"; then
			kill -KILL "${p#/proc/}" 2>/dev/null || true
		fi
	done
	for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
		umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null || true
	done
	mounts=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM
bind() { mkdir -p "$root$2"; mount --bind "$1" "$root$2"; mounts+=("$root$2"); }

if [ -d "$root" ]; then
	{ grep -o " $root/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m"; done
	! grep -q " $root/" /proc/mounts || die "$root still has mounts; unmount them first"
	rm -rf "$root"
fi
cp -a "$base" "$root"
# apt there: this machine's sources (a Debian 12 too), no services started by package scripts.
rm -f "$root"/etc/apt/sources.list.d/*
cp /etc/apt/sources.list.d/*.sources "$root/etc/apt/sources.list.d/" 2>/dev/null || true
cp /etc/apt/sources.list "$root/etc/apt/sources.list" 2>/dev/null || true
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
[ -f /etc/resolv.conf ] && cp -L /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/tmp/debs"
cp "$dir"/dist-1/*.deb "$dir"/dist-2/*.deb "$root/tmp/debs/"
cp "$src/scripts/package-test-inner.sh" "$root/tmp/inner.sh"
bind /proc /proc
bind /sys /sys
bind /dev /dev
bind /dev/pts /dev/pts
mkdir -p "$dir/apt-archives/partial"
bind "$dir/apt-archives" /var/cache/apt/archives
echo 'APT::Keep-Downloaded-Packages "true";' >"$root/etc/apt/apt.conf.d/99keep-downloads"

log "testing in $root"
rc=0
PACKAGE_TEST_RUN=$$ unshare --mount --propagation private --pid --fork --kill-child -- \
	/bin/sh -euc 'mount -t proc proc "$1/proc"; mount --rbind "$1" "$1"; cd "$1"
      pivot_root . .; umount -l .; cd /
      exec /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/bash /tmp/inner.sh "$2" "$3"' \
	in_root "$root" "$v1" "$v2" 2>&1 | tee "$dir/test.log" || rc=$?
[ "$rc" -eq 0 ] || die "the test in the root exited $rc (log: $dir/test.log)"
grep -q '^package-test: steps 1-5 passed' "$dir/test.log" || die "steps 1-5 did not all pass (log: $dir/test.log)"
cleanup

log "== 6. the units under systemd (systemd-nspawn -b)"
"$src/scripts/package-test-systemd.sh" "$base" "$dir" "$v2" || die "step 6: the units under systemd"
log "PASS ($v1 and $v2 on a fresh Debian 12)"
