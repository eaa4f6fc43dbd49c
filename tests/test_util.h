// test_util.h -- shared helpers for the libcallout GoogleTest suites.
//
// Everything here uses only the public C API (callout/callout.h), so the
// suites test the contract of SPEC.md, not the implementation.
//
// Lifetime rule used throughout the tests: declare the Domain first, then
// the state the handlers touch, then the Callouts.  Destruction runs in
// reverse: each Callout is halted and destroyed, then the state goes away,
// then the domain is checked and destroyed.
#ifndef CALLOUT_TESTS_TEST_UTIL_H
#define CALLOUT_TESTS_TEST_UTIL_H

#include <callout/callout.h>
#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace ct {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// ---- handlers ---------------------------------------------------------------

// A handler written as a C++ callable.  The callout's arg points at the Fn.
using Fn = std::function<void()>;
inline void fn_trampoline(void *arg) { (*static_cast<Fn *>(arg))(); }

// ---- waiting ----------------------------------------------------------------

// Polls pred until it is true or the timeout passes.  Returns pred's last value.
template <class Pred>
bool wait_until(Pred &&pred, std::chrono::milliseconds timeout = 5000ms) {
  const auto deadline = SteadyClock::now() + timeout;
  while (!pred()) {
    if (SteadyClock::now() >= deadline) return pred();
    std::this_thread::sleep_for(200us);
  }
  return true;
}

// The scheduler state of thread `tid` of this process, from /proc ('S':
// sleeping, 'R': running; '?' if it cannot be read).
inline char thread_state(long tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  std::getline(f, line);
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() ? line[paren + 2] : '?';
}

// Holds pred false for the whole of `for_how_long`; returns true if it stayed
// false (used to show that something did NOT happen while a lock was held).
template <class Pred>
bool stays_false(Pred &&pred, std::chrono::milliseconds for_how_long) {
  const auto deadline = SteadyClock::now() + for_how_long;
  while (SteadyClock::now() < deadline) {
    if (pred()) return false;
    std::this_thread::sleep_for(500us);
  }
  return !pred();
}

// A one-shot gate a handler can block on; the test opens it.  wait() gives up
// after a generous timeout so a broken library cannot hang the suite forever.
struct Gate {
  std::atomic<bool> is_open{false};
  void open() { is_open.store(true); }
  bool wait(std::chrono::milliseconds timeout = 10000ms) {
    return wait_until([this] { return is_open.load(); }, timeout);
  }
};

// Aborts the process with a message if not disarmed (destroyed) within the
// timeout: turns a deadlock into a visible failure instead of a hung binary.
class Watchdog {
 public:
  explicit Watchdog(const char *what, std::chrono::milliseconds timeout = 15000ms)
      : what_(what), thread_([this, timeout] {
          std::unique_lock<std::mutex> lk(m_);
          if (!cv_.wait_for(lk, timeout, [this] { return done_; })) {
            std::fprintf(stderr, "WATCHDOG: '%s' did not finish in time (deadlock?)\n", what_);
            std::fflush(stderr);
            std::abort();
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lk(m_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog &) = delete;
  Watchdog &operator=(const Watchdog &) = delete;

 private:
  const char *what_;
  std::mutex m_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;  // last: starts after the members above exist
};

// Runs f at scope exit (e.g. opening a gate so that an early ASSERT return
// does not leave a handler blocked).
template <class F>
class ScopeExit {
 public:
  explicit ScopeExit(F f) : f_(std::move(f)) {}
  ~ScopeExit() { f_(); }
  ScopeExit(const ScopeExit &) = delete;
  ScopeExit &operator=(const ScopeExit &) = delete;

 private:
  F f_;
};

// ---- domains ----------------------------------------------------------------

inline callout_domain_config make_config(unsigned ncpu, callout_clock clk, unsigned hz) {
  callout_domain_config cfg;
  callout_domain_config_init(&cfg);
  cfg.ncpu = ncpu;
  cfg.hz = hz;
  cfg.clock = clk;
  return cfg;
}

// The counters of CPU cpu of d, or their sums over every CPU (cpu < 0).
inline callout_stats stats_of(callout_domain_t *d, int cpu = -1) {
  callout_stats st;
  st.size = sizeof st;
  EXPECT_EQ(callout_domain_stats(d, cpu, &st), 0);
  return st;
}

// RAII domain.  The destructor checks the wheels and destroys the domain;
// both must succeed (every Callout declared after it is destroyed first).
class Domain {
 public:
  explicit Domain(unsigned ncpu, callout_clock clk = CALLOUT_CLOCK_MANUAL, unsigned hz = 1000) {
    const callout_domain_config cfg = make_config(ncpu, clk, hz);
    const int rc = callout_domain_create(&cfg, &d_);
    if (rc != 0 || d_ == nullptr) {
      std::fprintf(stderr, "callout_domain_create(ncpu=%u, clock=%d, hz=%u) failed: %d\n", ncpu,
                   static_cast<int>(clk), hz, rc);
      std::abort();
    }
  }
  ~Domain() {
    if (d_ == nullptr) return;
    EXPECT_EQ(callout_domain_check(d_, stderr), 0);
    EXPECT_EQ(callout_domain_destroy(d_), 0);
  }
  Domain(const Domain &) = delete;
  Domain &operator=(const Domain &) = delete;

  // Gives up ownership without destroying (used when a library bug leaves a
  // thread stuck inside the domain, so that the rest of the suite can run).
  callout_domain_t *leak() {
    callout_domain_t *p = d_;
    d_ = nullptr;
    return p;
  }

  callout_domain_t *get() const { return d_; }
  operator callout_domain_t *() const { return d_; }
  int advance(std::uint64_t n) const { return callout_domain_advance(d_, n); }
  std::uint64_t ticks() const { return callout_domain_ticks(d_); }
  int check() const { return callout_domain_check(d_, stderr); }

 private:
  callout_domain_t *d_ = nullptr;
};

// ---- callouts ---------------------------------------------------------------

// RAII callout.  Owns an optional C++ handler (fn) so tests can write
// c.reset(ticks) for callout_reset(&c, ticks, trampoline, &fn).  The
// destructor halts then destroys it; fn is destroyed after that.
class Callout {
 public:
  Callout() { std::memset(&c_, 0, sizeof c_); }
  Callout(callout_domain_t *d, unsigned flags) : Callout() { init(d, flags); }
  ~Callout() {
    if (live_) {
      callout_halt(&c_, nullptr);
      callout_destroy(&c_);
    }
  }
  Callout(const Callout &) = delete;
  Callout &operator=(const Callout &) = delete;

  void init(callout_domain_t *d, unsigned flags) {
    callout_init_domain(&c_, flags, d);
    live_ = true;
  }
  void init_mtx(callout_domain_t *d, pthread_mutex_t *m, unsigned flags) {
    callout_init_mtx(&c_, d, m, flags);
    live_ = true;
  }
  // Marks the callout as initialised by someone else (e.g. a handler).
  void adopt() { live_ = true; }
  void destroy() {
    callout_destroy(&c_);
    live_ = false;
  }

  callout_t *p() { return &c_; }
  Fn fn;
  void reset(int ticks) { callout_reset(&c_, ticks, fn_trampoline, &fn); }
  void schedule(int ticks) { callout_schedule(&c_, ticks); }
  void setfunc() { callout_setfunc(&c_, fn_trampoline, &fn); }
  bool stop() { return callout_stop(&c_); }
  bool halt(pthread_mutex_t *interlock = nullptr) { return callout_halt(&c_, interlock); }
  void bind(unsigned cpu) { callout_bind(&c_, cpu); }
  bool pending() { return callout_pending(&c_); }
  bool expired() { return callout_expired(&c_); }
  bool active() { return callout_active(&c_); }
  bool invoking() { return callout_invoking(&c_); }
  void ack() { callout_ack(&c_); }

 private:
  callout_t c_;
  bool live_ = false;
};

// ---- threads ----------------------------------------------------------------

// Runs callout_domain_advance(d, n) on a helper thread (advance waits for the
// handlers it runs, so tests that block a handler need it off the test
// thread).  join() waits for it; the destructor joins too.
class AsyncAdvance {
 public:
  AsyncAdvance(callout_domain_t *d, std::uint64_t n)
      : thread_([this, d, n] {
          rc_.store(callout_domain_advance(d, n));
          done_.store(true);
        }) {}
  ~AsyncAdvance() { join(); }
  AsyncAdvance(const AsyncAdvance &) = delete;
  AsyncAdvance &operator=(const AsyncAdvance &) = delete;
  bool done() const { return done_.load(); }
  int join() {
    if (thread_.joinable()) thread_.join();
    return rc_.load();
  }

 private:
  std::atomic<int> rc_{-1};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// A helper thread that takes the giant lock of d (blocking) and holds it
// until release() or destruction.  acquired() says whether it got it.
class GiantProbe {
 public:
  explicit GiantProbe(callout_domain_t *d)
      : thread_([this, d] {
          callout_giant_enter(d);
          acquired_.store(true);
          while (!release_.load()) std::this_thread::sleep_for(200us);
          callout_giant_exit(d);
        }) {}
  ~GiantProbe() {
    release_.store(true);
    thread_.join();
  }
  GiantProbe(const GiantProbe &) = delete;
  GiantProbe &operator=(const GiantProbe &) = delete;
  bool acquired() const { return acquired_.load(); }
  void release() { release_.store(true); }

 private:
  std::atomic<bool> acquired_{false};
  std::atomic<bool> release_{false};
  std::thread thread_;
};

// Opens `gate` after `delay` on a helper thread; joins on destruction.
class DelayedOpen {
 public:
  DelayedOpen(Gate &gate, std::chrono::milliseconds delay)
      : thread_([&gate, delay] {
          std::this_thread::sleep_for(delay);
          gate.open();
        }) {}
  ~DelayedOpen() { thread_.join(); }
  DelayedOpen(const DelayedOpen &) = delete;
  DelayedOpen &operator=(const DelayedOpen &) = delete;

 private:
  std::thread thread_;
};

// pthread_mutex_trylock(m) from a fresh thread (unlocking again on success):
// 0 if the mutex was free, EBUSY if some thread holds it.
inline int trylock_from_other_thread(pthread_mutex_t *m) {
  std::atomic<int> rc{-1};
  std::thread t([&] {
    const int r = pthread_mutex_trylock(m);
    if (r == 0) pthread_mutex_unlock(m);
    rc.store(r);
  });
  t.join();
  return rc.load();
}

// A pthread mutex that is destroyed at scope exit.
struct Mutex {
  pthread_mutex_t m;
  Mutex() { pthread_mutex_init(&m, nullptr); }
  ~Mutex() { pthread_mutex_destroy(&m); }
  Mutex(const Mutex &) = delete;
  Mutex &operator=(const Mutex &) = delete;
  pthread_mutex_t *get() { return &m; }
  void lock() { pthread_mutex_lock(&m); }
  void unlock() { pthread_mutex_unlock(&m); }
};

// Tracks how many threads are inside a handler at once.
struct Overlap {
  std::atomic<int> inside{0};
  std::atomic<int> max_inside{0};
  void enter() {
    const int now = inside.fetch_add(1) + 1;
    int m = max_inside.load();
    while (now > m && !max_inside.compare_exchange_weak(m, now)) {
    }
  }
  void leave() { inside.fetch_sub(1); }
};

inline std::uint64_t elapsed_ms(SteadyClock::time_point since) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - since).count());
}

}  // namespace ct

#endif  // CALLOUT_TESTS_TEST_UTIL_H
