// compat_util.h -- helpers shared by the kernel-KPI suites (tests/compat).
//
// Only <callout/domain.h> and the standard library: the suites include one
// compat header each, and <callout/compat/freebsd.h> cannot meet
// <callout/callout.h> (both define struct callout), so nothing here may
// name callout_t.  Include this before the compat header: the FreeBSD one
// defines hz and ticks as macros, which would rewrite the code below.
//
// Waiting: a thread the test controls signals through Latch and Counter
// (condition variables).  Library state that has no notification (a
// callout leaving the wheel, a drain starting to wait) is polled by
// poll_until().  Every wait is bounded by kWatchdog: it only turns a hang
// into a failure, it never decides an outcome.
#ifndef CALLOUT_TESTS_COMPAT_UTIL_H
#define CALLOUT_TESTS_COMPAT_UTIL_H

#include <callout/domain.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace compat {

using namespace std::chrono_literals;

// Generous on purpose: the machine is shared; only a hang reaches it.
constexpr std::chrono::milliseconds kWatchdog = 60000ms;

// A one-shot gate: wait() blocks until open() (false if the watchdog ran out).
class Latch {
 public:
  // Notifies under the lock: once a waiter returns, the opener no longer
  // touches the latch, so the waiter may destroy it.
  void open() {
    std::lock_guard<std::mutex> lk(m_);
    open_ = true;
    cv_.notify_all();
  }
  bool wait() {
    std::unique_lock<std::mutex> lk(m_);
    return cv_.wait_for(lk, kWatchdog, [this] { return open_; });
  }
  bool is_open() {
    std::lock_guard<std::mutex> lk(m_);
    return open_;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool open_ = false;
};

// A counter other threads bump; wait_for(n) blocks until it reaches n.
class Counter {
 public:
  // Notifies under the lock, as Latch::open.
  int add() {
    std::lock_guard<std::mutex> lk(m_);
    const int now = ++n_;
    cv_.notify_all();
    return now;
  }
  int get() {
    std::lock_guard<std::mutex> lk(m_);
    return n_;
  }
  bool wait_for(int n) {
    std::unique_lock<std::mutex> lk(m_);
    return cv_.wait_for(lk, kWatchdog, [&] { return n_ >= n; });
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int n_ = 0;
};

// Polls library state until pred() holds: true, or false after the watchdog.
template <class Pred>
bool poll_until(Pred &&pred) {
  const auto deadline = std::chrono::steady_clock::now() + kWatchdog;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(100us);
  }
  return true;
}

// A private domain, destroyed at scope exit; destroy must succeed (so every
// callout on it must be neither pending nor running by then -- compat
// callouts are never destroyed one by one).
class Domain {
 public:
  Domain(unsigned ncpu, callout_clock clk, unsigned hz_ = 1000) {
    callout_domain_config cfg;
    callout_domain_config_init(&cfg);
    cfg.ncpu = ncpu;
    cfg.hz = hz_;
    cfg.clock = clk;
    const int rc = callout_domain_create(&cfg, &d_);
    if (rc != 0) {
      std::fprintf(stderr, "callout_domain_create(ncpu %u, clock %d, hz %u): %d\n", ncpu,
                   static_cast<int>(clk), hz_, rc);
      std::abort();
    }
  }
  ~Domain() {
    EXPECT_EQ(callout_domain_check(d_, stderr), 0);
    EXPECT_EQ(callout_domain_destroy(d_), 0);
  }
  Domain(const Domain &) = delete;
  Domain &operator=(const Domain &) = delete;
  operator callout_domain_t *() const { return d_; }
  callout_domain_t *get() const { return d_; }
  std::uint64_t now() const { return callout_domain_ticks(d_); }
  int advance(std::uint64_t n) const { return callout_domain_advance(d_, n); }

 private:
  callout_domain_t *d_ = nullptr;
};

// Halts that found the callout in use and had to wait, summed over d's
// CPUs: the counter moves, under the CPU lock, right before a drain or a
// sync delete goes to sleep, so a rise means "it is waiting now".
inline std::uint64_t halts_waited(callout_domain_t *d) {
  callout_stats st{};
  st.size = sizeof st;
  if (callout_domain_stats(d, -1, &st) != 0) std::abort();
  return st.halts_waited;
}

// The longest sampled CPU-lock hold of an API call on d (0: none timed yet).
// One hold in 4096 per CPU is timed (kHoldSample in src/cpu.h).
inline std::uint64_t api_hold_max(callout_domain_t *d) {
  callout_stats st{};
  st.size = sizeof st;
  if (callout_domain_stats(d, -1, &st) != 0) std::abort();
  return st.lock_hold_ns_max_api;
}
constexpr int kTwiceTheHoldSample = 2 * 4096;

// Runs f on a thread; done() says whether it has returned; join() waits.
class Async {
 public:
  explicit Async(std::function<void()> f)
      : t_([this, f = std::move(f)] {
          f();
          done_.store(true);
        }) {}
  ~Async() { join(); }
  Async(const Async &) = delete;
  Async &operator=(const Async &) = delete;
  bool done() const { return done_.load(); }
  void join() {
    if (t_.joinable()) t_.join();
  }

 private:
  std::atomic<bool> done_{false};
  std::thread t_;
};

// Runs f on a thread that should go to sleep in the library (a drain, a
// sync delete) until the test lets a handler finish.  The halts_waited
// count is read before the thread starts, so wait_until_blocked() is true
// once f sleeps, and false if f returned first or the watchdog ran out.
class BlockingCall {
 public:
  BlockingCall(callout_domain_t *d, std::function<void()> f)
      : d_(d), before_(halts_waited(d)), a_(std::move(f)) {}
  bool wait_until_blocked() {
    return poll_until([this] { return halts_waited(d_) > before_ || a_.done(); }) && !a_.done();
  }
  bool done() const { return a_.done(); }
  void join() { a_.join(); }

 private:
  callout_domain_t *d_;
  std::uint64_t before_;
  Async a_;  // last: starts after before_ is read
};

}  // namespace compat

#endif  // CALLOUT_TESTS_COMPAT_UTIL_H
