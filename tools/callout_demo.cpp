// callout-demo -- libcallout under a realistic load: a simulated userspace
// TCP stack.
//
// Every connection has the three timers of a BSD TCP control block (NetBSD's
// tcp_timer.c names): retransmit (TCPT_REXMT), delayed ACK and keepalive,
// each a callout associated with the connection's mutex (callout_init_mtx),
// bound to the connection's CPU.  One "network" worker thread per CPU
// processes simulated segments for its share of the connections, at a paced
// rate: sending data arms the retransmit timer, ACKs restart or stop it,
// received data arms the delayed ACK (every second segment stops it and
// ACKs at once), any activity restarts the keepalive.  So callouts are reset
// and stopped far more often than they fire -- the pattern the wheel is
// built for.  A small fraction of connections sits idle: their keepalive
// fires and probes.  Connections close (callout_halt with the connection
// mutex as interlock, then callout_destroy) and new ones open in their
// place all the time.
//
// Lateness is measured by the demo itself: each handler compares the time it
// starts against the start of its due tick (the due tick is recorded at
// reset, the tick origin is calibrated once at start-up).
//
// Output: a live one-line progress display (plain lines when stdout is not
// a terminal), then a summary table, then the callouts due soonest as
// callout_domain_dump() shows them (NetBSD's "show callout"), then the
// library's own counters as callout_domain_print_stats() prints them.
//
// Usage: callout-demo [--duration S] [--connections N] [--cpus N] [--hz N]
//                     [--rate N] [--help]
#include <callout/callout.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/xorshift.h"

namespace {

// ---- options ----------------------------------------------------------------

struct Options {
  double duration = 10.0;         // seconds of load
  unsigned connections = 100000;  // open at any time
  unsigned cpus = 0;              // 0: the default domain's (one per online processor)
  unsigned hz = 0;                // 0: the default domain's (1000)
  double rate = 1e6;              // simulated segments per second, all workers together
};

const char kUsage[] =
    "usage: callout-demo [--duration SECONDS] [--connections N] [--cpus N] [--hz N]\n"
    "                    [--rate EVENTS_PER_SECOND] [--help]\n";

void help() {
  std::printf(
      "%s\n"
      "Runs a simulated userspace TCP stack on libcallout: N connections, each with\n"
      "retransmit, delayed-ACK and keepalive callouts, reset far more often than\n"
      "they fire; connections close (halt + destroy) and open all the time.  Shows\n"
      "live progress, then a summary table and a dump of pending callouts.\n"
      "\n"
      "  --duration S       seconds of load (default 10)\n"
      "  --connections N    connections open at any time (default 100000)\n"
      "  --cpus N           CPUs (softclock threads, and as many network workers);\n"
      "                     default: the default domain's, one per online processor\n"
      "  --hz N             ticks per second, 1..1000000 (default 1000)\n"
      "  --rate N           simulated segments per second in total (default 1000000)\n"
      "  --help             this text\n"
      "\n"
      "Without --cpus and --hz the demo runs on the default domain; with either it\n"
      "creates its own monotonic-clock domain.  Ctrl-C ends the run early (the\n"
      "summary is still printed).  Exit status: 0; 1 if the domain cannot be\n"
      "created or a handler ran early; 2 for bad arguments.\n",
      kUsage);
}

[[noreturn]] void usage_error(const char *fmt, const char *arg) {
  std::fprintf(stderr, "callout-demo: ");
  std::fprintf(stderr, fmt, arg);
  std::fprintf(stderr, "\n%s", kUsage);
  std::exit(2);
}

double parse_number(const char *opt, const char *s, double lo, double hi) {
  char *end = nullptr;
  errno = 0;
  const double v = std::strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
    char msg[160];
    std::snprintf(msg, sizeof msg, "bad value for --%s: '%%s' (want %g..%g)", opt, lo, hi);
    usage_error(msg, s);
  }
  return v;
}

unsigned parse_count(const char *opt, const char *s, unsigned lo, unsigned hi) {
  const double v = parse_number(opt, s, lo, hi);
  if (v != std::floor(v)) {
    char msg[160];
    std::snprintf(msg, sizeof msg, "--%s wants a whole number, not '%%s'", opt);
    usage_error(msg, s);
  }
  return static_cast<unsigned>(v);
}

Options parse_options(int argc, char **argv) {
  static const option longopts[] = {
      {"duration", required_argument, nullptr, 'd'},
      {"connections", required_argument, nullptr, 'c'},
      {"cpus", required_argument, nullptr, 'p'},
      {"hz", required_argument, nullptr, 'z'},
      {"rate", required_argument, nullptr, 'r'},
      {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0},
  };
  Options o;
  opterr = 0;  // our own messages
  for (;;) {
    const int ch = getopt_long(argc, argv, ":h", longopts, nullptr);
    if (ch == -1) break;
    switch (ch) {
      case 'd':
        o.duration = parse_number("duration", optarg, 0.1, 86400);
        break;
      case 'c':
        o.connections = parse_count("connections", optarg, 1, 10000000);
        break;
      case 'p':
        o.cpus = parse_count("cpus", optarg, 1, 1024);
        break;
      case 'z':
        o.hz = parse_count("hz", optarg, 1, 1000000);
        break;
      case 'r':
        o.rate = parse_number("rate", optarg, 1, 1e9);
        break;
      case 'h':
        help();
        std::exit(0);
      case ':':
        usage_error("option %s needs a value", argv[optind - 1]);
      default:
        usage_error("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) usage_error("unexpected argument '%s'", argv[optind]);
  return o;
}

// ---- time ---------------------------------------------------------------------

std::uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

callout_domain_t *dom;
unsigned g_hz, g_ncpu;
std::uint64_t g_origin_ns;  // CLOCK_MONOTONIC at which tick 0 began

// Tick t of a monotonic domain begins at origin + t/hz.  The origin is not
// exported, so find it: watch the tick change from t0 to t0 + 1.  The last
// read that still showed t0 came before that tick began, the read showing
// t0 + 1 after, so the clock read taken just before the last t0 read is a
// lower bound of the tick's start, and the one just after the t0 + 1 read
// an upper bound.  The lower bound is kept: an origin that errs early can
// only make a handler look late, never early.  (The upper bound alone, as
// this once did, erred late by however long the polling thread was off
// its CPU when the tick turned: under TSan on a loaded machine thousands
// of on-time handlers looked early.)  Of up to five brackets, the
// narrowest is used.
void calibrate_origin() {
  std::uint64_t best = 0, best_width = UINT64_MAX;
  for (int round = 0; round < 5 && best_width > 2000; ++round) {
    std::uint64_t lo = mono_ns();
    const std::uint64_t t0 = callout_domain_ticks(dom);
    std::uint64_t t1, hi;
    for (;;) {
      const std::uint64_t before = mono_ns();
      t1 = callout_domain_ticks(dom);
      hi = mono_ns();
      if (t1 != t0) break;
      lo = before;
    }
    if (t1 != t0 + 1) continue;  // slept over a whole tick: no bracket
    if (hi - lo < best_width) {
      best_width = hi - lo;
      best = lo - static_cast<std::uint64_t>(static_cast<long double>(t1) * 1e9L / g_hz);
    }
  }
  if (best_width == UINT64_MAX) {
    // Never saw a single step (a machine too busy to poll): fall back to a
    // bound that is certainly early, one tick before the current one.
    const std::uint64_t now = mono_ns();
    const std::uint64_t t = callout_domain_ticks(dom);
    best = now - static_cast<std::uint64_t>(static_cast<long double>(t + 1) * 1e9L / g_hz);
  }
  g_origin_ns = best;
}

std::uint64_t tick_start_ns(std::uint64_t tick) {
  return g_origin_ns + static_cast<std::uint64_t>(static_cast<long double>(tick) * 1e9L / g_hz);
}

// ms -> ticks, rounded up, at least 1 (the TCP timers are not precise
// deadlines; lateness is measured against the due tick, not the ms).
int ms_ticks(double ms) {
  const double t = std::ceil(ms * g_hz / 1000.0);
  return t < 1 ? 1 : t > INT_MAX ? INT_MAX : static_cast<int>(t);
}

// ---- lateness histogram --------------------------------------------------------

// Log-linear: 16 sub-buckets per power of two of nanoseconds (6% wide).
constexpr int kSub = 16;
constexpr int kBuckets = 64 * kSub;

int bucket_of(std::uint64_t ns) {
  if (ns < kSub) return static_cast<int>(ns);
  const int msb = 63 - __builtin_clzll(ns);
  const int sub = static_cast<int>((ns >> (msb - 4)) & (kSub - 1));
  return (msb - 3) * kSub + sub;
}
std::uint64_t bucket_high(int b) {  // the largest value in bucket b
  if (b < kSub) return static_cast<std::uint64_t>(b);
  const int msb = b / kSub + 3, sub = b % kSub;
  return ((static_cast<std::uint64_t>(kSub + sub + 1)) << (msb - 4)) - 1;
}

// Per CPU, written only by that CPU's softclock thread (relaxed atomics so
// the progress line can read them while the run goes on).
struct alignas(64) CpuCounters {
  std::atomic<std::uint64_t> late[kBuckets];
  std::atomic<std::uint64_t> late_max{0};
  std::atomic<std::uint64_t> early{0};  // fired before the due tick began: a bug
  std::atomic<std::uint64_t> fired[3];  // by timer kind
};
std::unique_ptr<CpuCounters[]> cpu_counters;

void record_lateness(int kind, std::uint64_t due_tick) {
  const std::uint64_t now = mono_ns();
  const int cpu = callout_domain_curcpu(dom);
  CpuCounters &k = cpu_counters[cpu < 0 ? 0 : cpu];
  const std::uint64_t start = tick_start_ns(due_tick);
  std::uint64_t late = 0;
  if (now + 2000 < start)  // 2 us of calibration error is not "early"
    k.early.fetch_add(1, std::memory_order_relaxed);
  else if (now > start)
    late = now - start;
  k.late[bucket_of(late)].fetch_add(1, std::memory_order_relaxed);
  if (late > k.late_max.load(std::memory_order_relaxed)) k.late_max.store(late, std::memory_order_relaxed);
  k.fired[kind].fetch_add(1, std::memory_order_relaxed);
}

// ---- connections ------------------------------------------------------------------

enum { kRexmt = 0, kDelack = 1, kKeep = 2 };

struct Conn {
  pthread_mutex_t mtx;
  callout_t timer[3];        // rexmt, delack, keepalive; associated with mtx
  std::uint64_t due[3];      // due tick of the last reset of each
  std::uint32_t generation;  // how many times this slot has been (re)opened
  std::uint16_t cpu;         // the CPU its callouts are bound to
  std::uint8_t rexmt_shift;  // retransmit back-off
  std::uint8_t keep_probes;  // unanswered keepalive probes
  std::uint16_t rtt_ms;      // the path's round-trip time
  std::uint16_t unacked;     // segments in flight
  bool idle;                 // never sends or receives: only keepalive runs
  bool closing;
};

std::vector<Conn> conns;

// Scaled-down TCP constants (real keepalive is 2 hours; here it must fire
// within a 10 s run).
constexpr double kDelackMs = 100;
constexpr double kKeepIdleMs = 2500;
constexpr double kKeepIntvlMs = 750;
constexpr int kKeepCount = 3;
constexpr int kMaxShift = 6;

double rto_ms(const Conn &c) { return std::min(4.0 * c.rtt_ms + 200.0, 3000.0) * (1u << c.rexmt_shift); }

// Per-worker counters (one writer each).
struct alignas(64) WorkerCounters {
  std::atomic<std::uint64_t> resets{0}, stops{0}, halts{0}, halts_waited{0}, closes{0}, events{0};
  std::atomic<std::uint64_t> cpu_ns{0};  // the thread's CPU time, when it exits
};
std::unique_ptr<WorkerCounters[]> worker_counters;
// The handlers re-arm their own callouts: those count as resets too.
struct alignas(64) HandlerResets {
  std::atomic<std::uint64_t> n{0};
};
std::unique_ptr<HandlerResets[]> handler_resets;

inline void arm(Conn *c, int which, double ms, callout_func_t fn) {
  const int ticks = ms_ticks(ms);
  c->due[which] = callout_domain_ticks(dom) + static_cast<std::uint64_t>(ticks);
  callout_reset(&c->timer[which], ticks, fn, c);
}

void handler_rearmed() {
  const int cpu = callout_domain_curcpu(dom);
  handler_resets[cpu < 0 ? 0 : cpu].n.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

// The handlers: extern "C" and exported from the executable so that
// callout_domain_dump() can name them.  Each runs on its connection's CPU
// holding the connection's mutex (callout_init_mtx).
extern "C" {

// TCPT_REXMT: no ACK within the RTO -- retransmit, back off, re-arm.
void tcp_timer_rexmt(void *arg) {
  Conn *c = static_cast<Conn *>(arg);
  record_lateness(kRexmt, c->due[kRexmt]);
  if (c->closing) return;
  if (c->rexmt_shift < kMaxShift) ++c->rexmt_shift;
  arm(c, kRexmt, rto_ms(*c), tcp_timer_rexmt);
  handler_rearmed();
}

// Delayed ACK: the ACK goes out now.
void tcp_timer_delack(void *arg) {
  Conn *c = static_cast<Conn *>(arg);
  record_lateness(kDelack, c->due[kDelack]);
}

// Keepalive: probe the idle peer; after kKeepCount probes it "answers".
void tcp_timer_keep(void *arg) {
  Conn *c = static_cast<Conn *>(arg);
  record_lateness(kKeep, c->due[kKeep]);
  if (c->closing) return;
  if (++c->keep_probes < kKeepCount) {
    arm(c, kKeep, kKeepIntvlMs, tcp_timer_keep);
  } else {
    c->keep_probes = 0;
    arm(c, kKeep, kKeepIdleMs, tcp_timer_keep);
  }
  handler_rearmed();
}

}  // extern "C"

namespace {

using Rng = bench::XorShift64Star;

// Opens connection slot i (its callouts are initialised and bound).  Called
// at start-up, and by its worker after closing the previous connection,
// holding c->mtx.
void open_conn(Conn *c, unsigned i, Rng &rng) {
  c->cpu = static_cast<std::uint16_t>(i % g_ncpu);
  for (callout_t &t : c->timer) {
    callout_init_mtx(&t, dom, &c->mtx, CALLOUT_MPSAFE);
    callout_bind(&t, c->cpu);
  }
  ++c->generation;
  c->rexmt_shift = 0;
  c->keep_probes = 0;
  c->rtt_ms = static_cast<std::uint16_t>(5 + rng.below(200));
  c->unacked = 0;
  c->idle = rng.below(20) == 0;  // 5% of connections only ever keep alive
  c->closing = false;
  arm(c, kKeep, kKeepIdleMs * (0.5 + rng.uniform()), tcp_timer_keep);
}

// Closes it: halt every callout (the mutex is the interlock: a handler
// waiting for it is cancelled, one running is waited for), then destroy.
void close_conn(Conn *c, WorkerCounters &wc) {
  c->closing = true;
  for (callout_t &t : c->timer) {
    const bool waited = callout_halt(&t, &c->mtx);
    wc.halts.fetch_add(1, std::memory_order_relaxed);
    if (waited) wc.halts_waited.fetch_add(1, std::memory_order_relaxed);
  }
  for (callout_t &t : c->timer) callout_destroy(&t);
  wc.closes.fetch_add(1, std::memory_order_relaxed);
}

std::atomic<bool> stop_flag{false};
std::atomic<bool> interrupted{false};

void on_sigint(int) {
  interrupted.store(true);
  stop_flag.store(true);
}

struct Worker {
  unsigned index, nworkers;
  double rate;  // events per second for this worker
  std::thread thread;
};

// One simulated segment (or close) on a random connection of this worker.
void one_event(Conn *c, unsigned i, Rng &rng, WorkerCounters &wc) {
  pthread_mutex_lock(&c->mtx);
  std::uint64_t resets = 0, stops = 0;
  const unsigned what = rng.below(1000);
  if (what < 3) {  // 0.3%: the connection closes, a new one opens in its slot
    close_conn(c, wc);
    open_conn(c, i, rng);
    ++resets;
  } else if (c->idle) {
    // Idle connections see no traffic; the event goes nowhere.
  } else if (what < 420) {  // we send a segment: the retransmit timer runs while data is unacked
    if (c->unacked < 1000) ++c->unacked;
    if (!callout_pending(&c->timer[kRexmt])) {
      c->rexmt_shift = 0;
      arm(c, kRexmt, rto_ms(*c), tcp_timer_rexmt);
      ++resets;
    }
  } else if (what < 720) {  // an ACK arrives
    if (c->unacked > 0) {
      c->rexmt_shift = 0;
      if (c->unacked > 1 && rng.below(3) == 0) {  // partial ACK: restart the timer
        c->unacked = static_cast<std::uint16_t>(c->unacked / 2);
        arm(c, kRexmt, rto_ms(*c), tcp_timer_rexmt);
        ++resets;
      } else {  // everything ACKed: stop it
        c->unacked = 0;
        ++stops;
        callout_stop(&c->timer[kRexmt]);
      }
    }
  } else {  // a data segment arrives: delayed ACK, every second one ACKs now
    if (callout_pending(&c->timer[kDelack])) {
      ++stops;
      callout_stop(&c->timer[kDelack]);
    } else {
      arm(c, kDelack, kDelackMs, tcp_timer_delack);
      ++resets;
    }
  }
  if (!c->idle && what >= 3) {  // any traffic restarts the keepalive
    c->keep_probes = 0;
    arm(c, kKeep, kKeepIdleMs, tcp_timer_keep);
    ++resets;
  }
  pthread_mutex_unlock(&c->mtx);
  wc.resets.fetch_add(resets, std::memory_order_relaxed);
  wc.stops.fetch_add(stops, std::memory_order_relaxed);
}

void worker_main(Worker *w) {
  char name[16];
  std::snprintf(name, sizeof name, "demo/net%u", w->index);
  pthread_setname_np(pthread_self(), name);
  Rng rng{0x9e3779b97f4a7c15ull * (w->index + 1)};
  WorkerCounters &wc = worker_counters[w->index];
  const unsigned n = static_cast<unsigned>(conns.size());
  // My connections: index % nworkers == w->index.
  const unsigned mine = (n - w->index + w->nworkers - 1) / w->nworkers;
  if (mine == 0) return;
  // Pace in 1 ms slices: a burst of rate/1000 events, then sleep.
  const double per_slice = w->rate / 1000.0;
  double owed = 0;
  timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  while (!stop_flag.load(std::memory_order_relaxed)) {
    owed += per_slice;
    std::uint64_t done = 0;
    for (; owed >= 1; owed -= 1, ++done) {
      // Skewed like real traffic: 80% of the segments go to the busiest 10%
      // of the connections.
      const unsigned busy = mine / 10 + 1;
      const unsigned k = rng.below(10) < 8 ? rng.below(busy) : rng.below(mine);
      const unsigned i = w->index + k * w->nworkers;
      one_event(&conns[i], i, rng, wc);
    }
    wc.events.fetch_add(done, std::memory_order_relaxed);
    next.tv_nsec += 1000000;
    if (next.tv_nsec >= 1000000000) {
      next.tv_nsec -= 1000000000;
      ++next.tv_sec;
    }
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    // Fallen more than 100 ms behind (overloaded): do not try to catch up.
    if ((now.tv_sec - next.tv_sec) * 1000000000L + (now.tv_nsec - next.tv_nsec) > 100000000L) next = now;
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);
  }
  timespec cpu;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
  wc.cpu_ns.store(static_cast<std::uint64_t>(cpu.tv_sec) * 1000000000u +
                  static_cast<std::uint64_t>(cpu.tv_nsec));
}

// ---- measurements -----------------------------------------------------------------

struct Totals {
  std::uint64_t resets = 0, stops = 0, worker_cpu_ns = 0, fired = 0, fired_kind[3] = {0, 0, 0}, halts = 0,
                halts_waited = 0, closes = 0, events = 0, early = 0, late_max = 0;
  std::vector<std::uint64_t> late;  // the merged histogram
};

Totals collect(unsigned nworkers) {
  Totals t;
  t.late.assign(kBuckets, 0);
  for (unsigned w = 0; w < nworkers; ++w) {
    const WorkerCounters &wc = worker_counters[w];
    t.resets += wc.resets.load(std::memory_order_relaxed);
    t.stops += wc.stops.load(std::memory_order_relaxed);
    t.worker_cpu_ns += wc.cpu_ns.load(std::memory_order_relaxed);
    t.halts += wc.halts.load(std::memory_order_relaxed);
    t.halts_waited += wc.halts_waited.load(std::memory_order_relaxed);
    t.closes += wc.closes.load(std::memory_order_relaxed);
    t.events += wc.events.load(std::memory_order_relaxed);
  }
  for (unsigned c = 0; c < g_ncpu; ++c) {
    const CpuCounters &k = cpu_counters[c];
    t.resets += handler_resets[c].n.load(std::memory_order_relaxed);
    for (int b = 0; b < kBuckets; ++b) t.late[b] += k.late[b].load(std::memory_order_relaxed);
    for (int j = 0; j < 3; ++j) t.fired_kind[j] += k.fired[j].load(std::memory_order_relaxed);
    t.early += k.early.load(std::memory_order_relaxed);
    t.late_max = std::max(t.late_max, k.late_max.load(std::memory_order_relaxed));
  }
  t.fired = t.fired_kind[0] + t.fired_kind[1] + t.fired_kind[2];
  return t;
}

// The q-quantile of the lateness (ns), as the top of its bucket.
std::uint64_t quantile(const std::vector<std::uint64_t> &h, double q) {
  std::uint64_t total = 0;
  for (std::uint64_t n : h) total += n;
  if (total == 0) return 0;
  const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total)));
  std::uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += h[b];
    if (seen >= rank && h[b] != 0) return bucket_high(b);
  }
  return bucket_high(kBuckets - 1);
}

struct CpuTimes {
  double user = 0, sys = 0, softclock = 0;
};

CpuTimes cpu_times() {
  CpuTimes t;
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  t.user = static_cast<double>(ru.ru_utime.tv_sec) + static_cast<double>(ru.ru_utime.tv_usec) / 1e6;
  t.sys = static_cast<double>(ru.ru_stime.tv_sec) + static_cast<double>(ru.ru_stime.tv_usec) / 1e6;
  // Per thread, by name: "callout/N" are the softclock threads.
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  if (DIR *dir = opendir("/proc/self/task")) {
    while (dirent *e = readdir(dir)) {
      if (e->d_name[0] == '.') continue;
      char buf[512];
      const std::string path = std::string("/proc/self/task/") + e->d_name + "/stat";
      FILE *f = std::fopen(path.c_str(), "r");
      if (f == nullptr) continue;
      const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
      std::fclose(f);
      buf[n] = '\0';
      const char *open = std::strchr(buf, '('), *close = std::strrchr(buf, ')');
      if (open == nullptr || close == nullptr) continue;
      const std::string comm(open + 1, close);
      unsigned long utime = 0, stime = 0;
      // Fields after the name: state(3) ... utime(14) stime(15).
      if (std::sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        continue;
      const double secs = static_cast<double>(utime + stime) / hz;
      if (comm.rfind("callout/", 0) == 0) t.softclock += secs;
    }
    closedir(dir);
  }
  return t;
}

double peak_rss_mb() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // KiB on Linux
}

// 1234567 -> "1,234,567"
std::string grouped(std::uint64_t v) {
  const std::string digits = std::to_string(v);
  std::string s;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) s += ',';
    s += digits[i];
  }
  return s;
}

// 1234567 -> "1.23M"
std::string si(double v) {
  char b[32];
  if (v >= 1e9)
    std::snprintf(b, sizeof b, "%.2fG", v / 1e9);
  else if (v >= 1e6)
    std::snprintf(b, sizeof b, "%.2fM", v / 1e6);
  else if (v >= 1e3)
    std::snprintf(b, sizeof b, "%.1fk", v / 1e3);
  else
    std::snprintf(b, sizeof b, "%.0f", v);
  return b;
}

// ns -> "0.123 ms" / "45 us"
std::string dur(std::uint64_t ns) {
  char b[32];
  if (ns >= 1000000)
    std::snprintf(b, sizeof b, "%.2f ms", static_cast<double>(ns) / 1e6);
  else if (ns >= 1000)
    std::snprintf(b, sizeof b, "%.0f us", static_cast<double>(ns) / 1e3);
  else
    std::snprintf(b, sizeof b, "%" PRIu64 " ns", ns);
  return b;
}

// ---- the short "show callout" ---------------------------------------------------

// Runs callout_domain_dump() into a filtering stream that keeps the header
// lines and, for each CPU, the `keep` callouts due soonest (the full dump of
// 300 000 pending callouts would be 25 MB of text).
struct DumpFilter {
  using Entry = std::pair<long long, std::string>;  // ticks left, line
  size_t keep = 0;
  std::string partial;
  std::vector<std::string> header, running;
  std::vector<std::vector<Entry>> soonest;  // per CPU, a max-heap on ticks left
  std::uint64_t pending = 0;

  static bool later(const Entry &a, const Entry &b) { return a.first < b.first; }
  void line(const std::string &l) {
    long long left;
    unsigned cpu;
    char lvl[32];
    if (std::sscanf(l.c_str(), "%lld %u %31s", &left, &cpu, lvl) == 3) {
      ++pending;
      if (cpu >= soonest.size()) soonest.resize(cpu + 1);
      std::vector<Entry> &h = soonest[cpu];
      if (h.size() < keep) {
        h.emplace_back(left, l);
        std::push_heap(h.begin(), h.end(), later);
      } else if (left < h.front().first) {
        std::pop_heap(h.begin(), h.end(), later);
        h.back() = {left, l};
        std::push_heap(h.begin(), h.end(), later);
      }
    } else if (l.rfind("cpu ", 0) == 0) {
      running.push_back(l);
    } else {
      header.push_back(l);
    }
  }
  static ssize_t write(void *cookie, const char *buf, size_t size) {
    auto *self = static_cast<DumpFilter *>(cookie);
    for (size_t i = 0; i < size; ++i) {
      if (buf[i] == '\n') {
        self->line(self->partial);
        self->partial.clear();
      } else {
        self->partial.push_back(buf[i]);
      }
    }
    return static_cast<ssize_t>(size);
  }
};

void short_dump(size_t lines) {
  DumpFilter f;
  f.keep = std::max<size_t>(2, lines / g_ncpu);
  cookie_io_functions_t io{};
  io.write = &DumpFilter::write;
  FILE *out = fopencookie(&f, "w", io);
  if (out == nullptr) return;
  callout_domain_dump(dom, out);
  std::fclose(out);
  std::printf(
      "\nPending callouts: %s; per CPU the %zu due soonest (callout_domain_dump, NetBSD's \"show "
      "callout\"):\n",
      grouped(f.pending).c_str(), f.keep);
  for (const std::string &l : f.header) std::printf("  %s\n", l.c_str());
  for (std::vector<DumpFilter::Entry> &h : f.soonest) {
    std::sort_heap(h.begin(), h.end(), DumpFilter::later);
    for (const DumpFilter::Entry &e : h) std::printf("  %s\n", e.second.c_str());
  }
  for (const std::string &l : f.running) std::printf("  %s\n", l.c_str());
}

}  // namespace

int main(int argc, char **argv) {
  const Options opt = parse_options(argc, argv);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const bool tty = isatty(STDOUT_FILENO) != 0;

  // The domain: the default one unless --cpus / --hz ask for another.
  callout_domain_t *own = nullptr;
  if (opt.cpus == 0 && opt.hz == 0) {
    dom = callout_domain_default();
  } else {
    callout_domain_config cfg;
    callout_domain_config_init(&cfg);
    cfg.ncpu = opt.cpus;
    cfg.hz = opt.hz;
    if (const int err = callout_domain_create(&cfg, &own); err != 0) {
      std::fprintf(stderr, "callout-demo: callout_domain_create: %s\n", std::strerror(err));
      return 1;
    }
    dom = own;
  }
  g_hz = callout_domain_hz(dom);
  g_ncpu = callout_domain_ncpu(dom);
  const unsigned nworkers = g_ncpu;
  calibrate_origin();

  std::printf("callout-demo: simulated TCP stack, %s connections x 3 callouts, %u CPU%s, hz %u, %s domain\n",
              grouped(opt.connections).c_str(), g_ncpu, g_ncpu == 1 ? "" : "s", g_hz,
              own == nullptr ? "default" : "own");
  std::printf(
      "  target %s segments/s over %u network thread%s for %.1f s; timers: retransmit (RTO 200 ms..3 s),\n"
      "  delayed ACK (%.0f ms), keepalive (%.1f s idle, probes every %.2f s; scaled down from 2 h)\n",
      si(opt.rate).c_str(), nworkers, nworkers == 1 ? "" : "s", opt.duration, kDelackMs, kKeepIdleMs / 1000,
      kKeepIntvlMs / 1000);

  cpu_counters.reset(new CpuCounters[g_ncpu]);
  for (unsigned c = 0; c < g_ncpu; ++c) {
    for (auto &b : cpu_counters[c].late) b.store(0, std::memory_order_relaxed);
    for (auto &b : cpu_counters[c].fired) b.store(0, std::memory_order_relaxed);
  }
  worker_counters.reset(new WorkerCounters[nworkers]);
  handler_resets.reset(new HandlerResets[g_ncpu]);

  // Open every connection.
  const std::uint64_t t_setup = mono_ns();
  conns = std::vector<Conn>(opt.connections);
  {
    Rng rng{12345};
    for (unsigned i = 0; i < opt.connections; ++i) {
      Conn *c = &conns[i];
      pthread_mutex_init(&c->mtx, nullptr);
      c->generation = 0;
      pthread_mutex_lock(&c->mtx);
      open_conn(c, i, rng);
      pthread_mutex_unlock(&c->mtx);
    }
  }
  std::printf("  opened %s connections in %.0f ms\n\n", grouped(opt.connections).c_str(),
              static_cast<double>(mono_ns() - t_setup) / 1e6);

  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);

  const CpuTimes cpu0 = cpu_times();
  const std::uint64_t t0 = mono_ns();
  std::vector<Worker> workers(nworkers);
  for (unsigned w = 0; w < nworkers; ++w) {
    workers[w].index = w;
    workers[w].nworkers = nworkers;
    workers[w].rate = opt.rate / nworkers;
    workers[w].thread = std::thread(worker_main, &workers[w]);
  }

  // Progress: a line rewritten in place on a terminal, one line a second
  // otherwise.
  const std::uint64_t end = t0 + static_cast<std::uint64_t>(opt.duration * 1e9);
  const std::uint64_t step = tty ? 250000000u : 1000000000u;
  Totals prev = collect(nworkers);
  std::uint64_t prev_t = t0;
  for (std::uint64_t next = t0 + step; !stop_flag.load();) {
    const std::uint64_t now = mono_ns();
    if (now >= end) break;
    const std::uint64_t wake = std::min(next, end);
    if (wake > now) {
      const std::uint64_t left = wake - now;
      timespec ts{static_cast<time_t>(left / 1000000000u), static_cast<long>(left % 1000000000u)};
      nanosleep(&ts, nullptr);
      if (mono_ns() < wake && !stop_flag.load()) continue;
    }
    next += step;
    const std::uint64_t t = mono_ns();
    const Totals cur = collect(nworkers);
    const double dt = static_cast<double>(t - prev_t) / 1e9;
    std::vector<std::uint64_t> window(kBuckets);
    for (int b = 0; b < kBuckets; ++b) window[b] = cur.late[b] - prev.late[b];
    const CpuTimes ct = cpu_times();
    const double cpu_pct =
        100.0 * (ct.user + ct.sys - cpu0.user - cpu0.sys) / (static_cast<double>(t - t0) / 1e9);
    // Under 80 columns, so that a terminal does not wrap the rewritten line.
    char line[256];
    std::snprintf(line, sizeof line, "[%4.1fs] reset %s/s  stop %s/s  fire %s/s  late p99 %s  cpu %.0f%%",
                  static_cast<double>(t - t0) / 1e9,
                  si(static_cast<double>(cur.resets - prev.resets) / dt).c_str(),
                  si(static_cast<double>(cur.stops - prev.stops) / dt).c_str(),
                  si(static_cast<double>(cur.fired - prev.fired) / dt).c_str(),
                  dur(quantile(window, 0.99)).c_str(), cpu_pct);
    if (tty)
      std::printf("\r\033[K%s", line);
    else
      std::printf("%s\n", line);
    std::fflush(stdout);
    prev = cur;
    prev_t = t;
  }
  stop_flag.store(true);
  for (Worker &w : workers) w.thread.join();
  const std::uint64_t t1 = mono_ns();
  const CpuTimes cpu1 = cpu_times();
  const Totals tot = collect(nworkers);
  if (tty) std::printf("\r\033[K");
  if (interrupted.load()) std::printf("(interrupted)\n");

  callout_stats es{};
  es.size = sizeof es;
  const bool have_engine_stats = callout_domain_stats(dom, -1, &es) == 0;

  // ---- the summary table ----
  const double secs = static_cast<double>(t1 - t0) / 1e9;
  const double cpu_used = (cpu1.user + cpu1.sys) - (cpu0.user + cpu0.sys);
  auto row = [&](const char *what, std::uint64_t n, const char *note = "") {
    std::printf("  %-26s %15s %13s/s  %s\n", what, grouped(n).c_str(),
                si(static_cast<double>(n) / secs).c_str(), note);
  };
  std::printf("Summary: %.2f s, %s connections, %u CPU%s, hz %u (1 tick = %s)\n", secs,
              grouped(opt.connections).c_str(), g_ncpu, g_ncpu == 1 ? "" : "s", g_hz,
              dur(static_cast<std::uint64_t>(1e9 / g_hz)).c_str());
  std::printf("  %-26s %15s %15s\n", "", "total", "rate");
  char note[128];
  std::snprintf(note, sizeof note, "(target %s/s%s)", si(opt.rate).c_str(),
                static_cast<double>(tot.events) < 0.9 * opt.rate * secs ? ": the machine is busy" : "");
  row("simulated segments", tot.events, note);
  row("callouts reset", tot.resets);
  row("callouts stopped", tot.stops);
  std::snprintf(note, sizeof note, "(1 in %.0f resets)",
                tot.fired ? static_cast<double>(tot.resets) / static_cast<double>(tot.fired) : 0.0);
  row("callouts fired", tot.fired, note);
  row("  retransmit", tot.fired_kind[kRexmt]);
  row("  delayed ACK", tot.fired_kind[kDelack]);
  row("  keepalive", tot.fired_kind[kKeep]);
  row("connections closed+opened", tot.closes);
  std::snprintf(note, sizeof note, "(%s waited for a handler)", grouped(tot.halts_waited).c_str());
  row("halts", tot.halts, note);
  std::printf("  %-26s p50 %s   p99 %s   max %s%s\n", "lateness (vs due tick)",
              dur(quantile(tot.late, 0.50)).c_str(), dur(quantile(tot.late, 0.99)).c_str(),
              dur(tot.late_max).c_str(), tot.early ? "   EARLY FIRES SEEN" : "");
  std::printf("  %-26s %.2f s = %.0f%% of one CPU (user %.2f s, sys %.2f s);\n", "CPU time", cpu_used,
              100.0 * cpu_used / secs, cpu1.user - cpu0.user, cpu1.sys - cpu0.sys);
  std::printf("  %-26s softclock threads %.2f s, network threads %.2f s\n", "",
              cpu1.softclock - cpu0.softclock, static_cast<double>(tot.worker_cpu_ns) / 1e9);
  std::printf("  %-26s %.1f MB (connections: %.1f MB, %zu bytes each)\n", "peak memory (max RSS)",
              peak_rss_mb(), static_cast<double>(sizeof(Conn)) * opt.connections / 1048576.0, sizeof(Conn));
  if (have_engine_stats)
    std::printf("  %-26s %s pending, %s softclock wake-ups/s, %s handlers >= 1 tick late\n",
                "engine counters", grouped(es.pending).c_str(),
                si(static_cast<double>(es.wakeups) / secs).c_str(), grouped(es.fired_late).c_str());
  if (have_engine_stats) {
    // The longest time a CPU lock was held, by what held it: a reset or stop
    // of a connection's timer waited at most about that long for it.  The
    // mutex wait is the connections' own locks, not the library's.
    std::printf("  %-26s cascade %s, batch %s, reset/stop %s (target <= 50 us)\n", "longest CPU-lock hold",
                dur(es.lock_hold_ns_max_cascade).c_str(), dur(es.lock_hold_ns_max_batch).c_str(),
                dur(es.lock_hold_ns_max_api).c_str());
    std::printf("  %-26s %s in all, longest %s\n", "dispatch waits for a mutex",
                dur(es.assoc_wait_ns_total).c_str(), dur(es.assoc_wait_ns_max).c_str());
  }
  if (tot.early) std::printf("  ERROR: %s handlers ran before their due tick\n", grouped(tot.early).c_str());

  short_dump(12);
  // The callout-stat view: the library's own per-CPU counters and its
  // lateness histogram (callout_domain_print_stats).
  std::printf("\nLibrary counters (callout_domain_print_stats, the \"callout-stat\" view):\n");
  callout_domain_print_stats(dom, stdout);

  // Close everything (halt + destroy), then the domain if it is ours.
  WorkerCounters closing;
  for (Conn &c : conns) {
    pthread_mutex_lock(&c.mtx);
    close_conn(&c, closing);
    pthread_mutex_unlock(&c.mtx);
    pthread_mutex_destroy(&c.mtx);
  }
  if (own != nullptr) {
    if (const int err = callout_domain_destroy(own); err != 0)
      std::fprintf(stderr, "callout-demo: callout_domain_destroy: %s\n", std::strerror(err));
  }
  return tot.early ? 1 : 0;
}
