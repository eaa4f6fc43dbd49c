// engine_test.cpp -- the engine features beyond SPEC.md: counters and dump,
// shutdown, precision windows, the external clock.  (Asynchronous halt is
// tested with the other halt tests, in halt_test.cpp; fork with the other
// fork tests, in edge/edge_test.cpp.)
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "callout/callout.h"
#include "callout_impl.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace {

callout_domain_t *make_domain(enum callout_clock clock, unsigned ncpu, unsigned hz = 1000) {
  callout_domain_config cfg;
  callout_domain_config_init(&cfg);
  cfg.clock = clock;
  cfg.ncpu = ncpu;
  cfg.hz = hz;
  callout_domain_t *d = nullptr;
  EXPECT_EQ(callout_domain_create(&cfg, &d), 0);
  return d;
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

using ct::stats_of;

std::atomic<int> g_runs;
void count_run(void *) { g_runs.fetch_add(1); }

// A handler that blocks until the test releases it.
struct Gate {
  std::atomic<bool> entered{false};
  std::atomic<bool> release{false};
  std::atomic<int> runs{0};
  std::atomic<int> concurrent{0};
  std::atomic<int> max_concurrent{0};
  callout_t *self = nullptr;
  bool rearm = false;
};

void gate_handler(void *p) {
  auto *g = static_cast<Gate *>(p);
  const int now = g->concurrent.fetch_add(1) + 1;
  int seen = g->max_concurrent.load();
  while (now > seen && !g->max_concurrent.compare_exchange_weak(seen, now)) {
  }
  g->runs.fetch_add(1);
  g->entered.store(true);
  while (!g->release.load()) std::this_thread::sleep_for(std::chrono::microseconds(100));
  if (g->rearm) callout_schedule(g->self, 1);
  g->concurrent.fetch_sub(1);
}

TEST(Stats, CountsEveryKindOfOperation) {
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_MANUAL, 2);
  callout_t a, b;
  callout_init_domain(&a, CALLOUT_MPSAFE, d);
  callout_init_domain(&b, CALLOUT_MPSAFE, d);
  callout_bind(&a, 0);
  callout_bind(&b, 1);
  g_runs = 0;
  callout_reset(&a, 5, count_run, nullptr);   // scheduled
  callout_reset(&a, 10, count_run, nullptr);  // rescheduled (lazy)
  callout_reset(&b, 3, count_run, nullptr);   // scheduled
  EXPECT_EQ(stats_of(d).pending, 2u);
  EXPECT_FALSE(callout_stop(&b));  // stopped
  ASSERT_EQ(callout_domain_advance(d, 10), 0);
  EXPECT_EQ(g_runs.load(), 1);
  EXPECT_FALSE(callout_halt(&a, nullptr));
  callout_stats total = stats_of(d);
  EXPECT_EQ(total.scheduled, 2u);
  EXPECT_EQ(total.rescheduled, 1u);
  EXPECT_EQ(total.stopped, 1u);
  EXPECT_EQ(total.fired, 1u);
  EXPECT_EQ(total.fired_late, 0u);
  EXPECT_EQ(total.halts, 1u);
  EXPECT_EQ(total.halts_waited, 0u);
  EXPECT_EQ(total.pending, 0u);
  callout_stats cpu0 = stats_of(d, 0), cpu1 = stats_of(d, 1);
  EXPECT_EQ(cpu0.fired, 1u);
  EXPECT_EQ(cpu1.fired, 0u);
  EXPECT_EQ(cpu1.stopped, 1u);
  callout_stats bad;
  bad.size = 8;
  EXPECT_EQ(callout_domain_stats(d, -1, &bad), EINVAL);
  bad.size = sizeof bad;
  EXPECT_EQ(callout_domain_stats(d, 2, &bad), EINVAL);
  callout_destroy(&a);
  callout_destroy(&b);
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

TEST(Stats, LatenessHistogramOnTheMonotonicClock) {
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_MONOTONIC, 1);
  callout_t c;
  callout_init_domain(&c, CALLOUT_MPSAFE, d);
  g_runs = 0;
  for (int i = 0; i < 3; ++i) {
    callout_reset(&c, 2, count_run, nullptr);
    ASSERT_TRUE(eventually([&] { return g_runs.load() == i + 1; }));
  }
  callout_halt(&c, nullptr);
  const callout_stats st = stats_of(d);
  EXPECT_EQ(st.fired, 3u);
  std::uint64_t in_histogram = 0;
  for (std::uint64_t n : st.lateness_ns_log2) in_histogram += n;
  EXPECT_EQ(in_histogram, 3u);
  EXPECT_GE(st.wakeups, 1u);
  callout_destroy(&c);
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

extern "C" void engine_test_dump_handler(void *) {}

// What print (callout_domain_dump or _print_stats) prints for d.
std::string printed(void (*print)(callout_domain_t *, FILE *), callout_domain_t *d) {
  char *buf = nullptr;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  print(d, out);
  std::fclose(out);
  const std::string text(buf, len);
  std::free(buf);
  return text;
}

TEST(Dump, ListsPendingCalloutsWithTicksLeftAndCpu) {
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_MANUAL, 2);
  callout_t c[3];
  for (int i = 0; i < 3; ++i) {
    callout_init_domain(&c[i], CALLOUT_MPSAFE, d);
    callout_bind(&c[i], static_cast<unsigned>(i % 2));
    callout_reset(&c[i], 10 + i * 100, engine_test_dump_handler, &c[i]);
  }
  const std::string text = printed(callout_domain_dump, d);
  EXPECT_NE(text.find("ticks now 0"), std::string::npos) << text;
  // One line per pending callout, each naming its ticks left.
  EXPECT_NE(text.find("          10    0"), std::string::npos) << text;
  EXPECT_NE(text.find("         110    1"), std::string::npos) << text;
  EXPECT_NE(text.find("         210    0"), std::string::npos) << text;
  char addr[32];
  std::snprintf(addr, sizeof addr, "%p", static_cast<void *>(&c[1]));
  EXPECT_NE(text.find(addr), std::string::npos) << text;
  for (auto &x : c) {
    callout_stop(&x);
    callout_destroy(&x);
  }
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

// A handler with internal linkage: in no dynamic symbol table, so dladdr()
// cannot name it; only the program's full symbol table (libdw) can.  Its
// body is its own, so that identical-code folding cannot merge it with
// another function and give its address another name.
std::atomic<int> g_static_handler_runs{0};
static void dump_static_handler(void *) { g_static_handler_runs.fetch_add(3); }

TEST(Dump, NamesAStaticHandler) {
#ifndef CALLOUT_TEST_HAVE_LIBDW
  GTEST_SKIP() << "built without libdw (CALLOUT_WITH_LIBDW=OFF or libdw-dev missing): the dump names only "
                  "handlers in the dynamic symbol table";
#endif
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_MANUAL, 1);
  callout_t c;
  callout_init_domain(&c, CALLOUT_MPSAFE, d);
  callout_reset(&c, 10, dump_static_handler, nullptr);
  const std::string text = printed(callout_domain_dump, d);
  // The handler column: "(anonymous namespace)::dump_static_handler(void*) (0x...)".
  char addr[32];
  std::snprintf(addr, sizeof addr, "(%p)", reinterpret_cast<void *>(dump_static_handler));
  const size_t at = text.find(addr);
  ASSERT_NE(at, std::string::npos) << text;
  const size_t line = text.rfind('\n', at);
  EXPECT_NE(text.substr(line, at - line).find("::dump_static_handler(void*) "), std::string::npos) << text;
  callout_stop(&c);
  callout_destroy(&c);
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

// Runs advance in a helper thread (a blocked handler makes it wait).
struct Advancer {
  std::thread t;
  Advancer(callout_domain_t *d, uint64_t n) : t([d, n] { callout_domain_advance(d, n); }) {}
  ~Advancer() { t.join(); }
};

TEST(Shutdown, IgnoresLaterArmsUntilInit) {
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_MANUAL, 1);
  callout_t c;
  callout_init_domain(&c, CALLOUT_MPSAFE, d);
  g_runs = 0;
  callout_reset(&c, 3, count_run, nullptr);
  callout_shutdown(&c);
  EXPECT_FALSE(callout_pending(&c));
  callout_reset(&c, 1, count_run, nullptr);
  callout_schedule(&c, 1);
  EXPECT_FALSE(callout_pending(&c));
  ASSERT_EQ(callout_domain_advance(d, 10), 0);
  EXPECT_EQ(g_runs.load(), 0);
  EXPECT_EQ(stats_of(d).ignored, 2u);
  callout_destroy(&c);
  callout_init_domain(&c, CALLOUT_MPSAFE, d);
  callout_reset(&c, 1, count_run, nullptr);
  ASSERT_EQ(callout_domain_advance(d, 1), 0);
  EXPECT_EQ(g_runs.load(), 1);
  callout_destroy(&c);
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

TEST(Shutdown, SyncWaitsAndTheRunningHandlerCannotRearm) {
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_MANUAL, 2);
  callout_t c;
  callout_init_domain(&c, CALLOUT_MPSAFE, d);
  Gate g;
  g.self = &c;
  g.rearm = true;
  callout_reset(&c, 1, gate_handler, &g);
  std::atomic<bool> returned{false};
  std::atomic<bool> waited{false};
  {
    Advancer adv(d, 1);
    ASSERT_TRUE(eventually([&] { return g.entered.load(); }));
    std::thread halter([&] {
      waited = callout_shutdown_sync(&c, nullptr);
      returned = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_FALSE(returned.load());  // still waiting for the handler
    g.release = true;
    halter.join();
  }
  EXPECT_TRUE(waited.load());
  EXPECT_FALSE(callout_pending(&c));
  ASSERT_EQ(callout_domain_advance(d, 10), 0);
  EXPECT_EQ(g.runs.load(), 1);
  callout_destroy(&c);
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

struct WindowRecord {
  std::uint64_t lo = 0, hi = 0, fired_at = 0;
  callout_domain_t *d = nullptr;
};
void window_handler(void *p) {
  auto *w = static_cast<WindowRecord *>(p);
  w->fired_at = callout_domain_ticks(w->d);
}

// Fires n callouts spread over `span` ticks, with slack = percent% of each
// delay; checks every one ran inside its window; returns the number of
// distinct ticks at which something ran.
size_t distinct_fire_ticks(int n, int span, int percent) {
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_MANUAL, 1);
  std::vector<callout_t> cs(static_cast<size_t>(n));
  std::vector<WindowRecord> rec(static_cast<size_t>(n));
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> delay(1, span);
  for (size_t i = 0; i < cs.size(); ++i) {
    const int ticks = delay(rng);
    const int slack = ticks * percent / 100;
    rec[i].d = d;
    rec[i].lo = static_cast<std::uint64_t>(ticks);
    rec[i].hi = static_cast<std::uint64_t>(ticks + slack);
    callout_init_domain(&cs[i], CALLOUT_MPSAFE, d);
    callout_reset_window(&cs[i], ticks, slack, window_handler, &rec[i]);
  }
  EXPECT_EQ(callout_domain_advance(d, static_cast<uint64_t>(span) * 2), 0);
  std::set<std::uint64_t> ticks;
  for (size_t i = 0; i < cs.size(); ++i) {
    EXPECT_GE(rec[i].fired_at, rec[i].lo) << "callout " << i << " ran before its window";
    EXPECT_LE(rec[i].fired_at, rec[i].hi) << "callout " << i << " ran after its window";
    ticks.insert(rec[i].fired_at);
    callout_destroy(&cs[i]);
  }
  EXPECT_EQ(callout_domain_destroy(d), 0);
  return ticks.size();
}

TEST(Window, RunsInsideTheWindowAndCoalesces) {
  const size_t exact = distinct_fire_ticks(100000, 10000, 0);
  const size_t slack = distinct_fire_ticks(100000, 10000, 10);
  std::printf("distinct wake-up ticks: exact %zu, 10%% slack %zu (%.1fx fewer)\n", exact, slack,
              static_cast<double>(exact) / static_cast<double>(slack));
  EXPECT_GE(exact, 10 * slack);
}

TEST(Window, NegativeSlackIsExact) {
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_MANUAL, 1);
  callout_t c;
  WindowRecord w;
  w.d = d;
  callout_init_domain(&c, CALLOUT_MPSAFE, d);
  callout_reset_window(&c, 77, -5, window_handler, &w);
  ASSERT_EQ(callout_domain_advance(d, 100), 0);
  EXPECT_EQ(w.fired_at, 77u);
  callout_destroy(&c);
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

std::atomic<int> g_loop_cpu{-2};
std::atomic<pthread_t> g_loop_thread{};
callout_domain_t *g_loop_domain;
void loop_handler(void *) {
  g_loop_cpu = callout_domain_curcpu(g_loop_domain);
  g_loop_thread = pthread_self();
  g_runs.fetch_add(1);
}

TEST(External, ConfigRules) {
  callout_domain_config cfg;
  callout_domain_config_init(&cfg);
  cfg.clock = CALLOUT_CLOCK_EXTERNAL;
  cfg.ncpu = 2;
  callout_domain_t *d = nullptr;
  EXPECT_EQ(callout_domain_create(&cfg, &d), EINVAL);
  EXPECT_EQ(d, nullptr);
  callout_domain_t *m = make_domain(CALLOUT_CLOCK_MANUAL, 1);
  EXPECT_EQ(callout_domain_fd(m), -1);
  EXPECT_EQ(callout_domain_run(m), 0u);
  EXPECT_EQ(callout_domain_next_timeout(m), -1);
  EXPECT_EQ(callout_domain_destroy(m), 0);
}

TEST(External, LoopThreadRunsHandlersWhenTheFdIsReadable) {
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_EXTERNAL, 0);
  g_loop_domain = d;
  ASSERT_EQ(callout_domain_ncpu(d), 1u);
  const int fd = callout_domain_fd(d);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(callout_domain_next_timeout(d), -1);
  callout_t c;
  callout_init_domain(&c, CALLOUT_MPSAFE, d);
  g_runs = 0;
  const auto armed = std::chrono::steady_clock::now();
  callout_reset(&c, 20, loop_handler, nullptr);
  const int64_t timeout = callout_domain_next_timeout(d);
  const auto asked = std::chrono::steady_clock::now();
  // The callout is due more than 19 ms after `armed` (the current tick may
  // be nearly over), so the timeout is positive -- unless this thread was
  // preempted for that long between the two calls (a loaded CI machine),
  // when 0 is the right answer.
  if (asked - armed < std::chrono::milliseconds(19)) {
    EXPECT_GT(timeout, 0);
  }
  EXPECT_GE(timeout, 0);
  EXPECT_LE(timeout, 21'000'000);
  // Nothing runs by itself: no thread of the domain exists.
  std::this_thread::sleep_for(std::chrono::milliseconds(40));
  EXPECT_EQ(g_runs.load(), 0);
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  EXPECT_GE(std::chrono::steady_clock::now() - armed, std::chrono::milliseconds(20));
  EXPECT_EQ(callout_domain_run(d), 1u);
  EXPECT_EQ(g_runs.load(), 1);
  EXPECT_EQ(g_loop_cpu.load(), 0);
  EXPECT_TRUE(pthread_equal(g_loop_thread.load(), pthread_self()));
  EXPECT_EQ(callout_domain_curcpu(d), -1);  // only inside run()
  // Drained and disarmed: not readable any more.
  p.revents = 0;
  EXPECT_EQ(poll(&p, 1, 0), 0);
  EXPECT_EQ(callout_domain_next_timeout(d), -1);
  // A callout added from another thread re-arms the fd earlier.  The fd
  // may first become readable at a cascade point at which nothing runs (the
  // wheel was last advanced long ago, so the new callout sits in a level-1
  // bucket whose time has already passed): run() then only cascades and
  // returns 0.  A loop polls again; the handler must run within a few
  // rounds, in this thread.
  callout_reset(&c, 100000, loop_handler, nullptr);
  std::thread([&] { callout_reset(&c, 1, loop_handler, nullptr); }).join();
  unsigned ran = 0;
  for (int round = 0; round < 4 && ran == 0; ++round) {
    ASSERT_EQ(poll(&p, 1, 5000), 1);
    ran = callout_domain_run(d);
  }
  EXPECT_EQ(ran, 1u);
  EXPECT_EQ(g_runs.load(), 2);
  EXPECT_FALSE(callout_halt(&c, nullptr));
  callout_destroy(&c);
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

}  // namespace

namespace {

TEST(Version, LibraryAndHeaderAgree) {
  char want[32];
  std::snprintf(want, sizeof want, "%d.%d.%d", CALLOUT_VERSION_MAJOR, CALLOUT_VERSION_MINOR,
                CALLOUT_VERSION_PATCH);
  EXPECT_STREQ(callout_version(), want);
}

TEST(Stats, PrintStatsShowsATableAndTheLatenessBars) {
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_MONOTONIC, 2);
  callout_t c;
  callout_init_domain(&c, CALLOUT_MPSAFE, d);
  g_runs = 0;
  callout_reset(&c, 1, count_run, nullptr);
  ASSERT_TRUE(eventually([] { return g_runs.load() == 1; }));
  // The softclock counts the run (and its lateness) only after the handler
  // returned; halt waits for that, so the bars below include this run.
  callout_halt(&c, nullptr);
  const std::string text = printed(callout_domain_print_stats, d);
  EXPECT_NE(text.find("total"), std::string::npos) << text;
  EXPECT_NE(text.find("lateness"), std::string::npos) << text;
  EXPECT_NE(text.find('#'), std::string::npos) << text;
  callout_destroy(&c);
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

}  // namespace

// callout_domain_check reports what it finds (it writes under the CPU lock
// to a memory stream and copies that to `out` after): a pending callout
// whose handler was wiped is named in the report, and the count says 1.

TEST(Check, ReportsAPendingCalloutWithoutAHandler) {
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_MANUAL, 1);
  callout_t c;
  callout_init_domain(&c, CALLOUT_MPSAFE, d);
  callout_reset(
      &c, 10, [](void *) {}, nullptr);
  auto *ci = libcallout::internal::impl(&c);
  const callout_func_t saved = ci->func;
  ci->func = nullptr;  // no thread looks at it: the clock is manual and not advanced
  FILE *out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(callout_domain_check(d, out), 1);
  std::rewind(out);
  char line[256] = {};
  ASSERT_NE(std::fgets(line, sizeof line, out), nullptr);
  EXPECT_NE(std::strstr(line, "pending callout has no handler"), nullptr) << line;
  std::fclose(out);
  ci->func = saved;
  EXPECT_EQ(callout_domain_check(d, nullptr), 0);
  callout_stop(&c);
  callout_destroy(&c);
  EXPECT_EQ(callout_domain_destroy(d), 0);
}
