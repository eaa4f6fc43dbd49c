#!/usr/bin/env bash
# stats_cost.sh [N] [PAIRS] -- the cost of the per-CPU counters on the
# reset/stop path, measured in one run: builds bench/stats_cost.c against
# the library as shipped and against one compiled with -DCALLOUT_NO_STATS
# (build-statscost/), runs the two alternately PAIRS times pinned to one CPU,
# and prints the median ns per operation of each and their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
pairs=${2:-7}
cmake -S . -B build-statscost -G Ninja -DCMAKE_BUILD_TYPE=Release -DCALLOUT_BUILD_BENCH=ON \
  -DCALLOUT_BUILD_TESTS=OFF -DCALLOUT_BUILD_EXAMPLES=OFF > /dev/null
cmake --build build-statscost -j2 --target stats_cost_stats stats_cost_nostats > /dev/null
cpu=$(($(nproc) - 1))
with=() without=()
for ((i = 0; i < pairs; i++)); do
  with+=("$(taskset -c "$cpu" build-statscost/stats_cost_stats "$n" | awk '{print $2}')")
  without+=("$(taskset -c "$cpu" build-statscost/stats_cost_nostats "$n" | awk '{print $2}')")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mw=$(median "${with[@]}")
mo=$(median "${without[@]}")
echo "reset+stop, N=$n, $pairs alternating runs each (best of 20 rounds per run, median over runs):"
echo "  counters compiled in:  $mw ns/op   (runs: ${with[*]})"
echo "  counters compiled out: $mo ns/op   (runs: ${without[*]})"
awk -v a="$mw" -v b="$mo" 'BEGIN { printf "  ratio in/out: %.3f\n", a / b }'
