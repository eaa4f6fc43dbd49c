// stats_test.cpp -- the lock-hold and associated-lock-wait counters of
// callout_domain_stats, and the sizes of struct callout_stats it accepts.
// Only lower bounds on times (a wait the test itself imposed), never upper
// bounds: the machine is shared.
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "callout/callout.h"
#include "cpu.h"
#include "domain.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace {

using libcallout::internal::Cpu;
using libcallout::internal::kHoldSample;

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

using ct::stats_of;
using ct::thread_state;

std::atomic<int> g_runs;
void count_run(void *) { g_runs.fetch_add(1); }

// The id of this process's thread named `name`, or 0.
long task_named(const std::string &name) {
  long tid = 0;
  DIR *dir = opendir("/proc/self/task");
  if (dir == nullptr) return 0;
  while (dirent *e = readdir(dir)) {
    std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
    std::string s;
    if (comm && std::getline(comm, s) && s == name) tid = std::atol(e->d_name);
  }
  closedir(dir);
  return tid;
}

bool dispatching(callout_domain_t *d) {
  Cpu *cpu = &d->cpus[0];
  cpu->lock.lock();
  const bool r = cpu->dispatching;
  cpu->lock.unlock();
  return r;
}

// A dispatch that finds its callout's mutex held waits for it; the wait is
// counted as assoc_wait, not as a lock hold.  The test holds the mutex, sees
// the dispatching thread asleep on it (so it has started timing), keeps it
// kHoldMs more, and releases it: the recorded wait is at least that.
TEST(LockStats, AssociatedMutexWaitIsCounted) {
  constexpr int kHoldMs = 30;
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_VIRTUAL, 1);
  pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
  callout_t c;
  callout_init_mtx(&c, d, &mtx, CALLOUT_MPSAFE);
  g_runs = 0;
  pthread_mutex_lock(&mtx);
  callout_reset(&c, 1, count_run, nullptr);
  std::atomic<long> tid{0};
  // On the virtual clock the thread calling advance runs the handlers.
  std::thread advancer([&] {
    tid = syscall(SYS_gettid);
    callout_domain_advance(d, 1);
  });
  while (tid.load() == 0 || !dispatching(d) || thread_state(tid.load()) != 'S')
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  std::this_thread::sleep_for(std::chrono::milliseconds(kHoldMs));
  pthread_mutex_unlock(&mtx);
  advancer.join();
  EXPECT_EQ(g_runs.load(), 1);
  const callout_stats st = stats_of(d);
  EXPECT_GE(st.assoc_wait_ns_max, std::uint64_t{kHoldMs} * 1000000);
  EXPECT_GE(st.assoc_wait_ns_total, st.assoc_wait_ns_max);

  // An uncontended mutex costs no wait at all (and no clock read).
  const std::uint64_t total = st.assoc_wait_ns_total;
  callout_reset(&c, 1, count_run, nullptr);
  ASSERT_EQ(callout_domain_advance(d, 1), 0);
  EXPECT_EQ(g_runs.load(), 2);
  EXPECT_EQ(stats_of(d).assoc_wait_ns_total, total);
  callout_halt(&c, nullptr);
  callout_destroy(&c);
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

// The same for giant, on a manual clock (a softclock thread dispatches).
TEST(LockStats, GiantWaitIsCounted) {
  constexpr int kHoldMs = 30;
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_MANUAL, 1);
  callout_t c;
  callout_init_domain(&c, 0, d);  // not MPSAFE: runs under giant
  g_runs = 0;
  callout_giant_enter(d);
  callout_reset(&c, 1, count_run, nullptr);
  std::thread advancer([&] { callout_domain_advance(d, 1); });
  // The softclock thread sleeps on giant once it is dispatching; its state
  // is read from /proc, where it is found by its name.
  const long tid = task_named("callout/0");
  ASSERT_NE(tid, 0);
  while (!dispatching(d) || thread_state(tid) != 'S')
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  std::this_thread::sleep_for(std::chrono::milliseconds(kHoldMs));
  callout_giant_exit(d);
  advancer.join();
  EXPECT_EQ(g_runs.load(), 1);
  const callout_stats st = stats_of(d);
  EXPECT_GE(st.assoc_wait_ns_max, std::uint64_t{kHoldMs} * 1000000);
  EXPECT_GE(st.assoc_wait_ns_total, st.assoc_wait_ns_max);
  callout_halt(&c, nullptr);
  callout_destroy(&c);
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

// Initialises every callout of cs on d and arms it `first` to first + 999
// ticks ahead (beyond level 0 when first >= 512), counting runs in g_runs.
void arm_beyond_level0(std::vector<callout_t> &cs, callout_domain_t *d, int first) {
  g_runs = 0;
  for (std::size_t i = 0; i < cs.size(); ++i) {
    callout_init_domain(&cs[i], CALLOUT_MPSAFE, d);
    callout_reset(&cs[i], first + static_cast<int>(i % 1000), count_run, nullptr);
  }
}

// Callouts armed far ahead sit in high wheel levels; advancing past them
// re-places (cascades) them under the CPU lock: that hold is timed.
TEST(LockStats, CascadeHoldIsCounted) {
  constexpr int kN = 20000;
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_VIRTUAL, 1);
  std::vector<callout_t> cs(kN);
  arm_beyond_level0(cs, d, 70000);
  EXPECT_EQ(stats_of(d).lock_hold_ns_max_cascade, 0u);
  ASSERT_EQ(callout_domain_advance(d, 72000), 0);
  EXPECT_EQ(g_runs.load(), kN);
  EXPECT_GT(stats_of(d).lock_hold_ns_max_cascade, 0u);
  for (auto &c : cs) callout_destroy(&c);
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

// The same in an event loop (external clock): callout_domain_run() re-places
// the callouts of passed high-level buckets in bounded, timed chunks, as the
// softclock does.  100 kHz ticks, so that callouts beyond level 0 (512
// ticks) are due within tens of milliseconds.
TEST(LockStats, CascadeHoldIsCountedInTheEventLoop) {
  constexpr int kN = 5000;
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_EXTERNAL, 0, 100000);
  ASSERT_NE(d, nullptr);
  std::vector<callout_t> cs(kN);
  arm_beyond_level0(cs, d, 2000);
  EXPECT_EQ(stats_of(d).lock_hold_ns_max_cascade, 0u);
  // No time limit that could fail on a slow machine, only a watchdog.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (g_runs.load() != kN && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    callout_domain_run(d);
  }
  ASSERT_EQ(g_runs.load(), kN);
  EXPECT_GT(stats_of(d).lock_hold_ns_max_cascade, 0u);
  for (auto &c : cs) callout_destroy(&c);
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

// API calls and the softclock's dispatch bookkeeping are timed on a sample
// of one lock hold in kHoldSample per CPU: after more holds than that, both
// maxima are set, and none before.
TEST(LockStats, SampledHoldsAreCounted) {
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_VIRTUAL, 1);
  callout_t c;
  callout_init_domain(&c, CALLOUT_MPSAFE, d);
  for (std::uint32_t i = 0; i + 1 < kHoldSample; ++i) callout_stop(&c);
  EXPECT_EQ(stats_of(d).lock_hold_ns_max_api, 0u);
  for (std::uint32_t i = 0; i < kHoldSample; ++i) callout_stop(&c);
  EXPECT_GT(stats_of(d).lock_hold_ns_max_api, 0u);

  // Handlers: each dispatch takes the lock once after its handler.
  g_runs = 0;
  EXPECT_EQ(stats_of(d).lock_hold_ns_max_batch, 0u);
  for (std::uint32_t i = 0; i < 2 * kHoldSample; ++i) {
    callout_reset(&c, 1, count_run, nullptr);
    ASSERT_EQ(callout_domain_advance(d, 1), 0);
  }
  EXPECT_EQ(g_runs.load(), static_cast<int>(2 * kHoldSample));
  EXPECT_GT(stats_of(d).lock_hold_ns_max_batch, 0u);
  callout_destroy(&c);
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

// The same on the monotonic clock, where a softclock thread dispatches many
// callouts due at the same tick in one batch.
TEST(LockStats, BatchHoldsAreCountedOnTheMonotonicClock) {
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_MONOTONIC, 1);
  std::vector<callout_t> cs(3 * kHoldSample);
  g_runs = 0;
  for (auto &c : cs) {
    callout_init_domain(&c, CALLOUT_MPSAFE, d);
    callout_reset(&c, 1, count_run, nullptr);
  }
  // No time limit that could fail on a slow machine: they all run, soon.
  while (g_runs.load() != static_cast<int>(cs.size()))
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_GT(stats_of(d).lock_hold_ns_max_batch, 0u);
  for (auto &c : cs) callout_halt(&c, nullptr);
  for (auto &c : cs) callout_destroy(&c);
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

// A program built against the 1.0 header passes the 1.0 size, which ends
// with the lateness histogram: it gets exactly those fields, and nothing
// past them is written.  Smaller than that is EINVAL; larger (a newer
// header) gets its unknown tail zeroed.
TEST(LockStats, StatsAcceptsTheOldAndNewerSizes) {
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_VIRTUAL, 1);
  callout_t c;
  callout_init_domain(&c, CALLOUT_MPSAFE, d);
  callout_reset(&c, 5, count_run, nullptr);
  constexpr size_t kV1 = offsetof(callout_stats, lateness_ns_log2) + sizeof(callout_stats::lateness_ns_log2);
  static_assert(kV1 < sizeof(callout_stats));

  std::vector<unsigned char> buf(sizeof(callout_stats) + 64, 0xab);
  callout_stats v1;
  std::memset(&v1, 0xab, sizeof v1);
  v1.size = kV1;
  std::memcpy(buf.data(), &v1, sizeof v1);
  ASSERT_EQ(callout_domain_stats(d, -1, reinterpret_cast<callout_stats *>(buf.data())), 0);
  std::memcpy(&v1, buf.data(), sizeof v1);
  EXPECT_EQ(v1.size, kV1);
  EXPECT_EQ(v1.scheduled, 1u);
  EXPECT_EQ(v1.pending, 1u);
  for (size_t i = kV1; i < buf.size(); ++i) ASSERT_EQ(buf[i], 0xab) << "byte " << i << " past the 1.0 struct";

  callout_stats small;
  small.size = kV1 - 1;
  EXPECT_EQ(callout_domain_stats(d, -1, &small), EINVAL);

  std::memset(buf.data(), 0xab, buf.size());
  const size_t big = buf.size();
  std::memcpy(buf.data(), &big, sizeof big);
  ASSERT_EQ(callout_domain_stats(d, 0, reinterpret_cast<callout_stats *>(buf.data())), 0);
  for (size_t i = sizeof(callout_stats); i < buf.size(); ++i) ASSERT_EQ(buf[i], 0) << "byte " << i;
  callout_stats full;
  std::memcpy(&full, buf.data(), sizeof full);
  EXPECT_EQ(full.size, big);
  EXPECT_EQ(full.pending, 1u);

  callout_stop(&c);
  callout_destroy(&c);
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

}  // namespace
