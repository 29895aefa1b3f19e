#!/usr/bin/env bash
# Installs the Debian packages Tessera needs, only those missing (apt-get, through sudo when not root).
set -euo pipefail

pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev libevent-dev libssl-dev openssl libsqlite3-dev zlib1g-dev
      libjansson-dev libcurl4-openssl-dev libopenmpi-dev openmpi-bin libcriterion-dev
      chromium)
# The dashboard's browser test runs on Node.js and npm: Debian's only where none is installed
# (a Node.js from elsewhere ships its own npm and conflicts with Debian's npm package).
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
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
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
