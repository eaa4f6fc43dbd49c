// mono_bench.cpp -- libcallout on the monotonic (tickless) clock: what only a
// real clock can show.  Each subcommand prints one JSON object.
//
//   callout-mono-bench scaling  [--ops N] [--reps R]
//       reset+stop throughput: 1 thread; 2 threads on 2 CPUs, each working
//       on callouts homed on its own CPU; 2 threads mixing (every other
//       callout homed on the other CPU).  Wall-clock throughput and
//       throughput per CPU-second (which leaves out time other processes
//       took from us on this shared machine).  Also the cost of reset+stop
//       when the CPU has nothing else pending (each reset then wakes the
//       softclock thread: a futex wake).
//   callout-mono-bench lateness [--count N] [--seconds S] [--nice -10 | --fifo 1]
//       N callouts spread over S seconds at hz 1000; lateness of each
//       handler's start past the start of its due tick: p50/p99/p99.9/max.
//       --nice N / --fifo P: renice the softclock threads first, or make
//       them SCHED_FIFO at priority P from outside, after the domain is
//       created (the load mode's --policy uses the domain's own option,
//       sched_policy, instead); this shows what either buys on a busy
//       machine.
//   callout-mono-bench load     [--connections N] [--seconds S] [--rate R]
//                               [--warmup W] [--cpus C] [--keep-ms K]
//       the demo's traffic (retransmit, delayed-ACK and keepalive callouts
//       per connection, reset/stopped far more often than fired, connections
//       closing and reopening) at N connections (about N pending callouts),
//       R events per second, keepalive idle time K ms (the demo's 2500);
//       after W seconds of warm-up, S seconds in which
//       every handler start's lateness past its due tick's start is recorded
//       exactly, beside an oracle in the same process: a thread with 1 ns of
//       timer slack in clock_nanosleep(TIMER_ABSTIME) to tick starts.
//       p50/p99/p99.9/max of both and their ratios; the longest CPU-lock
//       hold per cause and the waits for the connections' mutexes
//       (callout_domain_stats, over the whole run, warm-up included).
//       Placement and policy of the softclock threads (domain options):
//       [--pin 0|1] [--policy other|fifo|rr] [--priority P (default 10)];
//       [--busy B]: B background processes spinning at nice 0 from before
//       the warm-up to the end (0: none; "cpus": one per online processor).
//   callout-mono-bench window   [--count N] [--seconds S] [--slack PCT]
//       precision windows (callout_reset_window): N callouts spread over S
//       seconds, once with no slack and once with a slack of PCT % of each
//       delay; softclock wake-ups (callout_domain_stats), distinct ticks in
//       which handlers started, handlers started early (must be 0) or past
//       their window (wake-up latency).
//   callout-mono-bench cvwait   [--count N]
//       the reference: a plain pthread_cond_timedwait with random ~1 ms
//       deadlines, with the default timer slack and with 1 ns of slack.
//   callout-mono-bench idle     [--seconds S]
//       wake-ups and CPU time of the softclock threads (read from /proc)
//       over S seconds with no callout pending, then with one callout due in
//       an hour (the wake-up caused by arming it is reported apart).
//   callout-mono-bench memory
//       allocations per operation (interposed allocator), bytes per callout,
//       per-domain and per-CPU overhead (heap, resident, virtual).
#include <dirent.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "callout/callout.h"
#include "common/alloc_count.h"
#include "common/bench_util.h"
#include "common/xorshift.h"

namespace {

std::map<std::string, std::string> g_opt;
std::uint64_t opt_u64(const char *k, std::uint64_t def) {
  auto it = g_opt.find(k);
  return it == g_opt.end() ? def : std::stoull(it->second);
}

callout_domain_t *make_domain(enum callout_clock clock, unsigned ncpu, unsigned hz = 1000) {
  callout_domain_config cfg;
  callout_domain_config_init(&cfg);
  cfg.clock = clock;
  cfg.ncpu = ncpu;
  cfg.hz = hz;
  callout_domain_t *d = nullptr;
  if (int e = callout_domain_create(&cfg, &d); e != 0) {
    std::fprintf(stderr, "callout_domain_create: %s\n", std::strerror(e));
    std::exit(1);
  }
  return d;
}

std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

// ---- scaling ---------------------------------------------------------------

void noop(void *) {}

// Re-arms itself every 100 ticks: keeps the CPU's softclock from sleeping
// longer than 100 ms, as any busy system's other timers would; without it
// every reset earlier than the softclock's wake-up tick must wake it.
void sentinel(void *arg) { callout_schedule(static_cast<callout_t *>(arg), 100); }

struct ThreadResult {
  std::uint64_t ops = 0;
  std::uint64_t wall_ns = 0;
  std::uint64_t cpu_ns = 0;
};

struct ScalingSetup {
  callout_domain_t *d;
  static constexpr std::size_t kPerThread = 4096;
  // pool[t] holds thread t's callouts; with `mix`, odd ones are homed on
  // the other CPU.
  std::unique_ptr<callout_t[]> pool[2][2];  // [thread][0: own CPU, 1: other CPU]
  std::vector<std::uint32_t> ticks;
};

ThreadResult scaling_thread(ScalingSetup &s, int t, bool mix, std::uint64_t ops, std::atomic<int> &ready,
                            std::atomic<bool> &go) {
  bench::pin_to_cpu(t);
  ready.fetch_add(1);
  while (!go.load(std::memory_order_acquire)) {
  }
  callout_t *own = s.pool[t][0].get();
  callout_t *other = s.pool[t][1].get();
  const std::uint32_t *ticks = s.ticks.data();
  const std::size_t mask = ScalingSetup::kPerThread - 1;
  const std::uint64_t w0 = bench::mono_ns();
  const std::uint64_t c0 = bench::thread_cpu_ns();
  for (std::uint64_t k = 0; k < ops; ++k) {
    callout_t *c = (mix && (k & 1)) ? &other[k & mask] : &own[k & mask];
    callout_reset(c, static_cast<int>(ticks[k & 65535]), noop, nullptr);
    callout_stop(c);
  }
  ThreadResult r;
  r.ops = ops;
  r.cpu_ns = bench::thread_cpu_ns() - c0;
  r.wall_ns = bench::mono_ns() - w0;
  return r;
}

// Runs `threads` threads (1 or 2) for `ops` reset+stop pairs each.
// Returns {wall ops/s, CPU-normalised ops/s}.
std::pair<double, double> scaling_run(ScalingSetup &s, int threads, bool mix, std::uint64_t ops) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  ThreadResult res[2];
  std::vector<std::thread> th;
  for (int t = 0; t < threads; ++t)
    th.emplace_back([&, t] { res[t] = scaling_thread(s, t, mix, ops, ready, go); });
  while (ready.load() < threads) {
  }
  go.store(true, std::memory_order_release);
  for (auto &x : th) x.join();
  std::uint64_t wall = 0;
  double per_cpu = 0;
  std::uint64_t total = 0;
  for (int t = 0; t < threads; ++t) {
    wall = std::max(wall, res[t].wall_ns);
    per_cpu += static_cast<double>(res[t].ops) / (static_cast<double>(res[t].cpu_ns) * 1e-9);
    total += res[t].ops;
  }
  return {static_cast<double>(total) / (static_cast<double>(wall) * 1e-9), per_cpu};
}

int cmd_scaling() {
  const std::uint64_t ops = opt_u64("ops", 4'000'000);
  const int reps = static_cast<int>(opt_u64("reps", 5));
  ScalingSetup s;
  s.d = make_domain(CALLOUT_CLOCK_MONOTONIC, 2);
  bench::SplitMix64 rng(42);
  s.ticks.resize(65536);
  for (auto &x : s.ticks) x = rng.range(1000, 10000);
  for (int t = 0; t < 2; ++t)
    for (int o = 0; o < 2; ++o) {
      s.pool[t][o].reset(new callout_t[ScalingSetup::kPerThread]);
      for (std::size_t i = 0; i < ScalingSetup::kPerThread; ++i) {
        callout_init_domain(&s.pool[t][o][i], CALLOUT_MPSAFE, s.d);
        callout_bind(&s.pool[t][o][i], static_cast<unsigned>(o == 0 ? t : 1 - t));
      }
    }

  // Reset+stop with nothing else pending on the CPU: every reset is earlier
  // than the (absent) next wake-up and must kick the softclock.
  double empty_ns;
  {
    bench::pin_to_cpu(0);
    callout_t *c = &s.pool[0][0][0];
    const std::uint64_t k = std::min<std::uint64_t>(ops / 20, 100'000);
    const std::uint64_t c0 = bench::process_cpu_ns();
    for (std::uint64_t i = 0; i < k; ++i) {
      callout_reset(c, 1000, noop, nullptr);
      callout_stop(c);
    }
    empty_ns = static_cast<double>(bench::process_cpu_ns() - c0) / static_cast<double>(k);
  }

  callout_t sent[2];
  for (unsigned t = 0; t < 2; ++t) {
    callout_init_domain(&sent[t], CALLOUT_MPSAFE, s.d);
    callout_bind(&sent[t], t);
    callout_reset(&sent[t], 100, sentinel, &sent[t]);
  }
  bench::sleep_ns(200'000'000);

  std::vector<double> one_w, two_w, mix_w, one_c, two_c, mix_c;
  for (int r = 0; r < reps; ++r) {
    auto a = scaling_run(s, 1, false, ops);
    auto b = scaling_run(s, 2, false, ops);
    auto c = scaling_run(s, 2, true, ops);
    one_w.push_back(a.first);
    one_c.push_back(a.second);
    two_w.push_back(b.first);
    two_c.push_back(b.second);
    mix_w.push_back(c.first);
    mix_c.push_back(c.second);
  }
  // The same with a single reset+stop pair but a sentinel present: what the
  // empty-CPU case above is compared with.
  double busy_ns;
  {
    bench::pin_to_cpu(0);
    callout_t *c = &s.pool[0][0][0];
    const std::uint64_t k = std::min<std::uint64_t>(ops / 20, 100'000);
    const std::uint64_t c0 = bench::process_cpu_ns();
    for (std::uint64_t i = 0; i < k; ++i) {
      callout_reset(c, 1000, noop, nullptr);
      callout_stop(c);
    }
    busy_ns = static_cast<double>(bench::process_cpu_ns() - c0) / static_cast<double>(k);
  }
  for (unsigned t = 0; t < 2; ++t) {
    callout_halt(&sent[t], nullptr);
    callout_destroy(&sent[t]);
  }

  const double m1w = bench::median(one_w), m2w = bench::median(two_w), mmw = bench::median(mix_w);
  const double m1c = bench::median(one_c), m2c = bench::median(two_c), mmc = bench::median(mix_c);
  std::printf(
      "{\"ops_per_thread\":%llu,\"reps\":%d,\"loadavg\":\"%s\","
      "\"one_thread_ops_s\":%.0f,\"two_threads_ops_s\":%.0f,\"mix_ops_s\":%.0f,"
      "\"two_over_one\":%.3f,\"mix_over_one\":%.3f,"
      "\"one_thread_ops_cpu_s\":%.0f,\"two_threads_ops_cpu_s\":%.0f,\"mix_ops_cpu_s\":%.0f,"
      "\"two_over_one_cpu\":%.3f,\"mix_over_one_cpu\":%.3f,"
      "\"empty_cpu_reset_stop_ns\":%.1f,\"busy_cpu_reset_stop_ns\":%.1f}\n",
      static_cast<unsigned long long>(ops), reps, loadavg().c_str(), m1w, m2w, mmw, m2w / m1w, mmw / m1w, m1c,
      m2c, mmc, m2c / m1c, mmc / m1c, empty_ns, busy_ns);
  return 0;
}

// ---- lateness --------------------------------------------------------------

struct TaskStat {
  std::uint64_t run_ns = 0, wait_ns = 0, slices = 0, csw = 0;
};
std::map<int, TaskStat> softclock_stats();

// The kernel's CPU pressure counter (/proc/pressure/cpu, "some total", µs):
// how long at least one task waited for a CPU.  0 if unavailable.
std::uint64_t cpu_pressure_us() {
  std::ifstream f("/proc/pressure/cpu");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("some", 0) != 0) continue;
    const std::size_t at = line.find("total=");
    if (at != std::string::npos) return std::stoull(line.substr(at + 6));
  }
  return 0;
}

// Time the hypervisor ran something else on this machine's processors
// ("steal" in /proc/stat, all processors summed), in ns; 0 on bare metal or
// if unavailable.  A vCPU descheduled by the host stops every thread on it
// without a context switch in the guest: a lock holder's hold, and any
// thread's lateness, grow by the stolen time.
std::uint64_t steal_ns() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  std::uint64_t v[8] = {};
  if (!(f >> cpu) || cpu != "cpu") return 0;
  for (std::uint64_t &x : v) f >> x;  // user nice system idle iowait irq softirq steal
  return v[7] * (1'000'000'000ull / static_cast<std::uint64_t>(sysconf(_SC_CLK_TCK)));
}

struct LateSlot {
  std::uint64_t ran_ns;
};
void record(void *arg) { static_cast<LateSlot *>(arg)->ran_ns = bench::mono_ns(); }

// The CLOCK_MONOTONIC instant at which tick 0 of d began.  Watch for the
// tick to change: the new tick began between the clock read before the last
// tick read that saw the old value and the clock read after the first that
// sees the new one.  Of several rounds keep the narrowest such window (a
// round in which we were preempted has a wide one).
double tick_origin_ns(callout_domain_t *d) {
  const double ns_per_tick = 1e9 / callout_domain_hz(d);
  double best = 0, best_width = 0;
  for (int round = 0; round < 20; ++round) {
    std::uint64_t before_old = bench::mono_ns();
    const std::uint64_t k0 = callout_domain_ticks(d);
    for (;;) {
      const std::uint64_t t_before = bench::mono_ns();
      const std::uint64_t k = callout_domain_ticks(d);
      const std::uint64_t t_after = bench::mono_ns();
      if (k != k0) {
        const double width = static_cast<double>(t_after - before_old);
        const double boundary = (static_cast<double>(before_old) + static_cast<double>(t_after)) / 2;
        if (round == 0 || width < best_width) {
          best_width = width;
          best = boundary - static_cast<double>(k) * ns_per_tick;
        }
        break;
      }
      before_old = t_before;
    }
  }
  return best;
}

struct Quantiles {
  double p50, p99, p999, max, min;
};
Quantiles quantiles(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {bench::quantile_sorted(v, 0.50), bench::quantile_sorted(v, 0.99), bench::quantile_sorted(v, 0.999),
          v.empty() ? 0 : v.back(), v.empty() ? 0 : v.front()};
}

// Sets the nice value of this process's softclock threads ("callout/N"), or
// with fifo > 0 puts them in SCHED_FIFO at that priority.
int renice_softclocks(int nice, int fifo) {
  int done = 0;
  DIR *dir = opendir("/proc/self/task");
  if (dir == nullptr) return 0;
  while (dirent *e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
    std::string name;
    std::getline(comm, name);
    if (name.rfind("callout/", 0) != 0) continue;
    const int tid = std::atoi(e->d_name);
    if (fifo > 0) {
      sched_param sp{};
      sp.sched_priority = fifo;
      if (sched_setscheduler(tid, SCHED_FIFO, &sp) == 0) ++done;
    } else if (setpriority(PRIO_PROCESS, static_cast<id_t>(tid), nice) == 0) {
      ++done;
    }
  }
  closedir(dir);
  return done;
}

int cmd_lateness() {
  const std::uint64_t count = opt_u64("count", 100'000);
  const std::uint64_t seconds = opt_u64("seconds", 10);
  const int nice = static_cast<int>(static_cast<std::int64_t>(opt_u64("nice", 0)));
  const int fifo = static_cast<int>(opt_u64("fifo", 0));
  const std::string load0 = loadavg();
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_MONOTONIC, 0);
  // --nice N: what a higher scheduling priority of the softclock threads
  // (set from outside: the library has no such option) does on a busy
  // machine.
  int reniced = 0;
  if (nice != 0 || fifo != 0) reniced = renice_softclocks(nice, fifo);
  const unsigned hz = callout_domain_hz(d);
  const double origin = tick_origin_ns(d);
  std::unique_ptr<callout_t[]> c(new callout_t[count]);
  std::vector<LateSlot> slot(count);
  std::vector<std::uint64_t> due(count);
  bench::SplitMix64 rng(42);
  for (std::uint64_t i = 0; i < count; ++i) callout_init_domain(&c[i], CALLOUT_MPSAFE, d);
  const std::uint32_t span = static_cast<std::uint32_t>(seconds * hz);
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint32_t delta = rng.range(1, span);
    for (;;) {
      const std::uint64_t before = callout_domain_ticks(d);
      callout_reset(&c[i], static_cast<int>(delta), record, &slot[i]);
      if (callout_domain_ticks(d) == before) {
        due[i] = before + delta;
        break;
      }
    }
  }
  const auto st0 = softclock_stats();
  const std::uint64_t psi0 = cpu_pressure_us(), wall0 = bench::mono_ns();
  bench::sleep_ns((seconds + 1) * 1'000'000'000ull);
  const auto st1 = softclock_stats();
  const std::uint64_t psi1 = cpu_pressure_us(), wall1 = bench::mono_ns();
  // Where lateness comes from: how long the softclock threads, once woken,
  // waited for a CPU (run-queue wait, /proc/<tid>/schedstat).
  std::uint64_t wakeups = 0, rq_wait_ns = 0;
  for (auto &[tid, b] : st1) {
    auto it = st0.find(tid);
    if (it == st0.end()) continue;
    wakeups += b.slices - it->second.slices;
    rq_wait_ns += b.wait_ns - it->second.wait_ns;
  }
  const double psi_share = static_cast<double>(psi1 - psi0) * 1e3 / static_cast<double>(wall1 - wall0);
  std::vector<double> late;
  std::uint64_t missing = 0;
  const double ns_per_tick = 1e9 / hz;
  for (std::uint64_t i = 0; i < count; ++i) {
    if (slot[i].ran_ns == 0) {
      ++missing;
      continue;
    }
    late.push_back(static_cast<double>(slot[i].ran_ns) -
                   (origin + static_cast<double>(due[i]) * ns_per_tick));
  }
  if (auto it = g_opt.find("dump"); it != g_opt.end()) {
    // --dump FILE: one line per callout: due tick, lateness in ns, CPU.
    std::ofstream f(it->second);
    for (std::uint64_t i = 0; i < count; ++i)
      f << due[i] << ' '
        << (slot[i].ran_ns
                ? static_cast<double>(slot[i].ran_ns) - (origin + static_cast<double>(due[i]) * ns_per_tick)
                : -1.0)
        << '\n';
  }
  const Quantiles q = quantiles(late);
  std::printf(
      "{\"count\":%llu,\"seconds\":%llu,\"hz\":%u,\"ncpu\":%u,\"nice\":%d,\"fifo\":%d,\"reniced\":%d,"
      "\"missing\":%llu,"
      "\"loadavg_before\":\"%s\","
      "\"loadavg_after\":\"%s\",\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f,\"min_us\":%"
      ".2f,"
      "\"softclock_wakeups\":%llu,\"runqueue_wait_us_per_wakeup\":%.2f,\"cpu_pressure_share\":%.3f}\n",
      static_cast<unsigned long long>(count), static_cast<unsigned long long>(seconds), hz,
      callout_domain_ncpu(d), nice, fifo, reniced, static_cast<unsigned long long>(missing), load0.c_str(),
      loadavg().c_str(), q.p50 / 1e3, q.p99 / 1e3, q.p999 / 1e3, q.max / 1e3, q.min / 1e3,
      static_cast<unsigned long long>(wakeups),
      wakeups ? static_cast<double>(rq_wait_ns) / 1e3 / static_cast<double>(wakeups) : 0.0, psi_share);
  return 0;
}

// ---- load --------------------------------------------------------------------

// `load`: the demo's traffic (tools/callout_demo.cpp: a TCP stack whose
// connections each have a retransmit, a delayed-ACK and a keepalive callout
// associated with the connection's mutex) at a chosen number of connections,
// with the lateness of every handler start recorded exactly, and beside it,
// in the same process and the same seconds, the oracle: a thread with 1 ns of
// timer slack sleeping in clock_nanosleep(TIMER_ABSTIME) to tick starts 1..8
// ticks ahead -- what a thread woken at a deadline gets from this machine at
// this moment.  The engine's lateness is then quoted as a ratio to the
// oracle's, which cancels most of what the shared machine adds.
namespace load {

enum { kRexmt = 0, kDelack = 1, kKeep = 2 };
constexpr double kDelackMs = 100;
// The demo's keepalive: 2.5 s idle, probes every 0.75 s.  --keep-ms scales
// both, so that 10^6 connections need not fire 400 000 keepalives a second
// (real TCP waits two hours).
double kKeepIdleMs = 2500, kKeepIntvlMs = 750;
constexpr int kKeepCount = 3, kMaxShift = 6;

struct Conn {
  pthread_mutex_t mtx;
  callout_t timer[3];
  std::uint64_t due[3];  // due tick of the last reset of each (written under mtx)
  std::uint16_t rtt_ms, unacked;
  std::uint8_t rexmt_shift, keep_probes;
  bool idle, closing;
};

callout_domain_t *g_d;
unsigned g_hz;
double g_origin, g_ns_per_tick;
std::vector<Conn> *g_conns;

// Per CPU: every handler start's lateness (ns), written only by that CPU's
// softclock thread; a fixed capacity, so no allocation in a handler.
struct alignas(64) Samples {
  std::vector<float> late;
  std::atomic<std::uint64_t> n{0}, dropped{0}, early{0};
};
std::unique_ptr<Samples[]> g_samples;
unsigned g_ncpu;
// On only between the warm-up and the end of the measured window.
std::atomic<bool> g_recording{false};

using Rng = bench::XorShift64Star;

int ms_ticks(double ms) {
  const double t = std::ceil(ms * g_hz / 1000.0);
  return t < 1 ? 1 : static_cast<int>(t);
}
double rto_ms(const Conn &c) { return std::min(4.0 * c.rtt_ms + 200.0, 3000.0) * (1u << c.rexmt_shift); }

void note(std::uint64_t due_tick) {
  const std::uint64_t now = bench::mono_ns();
  if (!g_recording.load(std::memory_order_relaxed)) return;
  const int cpu = callout_domain_curcpu(g_d);
  Samples &s = g_samples[cpu < 0 ? 0 : static_cast<unsigned>(cpu) % g_ncpu];
  const double late = static_cast<double>(now) - (g_origin + static_cast<double>(due_tick) * g_ns_per_tick);
  // The origin is calibrated to within a few µs: only more than that is early.
  if (late < -5000) s.early.fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t i = s.n.load(std::memory_order_relaxed);
  if (i < s.late.size()) {
    s.late[i] = static_cast<float>(late);
    s.n.store(i + 1, std::memory_order_release);
  } else {
    s.dropped.fetch_add(1, std::memory_order_relaxed);
  }
}

void arm(Conn *c, int which, double ms, callout_func_t fn) {
  const int ticks = ms_ticks(ms);
  // The due tick is computed as the library does: the tick read now plus
  // ticks.  A tick boundary between the two reads makes this one tick early,
  // which only understates lateness (by one tick, at most once per boundary).
  c->due[which] = callout_domain_ticks(g_d) + static_cast<std::uint64_t>(ticks);
  callout_reset(&c->timer[which], ticks, fn, c);
}

void load_rexmt(void *arg) {
  Conn *c = static_cast<Conn *>(arg);
  note(c->due[kRexmt]);
  if (c->closing) return;
  if (c->rexmt_shift < kMaxShift) ++c->rexmt_shift;
  arm(c, kRexmt, rto_ms(*c), load_rexmt);
}
void load_delack(void *arg) { note(static_cast<Conn *>(arg)->due[kDelack]); }
void load_keep(void *arg) {
  Conn *c = static_cast<Conn *>(arg);
  note(c->due[kKeep]);
  if (c->closing) return;
  if (++c->keep_probes < kKeepCount) {
    arm(c, kKeep, kKeepIntvlMs, load_keep);
  } else {
    c->keep_probes = 0;
    arm(c, kKeep, kKeepIdleMs, load_keep);
  }
}

void open_conn(Conn *c, unsigned i, Rng &rng) {
  for (callout_t &t : c->timer) {
    callout_init_mtx(&t, g_d, &c->mtx, CALLOUT_MPSAFE);
    callout_bind(&t, i % g_ncpu);
  }
  c->rexmt_shift = 0;
  c->keep_probes = 0;
  c->rtt_ms = static_cast<std::uint16_t>(5 + rng.below(200));
  c->unacked = 0;
  c->idle = rng.below(20) == 0;
  c->closing = false;
  arm(c, kKeep, kKeepIdleMs * (0.5 + rng.uniform()), load_keep);
}

void close_conn(Conn *c) {
  c->closing = true;
  for (callout_t &t : c->timer) callout_halt(&t, &c->mtx);
  for (callout_t &t : c->timer) callout_destroy(&t);
}

// One simulated segment (or close and reopen), as the demo's one_event().
// Returns the resets and stops it made.
std::pair<unsigned, unsigned> one_event(Conn *c, unsigned i, Rng &rng) {
  unsigned resets = 0, stops = 0;
  pthread_mutex_lock(&c->mtx);
  const unsigned what = rng.below(1000);
  if (what < 3) {
    close_conn(c);
    open_conn(c, i, rng);
    ++resets;
  } else if (c->idle) {
  } else if (what < 420) {
    if (c->unacked < 1000) ++c->unacked;
    if (!callout_pending(&c->timer[kRexmt])) {
      c->rexmt_shift = 0;
      arm(c, kRexmt, rto_ms(*c), load_rexmt);
      ++resets;
    }
  } else if (what < 720) {
    if (c->unacked > 0) {
      c->rexmt_shift = 0;
      if (c->unacked > 1 && rng.below(3) == 0) {
        c->unacked = static_cast<std::uint16_t>(c->unacked / 2);
        arm(c, kRexmt, rto_ms(*c), load_rexmt);
        ++resets;
      } else {
        c->unacked = 0;
        callout_stop(&c->timer[kRexmt]);
        ++stops;
      }
    }
  } else if (callout_pending(&c->timer[kDelack])) {
    callout_stop(&c->timer[kDelack]);
    ++stops;
  } else {
    arm(c, kDelack, kDelackMs, load_delack);
    ++resets;
  }
  if (!c->idle && what >= 3) {
    c->keep_probes = 0;
    arm(c, kKeep, kKeepIdleMs, load_keep);
    ++resets;
  }
  pthread_mutex_unlock(&c->mtx);
  return {resets, stops};
}

std::atomic<bool> g_stop{false};

struct WorkerOut {
  std::uint64_t events = 0, resets = 0, stops = 0;
};

// A network worker, paced in 1 ms slices as the demo's: 80% of the events go
// to the busiest 10% of its connections.
void worker(unsigned w, unsigned nworkers, double rate, WorkerOut *out) {
  Rng rng{0x9e3779b97f4a7c15ull * (w + 1)};
  const unsigned n = static_cast<unsigned>(g_conns->size());
  const unsigned mine = (n - w + nworkers - 1) / nworkers;
  const double per_slice = rate / 1000.0;
  double owed = 0;
  std::uint64_t next = bench::mono_ns();
  while (!g_stop.load(std::memory_order_relaxed)) {
    owed += per_slice;
    for (; owed >= 1; owed -= 1) {
      const unsigned busy = mine / 10 + 1;
      const unsigned k = rng.below(10) < 8 ? rng.below(busy) : rng.below(mine);
      const unsigned i = w + k * nworkers;
      auto [r, s] = one_event(&(*g_conns)[i], i, rng);
      ++out->events;
      out->resets += r;
      out->stops += s;
    }
    next += 1'000'000;
    const std::uint64_t now = bench::mono_ns();
    if (now > next + 100'000'000) next = now;  // overloaded: do not catch up
    bench::sleep_until_ns(next);
  }
}

// The oracle: 1 ns of timer slack (as the softclock threads have), absolute
// sleeps to the start of a tick 1..8 ticks ahead, lateness of each wake-up.
void oracle(std::vector<float> *late) {
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  bench::SplitMix64 rng(11);
  while (!g_stop.load(std::memory_order_relaxed) && late->size() < late->capacity()) {
    const std::uint64_t tick = callout_domain_ticks(g_d) + rng.range(1, 8);
    const auto deadline = static_cast<std::uint64_t>(g_origin + static_cast<double>(tick) * g_ns_per_tick);
    const timespec ts{static_cast<time_t>(deadline / 1'000'000'000u),
                      static_cast<long>(deadline % 1'000'000'000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
    late->push_back(
        static_cast<float>(static_cast<double>(bench::mono_ns()) - static_cast<double>(deadline)));
  }
}

// --busy: background processes that only spin, at nice 0, killed at the end.
std::vector<pid_t> start_spinners(unsigned n) {
  std::vector<pid_t> pids;
  for (unsigned i = 0; i < n; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      // Die with the benchmark, even if it crashes: no orphaned busy loop.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() == 1) _exit(0);
      setpriority(PRIO_PROCESS, 0, 0);
      std::uint64_t x = 0;
      for (;;) {
        x = x + 1;
        __asm__ __volatile__("" : "+r"(x));  // keeps the loop: busy, not optimised away
      }
    }
    if (pid > 0) pids.push_back(pid);
  }
  return pids;
}

void stop_spinners(const std::vector<pid_t> &pids) {
  for (const pid_t pid : pids) kill(pid, SIGKILL);
  for (const pid_t pid : pids) waitpid(pid, nullptr, 0);
}

std::string q_json(const Quantiles &q) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "{\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f}",
                q.p50 / 1e3, q.p99 / 1e3, q.p999 / 1e3, q.max / 1e3);
  return buf;
}

}  // namespace load

int cmd_load() {
  using namespace load;
  const unsigned nconn = static_cast<unsigned>(opt_u64("connections", 100'000));
  const double seconds = static_cast<double>(opt_u64("seconds", 8));
  const double rate = static_cast<double>(opt_u64("rate", 1'000'000));
  const unsigned warmup = static_cast<unsigned>(opt_u64("warmup", 3));
  kKeepIdleMs = static_cast<double>(opt_u64("keep-ms", 2500));
  kKeepIntvlMs = kKeepIdleMs * 0.3;
  const std::string load0 = loadavg();
  callout_domain_config cfg;
  callout_domain_config_init(&cfg);
  cfg.ncpu = static_cast<unsigned>(opt_u64("cpus", 0));
  if (opt_u64("pin", 0) != 0) cfg.flags |= CALLOUT_DOMAIN_PIN;
  const std::string policy = g_opt.count("policy") ? g_opt["policy"] : "other";
  cfg.sched_policy = policy == "fifo" ? SCHED_FIFO : policy == "rr" ? SCHED_RR : SCHED_OTHER;
  if (cfg.sched_policy != SCHED_OTHER) cfg.sched_priority = static_cast<int>(opt_u64("priority", 10));
  const unsigned busy = g_opt.count("busy") && g_opt["busy"] == "cpus"
                            ? static_cast<unsigned>(sysconf(_SC_NPROCESSORS_ONLN))
                            : static_cast<unsigned>(opt_u64("busy", 0));
  // Forked before the domain exists: a fork child restarts the softclock
  // threads of every live domain, and the spinners must be only spinners.
  const std::vector<pid_t> spinners = start_spinners(busy);
  if (int e = callout_domain_create(&cfg, &g_d); e != 0) {
    std::fprintf(stderr, "callout_domain_create: %s\n", std::strerror(e));
    stop_spinners(spinners);
    return 1;
  }
  g_hz = callout_domain_hz(g_d);
  g_ncpu = callout_domain_ncpu(g_d);
  g_ns_per_tick = 1e9 / g_hz;
  g_origin = tick_origin_ns(g_d);
  const auto est = static_cast<std::size_t>(seconds * 2e6 / g_ncpu + 1e5);
  g_samples.reset(new Samples[g_ncpu]);
  for (unsigned c = 0; c < g_ncpu; ++c) g_samples[c].late.assign(est, 0.0f);
  std::vector<Conn> conns(nconn);
  g_conns = &conns;
  {
    Rng rng{12345};
    for (unsigned i = 0; i < nconn; ++i) {
      pthread_mutex_init(&conns[i].mtx, nullptr);
      pthread_mutex_lock(&conns[i].mtx);
      open_conn(&conns[i], i, rng);
      pthread_mutex_unlock(&conns[i].mtx);
    }
  }
  std::vector<WorkerOut> wout(g_ncpu);
  std::vector<std::thread> workers;
  for (unsigned w = 0; w < g_ncpu; ++w) workers.emplace_back(worker, w, g_ncpu, rate / g_ncpu, &wout[w]);
  // Warm-up: the initial keepalives (armed at 1.25-3.75 s) fire and the
  // pending set reaches its steady state before anything is recorded.
  bench::sleep_ns(static_cast<std::uint64_t>(warmup) * 1'000'000'000ull);
  std::vector<float> oracle_late;
  oracle_late.reserve(static_cast<std::size_t>(seconds * 1e4));
  callout_stats s0{}, s1{}, mid{};
  s0.size = s1.size = mid.size = sizeof s0;
  callout_domain_stats(g_d, -1, &s0);
  const std::uint64_t w0 = bench::mono_ns(), psi0 = cpu_pressure_us(), steal0 = steal_ns();
  g_recording.store(true);
  std::thread orc(oracle, &oracle_late);
  bench::sleep_ns(static_cast<std::uint64_t>(seconds * 5e8));
  callout_domain_stats(g_d, -1, &mid);
  bench::sleep_ns(static_cast<std::uint64_t>(seconds * 5e8));
  g_recording.store(false);
  g_stop.store(true);
  orc.join();
  for (auto &t : workers) t.join();
  const std::uint64_t w1 = bench::mono_ns(), psi1 = cpu_pressure_us(), steal1 = steal_ns();
  stop_spinners(spinners);
  callout_domain_stats(g_d, -1, &s1);
  std::vector<double> late;
  std::uint64_t dropped = 0, early = 0;
  for (unsigned c = 0; c < g_ncpu; ++c) {
    const std::uint64_t n = g_samples[c].n.load(std::memory_order_acquire);
    for (std::uint64_t i = 0; i < n; ++i) late.push_back(g_samples[c].late[i]);
    dropped += g_samples[c].dropped.load();
    early += g_samples[c].early.load();
  }
  std::vector<double> orc_late(oracle_late.begin(), oracle_late.end());
  const Quantiles ql = quantiles(late), qo = quantiles(orc_late);
  WorkerOut tot;
  for (auto &w : wout) {
    tot.events += w.events;
    tot.resets += w.resets;
    tot.stops += w.stops;
  }
  const double wall = static_cast<double>(w1 - w0) * 1e-9;
  std::printf(
      "{\"pin\":%d,\"policy\":\"%s\",\"priority\":%d,\"busy\":%u,"
      "\"connections\":%u,\"keep_ms\":%.0f,\"seconds\":%.1f,\"rate\":%.0f,\"hz\":%u,\"ncpu\":%u,\"loadavg_"
      "before\":\"%s\","
      "\"loadavg_after\":\"%s\",\"pending_mid\":%llu,\"fired_per_s\":%.0f,\"resets_and_stops_per_s\":%.0f,"
      "\"events_per_s\":%.0f,\"handlers\":%zu,\"dropped\":%llu,\"early\":%llu,\"cpu_pressure_share\":%.3f,"
      "\"steal_share\":%.4f,\"callout\":%s,\"oracle\":%s,\"oracle_wakeups\":%zu,"
      "\"ratio\":{\"p50\":%.2f,\"p99\":%.2f,\"p999\":%.2f,\"max\":%.2f},"
      "\"lock_hold_max_us\":{\"cascade\":%.1f,\"batch\":%.1f,\"api\":%.1f},"
      "\"assoc_wait\":{\"total_ms\":%.1f,\"max_us\":%.1f}}\n",
      (cfg.flags & CALLOUT_DOMAIN_PIN) != 0, policy.c_str(), cfg.sched_priority, busy, nconn, kKeepIdleMs,
      seconds, rate, g_hz, g_ncpu, load0.c_str(), loadavg().c_str(),
      static_cast<unsigned long long>(mid.pending), static_cast<double>(s1.fired - s0.fired) / wall,
      static_cast<double>(s1.scheduled + s1.rescheduled + s1.stopped - s0.scheduled - s0.rescheduled -
                          s0.stopped) /
          wall,
      static_cast<double>(tot.events) / wall, late.size(), static_cast<unsigned long long>(dropped),
      static_cast<unsigned long long>(early),
      static_cast<double>(psi1 - psi0) * 1e3 / static_cast<double>(w1 - w0),
      static_cast<double>(steal1 - steal0) /
          (static_cast<double>(w1 - w0) * static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN))),
      q_json(ql).c_str(), q_json(qo).c_str(), orc_late.size(), ql.p50 / qo.p50, ql.p99 / qo.p99,
      ql.p999 / qo.p999, ql.max / qo.max, static_cast<double>(s1.lock_hold_ns_max_cascade) / 1e3,
      static_cast<double>(s1.lock_hold_ns_max_batch) / 1e3,
      static_cast<double>(s1.lock_hold_ns_max_api) / 1e3, static_cast<double>(s1.assoc_wait_ns_total) / 1e6,
      static_cast<double>(s1.assoc_wait_ns_max) / 1e3);
  // The connections' callouts still pend: halt and destroy them before their
  // storage goes away.
  for (unsigned i = 0; i < nconn; ++i) {
    pthread_mutex_lock(&conns[i].mtx);
    close_conn(&conns[i]);
    pthread_mutex_unlock(&conns[i].mtx);
  }
  callout_domain_destroy(g_d);
  return 0;
}

// ---- window ------------------------------------------------------------------

// One run of `window`: N callouts with delays spread over S seconds, armed
// with callout_reset_window and a slack of `slack_pct` % of each delay
// (0: plain callout_reset).  Returns a JSON object.
std::string window_run(std::uint64_t count, std::uint64_t seconds, unsigned slack_pct) {
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_MONOTONIC, 0);
  const unsigned hz = callout_domain_hz(d);
  const double origin = tick_origin_ns(d);
  const double ns_per_tick = 1e9 / hz;
  std::unique_ptr<callout_t[]> c(new callout_t[count]);
  std::vector<LateSlot> slot(count);
  std::vector<std::uint64_t> due(count), slack(count);
  bench::SplitMix64 rng(42);
  for (std::uint64_t i = 0; i < count; ++i) callout_init_domain(&c[i], CALLOUT_MPSAFE, d);
  const std::uint32_t span = static_cast<std::uint32_t>(seconds * hz);
  callout_stats s0{};
  s0.size = sizeof s0;
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint32_t delta = rng.range(1, span);
    const int sl = static_cast<int>(std::uint64_t{delta} * slack_pct / 100);
    for (;;) {
      const std::uint64_t before = callout_domain_ticks(d);
      callout_reset_window(&c[i], static_cast<int>(delta), sl, record, &slot[i]);
      if (callout_domain_ticks(d) == before) {
        due[i] = before + delta;
        slack[i] = static_cast<std::uint64_t>(sl);
        break;
      }
    }
  }
  callout_domain_stats(d, -1, &s0);
  bench::sleep_ns((seconds + 1) * 1'000'000'000ull);
  callout_stats s1{};
  s1.size = sizeof s1;
  callout_domain_stats(d, -1, &s1);
  // Never early: a handler must not start before its due tick began.  Late
  // past the window's last tick: the engine dispatches inside the window
  // (checked exactly on the manual clock by the tests); on a real clock the
  // wake-up latency can carry the start past it.
  std::uint64_t early = 0, missing = 0, past_window = 0;
  std::vector<double> past;
  std::map<std::uint64_t, int> ticks;  // the tick in which each handler started
  for (std::uint64_t i = 0; i < count; ++i) {
    if (slot[i].ran_ns == 0) {
      ++missing;
      continue;
    }
    const double start = origin + static_cast<double>(due[i]) * ns_per_tick;
    const double end = origin + static_cast<double>(due[i] + slack[i] + 1) * ns_per_tick;
    const double ran = static_cast<double>(slot[i].ran_ns);
    if (ran < start) ++early;
    if (ran >= end) {
      ++past_window;
      past.push_back(ran - end);
    }
    ++ticks[static_cast<std::uint64_t>((ran - origin) / ns_per_tick)];
  }
  for (std::uint64_t i = 0; i < count; ++i) callout_destroy(&c[i]);
  callout_domain_destroy(d);
  const Quantiles q = quantiles(past);
  char buf[512];
  std::snprintf(
      buf, sizeof buf,
      "{\"slack_pct\":%u,\"wakeups\":%llu,\"fired\":%llu,\"handler_start_ticks\":%zu,\"early\":%llu,"
      "\"missing\":%llu,\"started_past_window\":%llu,\"past_window_max_us\":%.2f}",
      slack_pct, static_cast<unsigned long long>(s1.wakeups - s0.wakeups),
      static_cast<unsigned long long>(s1.fired - s0.fired), ticks.size(),
      static_cast<unsigned long long>(early), static_cast<unsigned long long>(missing),
      static_cast<unsigned long long>(past_window), q.max / 1e3);
  return buf;
}

int cmd_window() {
  const std::uint64_t count = opt_u64("count", 100'000);
  const std::uint64_t seconds = opt_u64("seconds", 10);
  const unsigned pct = static_cast<unsigned>(opt_u64("slack", 10));
  const std::string load0 = loadavg();
  const std::string exact = window_run(count, seconds, 0);
  const std::string windowed = window_run(count, seconds, pct);
  std::printf(
      "{\"count\":%llu,\"seconds\":%llu,\"loadavg_before\":\"%s\",\"loadavg_after\":\"%s\",\"exact\":%s,"
      "\"window\":%s}\n",
      static_cast<unsigned long long>(count), static_cast<unsigned long long>(seconds), load0.c_str(),
      loadavg().c_str(), exact.c_str(), windowed.c_str());
  return 0;
}

// ---- cvwait ------------------------------------------------------------------

Quantiles cv_lateness(std::uint64_t count, bool tight_slack) {
  Quantiles q{};
  std::thread th([&] {
    if (tight_slack) prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_t cv;
    pthread_cond_init(&cv, &ca);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    bench::SplitMix64 rng(7);
    std::vector<double> late;
    pthread_mutex_lock(&mu);
    for (std::uint64_t i = 0; i < count; ++i) {
      const std::uint64_t deadline = bench::mono_ns() + rng.range(500'000, 1'500'000);
      const timespec ts{static_cast<time_t>(deadline / 1'000'000'000u),
                        static_cast<long>(deadline % 1'000'000'000u)};
      while (pthread_cond_timedwait(&cv, &mu, &ts) == 0) {
      }
      late.push_back(static_cast<double>(bench::mono_ns()) - static_cast<double>(deadline));
    }
    pthread_mutex_unlock(&mu);
    q = quantiles(late);
  });
  th.join();
  return q;
}

int cmd_cvwait() {
  const std::uint64_t count = opt_u64("count", 2000);
  const Quantiles def = cv_lateness(count, false);
  const Quantiles tight = cv_lateness(count, true);
  std::printf(
      "{\"count\":%llu,\"loadavg\":\"%s\",\"default_slack\":{\"p50_us\":%.2f,\"p99_us\":%.2f,\"max_us\":%.2f}"
      ","
      "\"slack_1ns\":{\"p50_us\":%.2f,\"p99_us\":%.2f,\"max_us\":%.2f}}\n",
      static_cast<unsigned long long>(count), loadavg().c_str(), def.p50 / 1e3, def.p99 / 1e3, def.max / 1e3,
      tight.p50 / 1e3, tight.p99 / 1e3, tight.max / 1e3);
  return 0;
}

// ---- idle ----------------------------------------------------------------------

// The softclock threads of this process ("callout/N"), by thread id.
std::map<int, TaskStat> softclock_stats() {
  std::map<int, TaskStat> out;
  DIR *dir = opendir("/proc/self/task");
  if (dir == nullptr) return out;
  while (dirent *e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    const std::string base = std::string("/proc/self/task/") + e->d_name;
    std::ifstream comm(base + "/comm");
    std::string name;
    std::getline(comm, name);
    if (name.rfind("callout/", 0) != 0) continue;
    TaskStat s;
    std::ifstream sched(base + "/schedstat");
    sched >> s.run_ns >> s.wait_ns >> s.slices;
    std::ifstream status(base + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0 || line.rfind("nonvoluntary_ctxt_switches:", 0) == 0)
        s.csw += std::stoull(line.substr(line.find(':') + 1));
    }
    out[std::atoi(e->d_name)] = s;
  }
  closedir(dir);
  return out;
}

// Sum over the threads of after - before: {wake-ups (times scheduled), CPU ns}.
std::pair<std::uint64_t, std::uint64_t> delta(const std::map<int, TaskStat> &a,
                                              const std::map<int, TaskStat> &b) {
  std::uint64_t wakes = 0, ns = 0;
  for (auto &[tid, s] : b) {
    auto it = a.find(tid);
    if (it == a.end()) continue;
    wakes += s.slices - it->second.slices;
    ns += s.run_ns - it->second.run_ns;
  }
  return {wakes, ns};
}

int cmd_idle() {
  const std::uint64_t seconds = opt_u64("seconds", 10);
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_MONOTONIC, 0);
  bench::sleep_ns(200'000'000);  // let the threads start and go to sleep
  const auto s0 = softclock_stats();
  bench::sleep_ns(seconds * 1'000'000'000ull);
  const auto s1 = softclock_stats();
  callout_t c;
  callout_init_domain(&c, CALLOUT_MPSAFE, d);
  const auto s2 = softclock_stats();
  callout_reset(&c, 3600 * static_cast<int>(callout_domain_hz(d)), noop, nullptr);
  bench::sleep_ns(100'000'000);
  const auto s3 = softclock_stats();
  bench::sleep_ns(seconds * 1'000'000'000ull);
  const auto s4 = softclock_stats();
  const auto empty = delta(s0, s1);
  const auto arming = delta(s2, s3);
  const auto far = delta(s3, s4);
  callout_stop(&c);
  callout_destroy(&c);
  std::printf(
      "{\"seconds\":%llu,\"threads\":%zu,\"empty_wakeups\":%llu,\"empty_cpu_us\":%.1f,"
      "\"arm_wakeups\":%llu,\"far_wakeups\":%llu,\"far_cpu_us\":%.1f}\n",
      static_cast<unsigned long long>(seconds), s0.size(), static_cast<unsigned long long>(empty.first),
      static_cast<double>(empty.second) / 1e3, static_cast<unsigned long long>(arming.first),
      static_cast<unsigned long long>(far.first), static_cast<double>(far.second) / 1e3);
  return callout_domain_destroy(d) == 0 ? 0 : 1;
}

// ---- memory ----------------------------------------------------------------------

std::uint64_t status_kb(const char *field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::size_t len = std::strlen(field);
  while (std::getline(f, line))
    if (line.compare(0, len, field) == 0) return std::stoull(line.substr(len + 1));
  return 0;
}

int cmd_memory() {
  namespace al = bench::alloc;
  constexpr std::size_t n = 10'000;
  std::unique_ptr<callout_t[]> c(new callout_t[n]);
  auto per_op = [&](const al::Snapshot &a, const al::Snapshot &b, double ops) {
    return static_cast<double>(b.allocs - a.allocs) / ops;
  };
  std::ostringstream js;

  // Operations on a manual domain (fire included) and a monotonic one.
  for (int kind = 0; kind < 2; ++kind) {
    callout_domain_t *d = make_domain(kind == 0 ? CALLOUT_CLOCK_MANUAL : CALLOUT_CLOCK_MONOTONIC, 1);
    al::enable(true);
    const al::Snapshot s0 = al::snapshot();
    for (std::size_t i = 0; i < n; ++i) callout_init_domain(&c[i], CALLOUT_MPSAFE, d);
    const al::Snapshot s1 = al::snapshot();
    for (std::size_t i = 0; i < n; ++i) callout_reset(&c[i], 50 + static_cast<int>(i % 50), noop, nullptr);
    const al::Snapshot s2 = al::snapshot();
    for (std::size_t i = 0; i < n; ++i)
      callout_reset(&c[i], 5000 + static_cast<int>(i % 5000), noop, nullptr);
    const al::Snapshot s3 = al::snapshot();
    for (std::size_t i = 0; i < n; ++i) callout_stop(&c[i]);
    const al::Snapshot s4 = al::snapshot();
    for (std::size_t i = 0; i < n; ++i) callout_reset(&c[i], 1 + static_cast<int>(i % 100), noop, nullptr);
    if (kind == 0)
      callout_domain_advance(d, 100);
    else
      bench::sleep_ns(300'000'000);
    const al::Snapshot s5 = al::snapshot();
    for (std::size_t i = 0; i < n; ++i) callout_halt(&c[i], nullptr);
    const al::Snapshot s6 = al::snapshot();
    for (std::size_t i = 0; i < n; ++i) callout_destroy(&c[i]);
    const al::Snapshot s7 = al::snapshot();
    al::enable(false);
    js << (kind == 0 ? "\"manual\":" : ",\"monotonic\":") << "{\"init\":" << per_op(s0, s1, n)
       << ",\"reset\":" << per_op(s1, s2, n) << ",\"reset_pending\":" << per_op(s2, s3, n)
       << ",\"stop\":" << per_op(s3, s4, n) << ",\"reset_and_fire\":" << per_op(s4, s5, n)
       << ",\"halt\":" << per_op(s5, s6, n) << ",\"destroy\":" << per_op(s6, s7, n) << "}";
    callout_domain_destroy(d);
  }

  // Domain overhead: heap bytes, resident and virtual memory for 1 and 9
  // CPUs (threads started and asleep).
  auto domain_cost = [&](unsigned ncpu) {
    al::enable(true);
    const al::Snapshot a = al::snapshot();
    const std::uint64_t rss0 = status_kb("VmRSS:"), vm0 = status_kb("VmSize:");
    callout_domain_t *d = make_domain(CALLOUT_CLOCK_MONOTONIC, ncpu);
    bench::sleep_ns(100'000'000);
    const al::Snapshot b = al::snapshot();
    const std::uint64_t rss1 = status_kb("VmRSS:"), vm1 = status_kb("VmSize:");
    al::enable(false);
    callout_domain_destroy(d);
    struct Cost {
      double heap, rss_kb, vm_kb;
    };
    return Cost{static_cast<double>(b.live - a.live), static_cast<double>(rss1) - static_cast<double>(rss0),
                static_cast<double>(vm1) - static_cast<double>(vm0)};
  };
  domain_cost(1);  // warm up the allocator and the thread-stack cache
  const auto one = domain_cost(1);
  const auto nine = domain_cost(9);
  const double cpu_heap = (nine.heap - one.heap) / 8, cpu_rss = (nine.rss_kb - one.rss_kb) / 8,
               cpu_vm = (nine.vm_kb - one.vm_kb) / 8;
  js << ",\"sizeof_callout_t\":" << sizeof(callout_t) << ",\"per_cpu_heap_bytes\":" << cpu_heap
     << ",\"per_cpu_rss_kb\":" << cpu_rss << ",\"per_cpu_virtual_kb\":" << cpu_vm
     << ",\"domain_1cpu_heap_bytes\":" << one.heap;
  std::printf("{%s}\n", js.str().c_str());
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(
        stderr,
        "usage: callout-mono-bench scaling|lateness|load|window|cvwait|idle|memory [--key value]...\n");
    return 2;
  }
  for (int i = 2; i + 1 < argc; i += 2) g_opt[std::string(argv[i]).substr(2)] = argv[i + 1];
  const std::string cmd = argv[1];
  if (cmd == "scaling") return cmd_scaling();
  if (cmd == "lateness") return cmd_lateness();
  if (cmd == "window") return cmd_window();
  if (cmd == "load") return cmd_load();
  if (cmd == "cvwait") return cmd_cvwait();
  if (cmd == "idle") return cmd_idle();
  if (cmd == "memory") return cmd_memory();
  std::fprintf(stderr, "unknown subcommand %s\n", cmd.c_str());
  return 2;
}
