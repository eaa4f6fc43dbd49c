// callout_bench.cpp -- libcallout's own micro-benchmarks (Google Benchmark).
//
// Every benchmark works on N callouts (N = 10^3 ... 10^7) and times whole
// passes of N operations in a random order, measured in process CPU time
// (manual timing; one clock read per pass).  Between two timed passes an
// untimed step puts the callouts back in the state the operation needs, so
// that every timed operation takes the path the benchmark is named after.
// The reported time is per pass; the "ns_per_op" counter (and
// docs/PERFORMANCE.md) divide it by N.
//
// Three layers, the same operations:
//   wheel/...   the timing wheel alone (src/wheel.h), no lock, no API;
//   locked/...  the wheel with the CPU's SpinLock taken around each
//               operation: what MP-safety costs;
//   api/...     the public C API on a manual-clock domain with one CPU (the
//               lock, the magic check, finding the callout's CPU, the state
//               flags, the clock read, the counters).
// Operations:
//   reset          arm an idle callout (random 1..10000 ticks)
//   stop           cancel a pending callout
//   reset_later    push a pending callout later (the lazy path: only its due
//                  tick changes)
//   reset_earlier  pull a pending callout earlier, to another bucket (a real
//                  move: unlink and insert)
//   rearm_random   W2 of the peer comparison: a random pending callout to a
//                  random 1000..10000 ticks (lazy or not, as it comes)
//   fire           N callouts due within 100 ticks, then advance 100 ticks:
//                  time per fired callout (api: handlers run on the CPU's
//                  softclock thread; wheel/locked: popped and called inline)
//   fire_lookahead wheel/fire with the lookahead the dispatch loop runs (a
//                  second walk of the expired list from its tail, one node
//                  per pop; wheel.h): what it saves on the walk alone
//   halt_idle      callout_halt of a pending callout that is not running
//   pending        callout_pending (a predicate: one atomic load)
//   ticks          callout_domain_ticks on a manual domain (an atomic load)
//                  and, as ticks_monotonic, on a monotonic one (a clock read:
//                  every reset on that clock pays it once)
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "callout/callout.h"
#include "common/bench_util.h"
#include "lock.h"
#include "wheel.h"

namespace {

using libcallout::internal::SpinLock;
using libcallout::internal::Wheel;
using libcallout::internal::WheelNode;

constexpr std::uint64_t kSeed = 42;
constexpr int kNear = 1000;      // "near" due ticks: 1..kNear
constexpr int kFarLo = 100'000;  // "far" due ticks: kFarLo..kFarHi
constexpr int kFarHi = 200'000;

std::uint64_t g_fired = 0;  // handlers bump it (api: only the softclock thread)
void on_fire(void *) { g_fired = g_fired + 1; }

// The random material of one N, shared by every layer.
struct Material {
  std::size_t n = 0;
  std::vector<std::uint32_t> perm;        // a random order of 0..n-1
  std::vector<std::uint32_t> near;        // per callout, 1..kNear
  std::vector<std::uint32_t> far;         // per callout, kFarLo..kFarHi
  std::vector<std::uint32_t> rand_idx;    // n random callout indices
  std::vector<std::uint32_t> rand_ticks;  // n random 1000..10000
  std::vector<std::uint32_t> w3;          // per callout, 1..100
  std::vector<std::uint32_t> arm;         // per callout, 1..10000
};

Material &material(std::size_t n) {
  static std::unique_ptr<Material> m;
  if (!m || m->n != n) {
    m.reset();
    m = std::make_unique<Material>();
    bench::SplitMix64 rng(kSeed);
    m->n = n;
    m->perm = bench::permutation(n, rng);
    auto fill = [&](std::vector<std::uint32_t> &v, std::uint32_t lo, std::uint32_t hi) {
      v.resize(n);
      for (auto &x : v) x = rng.range(lo, hi);
    };
    fill(m->near, 1, kNear);
    fill(m->far, kFarLo, kFarHi);
    fill(m->rand_idx, 0, static_cast<std::uint32_t>(n - 1));
    fill(m->rand_ticks, 1000, 10000);
    fill(m->w3, 1, 100);
    fill(m->arm, 1, 10000);
  }
  return *m;
}

// ---- the API layer: a manual domain with N callouts ---------------------
struct ApiWorld {
  std::size_t n = 0;
  callout_domain_t *d = nullptr;
  std::unique_ptr<callout_t[]> c;

  explicit ApiWorld(std::size_t n_) : n(n_) {
    callout_domain_config cfg;
    callout_domain_config_init(&cfg);
    cfg.ncpu = 1;
    cfg.clock = CALLOUT_CLOCK_MANUAL;
    if (callout_domain_create(&cfg, &d) != 0) std::abort();
    c.reset(new callout_t[n]);
    for (std::size_t i = 0; i < n; ++i) callout_init_domain(&c[i], CALLOUT_MPSAFE, d);
  }
  ~ApiWorld() {
    for (std::size_t i = 0; i < n; ++i) callout_halt(&c[i], nullptr);
    for (std::size_t i = 0; i < n; ++i) callout_destroy(&c[i]);
    callout_domain_destroy(d);
  }
  void arm_all(const std::vector<std::uint32_t> &ticks) {
    for (std::size_t i = 0; i < n; ++i) callout_reset(&c[i], static_cast<int>(ticks[i]), on_fire, nullptr);
  }
  void stop_all() {
    for (std::size_t i = 0; i < n; ++i) callout_stop(&c[i]);
  }
};

ApiWorld &api_world(std::size_t n) {
  static std::unique_ptr<ApiWorld> w;
  if (!w || w->n != n) {
    w.reset();
    w = std::make_unique<ApiWorld>(n);
  }
  w->stop_all();
  return *w;
}

// ---- the wheel layers ----------------------------------------------------
struct WheelWorld {
  std::size_t n = 0;
  std::unique_ptr<Wheel> w = std::make_unique<Wheel>();
  std::unique_ptr<WheelNode[]> node;
  SpinLock lock;
  explicit WheelWorld(std::size_t n_) : n(n_), node(new WheelNode[n_]) {
    for (std::size_t i = 0; i < n; ++i) node[i] = WheelNode{{nullptr, nullptr}, 0, Wheel::kNowhere};
  }
  void clear() {
    for (std::size_t i = 0; i < n; ++i)
      if (node[i].where != Wheel::kNowhere) w->remove(&node[i]);
  }
};

WheelWorld &wheel_world(std::size_t n) {
  static std::unique_ptr<WheelWorld> w;
  if (!w || w->n != n) {
    w.reset();
    w = std::make_unique<WheelWorld>(n);
  }
  w->clear();
  return *w;
}

// Runs timed passes until Google Benchmark has enough: `prepare` (untimed)
// puts the callouts in the state `pass` needs; `pass` does N operations.
template <class Prepare, class Pass>
void passes(benchmark::State &state, std::size_t n, Prepare prepare, Pass pass) {
  for (auto _ : state) {
    prepare();
    const std::uint64_t t0 = bench::process_cpu_ns();
    pass();
    const std::uint64_t t1 = bench::process_cpu_ns();
    state.SetIterationTime(static_cast<double>(t1 - t0) * 1e-9);
  }
  state.counters["ns_per_op"] = benchmark::Counter(
      static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["N"] = static_cast<double>(n);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// ---- API benchmarks --------------------------------------------------------
void api_reset(benchmark::State &state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  Material &m = material(n);
  ApiWorld &w = api_world(n);
  passes(
      state, n, [&] { w.stop_all(); },
      [&] {
        for (std::uint32_t i : m.perm) callout_reset(&w.c[i], static_cast<int>(m.arm[i]), on_fire, nullptr);
      });
  w.stop_all();
}

void api_stop(benchmark::State &state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  Material &m = material(n);
  ApiWorld &w = api_world(n);
  passes(
      state, n, [&] { w.arm_all(m.arm); },
      [&] {
        for (std::uint32_t i : m.perm) callout_stop(&w.c[i]);
      });
}

void api_reset_later(benchmark::State &state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  Material &m = material(n);
  ApiWorld &w = api_world(n);
  passes(
      state, n,
      [&] {
        w.stop_all();
        w.arm_all(m.near);
      },
      [&] {
        for (std::uint32_t i : m.perm) callout_reset(&w.c[i], static_cast<int>(m.far[i]), on_fire, nullptr);
      });
  w.stop_all();
}

void api_reset_earlier(benchmark::State &state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  Material &m = material(n);
  ApiWorld &w = api_world(n);
  passes(
      state, n,
      [&] {
        w.stop_all();
        w.arm_all(m.far);
      },
      [&] {
        for (std::uint32_t i : m.perm) callout_reset(&w.c[i], static_cast<int>(m.near[i]), on_fire, nullptr);
      });
  w.stop_all();
}

void api_rearm_random(benchmark::State &state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  Material &m = material(n);
  ApiWorld &w = api_world(n);
  w.arm_all(m.rand_ticks);
  passes(
      state, n, [] {},
      [&] {
        for (std::size_t k = 0; k < n; ++k)
          callout_reset(&w.c[m.rand_idx[k]], static_cast<int>(m.rand_ticks[k]), on_fire, nullptr);
      });
  w.stop_all();
}

void api_fire(benchmark::State &state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  Material &m = material(n);
  ApiWorld &w = api_world(n);
  passes(
      state, n, [&] { w.arm_all(m.w3); }, [&] { callout_domain_advance(w.d, 100); });
}

void api_halt_idle(benchmark::State &state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  Material &m = material(n);
  ApiWorld &w = api_world(n);
  passes(
      state, n, [&] { w.arm_all(m.arm); },
      [&] {
        for (std::uint32_t i : m.perm) callout_halt(&w.c[i], nullptr);
      });
}

void api_pending(benchmark::State &state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  Material &m = material(n);
  ApiWorld &w = api_world(n);
  w.arm_all(m.arm);
  std::size_t count = 0;
  passes(
      state, n, [] {},
      [&] {
        for (std::uint32_t i : m.perm) count += callout_pending(&w.c[i]);
      });
  benchmark::DoNotOptimize(count);
  w.stop_all();
}

void api_ticks(benchmark::State &state, enum callout_clock clock) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  static callout_domain_t *d[2] = {nullptr, nullptr};
  callout_domain_t *&dom = d[clock == CALLOUT_CLOCK_MANUAL];
  if (dom == nullptr) {
    callout_domain_config cfg;
    callout_domain_config_init(&cfg);
    cfg.ncpu = 1;
    cfg.clock = clock;
    if (callout_domain_create(&cfg, &dom) != 0) std::abort();
  }
  std::uint64_t sum = 0;
  passes(
      state, n, [] {},
      [&] {
        for (std::size_t k = 0; k < n; ++k) sum += callout_domain_ticks(dom);
      });
  benchmark::DoNotOptimize(sum);
}
void api_ticks_manual(benchmark::State &state) { api_ticks(state, CALLOUT_CLOCK_MANUAL); }
void api_ticks_monotonic(benchmark::State &state) { api_ticks(state, CALLOUT_CLOCK_MONOTONIC); }

// ---- wheel and locked-wheel benchmarks ------------------------------------
// kLocked: take the SpinLock around each operation, as the API does.
template <bool kLocked>
struct Guard {
  SpinLock &l;
  explicit Guard(SpinLock &l_) : l(l_) {
    if (kLocked) l.lock();
  }
  ~Guard() {
    if (kLocked) l.unlock();
  }
};

template <bool kLocked>
void wheel_reset(benchmark::State &state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  Material &m = material(n);
  WheelWorld &w = wheel_world(n);
  passes(
      state, n, [&] { w.clear(); },
      [&] {
        for (std::uint32_t i : m.perm) {
          Guard<kLocked> g(w.lock);
          w.w->insert(&w.node[i], w.w->now() + m.arm[i]);
        }
      });
  w.clear();
}

template <bool kLocked>
void wheel_stop(benchmark::State &state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  Material &m = material(n);
  WheelWorld &w = wheel_world(n);
  passes(
      state, n,
      [&] {
        w.clear();
        for (std::size_t i = 0; i < n; ++i) w.w->insert(&w.node[i], w.w->now() + m.arm[i]);
      },
      [&] {
        for (std::uint32_t i : m.perm) {
          Guard<kLocked> g(w.lock);
          w.w->remove(&w.node[i]);
        }
      });
}

template <bool kLocked>
void wheel_reset_later(benchmark::State &state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  Material &m = material(n);
  WheelWorld &w = wheel_world(n);
  passes(
      state, n,
      [&] {
        w.clear();
        for (std::size_t i = 0; i < n; ++i) w.w->insert(&w.node[i], w.w->now() + m.near[i]);
      },
      [&] {
        for (std::uint32_t i : m.perm) {
          Guard<kLocked> g(w.lock);
          w.w->reschedule(&w.node[i], w.w->now() + m.far[i]);
        }
      });
  w.clear();
}

template <bool kLocked>
void wheel_reset_earlier(benchmark::State &state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  Material &m = material(n);
  WheelWorld &w = wheel_world(n);
  passes(
      state, n,
      [&] {
        w.clear();
        for (std::size_t i = 0; i < n; ++i) w.w->insert(&w.node[i], w.w->now() + m.far[i]);
      },
      [&] {
        for (std::uint32_t i : m.perm) {
          Guard<kLocked> g(w.lock);
          w.w->reschedule(&w.node[i], w.w->now() + m.near[i]);
        }
      });
  w.clear();
}

template <bool kLocked>
void wheel_rearm_random(benchmark::State &state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  Material &m = material(n);
  WheelWorld &w = wheel_world(n);
  for (std::size_t i = 0; i < n; ++i) w.w->insert(&w.node[i], w.w->now() + m.rand_ticks[i]);
  passes(
      state, n, [] {},
      [&] {
        for (std::size_t k = 0; k < n; ++k) {
          Guard<kLocked> g(w.lock);
          w.w->reschedule(&w.node[m.rand_idx[k]], w.w->now() + m.rand_ticks[k]);
        }
      });
  w.clear();
}

// Fire: advance tick by tick (as the manual domain does, from one next-due
// tick to the next) and pop and call every expired node; kLocked takes the
// lock around each advance and each pop, as the softclock does; kLookahead
// starts the lookahead after each advance and steps it after each pop, as
// run_expired() does.
template <bool kLocked, bool kLookahead = false>
void wheel_fire(benchmark::State &state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  Material &m = material(n);
  WheelWorld &w = wheel_world(n);
  void (*volatile fn)(void *) = on_fire;
  passes(
      state, n,
      [&] {
        for (std::size_t i = 0; i < n; ++i) w.w->insert(&w.node[i], w.w->now() + m.w3[i]);
      },
      [&] {
        const std::uint64_t target = w.w->now() + 100;
        for (;;) {
          std::uint64_t next;
          {
            Guard<kLocked> g(w.lock);
            next = w.w->next_due();
            if (next > target) break;
            w.w->advance(next);
            if (kLookahead) w.w->start_lookahead();
          }
          for (;;) {
            WheelNode *node;
            {
              Guard<kLocked> g(w.lock);
              node = w.w->pop_expired();
              if (kLookahead) w.w->lookahead_step();
            }
            if (node == nullptr) break;
            fn(node);
          }
        }
        Guard<kLocked> g(w.lock);
        w.w->advance(target);
      });
}

void register_all(const std::vector<std::int64_t> &sizes) {
  struct Entry {
    const char *name;
    void (*fn)(benchmark::State &);
  };
  const Entry entries[] = {
      {"wheel/reset", wheel_reset<false>},
      {"locked/reset", wheel_reset<true>},
      {"api/reset", api_reset},
      {"wheel/stop", wheel_stop<false>},
      {"locked/stop", wheel_stop<true>},
      {"api/stop", api_stop},
      {"wheel/reset_later", wheel_reset_later<false>},
      {"locked/reset_later", wheel_reset_later<true>},
      {"api/reset_later", api_reset_later},
      {"wheel/reset_earlier", wheel_reset_earlier<false>},
      {"locked/reset_earlier", wheel_reset_earlier<true>},
      {"api/reset_earlier", api_reset_earlier},
      {"wheel/rearm_random", wheel_rearm_random<false>},
      {"locked/rearm_random", wheel_rearm_random<true>},
      {"api/rearm_random", api_rearm_random},
      {"wheel/fire", wheel_fire<false>},
      {"wheel/fire_lookahead", wheel_fire<false, true>},
      {"locked/fire", wheel_fire<true>},
      {"api/fire", api_fire},
      {"api/halt_idle", api_halt_idle},
      {"api/pending", api_pending},
      {"api/ticks", api_ticks_manual},
      {"api/ticks_monotonic", api_ticks_monotonic},
  };
  // Grouped by N so that each N's callouts are built once.
  for (std::int64_t n : sizes)
    for (const Entry &e : entries)
      benchmark::RegisterBenchmark(e.name, e.fn)->Arg(n)->UseManualTime()->Unit(benchmark::kMicrosecond);
}

}  // namespace

int main(int argc, char **argv) {
  // --sizes=1000,100000 (ours, before Google Benchmark's own flags).
  std::vector<std::int64_t> sizes = {1'000, 10'000, 100'000, 1'000'000, 10'000'000};
  std::vector<char *> rest;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--sizes=", 0) == 0) {
      sizes.clear();
      std::size_t pos = 8;
      while (pos < a.size()) {
        std::size_t comma = a.find(',', pos);
        if (comma == std::string::npos) comma = a.size();
        sizes.push_back(std::stoll(a.substr(pos, comma - pos)));
        pos = comma + 1;
      }
    } else {
      rest.push_back(argv[i]);
    }
  }
  int rest_argc = static_cast<int>(rest.size());
  register_all(sizes);
  benchmark::Initialize(&rest_argc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_argc, rest.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
