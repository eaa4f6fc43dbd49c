#!/usr/bin/env bash
# placement.sh MONO_BENCH OUT.jsonl [rounds] [seconds] -- placement and policy
# of the softclock threads under the demo's load: callout-mono-bench load at
# 10^5 connections in every combination of background load (none, or one
# nice-0 spinner per online processor), pinning (off, on) and policy
# (inherited SCHED_OTHER, SCHED_FIFO 10), the combinations interleaved round
# after round so that they share the machine's moments.  Appends one JSON
# object per run to OUT.jsonl, then prints the table (bench/report.py renders
# the same file as mono_placement.jsonl).
set -euo pipefail
mono=$1
out=$2
rounds=${3:-2}
seconds=${4:-6}
: >"$out"
for round in $(seq 1 "$rounds"); do
  for busy in 0 cpus; do
    for pin in 0 1; do
      for policy in other fifo; do
        line=$("$mono" load --connections 100000 --seconds "$seconds" --warmup 3 \
          --busy "$busy" --pin "$pin" --policy "$policy" --priority 10)
        echo "{\"round\":$round,${line#\{}" >>"$out"
        echo "round $round busy=$busy pin=$pin policy=$policy done" >&2
      done
    done
  done
done
python3 "$(dirname "$0")/report.py" --placement "$out"
