#!/usr/bin/env bash
# setup.sh -- install the Debian 12 packages libcallout needs to build and test.
#
# Installs only what is missing (checked with dpkg -s); when nothing is
# missing it does nothing and takes well under a second.  Needs root or sudo
# only when something must be installed.
set -euo pipefail

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
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
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
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
echo "setup: done"
