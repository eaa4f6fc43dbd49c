#!/usr/bin/env bash
# test.sh -- configure, build and run every test of libcallout.
#
#   ./scripts/test.sh [extra cmake -D options...]
#
# Works from any directory; re-running it only rebuilds what changed.
# Build directory: build/ at the repository root (BUILD_DIR overrides it).
# Exits non-zero if configuring, building or any test fails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build_dir="${BUILD_DIR:-build}"
jobs="${JOBS:-2}"

# The generator can only be chosen when the build directory is new.
generator=()
[[ -f "$build_dir/CMakeCache.txt" ]] || generator=(-G Ninja)

cmake -S . -B "$build_dir" "${generator[@]}" -DCALLOUT_WERROR=ON "$@"
cmake --build "$build_dir" -j "$jobs"
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs"
