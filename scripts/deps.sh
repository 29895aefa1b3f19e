#!/usr/bin/env bash
# Installs the Debian packages Tessera needs, only those missing (apt-get, through sudo when not root).
set -euo pipefail

pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev libevent-dev libssl-dev openssl libsqlite3-dev zlib1g-dev
      libjansson-dev libcurl4-openssl-dev libopenmpi-dev openmpi-bin libcriterion-dev
      chromium)
# The dashboard's browser test runs on Node.js and npm: Debian's only where none is installed
# (a Node.js from elsewhere ships its own npm and conflicts with Debian's npm package).
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
# The ARM cross test (scripts/cross-arm.sh, ctest test_kern_aarch64): Debian's aarch64 cross
# compiler and its C library (only recommended by it), qemu-user, and the real jansson for arm64
# through multiarch (the kernels parse their params with it). A PKG:ARCH enables ARCH first.
pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static libjansson-dev:arm64)
pkgs+=("$@")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
native=$(dpkg --print-architecture)
for p in "${missing[@]}"; do
  case $p in *:*) arch=${p##*:} ;; *) continue ;; esac
  if [ "$arch" != "$native" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
    "${sudo[@]}" dpkg --add-architecture "$arch"
  fi
done
# One stale index (a mirror mid-sync) must not stop the install: apt-get install below still
# fails, loudly, if a package cannot be had from the lists that did come.
"${sudo[@]}" apt-get update -qq || echo "deps: apt-get update reported errors; installing from the lists it has" >&2
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
