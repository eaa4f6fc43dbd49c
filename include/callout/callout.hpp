// callout.hpp -- the C++ layer of libcallout: RAII domains and timers over
// the C ABI of callout.h.  Header-only; link with libcallout as for C.
//
//   #include <callout/callout.hpp>
//   using namespace std::chrono_literals;
//
//   libcallout::timer t{"hello"};                 // default domain, MPSAFE
//   t.reset(100ms, [] { std::puts("hello"); });   // any callable
//   ...
//   t.halt();                                     // the destructor halts too
//
// Requires C++17 (the rest of the project is C++20; this header keeps to 17
// so that more programs can use it).  Everything lives in namespace
// `libcallout`: a `namespace callout` is impossible, because callout.h
// declares `struct callout` (the C type behind callout_t) in the global
// namespace, and a namespace and a class cannot share a name.
//
// ---- What maps to what ------------------------------------------------------
//
//   callout_domain_t*             libcallout::domain_ref (non-owning handle)
//   callout_domain_create/destroy libcallout::domain (owning, RAII)
//   callout_domain_default        libcallout::default_domain()
//   callout_t + init/destroy      libcallout::timer (RAII)
//   callout_reset                 timer::reset(duration, callable)
//   callout_schedule              timer::schedule(duration)
//   callout_stop / callout_halt   timer::stop() / timer::halt([lock])
//   callout_init_mtx              timer{std::mutex&, ...}
//   callout_bind                  timer::bind(cpu)
//   callout_reset_window          timer::reset_window(duration, slack, callable)
//   callout_halt_async            timer::halt_async(done)
//   callout_shutdown[_sync]       timer::shutdown() / timer::shutdown_sync([lock])
//   predicates, callout_ack       timer::pending() ... timer::ack()
//
// ---- Durations --------------------------------------------------------------
//
// A C++ timer never fires before its duration has elapsed.  The domain's
// clock counts ticks of 1/hz s and a callout fires at the start of its due
// tick, while a reset happens somewhere inside the current tick; so a
// duration converts to ticks by rounding UP to whole ticks and ADDING ONE:
// at hz 1000, reset(5ms, f) is due at callout_domain_ticks() + 6, and f runs
// between 5 and 6 ms after the reset (plus the wake-up latency).  A duration
// <= 0 means one tick (the next tick).  Durations longer than INT_MAX - 1
// ticks (24.8 days at hz 1000; timer::max_ticks = INT_MAX is the most ticks
// a C callout can wait) throw std::out_of_range (saturating would fire early).  to_ticks() is the
// conversion, exposed for callers that mix the C and C++ APIs.
//
// ---- Where the callable lives -----------------------------------------------
//
// reset() accepts any callable invocable as f() or f(timer&) (the second
// form gets the timer, handy for re-arming).  It is stored inside the timer
// object: callables of at most timer::inline_size bytes (32: four pointers,
// e.g. a lambda capturing `this` and three more words, or a std::function in
// libstdc++) whose alignment is at most alignof(std::max_align_t) are stored
// in place, without allocating.  Larger or over-aligned callables are
// allocated with operator new on reset() and freed when replaced or when the
// timer dies.  timer::stores_inline<F> says which way a type goes.  A
// timer is 208 bytes on x86-64 (the 96-byte callout_t, two 32-byte slots,
// their bookkeeping).
//
// A timer has two such slots.  reset() writes the new callable into a slot
// no handler invocation can be using: if the previous callable might still
// be running (or about to run) in the softclock thread, or is the very
// handler that calls reset(), the other slot is used.  The layer learns
// "might be running" from callout_stop()'s return value, so reset() and
// schedule() are a callout_stop() followed by callout_reset() /
// callout_schedule() (two short critical sections instead of one: about
// twice the cost of the C call, ~100 ns).  The observable behaviour is the
// C one, except that a C++ reset of a pending timer counts as "stopped" +
// "scheduled" in callout_domain_stats(), not "rescheduled", and that, reset
// from a handler on another CPU, an unbound pending timer moves to that CPU
// as an idle one would.
//
// ---- Copying, moving, threads -----------------------------------------------
//
// A timer is neither copyable nor movable: the engine's wheel links and a
// running handler hold its address, and "movable only when idle" cannot be
// checked without halting.  Keep timers where they are born (members,
// std::unique_ptr, node-based containers such as std::list or std::deque's
// emplace_back).
//
// Every member function may be called from any thread, including from the
// timer's own handler and from other handlers, concurrently (a small
// per-timer spin lock orders reset/schedule/stop; it is never held while a
// handler runs or while halt() waits).  halt() and the destructor may sleep:
// see callout_halt in callout(3).
//
// ---- Exceptions -------------------------------------------------------------
//
// A handler runs on a softclock thread, inside the C library: an exception
// cannot cross that boundary.  If one escapes a handler, the layer prints
//   libcallout: exception escaped the handler of timer "NAME" (0xADDR,
//   callable TYPE): WHAT
// to stderr and calls std::terminate().  Name your timers to find them.
// Constructors throw std::system_error when the C library reports an error
// (domain creation).  reset() throws std::out_of_range for a duration that
// does not fit (the timer is left as it was), and whatever copying or
// moving the callable throws, or std::bad_alloc for a large one (the timer
// is then left stopped, with no handler: schedule() would be misuse).
//
// Misuse (the C library's definition: bind() of a pending timer, schedule()
// before any reset(), halt(lock) without owning the lock...) prints one
// line to stderr and aborts, as in C.  Destroying a domain while timers
// live on it prints a line and calls std::terminate().
#ifndef CALLOUT_CALLOUT_HPP
#define CALLOUT_CALLOUT_HPP

#include <callout/callout.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>

#if __cplusplus < 201703L
#error "callout.hpp needs C++17 or later"
#endif

namespace libcallout {

class timer;

namespace detail {
// count * num * hz / den, rounded up or down, exactly; ULLONG_MAX when the
// quotient does not fit in 64 bits.  In 128 bits, count * num * hz cannot
// overflow for any std::chrono duration (count < 2^63, num < 2^25 up to
// years, hz < 2^32).
#if defined(__SIZEOF_INT128__)
__extension__ typedef unsigned __int128 u128;  // GCC and Clang, 64-bit targets
inline unsigned long long scale(unsigned long long count, unsigned long long num, unsigned hz,
                                unsigned long long den, bool round_up) noexcept {
  const u128 n = static_cast<u128>(count) * num * hz;
  const u128 t = (n + (round_up ? den - 1 : 0)) / den;
  return t > ULLONG_MAX ? ULLONG_MAX : static_cast<unsigned long long>(t);
}
#else
// 32-bit targets have no 128-bit integer: the product is formed from 32-bit
// halves and divided one bit at a time.  num * hz must fit in 64 bits (it
// does for every std::chrono period: num < 2^25); a larger one saturates.
inline unsigned long long scale(unsigned long long count, unsigned long long num, unsigned hz,
                                unsigned long long den, bool round_up) noexcept {
  unsigned long long m;
  if (__builtin_mul_overflow(num, static_cast<unsigned long long>(hz), &m)) return ULLONG_MAX;
  const unsigned long long mask = 0xffffffffULL;
  const unsigned long long a0 = count & mask, a1 = count >> 32, b0 = m & mask, b1 = m >> 32;
  const unsigned long long p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const unsigned long long mid = (p00 >> 32) + (p01 & mask) + (p10 & mask);
  const unsigned long long lo = (p00 & mask) | (mid << 32);
  const unsigned long long hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
  if (hi >= den) return ULLONG_MAX;  // the quotient needs more than 64 bits
  unsigned long long q = 0, r = hi;  // r < den throughout
  for (int i = 63; i >= 0; --i) {
    const bool carry = (r >> 63) != 0;  // 2r + bit >= 2^64 > den
    r = (r << 1) | ((lo >> i) & 1);
    q <<= 1;
    if (carry || r >= den) {
      r -= den;
      q |= 1;
    }
  }
  if (round_up && r != 0) return q == ULLONG_MAX ? ULLONG_MAX : q + 1;
  return q;
}
#endif
}  // namespace detail

// ============================================================================
// Tick conversion
// ============================================================================

// The ticks a C++ timer waits for duration d at hz: ceil(d * hz) + 1, at
// least 1, at most INT_MAX.  Throws std::out_of_range for durations longer
// than INT_MAX - 1 ticks.
template <class Rep, class Period>
int to_ticks(std::chrono::duration<Rep, Period> d, unsigned hz) {
  constexpr long long kMax = INT_MAX - 1;  // + 1 for the tick in progress
  long long whole;                         // ceil(d * hz), clamped to kMax + 1
  if constexpr (std::chrono::treat_as_floating_point<Rep>::value) {
    const long double t = std::ceil(static_cast<long double>(d.count()) * Period::num * hz / Period::den);
    if (!(t <= static_cast<long double>(kMax))) {  // also catches NaN
      if (t > 0 || std::isnan(t)) throw std::out_of_range("libcallout: timer duration out of range");
      whole = 0;
    } else {
      whole = t <= 0 ? 0 : static_cast<long long>(t);
    }
  } else {
    if (d.count() <= 0) {
      whole = 0;
    } else {
      const unsigned long long t =
          detail::scale(static_cast<unsigned long long>(d.count()), Period::num, hz, Period::den, true);
      if (t > static_cast<unsigned long long>(kMax))
        throw std::out_of_range("libcallout: timer duration out of range");
      whole = static_cast<long long>(t);
    }
  }
  return static_cast<int>(whole + 1);
}

// The slack of a precision window (timer::reset_window) in ticks: the
// duration rounded DOWN to whole ticks (the handler may run up to that many
// ticks after its due tick, never later than the caller allowed), 0 for a
// duration <= 0, at most INT_MAX.
template <class Rep, class Period>
int to_slack_ticks(std::chrono::duration<Rep, Period> d, unsigned hz) noexcept {
  if constexpr (std::chrono::treat_as_floating_point<Rep>::value) {
    const long double t = std::floor(static_cast<long double>(d.count()) * Period::num * hz / Period::den);
    if (!(t > 0)) return 0;  // also NaN
    return t >= static_cast<long double>(INT_MAX) ? INT_MAX : static_cast<int>(t);
  } else {
    if (d.count() <= 0) return 0;
    const unsigned long long t =
        detail::scale(static_cast<unsigned long long>(d.count()), Period::num, hz, Period::den, false);
    return t >= static_cast<unsigned long long>(INT_MAX) ? INT_MAX : static_cast<int>(t);
  }
}

// ============================================================================
// Domains
// ============================================================================

// monotonic: CLOCK_MONOTONIC ticks, a softclock thread per CPU.
// manual: ticks move only by domain_ref::advance() (deterministic tests).
// external: monotonic ticks, one CPU, no thread -- an event loop polls fd()
//   and calls run(), and the handlers run in the loop's thread.
// virtual_time: ticks move only by advance(), which runs the due handlers
//   in the calling thread, in the same order on every run; no thread.
enum class clock_kind {
  monotonic = CALLOUT_CLOCK_MONOTONIC,
  manual = CALLOUT_CLOCK_MANUAL,
  external = CALLOUT_CLOCK_EXTERNAL,
  virtual_time = CALLOUT_CLOCK_VIRTUAL
};

// The configuration of a new domain (callout_domain_config without `size`).
struct domain_config {
  unsigned ncpu = 0;                         // 0: one CPU per online processor
  unsigned hz = 1000;                        // ticks per second, 1..1000000
  clock_kind clock = clock_kind::monotonic;  // manual: moves only by advance()
  // (1.1) Softclock threads (monotonic and manual clocks): pin thread i to
  // the (i mod count)-th CPU of the creating thread's affinity mask, and run
  // them under SCHED_FIFO or SCHED_RR at sched_priority (SCHED_OTHER:
  // inherited).
  bool pin = false;
  int sched_policy = SCHED_OTHER;
  int sched_priority = 0;
};

// BasicLockable over a domain's recursive giant lock: std::lock_guard
// lk{d.giant()} runs code as a non-MPSAFE handler would.
class giant_lock {
 public:
  explicit giant_lock(callout_domain_t *d) noexcept : d_(d) {}
  void lock() { callout_giant_enter(d_); }
  void unlock() { callout_giant_exit(d_); }

 private:
  callout_domain_t *d_;
};

// A non-owning handle to a domain: cheap to copy, valid while the domain is.
// default_domain() and libcallout::domain give you one.
class domain_ref {
 public:
  // Wraps a domain of the C API (not NULL).
  explicit domain_ref(callout_domain_t *d) noexcept : d_(d) {}

  callout_domain_t *native_handle() const noexcept { return d_; }
  unsigned ncpu() const noexcept { return callout_domain_ncpu(d_); }
  unsigned hz() const noexcept { return callout_domain_hz(d_); }
  // The tick count: 0 at creation; inside a handler run by advance(), the
  // tick being processed.
  std::uint64_t ticks() const noexcept { return callout_domain_ticks(d_); }
  // The CPU index when called from one of this domain's softclock threads
  // (that is, from a handler), else std::nullopt.
  std::optional<unsigned> curcpu() const noexcept {
    const int c = callout_domain_curcpu(d_);
    return c < 0 ? std::nullopt : std::optional<unsigned>(static_cast<unsigned>(c));
  }
  // The ticks a timer of this domain waits for d (see to_ticks).
  template <class Rep, class Period>
  int to_ticks(std::chrono::duration<Rep, Period> d) const {
    return libcallout::to_ticks(d, hz());
  }

  // Manual clock only: moves the clock nticks ticks forward, running every
  // handler that comes due, and returns once they have all finished.
  // Throws std::system_error: EINVAL on a monotonic domain, EDEADLK from a
  // handler of this domain.
  void advance(std::uint64_t nticks) const {
    if (const int err = callout_domain_advance(d_, nticks); err != 0)
      throw std::system_error(err, std::generic_category(), "callout_domain_advance");
  }
  // advance() by d rounded up to whole ticks (no extra tick: after
  // advance(5ms) at hz 1000 the clock reads 5 ticks later).
  template <class Rep, class Period>
  void advance(std::chrono::duration<Rep, Period> d) const {
    advance(static_cast<std::uint64_t>(libcallout::to_ticks(d, hz()) - 1));
  }

  giant_lock giant() const noexcept { return giant_lock(d_); }

  // Returns once no handler of this domain runs or is being dispatched (no
  // new one starts meanwhile; pending timers stay pending).  Throws
  // std::system_error (EDEADLK) from one of its own handlers.
  void drain() const {
    if (const int err = callout_domain_drain(d_); err != 0)
      throw std::system_error(err, std::generic_category(), "callout_domain_drain");
  }

  // Event loops (external clock).  next_timeout(): the time until the next
  // tick at which something may be due (zero: due now; nullopt: nothing
  // pending); run(): runs the due handlers in the calling thread, returns
  // how many ran; fd(): a descriptor that polls readable when run() has
  // work (-1 for other clocks).
  std::optional<std::chrono::nanoseconds> next_timeout() const noexcept {
    const std::int64_t ns = callout_domain_next_timeout(d_);
    if (ns < 0) return std::nullopt;
    return std::chrono::nanoseconds(ns);
  }
  unsigned run() const noexcept { return callout_domain_run(d_); }
  int fd() const noexcept { return callout_domain_fd(d_); }

  // Diagnostics (callout_domain(3)): the wheel invariants (0 = consistent,
  // else the number of violations, printed to out), the counters of one CPU
  // or of all (cpu < 0), and a "show callout" listing of pending callouts.
  int check(std::FILE *out = stderr) const noexcept { return callout_domain_check(d_, out); }
  callout_stats stats(int cpu = -1) const {
    callout_stats s;
    std::memset(&s, 0, sizeof s);
    s.size = sizeof s;
    if (const int err = callout_domain_stats(d_, cpu, &s); err != 0)
      throw std::system_error(err, std::generic_category(), "callout_domain_stats");
    return s;
  }
  void dump(std::FILE *out = stdout) const noexcept { callout_domain_dump(d_, out); }

  friend bool operator==(domain_ref a, domain_ref b) noexcept { return a.d_ == b.d_; }
  friend bool operator!=(domain_ref a, domain_ref b) noexcept { return a.d_ != b.d_; }

 protected:
  callout_domain_t *d_;
};

// The process-wide domain (monotonic clock, hz 1000, a CPU per online
// processor), started on first use; it lives until the process exits.
inline domain_ref default_domain() { return domain_ref(callout_domain_default()); }
// The domain a timer constructed without one uses from the calling thread:
// that of the handler it runs, else the default domain.
inline domain_ref current_domain() { return domain_ref(callout_domain_current()); }

// An owning domain: created by the constructor, destroyed (its threads
// joined) by the destructor.  Movable, not copyable.  Every timer of a
// domain must be destroyed before the domain: declare the domain first.
class domain : public domain_ref {
 public:
  // Throws std::system_error: EINVAL for a bad configuration (hz > 10^6,
  // ncpu > 1024, a bad policy or priority), EPERM when the process may not
  // use the policy, EAGAIN or ENOMEM when threads or memory cannot be had.
  explicit domain(const domain_config &cfg = {}) : domain_ref(nullptr) {
    callout_domain_config c;
    callout_domain_config_init(&c);
    c.ncpu = cfg.ncpu;
    c.hz = cfg.hz;
    c.clock = static_cast<enum callout_clock>(cfg.clock);
    c.flags = cfg.pin ? CALLOUT_DOMAIN_PIN : 0;
    c.sched_policy = cfg.sched_policy;
    c.sched_priority = cfg.sched_priority;
    if (const int err = callout_domain_create(&c, &d_); err != 0)
      throw std::system_error(err, std::generic_category(), "callout_domain_create");
  }
  domain(const domain &) = delete;
  domain &operator=(const domain &) = delete;
  domain(domain &&o) noexcept : domain_ref(std::exchange(o.d_, nullptr)) {}
  domain &operator=(domain &&o) noexcept {
    if (this != &o) {
      release();
      d_ = std::exchange(o.d_, nullptr);
    }
    return *this;
  }
  // Joins the threads.  A timer still alive on the domain, or destroying it
  // from one of its own handlers, is a bug: message and std::terminate().
  ~domain() { release(); }

 private:
  void release() noexcept {
    if (d_ == nullptr) return;
    if (const int err = callout_domain_destroy(d_); err != 0) {
      std::fprintf(stderr, "libcallout: ~domain: callout_domain_destroy(%p) failed: %s%s\n",
                   static_cast<void *>(d_), std::strerror(err),
                   err == EBUSY     ? " (timers still live on it: destroy them first)"
                   : err == EDEADLK ? " (called from one of its own handlers)"
                                    : "");
      std::fflush(stderr);
      std::terminate();
    }
    d_ = nullptr;
  }
};

// ============================================================================
// Timers
// ============================================================================

// Tag: a timer whose handler runs holding the domain's giant lock (a callout
// without CALLOUT_MPSAFE).  Such timers live on CPU 0 and cannot be bound.
struct giant_locked_t {
  explicit giant_locked_t() = default;
};
inline constexpr giant_locked_t giant_locked{};

namespace detail {

// The callable type's name, from the compiler's pretty function name.
template <class F>
const char *pretty_function() noexcept {
  return __PRETTY_FUNCTION__;
}

struct callable_ops {
  void (*invoke)(void *storage, timer &t);
  void (*destroy)(void *storage) noexcept;
  const char *(*pretty)() noexcept;
};

// A tiny test-and-test-and-set lock: critical sections are a few hundred
// nanoseconds and contention needs two threads on one timer.
class spin_lock {
 public:
  void lock() noexcept {
    for (unsigned spins = 0; locked_.exchange(true, std::memory_order_acquire);) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins > 64) std::this_thread::yield();
      }
    }
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

[[noreturn]] inline void die(const char *function, const void *t, const char *name,
                             const char *what) noexcept {
  std::fprintf(stderr, "libcallout: timer::%s: timer \"%s\" (%p): %s\n", function, name ? name : "(unnamed)",
               t, what);
  std::fflush(stderr);
  std::abort();
}

// Called inside a catch block in the trampoline: says which timer's handler
// threw what, then std::terminate().
[[noreturn]] inline void handler_threw(const void *t, const char *name, const callable_ops *ops) noexcept {
  const char *pretty = ops != nullptr ? ops->pretty() : "";
  const char *type = std::strstr(pretty, "F = ");
  int type_len = 0;
  if (type != nullptr) {
    type += 4;
    const char *end = std::strrchr(type, ']');
    type_len = static_cast<int>(end != nullptr ? end - type : static_cast<std::ptrdiff_t>(std::strlen(type)));
  } else {
    type = "?";
    type_len = 1;
  }
  const char *what = "an exception not derived from std::exception";
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
  try {
    throw;
  } catch (const std::exception &e) {
    what = e.what();
  } catch (...) {
  }
#endif
  std::fprintf(stderr,
               "libcallout: exception escaped the handler of timer \"%s\" (%p, callable %.*s): %s\n"
               "libcallout: handlers run inside the C library and must not throw; calling std::terminate()\n",
               name ? name : "(unnamed)", t, type_len, type, what);
  std::fflush(stderr);
  std::terminate();
}

// A timer::halt_async completion, on the heap: call() runs it once and
// frees it (the timer itself may be gone by then).
template <class Fn>
struct completion {
  template <class F>
  explicit completion(F &&f) : fn(std::forward<F>(f)) {}
  static void call(void *arg) noexcept {
    completion *c = static_cast<completion *>(arg);
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
    try {
      c->fn();
    } catch (...) {
      handler_threw(nullptr, "(halt_async completion)", nullptr);
    }
#else
    c->fn();
#endif
    delete c;
  }
  Fn fn;
};

}  // namespace detail

// A callout as an RAII object: see the top of this file for the rules.
class timer {
 public:
  // Callables up to this size (and alignof(std::max_align_t)) are stored in
  // the timer without allocating.
  static constexpr std::size_t inline_size = 32;
  template <class F>
  static constexpr bool stores_inline = sizeof(std::decay_t<F>) <= inline_size &&
                                        alignof(std::decay_t<F>) <= alignof(std::max_align_t);
  // The most ticks a timer waits (to_ticks throws beyond it).
  static constexpr int max_ticks = INT_MAX;

  // An MPSAFE timer (its handler runs without any lock) on `d`.  `name`,
  // used in diagnostics, must outlive the timer (a string literal).
  explicit timer(domain_ref d, const char *name = nullptr) : timer(d, name, CALLOUT_MPSAFE, nullptr) {}
  // ... on the default domain.
  explicit timer(const char *name = nullptr) : timer(default_domain(), name) {}
  // A lock-associated timer: the softclock thread locks `m` before calling
  // the handler and unlocks it after; a stop() made holding `m` guarantees
  // the handler will not run for the last arming.  `m` must outlive the
  // timer.  (std::mutex::native_handle() is the pthread mutex the C
  // library takes.)
  explicit timer(std::mutex &m, domain_ref d, const char *name = nullptr)
      : timer(d, name, 0, m.native_handle()) {}
  explicit timer(std::mutex &m, const char *name = nullptr) : timer(m, default_domain(), name) {}
  // A giant-locked timer: its handler runs holding the domain's giant lock.
  timer(giant_locked_t, domain_ref d, const char *name = nullptr) : timer(d, name, 0, nullptr) {}
  explicit timer(giant_locked_t g, const char *name = nullptr) : timer(g, default_domain(), name) {}

  timer(const timer &) = delete;
  timer &operator=(const timer &) = delete;
  timer(timer &&) = delete;
  timer &operator=(timer &&) = delete;

  // Halts the timer (waiting for a handler running in another thread), then
  // destroys it and the callables it holds.  From the timer's own handler it
  // does not wait; the handler must then touch neither the timer nor its
  // own captures afterwards (as after `delete this`).  Do not destroy a
  // lock-associated timer while holding its mutex unless it is known idle
  // (halt(lock) first): the wait would need the mutex.
  ~timer() {
    callout_halt(&c_, nullptr);
    callout_destroy(&c_);
    for (int i = 0; i < 2; ++i)
      if (ops_[i] != nullptr) ops_[i]->destroy(buf_[i]);
  }

  // Arms the timer: f runs once, no earlier than `d` from now (see
  // "Durations"), on a softclock thread of the timer's domain.  A pending
  // timer is rescheduled, earlier or later.  f is invoked as f(timer&) if
  // it can be, else as f().  Clears expired() and invoking().
  template <class Rep, class Period, class F>
  void reset(std::chrono::duration<Rep, Period> d, F &&f) {
    arm(to_ticks(d, hz_), -1, std::forward<F>(f));
  }

  // callout_reset_window: as reset(), but the handler may run at any tick
  // of the window [due, due + slack] (due as for reset(d, f); slack rounded
  // DOWN to whole ticks, see to_slack_ticks), never outside it.  The
  // library picks a tick it can share with other timers, so the domain
  // wakes up less often: give timers that need not be punctual (idle and
  // keepalive timeouts) a slack of a few percent of their duration.
  template <class Rep, class Period, class Rep2, class Period2, class F>
  void reset_window(std::chrono::duration<Rep, Period> d, std::chrono::duration<Rep2, Period2> slack, F &&f) {
    arm(to_ticks(d, hz_), to_slack_ticks(slack, hz_), std::forward<F>(f));
  }

  // Re-arms the timer with the callable of the last reset(); misuse (abort)
  // if there is none.  Clears expired() and invoking().  Ignored after
  // shutdown() and while a halt_async() completion is pending.
  template <class Rep, class Period>
  void schedule(std::chrono::duration<Rep, Period> d) {
    const int ticks = to_ticks(d, hz_);
    std::lock_guard<detail::spin_lock> lk(lock_);
    if (ops_[cur_] == nullptr) detail::die("schedule", this, name_, "no handler (call reset() first)");
    if (!cur_fired_) cur_fired_ = callout_stop(&c_);
    callout_schedule(&c_, ticks);
  }

  // callout_stop: unschedules the timer without ever blocking.  Returns
  // true if the handler already ran for the last arming, or is running now
  // (use halt() to wait for it); false if it has not run and now will not
  // (for a lock-associated timer, when called holding its mutex, even if
  // the softclock thread was already waiting for that mutex).
  bool stop() noexcept {
    std::lock_guard<detail::spin_lock> lk(lock_);
    return stop_and_remember();
  }

  // callout_halt: stop(), then wait until no other thread is running the
  // handler; a re-arm made by the handler meanwhile is undone.  Returns
  // true iff it had to wait.  From the timer's own handler it does not
  // wait.  May sleep.
  bool halt() noexcept { return halt_with(nullptr, false); }
  // The same with an interlock: `lk` (owning its mutex) is released while
  // waiting and re-acquired before return -- needed when the handler takes
  // that mutex, in particular for a timer associated with it.
  bool halt(std::unique_lock<std::mutex> &lk) noexcept {
    if (!lk.owns_lock()) detail::die("halt", this, name_, "the interlock is not held");
    return halt_with(lk.mutex()->native_handle(), false);
  }

  // callout_halt_async: halt() for threads that must not block (an event
  // loop, another handler).  Stops the timer.  If another thread is still
  // dispatching it or running its handler, returns true, and done() is
  // called exactly once, on that softclock thread, once nothing uses the
  // timer any more; until then reset() and schedule() are ignored.  done()
  // may destroy the timer (delete it, erase it from its container): that
  // is what it is for.  Otherwise returns false and done is never called:
  // the timer may be destroyed at once.  From the timer's own handler it
  // returns false.  `done` (any callable as done()) is moved to the heap:
  // one allocation per call; std::bad_alloc leaves the timer untouched.
  // At most 8 completions may be pending on one timer (misuse beyond).
  template <class F>
  bool halt_async(F &&done) {
    using Fn = std::decay_t<F>;
    static_assert(std::is_invocable_v<Fn &>, "a halt_async completion must be callable as done()");
    auto *holder = new detail::completion<Fn>(std::forward<F>(done));
    bool waiting;
    {
      std::lock_guard<detail::spin_lock> lk(lock_);
      stop_and_remember();
      waiting = callout_halt_async(&c_, &detail::completion<Fn>::call, holder);
    }
    if (!waiting) delete holder;  // never called: ours to free
    return waiting;
  }

  // callout_shutdown: stop(), and from now on every reset(), reset_window()
  // and schedule() of this timer is ignored (counted as "ignored" in
  // callout_domain_stats): teardown cannot be undone by a racing re-arm,
  // e.g. by the timer's own handler.  Never blocks.  A timer cannot be
  // brought back; the destructor works as always.
  void shutdown() noexcept {
    std::lock_guard<detail::spin_lock> lk(lock_);
    stop_and_remember();
    callout_shutdown(&c_);
  }
  // callout_shutdown_sync: shutdown(), then wait like halt() (same return
  // value); the handler cannot re-arm the timer meanwhile.
  bool shutdown_sync() noexcept { return halt_with(nullptr, true); }
  bool shutdown_sync(std::unique_lock<std::mutex> &lk) noexcept {
    if (!lk.owns_lock()) detail::die("shutdown_sync", this, name_, "the interlock is not held");
    return halt_with(lk.mutex()->native_handle(), true);
  }

  // callout_bind: the handler runs on CPU `cpu` of the domain from now on.
  // Only for an MPSAFE or mutex timer that is neither pending nor running.
  void bind(unsigned cpu) noexcept { callout_bind(&c_, cpu); }

  // The predicates (stale as soon as they return, unless the caller holds
  // the associated mutex or is the handler).
  bool pending() noexcept { return callout_pending(&c_); }    // armed, not yet dispatched
  bool expired() noexcept { return callout_expired(&c_); }    // handler invoked since the last reset/stop
  bool active() noexcept { return callout_active(&c_); }      // pending() || expired()
  bool invoking() noexcept { return callout_invoking(&c_); }  // invoked and not yet ack()ed
  void ack() noexcept { callout_ack(&c_); }

  domain_ref domain() const noexcept { return domain_ref(dom_); }
  const char *name() const noexcept { return name_; }
  // The callout inside, for the C predicates and diagnostics only: arming
  // or stopping it through the C API would bypass the callable slots.
  callout_t *native_handle() noexcept { return &c_; }

 private:
  static_assert(std::is_same_v<std::mutex::native_handle_type, pthread_mutex_t *>,
                "std::mutex must be a pthread mutex for lock-associated timers");

  // callout_stop, remembering that an invocation of the current slot may be
  // in flight (reset() must then use the other slot).  Holding lock_.
  bool stop_and_remember() noexcept {
    const bool fired = callout_stop(&c_);
    cur_fired_ = cur_fired_ || fired;
    return fired;
  }

  // reset() (slack < 0) and reset_window().
  template <class F>
  void arm(int ticks, int slack, F &&f) {
    using Fn = std::decay_t<F>;
    static_assert(std::is_invocable_v<Fn &, timer &> || std::is_invocable_v<Fn &>,
                  "a timer handler must be callable as f(timer&) or f()");
    static_assert(std::is_constructible_v<Fn, F>, "the handler must be constructible from the argument");
    std::lock_guard<detail::spin_lock> lk(lock_);
    // Which slot can take f?  The current one, unless an invocation of its
    // callable may be in flight (then the other one, which is then free:
    // invocations of a callout are serialised, so an arming of the current
    // slot having been dispatched means every older invocation returned).
    const bool fired = callout_stop(&c_);
    const int j = (fired || cur_fired_) ? 1 - cur_ : cur_;
    if (ops_[j] != nullptr) {
      ops_[j]->destroy(buf_[j]);
      ops_[j] = nullptr;
    }
    if (j != cur_) {
      cur_ = j;
      cur_fired_ = false;
    }
    emplace<Fn>(j, std::forward<F>(f));  // may throw: the timer stays stopped
    callout_func_t tramp = j == 0 ? &trampoline<0> : &trampoline<1>;
    if (slack < 0)
      callout_reset(&c_, ticks, tramp, this);
    else
      callout_reset_window(&c_, ticks, slack, tramp, this);
  }

  timer(domain_ref d, const char *name, unsigned flags, pthread_mutex_t *mtx)
      : name_(name), dom_(d.native_handle()), hz_(d.hz()) {
    if (mtx != nullptr)
      callout_init_mtx(&c_, dom_, mtx, flags);
    else
      callout_init_domain(&c_, flags, dom_);
  }

  template <class Fn, class F>
  void emplace(int j, F &&f) {
    if constexpr (stores_inline<Fn>) {
      ::new (static_cast<void *>(buf_[j])) Fn(std::forward<F>(f));
    } else {
      Fn *p = new Fn(std::forward<F>(f));
      ::new (static_cast<void *>(buf_[j])) Fn *(p);
    }
    ops_[j] = &ops_for<Fn>;
  }

  template <class Fn>
  static Fn &object(void *storage) noexcept {
    if constexpr (stores_inline<Fn>)
      return *std::launder(static_cast<Fn *>(storage));
    else
      return **std::launder(static_cast<Fn **>(storage));
  }

  template <class Fn>
  static void invoke_fn(void *storage, timer &t) {
    if constexpr (std::is_invocable_v<Fn &, timer &>)
      object<Fn>(storage)(t);
    else
      object<Fn>(storage)();
  }
  template <class Fn>
  static void destroy_fn(void *storage) noexcept {
    if constexpr (stores_inline<Fn>)
      object<Fn>(storage).~Fn();
    else
      delete &object<Fn>(storage);
  }
  template <class Fn>
  static constexpr detail::callable_ops ops_for = {&invoke_fn<Fn>, &destroy_fn<Fn>,
                                                   &detail::pretty_function<Fn>};

  // The C handler.  `arg` is the timer; J is the slot, fixed by which
  // trampoline the arming named (the engine reads func and arg together).
  template <int J>
  static void trampoline(void *arg) noexcept {
    timer *t = static_cast<timer *>(arg);
    const detail::callable_ops *ops = t->ops_[J];
    const char *name = t->name_;  // the handler may destroy the timer
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
    try {
      ops->invoke(t->buf_[J], *t);
    } catch (...) {
      detail::handler_threw(t, name, ops);
    }
#else
    (void)name;
    ops->invoke(t->buf_[J], *t);
#endif
  }

  bool halt_with(pthread_mutex_t *interlock, bool shutdown) noexcept {
    {
      // Remember whether the handler fired before halt clears it: from the
      // handler itself, halt does not wait, and reset() must still keep off
      // the running callable's slot.
      std::lock_guard<detail::spin_lock> lk(lock_);
      stop_and_remember();
    }
    return shutdown ? callout_shutdown_sync(&c_, interlock) : callout_halt(&c_, interlock);
  }

  callout_t c_;
  const detail::callable_ops *ops_[2] = {nullptr, nullptr};  // guarded by lock_
  const char *const name_;
  callout_domain_t *const dom_;
  const unsigned hz_;
  detail::spin_lock lock_;
  int cur_ = 0;             // the slot the C callout's handler refers to
  bool cur_fired_ = false;  // an invocation of slot cur_ may be in flight
  alignas(std::max_align_t) unsigned char buf_[2][inline_size];
};

}  // namespace libcallout

#endif  // CALLOUT_CALLOUT_HPP
