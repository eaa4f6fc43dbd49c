// workloads.h -- the four workloads of the peer comparison, written once as
// templates over an adapter, so that every library runs the very same code
// with its calls inlined (an adapter is a thin class around one library).
//
// W1  arm N timers with random timeouts in [1 ms, 10 s], then cancel all in
//     random order: CPU ns per arm, per cancel.
// W2  N timers armed at [1 s, 10 s]; 10*N times, re-arm a random one to
//     now + [1 s, 10 s] (the TCP retransmit pattern): CPU ns per re-arm.
//     To bound the run time, W2 stops early once it has spent kW2CapNs of
//     CPU time (at least one chunk of 65536 re-arms is always done).  The
//     timers start at random due times and every re-arm picks a random timer
//     and a random new time, so the state is stationary from the first
//     re-arm on and the mean cost per re-arm does not depend on how many are
//     done; the JSON line says how many were.  (Nearly: the share of re-arms
//     that take libcallout's lazy path grows over the first few N re-arms,
//     so a slowed-down run -- under callgrind -- that stops earlier is not
//     comparable.  CALLOUT_BENCH_W2_NO_CAP=1 in the environment turns the
//     cap off, always 10*N re-arms: for instruction-count A/B runs.)
// W3  N timers due in [1 ms, 100 ms]; run until all fired: CPU ns per fired
//     timer (trivial handler: it counts), in two forms:
//     W3   batch / virtual time: the peers sleep (untimed) until every
//          deadline has passed, then dispatch; libcallout's manual domain
//          advances 100 ticks.  The cost of expiry processing alone.
//     W3rt real time: arm, then run the library's own blocking loop until
//          all fired (it sleeps until each next deadline, as a program
//          would); libcallout on the monotonic clock.  Expiry plus the
//          wake-ups the clock needs.
// W4  (allocation counting on) bytes the program holds per armed timer, and
//     allocations per arm, cancel, re-arm and fired timer.
//
// Every number is CPU time of the whole process (CLOCK_PROCESS_CPUTIME_ID),
// which counts the library's own threads and not the time other processes
// on this shared machine took from us.  The random sequences come from one
// fixed seed and are generated outside the timed regions.
//
// The adapter concept (duck-typed):
//   static constexpr const char *kName;
//   bool init(std::string *err);              library start-up, untimed
//   void create(std::size_t n);               n idle timer objects, untimed
//   void arm(std::uint32_t i, std::uint32_t ms);    i idle -> pending
//   void cancel(std::uint32_t i);                   i pending -> idle
//   void rearm(std::uint32_t i, std::uint32_t ms);  i pending -> pending at now + ms
//   void flush();            after each chunk of cancels/re-arms (timed)
//   std::uint64_t w3(const std::vector<std::uint32_t> &ms);  arms timer i at
//       ms[i], makes all fire (batch), returns the CPU ns of the firing (not
//       the arming)
//   std::uint64_t w3rt(const std::vector<std::uint32_t> &ms);  the same,
//       real time (its blocking loop)
//   std::uint64_t fired() const;
// An adapter without one of w3/w3rt is left out of that table.
#ifndef CALLOUT_BENCH_PEERS_WORKLOADS_H
#define CALLOUT_BENCH_PEERS_WORKLOADS_H

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "../common/alloc_count.h"
#include "../common/bench_util.h"

namespace peers {

struct RunArgs {
  std::string lib;
  std::string workload;  // W1 W2 W3 W3rt W4
  std::uint64_t n = 1000;
  std::uint64_t seed = 42;
  int cpu = 0;
};

struct Result {
  bool ok = true;
  std::string error;
  double arm_ns = -1, cancel_ns = -1, rearm_ns = -1, fire_ns = -1, fire_rt_ns = -1;
  double bytes_per_timer = -1;
  double rearms = -1;  // W2: re-arms done
  double allocs_arm = -1, allocs_cancel = -1, allocs_rearm = -1, allocs_fire = -1;
};

void print_result(const RunArgs &a, const Result &r);

constexpr std::uint32_t kChunk = 1u << 16;         // ops generated, then timed, at a time
constexpr std::uint32_t kW3MaxMs = 100;            // W3 timeouts are in [1, kW3MaxMs] ms
constexpr std::uint64_t kW2CapNs = 1'500'000'000;  // W2 stops early past this much CPU time

inline std::vector<std::uint32_t> random_ms(std::size_t n, std::uint32_t lo, std::uint32_t hi,
                                            bench::SplitMix64 &rng) {
  std::vector<std::uint32_t> v(n);
  for (auto &x : v) x = rng.range(lo, hi);
  return v;
}

// Sleeps past every deadline of a batch armed before `armed_ns` with
// timeouts up to max_ms, then runs dispatch(), which returns once every timer
// has fired.  Returns the process CPU time of the dispatching only.
template <class F>
std::uint64_t batch_w3(std::uint64_t armed_ns, std::uint32_t max_ms, F dispatch) {
  bench::sleep_until_ns(armed_ns + (max_ms + 2ull) * 1'000'000ull);
  const std::uint64_t t0 = bench::process_cpu_ns();
  dispatch();
  return bench::process_cpu_ns() - t0;
}

template <class A>
Result w1(A &a, const RunArgs &args) {
  bench::SplitMix64 rng(args.seed);
  const std::size_t n = args.n;
  const auto ms = random_ms(n, 1, 10'000, rng);
  const auto perm = bench::permutation(n, rng);
  a.create(n);
  Result r;
  std::uint64_t t0 = bench::process_cpu_ns();
  for (std::size_t i = 0; i < n; ++i) a.arm(static_cast<std::uint32_t>(i), ms[i]);
  std::uint64_t t1 = bench::process_cpu_ns();
  for (std::size_t i = 0; i < n; ++i) a.cancel(perm[i]);
  a.flush();
  std::uint64_t t2 = bench::process_cpu_ns();
  r.arm_ns = static_cast<double>(t1 - t0) / static_cast<double>(n);
  r.cancel_ns = static_cast<double>(t2 - t1) / static_cast<double>(n);
  return r;
}

template <class A>
Result w2(A &a, const RunArgs &args, std::uint64_t rearms_per_timer = 10) {
  bench::SplitMix64 rng(args.seed);
  const std::size_t n = args.n;
  a.create(n);
  {
    const auto ms = random_ms(n, 1'000, 10'000, rng);
    for (std::size_t i = 0; i < n; ++i) a.arm(static_cast<std::uint32_t>(i), ms[i]);
  }
  const std::uint64_t total = rearms_per_timer * n;
  const char *env = std::getenv("CALLOUT_BENCH_W2_NO_CAP");
  const bool no_cap = env != nullptr && env[0] == '1';
  std::vector<std::uint32_t> idx(kChunk), ms(kChunk);
  std::uint64_t spent = 0, done = 0;
  while (done < total) {
    const std::uint32_t k = static_cast<std::uint32_t>(std::min<std::uint64_t>(kChunk, total - done));
    for (std::uint32_t j = 0; j < k; ++j) {
      idx[j] = rng.range(0, static_cast<std::uint32_t>(n - 1));
      ms[j] = rng.range(1'000, 10'000);
    }
    const std::uint64_t t0 = bench::process_cpu_ns();
    for (std::uint32_t j = 0; j < k; ++j) a.rearm(idx[j], ms[j]);
    a.flush();
    spent += bench::process_cpu_ns() - t0;
    done += k;
    if (spent > kW2CapNs && !no_cap) break;
  }
  Result r;
  r.rearm_ns = static_cast<double>(spent) / static_cast<double>(done);
  r.rearms = static_cast<double>(done);
  return r;
}

template <class A>
concept HasBatch = requires(A &a, const std::vector<std::uint32_t> &ms) {
  a.w3(ms);
};
template <class A>
concept HasRealtime = requires(A &a, const std::vector<std::uint32_t> &ms) {
  a.w3rt(ms);
};

// Fires a batch whichever way the adapter can (W4 counts its allocations).
template <class A>
std::uint64_t fire_any(A &a, const std::vector<std::uint32_t> &ms) {
  if constexpr (HasBatch<A>)
    return a.w3(ms);
  else
    return a.w3rt(ms);
}

template <class A>
Result w3(A &a, const RunArgs &args, bool realtime) {
  bench::SplitMix64 rng(args.seed);
  const std::size_t n = args.n;
  const auto ms = random_ms(n, 1, kW3MaxMs, rng);
  Result r;
  std::uint64_t spent = 0;
  if (realtime) {
    if constexpr (HasRealtime<A>) {
      a.create(n);
      spent = a.w3rt(ms);
    } else {
      r.ok = false;
      r.error = "unsupported: no real-time loop";
      return r;
    }
  } else {
    if constexpr (HasBatch<A>) {
      a.create(n);
      spent = a.w3(ms);
    } else {
      r.ok = false;
      r.error = "unsupported: no batch dispatch";
      return r;
    }
  }
  if (a.fired() != n) {
    r.ok = false;
    r.error = "W3: " + std::to_string(a.fired()) + " of " + std::to_string(n) + " timers fired";
    return r;
  }
  (realtime ? r.fire_rt_ns : r.fire_ns) = static_cast<double>(spent) / static_cast<double>(n);
  return r;
}

// W4: the same operations with the allocation counter on.  The library was
// initialised (event base, domain) before; its fixed overhead is not per
// timer and is not counted here.
template <class A>
Result w4(A &a, const RunArgs &args) {
  namespace al = bench::alloc;
  bench::SplitMix64 rng(args.seed);
  const std::size_t n = args.n;
  const auto ms = random_ms(n, 1, 10'000, rng);
  const auto perm = bench::permutation(n, rng);
  std::vector<std::uint32_t> idx(2 * n), ms2(2 * n);
  for (std::size_t j = 0; j < 2 * n; ++j) {
    idx[j] = rng.range(0, static_cast<std::uint32_t>(n - 1));
    ms2[j] = rng.range(1'000, 10'000);
  }
  const auto ms3 = random_ms(n, 1, kW3MaxMs, rng);
  Result r;
  al::enable(true);
  const al::Snapshot s0 = al::snapshot();
  a.create(n);
  const al::Snapshot s1 = al::snapshot();
  for (std::size_t i = 0; i < n; ++i) a.arm(static_cast<std::uint32_t>(i), ms[i]);
  const al::Snapshot s2 = al::snapshot();
  r.bytes_per_timer = static_cast<double>(s2.live - s0.live) / static_cast<double>(n);
  r.allocs_arm = static_cast<double>(s2.allocs - s1.allocs) / static_cast<double>(n);
  for (std::size_t i = 0; i < n; ++i) a.cancel(perm[i]);
  a.flush();
  const al::Snapshot s3 = al::snapshot();
  r.allocs_cancel = static_cast<double>(s3.allocs - s2.allocs) / static_cast<double>(n);
  for (std::size_t i = 0; i < n; ++i) a.arm(static_cast<std::uint32_t>(i), ms[i]);
  const al::Snapshot s4 = al::snapshot();
  for (std::size_t j = 0; j < 2 * n; ++j) a.rearm(idx[j], ms2[j]);
  a.flush();
  const al::Snapshot s5 = al::snapshot();
  r.allocs_rearm = static_cast<double>(s5.allocs - s4.allocs) / static_cast<double>(2 * n);
  for (std::size_t i = 0; i < n; ++i) a.cancel(static_cast<std::uint32_t>(i));
  a.flush();
  const std::uint64_t fired_before = a.fired();
  const al::Snapshot s6 = al::snapshot();
  fire_any(a, ms3);
  const al::Snapshot s7 = al::snapshot();
  const std::uint64_t fired = a.fired() - fired_before;
  r.allocs_fire = fired ? static_cast<double>(s7.allocs - s6.allocs) / static_cast<double>(fired) : -1;
  al::enable(false);
  return r;
}

// Runs the workload named in args on a freshly initialised adapter.
template <class A>
Result run(const RunArgs &args) {
  A a;
  std::string err;
  if (!a.init(&err)) {
    Result r;
    r.ok = false;
    r.error = "init: " + err;
    return r;
  }
  if (args.workload == "W1") return w1(a, args);
  if (args.workload == "W2") return w2(a, args);
  if (args.workload == "W3") return w3(a, args, false);
  if (args.workload == "W3rt") return w3(a, args, true);
  if (args.workload == "W4") return w4(a, args);
  Result r;
  r.ok = false;
  r.error = "unknown workload " + args.workload;
  return r;
}

// One library (or one configuration of it) in the comparison.
struct Lib {
  const char *name;
  const char *label;    // row label in the report
  bool thread_safe;     // arm/cancel may be called from any thread
  bool is_callout;      // libcallout itself (not a "best library" candidate)
  std::uint64_t max_n;  // largest N it is run at
  Result (*run)(const RunArgs &);
};

// Each adapter translation unit appends its libraries.
void register_callout(std::vector<Lib> &);
void register_baselines(std::vector<Lib> &);
void register_libevent(std::vector<Lib> &);
void register_libuv(std::vector<Lib> &);
void register_asio(std::vector<Lib> &);
void register_dpdk(std::vector<Lib> &);

// The process-wide arguments, for adapters that need them (DPDK's lcore).
const RunArgs &current_args();

}  // namespace peers

#endif  // CALLOUT_BENCH_PEERS_WORKLOADS_H
