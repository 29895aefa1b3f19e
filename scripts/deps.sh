#!/usr/bin/env bash
# Installs the Debian packages Tessera needs, only those missing (apt-get, through sudo when not root).
# Says what it installs, then a line per phase and per 10% of apt's download and install progress
# (one line updated in place on a terminal); apt's full output goes to a log shown on failure.
set -euo pipefail

pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev libevent-dev libssl-dev openssl libsqlite3-dev zlib1g-dev
      libjansson-dev libcurl4-openssl-dev libopenmpi-dev openmpi-bin libcriterion-dev
      chromium)
# Users' programs (client/cl_sandbox.c): the bubblewrap sandbox, and Debian's python3 with mpi4py
# (/usr/bin/python3; prlimit, also used, is util-linux's, always there).
pkgs+=(bubblewrap python3-mpi4py)
# bench/wrk.py: Debian's wrk, the independent load generator to check bench_load against.
pkgs+=(wrk)
# The fuzz run (scripts/fuzz.sh) symbolizes ASan's traces with llvm-symbolizer: clang-14's.
pkgs+=(llvm-14)
# BOINC support: expat parses the scheduler's XML; Debian's boinc-client (boinc, boinccmd) is the
# real volunteer client that test_boinc attaches to a test server.
pkgs+=(libexpat1-dev boinc-client)
# The BOINC app for 32-bit ARM hosts (armhf), cross-built as the aarch64 one (the packages above).
pkgs+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross libjansson-dev:armhf)
# The dashboard's browser test runs on Node.js and npm: Debian's only where none is installed
# (a Node.js from elsewhere ships its own npm and conflicts with Debian's npm package).
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
# The ARM cross test (scripts/cross-arm.sh, ctest test_kern_aarch64): Debian's aarch64 cross
# compiler and its C library (only recommended by it), qemu-user, and the real jansson for arm64
# through multiarch (the kernels parse their params with it). A PKG:ARCH enables ARCH first.
pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static libjansson-dev:arm64)
# Packages (scripts/packages.sh, make packages): dpkg-deb and dpkg-shlibdeps, lintian, Debian's
# armhf cross compiler beside the aarch64 one above, mmdebstrap for the ARM sysroots
# (scripts/sysroot.sh; it also serves tests/arm's ARM nodes), systemd-analyze for the units, and
# debootstrap and systemd-nspawn for scripts/package-test.sh's fresh roots.
pkgs+=(dpkg-dev lintian gcc-arm-linux-gnueabihf libc6-dev-armhf-cross mmdebstrap systemd debootstrap
       systemd-container)
pkgs+=("$@")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${#missing[@]} Debian packages and what they need: ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
# Another apt (unattended-upgrades on a machine just booted) may hold the lock: wait for it.
# Line-buffered, so that apt's own lines come in order with its status lines.
apt=("${sudo[@]}" stdbuf -oL apt-get -o DPkg::Lock::Timeout=600)
native=$(dpkg --print-architecture)
for p in "${missing[@]}"; do
  case $p in *:*) arch=${p##*:} ;; *) continue ;; esac
  if [ "$arch" != "$native" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
    echo "deps: enabling the $arch architecture (dpkg --add-architecture $arch)"
    "${sudo[@]}" dpkg --add-architecture "$arch"
  fi
done
# One stale index (a mirror mid-sync) must not stop the install: apt-get install below still
# fails, loudly, if a package cannot be had from the lists that did come.
echo "deps: updating the package lists (apt-get update)"
"${apt[@]}" update -qq || echo "deps: apt-get update reported errors; installing from the lists it has" >&2

# apt's status lines (APT::Status-Fd on stdout, which sudo passes on) become the progress shown;
# everything else apt and dpkg print goes to the log.
log=$(mktemp /tmp/tessera-deps-XXXXXX.log)
tty=0
[ -t 1 ] && tty=1
progress() {
  awk -v logfile="$log" -v tty="$tty" '
    function show(phase, pct, what,  step) {
      pct = int(pct); step = int(pct / 10) * 10
      if (tty) {
        if (last_phase != "" && phase != last_phase) printf "\n"
        printf "\rdeps: %s %3d%% %-50.50s", phase, pct, what
        open_line = 1
      } else if (phase != last_phase || step > last_step) {
        printf "deps: %s %d%%%s\n", phase, step, what == "" ? "" : " " what
        last_step = step
      }
      last_phase = phase
      fflush()
    }
    # dlstatus:ITEM:PERCENT:MESSAGE; pmstatus:PACKAGE:PERCENT:MESSAGE, PACKAGE maybe NAME:ARCH.
    /^dlstatus:/ { split($0, f, ":"); show("downloading", f[3], ""); next }
    /^pmstatus:/ {
      if (match($0, /:[0-9]+(\.[0-9]+)?:/))
        show("installing", substr($0, RSTART + 1, RLENGTH - 2), substr($0, RSTART + RLENGTH))
      next
    }
    { print > logfile }
    /^(Need to get|After this operation)/ {
      if (open_line) { printf "\n"; open_line = 0 }
      print "deps: " $0; fflush()
    }
    END { if (open_line) printf "\n" }'
}
t0=$(date +%s)
if ! "${apt[@]}" install -y -q --no-install-recommends -o APT::Status-Fd=1 "${missing[@]}" 2>&1 | progress; then
  echo "deps: apt-get install failed; the end of its output ($log):" >&2
  tail -30 "$log" >&2
  exit 1
fi
rm -f "$log"
echo "deps: installed in $(($(date +%s) - t0))s"
