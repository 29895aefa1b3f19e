#!/usr/bin/env bash
# Debian packages of Tessera (`make packages`): tessera-server, tessera-client (a volunteer node)
# and tessera (the user CLI), for amd64 (built here) and arm64 and armhf (cross-built with
# Debian's cross compilers against a Debian 12 sysroot from scripts/sysroot.sh), into dist/.
# Each is staged in a tree and built with dpkg-deb; Depends come from the programs' real
# shared-library needs: dpkg-shlibdeps for amd64, and for the cross builds the NEEDED entries
# (objdump -p) mapped through the sysroot's packages' shlibs files. lintian checks every package
# unless LINTIAN=0; its errors fail the run.
#
# Usage: scripts/packages.sh [ARCH...]   (default: amd64 arm64 armhf)
#   TESSERA_PKG_VERSION  the packages' version (default: CMakeLists.txt's TESSERA_VERSION, -1)
#   DIST                 where the packages go (default dist/)
#   BUILD_ROOT           build dirs (default build-pkg/)
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
dist=${DIST:-$src/dist}
build_root=${BUILD_ROOT:-$src/build-pkg}
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(amd64 arm64 armhf)
upstream=$(sed -n 's/^set(TESSERA_VERSION "\([^"]*\)".*/\1/p' "$src/CMakeLists.txt")
version=${TESSERA_PKG_VERSION:-$upstream-1}
# The programs report the upstream part of the package's version.
prog_version=${version%-*}
maintainer="Tessera maintainers <maintainers@tessera.example.org>"
jobs=$(nproc)

log() { echo "packages: $*"; }
die() { echo "packages: FAIL: $*" >&2; exit 1; }

# Per Debian architecture: GNU triplet and toolchain file (empty: native).
triplet_of() {
	case $1 in
		amd64) echo x86_64-linux-gnu ;;
		arm64) echo aarch64-linux-gnu ;;
		armhf) echo arm-linux-gnueabihf ;;
		*) die "unknown architecture $1 (amd64, arm64, armhf)" ;;
	esac
}
toolchain_of() {
	case $1 in
		arm64) echo "$src/cmake/toolchain-aarch64.cmake" ;;
		armhf) echo "$src/cmake/toolchain-armhf.cmake" ;;
	esac
}

# build ARCH SYSROOT -> the three programs, installed (stripped) under $build_root/ARCH/inst/usr/bin
build() {
	local arch=$1 sysroot=$2 bdir=$build_root/$1 tc
	tc=$(toolchain_of "$arch")
	# A build dir configured against another sysroot (a new package list) or from another
	# source tree (another clone using the same --build dir) caches its paths: made anew.
	# ($bdir/.sysroot names the sysroot and the source it was configured with.)
	if [ -f "$bdir/CMakeCache.txt" ] && [ "$(cat "$bdir/.sysroot" 2>/dev/null)" != "$sysroot $src" ]; then
		rm -rf "$bdir"
	fi
	mkdir -p "$bdir"
	echo "$sysroot $src" >"$bdir/.sysroot"
	local flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTESSERA_VERSION="$prog_version")
	# Debian's build flags for ARCH, all hardening on (fortify, stack protector, relro, bindnow),
	# as the release build type's (kernels keep their -O3: target options come after).
	local cflags ldflags
	cflags=$(cd "$src" && export DEB_HOST_ARCH="$arch" DEB_BUILD_MAINT_OPTIONS=hardening=+all &&
		echo "$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS) -DNDEBUG")
	ldflags=$(cd "$src" && DEB_HOST_ARCH="$arch" DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get LDFLAGS)
	flags+=("-DCMAKE_C_FLAGS_RELWITHDEBINFO=$cflags" "-DCMAKE_EXE_LINKER_FLAGS_RELWITHDEBINFO=$ldflags")
	[ -n "$tc" ] && flags+=(-DCMAKE_TOOLCHAIN_FILE="$tc" -DTESSERA_SYSROOT="$sysroot")
	# The BOINC apps (static, for volunteers' x86_64, aarch64 and armhf machines) come from the
	# native build, which makes all three: a cross-built server package carries the same ones.
	if [ -n "$tc" ]; then
		if [ -d "$build_root/amd64/boinc-apps" ]; then
			flags+=(-DTESSERA_BOINC_APPS_DIR="$build_root/amd64/boinc-apps")
		else
			log "$arch: no native build's BOINC apps (build amd64 first): this server package serves none"
			flags+=(-DTESSERA_BOINC_APPS_DIR=)
		fi
	fi
	log "$arch: building in $bdir"
	cmake -S "$src" -B "$bdir" "${flags[@]}" >"$bdir.configure.log" 2>&1 ||
		{ tail -20 "$bdir.configure.log" >&2; die "$arch: cmake configure failed ($bdir.configure.log)"; }
	nice cmake --build "$bdir" -j "$jobs" --target tessera-server tessera-client tessera \
		>"$bdir.build.log" 2>&1 || { tail -30 "$bdir.build.log" >&2; die "$arch: build failed ($bdir.build.log)"; }
	rm -rf "$bdir/inst"
	DESTDIR="$bdir/inst" cmake --install "$bdir" --prefix /usr >/dev/null
	local strip=strip
	[ "$arch" = amd64 ] || strip=$(triplet_of "$arch")-strip
	# As dh_strip does (no -dbgsym packages here).
	"$strip" --remove-section=.comment --remove-section=.note --strip-unneeded "$bdir"/inst/usr/bin/*
}

# depends ARCH SYSROOT BINARY... -> a Depends value for the libraries the binaries need
depends() {
	local arch=$1 sysroot=$2
	shift 2
	if [ "$arch" = amd64 ] && [ "$(dpkg --print-architecture)" = amd64 ]; then
		local tmp
		tmp=$(mktemp -d)
		mkdir "$tmp/debian"
		printf 'Source: tessera\n\nPackage: tessera\nArchitecture: any\n' >"$tmp/debian/control"
		(cd "$tmp" && dpkg-shlibdeps -O "$@" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
		rm -rf "$tmp"
		return
	fi
	local triplet
	triplet=$(triplet_of "$arch")
	local needed lib name ver dep out=()
	needed=$("$triplet-objdump" -p "$@" | awk '$1 == "NEEDED" { print $2 }' | sort -u)
	for lib in $needed; do
		# libfoo.so.N -> "libfoo N"; libfoo-1.2.so.N likewise; libfoo-1.2.so -> "libfoo-1.2" ""
		if [[ $lib =~ ^(.*)\.so\.([0-9.]+)$ ]]; then
			name=${BASH_REMATCH[1]} ver=${BASH_REMATCH[2]}
		elif [[ $lib =~ ^(.*)-([0-9.]+)\.so$ ]]; then
			name=${BASH_REMATCH[1]} ver=${BASH_REMATCH[2]}
		else
			die "$arch: cannot read the soname $lib"
		fi
		dep=$(awk -v n="$name" -v v="$ver" '$1 == n && $2 == v { $1 = $2 = ""; sub(/^ +/, ""); print; exit }' \
			"$sysroot/tessera-shlibs")
		[ -n "$dep" ] || die "$arch: no package in the sysroot's shlibs provides $lib"
		out+=("$dep")
	done
	printf '%s\n' "${out[@]}" | sort -u | paste -sd, | sed 's/,/, /g'
}

# package NAME ARCH DEPENDS DESCRIPTION(synopsis) LONG-DESCRIPTION — from $stage/NAME
package() {
	local name=$1 arch=$2 deps=$3 synopsis=$4 long=$5 root=$stage/$1
	local doc=$root/usr/share/doc/$name
	install -d "$doc"
	install -m 0644 "$src/packaging/copyright" "$doc/copyright"
	sed "s/@PKG@/$name/g; s/@VERSION@/$version/g; s/@MAINTAINER@/$maintainer/g; s/@DATE@/$date/g" \
		"$src/packaging/changelog.in" | gzip -9n >"$doc/changelog.Debian.gz"
	chmod 0644 "$doc/changelog.Debian.gz"
	if [ -d "$root/usr/share/man" ]; then
		find "$root/usr/share/man" -type f ! -name '*.gz' -exec gzip -9n {} +
	fi
	install -d -m 0755 "$root/DEBIAN"
	local size
	size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
	{
		echo "Package: $name"
		echo "Version: $version"
		echo "Architecture: $arch"
		echo "Maintainer: $maintainer"
		echo "Installed-Size: $size"
		[ -n "$deps" ] && echo "Depends: $deps"
		[ -n "${recommends:-}" ] && echo "Recommends: $recommends"
		[ -n "${suggests:-}" ] && echo "Suggests: $suggests"
		echo "Section: net"
		echo "Priority: optional"
		echo "Description: $synopsis"
		printf '%s\n' "$long" | fold -s -w 78 | sed 's/ *$//; s/^/ /; s/^ $/ ./'
	} >"$root/DEBIAN/control"
	if [ -d "$root/etc" ]; then
		(cd "$root" && find etc -type f | sed 's|^|/|' | sort) >"$root/DEBIAN/conffiles"
		chmod 0644 "$root/DEBIAN/conffiles"
	fi
	(cd "$root" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' |
		sort -z | xargs -0r md5sum) >"$root/DEBIAN/md5sums"
	chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control"
	local deb=$dist/${name}_${version}_$arch.deb
	dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
	log "$arch: $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB; Depends: ${deps:-none})"
	debs+=("$deb")
}

# maint NAME SCRIPT USER STATE UNIT COMMENT [EXTRA-FILE] [PURGE_PATHS] [WHAT] [PURGE_MORE]
maint() {
	local name=$1 script=$2 user=$3 state=$4 unit=$5 comment=$6 extra=${7:-} purge=${8:-}
	local what=${9:-} more=${10:-}
	local script_path=$stage/$name/DEBIAN/$script extra_text=
	install -d -m 0755 "$stage/$name/DEBIAN"
	[ -n "$extra" ] && extra_text=$(cat "$extra")
	EXTRA=$extra_text PURGE=$purge WHAT=$what MORE=$more awk \
		-v pkg="$name" -v user="$user" -v state="$state" -v unit="$unit" -v comment="$comment" '
		{
			gsub(/@PKG@/, pkg); gsub(/@USER@/, user); gsub(/@STATE@/, state)
			gsub(/@UNIT@/, unit); gsub(/@COMMENT@/, comment)
			gsub(/@PURGE_PATHS@/, ENVIRON["PURGE"]); gsub(/@WHAT@/, ENVIRON["WHAT"])
			gsub(/@PURGE_MORE@/, ENVIRON["MORE"])
			if ($0 == "@EXTRA@") {
				if (ENVIRON["EXTRA"] == "") next
				e = ENVIRON["EXTRA"]; gsub(/@USER@/, user, e); gsub(/@STATE@/, state, e); $0 = e
			}
			print
		}' "$src/packaging/maint/$script.in" >"$script_path"
	chmod 0755 "$script_path"
}

# The units, checked against the staged package (its programs and man pages): systemd-analyze
# verify must pass; security's exposure scores are printed (docs/OPERATIONS.md has them).
check_units() {
	local name unit root
	command -v systemd-analyze >/dev/null || { log "no systemd-analyze: units not checked"; return; }
	for name in tessera-server tessera-client; do
		# The package's files over this machine's units (the targets they name).
		root=$build_root/$arch/units-$name
		rm -rf "$root"
		mkdir -p "$root/lib/systemd"
		cp -a /lib/systemd/system "$root/lib/systemd/"
		cp -a "$stage/$name/." "$root/"
		unit=$root/lib/systemd/system/$name.service
		MANPATH=$root/usr/share/man systemd-analyze verify --root="$root" "$unit" ||
			die "systemd-analyze verify $name.service failed"
		log "systemd-analyze verify $name.service: ok; $(systemd-analyze security --offline=yes \
			--root="$root" "$unit" 2>&1 | sed -n 's/^→ Overall exposure level for //p')"
	done
}

command -v dpkg-deb >/dev/null || die "no dpkg-deb; run make deps"
mkdir -p "$dist" "$build_root"
date=$(date -R -d "@$(git -C "$src" log -1 --format=%ct 2>/dev/null || date +%s)")
debs=()
for arch in "${archs[@]}"; do
	sysroot=
	if [ "$arch" != amd64 ]; then
		sysroot=$("$src/scripts/sysroot.sh" "$arch") || die "$arch: no sysroot"
	fi
	build "$arch" "$sysroot"
	inst=$build_root/$arch/inst/usr/bin
	stage=$build_root/$arch/stage
	rm -rf "$stage"

	# tessera-server
	r=$stage/tessera-server
	install -D -m 0755 "$inst/tessera-server" "$r/usr/bin/tessera-server"
	install -D -m 0644 "$src/packaging/systemd/tessera-server.service" "$r/lib/systemd/system/tessera-server.service"
	install -D -m 0644 "$src/packaging/default/tessera-server" "$r/etc/default/tessera-server"
	install -D -m 0644 "$src/packaging/man/tessera-server.1" "$r/usr/share/man/man1/tessera-server.1"
	# The BOINC apps the server hands to stock BOINC clients: static programs for the volunteers'
	# architectures, payload rather than programs of this machine (hence the lintian overrides).
	apps=$build_root/$arch/inst/usr/lib/tessera/boinc-apps
	if [ -d "$apps" ] && [ -n "$(ls -A "$apps")" ]; then
		install -d -m 0755 "$r/usr/lib/tessera/boinc-apps"
		install -m 0755 "$apps"/* "$r/usr/lib/tessera/boinc-apps/"
		install -D -m 0644 "$src/packaging/lintian/tessera-server" \
			"$r/usr/share/lintian/overrides/tessera-server"
	fi
	maint tessera-server postinst tessera /var/lib/tessera tessera-server.service "Tessera server" \
		"$src/packaging/maint/server-init.sh"
	maint tessera-server prerm tessera /var/lib/tessera tessera-server.service ""
	maint tessera-server postrm tessera /var/lib/tessera tessera-server.service "" "" "" \
		"store, key, certificate" ""
	recommends='' suggests=''
	package tessera-server "$arch" "$(depends "$arch" "$sysroot" "$r/usr/bin/tessera-server"), passwd" \
		"Tessera work-unit server" \
"The server of Tessera, a BOINC-like grid: it splits jobs into work units, leases them to \
enrolled volunteer nodes (package tessera-client) and checks and combines their results, over \
HTTPS with a SQLite store and a web dashboard. It runs as tessera-server.service, user tessera, \
with its data in /var/lib/tessera."

	# tessera-client
	r=$stage/tessera-client
	install -D -m 0755 "$inst/tessera-client" "$r/usr/bin/tessera-client"
	install -D -m 0755 "$src/packaging/sbin/tessera-client-enroll" "$r/usr/sbin/tessera-client-enroll"
	install -D -m 0644 "$src/packaging/systemd/tessera-client.service" "$r/lib/systemd/system/tessera-client.service"
	install -D -m 0644 "$src/packaging/default/tessera-client" "$r/etc/default/tessera-client"
	install -d -m 0755 "$r/etc/tessera"
	install -D -m 0644 "$src/packaging/man/tessera-client.1" "$r/usr/share/man/man1/tessera-client.1"
	install -D -m 0644 "$src/packaging/man/tessera-client-enroll.8" "$r/usr/share/man/man8/tessera-client-enroll.8"
	maint tessera-client postinst tessera-client /var/lib/tessera-client tessera-client.service "Tessera volunteer node"
	maint tessera-client prerm tessera-client /var/lib/tessera-client tessera-client.service ""
	maint tessera-client postrm tessera-client /var/lib/tessera-client tessera-client.service "" "" \
		" /etc/tessera/enroll-token" "node key, rates" "the enrollment token, "
	# bwrap runs other people's programs (--programs); Open MPI's mpirun runs --mpi nodes.
	recommends="bubblewrap" suggests="openmpi-bin"
	package tessera-client "$arch" "$(depends "$arch" "$sysroot" "$r/usr/bin/tessera-client"), passwd" \
		"Tessera volunteer node" \
"A node of a Tessera grid: it enrolls with a server once (tessera-client-enroll URL TOKEN), then \
fetches work units, computes them with the built-in kernels (and, if allowed, users' programs in \
a bubblewrap sandbox) and reports the results. It runs as tessera-client.service, user \
tessera-client, on idle CPU time only."

	# tessera
	r=$stage/tessera
	install -D -m 0755 "$inst/tessera" "$r/usr/bin/tessera"
	install -D -m 0644 "$src/packaging/man/tessera.1" "$r/usr/share/man/man1/tessera.1"
	recommends='' suggests=''
	package tessera "$arch" "$(depends "$arch" "$sysroot" "$r/usr/bin/tessera")" \
		"command line for the users of a Tessera grid" \
"The command line of a Tessera grid's users: log in to a server, submit jobs (the built-in \
kernels or your own programs), watch them and read their results; admins manage users, nodes \
and enrollment tokens with it."
	[ "$arch" != "$(dpkg --print-architecture)" ] || check_units
done

if [ "${LINTIAN:-1}" != 0 ]; then
	command -v lintian >/dev/null || die "no lintian; run make deps"
	rc=0
	for deb in "${debs[@]}"; do
		# (lintian's note that it runs as root is left out)
		report=$(lintian --tag-display-limit 0 "$deb" 2>&1 | grep -v '^running with root privileges') ||
			true
		grep -q "^E: " <<<"$report" && rc=1
		if [ -n "$report" ]; then
			log "lintian $(basename "$deb"):"
			sed "s/^/  /" <<<"$report"
		else
			log "lintian $(basename "$deb"): clean"
		fi
	done
	[ $rc -eq 0 ] || die "lintian reported errors"
fi
log "done: ${#debs[@]} packages in $dist"
