#!/usr/bin/env bash
# torture_hunt.sh -- run the torture test until it hangs, then keep the
# evidence: every thread's backtrace (gdb) and the test's own output.
#
#   scripts/torture_hunt.sh [RUNS] [SECONDS] [FILTER]
#     RUNS     how many runs (default 10)
#     SECONDS  CALLOUT_TORTURE_SECONDS per configuration (default 40)
#     FILTER   gtest filter (default Torture.Monotonic*)
#
# A run counts as hung when it is still alive SECONDS * 4 + 60 s after it
# started (a configuration takes SECONDS plus a few seconds to drain).  The
# test's own watchdog is pushed out of the way (CALLOUT_TORTURE_WATCHDOG=
# 3600) so that gdb sees the hang as it is.  Needs build/ (./scripts/test.sh)
# and gdb.  Output: torture-hunt/run-N.log and, on a hang, torture-hunt/hang-bt.txt.
set -euo pipefail
runs="${1:-10}"
seconds="${2:-40}"
filter="${3:-Torture.Monotonic*}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${TORTURE_BIN:-$root/build/tests/torture/callout_torture}"
[[ -x "$bin" ]] || { echo "torture_hunt: $bin not built (run ./scripts/test.sh)" >&2; exit 2; }
command -v gdb >/dev/null || { echo "torture_hunt: gdb is needed" >&2; exit 2; }
out="$root/torture-hunt"
mkdir -p "$out"
limit=$((seconds * 4 + 60))
for ((i = 1; i <= runs; i++)); do
  CALLOUT_TORTURE_SECONDS="$seconds" CALLOUT_TORTURE_WATCHDOG=3600 \
    "$bin" --gtest_filter="$filter" >"$out/run-$i.log" 2>&1 &
  pid=$!
  for ((s = 0; s < limit; s++)); do
    sleep 1
    kill -0 "$pid" 2>/dev/null || break
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "run $i: HUNG after ${limit}s; backtraces in $out/hang-bt.txt"
    gdb -p "$pid" -batch -ex 'thread apply all bt 30' >"$out/hang-bt.txt" 2>&1 || true
    kill -9 "$pid"
    exit 1
  fi
  if wait "$pid"; then echo "run $i: passed"; else echo "run $i: FAILED (see $out/run-$i.log)"; exit 1; fi
done
echo "no hang in $runs runs"
