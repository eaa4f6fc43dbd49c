#!/usr/bin/env bash
# demo.sh -- build the demo (a simulated userspace TCP stack on the default domain) and run it.
#
# Works from any directory.  Shares the build directory build/ with
# scripts/test.sh (same options), but builds only the callout-demo target (tools/callout_demo.cpp).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# Install whatever build or test dependency is missing (Debian 12; silent
# and about 0.1 s when nothing is).
./scripts/setup.sh -q
build_dir="${BUILD_DIR:-build}"

generator=()
[[ -f "$build_dir/CMakeCache.txt" ]] || generator=(-G Ninja)

# Configure quietly; show the output only if it fails.
if ! log="$(cmake -S . -B "$build_dir" "${generator[@]}" -DCALLOUT_WERROR=ON 2>&1)"; then
  printf '%s\n' "$log" >&2
  exit 1
fi
cmake --build "$build_dir" -j "${JOBS:-2}" --target callout-demo
echo
exec "$build_dir/tools/callout-demo" "$@"
