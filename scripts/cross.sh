#!/usr/bin/env bash
# cross.sh ARCH -- build libcallout and its test suites for another Debian
# architecture and run them there (a CI job of .ci/run).
#
#   ./scripts/cross.sh arm64   g++-aarch64-linux-gnu; the tests run under
#                              qemu-aarch64 (qemu-user), through CMake's
#                              CMAKE_CROSSCOMPILING_EMULATOR, so ctest works
#   ./scripts/cross.sh i386    g++-i686-linux-gnu; the tests run natively on
#                              an x86-64 kernel
#
# GoogleTest comes from Debian multiarch packages (libgtest-dev:ARCH); the
# architecture is added to dpkg and the packages installed when missing
# (scripts/setup.sh).  Build directory: build-ARCH/.  Builds the library,
# the unit, API, thread, misuse, engine, edge, C++, ABI and torture tests,
# no examples; runs every ctest except those that need the host's
# toolchain or run for long (install_package, abi_symbols with nm of the
# host is kept: nm reads any ELF), and the torture for
# CALLOUT_TORTURE_SECONDS (default here 2) per configuration.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

arch=${1:-}
case $arch in
  arm64)
    toolchain=cmake/toolchain-aarch64-linux-gnu.cmake
    packages=(g++-aarch64-linux-gnu qemu-user libgtest-dev:arm64 libgmock-dev:arm64)
    ;;
  i386)
    toolchain=cmake/toolchain-i686-linux-gnu.cmake
    packages=(g++-i686-linux-gnu libgtest-dev:i386 libgmock-dev:i386 libc6:i386 libstdc++6:i386)
    ;;
  *)
    echo "usage: $0 arm64|i386" >&2
    exit 2
    ;;
esac
build_dir="${BUILD_DIR:-build-$arch}"
jobs="${JOBS:-2}"

./scripts/setup.sh -q cmake ninja-build googletest "${packages[@]}"

generator=()
[[ -f "$build_dir/CMakeCache.txt" ]] || generator=(-G Ninja)
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_TOOLCHAIN_FILE="$toolchain" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCALLOUT_WERROR=ON -DCALLOUT_BUILD_EXAMPLES=OFF -DCALLOUT_BUILD_TOOLS=OFF
cmake --build "$build_dir" -j "$jobs"

readelf -h "$build_dir"/libcallout.so.1 | grep -E "Class|Machine"

# Not here: install_package builds consumers with the host's pkg-config and
# cc conventions; the demo tests run a 100 000-connection load for seconds,
# which under qemu takes minutes and tests nothing the suites do not.
export CALLOUT_TORTURE_SECONDS="${CALLOUT_TORTURE_SECONDS:-2}"
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" \
  -E '^(install_package|demo_runs|demo_flags|man_lint)$'
