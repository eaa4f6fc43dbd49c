#!/usr/bin/env bash
# setup.sh -- install the Debian 12 packages libcallout needs to build and test.
#
#   ./scripts/setup.sh [-q] [PACKAGE...]
#
# With no PACKAGE, the packages of the build, the tests and the examples.
# PACKAGE may name a foreign architecture (libgtest-dev:arm64); that
# architecture is added to dpkg first (Debian multiarch).  Installs only what
# is missing, found with one dpkg-query call: when nothing is missing it does
# nothing and takes a few milliseconds.  -q: print nothing in that case
# (scripts/test.sh and scripts/demo.sh run it first).  Needs root or sudo
# only when something must be installed.  Not on Debian (no dpkg-query): says
# so and does nothing; install the equivalents yourself.
set -euo pipefail

quiet=0
if [[ ${1:-} == -q ]]; then
  quiet=1
  shift
fi

packages=("$@")
if ((${#packages[@]} == 0)); then
  packages=(
    cmake ninja-build g++ clang pkg-config
    libgtest-dev libgmock-dev googletest libbenchmark-dev
    libclang-rt-14-dev valgrind
    systemtap-sdt-dev   # <sys/sdt.h>: the USDT probes are compiled in
    libdw-dev           # elfutils: the dump names static handlers (src/symbols.h)
    abigail-tools       # abidw/abidiff: scripts/abi.sh
    libboost-dev libuv1-dev  # examples/loop: Boost.Asio and libuv embedding
    spin                # tests/spin: the protocol model
    mandoc              # man_lint test
    clang-format        # scripts/format.sh --check (CI)
  )
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  ((quiet)) || echo "setup: not a Debian system; install the equivalents of: ${packages[*]}" >&2
  exit 0
fi

# One dpkg-query for all: it prints "name:arch installed" for each installed
# package it knows (and fails for unknown names, hence || true).
native=$(dpkg --print-architecture)
installed=$(dpkg-query -W -f='${Package}:${Architecture} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null || true)
declare -A have=()
while read -r name status; do
  [[ $status == installed ]] && have[$name]=1
done <<<"$installed"
missing=()
for p in "${packages[@]}"; do
  want=$p
  [[ $p == *:* ]] || want="$p:$native"
  # Architecture: all packages are listed as name:all.
  [[ -n ${have[$want]:-} || -n ${have[${p%%:*}:all]:-} ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  ((quiet)) || echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=()
if ((EUID != 0)); then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo -n)
  else
    echo "setup: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi
for p in "${missing[@]}"; do
  [[ $p == *:* ]] || continue
  arch=${p##*:}
  if [[ $arch != "$native" ]] && ! grep -qx "$arch" <<<"$(dpkg --print-foreign-architectures)"; then
    echo "setup: adding the $arch architecture (dpkg multiarch)"
    "${sudo[@]}" dpkg --add-architecture "$arch"
  fi
done
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
echo "setup: done"
