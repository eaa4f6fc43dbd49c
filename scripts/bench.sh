#!/usr/bin/env bash
# bench.sh -- run every libcallout benchmark and regenerate
# docs/PERFORMANCE.md and the plots in docs/perf/.
#
#   ./scripts/bench.sh            the full run (about 17-22 minutes)
#   ./scripts/bench.sh --quick    a smoke run: N up to 10^5, fewer repetitions,
#                                 short idle/lateness windows (about 3 minutes);
#                                 it writes its report to build-bench/ only and
#                                 leaves docs/ alone unless --write-docs is given
#   options: --no-install (do not apt-get anything), --cpu N (the CPU the
#            single-thread workloads are pinned to; default 1), --no-profile
#
# Steps: install the peer libraries if missing (Debian packages, checked with
# dpkg -s first; apt-get update runs once, only if something is missing);
# configure a Release build in build-bench/ with the bench on; build with -j2;
# run the peer comparison (bench/peers), the Google Benchmark suite
# (callout-bench), the monotonic-clock programs (callout-mono-bench) and a
# perf profile of the hot paths; then bench/report.py writes the report.
#
# The machine is shared: every claim in the report is a ratio between numbers
# measured side by side in this one run.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build_dir="${BENCH_BUILD_DIR:-build-bench}"
jobs="${JOBS:-2}"

quick=0
install=1
profile=1
write_docs=1
cpu="${BENCH_CPU:-1}"
args_text="$*"
while (($#)); do
  case "$1" in
    --quick) quick=1; write_docs=0 ;;
    --write-docs) write_docs=1 ;;
    --no-install) install=0 ;;
    --no-profile) profile=0 ;;
    --cpu) cpu="$2"; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
# --quick --write-docs: the order of the two must not matter.
[[ " $args_text " == *" --write-docs "* ]] && write_docs=1

start_s=$(date +%s)
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# ---- 1. packages -----------------------------------------------------------
# Required: the toolchain, Google Benchmark and the peers.  Optional: the
# plotter and the profiler (the report says what is missing).  Installed in
# two steps so that a missing optional package cannot block the required ones.
required=(cmake ninja-build g++ pkg-config python3 libbenchmark-dev
          libevent-dev libuv1-dev libboost-dev libdpdk-dev)
optional=(gnuplot-nox linux-perf)
missing_of() {
  local p
  for p in "$@"; do
    grep -q '^Status: install ok installed' <<<"$(dpkg -s "$p" 2>/dev/null)" || printf '%s\n' "$p"
  done
}
if ((install)); then
  mapfile -t miss_req < <(missing_of "${required[@]}")
  mapfile -t miss_opt < <(missing_of "${optional[@]}")
  if ((${#miss_req[@]} + ${#miss_opt[@]})); then
    log "installing ${miss_req[*]} ${miss_opt[*]}"
    sudo=()
    if ((EUID != 0)); then
      command -v sudo >/dev/null || { echo "bench.sh: need root or sudo to install packages" >&2; exit 1; }
      sudo=(sudo -n)
    fi
    apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
    # Another apt may be running on this shared machine: wait for its lock.
    "${apt[@]}" update -qq
    if ((${#miss_req[@]})); then
      "${apt[@]}" install -y -qq --no-install-recommends "${miss_req[@]}" </dev/null
    fi
    if ((${#miss_opt[@]})); then
      "${apt[@]}" install -y -qq --no-install-recommends "${miss_opt[@]}" </dev/null \
        || log "could not install ${miss_opt[*]}: going on without (no plots or no profile)"
    fi
  else
    log "all $(( ${#required[@]} + ${#optional[@]} )) packages present"
  fi
fi

# ---- 2. configure and build ------------------------------------------------
# With the root's CALLOUT_BUILD_BENCH option the bench is built as part of the
# project; without it (older trees) bench/ is configured on its own and builds
# the library itself.
if grep -q 'CALLOUT_BUILD_BENCH' CMakeLists.txt; then
  src=.
  cfg=(-DCALLOUT_BUILD_BENCH=ON -DCALLOUT_BUILD_TESTS=OFF -DCALLOUT_BUILD_EXAMPLES=OFF)
else
  src=bench
  cfg=()
fi
if [[ -f "$build_dir/CMakeCache.txt" ]]; then
  home=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build_dir/CMakeCache.txt")
  [[ "$home" == "$(cd "$src" && pwd)" ]] || { log "build dir was configured for $home: starting afresh"; rm -rf "$build_dir"; }
fi
generator=()
[[ -f "$build_dir/CMakeCache.txt" ]] || generator=(-G Ninja)
mkdir -p "$build_dir"
log "configuring $build_dir (source: $src, Release)"
cmake -S "$src" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "${cfg[@]}" >"$build_dir/configure.log" 2>&1 \
  || { cat "$build_dir/configure.log" >&2; exit 1; }
grep 'callout bench:' "$build_dir/configure.log" || true
log "building (-j$jobs)"
cmake --build "$build_dir" -j "$jobs" --target callout-peers callout-bench callout-mono-bench

bin_of() { find "$build_dir" -name "$1" -type f -perm -u+x | head -1; }
peers=$(bin_of callout-peers)
gbench=$(bin_of callout-bench)
mono=$(bin_of callout-mono-bench)
res="$build_dir/results"
rm -rf "$res"
mkdir -p "$res"

# ---- 3. run ------------------------------------------------------------------
if ((quick)); then
  sizes=1000,100000; big=0; reps=3; w4n=10000
  gb_sizes=1000,100000; gb_args=(--benchmark_min_time=0.05 --benchmark_repetitions=1)
  idle_s=3; late_count=20000; late_s=2; cv_count=500; scale_ops=1000000; scale_reps=3; load_s=3
  prof_n=100000
else
  sizes=1000,100000,1000000; big=10000000; reps=5; w4n=100000
  gb_sizes=1000,10000,100000,1000000,10000000
  gb_args=(--benchmark_min_time=0.2 --benchmark_repetitions=3 --benchmark_report_aggregates_only=true)
  idle_s=10; late_count=100000; late_s=10; cv_count=2000; scale_ops=4000000; scale_reps=5; load_s=8
  prof_n=1000000
fi

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  echo "cpus: $(nproc)"
  lscpu | sed -n 's/^\(L1d\|L1i\|L2\|L3\) cache:[[:space:]]*/\1: /p'
  echo "hypervisor: $(lscpu | sed -n 's/^Hypervisor vendor:[[:space:]]*//p')"
  echo "kernel: $(uname -r)"
  echo "compiler: $(c++ --version | head -1)"
  echo "clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null)"
  echo "loadavg_start: $(cut -d' ' -f1-3 /proc/loadavg)"
  for p in libevent-dev libuv1-dev libboost-dev libdpdk-dev libbenchmark-dev; do
    echo "pkg $p: $(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo missing)"
  done
  echo "pinned_cpu: $cpu"
  echo "quick: $quick"
} >"$res/machine.txt"
"$peers" list >"$res/libs.tsv"

# The monotonic-clock measurements first: lateness and idle want a quiet
# machine, and the heavy runs below would only add to the noise.
log "idle cost (${idle_s}s + ${idle_s}s)"
"$mono" idle --seconds "$idle_s" >"$res/mono_idle.json"
log "lateness: $late_count callouts over ${late_s}s, and the timed condvar reference"
"$mono" lateness --count "$late_count" --seconds "$late_s" >"$res/mono_lateness.json"
"$mono" cvwait --count "$cv_count" >"$res/mono_cvwait.json"
log "lateness under the demo's load, beside a clock_nanosleep oracle: 10^5 and 10^6 connections"
"$mono" load --connections 100000 --seconds "$load_s" --warmup 3 >"$res/mono_load_1e5.json"
if ((!quick)); then
  # 10^6 connections at the demo's 2.5 s keepalive and 10^6 events/s would
  # fire ~300 000 handlers a second: more than two CPUs do.  A 25 s
  # keepalive and 3*10^5 events/s keep it near the 10^5 run's rate.
  "$mono" load --connections 1000000 --keep-ms 25000 --rate 300000 --seconds "$load_s" --warmup 3 \
    >"$res/mono_load_1e6.json"
  # Placement and policy of the softclock threads: the 10^5 load in the
  # eight combinations of background spinners, pinning and SCHED_FIFO, one
  # round (bench/placement.sh; about two minutes).
  log "placement and policy under a background load: one round of bench/placement.sh"
  bench/placement.sh "$mono" "$res/mono_placement.jsonl" 1 "$load_s" >"$res/placement.txt"
fi
log "precision windows: $late_count callouts over ${late_s}s, without and with 10% slack"
"$mono" window --count "$late_count" --seconds "$late_s" --slack 10 >"$res/mono_window.json"
log "memory"
"$mono" memory >"$res/mono_memory.json"
log "scaling (reset+stop, 1 vs 2 threads, and the cross-CPU mix)"
"$mono" scaling --ops "$scale_ops" --reps "$scale_reps" >"$res/mono_scaling.json"

log "peer comparison: N = $sizes (+ ${big} for libcallout alone, 0: none), $reps repetitions, pinned to CPU $cpu"
"$peers" all --out "$res/peers.jsonl" --reps "$reps" --sizes "$sizes" --big "$big" --w4-n "$w4n" \
  --cpu "$cpu" --log "$res/peers.stderr.log"

log "Google Benchmark suite (N = $gb_sizes), pinned to CPU $cpu"
taskset -c "$cpu" "$gbench" --sizes="$gb_sizes" "${gb_args[@]}" \
  --benchmark_out="$res/gbench.json" --benchmark_out_format=json >"$res/gbench.txt" 2>&1 \
  || { tail -20 "$res/gbench.txt" >&2; exit 1; }

# ---- 4. profile --------------------------------------------------------------
# perf with the cpu-clock software event works in VMs without hardware
# counters; callgrind is the fallback.
if ((profile)); then
  if command -v perf >/dev/null && perf record -e cpu-clock -o "$res/perf.probe" -- true >/dev/null 2>&1; then
    for w in W1 W2 W3; do
      log "profiling libcallout (manual clock) $w at N=$prof_n with perf"
      perf record -e cpu-clock -F 4000 -g -o "$res/perf.$w.data" -- \
        "$peers" one --lib callout-manual --workload "$w" --n "$prof_n" --cpu "$cpu" >"$res/profile.$w.result" 2>/dev/null
      perf report -i "$res/perf.$w.data" --stdio --no-children --sort sym --percent-limit 1.5 -g none 2>/dev/null \
        | grep -E '^ +[0-9]' >"$res/profile.$w.txt" || true
    done
    log "profiling libcallout (monotonic clock) W2 at N=$prof_n with perf"
    perf record -e cpu-clock -F 4000 -g -o "$res/perf.W2mono.data" -- \
      "$peers" one --lib callout-mono --workload W2 --n "$prof_n" --cpu "$cpu" >"$res/profile.W2mono.result" 2>/dev/null
    perf report -i "$res/perf.W2mono.data" --stdio --no-children --sort sym --percent-limit 1.5 -g none 2>/dev/null \
      | grep -E '^ +[0-9]' >"$res/profile.W2mono.txt" || true
    echo perf >"$res/profile.tool"
    rm -f "$res"/perf.*.data "$res/perf.probe"
  elif command -v valgrind >/dev/null; then
    for w in W1 W2 W3; do
      log "profiling libcallout (manual clock) $w at N=100000 with callgrind"
      valgrind --tool=callgrind --callgrind-out-file="$res/callgrind.$w" \
        "$peers" one --lib callout-manual --workload "$w" --n 100000 --cpu "$cpu" >"$res/profile.$w.result" 2>/dev/null
      callgrind_annotate "$res/callgrind.$w" 2>/dev/null | sed -n '/Ir/,$p' | head -25 >"$res/profile.$w.txt" || true
    done
    echo callgrind >"$res/profile.tool"
  fi
fi

# ---- 5. report -----------------------------------------------------------------
end_s=$(date +%s)
echo "loadavg_end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$res/machine.txt"
echo "runtime_s: $((end_s - start_s))" >>"$res/machine.txt"
echo "command: scripts/bench.sh${args_text:+ $args_text}" >>"$res/machine.txt"
if ((write_docs)); then
  out=docs/PERFORMANCE.md; plots=docs/perf
else
  out="$build_dir/PERFORMANCE.md"; plots="$build_dir/perf"
fi
log "writing $out and the plots in $plots/"
python3 bench/report.py --results "$res" --out "$out" --plots "$plots" --notes bench/analysis.md
log "done in $(( $(date +%s) - start_s ))s"
