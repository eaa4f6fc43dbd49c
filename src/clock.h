// clock.h -- a domain's clock: what tick it is, and when a tick begins.
//
// Four kinds (enum callout_clock).  The monotonic clock is tickless: nothing
// counts ticks; the tick number is computed from CLOCK_MONOTONIC when someone
// asks (tick t begins at origin + t/hz seconds), and a softclock thread
// sleeps until the instant its next due tick begins.  The external clock
// reads the same ticks, but an event loop runs the handlers instead of a
// thread (loop.cpp).  The manual clock is a counter that only
// callout_domain_advance() moves; the virtual clock is the same counter, and
// advance() runs the handlers in its own thread (domain.cpp).
#ifndef CALLOUT_SRC_CLOCK_H
#define CALLOUT_SRC_CLOCK_H

#include <atomic>
#include <cstdint>
#include <ctime>

#include "callout/callout.h"

namespace libcallout::internal {

class Clock {
 public:
  Clock(enum callout_clock kind, unsigned hz);

  // Ticks are a counter that only callout_domain_advance() moves: the
  // manual and the virtual clocks.
  bool manual() const { return kind_ == CALLOUT_CLOCK_MANUAL || kind_ == CALLOUT_CLOCK_VIRTUAL; }
  // Virtual clock: advance() runs the due handlers in its own thread.
  bool caller_runs() const { return kind_ == CALLOUT_CLOCK_VIRTUAL; }
  // One softclock thread per CPU (monotonic and manual clocks).
  bool threaded() const { return kind_ == CALLOUT_CLOCK_MONOTONIC || kind_ == CALLOUT_CLOCK_MANUAL; }
  // Monotonic ticks, but no softclock thread: an event loop runs the
  // handlers through callout_domain_run().
  bool external() const { return kind_ == CALLOUT_CLOCK_EXTERNAL; }
  unsigned hz() const { return hz_; }

  // The current tick: for the manual clock the counter, for the monotonic
  // clock floor((now - origin) * hz / 1e9).
  std::uint64_t ticks() const {
    if (manual()) return manual_ticks_.load(std::memory_order_acquire);
    return monotonic_ticks();
  }
  // Manual clock only: the tick being processed by advance().
  void set_ticks(std::uint64_t t) { manual_ticks_.store(t, std::memory_order_release); }

  // The CLOCK_MONOTONIC nanosecond at which tick t begins (rounded up, so a
  // sleeper woken then reads a tick >= t), and as a timespec.
  std::uint64_t tick_start_ns(std::uint64_t t) const;
  timespec deadline(std::uint64_t t) const;
  // The tick that CLOCK_MONOTONIC nanosecond `ns` belongs to.
  std::uint64_t tick_at_ns(std::uint64_t ns) const;
  // The same for a CLOCK_MONOTONIC timespec, without 128-bit arithmetic:
  // the hot path of every reset on a monotonic clock (clock.cpp).  Equal to
  // tick_at_ns() of the same instant (clock_test checks it).
  std::uint64_t tick_at(const timespec &ts) const;

 private:
  std::uint64_t monotonic_ticks() const;

  const enum callout_clock kind_;
  const unsigned hz_;
  std::uint64_t origin_ns_;  // CLOCK_MONOTONIC at creation
  timespec origin_ts_;       // the same instant
  std::atomic<std::uint64_t> manual_ticks_{0};
};

std::uint64_t monotonic_ns();

}  // namespace libcallout::internal

#endif  // CALLOUT_SRC_CLOCK_H
