#!/usr/bin/env bash
# A Debian 12 sysroot for cross-building Tessera for ARCH (arm64, armhf): the -dev packages the
# build links against, and what they depend on, extracted (not installed) by mmdebstrap
# --variant=extract. It is cached outside the clone, in CACHE/ARCH-KEY where KEY is a hash of the
# package list, so rebuilds reuse it and a changed list makes a new one. Prints its path.
#
# Usage: scripts/sysroot.sh ARCH   (CACHE: $TESSERA_SYSROOT_CACHE, default /var/cache/tessera-sysroot,
#        or ~/.cache/tessera-sysroot when that is not writable)
# Needs mmdebstrap and the Debian archive (this machine's apt sources name the mirror).
set -euo pipefail

arch=${1:?usage: scripts/sysroot.sh ARCH}
# The runtime libraries come in as their dependencies: the same root serves qemu-user's -L.
pkgs=(libevent-dev libssl-dev libsqlite3-dev zlib1g-dev libjansson-dev libexpat1-dev libcurl4-openssl-dev
      libopenmpi-dev libc6-dev)
suite=bookworm
# The mirror: $TESSERA_DEBIAN_MIRROR, else the one this machine's apt sources give for bookworm
# (deb822 .sources or one-line lists), else deb.debian.org.
host_mirror() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'BEGIN { RS = ""; FS = "\n" }
		     /(^|\n)Types:[^\n]*deb( |$|\n)/ && /(^|\n)Suites:[^\n]*(^| )bookworm( |$|\n)/ {
			for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, u, " "); print u[2]; exit } }' "$f"
	done
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		sed 's/\[[^]]*\]//' | awk '$1 == "deb" && $3 == "bookworm" { print $2 }' || true
}
mirror=${TESSERA_DEBIAN_MIRROR:-$(host_mirror | head -n1)}
mirror=${mirror:-http://deb.debian.org/debian}

cache=${TESSERA_SYSROOT_CACHE:-/var/cache/tessera-sysroot}
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/tessera-sysroot
	mkdir -p "$cache"
fi
key=$(printf '%s\n' "$suite" "${pkgs[@]}" shlibs-1 | sha256sum | cut -c1-12)
root=$cache/$arch-$key
if [ -f "$root/.complete" ]; then
	echo "$root"
	exit 0
fi
# One maker at a time (ctest's test_arm_nodes beside make packages): the others wait, then
# find it made.
exec 9>"$cache/$arch-$key.lock"
flock 9
if [ -f "$root/.complete" ]; then
	echo "$root"
	exit 0
fi
command -v mmdebstrap >/dev/null || { echo "sysroot: no mmdebstrap; run make deps" >&2; exit 1; }
echo "sysroot: creating $root (bookworm $arch: ${pkgs[*]})" >&2
rm -rf "$root.tmp"
include=$(IFS=,; echo "${pkgs[*]}")
# Running as root, mmdebstrap needs no user namespace for the extract variant ("root" mode);
# otherwise "unshare" mode. The downloaded .deb files are kept for their shlibs (below).
mode=root
[ "$(id -u)" -eq 0 ] || mode=unshare
if ! mmdebstrap --quiet --mode="$mode" --variant=extract --architectures="$arch" --skip=cleanup/apt/cache \
	--include="$include" "$suite" "$root.tmp" "$mirror" >"$cache/$arch-$key.log" 2>&1; then
	tail -20 "$cache/$arch-$key.log" >&2
	echo "sysroot: mmdebstrap failed; see $cache/$arch-$key.log" >&2
	exit 1
fi
# Absolute symlinks inside the root (libfoo.so -> /lib/...) would point at this machine's
# files: make them relative to the root.
find "$root.tmp" -type l -lname '/*' | while read -r link; do
	target=$(readlink "$link")
	ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$root.tmp$target")" "$link"
done
# The extract variant installs nothing, so the root has no dpkg database: its packages' shlibs
# files (library name, soversion, dependency) go to one file, which scripts/packages.sh maps the
# programs' NEEDED libraries with. Then the .deb files go.
for deb in "$root.tmp"/var/cache/apt/archives/*.deb; do
	dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./shlibs 2>/dev/null || true
done | grep -v '^#' | sort -u >"$root.tmp/tessera-shlibs"
rm -f "$root.tmp"/var/cache/apt/archives/*.deb
touch "$root.tmp/.complete"
mv "$root.tmp" "$root"
echo "$root"
