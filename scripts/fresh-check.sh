#!/usr/bin/env bash
# The README's two commands on a fresh Debian 12, checked: debootstraps a bookworm root (minbase
# plus git and make, nothing else), clones the project's committed HEAD into it and runs
# `make demo` and `make test` there, as root with HOME=/root and CI=true: not through chroot (the
# kernel refuses user namespaces to chrooted processes, and the tests' sandboxes, bwrap, need
# them) but in mount and pid namespaces of their own whose root is the root (pivot_root).
# Prints the time each took and a last line "fresh-check: PASS" or "fresh-check: FAIL: ...".
#
# Usage: scripts/fresh-check.sh [-c] [-d DIR] [REPO]
#   -c    run the CI job (.ci/run) there instead of make demo and make test, and time it
#   REPO  the git repository to clone (default: the one this script is in); its HEAD commit, so
#         uncommitted changes are not tested.
#   DIR   where the roots live (default /var/tmp/tessera-fresh): DIR/base is a pristine root kept
#         between runs (made once by debootstrap); every run copies it to DIR/root and works there.
#         DIR/apt-archives keeps the downloaded .deb files between runs (apt still fetches fresh
#         indexes and checks each file against them); FRESH_APT_CACHE=0 downloads everything anew.
# Needs root. Installs debootstrap on this machine when it is missing. The Debian mirror is the
# one this machine's apt sources name; the root gets this machine's /etc/resolv.conf, ~/.npmrc
# and local CAs (/usr/local/share/ca-certificates), and /proc, /sys, /dev, /dev/pts and /dev/shm
# bound in, unmounted on exit after what still runs in the root is killed.
# Exit status: 0 on PASS, 1 on FAIL, 2 on a usage error.
set -euo pipefail

dir=/var/tmp/tessera-fresh
steps=("make demo" "make test")
while getopts cd:h opt; do
  case $opt in
    c) steps=(.ci/run) ;;
    d) dir=$OPTARG ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
repo=${1:-$(cd "$(dirname "$0")/.." && pwd)}
suite=bookworm

log() { echo "fresh-check: $*"; }
die() { echo "fresh-check: FAIL: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || { echo "fresh-check: needs root (debootstrap, mount, unshare)" >&2; exit 2; }
commit=$(git -C "$repo" rev-parse HEAD) || { echo "fresh-check: $repo is not a git repository" >&2; exit 2; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
base=$dir/base
root=$dir/root
case $root in /|/usr|/usr/*|/etc|/etc/*) echo "fresh-check: refusing root $root" >&2; exit 2 ;; esac

# URIs this machine's apt sources give for SUITE (deb822 .sources files and one-line lists).
# Prints "URI SUITE" per match; SUITE is bookworm, bookworm-updates or bookworm-security.
host_sources() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v want="^$suite(-updates|-security)?$" '
      function flush(  i, j, nu, ns, u, s) {
        if (types ~ /(^| )deb( |$)/) {
          nu = split(uris, u, " "); ns = split(suites, s, " ")
          for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) if (s[j] ~ want) print u[i], s[j]
        }
        types = uris = suites = ""
      }
      /^[ \t]*$/ { flush(); next }
      /^#/ { next }
      tolower($1) == "types:" { $1 = ""; types = $0 }
      tolower($1) == "uris:" { $1 = ""; uris = $0 }
      tolower($1) == "suites:" { $1 = ""; suites = $0 }
      END { flush() }' "$f"
  done
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | # either may be missing
    sed 's/\[[^]]*\]//' |
    awk -v want="^$suite(-updates|-security)?$" '$1 == "deb" && $3 ~ want { print $2, $3 }' || true
}

sources=$(host_sources | sed 's|/*  *| |' | sort -u)
mirror=$(awk -v s="$suite" '$2 == s { print $1; exit }' <<<"$sources")
[ -n "$mirror" ] || die "no $suite mirror in /etc/apt/sources.list{,.d/*} on this machine"

if ! command -v debootstrap >/dev/null; then
  log "installing debootstrap on this machine"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 \
    --no-install-recommends debootstrap
fi

# Mounts made in the root, undone in reverse order on exit, after ending what still runs there:
# each in_root's unshare (found by its FRESH_CHECK_RUN; --kill-child takes its pid namespace,
# everything started in the root, with it).
mounts=()
cleanup() {
  local p i
  for p in /proc/[0-9]*; do
    if [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] ||
      tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qx "FRESH_CHECK_RUN=$$"; then
      kill -KILL "${p#/proc/}" 2>/dev/null
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

# The pristine base, once: debootstrap into a scratch dir, then rename (an interrupted run leaves
# no half-made base behind).
if [ ! -x "$base/usr/bin/git" ]; then
  log "debootstrap $suite from $mirror into $base (once; later runs reuse it)"
  t0=$(date +%s)
  rm -rf "$base.tmp"
  debootstrap --variant=minbase --include=git,make "$suite" "$base.tmp" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
    { tail -20 "$dir/debootstrap.log"; die "debootstrap failed; see $dir/debootstrap.log"; }
  rm -rf "$base"
  mv "$base.tmp" "$base"
  log "debootstrap took $(($(date +%s) - t0))s"
fi

# A pristine copy for this run. The previous run's root (kept for a look at what failed) goes
# away in the background; a run killed hard may have left mounts in it.
if [ -d "$root" ]; then
  { grep -o " $root/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m"; done
  ! grep -q " $root/" /proc/mounts || die "$root still has mounts; unmount them first"
  old=$(mktemp -d "$dir/old-root-XXXXXX")
  mv "$root" "$old/"
  nohup nice ionice -c3 rm -rf "$dir"/old-root-* >/dev/null 2>&1 &
fi
log "a pristine copy of $base in $root"
cp -a "$base" "$root"

# apt in the root: this machine's Debian mirrors for bookworm, -updates and -security (chromium
# comes from -security), and no services started by package scripts (policy-rc.d).
awk '{ print "deb", $1, $2, "main" }' <<<"$sources" >"$root/etc/apt/sources.list"
rm -f "$root"/etc/apt/sources.list.d/*
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
# This machine's network as it is: its resolver, its npm settings, and the CAs it adds locally (a
# proxy's, say), which ca-certificates takes in when make deps installs it there.
[ -f /etc/resolv.conf ] && cp -L /etc/resolv.conf "$root/etc/resolv.conf"
[ -f "$HOME/.npmrc" ] && cp "$HOME/.npmrc" "$root/root/.npmrc"
mkdir -p "$root/usr/local/share/ca-certificates"
cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/" 2>/dev/null || true

bind /proc /proc
bind /sys /sys
bind /dev /dev
bind /dev/pts /dev/pts
# chromium keeps its shared memory in /dev/shm, a mount of its own under /dev.
if mountpoint -q /dev/shm; then bind /dev/shm /dev/shm; fi
if [ "${FRESH_APT_CACHE:-1}" != 0 ]; then
  mkdir -p "$dir/apt-archives/partial"
  bind "$dir/apt-archives" /var/cache/apt/archives
  echo 'APT::Keep-Downloaded-Packages "true";' >"$root/etc/apt/apt.conf.d/99keep-downloads"
fi

# The project, as a fresh machine would get it: a git clone of the committed HEAD.
git -C "$repo" bundle create "$root/tmp/tessera.bundle" HEAD 2>/dev/null
# A command in the root, as root with a clean environment. Its own mount namespace, where the
# root (with the mounts above) is bound on itself and made "/" by pivot_root, the old "/"
# detached: a chrooted process may not create user namespaces, this one may. Its own pid
# namespace, with a /proc of its own: when its first process ends or its unshare is killed
# (cleanup), everything in it ends.
in_root() {
  FRESH_CHECK_RUN=$$ unshare --mount --propagation private --pid --fork --kill-child -- \
    /bin/sh -euc 'mount -t proc proc "$1/proc"; mount --rbind "$1" "$1"; cd "$1"
      pivot_root . .; umount -l .; cd /
      exec /usr/bin/env -i HOME=/root CI=true LANG=C.UTF-8 TERM=dumb \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/bash -c "$2"' \
    in_root "$root" "$1"
}
in_root 'git -c advice.detachedHead=false clone -q /tmp/tessera.bundle /root/tessera && git -C /root/tessera checkout -q --detach '"$commit" ||
  die "git clone of $commit inside the root failed"
log "testing $commit in $root"

result=PASS
times=()
for step in "${steps[@]}"; do
  t0=$(date +%s)
  steplog=$dir/$(tr -c 'a-z\n' - <<<"${step#.}").log
  log "$step (log: $steplog)"
  rc=0
  in_root "cd /root/tessera && $step" 2>&1 | tee "$steplog" || rc=$?
  took=$(($(date +%s) - t0))
  times+=("$step: ${took}s (exit $rc)")
  log "$step took ${took}s, exit status $rc"
  if [ "$rc" -ne 0 ]; then
    result="FAIL: $step exited $rc"
    break
  fi
done

for t in "${times[@]}"; do log "$t"; done
if [ "$result" = PASS ]; then
  log "PASS ($commit on a fresh Debian 12)"
else
  log "$result ($commit; logs in $dir)"
  exit 1
fi
