#!/usr/bin/env bash
# test.sh -- configure, build and run every test of libcallout.
#
#   ./scripts/test.sh [extra cmake -D options...]
#
# Works from any directory; re-running it only rebuilds what changed.
# Runs scripts/setup.sh first: on a bare Debian 12 it installs the packages.
# Build directory: build/ at the repository root (BUILD_DIR overrides it).
# Exits non-zero if configuring, building or any test fails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# Install whatever build or test dependency is missing (Debian 12; silent
# and about 0.1 s when nothing is).
./scripts/setup.sh -q
build_dir="${BUILD_DIR:-build}"
jobs="${JOBS:-2}"

# The generator can only be chosen when the build directory is new.
generator=()
[[ -f "$build_dir/CMakeCache.txt" ]] || generator=(-G Ninja)

cmake -S . -B "$build_dir" "${generator[@]}" -DCALLOUT_WERROR=ON "$@"
cmake --build "$build_dir" -j "$jobs"
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs"
